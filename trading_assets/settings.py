"""Resources from the environment: every variable has an embedded default, so nothing is required.

This is the one place that reads configuration; definitions.py, the CLI and the Gradio app all
build their resources here, so they always agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from resources.analysts import analyst_from_env
from resources.app_db import AppDatabase
from resources.broker import BROKER_KINDS, Broker, IBKRBroker
from resources.ibkr import IBKRResource
from resources.market_data import (
    SOURCES,
    CsvMarketData,
    IbkrMarketData,
    MarketData,
    SimulatedMarketData,
    UrlMarketData,
    check_url_template,
)
from resources.object_store import ObjectStore
from resources.policy import PolicyResource
from resources.tracking import Tracking
from trading_assets.core.bars import csv_column_map
from trading_assets.core.env import ConfigError, env_bool, env_date, env_number, referable
from trading_assets.core.policy import TradingPolicy

# ConfigError is defined in core.env (the resources raise it too); the CLI, the Gradio app and
# the tests import it from here.
__all__ = ["AutomationConfig", "ConfigError", "app_database_url", "automation_config",
           "build_broker", "build_ibkr", "build_market_data", "build_resources", "check_start",
           "dagster_webserver_url", "data_dir", "review_app_url", "trading_policy"]


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(choices)}.")
    return value


def _secret(env: Mapping[str, str], name: str, default: str = "") -> Any:
    """An EnvVar reference when set from the process environment (the Dagster UI shows the
    name, never the value: keys, passwords inside URLs), else the value or `default`; the
    resources read such fields through core.env.plain."""
    if referable(env, name):
        return dg.EnvVar(name)
    return env.get(name, "") or default


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded defaults keep their files (TRADING_DATA_DIR, default ./data)."""
    env = os.environ if env is None else env
    return Path(env.get("TRADING_DATA_DIR", "") or "data").resolve()


def app_database_url(env: Mapping[str, str] | None = None) -> str:
    """APP_DATABASE_URL (PostgreSQL in production), else a SQLite file in the data directory."""
    env = os.environ if env is None else env
    return env.get("APP_DATABASE_URL", "") or f"sqlite:///{data_dir(env) / 'app.db'}"


def review_app_url(env: Mapping[str, str] | None = None) -> str:
    """GRADIO_PUBLIC_URL: where people open the Gradio review app, for links in the Dagster UI;
    "" when unset. Only an http(s) address without a user:password is accepted."""
    env = os.environ if env is None else env
    value = env.get("GRADIO_PUBLIC_URL", "").strip().rstrip("/")
    if value and (not re.match(r"^https?://[^\s\"'<>@]+$", value)):
        # The value is not echoed: it may hold a password.
        raise ConfigError("GRADIO_PUBLIC_URL is not an http(s) URL without credentials; set it "
                          "to where a browser opens the review app, e.g. https://review.example.com.")
    return value


def dagster_webserver_url(env: Mapping[str, str] | None = None) -> str:
    """DAGSTER_WEBSERVER_URL: where a browser opens the Dagster UI (links in the app, the
    `status` probe); default http://localhost:<DAGSTER_PORT, else 3000>."""
    env = os.environ if env is None else env
    value = env.get("DAGSTER_WEBSERVER_URL", "").strip().rstrip("/")
    if not value:
        return f"http://localhost:{env_number(env, 'DAGSTER_PORT', 3000, int)}"
    if not re.match(r"^https?://[^\s\"'<>]+$", value):
        raise ConfigError(f"DAGSTER_WEBSERVER_URL={value!r} is not an http(s) URL, e.g. "
                          "http://localhost:3000.")
    return value


def build_ibkr(env: Mapping[str, str]) -> IBKRResource:
    return IBKRResource(
        host=env.get("IBKR_HOST", "") or "127.0.0.1",
        port=env_number(env, "IBKR_PORT", 4002, int),
        client_id=env_number(env, "IBKR_CLIENT_ID", 17, int),
        account=env.get("IBKR_ACCOUNT", ""),
        readonly=env_bool(env, "IBKR_READONLY", False),
        live=env_bool(env, "TRADING_LIVE", False),
        connect_timeout=env_number(env, "IBKR_CONNECT_TIMEOUT", 10.0),
        request_timeout=env_number(env, "IBKR_REQUEST_TIMEOUT", 30.0),
        allow_delayed_data=env_bool(env, "IBKR_ALLOW_DELAYED_DATA", False),
        order_timeout=env_number(env, "IBKR_ORDER_TIMEOUT", 15.0),
    )


