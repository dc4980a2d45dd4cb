"""The application tables (SQLAlchemy models) and the one engine per database URL.

resources/app_db.py (symbols, signals, reviews) and resources/ledger.py (orders ledger,
analysis claims) read and write them; the Alembic scripts in resources/migrations build them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    update,
)
from sqlalchemy import false as sa_false
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from trading_assets.core.config import plain
from trading_assets.core.errors import OutageError
from trading_assets.core.signal import TradingSignal

if TYPE_CHECKING:
    from resources.migrations import Chain


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop or alter them on SQLite (batch mode) too.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class SymbolRow(Base):
    __tablename__ = "symbol_settings"

    symbol: Mapped[str] = mapped_column(String(12), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    position_size_pct: Mapped[float] = mapped_column(Float, default=5.0)
    risk_level: Mapped[str] = mapped_column(String(16), default="medium")
    max_exposure_pct: Mapped[float] = mapped_column(Float, default=20.0)
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    min_confidence: Mapped[int] = mapped_column(Integer, default=60)
    exchange: Mapped[str] = mapped_column(String(16), default="SMART")
    primary_exchange: Mapped[str] = mapped_column(String(16), default="")
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    last_run_status: Mapped[str] = mapped_column(String(32), default="")
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Set when the symbol is removed: its settings wait for a re-add instead of being lost.
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (
        # One signal per symbol, bar date and analyst: a re-run on the same day reuses it.
        UniqueConstraint("symbol", "bar_date", "mode", "provider", "model", "prompt_version",
                         "variant", name="uq_signal_per_bar"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(12), index=True)
    bar_date: Mapped[date] = mapped_column(Date, index=True)
    mode: Mapped[str] = mapped_column(String(16), default="live")  # live | replay
    variant: Mapped[str] = mapped_column(String(32), default="")
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    prompt_version: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str | None] = mapped_column(String(8), nullable=True)
    confidence_level: Mapped[str | None] = mapped_column(String(8), nullable=True)
    confidence_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    # Why the signal is not_placed or order_failed (or was expired): shown wherever it is listed.
    status_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A not_placed refusal whose reason can change by itself (cash, exposure, working orders):
    # offered for re-approval; one of the signal's own numbers is not.
    retryable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    data_source: Mapped[str] = mapped_column(String(32), default="")
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    last_bars: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    indicators: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    chart_keys: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    dagster_run_id: Mapped[str] = mapped_column(String(64), default="")
    mlflow_run_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The answer came from the recorded exchange store (LLM_CACHE): cost_usd is then 0 and
    # original_cost_usd what it cost when it was recorded; request_key is its llm_exchanges row.
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    original_cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    request_key: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The model's training cutoff when the signal was made (None: rules, or unknown).
    training_cutoff: Mapped[date | None] = mapped_column(Date, nullable=True)

    def trading_signal(self) -> TradingSignal | None:
        """The stored signal, None for an error row; raises if it no longer validates (see
        read_signal)."""
        return TradingSignal.model_validate(self.signal_json) if self.signal_json else None

    def read_signal(self) -> tuple[TradingSignal | None, str]:
        """(the stored signal, '') or (None, why it cannot be read): a row written by older
        code may no longer pass the schema, and it must not fail every run of its symbol."""
        try:
            return self.trading_signal(), ""
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors())
            return None, f"the stored signal no longer passes the signal schema ({problems})"

    def reference_close(self) -> float | None:
        """The price the signal saw: the last close it was shown, else its entry price."""
        bars = self.last_bars or []
        if bars and isinstance(bars[-1], dict) and bars[-1].get("close"):
            return float(bars[-1]["close"])
        signal, _ = self.read_signal()
        return float(signal.entry_price) if signal and signal.entry_price else None


class TradeRow(Base):
    """A filled order and how it ended: entry, exit (target, stop, a SELL signal), P&L, R."""

    __tablename__ = "trades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_ref: Mapped[str] = mapped_column(String(48), unique=True)
    signal_id: Mapped[str] = mapped_column(String(32), index=True)
    symbol: Mapped[str] = mapped_column(String(12), index=True)
    side: Mapped[str] = mapped_column(String(8))  # BUY (long) | SELL (short)
    quantity: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float] = mapped_column(Float)
    entry_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_quantity: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    exit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    exit_reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
    commission: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    realized_pnl: Mapped[float | None] = mapped_column(Float, nullable=True)
    r_multiple: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EquityPointRow(Base):
    """The account at one portfolio materialization: the equity curve, paper and IBKR alike."""

    __tablename__ = "equity_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    broker: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    bar_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    unrealized_pnl: Mapped[float] = mapped_column(Float)
    # symbol -> {quantity, avg_cost, market_value, unrealized_pnl, realized_pnl}
    positions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    dagster_run_id: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ReviewRow(Base):
    __tablename__ = "signal_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(String(32), index=True)
    decision: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OrderRow(Base):
    """The orders ledger: one attempt at a time per signal, each with its own orderRef.

    Attempt 1's orderRef is the signal id; a re-approval after `not_placed` or a broker
    rejection claims attempt 2 (`<id>-2`), and so on (core/lifecycle.py says when).
    """

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("signal_id", "attempt", name="uq_orders_signal_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(String(32), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    order_ref: Mapped[str] = mapped_column(String(48), unique=True)
    symbol: Mapped[str] = mapped_column(String(12), index=True)
    broker: Mapped[str] = mapped_column(String(16))
    broker_order_id: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[float] = mapped_column(Float)
    order_type: Mapped[str] = mapped_column(String(16))
    limit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    filled: Mapped[float] = mapped_column(Float, default=0.0)
    avg_fill_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    commission: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OrderDecisionRow(Base):
    """Every decision the orders asset makes, including 'no order' and why."""

    __tablename__ = "order_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(12), index=True)
    signal_id: Mapped[str] = mapped_column(String(32), default="")
    placed: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text)
    dagster_run_id: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunFailureRow(Base):
    """A symbol that failed in a run: later assets of the same run skip it, the UI shows it."""

    __tablename__ = "run_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dagster_run_id: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(12), index=True)
    asset: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)




class ExchangeRow(Base):
    """The index of the recorded exchange store: one row per request digest, the answer itself
    in the object store (object_key). The primary key is what makes two runs recording the
    same request at once keep one answer (resources/exchanges.py)."""

    __tablename__ = "llm_exchanges"
    __table_args__ = (Index("ix_llm_exchanges_symbol_bar_date", "symbol", "bar_date"),)

    request_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(12))
    bar_date: Mapped[date] = mapped_column(Date)
    model: Mapped[str] = mapped_column(String(128))
    prompt_version: Mapped[str] = mapped_column(String(128))
    # SHA-256 of each other part of the request (core/exchanges.py PARTS): a strict-mode miss
    # names the parts in which the nearest recorded request differs.
    images_sha256: Mapped[str] = mapped_column(String(64))
    params_sha256: Mapped[str] = mapped_column(String(64))
    schema_sha256: Mapped[str] = mapped_column(String(64))
    messages_sha256: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(256))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    dagster_run_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AnalysisClaimRow(Base):
    """One analysis per (symbol, bar date, analyst) at a time: taken before the model is called.

    The lease expires, so a run that died holding a claim blocks the next one only until then.
    """

    __tablename__ = "analysis_claims"

    symbol: Mapped[str] = mapped_column(String(12), primary_key=True)
    bar_date: Mapped[date] = mapped_column(Date, primary_key=True)
    analyst: Mapped[str] = mapped_column(String(320), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
# Keyed by (the chain's version table, URL): the paper book may share a database with these tables.
_ENGINES: dict[tuple[str, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str, chain: Chain | None = None) -> Engine:
    """One engine per URL and migration chain per process, its schema migrated to head on first
    use (the application tables by default; the paper broker passes PAPER_CHAIN).

    The schema comes from the Alembic scripts in resources/migrations (never create_all), so an
    upgrade adds to the existing signals, reviews and orders ledger instead of losing them.
    """
    from resources.migrations import APP_CHAIN, upgrade_to_head

    chain = chain or APP_CHAIN
    with _ENGINES_LOCK:
        engine = _ENGINES.get((chain.version_table, url))
        if engine is None:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            engine = create_engine(url, **kwargs)
            _report_outages(engine, url, chain)
            # An in-memory database lives in the engine's own connection: migrate through it.
            upgrade_to_head(engine if _in_memory(url) else url, chain=chain)
            _ENGINES[(chain.version_table, url)] = engine
        return engine


class DatabaseUnavailableError(OutageError):
    """A database of ours cannot be reached or dropped the connection (server stopped,
    restarting, network); the message names its setting."""


def _report_outages(engine: Engine, url: str, chain: Chain) -> None:
    """Turn "cannot connect" and "connection lost" on this engine into one line naming the
    setting (APP_DATABASE_URL, PAPER_BROKER_DATABASE_URL); other database errors pass as they
    are. A pre-ping's failure is left to the pool, which then connects afresh."""
    from sqlalchemy import event
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)

    def on_error(context: Any) -> None:
        if context.is_pre_ping or not (context.is_disconnect or context.connection is None):
            return
        reason = (str(context.original_exception).strip().splitlines() or ["no reason"])[0]
        raise DatabaseUnavailableError(
            f"{chain.setting}: {chain.label} {shown} not reachable ({reason[:200]}). Start the "
            f"database server or check {chain.setting}, then run again."
        ) from context.sqlalchemy_exception

    event.listen(engine, "handle_error", on_error)


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def lock_signal(session: Session, signal_id: str, *conditions: Any) -> bool:
    """Take the signal's write lock if it exists and meets `conditions`; say whether it did.

    An UPDATE locks the row on PostgreSQL and the database on SQLite, whose driver only begins a
    transaction at the first write: a SELECT first would leave a check-then-write open to a
    writer in between. So a review and an order claim on the same signal run one after the other.
    """
    result = session.execute(
        update(SignalRow).where(SignalRow.id == signal_id, *conditions)
        .values(updated_at=utcnow()).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]




class Database(dg.ConfigurableResource):
    """A session on the application database (APP_DATABASE_URL)."""

    url: str = "sqlite:///data/app.db"

    @property
    def engine(self) -> Engine:
        return engine_for(plain(self.url))  # an EnvVar reference outside a Dagster run

    @contextmanager
    def session(self) -> Iterator[Session]:
        factory = sessionmaker(self.engine, expire_on_commit=False)
        with factory() as session, session.begin():
            yield session
