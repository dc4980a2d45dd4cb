"""`llm_signal`: one structured BUY/SELL/HOLD signal per symbol and bar date, stored for review."""


import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase, SignalRow
from resources.broker import Broker
from resources.exchanges import ExchangeStore
from resources.llm import LLMAnalyst
from resources.object_store import ObjectStore
from resources.tracking import Tracking
from trading_assets.assets.charts import charts
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.bars import last_bars_records
from trading_assets.core.exchanges import LIVE_CACHE_DEFAULT
from trading_assets.core.indicators import latest_summary
from trading_assets.core.keys import (
    TIMEFRAMES,
    bars_info_key,
    chart_key,
    indicators_key,
    transcript_key,
)
from trading_assets.core.orders import Position, SymbolSettings
from trading_assets.core.policy import entry_status
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest, SignalStatus
from trading_assets.core.text import inert_markdown, markdown_code
from trading_assets.partitions import symbol_asset
from trading_assets.run_monitor import run_alive
from trading_assets.settings import ConfigError, review_app_url

# An analysis is claimed for this long (longer than any model call with its re-asks). A claim
# belongs to its Dagster run: once that run ended or its process died it is taken over at once
# (AnalysisClaims); the lease bounds the wait only where that cannot be told (another machine).
ANALYSIS_LEASE_S = 900.0
CLAIM_POLL_S = 0.5  # how often a run waiting on another run's analysis looks for its result


def review_status(outcome: AnalysisOutcome, settings: SymbolSettings, held: float,
                  allow_short: bool) -> tuple[SignalStatus, str]:
    """error for a failed analysis; otherwise the policy's entry status (no_action, waiting for
    a person, or auto-approved) and why (core/policy.entry_status)."""
    signal = outcome.signal
    if signal is None or outcome.error:
        return SignalStatus.ERROR, ""
    return entry_status(signal, enabled=settings.enabled, auto_approve=settings.auto_approve,
                        min_confidence=settings.min_confidence, held=held,
                        allow_short=allow_short)


def signal_metadata(row: SignalRow, reused: bool) -> dict[str, object]:
    """What a reviewer wants to see on the materialization: the call, the why, the cost."""
    signal, problem = row.read_signal()
    if signal is None:
        body = f"### {row.symbol}: analysis failed\n\n{markdown_code(problem or row.error)}"
    else:
        # What the model wrote is shown as text: no image it names is fetched, no link is live.
        factors = "\n".join(f"- {inert_markdown(factor, one_line=True)}"
                             for factor in signal.key_factors)
        levels = (f"entry {signal.entry_price}, stop {signal.stop_loss}, target "
                  f"{signal.take_profit}, R {signal.r_multiple}" if signal.entry_price else "none")
        body = (f"### {row.symbol} {signal.action.value} ({signal.confidence_level.value}, "
                f"{signal.confidence_score}/100)\n\n{inert_markdown(signal.reasoning)}\n\n"
                f"**Key factors**\n\n{factors}\n\n**Levels**: {levels}\n\n"
                f"**Trend**: {signal.trend.value}")
    if row.simulated:
        body = "> **SIMULATED DATA** - not market data.\n\n" + body
    if row.provider == "rules":
        body += "\n\n_Rules analyst: deterministic indicator rules, no language model._"
    return {
        "status": row.status,
        "signal_id": row.id,
        "reused_existing_signal": reused,
        "action": row.action or "none (error)",
        "confidence": row.confidence_score if row.confidence_score is not None else -1,
        "provider": row.provider,
        "model": row.model,
        "prompt_version": row.prompt_version,
        "data_source": "SIMULATED (not market data)" if row.simulated else row.data_source,
        "bar_date": str(row.bar_date),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost_usd": dg.MetadataValue.float(float(row.cost_usd)),
        # A recorded answer (LLM_CACHE) costs nothing now; what it cost when it was recorded:
        "cached_answer": bool(row.cached),
        "original_cost_usd": dg.MetadataValue.float(float(row.original_cost_usd or 0.0)),
        "training_cutoff": str(row.training_cutoff) if row.training_cutoff else "n/a",
        "latency_s": dg.MetadataValue.float(round(float(row.latency_s), 3)),
        "mlflow_run_id": row.mlflow_run_id or "not tracked",
        "reasoning": dg.MetadataValue.md(body),
        "review": review_link(row.status),
    }


def review_link(status: str) -> dg.MetadataValue | str:
    """Where a person reviews the signal: the Gradio app's link when GRADIO_PUBLIC_URL is set."""
    if status != SignalStatus.PENDING_REVIEW.value:
        return f"not pending review ({status})"
    try:
        url = review_app_url()
    except ConfigError as exc:  # a bad link setting never fails a stored signal
        return f"review link not shown: {exc}"
    if url:
        return dg.MetadataValue.url(url)
    return ("pending review in the Gradio app (`trading-signals ui`); set GRADIO_PUBLIC_URL to "
            "link it here")


