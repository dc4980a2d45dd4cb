"""`trading-signals`: the demo, materializations, symbols and signal review from a terminal.

Runs materialize in-process against the project's Dagster instance (DAGSTER_HOME, default
./.dagster_home), so no process is started per run and every run shows in the Dagster UI.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEMO_SYMBOLS = "TSLA,NVDA"
# Dagster's console logger prints every event at DEBUG; the CLI prints its own summary.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or a project-local .dagster_home, creating it if needed."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # SQLite storage under this folder (Dagster's default) with telemetry off.
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> Any:
    import dagster as dg

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def positive_int(raw: str) -> int:
    """An argparse type for counts: a whole number of 1 or more, else a clear usage error."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} must be 1 or more")
    return value


def materialize_symbols(symbols: list[str], instance: Any | None = None,
                        resources: dict[str, Any] | None = None,
                        assets: Sequence[Any] | None = None) -> Any:
    """Add the symbols as partitions and materialize the graph for them in as few runs as possible.

    Dagster ranges over dynamic partitions follow insertion order, so the symbols are grouped
    into contiguous ranges of the partition list: usually one run.
    """
    from trading_assets.definitions import SYMBOL_ASSETS, SYMBOL_CHECKS
    from trading_assets.partitions import register_symbols
    from trading_assets.settings import build_resources

    instance = instance or get_instance()
    resources = resources or build_resources()
    register_symbols(instance, resources["app_db"], symbols)
    return materialize_ranges(instance, symbols, list(assets or [*SYMBOL_ASSETS, *SYMBOL_CHECKS]),
                              resources)


def materialize_ranges(instance: Any, symbols: list[str], assets: Sequence[Any],
                       resources: dict[str, Any]) -> list[Any]:
    """Materialize `assets` for symbols that are already partitions, a run per contiguous range."""
    import dagster as dg

    from trading_assets.partitions import SYMBOLS_PARTITION

    return [
        dg.materialize(
            assets, instance=instance, resources=resources, raise_on_error=False,
            run_config=QUIET_RUN_CONFIG,
            tags={"dagster/asset_partition_range_start": start,
                  "dagster/asset_partition_range_end": end},
        )
        for start, end in contiguous_ranges(instance.get_dynamic_partitions(SYMBOLS_PARTITION),
                                            symbols)
    ]


def contiguous_ranges(all_keys: Sequence[str], wanted: Sequence[str]) -> list[tuple[str, str]]:
    """(start, end) ranges of `all_keys` covering exactly the `wanted` keys.

    The logic lives in trading_assets.partitions (shared with the schedule and sensors); this
    wrapper keeps `import trading_assets.cli` free of Dagster imports.
    """
    from trading_assets.partitions import contiguous_ranges as ranges

    return ranges(all_keys, wanted)


