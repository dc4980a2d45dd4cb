"""Application tables (SQLAlchemy): symbol settings, signals with their reviews, the orders ledger.

A SQLite file by default (APP_DATABASE_URL), PostgreSQL in production. The models live in
resources/app_tables.py, the orders ledger and analysis claims in resources/ledger.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update

from resources.app_tables import (
    AnalysisClaimRow,
    Base,
    OrderDecisionRow,
    OrderRow,
    ReviewRow,
    RunFailureRow,
    SignalRow,
    SymbolRow,
    engine_for,
    utcnow,
)
from resources.ledger import NOTE_MAX_CHARS, REVIEWER_MAX_CHARS, OrdersLedger
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.signal import AnalysisOutcome, SignalStatus
from trading_assets.core.symbols import validate_symbol

# Re-exported: the migrations, the assets and the tests import the models from here.
__all__ = ["NOTE_MAX_CHARS", "REVIEWER_MAX_CHARS", "AnalysisClaimRow", "AppDatabase", "Base",
           "OrderDecisionRow", "OrderRow", "ReviewRow", "RunFailureRow", "SignalRow",
           "SymbolRow", "engine_for", "new_signal_id"]
_SETTINGS_FIELDS = [f.name for f in fields(SymbolSettings) if f.name != "symbol"]
# A symbol's last run: status, time and error ("", None, "" when it never ran).
RunStatus = tuple[str, datetime | None, str]


def new_signal_id() -> str:
    return uuid.uuid4().hex


def _settings_of(row: SymbolRow) -> SymbolSettings:
    return SymbolSettings(symbol=row.symbol, **{f: getattr(row, f) for f in _SETTINGS_FIELDS})


class AppDatabase(OrdersLedger):
    """Symbol settings, signals, reviews and the orders ledger (resources/ledger.py) in one SQL
    database."""

    # --- symbols -------------------------------------------------------------------------

    def settings_for(self, symbol: str) -> SymbolSettings:
        """The symbol's settings, or the defaults for a symbol nobody configured."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            return SymbolSettings(symbol=symbol) if row is None else _settings_of(row)

    def list_settings(self) -> list[SymbolSettings]:
        """The settings of the symbols in use (a removed symbol's are kept, not listed)."""
        with self.session() as session:
            rows = session.scalars(
                select(SymbolRow).where(SymbolRow.removed_at.is_(None))
                .order_by(SymbolRow.priority.desc(), SymbolRow.symbol)
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
                row.updated_at, row.removed_at = utcnow(), None  # configured: in use again
        return SymbolSettings(symbol=symbol, **values)

    def ensure_symbol(self, symbol: str) -> SymbolSettings:
        """Create default settings for a symbol that has none; keep existing ones (a symbol
        removed earlier comes back with the settings it had)."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            if row is None:
                session.add(SymbolRow(symbol=symbol))
            elif row.removed_at is not None:
                row.removed_at, row.updated_at = None, utcnow()
        return self.settings_for(symbol)

    def remove_symbol(self, symbol: str, forget: bool = False) -> bool:
        """Mark the symbol removed, keeping its settings for a later re-add (or delete them,
        `forget`); its signals and orders stay for the audit trail. False when it had none."""
        symbol = validate_symbol(symbol)
        with self.session() as session:
            row = session.get(SymbolRow, symbol)
            if row is None or (row.removed_at is not None and not forget):
                return False
            if forget:
                session.delete(row)
            else:
                row.removed_at = row.updated_at = utcnow()
        return True

    def expire_waiting_signals(self, symbol: str, reason: str, reviewer: str
                               ) -> tuple[list[str], list[str]]:
        """Expire every signal of the symbol that could still lead to an order (waiting for a
        person, approved, refused or failed and re-approvable): (expired ids, ids kept with
        why: an order that could still exist blocks it until reconciled)."""
        waiting = (SignalStatus.PENDING_REVIEW, SignalStatus.APPROVED,
                   SignalStatus.AUTO_APPROVED, SignalStatus.NOT_PLACED,
                   SignalStatus.ORDER_FAILED)
        rows = [row for status in waiting
                for row in self.list_signals(symbol=symbol, status=status.value, limit=10_000)]
        expired, kept = [], []
        for row in rows:
            try:
                self.review_signal(row.id, SignalStatus.EXPIRED, reviewer=reviewer, note=reason,
                                   actor="system")
                expired.append(row.id)
            except (KeyError, ValueError) as exc:
                kept.append(f"{row.id}: {exc}")
        return expired, kept
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

    def analyses_in_progress(self, keys: Iterable[tuple[str, date]], *, analyst: str,
                             holder: str, identity: tuple[str, str, str]
                             ) -> dict[tuple[str, date], str]:
        """The (symbol, bar date) keys still being analysed elsewhere, with who holds each:
        another holder's lease runs and no usable signal (any but error) from this analyst is
        stored yet. One query for all of them: what a run waiting on other runs' analyses
        polls (it then asks whether those holders' runs still live)."""
        wanted = set(keys)
        provider, model, prompt_version = identity
        usable = select(SignalRow.id).where(
            SignalRow.symbol == AnalysisClaimRow.symbol,
            SignalRow.bar_date == AnalysisClaimRow.bar_date, SignalRow.mode == "live",
            SignalRow.provider == provider, SignalRow.model == model,
            SignalRow.prompt_version == prompt_version, SignalRow.variant == "",
            SignalRow.status != SignalStatus.ERROR.value).exists()
        with self.session() as session:
            rows = session.execute(select(AnalysisClaimRow.symbol, AnalysisClaimRow.bar_date,
                                          AnalysisClaimRow.holder)
                                   .where(AnalysisClaimRow.analyst == analyst,
                                          AnalysisClaimRow.holder != holder,
                                          AnalysisClaimRow.expires_at >= utcnow(),
                                          AnalysisClaimRow.symbol.in_({s for s, _ in wanted}),
                                          ~usable)).all()
        return {(symbol, bar_date): other for symbol, bar_date, other in rows
                if (symbol, bar_date) in wanted}

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
        reason: str = "",
    ) -> SignalRow:
        """Store a signal (or an error) once per symbol, bar date and analyst.

        An existing `error` row for the same key is replaced by the new attempt; any other
        existing row is returned unchanged, so re-runs never duplicate a signal.
        """
        symbol = validate_symbol(outcome.symbol)
        signal = outcome.signal
        values: dict[str, Any] = {
            "status": status.value,
            "status_reason": reason,
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
            "cached": outcome.cached,
            "original_cost_usd": outcome.original_cost_usd,
            "request_key": outcome.request_key,
            "training_cutoff": outcome.training_cutoff,
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

    def set_mlflow_runs(self, run_ids: Mapping[str, str]) -> None:
        """Link signals to their MLflow runs ({signal id: run id}) in one statement and commit."""
        if not run_ids:
            return
        with self.session() as session:
            session.execute(update(SignalRow), [{"id": signal_id, "mlflow_run_id": run_id}
                                                for signal_id, run_id in run_ids.items()])

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

    def reviews_for(self, signal_id: str) -> list[ReviewRow]:
        with self.session() as session:
            return list(session.scalars(
                select(ReviewRow).where(ReviewRow.signal_id == signal_id)
                .order_by(ReviewRow.decided_at)
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

    def latest_signal_dates(self) -> dict[str, date]:
        """Each symbol's newest bar date with a usable live signal (errors do not count)."""
        with self.session() as session:
            rows = session.execute(
                select(SignalRow.symbol, func.max(SignalRow.bar_date))
                .where(SignalRow.mode == "live", SignalRow.status != SignalStatus.ERROR.value)
                .group_by(SignalRow.symbol)
            ).all()
        return {symbol: bar_date for symbol, bar_date in rows}

