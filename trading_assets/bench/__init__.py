"""`trading-signals bench`: how fast the platform is on this machine, beside the targets.

Five measurements, each on its own temporary DAGSTER_HOME and TRADING_DATA_DIR (never the
user's), on embedded defaults (simulated bars, rules analyst, paper broker, MLflow on a local
SQLite store, as `make demo` runs):

1. stages   one symbol's work per stage, in this process, through the same per-symbol functions
            and resources the assets call (median over --stage-runs symbols, after one warm-up;
            MLflow off), and one daily chart drawn by the project's renderer and by mplfinance
            with the same panels (bench/charts.py), both times and the ratio.
2. e2e      N simulated symbols end to end through Dagster, with MLflow on (the default, the
            headline) and off beside it (--mlflow) (runs.launch_symbols, in-process,
            one child process per N; bench/e2e.py): wall time, symbols per
            minute, Dagster runs, peak resident memory (ru_maxrss of the child from os.wait4,
            i.e. what getrusage(RUSAGE_CHILDREN) reports for it), event-log size.
3. llm      --llm-calls model calls against the loopback OpenAI-compatible server of
            bench/llm_peer.py (answers after --llm-delay seconds) through LLMAnalyst.analyze_many,
            beside the sequential time (calls x delay).
4. demo     `trading-signals demo` (two symbols) in a fresh process, as after `make install`.
5. live     a live `dagster dev` on a free port: one symbol launched by GraphQL `launchRun` (as
            the UI does), launch to end; a symbol added as the CLI adds it, until its signal is
            in the review list through the new_symbols sensor (bench/live.py).

The numbers are measurements, not assertions: CI runs the command with tiny sizes to prove it
works (tests/test_bench.py) and never judges the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from trading_assets.bench.common import (
    AS_OF,
    DEFAULT_LLM_CALLS,
    DEFAULT_LLM_DELAY_S,
    DEFAULT_STAGE_RUNS,
    DEFAULT_SYMBOLS,
    MLFLOW_MODES,
    REFERENCE,
    SECTIONS,
    TARGET_500_WALL_S,
    TARGET_CHARTS_S,
    TARGET_DEMO_S,
    TARGET_LLM_100_S,
    TARGET_MAX_RUNS,
    TARGET_PEAK_RSS_MB,
    TARGET_SYMBOL_S,
    bench_env,
    load_average,
    repeated,
    workspace,
)
from trading_assets.bench.e2e import bench_demo, bench_e2e
from trading_assets.bench.live import bench_live
from trading_assets.bench.llm import bench_llm
from trading_assets.bench.stages import bench_stages
from trading_assets.bench.table import print_bench_report, table_rows
from trading_assets.console import positive_int

__all__ = ["add_parser", "parse_sizes", "run", "table_rows"]


def parse_sizes(raw: str) -> list[int]:
    try:
        sizes = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--symbols {raw!r}: use counts such as 10,100,500") \
            from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"--symbols {raw!r}: use counts of 1 or more")
    return sizes


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("bench", help="benchmarks: per stage, end to end, LLM concurrency, "
                                          "demo (prints a table; --json writes the figures)",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=parse_sizes, default=parse_sizes(DEFAULT_SYMBOLS),
                        help=f"end-to-end sizes, comma-separated (default {DEFAULT_SYMBOLS})")
    parser.add_argument("--stage-runs", type=positive_int, default=DEFAULT_STAGE_RUNS,
                        help=f"symbols timed per stage, median reported (default "
                             f"{DEFAULT_STAGE_RUNS})")
    parser.add_argument("--llm-calls", type=positive_int, default=DEFAULT_LLM_CALLS,
                        help=f"model calls in the LLM benchmark (default {DEFAULT_LLM_CALLS})")
    parser.add_argument("--llm-delay", type=float, default=DEFAULT_LLM_DELAY_S,
                        help=f"seconds the loopback server takes per answer (default "
                             f"{DEFAULT_LLM_DELAY_S:g})")
    parser.add_argument("--llm-concurrency", type=positive_int, default=None,
                        help="calls in flight (default: LLMAnalyst's default, 10)")
    parser.add_argument("--repeat", type=positive_int, default=1,
                        help="run the end-to-end, LLM and demo benchmarks this many times and "
                             "report the median wall time (default 1)")
    parser.add_argument("--mlflow", choices=tuple(MLFLOW_MODES), default="both",
                        help="end-to-end runs with MLflow tracking on (the default "
                             "configuration, a local store), off, or both (default both)")
    parser.add_argument("--live-symbols", type=int, default=None,
                        help="symbols launched through the daemon queue in the live section "
                             "(default: the largest --symbols size; 0 leaves it out)")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[],
                        help="leave a benchmark out (repeatable)")
    parser.add_argument("--json", dest="json_path", default="",
                        help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary Dagster homes and data folders")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import dagster

    skip = set(args.skip)
    skipped = {"skipped": "--skip"}
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "dagster": dagster.__version__, "platform": platform.platform(terse=True),
                    "load_avg_start": load_average()},
        "settings": {"symbols": args.symbols, "stage_runs": args.stage_runs,
                     "repeat": args.repeat,
                     "llm_calls": args.llm_calls, "llm_delay_s": args.llm_delay,
                     "simulated_as_of": AS_OF, "mlflow": args.mlflow},
        "targets": {"charts_s": TARGET_CHARTS_S, "per_symbol_s": TARGET_SYMBOL_S,
                    "e2e_500_wall_s": TARGET_500_WALL_S, "max_dagster_runs": TARGET_MAX_RUNS,
                    "peak_rss_mb": TARGET_PEAK_RSS_MB, "llm_100_calls_s": TARGET_LLM_100_S,
                    "demo_s": TARGET_DEMO_S},
        "reference": REFERENCE,
        "stages": skipped, "e2e": [], "llm": skipped, "demo": skipped, "live": skipped,
    }
    if "stages" not in skip:
        print(f"stages: {args.stage_runs} symbol(s), one stage at a time ...", file=sys.stderr)
        report["stages"] = bench_stages(args.stage_runs, args.keep)
    if "e2e" not in skip:
        for n in args.symbols:
            for mlflow in MLFLOW_MODES[args.mlflow]:
                print(f"end to end: {n} symbol(s) through Dagster, MLflow {mlflow} ...",
                      file=sys.stderr)
                report["e2e"].append(repeated(
                    lambda n=n, on=mlflow == "on": bench_e2e(n, args.keep, tracking=on),
                    args.repeat, maxima=("peak_rss_mb", "peak_tree_rss_mb")))
    if "llm" not in skip:
        print(f"llm: {args.llm_calls} call(s) of {args.llm_delay:g} s ...", file=sys.stderr)
        report["llm"] = repeated(
            lambda: bench_llm(args.llm_calls, args.llm_delay, args.llm_concurrency), args.repeat)
    if "demo" not in skip:
        print("demo: trading-signals demo in a fresh process ...", file=sys.stderr)
        report["demo"] = repeated(lambda: bench_demo(args.keep), args.repeat,
                                  maxima=("peak_rss_mb",))
    if "live" not in skip:
        print("live: dagster dev, a GraphQL launch and a symbol added through the sensor ...",
              file=sys.stderr)
        live_symbols = max(args.symbols) if args.live_symbols is None else args.live_symbols
        with workspace(args.keep, "live") as work:
            # As `make dev` runs: MLflow on (a local store), the project's instance config.
            report["live"] = bench_live(bench_env(work, tracking=True),
                                        work / "dagster-dev.log", live_symbols)
    report["machine"]["load_avg_end"] = load_average()
    report["table"] = table_rows(report)
    sys.stderr.flush()
    print_bench_report(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json_path}", flush=True)
    broken = broken_benchmarks(report)
    for problem in broken:
        print(f"BROKEN: {problem}", file=sys.stderr)
    # Timings never change the exit code (a busy machine is not a bug); a benchmark that could
    # not do its work does.
    return 1 if broken else 0


def broken_benchmarks(report: dict[str, Any]) -> list[str]:
    """What did not work: failed runs, symbols not completed, unanswered calls, a failed demo."""
    problems = []
    for result in report["e2e"]:
        if "error" in result:
            problems.append(f"end to end {result['symbols']}: {result['error']}")
        elif result["symbols_completed"] < result["symbols"] or result["failures"]:
            problems.append(f"end to end {result['symbols']}: {result['symbols_completed']} "
                            f"symbol(s) completed; {'; '.join(result['failures'][:3])}")
    llm = report["llm"]
    if "wall_s" in llm and llm["ok"] < llm["calls"]:
        problems.append(f"llm: {llm['calls'] - llm['ok']} call(s) failed: {llm['errors'][:1]}")
    live = report.get("live", {})
    if "error" in live:
        problems.append(f"live: {live['error']}")
    for name in ("ui_run", "runs_layer", "add_to_signal"):
        # A run that did not succeed, a symbol with no signal, or a duplicate run is a failure.
        result = live.get(name)
        if result is None:
            continue
        ok = {"pending_review", "auto_approved"} if name == "add_to_signal" else {"SUCCESS"}
        if result.get("status") not in ok or result.get("runs") != 1:
            problems.append(f"live {name}: status {result.get('status')}, "
                            f"{result.get('runs')} run(s) for {result.get('symbol')}")
    many = live.get("many")
    if many and (many["symbols_completed"] < many["symbols"] or many["failures"]
                 or many["runs_succeeded"] < many["runs"]):
        problems.append(f"live, {many['symbols']} symbols via the queue: "
                        f"{many['symbols_completed']} completed; {'; '.join(many['failures'][:3])}")
    demo = report["demo"]
    if "exit_code" in demo and demo["exit_code"] != 0:
        problems.append(f"demo exited with {demo['exit_code']}: {demo['last_line']}")
    return problems


