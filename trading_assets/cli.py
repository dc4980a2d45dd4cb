"""`trading-signals`: the demo, materializations, symbols and signal review from a terminal.

Argument parsing and printing only; runs go through trading_assets.runs: to the Dagster daemon's
queue when one is running on the project's instance (DAGSTER_HOME, default ./.dagster_home),
else in this process (`--in-process` forces that). Either way every run shows in the Dagster UI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trading_assets.console import OneLineParser, port_number, print_table, ticker
from trading_assets.core.config import MarketDataSettings, UISettings
from trading_assets.core.text import terminal_text
from trading_assets.runs import (
    ACTIVE_STATUSES,
    BATCH_SIZE_ENV,
    RunOutcome,
    dagster_env,
    ensure_dagster_home,
    get_instance,
)

log = logging.getLogger("trading_assets.cli")

IN_PROCESS_HELP = ("run here even when a Dagster daemon is up (default: submit to its queue "
                   "when one is running, else run here)")

def symbol_failures(outcomes: Sequence[RunOutcome], app_db: Any) -> dict[str, str]:
    """Why each symbol failed in these runs: its own recorded failure, else its run's."""
    failed: dict[str, str] = {}
    for run in outcomes:
        own = app_db.failed_symbols(run.run_id)
        for symbol in run.symbols:
            if symbol in own:
                failed[symbol] = own[symbol]
            elif not run.success:
                failed[symbol] = "; ".join(run.failures) or f"run {run.status or 'failed'}"
    return failed


def summary_rows(symbols: list[str], resources: dict[str, Any],
                 outcomes: Sequence[RunOutcome]) -> list[dict[str, str]]:
    """One row per symbol for the demo table: this run's signal and order, or FAILED and why.

    A symbol that failed in these runs shows FAILED and why, never an earlier run's signal as
    if it were fresh; others show the signal this run wrote or the one for their latest bar.
    An outage met while reading (the application database or the object store gone) is every
    remaining symbol's reason: the table is printed all the same, without asking again.
    """
    from trading_assets.core.errors import OutageError, outage_line

    run_of = {s: run.run_id for run in outcomes for s in run.symbols}
    rows, outage = [], ""
    try:
        failed = symbol_failures(outcomes, resources["app_db"])
    except OutageError as exc:
        failed, outage = {}, outage_line(exc) or str(exc)
    for symbol in symbols:
        if not outage:
            try:
                rows.append(summary_row(symbol, resources, run_of.get(symbol), failed))
                continue
            except OutageError as exc:
                outage = outage_line(exc) or str(exc)
        rows.append({"symbol": symbol, "source": "-", "status": "FAILED", "order": outage})
    return rows


def summary_row(symbol: str, resources: dict[str, Any], run_id: str | None,
                failed: dict[str, str]) -> dict[str, str]:
    """The table row of one symbol (see summary_rows)."""
    from datetime import date

    from trading_assets.core.keys import TIMEFRAMES, bars_info_key, chart_key

    store, app_db = resources["store"], resources["app_db"]
    row = {"symbol": symbol, "source": "-"}
    if symbol in failed:  # its reason is known: nothing to read (the store may be the reason)
        return {**row, "status": "FAILED", "order": failed[symbol].splitlines()[0]}
    signal = app_db.latest_signal(symbol)
    try:
        info = store.read_json(bars_info_key(symbol))
    except FileNotFoundError:
        info = None
    if signal is not None and info is not None and signal.dagster_run_id != run_id \
            and str(signal.bar_date) != info["last_date"]:
        signal = None  # an earlier run's signal for an older bar: not this run's result
    if signal is None or info is None:
        why = "no bars stored" if info is None else "no signal for the latest bar"
        return {**row, "status": "FAILED", "order": why}
    row["source"] = "SIMULATED" if info["simulated"] else info["source"]
    row["last bar"] = f"{info['last_date']} {info['last_close']:.2f}"
    row["action"] = signal.action or "-"
    row["conf"] = "-" if signal.confidence_score is None else str(signal.confidence_score)
    row["status"] = signal.status
    row["analyst"] = signal.provider
    row["order"] = app_db.orders_summary(symbol, signal, [run_id or ""])
    last = date.fromisoformat(info["last_date"])
    row["charts"] = "  ".join(store.location(chart_key(symbol, t, last)) for t in TIMEFRAMES)
    return row


def cmd_demo(args: argparse.Namespace) -> int:
    return run_and_report(args.symbols or MarketDataSettings.from_env().symbols,
                          args.resources, demo=True, in_process=args.in_process)