def build_market_data(env: Mapping[str, str], ibkr: IBKRResource) -> MarketData:
    """The one market-data class TRADING_DATA_SOURCE names, configured from `env`."""
    source = _choice(env, "TRADING_DATA_SOURCE", "simulated", SOURCES)
    lookback = env_number(env, "TRADING_LOOKBACK_DAYS", 400, int)
    columns = env.get("TRADING_CSV_COLUMNS", "").strip()
    if source in ("csv", "url"):
        try:
            csv_column_map(columns)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if source == "csv":
        return CsvMarketData(lookback_days=lookback, columns=columns,
                             csv_dir=env.get("TRADING_CSV_DIR", "") or str(data_dir(env) / "csv"))
    if source == "url":
        template = env.get("TRADING_CSV_URL", "").strip()
        try:
            check_url_template(template)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # An EnvVar reference when it can be (the template may carry an API key in its query,
        # and the Dagster UI shows plain resource config).
        return UrlMarketData(lookback_days=lookback, columns=columns,
                             url_template=_secret(env, "TRADING_CSV_URL", template),
                             timeout_s=env_number(env, "TRADING_CSV_TIMEOUT_S", 30.0))
    if source == "ibkr":
        return IbkrMarketData(lookback_days=lookback, ibkr=ibkr)
    as_of = env_date(env, "TRADING_SIMULATED_AS_OF")
    return SimulatedMarketData(lookback_days=lookback, as_of=as_of.isoformat() if as_of else "")


def build_resources(env: Mapping[str, str] | None = None,
                    automation: AutomationConfig | None = None) -> dict[str, Any]:
    """All resources of the code location, configured from `env` (default: os.environ);
    `automation` is automation_config(env) when the caller has already built it."""
    env = os.environ if env is None else env
    data = data_dir(env)
    ibkr = build_ibkr(env)
    automation = automation_config(env) if automation is None else automation
    return {
        "market_data": build_market_data(env, ibkr),
        "store": ObjectStore(
            root=env.get("TRADING_STORE_DIR", "") or str(data / "store"),
            endpoint=env.get("MINIO_ENDPOINT", ""),
            access_key=_secret(env, "MINIO_ACCESS_KEY"),
            secret_key=_secret(env, "MINIO_SECRET_KEY"),
            bucket=env.get("MINIO_BUCKET", "") or "trading",
            secure=env_bool(env, "MINIO_SECURE", False),
            region=env.get("MINIO_REGION", "") or "us-east-1",
            public_endpoint=env.get("MINIO_PUBLIC_ENDPOINT", ""),
            connect_timeout_s=env_number(env, "MINIO_CONNECT_TIMEOUT_S", 5.0),
            read_timeout_s=env_number(env, "MINIO_READ_TIMEOUT_S", 10.0),
            retries=env_number(env, "MINIO_RETRIES", 1, int),
        ),
        "app_db": AppDatabase(
            url=_secret(env, "APP_DATABASE_URL", app_database_url(env)),
        ),
        "broker": build_broker(env, data, ibkr),
        "policy": PolicyResource(**asdict(trading_policy(env, automation))),
        "analyst": analyst_from_env(env),
        "tracking": Tracking.from_env(env, str(data)),
    }


def build_broker(env: Mapping[str, str], data: Path, ibkr: IBKRResource) -> Broker:
    """The broker class TRADING_BROKER picks: PaperBroker (default) or IBKRBroker."""
    from resources.paper_broker import PaperBroker

    common: dict[str, Any] = {
        "allow_short": env_bool(env, "TRADING_ALLOW_SHORT", False),
        "order_type": _choice(env, "TRADING_ORDER_TYPE", "bracket",
                              ("bracket", "lmt", "mkt")).upper(),
        # Fill costs the paper broker charges and sizing reserves (estimates for IBKR).
        "slippage_bps": env_number(env, "PAPER_SLIPPAGE_BPS", 5.0),
        "commission_per_share": env_number(env, "PAPER_COMMISSION_PER_SHARE", 0.005),
    }
    if _choice(env, "TRADING_BROKER", "paper", BROKER_KINDS) == "ibkr":
        return IBKRBroker(ibkr=ibkr, **common)
    return PaperBroker(
        # docker-compose puts the PostgreSQL password in this URL.
        paper_database_url=_secret(env, "PAPER_BROKER_DATABASE_URL",
                                   f"sqlite:///{data / 'paper_broker.db'}"),
        starting_cash=env_number(env, "PAPER_STARTING_CASH", 100_000.0),
        **common,
    )


