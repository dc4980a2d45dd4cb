"""Resources from the environment: every variable has an embedded default, so nothing is required.

This is the one place that turns configuration into resources; the variables themselves (type,
default, range, help) are the models of trading_assets/core/config.py. definitions.py, the CLI
and the Gradio app all build their resources here, so they always agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import SecretStr

from resources.analysts import analyst_from_env
from resources.app_db import AppDatabase
from resources.broker import Broker, IBKRBroker
from resources.ibkr import IBKRResource
from resources.market_data import (
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
from trading_assets.core.config import (
    AutomationSettings,
    BrokerSettings,
    ConfigError,
    IBKRSettings,
    MarketDataSettings,
    StorageSettings,
    UISettings,
    referable,
)
from trading_assets.core.policy import TradingPolicy

# ConfigError is defined in core.config (the resources raise it too); the CLI, the Gradio app
# and the tests import it from here.
__all__ = ["ConfigError", "automation_config", "build_resources", "check_start",
           "dagster_webserver_url", "review_app_url"]


def _secret(env: Mapping[str, str], name: str, value: str | SecretStr) -> Any:
    """An EnvVar reference when `name` is set from the process environment (the Dagster UI
    shows the name, never the value: keys, passwords inside URLs), else the value; the
    resources read such fields through core.config.plain."""
    if referable(env, name):
        return dg.EnvVar(name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def review_app_url(env: Mapping[str, str] | None = None) -> str:
    """GRADIO_PUBLIC_URL: where people open the Gradio review app, for links in the Dagster UI;
    "" when unset."""
    return UISettings.from_env(env).public_url


def dagster_webserver_url(env: Mapping[str, str] | None = None) -> str:
    """DAGSTER_WEBSERVER_URL: where a browser opens the Dagster UI (links in the app, the
    `status` probe); default http://localhost:<DAGSTER_PORT>."""
    return UISettings.from_env(env).dagster_url


def _market_data(env: Mapping[str, str], data: MarketDataSettings, storage: StorageSettings,
                 ibkr: IBKRResource) -> MarketData:
    """The one market-data class TRADING_DATA_SOURCE names."""
    if data.source in ("csv", "url"):
        try:
            csv_column_map(data.csv_columns)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if data.source == "csv":
        return CsvMarketData(lookback_days=data.lookback_days, columns=data.csv_columns,
                             csv_dir=data.csv_dir or str(storage.data_path / "csv"))
    if data.source == "url":
        try:
            check_url_template(data.csv_url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # An EnvVar reference when it can be (the template may carry an API key in its query,
        # and the Dagster UI shows plain resource config).
        return UrlMarketData(lookback_days=data.lookback_days, columns=data.csv_columns,
                             url_template=_secret(env, "TRADING_CSV_URL", data.csv_url),
                             timeout_s=data.csv_timeout_s)
    if data.source == "ibkr":
        return IbkrMarketData(lookback_days=data.lookback_days, ibkr=ibkr)
    as_of = data.simulated_as_of
    return SimulatedMarketData(lookback_days=data.lookback_days,
                               as_of=as_of.isoformat() if as_of else "")


def _broker(env: Mapping[str, str], broker: BrokerSettings, storage: StorageSettings,
            ibkr: IBKRResource) -> Broker:
    """The broker class TRADING_BROKER picks: PaperBroker (default) or IBKRBroker."""
    from resources.paper_broker import PaperBroker

    common: dict[str, Any] = {
        "allow_short": broker.allow_short,
        "order_type": broker.order_type.upper(),
        # Fill costs the paper broker charges and sizing reserves (estimates for IBKR).
        "slippage_bps": broker.slippage_bps,
        "commission_per_share": broker.commission_per_share,
    }
    if broker.broker == "ibkr":
        return IBKRBroker(ibkr=ibkr, **common)
    return PaperBroker(
        # docker-compose puts the PostgreSQL password in this URL.
        paper_database_url=_secret(env, "PAPER_BROKER_DATABASE_URL",
                                   broker.paper_database_url.get_secret_value()
                                   or f"sqlite:///{storage.data_path / 'paper_broker.db'}"),
        starting_cash=broker.starting_cash,
        **common,
    )


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """All resources of the code location, configured from `env` (default: os.environ). The
    automation settings are checked too, so a bad one stops a start, not a later launch."""
    env = os.environ if env is None else env
    automation_config(env)
    storage = StorageSettings.from_env(env)
    broker = BrokerSettings.from_env(env)
    ibkr = IBKRResource(**IBKRSettings.from_env(env).model_dump(), live=broker.live)
    data = storage.data_path
    return {
        "market_data": _market_data(env, MarketDataSettings.from_env(env), storage, ibkr),
        "store": ObjectStore(
            root=storage.store_dir or str(data / "store"),
            endpoint=storage.minio_endpoint,
            access_key=_secret(env, "MINIO_ACCESS_KEY", storage.minio_access_key),
            secret_key=_secret(env, "MINIO_SECRET_KEY", storage.minio_secret_key),
            bucket=storage.minio_bucket,
            secure=storage.minio_secure,
            region=storage.minio_region,
            public_endpoint=storage.minio_public_endpoint,
            connect_timeout_s=storage.minio_connect_timeout_s,
            read_timeout_s=storage.minio_read_timeout_s,
            retries=storage.minio_retries,
        ),
        "app_db": AppDatabase(url=_secret(env, "APP_DATABASE_URL", storage.app_database)),
        "broker": _broker(env, broker, storage, ibkr),
        "policy": PolicyResource(**TradingPolicy.from_env(env).model_dump()),
        "analyst": analyst_from_env(env),
        "tracking": Tracking.from_env(env, str(data)),
    }


def automation_config(env: Mapping[str, str] | None = None) -> AutomationSettings:
    """The automation settings from `env` (default: os.environ), the cron expression checked
    with Dagster's own parser."""
    from dagster._utils.schedules import is_valid_cron_string

    config = AutomationSettings.from_env(env)
    if not is_valid_cron_string(config.schedule_cron):
        default = AutomationSettings().schedule_cron
        raise ConfigError(f"TRADING_SCHEDULE_CRON={config.schedule_cron!r} is not a cron "
                          f"expression; e.g. {default!r} (16:30 Monday to Friday).")
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
    from trading_assets.core.config import plain

    env = os.environ if env is None else env
    resources = build_resources(env)
    folder = StorageSettings.from_env(env).data_path
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