def cmd_materialize(args: argparse.Namespace) -> int:
    return run_and_report(args.symbols, args.resources, demo=False, in_process=args.in_process)


def run_and_report(raw_symbols: str, resources: dict[str, Any], demo: bool,
                   in_process: bool = False) -> int:
    """Run the pipeline for the symbols and print one row each; 1 when any symbol failed."""
    from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
    from trading_assets.runs import launch_symbols, resolve_mode

    try:
        symbols = parse_symbols(raw_symbols)
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    home = ensure_dagster_home()
    instance = get_instance()
    mode = resolve_mode(instance, "in-process" if in_process else "auto")
    market, analyst, broker = resources["market_data"], resources["analyst"], resources["broker"]
    print(f"Dagster instance : {home}")
    print("Runs             : " + run_mode_text(mode, in_process))
    print(f"Market data      : {market.describe()}")
    print(f"Analyst          : {analyst.label}")
    print(f"Broker           : {broker.label}")
    print(f"Tracking         : {resources['tracking'].label}")
    print(f"Symbols          : {', '.join(symbols)}\n", flush=True)
    outcomes = launch_symbols(symbols, instance=instance, resources=resources,
                              launched_by="cli", mode=mode)
    rows = summary_rows(symbols, resources, outcomes)
    print_table(rows, ["symbol", "source", "last bar", "action", "conf", "status", "analyst",
                       "order", "charts"])
    if any(r.get("source") == "SIMULATED" for r in rows):
        print("\nSIMULATED DATA: bars are generated, not market prices. Set TRADING_DATA_SOURCE "
              "to csv, url or ibkr for real data.")
    if analyst.provider == "rules":
        print("Signals come from the deterministic rules analyst (no language model). Set "
              "LLM_BASE_URL/LLM_API_KEY for a model.")
    print(resources["tracking"].ui_hint)
    failed = [r["symbol"] for r in rows if r.get("status") in ("FAILED", "error")]
    for run in outcomes:
        for line in run.failures:  # one line each; the tracebacks are in the run's event log
            log.debug("run %s: %s", run.run_id, line)
        if run.status in ACTIVE_STATUSES:  # the wait gave up on it: why, and what to do
            print(terminal_text(run.failures[-1]), file=sys.stderr)
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (details: the Dagster run "
              f"{', '.join(r.run_id[:8] for r in outcomes if not r.success) or 'log'})",
              file=sys.stderr)
    how = " and ".join(sorted({RUN_MODE_WORDS.get(r.mode, r.mode) for r in outcomes})) or "none"
    print(f"\n{len(outcomes)} Dagster run(s) {how} in {time.perf_counter() - started:.1f} s. "
          + ("Review signals: trading-signals signals list, or in the app: make up (Dagster and "
             "the Gradio app together; or make dev and make ui)" if demo else ""))
    return 1 if failed else 0


RUN_MODE_WORDS = {"daemon": "via the daemon", "in-process": "in-process",
                  "celery": "on the Celery workers"}


def run_mode_text(mode: str, forced: bool) -> str:
    """Where the runs will execute, as the header says it (health.run_placement)."""
    from trading_assets.health import run_placement

    return run_placement(mode, forced)


SYMBOL_ACTIONS = ("add", "remove", "list")


