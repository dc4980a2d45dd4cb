"""`trading-signals bench`: how fast the platform is on this machine, beside the targets.

Five measurements, each on its own temporary DAGSTER_HOME and TRADING_DATA_DIR (never the
user's), on embedded defaults (simulated bars, rules analyst, paper broker, MLflow on a local
SQLite store, as `make demo` runs):

1. stages   one symbol's work per stage, in this process, through the same per-symbol functions
            and resources the assets call (median over --stage-runs symbols, after one warm-up;
            MLflow off), and one daily chart drawn by the project's renderer and by mplfinance
            with the same panels (bench_charts.py), both times and the ratio.
2. e2e      N simulated symbols end to end through Dagster, with MLflow on (the default, the
            headline) and off beside it (--mlflow) (trading_assets.runs.
            launch_symbols, in-process, one child process per N): wall time, symbols per
            minute, Dagster runs, peak resident memory (ru_maxrss of the child from os.wait4,
            i.e. what getrusage(RUSAGE_CHILDREN) reports for it), event-log size.
3. llm      --llm-calls model calls against the loopback OpenAI-compatible server of
            tests/peers (answers after --llm-delay seconds) through LLMAnalyst.analyze_many,
            beside the sequential time (calls x delay).
4. demo     `trading-signals demo` (two symbols) in a fresh process, as after `make install`.
5. live     a live `dagster dev` on a free port: one symbol launched by GraphQL `launchRun` (as
            the UI does), launch to end; a symbol added as the CLI adds it, until its signal is
            in the review list through the new_symbols sensor (trading_assets/bench_dagster.py).

The numbers are measurements, not assertions: CI runs the command with tiny sizes to prove it
works (tests/test_bench.py) and never judges the timings.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trading_assets.bench_charts import compare_renderers
from trading_assets.bench_dagster import TARGET_DEFINITIONS_IMPORT_S, bench_live, live_rows
from trading_assets.console import positive_int

if TYPE_CHECKING:
    from resources.app_db import SignalRow

DEFAULT_SYMBOLS = "10,100,500"
DEFAULT_STAGE_RUNS = 5
DEFAULT_LLM_CALLS = 100
DEFAULT_LLM_DELAY_S = 1.0
# Simulated bars are pinned to one as-of date so every run of the benchmark sees the same data.
AS_OF = "2026-11-20"
SECTIONS = ("stages", "e2e", "llm", "demo", "live")
# End-to-end runs per size: MLflow on (the `make demo` default, the headline) and/or off.
MLFLOW_MODES = {"both": ("on", "off"), "on": ("on",), "off": ("off",)}
# The environment a benchmark child starts from: the user's settings for real systems are
# dropped so every figure is for the embedded defaults (as tests/conftest.py does).
_DROPPED_PREFIXES = ("LLM_", "OPENAI_", "TRADING_", "IBKR_", "MINIO_", "MLFLOW_",
                     "APP_DATABASE", "PAPER_", "DAGSTER_HOME", "ALERT_")

# Targets from the issue "Benchmarks: fast per symbol, hundreds of symbols per tick".
TARGET_CHARTS_S = 0.6
TARGET_SYMBOL_S = 1.0
# Issue "Every listed package earns its place": 500 symbols with the defaults (MLflow on)
# in under 100 s on 2 cores and under 1 GB including the chart workers.
TARGET_500_WALL_S = 100.0
TARGET_MAX_RUNS = 10
TARGET_PEAK_RSS_MB = 1024.0
TARGET_LLM_100_S = 15.0
TARGET_DEMO_S = 60.0
REFERENCE = ("old system (Airflow): 25 s per chart, ~10 s per LLM call, one task per symbol; "
             "LLM engineer's measurement: 100 calls of 1 s in 11.2 s at concurrency 10")


# --- helpers -----------------------------------------------------------------------------------


def bench_env(workdir: Path, *, tracking: bool = False,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A process environment on embedded defaults under `workdir` (never the user's data)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(_DROPPED_PREFIXES)}
    env.update(DAGSTER_HOME=str(workdir / "dagster_home"), TRADING_DATA_DIR=str(workdir / "data"),
               TRADING_SIMULATED_AS_OF=AS_OF, PYTHONWARNINGS="ignore")
    if not tracking:
        env["MLFLOW_TRACKING_URI"] = "off"
    return env


@contextmanager
def workspace(keep: bool, name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"trading-bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  (kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def tree_rss_mb(root: int) -> float | None:
    """Resident memory of a process and all its descendants, from /proc (Linux only)."""
    proc = Path("/proc")
    if not (proc / str(root)).exists():
        return None
    parents: dict[int, int] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    pages = 0
    for pid in tree:
        try:
            pages += int((proc / str(pid) / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def run_child(command: list[str], env: Mapping[str, str], log: Path,
              timeout_s: float) -> dict[str, Any]:
    """Run a command; its exit code, wall seconds and peak memory.

    peak_rss_mb is os.wait4's rusage for this one child (ru_maxrss, KB on Linux): what
    getrusage(RUSAGE_CHILDREN) reports for it, without mixing up earlier children. It leaves
    out the child's own children (the chart workers), so peak_tree_rss_mb also samples the sum
    over the child and all its descendants from /proc every 0.2 s (Linux; None elsewhere).
    """
    started = time.perf_counter()
    tree_peak: float | None = None
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            sample = tree_rss_mb(proc.pid)
            if sample is not None:
                tree_peak = max(tree_peak or 0.0, sample)
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KB on Linux
    return {"exit_code": proc.returncode, "wall_s": time.perf_counter() - started,
            "peak_rss_mb": round(usage.ru_maxrss / scale, 1),
            "peak_tree_rss_mb": round(tree_peak, 1) if tree_peak is not None else None,
            # CPU seconds of the child and the children it waited for (the chart workers): on
            # a shared machine this moves far less with the load than the wall time does.
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


# --- 1. per stage, in process ------------------------------------------------------------------


def stage_symbols(resources: dict[str, Any], count: int) -> list[str]:
    """`count` bench symbols whose rules signal is BUY or SELL, so `orders` really places an
    order (a HOLD stops at the risk check); falls back to any symbols when few qualify."""
    from trading_assets.core.analyst import rules_signal
    from trading_assets.core.replay import build_replay_request
    from trading_assets.core.signal import Action

    market = resources["market_data"]
    chosen: list[str] = []
    for i in range(200):
        symbol = f"BS{i:03d}"
        bars = market.fetch(symbol)
        # The request as of the last bar over the whole history: what llm_signal will be shown.
        request = build_replay_request(symbol, bars.frame, bars.last_date,
                                       data_source=bars.source, simulated=bars.simulated,
                                       with_charts=False, window=len(bars.frame))
        if rules_signal(request).action is not Action.HOLD:
            chosen.append(symbol)
            if len(chosen) == count:
                return chosen
    return chosen + [f"BX{i:03d}" for i in range(count - len(chosen))]


def one_symbol(resources: dict[str, Any], symbol: str) -> dict[str, float]:
    """Every stage of the graph for one symbol through the per-symbol functions the assets
    call, minus Dagster; seconds per stage."""
    from trading_assets.assets.charts import chart_job, store_charts
    from trading_assets.assets.indicators import store_indicators
    from trading_assets.assets.market_data import fetch_and_store_bars
    from trading_assets.assets.signals import RunPositions, bar_info, build_request, store_signal
    from trading_assets.assets.trading import snapshot_portfolio, trade_symbol
    from trading_assets.core.charts import render_job
    from trading_assets.core.signal import SignalStatus

    market, store, app_db = resources["market_data"], resources["store"], resources["app_db"]
    broker, analyst = resources["broker"], resources["analyst"]
    run_id = "bench"
    app_db.ensure_symbol(symbol)
    settings = app_db.settings_for(symbol)
    times: dict[str, float] = {}

    def stage(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        times[name], result = timed(lambda: fn(*args))
        return result

    def analyse() -> SignalRow:
        # llm_signal for one symbol, its analysis batch being this one request (the asset
        # reads the broker's positions once per run: here once per symbol).
        info, bar_date = bar_info(store, symbol)
        request = build_request(store, RunPositions(broker).get(symbol), symbol, bar_date, info)
        [outcome] = analyst.analyze_many([request])
        return store_signal(store, app_db, request, outcome, settings, run_id)

    def snapshot() -> None:
        # portfolio reads the account and the positions once per run: here once per symbol.
        snapshot_portfolio(store, app_db, broker.label, symbol, broker.account(),
                           broker.position(symbol))

    stage("ohlcv", fetch_and_store_bars, market, store, symbol, settings, run_id)
    stage("indicators", store_indicators, store, symbol)
    job = stage("chart_inputs", chart_job, store, symbol)
    images = stage("charts", render_job, job)
    stage("chart_store_previews", store_charts, store, job, images)
    signal = stage("rules_signal", analyse)
    if signal.status == SignalStatus.PENDING_REVIEW.value and signal.action != "HOLD":
        app_db.review_signal(signal.id, SignalStatus.APPROVED, reviewer="bench")  # a human's click
    decided, _ = stage("orders", trade_symbol, broker, app_db, store, symbol, run_id, settings,
                       resources["policy"].rules)
    stage("portfolio", snapshot)
    times["total"] = sum(times.values())
    times["orders_placed"] = sum(decision.place for _, decision in decided)
    return times


def bench_stages(runs: int, keep: bool) -> dict[str, Any]:
    """Median per-stage seconds over `runs` fresh symbols, after one untimed warm-up symbol."""
    from trading_assets.settings import build_resources

    with workspace(keep, "stages") as work:
        resources = build_resources(bench_env(work))
        warm_up, *symbols = stage_symbols(resources, runs + 1)
        # The first symbol pays the one-off costs: imports, the reused figure, the SQLite
        # files and their migrations, the exchange calendar.
        cold = one_symbol(resources, warm_up)
        measured = [one_symbol(resources, s) for s in symbols]
    keys = [k for k in cold if k != "orders_placed"]
    return {
        "runs": len(measured),
        "median_s": {k: median([m[k] for m in measured]) for k in keys},
        "cold_first_symbol_s": {k: round(cold[k], 4) for k in keys},
        "orders_placed": int(sum(m["orders_placed"] for m in measured)),
        "definitions_import_s": definitions_import(min(runs, 3)),
        "charts_vs_mplfinance": compare_renderers(runs, AS_OF),
    }


def definitions_import(runs: int) -> float | None:
    """Median wall time of `python -c "import trading_assets.definitions"` (fresh process)."""
    times = []
    with workspace(False, "import") as work:
        for _ in range(max(1, runs)):
            child = run_child([sys.executable, "-c", "import trading_assets.definitions"],
                              bench_env(work), work / "import.log", 120)
            if child["exit_code"] == 0:
                times.append(child["wall_s"])
    return median(times)


# --- 2. end to end through Dagster -------------------------------------------------------------


def e2e_worker(n: int, out: Path) -> int:
    """In the child: materialize n simulated symbols and write what happened to `out`."""
    import warnings

    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    from trading_assets.assets.trading import portfolio
    from trading_assets.core.charts import chart_workers
    from trading_assets.runs import get_instance, launch_symbols

    instance = get_instance()
    setup_s = time.perf_counter() - started
    symbols = [f"E{i:04d}" for i in range(n)]
    wall, results = timed(lambda: launch_symbols(symbols, instance=instance, launched_by="bench",
                                                 mode="in-process"))
    home = Path(os.environ["DAGSTER_HOME"])
    runs = instance.get_run_records()
    events = sum(len(instance.all_logs(r.dagster_run.run_id)) for r in runs)
    materialized = len(instance.get_materialized_partitions(portfolio.key))
    out.write_text(json.dumps({
        "symbols": n, "wall_s": round(wall, 3), "setup_s": round(setup_s, 3),
        "dagster_runs": len(results), "runs_succeeded": sum(r.success for r in results),
        "chart_workers": chart_workers(n),
        "symbols_completed": materialized,
        "failures": [f for r in results for f in r.failures][:20],
        "events": events, "event_log_bytes": folder_bytes(home),
        "data_bytes": folder_bytes(Path(os.environ["TRADING_DATA_DIR"])),
    }))
    return 0


def bench_e2e(n: int, keep: bool, tracking: bool = True) -> dict[str, Any]:
    """n symbols end to end; `tracking` True is the `make demo` default (a local MLflow store)."""
    mlflow = "on" if tracking else "off"
    with workspace(keep, f"e2e{n}-mlflow-{mlflow}") as work:
        out = work / "result.json"
        child = run_child(
            [sys.executable, "-m", "trading_assets.bench", "e2e-worker", str(n), str(out)],
            bench_env(work, tracking=tracking), work / "e2e.log", timeout_s=120 + 5 * n)
        if child["exit_code"] != 0 or not out.exists():
            tail = (work / "e2e.log").read_text(errors="replace")[-2000:]
            return {"symbols": n, "mlflow": mlflow, "error": f"exit code {child['exit_code']}",
                    "log_tail": tail}
        result = json.loads(out.read_text())
    result["mlflow"] = mlflow
    wall = result["wall_s"]
    result.update(
        process_wall_s=round(child["wall_s"], 3),
        symbols_per_minute=round(n / wall * 60, 1) if wall else None,
        peak_rss_mb=child["peak_rss_mb"],
        peak_tree_rss_mb=child["peak_tree_rss_mb"],
        cpu_s=child["cpu_s"],
        peak_rss_source="peak_rss_mb: os.wait4 rusage (ru_maxrss) of the child process; "
                        "peak_tree_rss_mb: /proc samples every 0.2 s of the child plus its "
                        "chart workers",
        event_log_bytes_per_symbol=round(result["event_log_bytes"] / n) if n else None,
    )
    return result


# --- 3. LLM concurrency ------------------------------------------------------------------------


def openai_peer() -> Any | None:
    """tests/peers/openai_server.py from the source checkout (not part of an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "peers" / "openai_server.py").exists():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import importlib

    return importlib.import_module("tests.peers.openai_server")


