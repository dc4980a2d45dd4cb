"""Application tables (SQLAlchemy): symbol settings, signals with their reviews, the orders ledger.

A SQLite file by default (APP_DATABASE_URL), PostgreSQL in production.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from trading_assets.core.env import plain
from trading_assets.core.orders import BrokerOrder, SymbolSettings
from trading_assets.core.signal import (
    EXECUTABLE_STATUSES,
    AnalysisOutcome,
    SignalStatus,
    TradingSignal,
)
from trading_assets.core.symbols import validate_symbol


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

    def trading_signal(self) -> TradingSignal | None:
        return TradingSignal.model_validate(self.signal_json) if self.signal_json else None

    def reference_close(self) -> float | None:
        """The price the signal saw: the last close it was shown, else its entry price."""
        bars = self.last_bars or []
        if bars and isinstance(bars[-1], dict) and bars[-1].get("close"):
            return float(bars[-1]["close"])
        signal = self.trading_signal()
        return float(signal.entry_price) if signal and signal.entry_price else None


class ReviewRow(Base):
    __tablename__ = "signal_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(String(32), index=True)
    decision: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OrderRow(Base):
    """The orders ledger: at most one order per signal (the signal id is the broker's orderRef)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(String(32), unique=True)
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


_SETTINGS_FIELDS = [f.name for f in fields(SymbolSettings) if f.name != "symbol"]
# Signals an orders run may act on: live and approved (by a reviewer or the auto-approve rule).
# Sorted so the statement, and so SQLAlchemy's compiled-statement cache entry, is stable.
_EXECUTABLE = (SignalRow.mode == "live",
               SignalRow.status.in_(sorted(s.value for s in EXECUTABLE_STATUSES)))
# ... and that have no order in the ledger yet.
_AWAITING_ORDER = (*_EXECUTABLE, SignalRow.id.not_in(select(OrderRow.signal_id)))
# A review note is free text, but a page or a terminal must be able to show it.
NOTE_MAX_CHARS = 2000
REVIEWER_MAX_CHARS = 64  # signal_reviews.reviewer is String(64)
# A symbol's last run: status, time and error ("", None, "" when it never ran).
RunStatus = tuple[str, datetime | None, str]
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process, its schema migrated to head on first use.

    The schema comes from the Alembic scripts in resources/migrations (never create_all), so an
    upgrade adds to the existing signals, reviews and orders ledger instead of losing them.
    """
    from resources.migrations import upgrade_to_head

    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            engine = create_engine(url, **kwargs)
            # An in-memory database lives in the engine's own connection: migrate through it.
            upgrade_to_head(engine if _in_memory(url) else url)
            _ENGINES[url] = engine
        return engine


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def new_signal_id() -> str:
    return uuid.uuid4().hex


def _settings_of(row: SymbolRow) -> SymbolSettings:
    return SymbolSettings(symbol=row.symbol, **{f: getattr(row, f) for f in _SETTINGS_FIELDS})


def _lock_signal(session: Session, signal_id: str, *conditions: Any) -> bool:
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


class AppDatabase(dg.ConfigurableResource):
    """Symbol settings, signals, reviews and the orders ledger in one SQL database."""

    url: str = "sqlite:///data/app.db"

    @property
    def engine(self) -> Engine:
        return engine_for(plain(self.url))  # an EnvVar reference outside a Dagster run

    @contextmanager
    def session(self) -> Iterator[Session]:
        factory = sessionmaker(self.engine, expire_on_commit=False)
        with factory() as session, session.begin():
            yield session

    # --- symbols -------------------------------------------------------------------------

    def settings_for(self, symbol: str) -> SymbolSettings:
        """The symbol's settings, or the defaults for a symbol nobody configured."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            return SymbolSettings(symbol=symbol) if row is None else _settings_of(row)

    def list_settings(self) -> list[SymbolSettings]:
        with self.session() as session:
            rows = session.scalars(
                select(SymbolRow).order_by(SymbolRow.priority.desc(), SymbolRow.symbol)
            ).all()
            return [_settings_of(r) for r in rows]

    def settings_by_symbol(self, symbols: Iterable[str]) -> dict[str, SymbolSettings]:
        """Each symbol's settings, the defaults for one nobody configured, in one query."""
        return {symbol: settings for symbol, (settings, _) in self.symbol_overview(symbols).items()}

    def symbol_overview(self, symbols: Iterable[str]
                        ) -> dict[str, tuple[SymbolSettings, RunStatus]]:
        """Each symbol's settings (defaults when missing) and last run, in one query."""
        with self.session() as session:
            rows = {r.symbol: r for r in session.scalars(select(SymbolRow))}
        overview: dict[str, tuple[SymbolSettings, RunStatus]] = {}
        for symbol in symbols:
            row = rows.get(symbol)
            overview[symbol] = ((SymbolSettings(symbol=symbol), ("", None, "")) if row is None
                                else (_settings_of(row),
                                      (row.last_run_status, row.last_run_at, row.last_error)))
        return overview

    def upsert_settings(self, settings: SymbolSettings) -> SymbolSettings:
        symbol = validate_symbol(settings.symbol)
        values = {k: v for k, v in asdict(settings).items() if k != "symbol"}
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            if row is None:
                session.add(SymbolRow(symbol=symbol, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
        return SymbolSettings(symbol=symbol, **values)

    def ensure_symbol(self, symbol: str) -> SymbolSettings:
        """Create default settings for a symbol that has none; keep existing ones."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            if session.get(SymbolRow, symbol) is None:
                session.add(SymbolRow(symbol=symbol))
        return self.settings_for(symbol)

    def remove_symbol(self, symbol: str) -> bool:
        """Forget the symbol's settings (signals and orders stay for the audit trail); False
        when it had none."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            if row is not None:
                session.delete(row)
        return row is not None

    def record_run_status(self, symbol: str, status: str, error: str = "") -> None:
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            if row is None:
                row = SymbolRow(symbol=symbol)
                session.add(row)
            row.last_run_status, row.last_error, row.last_run_at = status, error[:4000], utcnow()

    # --- signals -------------------------------------------------------------------------

    def find_signal(self, *, symbol: str, bar_date: date, provider: str, model: str,
                    prompt_version: str, mode: str = "live", variant: str = "") -> SignalRow | None:
        with self.session() as session:
            return session.scalars(
                select(SignalRow).where(
                    SignalRow.symbol == validate_symbol(symbol), SignalRow.bar_date == bar_date,
                    SignalRow.mode == mode, SignalRow.provider == provider,
                    SignalRow.model == model, SignalRow.prompt_version == prompt_version,
                    SignalRow.variant == variant,
                )
            ).first()

    def record_signal(
        self,
        *,
        outcome: AnalysisOutcome,
        bar_date: date,
        status: SignalStatus,
        data_source: str,
        simulated: bool,
        last_bars: list[dict[str, Any]],
        indicators: dict[str, Any],
        chart_keys: dict[str, str],
        dagster_run_id: str = "",
        mode: str = "live",
        variant: str = "",
    ) -> SignalRow:
        """Store a signal (or an error) once per symbol, bar date and analyst.

        An existing `error` row for the same key is replaced by the new attempt; any other
        existing row is returned unchanged, so re-runs never duplicate a signal.
        """
        symbol = validate_symbol(outcome.symbol)
        signal = outcome.signal
        values: dict[str, Any] = {
            "status": status.value,
            "action": signal.action.value if signal else None,
            "confidence_level": signal.confidence_level.value if signal else None,
            "confidence_score": signal.confidence_score if signal else None,
            "signal_json": json.loads(signal.model_dump_json()) if signal else None,
            "error": outcome.error or "",
            "data_source": data_source,
            "simulated": simulated,
            "last_bars": last_bars,
            "indicators": indicators,
            "chart_keys": chart_keys,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost_usd": outcome.cost_usd,
            "latency_s": outcome.latency_s,
            "dagster_run_id": dagster_run_id,
            "updated_at": utcnow(),
        }
        key = {"symbol": symbol, "bar_date": bar_date, "mode": mode, "provider": outcome.provider,
               "model": outcome.model, "prompt_version": outcome.prompt_version,
               "variant": variant}
        with self.session() as session:
            row = session.scalars(
                select(SignalRow).filter_by(**key).with_for_update()
            ).first()
            if row is not None and row.status != SignalStatus.ERROR.value:
                return row
            if row is None:
                row = SignalRow(id=new_signal_id(), **key, **values)
                session.add(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
        return row

    def get_signal(self, signal_id: str) -> SignalRow | None:
        with self.session() as session:
            return session.get(SignalRow, signal_id)

    def set_mlflow_run(self, signal_id: str, mlflow_run_id: str) -> None:
        with self.session() as session:
            row = session.get(SignalRow, signal_id)
            if row is not None:
                row.mlflow_run_id = mlflow_run_id

    def list_signals(self, *, symbol: str | None = None, status: str | None = None,
                     mode: str | None = "live", since: date | None = None,
                     until: date | None = None, limit: int = 200) -> list[SignalRow]:
        """Newest first, filtered by symbol, status, mode and an inclusive bar-date range."""
        query = select(SignalRow)
        if symbol:
            query = query.where(SignalRow.symbol == validate_symbol(symbol))
        if status:
            query = query.where(SignalRow.status == status)
        if mode:
            query = query.where(SignalRow.mode == mode)
        if since:
            query = query.where(SignalRow.bar_date >= since)
        if until:
            query = query.where(SignalRow.bar_date <= until)
        query = query.order_by(SignalRow.created_at.desc()).limit(limit)
        with self.session() as session:
            return list(session.scalars(query).all())

    def latest_signal(self, symbol: str) -> SignalRow | None:
        rows = self.list_signals(symbol=symbol, limit=1)
        return rows[0] if rows else None

    def latest_signals(self) -> dict[str, SignalRow]:
        """Each symbol's newest live signal, in one query (the symbols table shows hundreds)."""
        newest = select(
            SignalRow.id,
            func.row_number().over(partition_by=SignalRow.symbol,
                                   order_by=(SignalRow.created_at.desc(), SignalRow.id.desc()))
            .label("rank"),
        ).where(SignalRow.mode == "live").subquery()
        with self.session() as session:
            rows = session.scalars(select(SignalRow).join(newest, SignalRow.id == newest.c.id)
                                   .where(newest.c.rank == 1)).all()
        return {row.symbol: row for row in rows}

    def executable_signals(self, symbol: str) -> list[SignalRow]:
        """Approved live signals of the symbol that have no order in the ledger, oldest first."""
        with self.session() as session:
            return list(session.scalars(
                select(SignalRow).where(SignalRow.symbol == validate_symbol(symbol),
                                        *_AWAITING_ORDER)
                .order_by(SignalRow.created_at)
            ).all())

    def review_signal(self, signal_id: str, decision: SignalStatus, *, reviewer: str,
                      note: str = "") -> SignalRow:
        """Approve, reject or expire a pending signal, keeping who, when and why.

        An approved signal whose order is already in the ledger can no longer be rejected or
        expired: the order run has claimed it (and may have placed it) first.
        """
        allowed = {SignalStatus.APPROVED, SignalStatus.REJECTED, SignalStatus.EXPIRED}
        if decision not in allowed:
            raise ValueError(f"A review decides approved, rejected or expired, not {decision}.")
        if len(note) > NOTE_MAX_CHARS:
            raise ValueError(f"The note is {len(note)} characters long; keep it under "
                             f"{NOTE_MAX_CHARS}.")
        if len(reviewer) > REVIEWER_MAX_CHARS:
            raise ValueError(f"The reviewer name is {len(reviewer)} characters long; keep it to "
                             f"{REVIEWER_MAX_CHARS} at most.")
        with self.session() as session:
            # Locked before it is read, so claim_order cannot slip in between check and write.
            row = session.get(SignalRow, signal_id) if _lock_signal(session, signal_id) else None
            if row is None:
                raise KeyError(f"No signal with id {signal_id!r}.")
            if row.mode != "live":
                raise ValueError(f"Signal {signal_id} is a {row.mode} signal and cannot be "
                                 "reviewed for execution.")
            reviewable = {SignalStatus.PENDING_REVIEW.value, SignalStatus.AUTO_APPROVED.value,
                          SignalStatus.APPROVED.value}
            if row.status not in reviewable:
                raise ValueError(f"Signal {signal_id} is {row.status}; only pending or "
                                 "approved signals can be reviewed.")
            if decision is SignalStatus.APPROVED and row.status != "pending_review":
                raise ValueError(f"Signal {signal_id} is already {row.status}.")
            order = session.scalars(select(OrderRow).where(OrderRow.signal_id == signal_id)
                                    ).first()
            if order is not None:
                raise ValueError(f"Signal {signal_id} cannot be {decision.value}: an order is "
                                 f"already in the ledger for this signal ({order.action} "
                                 f"{order.quantity:g}, {order.status}); cancel it at the broker "
                                 "if it must not trade.")
            row.status, row.updated_at = decision.value, utcnow()
            session.add(ReviewRow(signal_id=signal_id, decision=decision.value,
                                  reviewer=reviewer, note=note))
        return row

    def reviews_for(self, signal_id: str) -> list[ReviewRow]:
        with self.session() as session:
            return list(session.scalars(
                select(ReviewRow).where(ReviewRow.signal_id == signal_id)
                .order_by(ReviewRow.decided_at)
            ).all())

    # --- orders ledger -------------------------------------------------------------------

    def claim_order(self, signal_id: str, symbol: str, broker: str, action: str,
                    quantity: float, order_type: str, limit_price: float | None,
                    stop_loss: float | None, take_profit: float | None) -> OrderRow | None:
        """Write the ledger row *before* the broker is called; None if the signal has one or is
        no longer approved (rejected or expired since it was listed).

        The unique signal id makes a second claim fail, so two runs cannot both place; the
        signal's status is checked under its lock in the same transaction, so a review cannot
        change it between the check and the claim.
        """
        try:
            with self.session() as session:
                if not _lock_signal(session, signal_id, *_AWAITING_ORDER):
                    return None
                row = OrderRow(signal_id=signal_id, symbol=symbol, broker=broker, action=action,
                               quantity=quantity, order_type=order_type,
                               limit_price=limit_price, stop_loss=stop_loss,
                               take_profit=take_profit, status="submitting")
                session.add(row)
            return row
        except IntegrityError:
            return None

    def update_order(self, signal_id: str, order: BrokerOrder | None, error: str = "") -> None:
        with self.session() as session:
            row = session.scalars(select(OrderRow).where(OrderRow.signal_id == signal_id)).one()
            if order is not None:
                row.status, row.filled = order.status, order.filled
                row.avg_fill_price, row.commission = order.avg_fill_price, order.commission
                row.broker_order_id = order.broker_order_id
            if error:
                row.error = error[:4000]
                row.status = "unknown" if order is None else row.status
            row.updated_at = utcnow()
            if order is not None:  # only an approved signal becomes executed, never a rejected one
                session.execute(
                    update(SignalRow).where(SignalRow.id == signal_id, *_EXECUTABLE)
                    .values(status=SignalStatus.EXECUTED.value, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )

    def order_for_signal(self, signal_id: str) -> OrderRow | None:
        with self.session() as session:
            return session.scalars(select(OrderRow).where(OrderRow.signal_id == signal_id)).first()

    def unresolved_orders(self, symbol: str) -> list[OrderRow]:
        """Ledger rows whose placement outcome is unknown (a crash or timeout mid-placement)."""
        with self.session() as session:
            return list(session.scalars(select(OrderRow).where(
                OrderRow.symbol == validate_symbol(symbol),
                OrderRow.status.in_(["submitting", "unknown"]),
            )).all())

    def list_orders(self, symbol: str | None = None, limit: int = 200) -> list[OrderRow]:
        query = select(OrderRow)
        if symbol:
            query = query.where(OrderRow.symbol == validate_symbol(symbol))
        with self.session() as session:
            return list(session.scalars(query.order_by(OrderRow.created_at.desc())
                                        .limit(limit)).all())

    def record_decision(self, symbol: str, signal_id: str, placed: bool, reason: str,
                        dagster_run_id: str = "") -> None:
        with self.session() as session:
            session.add(OrderDecisionRow(symbol=symbol, signal_id=signal_id, placed=placed,
                                         reason=reason, dagster_run_id=dagster_run_id))

    def decisions_for(self, symbol: str, limit: int = 50) -> list[OrderDecisionRow]:
        with self.session() as session:
            return list(session.scalars(
                select(OrderDecisionRow).where(OrderDecisionRow.symbol == validate_symbol(symbol))
                .order_by(OrderDecisionRow.id.desc()).limit(limit)
            ).all())

    # --- per-run failures ----------------------------------------------------------------

    def record_failure(self, run_id: str, symbol: str, asset: str, error: str) -> None:
        """Remember a symbol's failure in this run and on the symbol itself."""
        with self.session() as session:
            session.add(RunFailureRow(dagster_run_id=run_id, symbol=symbol, asset=asset,
                                      error=error[:4000]))
        self.record_run_status(symbol, f"failed in {asset}", error)

    def failed_symbols(self, run_id: str, exclude_asset: str = "") -> dict[str, str]:
        """Symbols that failed earlier in this run, with the first asset and error."""
        with self.session() as session:
            rows = session.scalars(select(RunFailureRow)
                                   .where(RunFailureRow.dagster_run_id == run_id,
                                          RunFailureRow.asset != exclude_asset)
                                   .order_by(RunFailureRow.id)).all()
        failed: dict[str, str] = {}
        for row in rows:
            failed.setdefault(row.symbol, f"{row.asset}: {row.error}")
        return failed

    # --- read models for the Gradio app ------------------------------------------------

    def run_statuses(self) -> dict[str, RunStatus]:
        """Each configured symbol's last run status, time and error, for the symbols table."""
        with self.session() as session:
            rows = session.execute(select(SymbolRow.symbol, SymbolRow.last_run_status,
                                          SymbolRow.last_run_at, SymbolRow.last_error)).all()
        return {symbol: (status, at, error) for symbol, status, at, error in rows}

    def latest_reviews(self, signal_ids: list[str]) -> dict[str, ReviewRow]:
        """The most recent review of each of these signals (signals never reviewed are absent)."""
        if not signal_ids:
            return {}
        with self.session() as session:
            rows = session.scalars(select(ReviewRow).where(ReviewRow.signal_id.in_(signal_ids))
                                   .order_by(ReviewRow.decided_at, ReviewRow.id)).all()
        return {row.signal_id: row for row in rows}

    def recent_decisions(self, limit: int = 50) -> list[OrderDecisionRow]:
        """The orders asset's latest decisions over all symbols, newest first."""
        with self.session() as session:
            return list(session.scalars(
                select(OrderDecisionRow).order_by(OrderDecisionRow.id.desc()).limit(limit)
            ).all())

    # --- scorecard -----------------------------------------------------------------------

    def signals_to_score(self, symbol: str) -> list[SignalRow]:
        """Every signal of the symbol, live and replay (errors too, to count them), oldest
        bar date first: the input of the signal_outcomes asset."""
        with self.session() as session:
            return list(session.scalars(
                select(SignalRow).where(SignalRow.symbol == validate_symbol(symbol))
                .order_by(SignalRow.bar_date, SignalRow.created_at)
            ).all())

    # --- automation (trading_assets/automation.py) ---------------------------------------

    def signals_awaiting_execution(self, limit: int = 1000) -> list[SignalRow]:
        """Approved or auto-approved live signals that no `orders` run has acted on, oldest first.

        "Acted on" means an order in the ledger, or an order decision recorded at or after the
        signal's last status change (a risk check that declined it). A decision recorded before
        a human approval (orders saw it while it was still pending) does not count.
        """
        with self.session() as session:
            candidates = list(session.scalars(
                select(SignalRow).where(*_AWAITING_ORDER)
                .order_by(SignalRow.created_at).limit(limit)
            ).all())
            if not candidates:
                return []
            decided: dict[str, datetime] = {}
            for signal_id, decided_at in session.execute(
                select(OrderDecisionRow.signal_id, func.max(OrderDecisionRow.decided_at))
                .where(OrderDecisionRow.signal_id.in_([c.id for c in candidates]))
                .group_by(OrderDecisionRow.signal_id)
            ).all():
                decided[signal_id] = decided_at
        return [row for row in candidates
                if row.id not in decided or decided[row.id] < row.updated_at]

    def latest_signal_dates(self) -> dict[str, date]:
        """Each symbol's newest bar date with a usable live signal (errors do not count)."""
        with self.session() as session:
            rows = session.execute(
                select(SignalRow.symbol, func.max(SignalRow.bar_date))
                .where(SignalRow.mode == "live", SignalRow.status != SignalStatus.ERROR.value)
                .group_by(SignalRow.symbol)
            ).all()
        return {symbol: bar_date for symbol, bar_date in rows}

    def symbols_with_unexecuted_approvals(self) -> set[str]:
        """Symbols with an approved or auto-approved live signal that has no order yet."""
        with self.session() as session:
            return set(session.scalars(
                select(SignalRow.symbol).where(*_AWAITING_ORDER).distinct()
            ).all())