def cmd_symbols(args: argparse.Namespace) -> int:
    from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
    from trading_assets.partitions import (
        SymbolBusyError,
        SymbolRefusedError,
        list_symbols,
        register_symbols,
        unregister_symbols,
    )

    instance = get_instance()
    app_db = args.resources["app_db"]
    if args.action == "list":
        from trading_assets.partitions import SYMBOLS_PARTITION
        from trading_assets.run_tags import last_run_cells

        symbols = list_symbols(instance)
        runs = last_run_cells(instance, app_db, symbols,
                              instance.get_dynamic_partitions(SYMBOLS_PARTITION))
        rows = []
        for s in app_db.settings_by_symbol(symbols).values():
            rows.append({"symbol": s.symbol, "enabled": str(s.enabled), "priority": str(s.priority),
                         "size %": f"{s.position_size_pct:g}", "auto": str(s.auto_approve),
                         "min conf": str(s.min_confidence),
                         "last run": runs.get(s.symbol, "never").splitlines()[0][:140]})
        if rows:
            print_table(rows, ["symbol", "enabled", "priority", "size %", "auto", "min conf",
                               "last run"])
        else:
            print("No symbols yet: trading-signals symbols add AAPL,MSFT")
        return 0
    try:
        symbols = parse_symbols(",".join(args.symbols))
    except InvalidSymbolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "add":
            print(register_symbols(instance, app_db, symbols, args.resources).message())
            return 0
        report = unregister_symbols(instance, app_db, args.resources["broker"], symbols,
                                    forget_settings=args.forget_settings)
    except (SymbolRefusedError, SymbolBusyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"removed: {', '.join(report.partitions) or 'none (not there)'}")
    for line in report.lines()[1:]:
        print(line)
    return 1 if report.kept else 0
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    from resources.review import ReviewRefused, approve_signal, cancel_working_order
    from trading_assets.core.errors import error_text
    from trading_assets.core.review import REVIEW_DECISIONS, reviewer_name
    from trading_assets.core.signal import SignalStatus

    app_db = args.resources["app_db"]
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
    reviewer = reviewer_name(args.reviewer)
    resources = args.resources
    try:
        if args.action == "cancel":
            row = cancel_working_order(app_db=app_db, broker=resources["broker"],
                                       signal_id=args.signal_id, reviewer=reviewer,
                                       note=args.note)
        elif REVIEW_DECISIONS[args.action] is SignalStatus.APPROVED:
            row = approve_signal(app_db=app_db, policy=resources["policy"],
                                 store=resources["store"], broker=resources["broker"],
                                 signal_id=args.signal_id, reviewer=reviewer, note=args.note)
        else:
            row = app_db.review_signal(args.signal_id, REVIEW_DECISIONS[args.action],
                                       reviewer=reviewer, note=args.note)
    except ReviewRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyError, ValueError) as exc:
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 2
    print(f"{row.id} {row.symbol} {row.action}: {row.status} by {reviewer}"
          + (f" ({row.status_reason})" if row.status_reason else ""))
    if row.status == SignalStatus.APPROVED.value:
        from trading_assets.health import daemon_check

        placed = ("the approved_signals sensor places it" if daemon_check(get_instance()).up
                  else "its order waits for the Dagster daemon, which is not running: start it "
                  f"with make up or make dev, or place it now: trading-signals materialize "
                  f"--symbols {row.symbol}")
        print(f"The pre-trade checks passed; {placed}. The orders step checks again before it "
              "places, and a refusal shows as not_placed with the reason (signals list).")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ui.app import main as ui_main  # Gradio loads only for this command

    return ui_main(host=args.host, port=args.port)


def dagster_port(args: argparse.Namespace) -> int:
    """--port / --dagster-port, else DAGSTER_PORT (core/config.py UISettings)."""
    chosen = getattr(args, "dagster_port", None) or getattr(args, "port", None)
    return chosen or UISettings.from_env().dagster_port


def workspace_file(raw: str) -> Path:
    """The workspace.yaml `dagster dev` loads; a ConfigError when it is not there."""
    from trading_assets.settings import ConfigError

    workspace = Path(raw).resolve()
    if not workspace.exists():
        raise ConfigError(f"{workspace} not found; run from the project folder or pass "
                          "--workspace.")
    return workspace


def cmd_dev(args: argparse.Namespace) -> int:
    """The Dagster UI (webserver + daemon) on the project's instance, on localhost."""
    port = dagster_port(args)
    workspace = workspace_file(args.workspace)
    ensure_dagster_home()
    command = ["dagster", "dev", "-w", str(workspace), "-h", args.host, "-p", str(port)]
    print(f"Dagster UI on http://{args.host}:{port} (instance {os.environ['DAGSTER_HOME']})")
    dagster = Path(sys.executable).with_name("dagster")
    os.execve(str(dagster), command, dagster_env())
    return 0  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    """Dagster (webserver + daemon) and the Gradio app together, until Ctrl-C."""
    from trading_assets.local_app import LocalApp, create_storage, gradio_port
    from trading_assets.settings import ConfigError

    ports = dagster_port(args), gradio_port(args.ui_port)
    if ports[0] == ports[1]:
        raise ConfigError(f"the Dagster UI and the Gradio app cannot share port {ports[0]}: "
                          "pick another with --dagster-port or --ui-port.")
    workspace = workspace_file(args.workspace)
    create_storage(get_instance())
    app = LocalApp(host=args.host, dagster_port=ports[0], ui_port=ports[1],
                   workspace=workspace, home=ensure_dagster_home())
    return app.run()


def cmd_status(args: argparse.Namespace) -> int:
    """One line per part of the system; 1 when a part the configuration needs is down."""
    from trading_assets.health import system_health
    from trading_assets.settings import automation_config, dagster_webserver_url

    report = system_health(args.resources, get_instance(), dagster_webserver_url(),
                           automation_config().running)
    for check in report.checks:
        print(f"{check.part:<13} {check.state:<5} {check.detail}")
    if report.down:
        print(f"\nDown: {', '.join(c.part for c in report.down)}.", file=sys.stderr)
        return 1
    return 0