def summary_rows(symbols: list[str], resources: dict[str, Any]) -> list[dict[str, str]]:
    """One row per symbol for the demo table, read back from the store and the database."""
    from trading_assets.core.keys import TIMEFRAMES, bars_info_key, chart_key

    store, app_db = resources["store"], resources["app_db"]
    rows = []
    for symbol in symbols:
        row = {"symbol": symbol}
        try:
            info = store.read_json(bars_info_key(symbol))
        except FileNotFoundError:
            rows.append({**row, "source": "-", "order": "no bars: see the run's errors"})
            continue
        signal = app_db.latest_signal(symbol)
        row["source"] = "SIMULATED" if info["simulated"] else info["source"]
        row["last bar"] = f"{info['last_date']} {info['last_close']:.2f}"
        if signal is not None:
            row["action"] = signal.action or "-"
            row["conf"] = str(signal.confidence_score) if signal.confidence_score is not None \
                else "-"
            row["status"] = signal.status
            row["analyst"] = signal.provider
            order = app_db.order_for_signal(signal.id)
            decisions = app_db.decisions_for(symbol, limit=1)
            row["order"] = (f"{order.action} {order.quantity:g} {order.status}" if order
                            else f"none: {decisions[0].reason}" if decisions else "none")
            if signal.status == "error":
                row["order"] = f"none: {signal.error[:80]}"
        from datetime import date as _date

        last = _date.fromisoformat(info["last_date"])
        row["charts"] = "  ".join(store.location(chart_key(symbol, t, last)) for t in TIMEFRAMES)
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, str]], columns: Sequence[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def failures_of(results: list[Any]) -> list[str]:
    """The runs' failed steps, each with its underlying error (not Dagster's wrapper)."""
    from trading_assets.core.errors import root_error

    lines = []
    for result in results:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                error = root_error(event.event_specific_data.error)
                lines.append(f"{event.step_key}: {error.message.strip()}")
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    return run_and_report(args.symbols or os.environ.get("SYMBOLS") or DEMO_SYMBOLS, demo=True)


def cmd_materialize(args: argparse.Namespace) -> int:
    return run_and_report(args.symbols, demo=False)


def run_and_report(raw_symbols: str, demo: bool) -> int:
    from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
    from trading_assets.settings import build_resources

    try:
        symbols = parse_symbols(raw_symbols)
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    home = ensure_dagster_home()
    resources = build_resources()
    market, analyst, broker = resources["market_data"], resources["analyst"], resources["broker"]
    print(f"Dagster instance : {home}")
    print(f"Market data      : {market.describe()}")
    print(f"Analyst          : {analyst.label}")
    print(f"Broker           : {broker.label}")
    print(f"Tracking         : {resources['tracking'].label}")
    print(f"Symbols          : {', '.join(symbols)}\n")
    results = materialize_symbols(symbols, resources=resources)
    rows = summary_rows(symbols, resources)
    print_table(rows, ["symbol", "source", "last bar", "action", "conf", "status", "analyst",
                       "order", "charts"])
    failed_lines = failures_of(results)
    failed_rows = [r for r in rows if r.get("status") in (None, "error")]
    if any(r.get("source") == "SIMULATED" for r in rows):
        print("\nSIMULATED DATA: bars are generated, not market prices. Set TRADING_DATA_SOURCE "
              "to csv or ibkr for real data.")
    if analyst.provider == "rules":
        print("Signals come from the deterministic rules analyst (no language model). Set "
              "LLM_BASE_URL/LLM_API_KEY for a model.")
    print(resources["tracking"].ui_hint)
    for line in failed_lines:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"\n{len(results)} Dagster run(s) in {time.perf_counter() - started:.1f} s. "
          + ("Review signals: trading-signals signals list; UI: make dev" if demo else ""))
    return 1 if failed_lines or failed_rows else 0


def cmd_symbols(args: argparse.Namespace) -> int:
    from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
    from trading_assets.partitions import list_symbols, register_symbols, unregister_symbols
    from trading_assets.settings import build_resources

    instance = get_instance()
    app_db = build_resources()["app_db"]
    if args.action == "list":
        symbols = list_symbols(instance)
        rows = []
        for s in app_db.settings_by_symbol(symbols).values():
            rows.append({"symbol": s.symbol, "enabled": str(s.enabled), "priority": str(s.priority),
                         "size %": f"{s.position_size_pct:g}", "auto": str(s.auto_approve),
                         "min conf": str(s.min_confidence)})
        if rows:
            print_table(rows, ["symbol", "enabled", "priority", "size %", "auto", "min conf"])
        else:
            print("No symbols yet: trading-signals symbols add AAPL,MSFT")
        return 0
    try:
        symbols = parse_symbols(",".join(args.symbols))
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "add":
        new = register_symbols(instance, app_db, symbols)
        print(f"added: {', '.join(new) or 'none (already there)'}")
    else:
        removed, _ = unregister_symbols(instance, app_db, symbols)
        print(f"removed: {', '.join(removed) or 'none (not there)'}")
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    from trading_assets.core.errors import error_text
    from trading_assets.core.review import REVIEW_DECISIONS, reviewer_name
    from trading_assets.core.signal import SignalStatus
    from trading_assets.settings import build_resources

    app_db = build_resources()["app_db"]
    if args.action == "list":
        rows = [{"id": s.id, "symbol": s.symbol, "bar date": str(s.bar_date),
                 "action": s.action or "-",
                 "conf": "-" if s.confidence_score is None else str(s.confidence_score),
                 "status": s.status, "analyst": f"{s.provider}/{s.model}",
                 "data": "SIMULATED" if s.simulated else s.data_source,
                 "reason": s.status_reason[:100] or "-"}
                for s in app_db.list_signals(symbol=args.symbol, status=args.status)]
        if rows:
            print_table(rows, ["id", "symbol", "bar date", "action", "conf", "status", "analyst",
                               "data", "reason"])
        else:
            print("No signals match.")
        return 0
    decision = REVIEW_DECISIONS[args.action]
    reviewer = reviewer_name(args.reviewer)
    try:
        row = app_db.review_signal(args.signal_id, decision, reviewer=reviewer, note=args.note)
    except (KeyError, ValueError) as exc:
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 2
    print(f"{row.id} {row.symbol} {row.action}: {row.status} by {reviewer}")
    if decision is SignalStatus.APPROVED:
        print(f"Place the order: trading-signals materialize --symbols {row.symbol} "
              "(or let the approved-signals sensor do it). A hard risk limit can still refuse "
              "it: it then shows as not_placed with the reason (signals list).")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ui.app import main as ui_main  # Gradio loads only for this command

    return ui_main()


