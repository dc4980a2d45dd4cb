"""Every environment variable trading-signals reads: name, type, range, default and help.

The one registry of settings. core.env's readers check each value against it wherever the
value is read (a resource reading its own variables included), so PAPER_STARTING_CASH=-1000,
LLM_TIMEOUT_S=nan or IBKR_PORT=99999 is refused in one line naming the setting and its range.
`.env.example` documents exactly these names (a test compares the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("int", "float", "bool", "choice", "text", "url", "secret", "date", "path")


@dataclass(frozen=True)
class Setting:
    """One environment variable: what it holds, its accepted range and its default."""

    name: str
    kind: str
    default: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # True: the minimum itself is refused (a timeout of 0)
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        low = "" if self.minimum is None else (
            f"above {self.minimum:g}" if self.above_minimum else f"at least {self.minimum:g}")
        high = "" if self.maximum is None else f"at most {self.maximum:g}"
        return " and ".join(part for part in (low, high) if part)

    def range_problem(self, value: float) -> str:
        """Why `value` is out of range ("" when it is fine); NaN and infinity never are."""
        if not math.isfinite(value):
            return "must be a finite number"
        too_low = self.minimum is not None and (
            value <= self.minimum if self.above_minimum else value < self.minimum)
        too_high = self.maximum is not None and value > self.maximum
        return f"must be {self.range_text()}" if too_low or too_high else ""


def _add(*settings: Setting) -> dict[str, Setting]:
    return {s.name: s for s in settings}


_S = Setting
_PORT = {"minimum": 1, "maximum": 65535}
_SECONDS = {"minimum": 0, "above_minimum": True, "maximum": 3600}

SETTINGS: dict[str, Setting] = _add(
    # --- data directory and market data
    _S("TRADING_DATA_DIR", "path", "./data", "Where the embedded defaults keep their files."),
    _S("TRADING_DATA_SOURCE", "choice", "simulated", "Where daily bars come from.",
       choices=("simulated", "csv", "url", "ibkr")),
    _S("TRADING_CSV_DIR", "path", "./data/csv", "CSV files per symbol for the csv source."),
    _S("TRADING_CSV_URL", "url", "", "URL template of one daily CSV per symbol (url source)."),
    _S("TRADING_CSV_TIMEOUT_S", "float", "30", "Seconds a whole download may take.",
       **_SECONDS),
    _S("TRADING_CSV_COLUMNS", "text", "", "The source's headers: date=Data,close=..."),
    _S("TRADING_LOOKBACK_DAYS", "int", "400",
       "Trading days of history to fetch (SMA 200 needs 200).", minimum=200, maximum=20_000),
    _S("TRADING_SIMULATED_AS_OF", "date", "", "Last bar date of the simulated series."),
    _S("SYMBOLS", "text", "TSLA,NVDA", "Symbols of `trading-signals demo`."),
    # --- Interactive Brokers
    _S("IBKR_HOST", "text", "127.0.0.1", "IB Gateway/TWS host."),
    _S("IBKR_PORT", "int", "4002", "IB Gateway/TWS API port.", **_PORT),
    _S("IBKR_CLIENT_ID", "int", "17", "API client id.", minimum=0, maximum=2**31 - 1),
    _S("IBKR_ACCOUNT", "text", "", "Account to trade and report; empty = the first one."),
    _S("IBKR_READONLY", "bool", "false", "Never place orders through this connection."),
    _S("IBKR_CONNECT_TIMEOUT", "float", "10", "Seconds to connect and sync.", **_SECONDS),
    _S("IBKR_REQUEST_TIMEOUT", "float", "30", "Seconds to wait for one request.", **_SECONDS),
    _S("IBKR_ORDER_TIMEOUT", "float", "15", "Seconds to wait for an order acknowledgement.",
       **_SECONDS),
    _S("IBKR_ALLOW_DELAYED_DATA", "bool", "false", "Accept delayed market data."),
    # --- broker and risk
    _S("TRADING_EXECUTOR", "choice", "in_process", "How a run executes its steps.",
       choices=("in_process", "multiprocess", "celery")),
    _S("TRADING_CELERY_BROKER_URL", "url", "",
       "Celery broker; default pyamqp://guest@$DAGSTER_CELERY_BROKER_HOST:5672//."),
    _S("DAGSTER_CELERY_BROKER_HOST", "text", "127.0.0.1", "Host of the default Celery broker."),
    _S("TRADING_CELERY_BACKEND", "text", "rpc://", "Celery result backend."),
    _S("TRADING_CELERY_QUEUE", "text", "dagster", "Queue the executor and workers share."),
    _S("TRADING_BROKER", "choice", "paper", "Who places orders.", choices=("paper", "ibkr")),
    _S("TRADING_LIVE", "bool", "false", "Allow orders on a live IBKR account."),
    _S("TRADING_ALLOW_SHORT", "bool", "false", "Allow selling short."),
    _S("TRADING_ORDER_TYPE", "choice", "bracket",
       "Entry order: bracket (limit entry + take-profit + stop-loss), lmt or mkt.",
       choices=("bracket", "lmt", "mkt")),
    _S("TRADING_ENTRY_DAYS", "int", "1",
       "Sessions an unfilled entry order works before it expires (1 = DAY).",
       minimum=1, maximum=30),
    _S("TRADING_MAX_ENTRY_DEVIATION_PCT", "float", "5",
       "Refuse an entry further than this % from the last close or the live quote.",
       minimum=0, above_minimum=True, maximum=100),
    _S("TRADING_MAX_STOP_DISTANCE_PCT", "float", "25",
       "Refuse a stop-loss further than this % from the entry.",
       minimum=0, above_minimum=True, maximum=100),
    _S("TRADING_MAX_TARGET_DISTANCE_PCT", "float", "50",
       "Refuse a take-profit further than this % from the entry.",
       minimum=0, above_minimum=True, maximum=1000),
    _S("TRADING_MAX_ORDER_NOTIONAL", "float", "100000",
       "Most one order may be worth (account currency); larger orders are cut to it.",
       minimum=0, above_minimum=True, maximum=1e12),
    _S("TRADING_MAX_ORDER_SHARES", "int", "10000",
       "Most shares one order may carry; larger orders are cut to it.",
       minimum=1, maximum=10_000_000),
    _S("TRADING_MAX_ACCOUNT_EXPOSURE_PCT", "float", "100",
       "Positions plus working entry orders, at most this % of equity over all symbols.",
       minimum=0, above_minimum=True, maximum=1000),
    _S("PAPER_BROKER_DATABASE_URL", "secret", "sqlite:///./data/paper_broker.db",
       "The paper broker's own database (SQLAlchemy URL)."),
    _S("PAPER_STARTING_CASH", "float", "100000", "Cash of a new paper account (USD).",
       minimum=0, above_minimum=True, maximum=1e12),
    _S("PAPER_SLIPPAGE_BPS", "float", "5", "Paper fills' slippage in basis points.",
       minimum=0, maximum=1000),
    _S("PAPER_COMMISSION_PER_SHARE", "float", "0.005", "Paper commission per share (USD).",
       minimum=0, maximum=100),
    # --- schedules, sensors and alerts
    _S("TRADING_SCHEDULE_CRON", "text", "30 16 * * 1-5", "When the daily run starts (cron)."),
    _S("TRADING_SCHEDULE_TZ", "text", "America/New_York", "Time zone of the schedule."),
    _S("TRADING_MAX_SYMBOLS_PER_RUN", "int", "200", "Symbols per scheduled run.",
       minimum=1, maximum=100_000),
    _S("TRADING_QUEUE_WAIT_S", "float", "300",
       "Seconds the CLI/Gradio wait for the daemon to start a queued run.",
       minimum=0, above_minimum=True, maximum=86_400),
    _S("TRADING_APPROVAL_MAX_AGE_DAYS", "int", "1", "Trading days before an approval expires.",
       minimum=0, maximum=365),
    _S("TRADING_APPROVAL_MAX_MOVE_PCT", "float", "3", "Price move that expires an approval.",
       minimum=0, above_minimum=True, maximum=100),
    _S("TRADING_CASH_BUFFER_PCT", "float", "0.5",
       "% of cash every BUY leaves free, beside slippage and commission.", minimum=0,
       maximum=90),
    _S("TRADING_RECONCILE_GRACE_S", "float", "300",
       "Seconds after a claim before an order the broker never showed may be not_placed.",
       minimum=0, maximum=86400),
    _S("TRADING_SIGNAL_MAX_AGE_DAYS", "int", "1", "Trading days before a signal is stale.",
       minimum=0, maximum=365),
    _S("TRADING_AUTOMATION_RUNNING", "bool", "true", "Schedules and sensors start running."),
    _S("ALERT_WEBHOOK_URL", "secret", "", "Where failure alerts are posted."),
    _S("ALERT_WEBHOOK_TIMEOUT", "float", "5", "Seconds to post one alert.", **_SECONDS),
    # --- language model
    _S("LLM_PROVIDER", "choice", "", "rules or openai (default: openai with a key or URL).",
       choices=("", "rules", "openai")),
    _S("LLM_BASE_URL", "url", "", "OpenAI-compatible endpoint; empty = OpenAI."),
    _S("OPENAI_BASE_URL", "url", "", "Read when LLM_BASE_URL is unset."),
    _S("LLM_API_KEY", "secret", "", "API key of the endpoint."),
    _S("OPENAI_API_KEY", "secret", "", "Read when LLM_API_KEY is unset."),
    _S("LLM_MODEL", "text", "gpt-4o-mini", "Model name."),
    _S("LLM_MODE", "text", "tools", "instructor mode: tools, json, md_json ..."),
    _S("LLM_TEMPERATURE", "float", "0.2", "Sampling temperature.", minimum=0, maximum=2),
    _S("LLM_SEND_IMAGES", "bool", "true", "Attach the chart PNGs."),
    _S("LLM_TIMEOUT_S", "float", "60", "Total seconds one HTTP attempt may take.",
       minimum=0.1, maximum=3600),
    _S("LLM_RUN_TIMEOUT_S", "float", "1800",
       "Bound of a run's whole analysis step; calls it leaves no time for are errors.",
       minimum=1, maximum=86400),
    _S("LLM_MAX_RETRIES", "int", "2", "Retries of a call the schema refused.",
       minimum=0, maximum=10),
    _S("LLM_HTTP_RETRIES", "int", "2", "Retries of a failed HTTP call.", minimum=0, maximum=10),
    _S("LLM_CONCURRENCY", "int", "10", "Model calls in flight at once.", minimum=1,
       maximum=1000),
    _S("LLM_MAX_COST_USD", "float", "0", "Spending cap per run; 0 = none.", minimum=0,
       maximum=1e6),
    _S("LLM_PRICES", "text", "", "JSON price overrides per model (USD per million tokens)."),
    _S("LLM_PROMPT", "text", "signal_v2", "Prompt template name."),
    _S("LLM_CACHE", "choice", "",
       "Recorded answers: off, record, replay, strict (default: off live, record in a replay).",
       choices=("", "off", "record", "replay", "strict")),
    _S("LLM_TRAINING_CUTOFF", "date", "",
       "The model's training cutoff; default: the published one of known models."),
    # --- MLflow
    _S("MLFLOW_TRACKING_URI", "secret", "", "Tracking store; empty = local SQLite, off = none."),
    _S("MLFLOW_EXPERIMENT_NAME", "text", "trading-signals", "Experiment of the signals."),
    _S("MLFLOW_ARTIFACT_ROOT", "text", "", "Artifact location of a local store."),
    _S("MLFLOW_TIMEOUT_S", "float", "10", "Longest a signal waits for MLflow.", **_SECONDS),
    _S("MLFLOW_UI_URL", "url", "http://localhost:5000", "Where a browser opens MLflow."),
    _S("MLFLOW_TRACKING_USERNAME", "text", "", "MLflow server login."),
    _S("MLFLOW_TRACKING_PASSWORD", "secret", "", "MLflow server password."),
    _S("MLFLOW_TRACKING_TOKEN", "secret", "", "MLflow server token."),
    # --- object store
    _S("TRADING_STORE_DIR", "path", "./data/store", "Local folder of the object store."),
    _S("MINIO_ENDPOINT", "text", "", "host:port of MinIO/S3; empty = local folder."),
    _S("MINIO_SECURE", "bool", "false", "Use https for MinIO."),
    _S("MINIO_BUCKET", "text", "trading", "Bucket of charts, data and transcripts."),
    _S("MINIO_REGION", "text", "us-east-1", "S3 region."),
    _S("MINIO_PUBLIC_ENDPOINT", "url", "http://localhost:9000", "Where a browser reaches MinIO."),
    _S("MINIO_CONNECT_TIMEOUT_S", "float", "5", "Seconds to open a connection to MinIO.",
       minimum=0, above_minimum=True, maximum=300),
    _S("MINIO_READ_TIMEOUT_S", "float", "10", "Seconds MinIO may take to answer a request.",
       minimum=0, above_minimum=True, maximum=600),
    _S("MINIO_RETRIES", "int", "1", "Retries of a MinIO request that failed or timed out.",
       minimum=0, maximum=10),
    _S("MINIO_ACCESS_KEY", "secret", "", "The app's MinIO user."),
    _S("MINIO_SECRET_KEY", "secret", "", "The app's MinIO password."),
    # --- application tables and the Dagster instance
    _S("APP_DATABASE_URL", "secret", "sqlite:///./data/app.db", "Application tables."),
    _S("DAGSTER_HOME", "path", "./.dagster_home", "Dagster instance folder (absolute)."),
    _S("DAGSTER_POSTGRES_HOST", "text", "postgres", "Production dagster.yaml: host."),
    _S("DAGSTER_POSTGRES_PORT", "int", "5432", "Production dagster.yaml: port.", **_PORT),
    _S("DAGSTER_POSTGRES_USER", "text", "trading", "Production dagster.yaml: user."),
    _S("DAGSTER_POSTGRES_PASSWORD", "secret", "", "Production dagster.yaml: password."),
    _S("DAGSTER_PORT", "int", "3000", "Port of the Dagster UI of `trading-signals dev` and `up`.",
       **_PORT),
    _S("DAGSTER_WEBSERVER_URL", "url", "http://localhost:3000",
       "Where a browser opens Dagster (app links, the status probe; default: DAGSTER_PORT's)."),
    # --- Gradio app
    _S("GRADIO_SERVER_NAME", "text", "127.0.0.1", "Address the review app listens on."),
    _S("GRADIO_SERVER_PORT", "int", "7860", "Port of the review app (`ui` and `up`).",
       **_PORT),
    _S("GRADIO_PUBLIC_URL", "url", "", "Where a browser opens the review app (Dagster links)."),
    _S("GRADIO_USERNAME", "text", "", "Login of the review app."),
    _S("GRADIO_PASSWORD", "secret", "", "Password of the review app."),
    # --- docker compose only (read by docker-compose.yml, not by the Python code)
    _S("GRADIO_BIND_ADDRESS", "text", "127.0.0.1",
       "Host address docker compose publishes the review app on (0.0.0.0: every interface)."),
    _S("POSTGRES_USER", "text", "trading", "PostgreSQL superuser of the stack."),
    _S("POSTGRES_PASSWORD", "secret", "", "Its password."),
    _S("DAGSTER_POSTGRES_DB", "text", "dagster", "Database of the Dagster instance."),
    _S("APP_POSTGRES_DB", "text", "trading", "Database of the application tables."),
    _S("MLFLOW_POSTGRES_DB", "text", "mlflow", "Database of MLflow."),
    _S("PAPER_BROKER_POSTGRES_DB", "text", "paper_broker", "Database of the paper broker."),
    _S("MINIO_ROOT_USER", "text", "minio-admin", "MinIO root user."),
    _S("MINIO_ROOT_PASSWORD", "secret", "", "MinIO root password (8+ characters)."),
    _S("MLFLOW_BUCKET", "text", "mlflow", "Bucket of MLflow's artifacts."),
    _S("TRADING_IMAGE", "text", "trading-signals:local", "Image tag of the Python services."),
    _S("TWS_USERID", "text", "", "IBKR login of the IB Gateway container."),
    _S("TWS_PASSWORD", "secret", "", "Its password."),
    _S("RABBITMQ_USER", "text", "trading", "RabbitMQ user of the celery profile."),
    _S("RABBITMQ_PASSWORD", "secret", "", "Its password."),
    _S("IB_GATEWAY_TRADING_MODE", "choice", "paper", "IB Gateway mode.",
       choices=("paper", "live")),
    _S("IB_GATEWAY_TIME_ZONE", "text", "America/New_York", "IB Gateway time zone."),
    # --- tests
    _S("TEST_POSTGRES_URL", "secret", "postgresql://postgres@127.0.0.1:5432/postgres",
       "PostgreSQL server of the stack tests."),
    _S("CI", "bool", "false", "The PostgreSQL tests fail instead of skipping."),
)