@symbol_asset(
    deps=[charts],
    group_name="signals",
    kinds={"openai", "mlflow"},
    pool="llm",
    description="A TradingSignal per symbol and bar date from the rules analyst or a language "
                "model, stored as pending_review, auto_approved or error (never a made-up HOLD).",
)
def llm_signal(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    app_db: AppDatabase,
    analyst: LLMAnalyst,
    broker: Broker,
    tracking: Tracking,
) -> None:
    loop = SymbolLoop(context, app_db)
    identity = analyst.identity()
    positions = RunPositions(broker)
    requests: list[AnalysisRequest] = []
    for symbol in loop:
        with loop.attempt(symbol):
            info, bar_date = bar_info(store, symbol)
            existing = stored_signal(app_db, identity, symbol, bar_date)
            if existing is not None:
                loop.record(symbol, signal_metadata(existing, reused=True))
                continue
            requests.append(build_request(store, positions.get(symbol), symbol, bar_date, info))
    claims = AnalysisClaims(app_db, "|".join(identity), context.run.run_id,
                            alive=lambda run_id: run_alive(context.instance, run_id))
    exchanges = ExchangeStore(store, app_db, analyst.cache_mode(LIVE_CACHE_DEFAULT),
                              run_id=context.run.run_id)
    mine, waiting = claims.take(requests)
    analyze(context, loop, store, app_db, analyst, tracking, claims, mine, broker.allow_short,
            exchanges)
    # Symbols another run is analysing: reuse its signal, or take over when its claim ends.
    while waiting:
        time.sleep(CLAIM_POLL_S)
        ready, waiting = claims.settled(waiting, identity)
        pending = []
        for request in ready:
            existing = stored_signal(app_db, identity, request.symbol, request.bar_date)
            if existing is None:
                pending.append(request)
            else:
                loop.record(request.symbol, signal_metadata(existing, reused=True))
        mine, held = claims.take(pending)
        waiting += held
        analyze(context, loop, store, app_db, analyst, tracking, claims, mine,
                broker.allow_short, exchanges)
    loop.finish()


def stored_signal(app_db: AppDatabase, identity: tuple[str, str, str], symbol: str,
                  bar_date: date) -> SignalRow | None:
    """The usable signal already stored for this symbol, bar and analyst (errors are redone;
    a waiting row that no longer reads back is shown as an error and redone too)."""
    provider, model, prompt_version = identity
    existing = app_db.find_signal(symbol=symbol, bar_date=bar_date, provider=provider,
                                  model=model, prompt_version=prompt_version)
    if existing is None or existing.status == SignalStatus.ERROR.value:
        return None
    _, problem = existing.read_signal()
    if problem and app_db.fail_signal(existing.id, problem):
        return None
    return existing


class AnalysisClaims:
    """The run's claims on analyses (one per symbol, bar and analyst, across runs).

    A claim belongs to the Dagster run that holds it (the holder is its run id): `alive` says
    whether that run still runs, and a claim of a run that ended or whose process died is taken
    over at once instead of at the end of its lease.
    """

    def __init__(self, app_db: AppDatabase, analyst: str, holder: str,
                 alive: Callable[[str], bool] = lambda _run_id: True) -> None:
        self.app_db, self.analyst, self.holder, self.alive = app_db, analyst, holder, alive

    def take(self, requests: list[AnalysisRequest]
             ) -> tuple[list[AnalysisRequest], list[AnalysisRequest]]:
        """Claim each request: (the ones this run now holds, the ones another run holds)."""
        if not requests:
            return [], []
        keys = [(r.symbol, r.bar_date) for r in requests]
        dead = {h for h in self.app_db.claim_holders(keys, self.analyst, self.holder)
                if not self.alive(h)}
        taken = self.app_db.claim_analyses(keys, self.analyst, self.holder, ANALYSIS_LEASE_S,
                                           dead_holders=dead)
        return ([r for r, ok in zip(requests, taken, strict=True) if ok],
                [r for r, ok in zip(requests, taken, strict=True) if not ok])

    def settled(self, waiting: list[AnalysisRequest], identity: tuple[str, str, str]
                ) -> tuple[list[AnalysisRequest], list[AnalysisRequest]]:
        """(the requests whose other holder is done: signal stored, lease ended or its run no
        longer alive; the ones still in progress there), in one query for all of them however
        many wait."""
        held = self.app_db.analyses_in_progress([(r.symbol, r.bar_date) for r in waiting],
                                                analyst=self.analyst, holder=self.holder,
                                                identity=identity)
        living = {h: self.alive(h) for h in set(held.values())}
        busy = {key for key, holder in held.items() if living[holder]}
        return ([r for r in waiting if (r.symbol, r.bar_date) not in busy],
                [r for r in waiting if (r.symbol, r.bar_date) in busy])

    def release(self, requests: list[AnalysisRequest]) -> None:
        self.app_db.release_analyses([(r.symbol, r.bar_date) for r in requests], self.analyst,
                                     self.holder)


