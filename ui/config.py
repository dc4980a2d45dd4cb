"""The app's configuration, its context and its errors: where it listens, who may log in, the
resources and Dagster instance every tab works on, and the background "Run now" launcher.

Every tab function takes a `UIContext`, so tests call them directly on test resources. A refusal
is a `UIError` whose message a trader can act on; the page shows it, never a stack trace.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from trading_assets.core.config import ConfigError, TrackingSettings, UISettings
from trading_assets.core.secrets import public_url

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# A login's password must be at least this long: with the per-client throttle (ui/login.py)
# that puts guessing it out of reach.
MIN_PASSWORD_LENGTH = 12
_HTTP_URL_RE = re.compile(r"^https?://[^\s\"'<>]+$")
_DEFAULTS = UISettings()  # written once, in core/config.py


class UIError(Exception):
    """An action refused with a reason the person at the page can act on; nothing was written."""


class UIConfigError(ValueError):
    """A GRADIO_*, DAGSTER_WEBSERVER_URL or MLFLOW_UI_URL value the app cannot start with."""


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class UIConfig:
    """Where the app listens, who may log in, and where the Dagster and MLflow UIs are."""

    server_name: str = _DEFAULTS.server_name
    server_port: int = _DEFAULTS.server_port
    username: str = ""
    password: str = field(default="", repr=False)  # never in a log line or a traceback
    dagster_url: str = _DEFAULTS.dagster_url
    mlflow_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UIConfig:
        """Read GRADIO_SERVER_*, GRADIO_USERNAME/PASSWORD, DAGSTER_WEBSERVER_URL, MLFLOW_UI_URL."""
        try:
            ui, tracking = UISettings.from_env(env), TrackingSettings.from_env(env)
        except ConfigError as exc:
            raise UIConfigError(str(exc)) from None
        return cls(
            server_name=_host(ui.server_name),
            server_port=ui.server_port,
            username=ui.username,
            password=ui.password.get_secret_value(),
            dagster_url=ui.dagster_url,
            mlflow_url=tracking.ui_url,
        )

    def listening_on(self, host: str | None, port: int | None) -> UIConfig:
        """This config with the address and port a command line chose (None keeps them)."""
        return replace(self, server_name=host or self.server_name,
                       server_port=port or self.server_port)

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    @property
    def is_local(self) -> bool:
        return is_loopback(self.server_name)

    def check_listen(self) -> None:
        """Refuse a half-set login, and any address beyond this machine without a login."""
        if bool(self.username) != bool(self.password):
            missing = "GRADIO_PASSWORD" if self.username else "GRADIO_USERNAME"
            raise UIConfigError(f"{missing} is not set: set both GRADIO_USERNAME and "
                                "GRADIO_PASSWORD, or neither.")
        if not self.is_local and self.auth is None:
            raise UIConfigError(
                f"Refusing to listen on {self.server_name!r} without a login: anyone on the "
                "network could approve signals. Set GRADIO_USERNAME and GRADIO_PASSWORD, or "
                "GRADIO_SERVER_NAME=127.0.0.1 to stay on this machine."
            )
        if self.password and len(self.password) < MIN_PASSWORD_LENGTH:
            raise UIConfigError(  # the length only, never the password
                f"GRADIO_PASSWORD is {len(self.password)} characters long; use at least "
                f"{MIN_PASSWORD_LENGTH} (a passphrase of a few words will do).")


def _host(raw: str) -> str:
    """GRADIO_SERVER_NAME as the server binds it. Gradio 6 cannot serve on an IPv6 address
    (it builds its own URL without brackets and fails, with or without them, as "Cannot find
    empty port"), so such an address is refused here, in one line."""
    name = raw.strip()
    bare = name[1:-1].strip() if name.startswith("[") and name.endswith("]") else name
    try:
        ipv6 = ipaddress.ip_address(bare).version == 6
    except ValueError:
        ipv6 = False
    if ipv6:
        local = ipaddress.ip_address(bare).is_loopback
        raise UIConfigError(
            f"GRADIO_SERVER_NAME={name!r} is an IPv6 address, which the Gradio server cannot "
            f"listen on; use {'127.0.0.1' if local else '0.0.0.0 (every IPv4 interface)'} "
            "instead.")
    if any(ch.isspace() or ch in "[]/" for ch in name):
        raise UIConfigError(f"GRADIO_SERVER_NAME={name!r} is not a host name or address; use "
                            "e.g. 127.0.0.1 or 0.0.0.0.")
    return name


def is_loopback(server_name: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    name = server_name.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


# ------------------------------------------------------------------------- background runs


@dataclass
class Launch:
    """One "Run now": the symbols, when it started and ended, its Dagster runs or its error."""

    symbols: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    run_ids: list[str] = field(default_factory=list)
    success: bool | None = None
    error: str = ""

    @property
    def running(self) -> bool:
        return self.finished_at is None


def _default_materialize(symbols: list[str], instance: Any, resources: dict[str, Any]) -> Any:
    """The symbol pipeline through the runs layer: the daemon's queue (pools, limits) when a
    daemon runs, else in this process; either way a `symbol_pipeline` run tagged gradio."""
    from trading_assets.runs import launch_symbols

    return launch_symbols(symbols, instance=instance, resources=resources, launched_by="gradio")


class RunLauncher:
    """Materializes symbols in background threads so a click never blocks the page."""

    def __init__(self, materialize: Callable[[list[str], Any, dict[str, Any]], Any] | None = None
                 ) -> None:
        self._materialize = materialize or _default_materialize
        self._lock = threading.Lock()
        self._launches: list[Launch] = []
        self._threads: list[threading.Thread] = []
        self.version = 0  # bumped when a launch ends, so the page knows to refresh its tables

    def start(self, symbols: list[str], instance: Any, resources: dict[str, Any]) -> Launch:
        with self._lock:
            busy = [s for s in symbols for launch in self._launches
                    if launch.running and s in launch.symbols]
            if busy:
                raise UIError(f"{', '.join(busy)} already has a run in progress; wait for it "
                              "to finish.")
            launch = Launch(symbols=list(symbols), started_at=datetime.now(UTC))
            self._launches.append(launch)
            # Not a daemon: stopping the app waits for the run instead of leaving it
            # half-written and marked STARTED in Dagster forever.
            thread = threading.Thread(target=self._run, args=(launch, instance, resources),
                                      name=f"run-now-{'-'.join(symbols)}"[:60])
            self._threads.append(thread)
        thread.start()
        return launch

    def _run(self, launch: Launch, instance: Any, resources: dict[str, Any]) -> None:
        try:
            results = self._materialize(launch.symbols, instance, resources) or []
            run_ids = [r.run_id for r in results]
            success = all(r.success for r in results)
            failures = [f for r in results for f in getattr(r, "failures", [])]
            error = "" if success else (failures[0].splitlines()[0][:400] if failures
                                        else "a step failed; see the run in Dagster")
        except Exception as exc:  # the thread has no caller: the error goes to the page
            log.exception("Run now failed for %s", launch.symbols)
            run_ids, success, error = [], False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            launch.run_ids, launch.success, launch.error = run_ids, success, error
            launch.finished_at = datetime.now(UTC)
            self.version += 1

    def running_for(self, symbol: str) -> Launch | None:
        with self._lock:
            return next((x for x in reversed(self._launches)
                         if x.running and symbol in x.symbols), None)

    def recent(self, limit: int = 8) -> list[Launch]:
        with self._lock:
            return [replace(x) for x in reversed(self._launches[-limit:])]

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every launch (tests); True when none is still running."""
        for thread in list(self._threads):
            thread.join(timeout)
        return not any(x.running for x in self._launches)


@dataclass
class UIContext:
    """Everything the app's functions need; tests build one on test resources and instance."""

    resources: dict[str, Any]
    instance: Any
    config: UIConfig = field(default_factory=UIConfig)
    launcher: RunLauncher = field(default_factory=RunLauncher)

    @property
    def app_db(self) -> Any:
        return self.resources["app_db"]

    @property
    def store(self) -> Any:
        return self.resources["store"]

    @property
    def broker(self) -> Any:
        return self.resources["broker"]

    def dagster_run_url(self, run_id: str) -> str:
        return f"{self.config.dagster_url}/runs/{run_id}"

    def daemon(self) -> Any:
        """Whether the Dagster daemon heartbeats on this instance (health.Check): without it
        approvals wait for their orders, and sensors and the schedule do not run."""
        from trading_assets.health import daemon_check

        return daemon_check(self.instance)

    def dagster_ui_answers(self) -> bool:
        """Whether the Dagster UI answers at DAGSTER_WEBSERVER_URL (links only when it does)."""
        from trading_assets.health import webserver_answers

        return webserver_answers(self.config.dagster_url, timeout_s=1.0)

    @property
    def mlflow_url(self) -> str:
        """MLFLOW_UI_URL, else the tracking resource's UI address when it is an http(s) server;
        without the user:password a tracking URI may carry, since it ends up in the page."""
        tracking_ui = str(getattr(self.resources.get("tracking"), "ui_url", "") or "")
        fallback = tracking_ui.rstrip("/") if _HTTP_URL_RE.match(tracking_ui) \
            else ""
        return public_url(self.config.mlflow_url or fallback)

    def mlflow_run_url(self, run_id: str) -> str:
        # MLflow's UI resolves the experiment itself from a direct run link.
        return f"{self.mlflow_url}/#/runs/{run_id}" if self.mlflow_url else ""