def trading_policy(env: Mapping[str, str] | None = None,
                   config: AutomationConfig | None = None) -> TradingPolicy:
    """The approval and sizing policy (core/policy.py) the orders asset, the sensor and the app
    share, from `env` (default: os.environ)."""
    env = os.environ if env is None else env
    config = automation_config(env) if config is None else config
    defaults = TradingPolicy()
    numbers = {  # field: (variable, kind); ranges are the registry's (core/settings_registry.py)
        "cash_buffer_pct": ("TRADING_CASH_BUFFER_PCT", float),
        "reconcile_grace_s": ("TRADING_RECONCILE_GRACE_S", float),
        "max_entry_deviation_pct": ("TRADING_MAX_ENTRY_DEVIATION_PCT", float),
        "max_stop_distance_pct": ("TRADING_MAX_STOP_DISTANCE_PCT", float),
        "max_target_distance_pct": ("TRADING_MAX_TARGET_DISTANCE_PCT", float),
        "max_order_notional": ("TRADING_MAX_ORDER_NOTIONAL", float),
        "max_order_shares": ("TRADING_MAX_ORDER_SHARES", int),
        "max_account_exposure_pct": ("TRADING_MAX_ACCOUNT_EXPOSURE_PCT", float),
        "entry_days": ("TRADING_ENTRY_DAYS", int),
    }
    return TradingPolicy(
        approval_max_age_days=config.approval_max_age_days,
        approval_max_move_pct=config.approval_max_move_pct,
        **{name: env_number(env, variable, getattr(defaults, name), kind)
           for name, (variable, kind) in numbers.items()},
    )


@dataclass(frozen=True)
class AutomationConfig:
    """Schedule and sensor settings (trading_assets/automation/); every field has a default."""

    schedule_cron: str = "30 16 * * 1-5"  # after the US close, Monday to Friday
    schedule_timezone: str = "America/New_York"
    max_symbols_per_run: int = 200
    # How long a launcher waits for the daemon while none of its runs runs or ends (runs.py).
    queue_wait_s: float = 300.0
    approval_max_age_days: int = 1  # trading days behind before an approval is expired
    approval_max_move_pct: float = 3.0  # price move since the signal that expires an approval
    signal_max_age_days: int = 1  # trading days behind before a symbol is flagged as stale
    running: bool = True  # schedules and sensors start running with the code location
    # A webhook URL often carries a token (Slack, Teams): never printed, logged or repr'd.
    alert_webhook_url: str = field(default="", repr=False)
    alert_timeout_s: float = 5.0