def bench_llm(calls: int, delay_s: float, concurrency: int | None) -> dict[str, Any]:
    peer = openai_peer()
    if peer is None:
        return {"skipped": "tests/peers/openai_server.py not found: run from a source checkout"}
    from datetime import date

    from resources.llm_openai import OpenAIAnalyst
    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.charts import ChartJob, render_job
    from trading_assets.core.indicators import indicator_frames
    from trading_assets.core.secrets import API_KEY_VARS

    bars = simulate_bars("CHART", date.fromisoformat(AS_OF))
    images = render_job(ChartJob("CHART", indicator_frames(bars), simulated=True))
    # Requests as llm_signal sends them: summaries, 50 bars and two real chart PNGs.
    requests = [peer.analysis_request(f"L{i:03d}").model_copy(
        update={"daily_chart_png": images["daily"].png, "weekly_chart_png": images["weekly"].png})
        for i in range(calls)]

    delay = {"s": 0.0}

    def respond(received: Any) -> Any:
        text = received.user_parts()[0]["text"]
        symbol = text.split("Symbol: ", 1)[1].split("\n", 1)[0].strip()
        return peer.answer(peer.signal_fields(symbol), delay_s=delay["s"])

    analyst = OpenAIAnalyst(model="gpt-4o-mini", max_retries=0, http_retries=0,
                            timeout_s=max(30.0, delay_s * 10),
                            **({"concurrency": concurrency} if concurrency else {}))
    saved = {name: os.environ.pop(name) for name in API_KEY_VARS if name in os.environ}
    try:  # the loopback server needs no key; a real one in the environment stays unsent
        with peer.OpenAIServer() as server:
            server.responder = respond
            analyst = analyst.model_copy(update={"base_url": server.base_url})
            # One immediate answer first: importing openai and instructor is start-up, not
            # concurrency.
            warm_up, _ = timed(lambda: analyst.analyze_many(requests[:1]))
            delay["s"] = delay_s
            server.max_in_flight = 0
            wall, outcomes = timed(lambda: analyst.analyze_many(requests))
            in_flight = server.max_in_flight
    finally:
        os.environ.update(saved)
    errors = [o.error for o in outcomes if not o.ok]
    return {
        "calls": calls, "delay_s": delay_s, "concurrency": analyst.concurrency,
        "wall_s": round(wall, 3), "sequential_s": round(calls * delay_s, 3),
        "speedup": round(calls * delay_s / wall, 1) if wall else None,
        "ok": len(outcomes) - len(errors), "errors": errors[:5], "max_in_flight": in_flight,
        "warm_up_s": round(warm_up, 3),
    }


