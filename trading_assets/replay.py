"""`trading-signals replay`: run an analyst on past dates and score what it said.

    trading-signals replay --symbols AAPL,MSFT --start 2024-01-01 --end 2024-12-31 \\
        --every 5 --provider rules|openai [--images on|off|both] [--with-rules]

For each symbol the bar history comes from the configured source (TRADING_DATA_SOURCE); on
every --every-th trading day from --start to --end the analyst sees only the bars up to that
day (trading_assets.core.replay). Signals are stored with mode 'replay' and status 'replay'
(or 'error'): they are never reviewed or executed. Then signal_outcomes and signal_scorecard
are materialized for the symbols in the project's Dagster instance, so the scorecard shows in
the Dagster UI and in MLflow.

A/B tests on the same dates: `--images both` runs the model with and without chart images
(variants 'images' and 'no-images'), `--with-rules` adds the rules analyst.

Model calls go through LLMAnalyst.analyze_many in batches, so LLM_CONCURRENCY bounds the calls
in flight, and LLM_MAX_COST_USD caps the spend of the whole replay: each batch gets only what
is left of the cap, and no batch starts once it is spent. A replay that is run again skips
the dates it already has for the same analyst (provider, model, prompt version, variant), so
an interrupted or capped replay resumes where it stopped.

Every model answer goes through the recorded exchange store (LLM_CACHE, default `record` in a
replay): an answer already recorded for the very same request is used without a model call
and costs nothing, and every new answer is recorded as it arrives, so even answers a crashed
replay never stored as signals are not paid for twice. The summary says how many answers came
from the store and how many from the model, what they cost and what they would have cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from trading_assets.console import positive_int
from trading_assets.core.config import LLMSettings
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest

if TYPE_CHECKING:  # pandas loads when a replay runs, not with every CLI command
    import pandas as pd

    from resources.exchanges import ExchangeTally
    from resources.market_data import MarketData

DEFAULT_BATCH_SIZE = 40


@dataclass(frozen=True)
class History:
    """A symbol's full bar history as fetched for the replay."""

    symbol: str
    frame: pd.DataFrame
    source: str
    simulated: bool


@dataclass
class Arm:
    """One analyst set-up in a replay: its stored variant, whether it is sent chart images,
    and how to build it for the USD left under the cost cap (0 = no cap)."""

    name: str
    variant: str
    images: bool
    make: Callable[[float], Any]
    # (provider, model, prompt_version): finds the dates an earlier replay already stored.
    identity: tuple[str, str, str] | None = None
    paid: bool = True  # False for the rules analyst: the cost cap never stops it


