"""The bench's shared settings, targets and helpers: environments, workspaces, child runs."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trading_assets.runs import dagster_env

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
    return dagster_env(env)


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