def cmd_dev(args: argparse.Namespace) -> int:
    """The Dagster UI (webserver + daemon) on the project's instance, on localhost."""
    ensure_dagster_home()
    workspace = Path(args.workspace).resolve()
    if not workspace.exists():
        print(f"error: {workspace} not found; run from the project folder.", file=sys.stderr)
        return 2
    command = ["dagster", "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {os.environ['DAGSTER_HOME']})")
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    from trading_assets.core.review import REVIEW_DECISIONS

    parser = argparse.ArgumentParser(prog="trading-signals", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="materialize the demo symbols on embedded defaults")
    demo.add_argument("--symbols", default="", help=f"comma-separated (default {DEMO_SYMBOLS} "
                                                    "or $SYMBOLS)")
    demo.set_defaults(func=cmd_demo)

    mat = sub.add_parser("materialize", help="materialize the graph for symbols")
    mat.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    mat.set_defaults(func=cmd_materialize)

    symbols = sub.add_parser("symbols", help="add, remove or list symbols (dynamic partitions)")
    symbols.add_argument("action", choices=["add", "remove", "list"])
    symbols.add_argument("symbols", nargs="*", help="e.g. AAPL MSFT or AAPL,MSFT")
    symbols.set_defaults(func=cmd_symbols)

    signals = sub.add_parser("signals", help="list, approve or reject signals")
    signals.add_argument("action", choices=["list", *REVIEW_DECISIONS])
    signals.add_argument("signal_id", nargs="?", default="")
    signals.add_argument("--symbol", default=None)
    signals.add_argument("--status", default=None)
    signals.add_argument("--note", default="")
    signals.add_argument("--reviewer", default=None, help="who decides (default: the OS user)")
    signals.set_defaults(func=cmd_signals)

    ui = sub.add_parser("ui", help="start the Gradio app: symbols, signal review, portfolio "
                                   "(GRADIO_SERVER_NAME/PORT, GRADIO_USERNAME/PASSWORD)")
    ui.set_defaults(func=cmd_ui)

    from trading_assets.bench import add_parser as add_bench_parser
    from trading_assets.replay import add_parser as add_replay_parser

    add_replay_parser(sub)
    add_bench_parser(sub)
    dev = sub.add_parser("dev", help="the Dagster UI on localhost (dagster dev)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT", "3000")))
    dev.add_argument("--workspace", default="workspace.yaml")
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Dagster marks backfill policies and partitioned checks beta/preview; they are pinned by
    # our tests, so the warnings are noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*(currently in beta|currently in preview).*")
    warnings.filterwarnings("ignore", category=UserWarning, module="dagster")
    if args.command == "symbols" and args.action != "list" and not args.symbols:
        parser.error(f"symbols {args.action} needs at least one symbol")
    if args.command == "signals" and args.action != "list" and not args.signal_id:
        parser.error(f"signals {args.action} needs a signal id (see: trading-signals signals list)")
    from trading_assets.settings import ConfigError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