# --- 4. the demo -------------------------------------------------------------------------------


def bench_demo(keep: bool) -> dict[str, Any]:
    script = Path(sys.executable).with_name("trading-signals")
    command = [str(script), "demo"] if script.exists() else \
        [sys.executable, "-m", "trading_assets.cli", "demo"]
    with workspace(keep, "demo") as work:
        # As after `make install`: default tracking (a local MLflow store), fresh folders.
        child = run_child(command, bench_env(work, tracking=True), work / "demo.log",
                          timeout_s=600)
        tail = (work / "demo.log").read_text(errors="replace").strip().splitlines()[-1:]
    return {"symbols": 2, "wall_s": round(child["wall_s"], 3), "exit_code": child["exit_code"],
            "peak_rss_mb": child["peak_rss_mb"], "last_line": tail[0] if tail else ""}


def repeated(bench: Callable[[], dict[str, Any]], times: int,
             maxima: Sequence[str] = ()) -> dict[str, Any]:
    """Run a benchmark `times` times: the run with the median wall time, every wall time in
    wall_s_samples, and the largest of each `maxima` figure (memory peaks) over the runs."""
    runs = []
    for _ in range(times):
        result = bench()
        if "wall_s" not in result:  # an error or a skip: report it as it is
            return result
        runs.append(result)
    runs.sort(key=lambda r: r["wall_s"])
    chosen = dict(runs[(len(runs) - 1) // 2])
    chosen["wall_s_samples"] = [r["wall_s"] for r in runs]
    for name in maxima:
        values = [r[name] for r in runs if r.get(name) is not None]
        chosen[name] = max(values) if values else None
    if "symbols" in chosen and "symbols_per_minute" in chosen and chosen["wall_s"]:
        chosen["symbols_per_minute"] = round(chosen["symbols"] / chosen["wall_s"] * 60, 1)
    return chosen


# --- the table ---------------------------------------------------------------------------------


# How a figure is judged against its target, by the sign printed beside the target.
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">=": operator.ge, "==": operator.eq,
}


def _row(section: str, name: str, value: float | int | None, unit: str,
         target: float | None = None, op: str = "<") -> dict[str, Any]:
    """One line of the table; `passed` is `value op target`, None without a target or value."""
    passed = None if target is None or value is None else _COMPARE[op](value, target)
    return {"section": section, "name": name, "value": value, "unit": unit, "target": target,
            "target_op": None if target is None else op, "passed": passed}


def table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    stages = report["stages"]
    if "median_s" in stages:
        m = stages["median_s"]
        section = f"per symbol, in process (median of {stages['runs']})"
        rows += [
            _row(section, "ohlcv (simulate 400 bars, sanity, store)", m["ohlcv"], "s"),
            _row(section, "indicators (daily + weekly, read + store)", m["indicators"], "s"),
            _row(section, "charts: read indicators", m["chart_inputs"], "s"),
            _row(section, "charts: render both", m["charts"], "s", TARGET_CHARTS_S),
            _row(section, "charts: store PNGs + UI previews", m["chart_store_previews"], "s"),
            _row(section, "rules signal (request, analyst, signal row)", m["rules_signal"], "s"),
            _row(section, "orders (risk check, paper order, ledger)", m["orders"], "s"),
            _row(section, "portfolio (positions, account, snapshot)", m["portfolio"], "s"),
            _row(section, "total per symbol (no LLM latency)", m["total"], "s", TARGET_SYMBOL_S),
            _row(section, "load trading_assets.definitions (fresh process)",
                 stages["definitions_import_s"], "s", TARGET_DEFINITIONS_IMPORT_S),
        ]
    rows += renderer_rows(stages.get("charts_vs_mplfinance"))
    for result in report["e2e"]:
        n, mlflow = result["symbols"], result.get("mlflow", "on")
        section = (f"end to end, {n} symbols (Dagster, in-process, MLflow {mlflow})"
                   f"{_median_of(result)}")
        if "error" in result:
            rows.append(_row(section, f"FAILED: {result['error']}", None, ""))
            continue
        # The wall-time target is for the default configuration, MLflow on.
        at_scale = n >= 500 and mlflow == "on"
        rows += [
            _row(section, "wall time", result["wall_s"], "s",
                 TARGET_500_WALL_S * n / 500 if at_scale else None),
            _row(section, "symbols per minute", result["symbols_per_minute"], "/min",
                 500 / TARGET_500_WALL_S * 60 if at_scale else None, op=">="),
            _row(section, "symbols completed", result["symbols_completed"], "", n, op=">="),
            _row(section, "Dagster runs", result["dagster_runs"], "runs", TARGET_MAX_RUNS,
                 op="<="),
            _row(section, "peak memory, Dagster process (ru_maxrss)", result["peak_rss_mb"], "MB",
                 TARGET_PEAK_RSS_MB),
            _row(section, "peak memory incl. chart workers (/proc)", result["peak_tree_rss_mb"],
                 "MB", TARGET_PEAK_RSS_MB),
            _row(section, "CPU time, Dagster process + chart workers", result.get("cpu_s"), "s"),
            _row(section, "event log (DAGSTER_HOME) per symbol",
                 round(result["event_log_bytes_per_symbol"] / 1024, 1), "KB"),
        ]
    llm = report["llm"]
    if "wall_s" in llm:
        section = (f"LLM: {llm['calls']} calls of {llm['delay_s']:g} s, concurrency "
                   f"{llm['concurrency']} (loopback server){_median_of(llm)}")
        standard = llm["calls"] == 100 and llm["delay_s"] == 1.0
        rows += [
            _row(section, "wall time", llm["wall_s"], "s", TARGET_LLM_100_S if standard else None),
            _row(section, "sequential (calls x delay)", llm["sequential_s"], "s"),
            _row(section, "calls answered", llm["ok"], "", llm["calls"], op=">="),
        ]
    if "skipped" not in report.get("live", {"skipped": ""}):
        rows += live_rows(report["live"], _row)
    demo = report["demo"]
    if "wall_s" in demo:
        section = f"demo{_median_of(demo)}"
        rows.append(_row(section, "`trading-signals demo` (2 symbols, fresh process)",
                         demo["wall_s"], "s", TARGET_DEMO_S))
        rows.append(_row(section, "exit code", demo["exit_code"], "", 0, op="=="))
    return rows


def renderer_rows(charts: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The daily chart drawn by the project's renderer and by mplfinance, and their ratio."""
    if not charts or "project_s" not in charts:
        return []
    section = f"one daily chart ({charts['bars']} bars), median of {charts['runs']}"
    return [_row(section, "project renderer (core/charts.py)", charts["project_s"], "s"),
            _row(section, "mplfinance, same panels (fresh figure)", charts["mplfinance_s"], "s"),
            _row(section, "mplfinance / project", charts["ratio"], "x")]


def _median_of(result: dict[str, Any]) -> str:
    samples = result.get("wall_s_samples") or []
    return f", median of {len(samples)} runs" if len(samples) > 1 else ""


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:g} {unit}".strip()


def print_bench_report(report: dict[str, Any]) -> None:
    """The bench report by section, each measure against its target (console.print_table is
    the plain rows-and-columns printer)."""
    machine = report["machine"]
    print(f"\ntrading-signals bench: {machine['cpus']} CPU(s), Python {machine['python']}, "
          f"Dagster {machine['dagster']}, {machine['platform']}")
    if machine.get("load_avg_start") is not None:
        print(f"load average (1, 5, 15 min): {machine['load_avg_start']} at the start, "
              f"{machine.get('load_avg_end')} at the end")
    rows = report["table"]
    width = max([len(r["name"]) for r in rows] + [20]) + 2
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            print(f"\n{section}")
            print(f"  {'measure'.ljust(width)}{'value':>12}  {'target':>12}  result")
        target = "-" if row["target"] is None else \
            f"{row['target_op']} {_fmt(round(row['target'], 3), row['unit'])}"
        result = "" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
        print(f"  {row['name'].ljust(width)}{_fmt(row['value'], row['unit']):>12}  "
              f"{target:>12}  {result}")
    charts = report["stages"].get("charts_vs_mplfinance") if isinstance(report["stages"], dict) \
        else None
    if charts and "skipped" in charts:
        print(f"\nmplfinance comparison: skipped ({charts['skipped']})")
    for name, section_report in (("llm", report["llm"]), ("demo", report["demo"])):
        if "skipped" in section_report:
            print(f"\n{name}: skipped ({section_report['skipped']})")
    print(f"\nReference: {REFERENCE}.")


# --- the command -------------------------------------------------------------------------------


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
        with workspace(args.keep, "live") as work:
            report["live"] = bench_live(bench_env(work), work / "dagster-dev.log")
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
    if "error" in report.get("live", {}):
        problems.append(f"live: {report['live']['error']}")
    demo = report["demo"]
    if "exit_code" in demo and demo["exit_code"] != 0:
        problems.append(f"demo exited with {demo['exit_code']}: {demo['last_line']}")
    return problems


if __name__ == "__main__":  # the end-to-end child: python -m trading_assets.bench e2e-worker N OUT
    if len(sys.argv) == 4 and sys.argv[1] == "e2e-worker":
        sys.exit(e2e_worker(int(sys.argv[2]), Path(sys.argv[3])))
    sys.exit("usage: trading-signals bench --help")