def analyze(context: dg.AssetExecutionContext, loop: SymbolLoop, store: ObjectStore,
            app_db: AppDatabase, analyst: LLMAnalyst, tracking: Tracking,
            claims: AnalysisClaims, requests: list[AnalysisRequest], allow_short: bool,
            exchanges: ExchangeStore) -> None:
    """Call the analyst for the claimed requests (recorded answers first, as LLM_CACHE says),
    store and track each outcome, then release."""
    if not requests:
        return
    tracked: dict[str, str] = {}  # signal id -> MLflow run id, written in one commit
    try:
        outcomes = analyst.analyze_many(requests, exchanges=exchanges)
        for request, outcome in zip(requests, outcomes, strict=True):
            with loop.attempt(request.symbol):
                row = store_signal(store, app_db, request, outcome,
                                   loop.settings(request.symbol), context.run.run_id,
                                   allow_short)
                result = tracking.log_signal(
                    signal_id=row.id, status=row.status, outcome=outcome, request=request,
                    data_source=request.data_source, dagster_run_id=context.run.run_id,
                )
                if result.run_id:
                    tracked[row.id] = row.mlflow_run_id = result.run_id
                loop.record(request.symbol, signal_metadata(row, reused=False) | result.metadata())
                if row.status == SignalStatus.ERROR.value:
                    loop.fail(request.symbol, f"analysis failed: {row.error}")
    finally:
        try:
            app_db.set_mlflow_runs(tracked)
        finally:
            claims.release(requests)


class RunPositions:
    """The broker's positions by symbol, read once per run when a symbol first needs them.

    Nothing trades while signals are made, so one read serves every symbol of the run (the
    IBKR read is two round trips to the gateway). A read that fails raises inside the asking
    symbol's attempt, as a per-symbol lookup did, and the next symbol tries again.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._by_symbol: dict[str, Position] | None = None

    def get(self, symbol: str) -> Position | None:
        if self._by_symbol is None:
            self._by_symbol = {p.symbol: p for p in self.broker.positions()}
        return self._by_symbol.get(symbol)


def bar_info(store: ObjectStore, symbol: str) -> tuple[dict[str, Any], date]:
    """The bars info ohlcv stored for the symbol, and the date of its last bar."""
    info = store.read_json(bars_info_key(symbol))
    assert isinstance(info, dict)
    return info, date.fromisoformat(str(info["last_date"]))


def build_request(store: ObjectStore, position: Position | None, symbol: str, bar_date: date,
                  info: dict[str, Any]) -> AnalysisRequest:
    """Everything the analyst sees, read back from the store (only bars up to bar_date exist)."""
    frames = {t: store.read_frame(indicators_key(symbol, t)) for t in TIMEFRAMES}
    pngs = {t: store.get_bytes(chart_key(symbol, t, bar_date)) for t in TIMEFRAMES}
    return AnalysisRequest(
        symbol=symbol,
        bar_date=bar_date,
        data_source=str(info["source"]),
        simulated=bool(info["simulated"]),
        daily_summary=latest_summary(frames["daily"]),
        weekly_summary=latest_summary(frames["weekly"]),
        # The daily indicator frame starts with the bars' own columns: no second read of them.
        last_bars=last_bars_records(frames["daily"]),
        position={k: float(v) for k, v in asdict(position).items()
                  if isinstance(v, int | float) and v is not None} if position else {},
        daily_chart_png=pngs["daily"],
        weekly_chart_png=pngs["weekly"],
    )


def store_signal(store: ObjectStore, app_db: AppDatabase, request: AnalysisRequest,
                 outcome: AnalysisOutcome, settings: SymbolSettings, run_id: str,
                 allow_short: bool = False) -> SignalRow:
    """The outcome stored as a signal row with its review status; its transcript beside it."""
    status, reason = review_status(outcome, settings, request.position.get("quantity", 0.0),
                                   allow_short)
    row = app_db.record_signal(
        outcome=outcome,
        bar_date=request.bar_date,
        status=status,
        reason=reason,
        data_source=request.data_source,
        simulated=request.simulated,
        last_bars=request.last_bars,
        indicators={"daily": request.daily_summary, "weekly": request.weekly_summary},
        chart_keys={t: chart_key(request.symbol, t, request.bar_date) for t in TIMEFRAMES},
        dagster_run_id=run_id,
    )
    if outcome.transcript:
        store.write_json(transcript_key(request.symbol, row.id), outcome.transcript)
    return row