def automation_config(env: Mapping[str, str] | None = None) -> AutomationConfig:
    """The automation settings from `env` (default: os.environ), validated with clear errors."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from dagster._utils.schedules import is_valid_cron_string

    env = os.environ if env is None else env
    defaults = AutomationConfig()
    cron = env.get("TRADING_SCHEDULE_CRON", "").strip() or defaults.schedule_cron
    if not is_valid_cron_string(cron):
        raise ConfigError(f"TRADING_SCHEDULE_CRON={cron!r} is not a cron expression; e.g. "
                          f"{defaults.schedule_cron!r} (16:30 Monday to Friday).")
    timezone = env.get("TRADING_SCHEDULE_TZ", "").strip() or defaults.schedule_timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"TRADING_SCHEDULE_TZ={timezone!r} is not an IANA time zone; e.g. "
                          "America/New_York.") from exc
    config = AutomationConfig(
        schedule_cron=cron,
        schedule_timezone=timezone,
        max_symbols_per_run=env_number(env, "TRADING_MAX_SYMBOLS_PER_RUN",
                                       defaults.max_symbols_per_run, int),
        queue_wait_s=env_number(env, "TRADING_QUEUE_WAIT_S", defaults.queue_wait_s),
        approval_max_age_days=env_number(env, "TRADING_APPROVAL_MAX_AGE_DAYS",
                                         defaults.approval_max_age_days, int),
        approval_max_move_pct=env_number(env, "TRADING_APPROVAL_MAX_MOVE_PCT",
                                         defaults.approval_max_move_pct),
        signal_max_age_days=env_number(env, "TRADING_SIGNAL_MAX_AGE_DAYS",
                                       defaults.signal_max_age_days, int),
        running=env_bool(env, "TRADING_AUTOMATION_RUNNING", defaults.running),
        alert_webhook_url=env.get("ALERT_WEBHOOK_URL", "").strip(),
        alert_timeout_s=env_number(env, "ALERT_WEBHOOK_TIMEOUT", defaults.alert_timeout_s),
    )
    # Number ranges are the registry's (core/settings_registry.py), checked by env_number.
    if config.alert_webhook_url and not config.alert_webhook_url.startswith(("http://",
                                                                              "https://")):
        raise ConfigError("ALERT_WEBHOOK_URL must start with http:// or https://.")
    return config


def check_start(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resources, once the data folder is writable and each configured outside system
    answers: the CLI and the Gradio app call this at start so that a bad setting is one line
    naming it (ConfigError), not a traceback at first use."""
    import socket
    import tempfile

    from sqlalchemy.engine import make_url

    from resources.migrations import SchemaMigrationError
    from resources.object_store import ObjectStoreError, split_endpoint
    from trading_assets.core.env import plain

    env = os.environ if env is None else env
    resources = build_resources(env)
    folder = data_dir(env)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"TRADING_DATA_DIR={str(folder)!r} is not a folder this user can "
                          f"write ({exc.strerror or exc}): choose another or fix its "
                          "permissions.") from None
    url = plain(resources["app_db"].url)
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (SQLAlchemy raises ArgumentError and ValueError alike)
        raise ConfigError("APP_DATABASE_URL is not a database URL: use e.g. "
                          "postgresql://user:password@host:5432/trading, or unset it for "
                          "SQLite.") from None
    try:
        resources["app_db"].engine.connect().close()
    except SchemaMigrationError as exc:  # already says what to check
        raise ConfigError(f"APP_DATABASE_URL: {exc}") from None
    except Exception as exc:  # noqa: BLE001 (driver errors differ per database)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"APP_DATABASE_URL: cannot open {shown} ({reason}). Check that the "
                          "server runs and the host, port, database, user and password.") from None
    store = resources["store"]
    if not store.is_local:
        host_port, secure = split_endpoint(store.endpoint, store.secure)
        host, _, port = host_port.rpartition(":")
        try:
            default_port = 443 if secure else 80
            socket.create_connection((host or host_port, int(port or default_port)),
                                     timeout=5).close()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"MINIO_ENDPOINT={store.endpoint!r}: nothing answers there "
                              f"({getattr(exc, 'strerror', None) or exc}). Check that MinIO runs "
                              "and the host:port.") from None
        try:
            store.check()  # answers as S3: the bucket exists (or is created) and lists
        except ObjectStoreError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith("MINIO_")
                              else f"MINIO_ENDPOINT: {text}") from None
    check_ibkr_versions(resources)
    return resources


def check_ibkr_versions(resources: Mapping[str, Any]) -> None:
    """When market data or the broker is IBKR: connect once and log the API server version the
    gateway agreed on. A gateway that shares no version with ib_async is a ConfigError (a
    library or gateway upgrade, docs/ibkr.md "IBKR compatibility"); a gateway that is down is left
    to the commands that need it, since IB Gateway restarts daily."""
    import logging

    from resources.ibkr import IBKRError, IBKRVersionError, disconnect_all

    market, broker = resources["market_data"], resources["broker"]
    ibkr = (market.ibkr if market.source == "ibkr"
            else broker.ibkr if broker.kind == "ibkr" else None)
    if ibkr is None:
        return
    log = logging.getLogger(__name__)
    try:
        handshake = ibkr.handshake()
    except IBKRVersionError as exc:
        raise ConfigError(str(exc)) from None
    except IBKRError as exc:
        log.warning("IBKR not checked at start: %s", exc)
        return
    finally:
        # The probe's session closes: an idle one would hold the client id while the app
        # connects from its worker threads; a command reconnects where it needs IBKR.
        disconnect_all()
    log.info("IBKR gateway at %s:%d: %s", ibkr.host, ibkr.port, handshake.describe())