@dataclass
class ReplayReport:
    """What a replay stored, skipped and spent."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    reused: int = 0
    not_run: int = 0
    failed_dates: int = 0
    spent_usd: float = 0.0
    errors: list[str] = field(default_factory=list)
    # Where the model answers came from (recorded exchange store or the model) and their cost.
    exchanges: ExchangeTally | None = None

    def stored(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_replay(histories: Sequence[History], dates: Mapping[str, Sequence[date]],
               arms: Sequence[Arm], app_db: Any, store: Any, *,
               batch_size: int = DEFAULT_BATCH_SIZE, max_cost_usd: float = 0.0,
               window: int = 400, progress: Callable[[str], None] = lambda _: None
               ) -> ReplayReport:
    """Walk forward over every (symbol, date), run each arm, store the signals as replays.

    Requests are built one batch at a time (charts only if an arm that still needs the batch
    is sent images), so memory stays flat over long histories.
    """
    from resources.exchanges import ExchangeStore, ExchangeTally
    from trading_assets.core.exchanges import REPLAY_CACHE_DEFAULT
    from trading_assets.core.keys import transcript_key
    from trading_assets.core.replay import build_replay_request, without_charts

    report = ReplayReport(counts={arm.name: Counter() for arm in arms},
                          exchanges=ExchangeTally())
    by_symbol = {h.symbol: h for h in histories}
    keys = [(h.symbol, d) for h in histories for d in dates.get(h.symbol, [])]
    for batch in _chunks(keys, max(1, batch_size)):
        needed: dict[str, list[tuple[str, date]]] = {}
        for arm in arms:
            needed[arm.name] = [k for k in batch if not _stored(app_db, arm, *k)]
            report.reused += len(batch) - len(needed[arm.name])
        wanted = {k for arm in arms for k in needed[arm.name]}
        if not wanted:
            continue
        with_charts = {k for arm in arms if arm.images for k in needed[arm.name]}
        requests: dict[tuple[str, date], AnalysisRequest] = {}
        for key in batch:
            if key in wanted:
                history = by_symbol[key[0]]
                try:
                    requests[key] = build_replay_request(
                        key[0], history.frame, key[1], data_source=history.source,
                        simulated=history.simulated, with_charts=key in with_charts,
                        window=window)
                except Exception as exc:  # one bad date never sinks the replay
                    report.failed_dates += 1
                    if len(report.errors) < 5:
                        report.errors.append(f"{key[0]} {key[1]}: request not built: "
                                             f"{type(exc).__name__}: {exc}")
        for arm in arms:
            todo = [requests[k] for k in needed[arm.name] if k in requests]
            if not todo:
                continue
            if not arm.images:
                todo = without_charts(todo)
            remaining = max_cost_usd - report.spent_usd
            if arm.paid and max_cost_usd > 0 and remaining <= 0:
                report.not_run += len(todo)
                continue
            analyst = arm.make(remaining if max_cost_usd > 0 else 0.0)
            exchanges = ExchangeStore(store, app_db, analyst.cache_mode(REPLAY_CACHE_DEFAULT),
                                      tally=report.exchanges)
            started = time.perf_counter()
            outcomes = analyst.analyze_many(todo, exchanges=exchanges)
            for request, outcome in zip(todo, outcomes, strict=True):
                report.spent_usd += outcome.cost_usd
                row = _record(app_db, request, outcome, arm.variant)
                if outcome.transcript:
                    store.write_json(transcript_key(request.symbol, row.id), outcome.transcript)
                report.counts[arm.name][row.action or "error"] += 1
                if row.error and len(report.errors) < 5:
                    report.errors.append(f"{request.symbol} {request.bar_date}: {row.error}")
            progress(f"{arm.name}: {todo[0].symbol} {todo[0].bar_date} .. {todo[-1].symbol} "
                     f"{todo[-1].bar_date}: {len(todo)} signal(s) in "
                     f"{time.perf_counter() - started:.1f} s")
    return report


def _stored(app_db: Any, arm: Arm, symbol: str, day: date) -> bool:
    """A usable replay signal of this arm already exists for the symbol and date."""
    if arm.identity is None:
        return False
    provider, model, prompt_version = arm.identity
    row = app_db.find_signal(symbol=symbol, bar_date=day, provider=provider, model=model,
                             prompt_version=prompt_version, mode="replay", variant=arm.variant)
    return row is not None and row.status != "error"


def _record(app_db: Any, request: AnalysisRequest, outcome: AnalysisOutcome,
            variant: str) -> Any:
    """Store one replayed signal: status replay (error when the analyst failed), mode replay."""
    from trading_assets.core.signal import SignalStatus

    return app_db.record_signal(
        outcome=outcome, bar_date=request.bar_date,
        status=SignalStatus.REPLAY if outcome.ok else SignalStatus.ERROR,
        data_source=request.data_source, simulated=request.simulated,
        last_bars=request.last_bars,
        indicators={"daily": request.daily_summary, "weekly": request.weekly_summary},
        chart_keys={}, mode="replay", variant=variant,
    )


# --- the command -------------------------------------------------------------------------------


def _parse_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date like 2024-01-31") from None


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `replay` on the trading-signals subcommands."""
    parser = sub.add_parser(
        "replay", help="run the analyst on past dates (no lookahead) and build the scorecard",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    parser.add_argument("--start", required=True, type=_parse_date, help="first date, YYYY-MM-DD")
    parser.add_argument("--end", type=_parse_date, default=None,
                        help="last date, YYYY-MM-DD (default: the last bar)")
    parser.add_argument("--every", type=positive_int, default=5,
                        help="analyse every N-th trading day (default 5, about weekly)")
    parser.add_argument("--provider", choices=["rules", "openai"], default="rules",
                        help="rules (offline, deterministic) or openai (LLM_* settings)")
    parser.add_argument("--images", choices=["on", "off", "both"], default=None,
                        help="openai only: send chart images, not, or both as an A/B test "
                             "(default: LLM_SEND_IMAGES, on)")
    parser.add_argument("--with-rules", action="store_true",
                        help="also run the rules analyst on the same dates (A/B baseline)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                        help=f"requests per analyze_many call (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--no-scorecard", action="store_true",
                        help="store the signals only; do not materialize the scorecard")
    parser.set_defaults(func=main)
    return parser


def build_arms(env: Mapping[str, str], provider: str, images: str | None,
               with_rules: bool) -> list[Arm]:
    """The analyst set-ups to replay, each configured from `env` as the settings do."""
    from resources.analysts import analyst_from_env

    def analyst_factory(overrides: dict[str, str]) -> Callable[[float], Any]:
        def make(budget_usd: float) -> Any:
            cap = {"LLM_MAX_COST_USD": f"{budget_usd:.6f}"} if budget_usd > 0 else {}
            return analyst_from_env({**env, **overrides, **cap})
        return make

    arms: list[Arm] = []
    if provider == "openai":
        chosen = images or ("on" if LLMSettings.from_env(env).send_images else "off")
        for send in ((True, False) if chosen == "both" else (chosen == "on",)):
            variant = "images" if send else "no-images"
            make = analyst_factory({"LLM_PROVIDER": "openai",
                                    "LLM_SEND_IMAGES": "true" if send else "false"})
            arms.append(Arm(f"openai [{variant}]", variant, send, make))
    if provider == "rules" or with_rules:
        arms.append(Arm("rules", "", False, analyst_factory({"LLM_PROVIDER": "rules"}),
                        paid=False))
    for arm in arms:
        arm.identity = arm.make(0.0).identity()
    return arms


def replay_market(market: MarketData, start: date, window: int) -> MarketData:
    """The configured market data, fetching enough days to reach `window` bars before `start`."""
    import pandas as pd

    needed = len(pd.bdate_range(start, market.last_session())) + window + 5
    return market.with_lookback_days(max(needed, market.lookback_days))


def fetch_history(market: MarketData, symbol: str, app_db: Any) -> History:
    """The symbol's bars from `market` (see replay_market), refused when they fail the checks."""
    from trading_assets.core.bars import BarDataError, checked_bars

    try:
        bars = market.fetch(symbol, app_db.settings_for(symbol))
    except BarDataError as exc:
        hint = " Choose a later --start." if market.source == "simulated" else ""
        raise BarDataError(f"{symbol}: {exc}.{hint}") from exc
    frame = checked_bars(bars.frame, symbol, bars.source)
    return History(symbol, frame, bars.source, bars.simulated)


def keep_history(store: Any, history: History) -> None:
    """Store the replayed history (merged with an earlier one) for signal_outcomes."""
    import pandas as pd

    from trading_assets.core.keys import replay_bars_key

    key = replay_bars_key(history.symbol)
    frame = history.frame
    if store.exists(key):
        old = store.read_frame(key)
        # Keep older dates an earlier replay covered; the new fetch wins where both have a bar.
        frame = pd.concat([old[~old["date"].isin(frame["date"])], frame]) \
            .sort_values("date").reset_index(drop=True)
    store.write_frame(key, frame)


def score(symbols: list[str], resources: dict[str, Any]) -> list[Any]:
    """Materialize signal_outcomes for the symbols, then signal_scorecard, in the instance."""
    import dagster as dg

    from trading_assets.assets.scorecard import signal_outcomes, signal_scorecard
    from trading_assets.partitions import add_symbols
    from trading_assets.runs import QUIET_RUN_CONFIG, get_instance, materialize_ranges, outcome

    instance = get_instance()
    # Partitions only: replayed symbols are not added to the user's symbol settings.
    add_symbols(instance, symbols)
    results = materialize_ranges(instance, symbols, [signal_outcomes], resources, "replay")
    scorecard = dg.materialize([signal_scorecard], instance=instance, resources=resources,
                               raise_on_error=False, run_config=QUIET_RUN_CONFIG,
                               tags={"trading/launched_by": "replay"})
    return [*results, outcome(instance, scorecard.run_id, "in-process")]


def print_scorecard(resources: dict[str, Any], symbols: list[str]) -> None:
    """The headline per analyst set-up and the A/B differences, as the terminal shows them."""
    import pandas as pd

    from resources.outcomes import read_outcomes
    from trading_assets.console import print_table
    from trading_assets.core.scorecard import scorecard_tables, training_period_warning
    from trading_assets.core.training import NO_TRAINING

    outcomes = read_outcomes(resources["store"], symbols)
    tables = scorecard_tables(outcomes)

    def pct(value: float) -> str:
        return "-" if pd.isna(value) else f"{value:.0%}"

    rows = [{"analyst": r.analyst, "signals": str(r.signals), "scored": str(r.n),
             "hit rate (5 bars)": pct(r.hit_rate), "95% CI": f"{pct(r.ci_low)}-{pct(r.ci_high)}",
             "HOLD share": pct(r.hold_share)} for r in tables["by_analyst"].itertuples()]
    if rows:
        print("\nScorecard for these symbols (replay and live signals):")
        print_table(rows, list(rows[0]))
    ab = [{"A": r.arm_a, "B": r.arm_b, "dates": str(r.common_dates),
           "A-B": f"{r.difference:+.0%}", "95% CI": f"{r.ci_low:+.0%} .. {r.ci_high:+.0%}"}
          for r in tables["ab"].itertuples()]
    if ab:
        print("\nA/B on common dates (Newcombe interval):")
        print_table(ab, list(ab[0]))
    periods = [{"analyst": r.analyst, "dates": r.training_period, "scored": str(r.n),
                "hit rate (5 bars)": pct(r.hit_rate),
                "95% CI": f"{pct(r.ci_low)}-{pct(r.ci_high)}"}
               for r in tables["by_training_period"].itertuples()
               if r.training_period != NO_TRAINING]
    if periods:
        print("\nModel signals before and after the model's training cutoff:")
        print_table(periods, list(periods[0]))
    if warning := training_period_warning(outcomes):
        print(warning, file=sys.stderr)


def recorded_answers_label(analyst: Any) -> str:
    """The replay's LLM_CACHE mode and what it does, for the header."""
    from trading_assets.core.exchanges import MODE_MEANING, REPLAY_CACHE_DEFAULT

    mode = analyst.cache_mode(REPLAY_CACHE_DEFAULT)
    return f"LLM_CACHE={mode}: {MODE_MEANING[mode]}"


def training_warnings(arms: list[Arm], dates: Mapping[str, Sequence[date]]) -> list[str]:
    """One warning per model whose training period holds some of the replay's dates (or
    whose cutoff is unknown): a model may remember what followed those dates."""
    from trading_assets.core.training import replay_period_warning

    days = {d for symbol_dates in dates.values() for d in symbol_dates}
    warnings: list[str] = []
    for arm in arms:
        if not arm.paid:
            continue
        analyst = arm.make(0.0)
        warning = replay_period_warning(analyst.model, analyst.training_cutoff(), days)
        if warning and warning not in warnings:
            warnings.append(warning)
    return warnings


def usage_problem(args: argparse.Namespace) -> str:
    """Why the options cannot go together ("" when they can)."""
    if args.end is not None and args.start > args.end:
        return f"--start {args.start} is after --end {args.end}."
    if args.provider == "rules" and args.images:
        return "--images applies to --provider openai only."
    return ""


def answers_line(tally: Any) -> str:
    """Where the model answers came from and what they cost, in one line."""
    would = tally.spent_usd + tally.saved_usd
    line = (f"Model answers: {tally.from_model} from the model (${tally.spent_usd:.4f}), "
            f"{tally.from_store} from the recorded store ($0; ${tally.saved_usd:.4f} when "
            f"recorded); without the store: ${would:.4f}.")
    if tally.refused:
        line += (f" {tally.refused} request(s) had no recorded answer (LLM_CACHE=strict): "
                 "no call made.")
    return line


def print_replay_report(report: Any, arms: list[Any], cap: float) -> None:
    """What each analyst stored, what was reused or spent, where the model answers came from,
    and what was not sent or failed."""
    for arm in arms:
        counts = report.counts[arm.name]
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing new"
        print(f"{arm.name}: {summary}")
    if report.reused:
        print(f"{report.reused} signal(s) already stored by an earlier replay were kept.")
    if any(arm.paid for arm in arms) and report.exchanges is not None:
        print(answers_line(report.exchanges))
        if report.exchanges.unrecorded:
            print(f"{report.exchanges.unrecorded} answer(s) could not be recorded: "
                  f"{report.exchanges.errors[0]}", file=sys.stderr)
    if report.spent_usd:
        print(f"Estimated model cost: ${report.spent_usd:.4f}")
    if report.not_run:
        print(f"LLM_MAX_COST_USD (${cap:g}) reached: {report.not_run} request(s) not sent. "
              "Run the same command again to continue: stored dates are skipped and each run "
              "may spend up to the cap.", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run the replay command; 0 when every symbol replayed and the scorecard materialized."""
    import pandas as pd

    from trading_assets.assets.scorecard import scorecard_experiment
    from trading_assets.core.bars import BarDataError
    from trading_assets.core.replay import ReplayError, replay_dates
    from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
    from trading_assets.runs import ensure_dagster_home

    try:
        symbols = parse_symbols(args.symbols)
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problem := usage_problem(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    started = time.perf_counter()
    home = ensure_dagster_home()
    resources = args.resources  # the CLI's checked resources, from this same environment
    app_db, store = resources["app_db"], resources["store"]
    window = resources["market_data"].lookback_days  # the history a live run analyses
    market = replay_market(resources["market_data"], args.start, window)
    arms = build_arms(env, args.provider, args.images, args.with_rules)
    print(f"Dagster instance : {home}")
    print(f"Market data      : {resources['market_data'].describe()}")
    print(f"Analysts         : {'; '.join(arm.make(0.0).label for arm in arms)}")
    if any(arm.paid for arm in arms):
        print(f"Recorded answers : {recorded_answers_label(arms[0].make(0.0))}")
    histories, dates, failed = [], {}, {}
    for symbol in symbols:
        try:
            history = fetch_history(market, symbol, app_db)
            end = args.end or pd.Timestamp(history.frame["date"].iloc[-1]).date()
            dates[symbol] = replay_dates(history.frame, args.start, end, args.every)
        except (BarDataError, ReplayError, OSError) as exc:
            failed[symbol] = str(exc)
            print(f"FAILED {symbol}: {exc}", file=sys.stderr)
            continue
        keep_history(store, history)
        histories.append(history)
        first_last = f"{dates[symbol][0]} .. {dates[symbol][-1]}" if dates[symbol] else "none"
        print(f"{symbol:<16} : {len(dates[symbol])} date(s) {first_last} "
              f"({'SIMULATED' if history.simulated else history.source} bars)")
    for warning in training_warnings(arms, dates):
        print(warning, file=sys.stderr)
    cap = LLMSettings.from_env(env).max_cost_usd if args.provider == "openai" else 0.0
    report = run_replay(histories, dates, arms, app_db, store, batch_size=args.batch_size,
                        max_cost_usd=cap, window=window, progress=lambda m: print(f"  {m}"))
    print_replay_report(report, arms, cap)
    scored = [h.symbol for h in histories]
    run_failures: list[str] = []
    if scored and not args.no_scorecard:
        # A run that failed before any step (cancelled, launch error) has no step failures.
        run_failures = [line for run in score(scored, resources) if not run.success
                        for line in run.failures or [f"run {run.run_id[:8]} {run.status}"]]
        print_scorecard(resources, scored)
        print("\nDagster UI: asset signal_scorecard (group evaluation); MLflow: experiment "
              f"'{scorecard_experiment(resources['tracking'])}'. How to read it: "
              "docs/scorecard.md")
    if any(h.simulated for h in histories):
        print("SIMULATED DATA: the scorecard measures the analyst on generated bars, not "
              "market prices.")
    for line in run_failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"\nReplay finished in {time.perf_counter() - started:.1f} s.")
    all_errors = report.stored() > 0 and all(
        set(c) <= {"error"} for c in report.counts.values() if c)
    return 1 if (failed or run_failures or all_errors or report.not_run
                 or report.failed_dates) else 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="trading-signals")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["replay", *sys.argv[1:]])
    sys.exit(main(_args))
