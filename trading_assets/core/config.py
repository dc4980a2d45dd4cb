"""Every environment variable trading-signals reads, as typed pydantic-settings models.

One model per concern. Each field is one variable (its alias): its type, default, range or
choices and its help are written here once; `.env.example` and the configuration table
(docs/configuration.md) are generated from these models (trading_assets/settings_docs.py,
checked by a test).

`Model.from_env(env)` reads a model from a mapping (the process environment by default): a
blank value is the default, values are stripped, names are case-sensitive, and a bad value is
one ConfigError line naming the variable, the value and what is allowed. Constructing a model
directly (`TradingPolicy(cash_buffer_pct=1)`) reads no environment at all.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from annotated_types import Ge, Gt, Le
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from trading_assets.core.exchanges import CACHE_MODES


class ConfigError(ValueError):
    """An environment variable with a value that cannot be used."""


def plain(value: str) -> str:
    """A setting's value. A Dagster EnvVar is a str holding the variable's NAME: Dagster
    resolves it for a run, but the CLI and the Gradio app use resources directly, so every
    field that may hold one is read through this (duck-typed: core imports no Dagster)."""
    resolve = getattr(value, "get_value", None)
    return (resolve() or "") if callable(resolve) else value


def referable(env: Mapping[str, str], name: str) -> bool:
    """Whether a setting can go into resource config as a Dagster EnvVar reference (shown by
    name in the Dagster UI, never by value): `env` sets it to what the process environment
    holds, so resolving the reference gives back this very value. A mapping that differs
    (a test's or a benchmark's environment) keeps the plain value."""
    value = env.get(name, "")
    return bool(value) and os.environ.get(name) == value


# ------------------------------------------------------------------------------ field kinds


def _lower(value: Any) -> Any:
    return value.lower().replace("-", "_") if isinstance(value, str) else value


def _none_word(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() in ("none", "default") else value


# Choices are case-insensitive ("CSV", "in-process"); LLM_TEMPERATURE=none is the endpoint's own.
Lower = BeforeValidator(_lower)
NoneWord = BeforeValidator(_none_word)
URL = {"url": True}  # a URL that may carry a user:password (redacted like a secret's)
PORT = {"port": True}
SHOWN = {"active": True}  # an uncommented line in .env.example (docker compose needs it)
_SECONDS = {"gt": 0, "le": 3600}


def setting(name: str, default: Any, help: str, extra: dict[str, Any] | None = None,
            **limits: Any) -> Any:
    """A field read from the variable `name`, with its default, help and limits (ge/gt/le)."""
    return Field(default, alias=name, description=help, json_schema_extra=extra, **limits)


def port_setting(name: str, default: int, help: str) -> Any:
    return setting(name, default, help, PORT, ge=1, le=65535)


def resource_field(model: type[BaseSettings], name: str) -> Any:
    """A resource config field with a setting's default and help, so neither is written twice."""
    field = model.model_fields[name]
    return Field(default=field.default, description=f"{field.description} ({field.alias})")


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        stripped = {k: v.strip() for k, v in self._env.items() if isinstance(v, str)}
        return parse_env_vars(stripped, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


class Settings(BaseSettings):
    """The base of every settings model: read only through from_env, frozen, by alias or name."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, frozen=True,
                                      extra="ignore", validate_by_name=True,
                                      validate_by_alias=True, allow_inf_nan=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **sources: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: from_env passes its mapping, a test its values.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """This model from `env` (default: os.environ); a bad value is a one-line ConfigError."""
        env = os.environ if env is None else env
        try:
            return cls(**_MappingSource(cls, env)())
        except ValidationError as exc:
            raise ConfigError(refusal(cls, exc.errors(include_url=False)[0])) from None


def _shown(value: Any) -> str:
    """A default as it is written in an environment file."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    return "" if value is None else str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e10 else f"{value:g}"


def range_text(field: Any) -> str:
    """A field's numeric range in words ("at least 1 and at most 65535"), "" when it has none."""
    low = high = ""
    for limit in field.metadata:
        if isinstance(limit, Ge):
            low = f"at least {_number(limit.ge)}"
        elif isinstance(limit, Gt):
            low = f"above {_number(limit.gt)}"
        elif isinstance(limit, Le):
            high = f"at most {_number(limit.le)}"
    return " and ".join(part for part in (low, high) if part)


def choices(field: Any) -> tuple[str, ...]:
    """A Literal field's choices (the blank one, "unset", left out), () for other fields."""
    annotation = field.annotation
    for arg in (annotation, *get_args(annotation)):
        values = get_args(arg) if getattr(arg, "__origin__", None) is Literal else ()
        if values:
            return tuple(v for v in values if v)
    return ()


def refusal(model: type[Settings], error: Any) -> str:
    """The one-line message for a pydantic error on one of `model`'s variables."""
    name = str(error["loc"][0]) if error["loc"] else model.__name__
    field = next((f for f in model.model_fields.values() if f.alias == name), None)
    raw = error.get("input")
    if field is None or not isinstance(raw, str):  # a model-level check: its own message
        return str(error.get("ctx", {}).get("error") or error["msg"])
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    default = f"unset it for the default {_shown(field.default) or '(empty)'}."
    kind = error["type"]
    if kind == "finite_number":
        return f"{name}={raw!r} must be a finite number; {default}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        port_note = " (not a port number)" if extra.get("port") else ""
        return f"{name}={raw!r} must be {range_text(field)}{port_note}; {default}"
    if kind.startswith("int_") and extra.get("port"):
        return f"{name}={raw!r} is not a port number (1-65535); {default}"
    if kind.startswith("int_"):
        return f"{name}={raw!r} is not a whole number; {default}"
    if kind.startswith("float_"):
        return f"{name}={raw!r} is not a number; {default}"
    if kind.startswith("bool_"):
        return (f"{name}={raw!r} is not a yes/no value: use 1/0, true/false, yes/no or "
                "on/off.")
    if kind.startswith("date_"):
        return (f"{name}={raw!r} is not a date: use YYYY-MM-DD such as 2026-11-20, or "
                "unset it.")
    if kind == "literal_error":
        return (f"{name}={_lower(raw)!r} is unknown; choose one of {', '.join(choices(field))}"
                " (or unset it).")
    return str(error.get("ctx", {}).get("error") or f"{name}: {error['msg']}")


def _http_url(name: str, value: str, example: str, credentials: bool = True) -> str:
    """`value` without a trailing slash when it is an http(s) URL; else a one-line refusal.
    With credentials=False a user:password@ is refused too, and the value is not echoed."""
    value = value.rstrip("/")
    allowed = r"[^\s\"'<>]+" if credentials else r"[^\s\"'<>@]+"
    if value and not re.match(rf"^https?://{allowed}$", value):
        if not credentials:
            raise ValueError(f"{name} is not an http(s) URL without credentials; set it to "
                             f"where a browser opens it, e.g. {example}.")
        raise ValueError(f"{name}={value!r} is not an http(s) URL, e.g. {example}.")
    return value


# --------------------------------------------------------------------------------- the models

DataSource = Literal["simulated", "csv", "url", "ibkr"]
BrokerKind = Literal["paper", "ibkr"]
OrderTypeName = Literal["bracket", "lmt", "mkt"]
Executor = Literal["in_process", "multiprocess", "celery"]
Provider = Literal["", "rules", "openai"]
LLMMode = Literal["tools", "json", "json_schema", "md_json"]
CacheMode = Literal[("", *CACHE_MODES)]  # type: ignore[valid-type]


class StorageSettings(Settings):
    """Data directory, object store and application tables."""

    data_dir: str = setting("TRADING_DATA_DIR", "./data",
                            "Where the embedded defaults keep their files (SQLite databases, "
                            "the store folder, the MLflow store).")
    store_dir: str = setting("TRADING_STORE_DIR", "",
                             "Local folder of charts, parquet data and transcripts; empty = "
                             "TRADING_DATA_DIR/store.")
    minio_endpoint: str = setting("MINIO_ENDPOINT", "",
                                  "host:port of MinIO or any S3 API (docker compose: "
                                  "minio:9000); empty = the local folder.")
    minio_secure: bool = setting("MINIO_SECURE", False, "Use https for MinIO.")
    minio_bucket: str = setting("MINIO_BUCKET", "trading",
                                "Bucket of charts, data and transcripts.")
    minio_region: str = setting("MINIO_REGION", "us-east-1", "S3 region.")
    minio_public_endpoint: str = setting(
        "MINIO_PUBLIC_ENDPOINT", "", "Where a browser reaches MinIO when that differs from "
        "MINIO_ENDPOINT (presigned links), e.g. http://localhost:9000.", URL)
    minio_connect_timeout_s: float = setting("MINIO_CONNECT_TIMEOUT_S", 5.0,
                                             "Seconds to open a connection to MinIO.",
                                             gt=0, le=300)
    minio_read_timeout_s: float = setting(
        "MINIO_READ_TIMEOUT_S", 10.0, "Seconds MinIO may take to answer a request: a store "
        "that accepts connections but never answers fails an operation after "
        "(1 + MINIO_RETRIES) x MINIO_READ_TIMEOUT_S (20 s), and the step stops there.",
        gt=0, le=600)
    minio_retries: int = setting("MINIO_RETRIES", 1,
                                 "Retries of a MinIO request that failed or timed out.",
                                 ge=0, le=10)
    minio_access_key: SecretStr = setting(
        "MINIO_ACCESS_KEY", SecretStr(""), "REQUIRED for docker compose: the app's MinIO user "
        "(created by the minio-init service; not the root user).", SHOWN)
    minio_secret_key: SecretStr = setting("MINIO_SECRET_KEY", SecretStr(""),
                                          "REQUIRED for docker compose: its password.", SHOWN)
    app_database_url: SecretStr = setting(
        "APP_DATABASE_URL", SecretStr(""), "Application tables (symbol settings, signals and "
        "reviews, the orders ledger), migrated on first use; empty = "
        "sqlite:///TRADING_DATA_DIR/app.db. PostgreSQL: postgresql://user:password@host:5432/"
        "trading.")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def app_database(self) -> str:
        """APP_DATABASE_URL, else a SQLite file in the data directory."""
        return self.app_database_url.get_secret_value() or f"sqlite:///{self.data_path / 'app.db'}"


class MarketDataSettings(Settings):
    """Market data."""

    source: Annotated[DataSource, Lower] = setting(
        "TRADING_DATA_SOURCE", "simulated", "Where daily bars come from: simulated (labelled "
        "SIMULATED everywhere), csv, url or ibkr.")
    csv_dir: str = setting("TRADING_CSV_DIR", "", "CSV files per symbol (SYMBOL.csv) for "
                           "TRADING_DATA_SOURCE=csv; empty = TRADING_DATA_DIR/csv.")
    csv_url: str = setting(
        "TRADING_CSV_URL", "", "http(s) URL template of one daily CSV per symbol for "
        "TRADING_DATA_SOURCE=url, with {symbol} or {symbol_lower}; e.g. Stooq (personal use, "
        "daily limit): https://stooq.com/q/d/l/?s={symbol_lower}.us&i=d", URL)
    csv_timeout_s: float = setting("TRADING_CSV_TIMEOUT_S", 30.0,
                                   "Seconds a whole download may take.", **_SECONDS)
    csv_columns: str = setting("TRADING_CSV_COLUMNS", "",
                               "The source's headers when they are not Date,Open,High,Low,Close,"
                               "Volume: date=Data,close=...")
    lookback_days: int = setting("TRADING_LOOKBACK_DAYS", 400,
                                 "Trading days of history to fetch (400 covers SMA 200 and the "
                                 "weekly indicators).", ge=200, le=20_000)
    simulated_as_of: date | None = setting("TRADING_SIMULATED_AS_OF", None,
                                           "Last bar date of the simulated series (YYYY-MM-DD); "
                                           "empty = the last closed XNYS session.")
    symbols: str = setting("SYMBOLS", "TSLA,NVDA", "Symbols of `trading-signals demo`.")


class IBKRSettings(Settings):
    """Interactive Brokers (TRADING_DATA_SOURCE=ibkr or TRADING_BROKER=ibkr)."""

    host: str = setting("IBKR_HOST", "127.0.0.1", "IB Gateway/TWS host (docker compose points "
                        "IBKR_HOST and IBKR_PORT at the ib-gateway service, profile ibkr).")
    port: int = port_setting("IBKR_PORT", 4002, "IB Gateway/TWS API port: 4002 IB Gateway "
                             "paper, 4001 Gateway live, 7497 TWS paper, 7496 TWS live.")
    client_id: int = setting("IBKR_CLIENT_ID", 17, "API client id; the next few are tried too.",
                             ge=0, le=2**31 - 1)
    account: str = setting("IBKR_ACCOUNT", "",
                           "Account to trade and report; empty = the first managed account.")
    readonly: bool = setting("IBKR_READONLY", False,
                             "true = never place orders through this connection.")
    connect_timeout: float = setting("IBKR_CONNECT_TIMEOUT", 10.0,
                                     "Seconds to connect and sync.", **_SECONDS)
    request_timeout: float = setting("IBKR_REQUEST_TIMEOUT", 30.0,
                                     "Seconds to wait for one request.", **_SECONDS)
    order_timeout: float = setting("IBKR_ORDER_TIMEOUT", 15.0,
                                   "Seconds to wait for the gateway to acknowledge an order.",
                                   **_SECONDS)
    allow_delayed_data: bool = setting("IBKR_ALLOW_DELAYED_DATA", False,
                                       "Accept delayed market data when the account has no "
                                       "real-time subscription.")


class BrokerSettings(Settings):
    """Broker."""

    broker: Annotated[BrokerKind, Lower] = setting(
        "TRADING_BROKER", "paper", "Who places orders: paper (a simulated account, persisted) "
        "or ibkr.")
    live: bool = setting("TRADING_LIVE", False,
                         "Orders on a live IBKR account only with this explicit flag.")
    allow_short: bool = setting("TRADING_ALLOW_SHORT", False, "Allow selling short.")
    order_type: Annotated[OrderTypeName, Lower] = setting(
        "TRADING_ORDER_TYPE", "bracket", "Entry order: bracket (limit entry at the signal's "
        "entry + take-profit + stop-loss, one OCA group), lmt or mkt.")
    paper_database_url: SecretStr = setting(
        "PAPER_BROKER_DATABASE_URL", SecretStr(""), "The paper broker's own database "
        "(SQLAlchemy URL; docker compose: a PostgreSQL database); empty = "
        "sqlite:///TRADING_DATA_DIR/paper_broker.db.")
    starting_cash: float = setting("PAPER_STARTING_CASH", 100_000.0,
                                   "Cash of a new paper account (USD).", gt=0, le=1e12)
    slippage_bps: float = setting("PAPER_SLIPPAGE_BPS", 5.0,
                                  "Paper fills' slippage in basis points (sizing reserves it "
                                  "for IBKR too).", ge=0, le=1000)
    commission_per_share: float = setting("PAPER_COMMISSION_PER_SHARE", 0.005,
                                          "Paper commission per share (USD).", ge=0, le=100)


class PolicySettings(Settings):
    """Risk and approval policy (trading_assets/core/policy.py, core/pretrade.py)."""

    approval_max_age_days: int = setting("TRADING_APPROVAL_MAX_AGE_DAYS", 1,
                                         "An approval expires after this many trading days.",
                                         ge=0, le=365)
    approval_max_move_pct: float = setting("TRADING_APPROVAL_MAX_MOVE_PCT", 3.0,
                                           "... or after this price move since the signal (%).",
                                           gt=0, le=100)
    cash_buffer_pct: float = setting("TRADING_CASH_BUFFER_PCT", 0.5,
                                     "Every BUY reserves slippage, commission and this % of "
                                     "cash.", ge=0, le=90)
    reconcile_grace_s: float = setting(
        "TRADING_RECONCILE_GRACE_S", 300.0, "Seconds after an order claim before an order the "
        "broker never showed (searched twice) is declared not_placed, so the signal can be "
        "re-approved (docs/lifecycle.md: \"could still exist\").", ge=0, le=86_400)
    max_entry_deviation_pct: float = setting(
        "TRADING_MAX_ENTRY_DEVIATION_PCT", 5.0, "Refuse an entry further than this % from the "
        "last close or the broker's live quote.", gt=0, le=100)
    max_stop_distance_pct: float = setting("TRADING_MAX_STOP_DISTANCE_PCT", 25.0,
                                           "Refuse a stop-loss further than this % from the "
                                           "entry.", gt=0, le=100)
    max_target_distance_pct: float = setting("TRADING_MAX_TARGET_DISTANCE_PCT", 50.0,
                                             "Refuse a take-profit further than this % from "
                                             "the entry.", gt=0, le=1000)
    max_order_notional: float = setting("TRADING_MAX_ORDER_NOTIONAL", 100_000.0,
                                        "Most one order may be worth (account currency); "
                                        "larger orders are cut to it.", gt=0, le=1e12)
    max_order_shares: int = setting("TRADING_MAX_ORDER_SHARES", 10_000,
                                    "Most shares one order may carry; larger orders are cut "
                                    "to it.", ge=1, le=10_000_000)
    max_account_exposure_pct: float = setting("TRADING_MAX_ACCOUNT_EXPOSURE_PCT", 100.0,
                                              "All positions plus working entry orders, at "
                                              "most this % of equity.", gt=0, le=1000)
    entry_days: int = setting("TRADING_ENTRY_DAYS", 1,
                              "Sessions an unfilled entry works before it expires (1 = a DAY "
                              "order; more = good till date).", ge=1, le=30)


class AutomationSettings(Settings):
    """Schedules, sensors and alerts (trading_assets/automation/)."""

    schedule_cron: str = setting("TRADING_SCHEDULE_CRON", "30 16 * * 1-5",
                                 "When the daily run of all enabled symbols starts (cron; the "
                                 "default is after the US close, Monday to Friday).")
    schedule_timezone: str = setting("TRADING_SCHEDULE_TZ", "America/New_York",
                                     "Time zone of the schedule (IANA).")
    max_symbols_per_run: int = setting("TRADING_MAX_SYMBOLS_PER_RUN", 200,
                                       "Symbols per run (schedule, sensors, CLI, Gradio); more "
                                       "symbols are split over several runs.",
                                       ge=1, le=100_000)
    queue_wait_s: float = setting(
        "TRADING_QUEUE_WAIT_S", 300.0, "Seconds the CLI, the Gradio \"Run now\" and bench wait "
        "for the Dagster daemon to start a queued run, while none of their runs runs or ends, "
        "before they stop and say so (the run stays queued); they stop at once when no daemon "
        "heartbeats.", gt=0, le=86_400)
    signal_max_age_days: int = setting("TRADING_SIGNAL_MAX_AGE_DAYS", 1,
                                       "Trading days behind before a symbol's signal is flagged "
                                       "as stale.", ge=0, le=365)
    running: bool = setting("TRADING_AUTOMATION_RUNNING", True,
                            "Schedules and sensors start running with the code location.")
    alert_webhook_url: SecretStr = setting("ALERT_WEBHOOK_URL", SecretStr(""),
                                           "Where failure alerts are posted (Slack/Teams-style "
                                           "webhook; the URL is treated as a secret).")
    alert_timeout_s: float = setting("ALERT_WEBHOOK_TIMEOUT", 5.0, "Seconds to post one alert.",
                                     **_SECONDS)

    @field_validator("schedule_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"TRADING_SCHEDULE_TZ={value!r} is not an IANA time zone; e.g. "
                             "America/New_York.") from None
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_webhook(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and not value.get_secret_value().startswith(
                ("http://", "https://")):
            raise ValueError("ALERT_WEBHOOK_URL must start with http:// or https://.")
        return value


class ExecutorSettings(Settings):
    """Scale out: Celery executor (pip install '.[celery]'; docs/scale-out.md)."""

    kind: Annotated[Executor, Lower] = setting(
        "TRADING_EXECUTOR", "in_process", "How a run executes its steps: in_process (one "
        "process per run), multiprocess, or celery (symbol_pipeline's steps go to `python -m "
        "trading_assets.executors worker` processes through the broker).")
    broker_url: str = setting("TRADING_CELERY_BROKER_URL", "", "Celery broker URL; empty = "
                              "pyamqp://guest@$DAGSTER_CELERY_BROKER_HOST:5672//.", URL)
    broker_host: str = setting("DAGSTER_CELERY_BROKER_HOST", "127.0.0.1",
                               "Host of the default Celery broker.")
    backend: str = setting("TRADING_CELERY_BACKEND", "rpc://",
                           "Celery result backend (rpc://: results come back through the "
                           "broker).")
    queue: str = setting("TRADING_CELERY_QUEUE", "dagster",
                         "Queue the executor sends steps to and the workers consume.")

    @property
    def broker(self) -> str:
        return self.broker_url or f"pyamqp://guest@{self.broker_host}:5672//"


class LLMSettings(Settings):
    """Language model (any OpenAI-compatible endpoint; unset = the rules analyst)."""

    provider: Annotated[Provider, Lower] = setting(
        "LLM_PROVIDER", "", "rules or openai; empty = openai when an API key or a base URL is "
        "set, else rules.")
    llm_base_url: str = setting(
        "LLM_BASE_URL", "", "OpenAI-compatible endpoint; empty = OpenAI. Ollama "
        "http://localhost:11434/v1, vLLM/llama.cpp/LM Studio: their /v1 URL. No user:password@ "
        "in it (refused: the client would send it as Basic auth); use LLM_API_KEY.", URL)
    openai_base_url: str = setting("OPENAI_BASE_URL", "", "Read when LLM_BASE_URL is unset.",
                                   URL)
    llm_api_key: SecretStr = setting("LLM_API_KEY", SecretStr(""), "API key of the endpoint.")
    openai_api_key: SecretStr = setting("OPENAI_API_KEY", SecretStr(""),
                                        "Read when LLM_API_KEY is unset.")
    model: str = setting("LLM_MODEL", "gpt-4o-mini", "Model name the endpoint knows.")
    mode: Annotated[LLMMode, Lower] = setting(
        "LLM_MODE", "tools", "instructor mode (local servers often support only json or "
        "md_json).")
    temperature: Annotated[float | None, NoneWord] = setting(
        "LLM_TEMPERATURE", 0.2, "Sampling temperature; none = the endpoint's default.",
        ge=0, le=2)
    send_images: bool = setting("LLM_SEND_IMAGES", True, "Attach the daily/weekly chart PNGs "
                                "(false for text-only models).")
    timeout_s: float = setting("LLM_TIMEOUT_S", 60.0, "Total seconds one HTTP attempt may take "
                               "(connect, send, every byte of the answer).", ge=0.1, le=3600)
    run_timeout_s: float = setting("LLM_RUN_TIMEOUT_S", 1800.0,
                                   "Bound of a run's whole analysis step; calls it leaves no "
                                   "time for are errors, not made.", ge=1, le=86_400)
    max_retries: int = setting("LLM_MAX_RETRIES", 2, "Re-asks of an answer the schema refused.",
                               ge=0, le=10)
    http_retries: int = setting("LLM_HTTP_RETRIES", 2,
                                "Retries of a failed HTTP call (timeouts, 429, 5xx, refused).",
                                ge=0, le=10)
    concurrency: int = setting("LLM_CONCURRENCY", 10, "Model calls in flight at once within one "
                               "run.", ge=1, le=1000)
    max_cost_usd: float = setting("LLM_MAX_COST_USD", 0.0, "Stop calling the model in a run "
                                  "once this much was spent (USD); 0 = no cap.", ge=0, le=1e6)
    prices: str = setting("LLM_PRICES", "", "JSON price table overrides per model (USD per "
                          "million tokens).")
    prompt: str = setting("LLM_PROMPT", "signal_v2",
                          "Prompt template name (resources/prompts/NAME.md).")
    cache: Annotated[CacheMode, Lower] = setting(
        "LLM_CACHE", "", "Recorded answers (docs/models.md); empty = off for live "
        "signals (a fresh judgement), record in `trading-signals replay`.")
    training_cutoff: date | None = setting(
        "LLM_TRAINING_CUTOFF", None, "The model's training cutoff, YYYY-MM-DD (replays before "
        "it are flagged); empty = the published cutoff of known OpenAI models, unknown for "
        "others.")

    @property
    def base_url_var(self) -> str:
        """LLM_BASE_URL, else OPENAI_BASE_URL when only that one is set."""
        return "OPENAI_BASE_URL" if self.openai_base_url and not self.llm_base_url \
            else "LLM_BASE_URL"

    @property
    def base_url(self) -> str:
        return self.openai_base_url if self.base_url_var == "OPENAI_BASE_URL" \
            else self.llm_base_url

    @property
    def api_key(self) -> str:
        """LLM_API_KEY, then OPENAI_API_KEY; "" when neither is set."""
        return (self.llm_api_key.get_secret_value()
                or self.openai_api_key.get_secret_value())

    @property
    def chosen_provider(self) -> str:
        """LLM_PROVIDER; by default the model when a key or a base URL is set, else rules."""
        return self.provider or ("openai" if self.api_key or self.base_url else "rules")


class TrackingSettings(Settings):
    """MLflow tracking."""

    tracking_uri: SecretStr = setting(
        "MLFLOW_TRACKING_URI", SecretStr(""), "Empty = a local SQLite store under "
        "TRADING_DATA_DIR; off = no tracking; or a server URL (docker compose: "
        "http://mlflow:5000).")
    experiment: str = setting("MLFLOW_EXPERIMENT_NAME", "trading-signals",
                              "Experiment of the signals.")
    artifact_root: str = setting("MLFLOW_ARTIFACT_ROOT", "",
                                 "Artifact location of a local store; empty = "
                                 "TRADING_DATA_DIR/mlflow-artifacts.")
    timeout_s: float = setting("MLFLOW_TIMEOUT_S", 10.0, "Longest a signal waits for MLflow "
                               "before tracking is skipped for it.", **_SECONDS)
    ui_url: str = setting("MLFLOW_UI_URL", "", "Where a browser opens MLflow (links in Dagster "
                          "metadata and the Gradio app), e.g. http://localhost:5000; empty = "
                          "the tracking server's own address.", URL)
    username: str = setting("MLFLOW_TRACKING_USERNAME", "",
                            "MLflow server login (read by the MLflow client).")
    password: SecretStr = setting("MLFLOW_TRACKING_PASSWORD", SecretStr(""),
                                  "MLflow server password.")
    token: SecretStr = setting("MLFLOW_TRACKING_TOKEN", SecretStr(""), "MLflow server token.")

    @field_validator("ui_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _http_url("MLFLOW_UI_URL", value, "http://localhost:5000")


class UISettings(Settings):
    """Gradio app (`trading-signals ui`) and the Dagster UI's address."""

    server_name: str = setting("GRADIO_SERVER_NAME", "127.0.0.1",
                               "Address the review app listens on; any other than this machine "
                               "requires a login (docker compose: 0.0.0.0).")
    server_port: int = port_setting("GRADIO_SERVER_PORT", 7860, "Port of the review app that "
                                    "`trading-signals ui` (make ui) and `up` (make up) start.")
    public_url: str = setting("GRADIO_PUBLIC_URL", "", "Where a browser opens the review app: "
                              "llm_signal links pending signals to it in the Dagster UI, e.g. "
                              "http://localhost:7860.", URL)
    username: str = setting("GRADIO_USERNAME", "", "REQUIRED for docker compose: the login of "
                            "the review app (failed logins are slowed down per client).", SHOWN)
    password: SecretStr = setting("GRADIO_PASSWORD", SecretStr(""),
                                  "REQUIRED for docker compose: its password (12+ characters).",
                                  SHOWN)
    dagster_port: int = port_setting("DAGSTER_PORT", 3000, "Port of the Dagster UI that "
                                     "`trading-signals dev` (make dev) and `up` (make up) start.")
    dagster_webserver_url: str = setting(
        "DAGSTER_WEBSERVER_URL", "", "Where a browser opens the Dagster UI (links in the Gradio "
        "app, `trading-signals status`); empty = http://localhost:$DAGSTER_PORT.", URL)

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str) -> str:
        return _http_url("GRADIO_PUBLIC_URL", value, "https://review.example.com",
                         credentials=False)

    @field_validator("dagster_webserver_url")
    @classmethod
    def _dagster(cls, value: str) -> str:
        return _http_url("DAGSTER_WEBSERVER_URL", value, "http://localhost:3000")

    @property
    def dagster_url(self) -> str:
        return self.dagster_webserver_url or f"http://localhost:{self.dagster_port}"


class InstanceSettings(Settings):
    """Dagster instance."""

    dagster_home: str = setting("DAGSTER_HOME", "", "Dagster instance folder, an absolute path; "
                                "empty = ./.dagster_home (SQLite, written by trading-signals).")
    postgres_host: str = setting("DAGSTER_POSTGRES_HOST", "postgres",
                                 "Production dagster.yaml: host (docker compose sets it).")
    postgres_port: int = port_setting("DAGSTER_POSTGRES_PORT", 5432,
                                      "Production dagster.yaml: port.")
    postgres_user: str = setting("DAGSTER_POSTGRES_USER", "trading",
                                 "Production dagster.yaml: user.")
    postgres_password: SecretStr = setting("DAGSTER_POSTGRES_PASSWORD", SecretStr(""),
                                           "Production dagster.yaml: password.")
    postgres_db: str = setting("DAGSTER_POSTGRES_DB", "dagster",
                               "Database of the Dagster instance (created on first start).",
                               SHOWN)


class ComposeSettings(Settings):
    """docker compose only (read by docker-compose.yml, not by the Python code)."""

    gradio_bind_address: str = setting(
        "GRADIO_BIND_ADDRESS", "127.0.0.1", "Where docker compose publishes the review app's "
        "port 7860: this machine only by default; 0.0.0.0 for every interface (then behind a "
        "reverse proxy with TLS, see docs/production.md).")
    postgres_user: str = setting("POSTGRES_USER", "trading",
                                 "PostgreSQL superuser of the stack.", SHOWN)
    postgres_password: SecretStr = setting("POSTGRES_PASSWORD", SecretStr(""),
                                           "REQUIRED: its password.", SHOWN)
    app_db: str = setting("APP_POSTGRES_DB", "trading", "Database of the application tables.",
                          SHOWN)
    mlflow_db: str = setting("MLFLOW_POSTGRES_DB", "mlflow", "Database of MLflow.", SHOWN)
    paper_db: str = setting("PAPER_BROKER_POSTGRES_DB", "paper_broker",
                            "Database of the paper broker.", SHOWN)
    minio_root_user: str = setting("MINIO_ROOT_USER", "minio-admin", "MinIO root user.", SHOWN)
    minio_root_password: SecretStr = setting("MINIO_ROOT_PASSWORD", SecretStr(""),
                                             "REQUIRED: its password (at least 8 characters).",
                                             SHOWN)
    mlflow_bucket: str = setting("MLFLOW_BUCKET", "mlflow", "Bucket of MLflow's artifacts (the "
                                 "app's bucket is MINIO_BUCKET).", SHOWN)
    image: str = setting("TRADING_IMAGE", "trading-signals:local",
                         "Image tag of every Python service.", SHOWN)
    tws_userid: str = setting("TWS_USERID", "", "IB Gateway (`docker compose --profile ibkr "
                              "up`): IBKR login.", SHOWN)
    tws_password: SecretStr = setting("TWS_PASSWORD", SecretStr(""), "Its password.", SHOWN)
    ib_gateway_mode: Annotated[Literal["paper", "live"], Lower] = setting(
        "IB_GATEWAY_TRADING_MODE", "paper", "IB Gateway mode.", SHOWN)
    ib_gateway_tz: str = setting("IB_GATEWAY_TIME_ZONE", "America/New_York",
                                 "IB Gateway time zone.", SHOWN)
    rabbitmq_user: str = setting("RABBITMQ_USER", "trading", "RabbitMQ user (`docker compose "
                                 "--profile celery up`, with TRADING_EXECUTOR=celery).", SHOWN)
    rabbitmq_password: SecretStr = setting("RABBITMQ_PASSWORD", SecretStr(""), "Its password.",
                                           SHOWN)


class TestSettings(Settings):
    """Tests."""

    __test__ = False  # not a pytest test class

    postgres_url: SecretStr = setting("TEST_POSTGRES_URL",
                                      SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
                                      "PostgreSQL server the stack tests create their throwaway "
                                      "databases on.")
    ci: bool = setting("CI", False, "true: the PostgreSQL tests fail instead of skipping when no "
                       "server answers.")


# In the order of .env.example and docs/configuration.md's table.
MODELS: tuple[type[Settings], ...] = (
    StorageSettings, MarketDataSettings, IBKRSettings, BrokerSettings, PolicySettings,
    AutomationSettings, ExecutorSettings, LLMSettings, TrackingSettings, UISettings,
    InstanceSettings, ComposeSettings, TestSettings)


def variables() -> Iterator[tuple[type[Settings], str, Any]]:
    """(model, variable name, field) for every variable, in documentation order."""
    for model in MODELS:
        for field in model.model_fields.values():
            assert field.alias  # every field is one variable
            yield model, field.alias, field


def _extra(field: Any) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


@functools.cache
def secret_names() -> tuple[str, ...]:
    """Every variable whose whole value is a secret (keys, passwords, tokens): SecretStr."""
    return tuple(name for _, name, field in variables() if field.annotation is SecretStr)


@functools.cache
def url_names() -> tuple[str, ...]:
    """Every URL variable that is not a secret but may carry a user:password."""
    return tuple(name for _, name, field in variables() if _extra(field).get("url"))


def allowed(field: Any) -> str:
    """What a variable accepts, in words, for the documentation."""
    if choices(field):
        return " \\| ".join(choices(field))
    if field.annotation is bool:
        return "true \\| false"
    if field.annotation is SecretStr:
        return "secret"
    if date in get_args(field.annotation):
        return "YYYY-MM-DD"
    return range_text(field) or ("whole number" if field.annotation is int else "")


def title(model: type[Settings]) -> str:
    """A model's section title: the first line of its docstring."""
    return (model.__doc__ or model.__name__).splitlines()[0].rstrip(".")


def env_example(preamble: str) -> str:
    """.env.example: `preamble`, then each model's variables with their help and default."""
    lines = [preamble.rstrip("\n")]
    for model in MODELS:
        lines += ["", f"# --- {title(model)} ".ljust(99, "-")]
        for field in model.model_fields.values():
            help_text = field.description or ""
            limits = range_text(field)
            help_text += f" Allowed: {limits}." if limits else ""
            lines += textwrap.wrap(help_text, 97, initial_indent="# ", subsequent_indent="# ",
                                   break_on_hyphens=False)
            prefix = "" if _extra(field).get("active") else "# "
            lines.append(f"{prefix}{field.alias}={_shown(field.default)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The configuration table: every variable, its default, what it accepts, its help."""
    rows = ["| variable | default | allowed | what it does |", "|---|---|---|---|"]
    for model in MODELS:
        rows.append(f"| **{title(model)}** | | | |")
        for field in model.model_fields.values():
            default = _shown(field.default)
            cell = f"`{default}`" if default else ""
            help_text = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{field.alias}` | {cell} | {allowed(field)} | {help_text} |")
    return "\n".join(rows) + "\n"

