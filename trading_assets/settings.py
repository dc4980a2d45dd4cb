"""Resources from the environment: every variable has an embedded default, so nothing is required.

This is the one place that reads configuration; definitions.py, the CLI and the Gradio app all
build their resources here, so they always agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.broker import Broker
from resources.ibkr import IBKRResource
from resources.llm import LLMAnalyst
from resources.market_data import MarketData
from resources.object_store import ObjectStore
from resources.tracking import Tracking


class ConfigError(ValueError):
    """An environment variable with a value that cannot be used."""


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number.") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number.") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: use 1/0, true/false, yes/no or on/off.")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(choices)}.")
    return value


def _secret(env: Mapping[str, str], name: str) -> Any:
    """An EnvVar reference when set (the Dagster UI shows the name, never the value)."""
    return dg.EnvVar(name) if env.get(name) else ""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded defaults keep their files (TRADING_DATA_DIR, default ./data)."""
    env = os.environ if env is None else env
    return Path(env.get("TRADING_DATA_DIR", "") or "data").resolve()


def build_ibkr(env: Mapping[str, str]) -> IBKRResource:
    return IBKRResource(
        host=env.get("IBKR_HOST", "") or "127.0.0.1",
        port=_int(env, "IBKR_PORT", 4002),
        client_id=_int(env, "IBKR_CLIENT_ID", 17),
        account=env.get("IBKR_ACCOUNT", ""),
        readonly=_bool(env, "IBKR_READONLY", False),
        live=_bool(env, "TRADING_LIVE", False),
        connect_timeout=_float(env, "IBKR_CONNECT_TIMEOUT", 10.0),
        request_timeout=_float(env, "IBKR_REQUEST_TIMEOUT", 30.0),
        allow_delayed_data=_bool(env, "IBKR_ALLOW_DELAYED_DATA", False),
    )


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """All resources of the code location, configured from `env` (default: os.environ)."""
    env = os.environ if env is None else env
    data = data_dir(env)
    ibkr = build_ibkr(env)
    return {
        "market_data": MarketData(
            source=_choice(env, "TRADING_DATA_SOURCE", "simulated", ("simulated", "csv", "ibkr")),
            csv_dir=env.get("TRADING_CSV_DIR", "") or str(data / "csv"),
            lookback_days=_int(env, "TRADING_LOOKBACK_DAYS", 400),
            as_of=env.get("TRADING_SIMULATED_AS_OF", ""),
            ibkr=ibkr,
        ),
        "store": ObjectStore(
            root=env.get("TRADING_STORE_DIR", "") or str(data / "store"),
            endpoint=env.get("MINIO_ENDPOINT", ""),
            access_key=_secret(env, "MINIO_ACCESS_KEY"),
            secret_key=_secret(env, "MINIO_SECRET_KEY"),
            bucket=env.get("MINIO_BUCKET", "") or "trading",
            secure=_bool(env, "MINIO_SECURE", False),
        ),
        "app_db": AppDatabase(
            url=env.get("APP_DATABASE_URL", "") or f"sqlite:///{data / 'app.db'}",
        ),
        "broker": Broker(
            kind=_choice(env, "TRADING_BROKER", "paper", ("paper", "ibkr")),
            paper_database_url=env.get("PAPER_BROKER_DATABASE_URL", "")
            or f"sqlite:///{data / 'paper_broker.db'}",
            starting_cash=_float(env, "PAPER_STARTING_CASH", 100_000.0),
            slippage_bps=_float(env, "PAPER_SLIPPAGE_BPS", 5.0),
            commission_per_share=_float(env, "PAPER_COMMISSION_PER_SHARE", 0.005),
            allow_short=_bool(env, "TRADING_ALLOW_SHORT", False),
            order_type=_choice(env, "TRADING_ORDER_TYPE", "mkt", ("mkt", "lmt", "bracket"))
            .upper(),
            ibkr=ibkr,
        ),
        "analyst": LLMAnalyst.from_env(env),
        "tracking": Tracking.from_env(env, str(data)),
    }