DEV_PORT_HELP = "port of the Dagster UI (default: DAGSTER_PORT, else 3000)"
HOST_HELP = "address to listen on (default 127.0.0.1: this machine only)"
WORKSPACE_HELP = "the workspace file dagster dev loads (default workspace.yaml)"
UI_PORT_HELP = "port of the Gradio app (default: GRADIO_SERVER_PORT, else 7860)"


def _add_symbols_parser(sub: Any) -> None:
    symbols = sub.add_parser(
        "symbols", help="add, remove or list symbols (Dagster dynamic partitions)",
        description="Symbols are the `symbols` dynamic partitions of the Dagster instance, with "
                    "their settings in the application database. Actions: add, remove, list.")
    actions = symbols.add_subparsers(dest="action", metavar="{add,remove,list}",
                                     parser_class=OneLineParser, help="what to do")
    for name, what in (("add", "add symbols: a partition each, with default settings"),
                       ("remove", "remove symbols: their working orders are cancelled, their "
                                  "waiting signals expire, their settings kept for a re-add "
                                  "(their signals and orders stay for the audit trail)")):
        action = actions.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        action.add_argument("symbols", nargs="*", metavar="SYMBOL",
                            help="tickers, space- or comma-separated: AAPL MSFT or AAPL,BRK.B")
        if name == "remove":
            action.add_argument("--forget-settings", action="store_true",
                                help="also delete the symbols' settings (kept by default for "
                                     "a later re-add)")
    actions.add_parser("list", help="list the symbols with their settings",
                       description="List the symbols with their settings.")
    symbols.set_defaults(func=cmd_symbols)


def _add_signals_parser(sub: Any) -> None:
    from trading_assets.core.review import REVIEW_DECISIONS
    from trading_assets.core.signal import SignalStatus

    statuses = [s.value for s in SignalStatus]
    signals = sub.add_parser(
        "signals", help="list, approve, reject, reapprove signals or cancel a working order",
        description="Signals and their review. Actions: list, approve, reject, reapprove "
                    "(reapprove: a not_placed or order_failed signal gets a new order attempt), "
                    "cancel (a working signal's resting order, at the broker).")
    actions = signals.add_subparsers(dest="action",
                                     metavar="{list,approve,reject,reapprove,cancel}",
                                     parser_class=OneLineParser, help="what to do")
    listing = actions.add_parser("list", help="list signals, newest first",
                                 description="List signals, newest first (at most 200).")
    listing.add_argument("--symbol", type=ticker, default=None,
                         help="only this symbol's signals, e.g. AAPL")
    listing.add_argument("--status", choices=statuses, default=None, metavar="STATUS",
                         help=f"only signals in this status: {', '.join(statuses)}")
    helps = {"approve": "approve a pending signal once the pre-trade checks pass: the "
                        "approved_signals sensor places its order",
             "reject": "reject a signal: no order is placed",
             "reapprove": "re-approve a not_placed or order_failed signal: a new order attempt",
             "cancel": "cancel a working signal's resting order (and its exits) at the broker"}
    for name in (*REVIEW_DECISIONS, "cancel"):
        decide = actions.add_parser(name, help=helps[name],
                                    description=helps[name][0].upper() + helps[name][1:] + ".")
        decide.add_argument("signal_id", help="the signal's id (see: trading-signals signals "
                                              "list)")
        decide.add_argument("--note", default="", help="why, stored with the decision")
        decide.add_argument("--reviewer", default=None, help="who decides (default: the OS user)")
    signals.set_defaults(func=cmd_signals)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="trading-signals", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="one of these (`trading-signals COMMAND --help`: its options)")

    up = sub.add_parser("up", help="the whole local app: Dagster (webserver + daemon) and the "
                                   "Gradio app together, until Ctrl-C",
                        description="Start `dagster dev` (webserver + daemon) and the Gradio "
                                    "app on the project's instance, print both URLs, and stop "
                                    "both on Ctrl-C or SIGTERM.")
    up.add_argument("--host", default="127.0.0.1", help=HOST_HELP)
    up.add_argument("--dagster-port", type=port_number, default=None, help=DEV_PORT_HELP)
    up.add_argument("--ui-port", type=port_number, default=None, help=UI_PORT_HELP)
    up.add_argument("--workspace", default="workspace.yaml", help=WORKSPACE_HELP)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser(
        "status", help="what is running: daemon, webserver, instance, databases, store, "
                       "broker, LLM (exit 1 when a needed part is down)",
        description="One line per part of the system. Exits 1 when a part the configuration "
                    "needs is down (the daemon included: without it approvals wait, sensors "
                    "and the schedule do not run).")
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="materialize the demo symbols on embedded defaults")
    demo.add_argument("--symbols", default="", help="comma-separated (default $SYMBOLS, else "
                      f"{MarketDataSettings().symbols})")
    demo.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    demo.set_defaults(func=cmd_demo)

    mat = sub.add_parser("materialize", help="materialize the graph for symbols")
    mat.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    mat.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    mat.set_defaults(func=cmd_materialize)

    _add_symbols_parser(sub)
    _add_signals_parser(sub)

    ui = sub.add_parser("ui", help="the Gradio app alone: symbols, signal review, portfolio",
                        description="The Gradio app (GRADIO_USERNAME/PASSWORD for a login; "
                                    "required beyond this machine).")
    ui.add_argument("--host", default=None,
                    help="address to listen on (default: GRADIO_SERVER_NAME, else 127.0.0.1)")
    ui.add_argument("--port", type=port_number, default=None, help=UI_PORT_HELP)
    ui.set_defaults(func=cmd_ui)

    dev = sub.add_parser("dev", help="the Dagster UI alone: webserver + daemon (dagster dev)",
                         description="`dagster dev` (webserver + daemon) on the project's "
                                     "instance.")
    dev.add_argument("--host", default="127.0.0.1", help=HOST_HELP)
    dev.add_argument("--port", type=port_number, default=None, help=DEV_PORT_HELP)
    dev.add_argument("--workspace", default="workspace.yaml", help=WORKSPACE_HELP)
    dev.set_defaults(func=cmd_dev)

    from trading_assets.bench import add_parser as add_bench_parser
    from trading_assets.replay import add_parser as add_replay_parser

    add_replay_parser(sub)
    add_bench_parser(sub)
    return parser


