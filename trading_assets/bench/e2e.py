"""Bench sections 2 and 4: N symbols end to end through Dagster in a child process, and the demo."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from trading_assets.bench.common import bench_env, folder_bytes, run_child, timed, workspace


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
