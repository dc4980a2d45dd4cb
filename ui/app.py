"""`trading-signals ui`: the Gradio app for symbols, signal review, portfolio and orders.

The environment is checked before Gradio is imported (Gradio itself crashes at import on a bad
GRADIO_SERVER_PORT), and the app refuses to listen beyond localhost without a login.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from ui.config import RunLauncher, UIConfig, UIConfigError, UIContext
from ui.login import FailedLogins, LoginThrottle


def build_app(resources: dict[str, Any], instance: Any, config: UIConfig | None = None,
              launcher: RunLauncher | None = None) -> Any:
    """The gr.Blocks page over these resources and this Dagster instance (tests inject theirs)."""
    from ui.page import build_page

    return build_page(UIContext(resources=resources, instance=instance,
                                config=config or UIConfig(), launcher=launcher or RunLauncher()))


def launch(app: Any, config: UIConfig, *, prevent_thread_lock: bool = False,
           logins: FailedLogins | None = None) -> tuple[Any, str, str]:
    """Start the server where `config` says, with its login; refuses an unprotected wide bind.

    With a login, failed attempts are throttled per client (ui/login.py; `logins` holds the
    counts, tests pass their own)."""
    from starlette.middleware import Middleware

    config.check_listen()
    throttle = ([Middleware(LoginThrottle, logins=logins or FailedLogins())]
                if config.auth else [])
    return app.launch(
        server_name=config.server_name,
        server_port=config.server_port,
        auth=config.auth,
        auth_message="Trading signals: log in to review signals." if config.auth else None,
        app_kwargs={"middleware": throttle},
        prevent_thread_lock=prevent_thread_lock,
        share=False,  # never a public tunnel, whatever GRADIO_SHARE says
        show_error=False,
        footer_links=["gradio", "settings"],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        quiet=prevent_thread_lock,
    )


def main(host: str | None = None, port: int | None = None) -> int:
    """Build resources and the Dagster instance from the environment and serve until stopped
    (`host`/`port`: `trading-signals ui --host/--port`, over GRADIO_SERVER_NAME/PORT)."""
    from trading_assets.runs import get_instance
    from trading_assets.settings import ConfigError, check_start

    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ui").setLevel(logging.INFO)
    try:
        config = UIConfig.from_env(os.environ).listening_on(host, port)
        config.check_listen()
        resources = check_start()
    except (UIConfigError, ConfigError) as exc:
        print(f"trading-signals ui: {exc}", file=sys.stderr)
        return 2
    app = build_app(resources, get_instance(), config)
    login = "with a login" if config.auth else "without a login (this machine only)"
    print(f"Trading signals UI on http://{config.server_name}:{config.server_port} {login}; "
          f"Dagster UI at {config.dagster_url}", flush=True)
    try:
        launch(app, config)
    except OSError as exc:  # port taken: Gradio says "Cannot find empty port"
        print(f"trading-signals ui: cannot listen on {config.server_name}:{config.server_port}"
              f": {str(exc).rstrip('.')}.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