def command_parser(parser: argparse.ArgumentParser, command: str | None
                   ) -> argparse.ArgumentParser:
    """The parser of `command` (its errors name it and point at its help), else `parser`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def usage_problem(args: argparse.Namespace) -> str:
    """What the command line lacks that argparse cannot say well, or ""."""
    from trading_assets.core.review import REVIEW_DECISIONS

    if args.command is None:
        return ("choose a command: up, status, demo, materialize, symbols, signals, ui, dev, "
                "replay or bench")
    if args.command == "symbols" and args.action is None:
        return "choose an action: add, remove or list"
    if args.command == "symbols" and args.action != "list" and not args.symbols:
        return f"symbols {args.action} needs at least one symbol, e.g. AAPL"
    if args.command == "signals" and args.action is None:
        *first, last = ["list", *REVIEW_DECISIONS, "cancel"]
        return f"choose an action: {', '.join(first)} or {last}"
    return ""


# Commands that build what they need themselves: the UI and `status` (which reports each part
# instead of stopping at the first that is down) and bench (its own resources per scenario).
NO_START_CHECK = ("ui", "bench", "status")
# Commands that may execute runs in this process (the others read or queue, or start Dagster
# with runs.dagster_env themselves): they need the instance's event batch size from the start.
RUNS_HERE = ("demo", "materialize", "ui")


def start_with_dagster_env() -> None:
    """Start this command again, once, with the environment `runs.dagster_env` gives (the
    instance's event batch size), so the runs it executes here write their events in batches.
    This process's own environment is not changed: Dagster reads the size at every event, so it
    must be the same from the start."""
    env = dagster_env()
    if env.get(BATCH_SIZE_ENV) != os.environ.get(BATCH_SIZE_ENV):
        os.execve(sys.executable, [sys.executable, "-m", "trading_assets.cli", *sys.argv[1:]],
                  env)


def main(argv: Sequence[str] | None = None) -> int:
    """The `trading-signals` command (`argv` None: this process's arguments; a command that
    executes runs here is started again with the instance's environment first); callers
    passing `argv` run in their own environment."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in RUNS_HERE:
        start_with_dagster_env()
    problem = usage_problem(args)
    if problem:
        command_parser(parser, args.command).error(problem)
    from trading_assets.core.errors import outage_line
    from trading_assets.settings import ConfigError, build_resources, check_start

    try:
        # The commands use the checked resources (each built once).
        args.resources = (build_resources() if args.command == "status" else None
                          if args.command in NO_START_CHECK else check_start())
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # An outside system went away during the command: its one line (which system, which
        # setting, what to do), not a traceback; a run's own tracebacks are in its event log.
        line = outage_line(exc)
        if line is None:
            raise
        log.debug("outage during %s", args.command, exc_info=True)
        print(f"error: {terminal_text(line)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
