"""Resources from the environment: every variable has an embedded default, so nothing is required.

This is the one place that reads configuration; definitions.py, the CLI and the Gradio app all
build their resources here, so they always agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.broker import BROKER_KINDS, Broker
from resources.ibkr import IBKRResource
from resources.llm import LLMAnalyst
from resources.market_data import SOURCES, MarketData
from resources.object_store import ObjectStore
from resources.tracking import Tracking
from trading_assets.core.env import ConfigError, env_bool, env_number, referable

# ConfigError is defined in core.env (the resources raise it too); the CLI, the Gradio app and
# the tests import it from here.
__all__ = ["AutomationConfig", "ConfigError", "app_database_url", "automation_config",
           "build_ibkr", "build_resources", "data_dir", "review_app_url"]


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


def build_resources(env: Mapping[str, str] | None = None,
                    automation: AutomationConfig | None = None) -> dict[str, Any]:
    """All resources of the code location, configured from `env` (default: os.environ);
    `automation` is automation_config(env) when the caller has already built it."""
    env = os.environ if env is None else env
    data = data_dir(env)
    ibkr = build_ibkr(env)
    automation = automation_config(env) if automation is None else automation
    return {
        "market_data": MarketData(
            source=_choice(env, "TRADING_DATA_SOURCE", "simulated", SOURCES),
            csv_dir=env.get("TRADING_CSV_DIR", "") or str(data / "csv"),
            lookback_days=env_number(env, "TRADING_LOOKBACK_DAYS", 400, int),
            as_of=env.get("TRADING_SIMULATED_AS_OF", ""),
            ibkr=ibkr,
        ),
        "store": ObjectStore(
            root=env.get("TRADING_STORE_DIR", "") or str(data / "store"),
            endpoint=env.get("MINIO_ENDPOINT", ""),
            access_key=_secret(env, "MINIO_ACCESS_KEY"),
            secret_key=_secret(env, "MINIO_SECRET_KEY"),
            bucket=env.get("MINIO_BUCKET", "") or "trading",
            secure=env_bool(env, "MINIO_SECURE", False),
            region=env.get("MINIO_REGION", "") or "us-east-1",
            public_endpoint=env.get("MINIO_PUBLIC_ENDPOINT", ""),
        ),
        "app_db": AppDatabase(
            url=_secret(env, "APP_DATABASE_URL", app_database_url(env)),
        ),
        "broker": Broker(
            kind=_choice(env, "TRADING_BROKER", "paper", BROKER_KINDS),
            # docker-compose puts the PostgreSQL password in this URL.
            paper_database_url=_secret(env, "PAPER_BROKER_DATABASE_URL",
                                       f"sqlite:///{data / 'paper_broker.db'}"),
            starting_cash=env_number(env, "PAPER_STARTING_CASH", 100_000.0),
            slippage_bps=env_number(env, "PAPER_SLIPPAGE_BPS", 5.0),
            commission_per_share=env_number(env, "PAPER_COMMISSION_PER_SHARE", 0.005),
            allow_short=env_bool(env, "TRADING_ALLOW_SHORT", False),
            order_type=_choice(env, "TRADING_ORDER_TYPE", "mkt", ("mkt", "lmt", "bracket"))
            .upper(),
            max_signal_age_sessions=automation.approval_max_age_days,
            max_price_move_pct=automation.approval_max_move_pct,
            ibkr=ibkr,
        ),
        "analyst": LLMAnalyst.from_env(env),
        "tracking": Tracking.from_env(env, str(data)),
    }


@dataclass(frozen=True)
class AutomationConfig:
    """Schedule and sensor settings (trading_assets/automation.py); every field has a default."""

    schedule_cron: str = "30 16 * * 1-5"  # after the US close, Monday to Friday
    schedule_timezone: str = "America/New_York"
    max_symbols_per_run: int = 200
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
    if config.max_symbols_per_run < 1:
        raise ConfigError(f"TRADING_MAX_SYMBOLS_PER_RUN={config.max_symbols_per_run}: use 1 or "
                          "more.")
    if config.approval_max_age_days < 0 or config.signal_max_age_days < 0:
        raise ConfigError("TRADING_APPROVAL_MAX_AGE_DAYS and TRADING_SIGNAL_MAX_AGE_DAYS are "
                          "trading days: use 0 or more.")
    if config.approval_max_move_pct <= 0:
        raise ConfigError(f"TRADING_APPROVAL_MAX_MOVE_PCT={config.approval_max_move_pct}: use a "
                          "percentage above 0, e.g. 3.")
    if config.alert_webhook_url and not config.alert_webhook_url.startswith(("http://",
                                                                              "https://")):
        raise ConfigError("ALERT_WEBHOOK_URL must start with http:// or https://.")
    return config
