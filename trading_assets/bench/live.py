"""Bench: the paths a user takes through a live `dagster dev` (webserver + daemon).

Started by `trading-signals bench` (section "live") on a free loopback port with its own
temporary Dagster home and data folder:

* UI run: one symbol's `symbol_pipeline` launched by GraphQL `launchRun` (what the Dagster UI's
  "Materialize" and "Launch run" send), from the launch call to the run's SUCCESS.
* runs layer: one symbol launched as the CLI and Gradio do with a daemon up
  (`runs.launch_symbols`, submitted to the queue), launch to end.
* add to signal: a symbol added as the CLI and the Gradio app add it (partition + settings),
  until its signal is in the review list, through the `new_symbols` sensor and the daemon.
* many symbols: N symbols as `trading-signals materialize` launches them with `make dev` up
  (chunk runs on the daemon's queue, each run a process of its own), launch to the last run's
  end, with the peak memory of the whole `dagster dev` process tree.

Each also counts the runs that covered its symbol: the sensor must not start a second one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from trading_assets.local_app import STARTUP_TIMEOUT_S, Child

TARGET_DEFINITIONS_IMPORT_S = 1.0
TARGET_UI_RUN_S = 15.0
TARGET_ADD_TO_SIGNAL_S = 30.0
RUN_TIMEOUT_S = 300.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def import_cost(module: str, env: Mapping[str, str], runs: int = 3) -> dict[str, float]:
    """Median wall and CPU seconds (user + system, from os.wait4) of `import module` in a fresh
    interpreter; CPU time barely moves with machine load, wall time does."""
    import statistics

    walls, cpus = [], []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", f"import {module}"], env=dict(env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            walls.append(time.perf_counter() - started)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return {"wall_s": round(statistics.median(walls), 3) if walls else None,
            "cpu_s": round(statistics.median(cpus), 3) if cpus else None}


def wait_for(predicate: Callable[[], Any], timeout_s: float, poll_s: float = 0.25) -> Any:
    """Call `predicate` until it returns something truthy (returned) or time runs out (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    return None


# Where the log of a `dagster dev` that failed to start is kept (git-ignored): the caller's
# own log usually sits in a temporary folder that is gone by the time someone looks.
KEPT_LOGS = ROOT / "bench-results"


class DagsterDevError(RuntimeError):
    """`dagster dev` ended by itself or never became ready; the message ends with its log tail."""


class DagsterDev:
    """`dagster dev` on a free loopback port over the instance `make dev` sets up (its own
    process group, so it stops with all its children); `start` again after `kill` restarts it
    on the same home, as a person does after a crash."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        import dagster as dg

        from trading_assets.local_app import create_storage
        from trading_assets.runs import home_config

        self.env, self.log = dict(env), log
        home = Path(self.env["DAGSTER_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(home_config(home))
        self.instance = dg.DagsterInstance.from_config(str(home))
        # Its SQLite files, before dagster dev and this process race to create them.
        create_storage(self.instance)
        self.port, self.pid, self.startup_s = 0, 0, 0.0
        self._child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> DagsterDev:
        """Start it and wait until it is ready as the product judges it (health.py): the
        webserver answers /server_info and every daemon heartbeats anew. Raises
        DagsterDevError at once when the process ends, or after `timeout_s`."""
        from trading_assets.health import daemon_check, webserver_answers

        self.port = free_port()
        dagster = Path(sys.executable).with_name("dagster")
        started, since = time.perf_counter(), time.time()
        self._child = Child("dagster dev", self.url, [
            str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p",
            str(self.port)], self.log, self.env)
        self._child.start(ROOT)
        assert self._child.process is not None
        self.pid = self._child.process.pid
        deadline = time.monotonic() + timeout_s
        while True:
            code = self._child.exited
            if code is not None:
                self._fail(f"dagster dev exited with code {code} before it was ready")
            webserver = webserver_answers(self.url)
            daemon = daemon_check(self.instance, since=since)
            if webserver and daemon.up:
                break
            if time.monotonic() > deadline:
                self._fail(f"dagster dev not ready after {timeout_s:g} s (webserver "
                           f"{'answers' if webserver else 'does not answer'} at {self.url}; "
                           f"daemon {daemon.detail.split(':')[0]})")
            time.sleep(1.0)
        self.startup_s = time.perf_counter() - started
        return self

    def _fail(self, why: str) -> NoReturn:
        """Stop what is left, keep the log where it survives, raise with its last lines."""
        assert self._child is not None
        tail = self._child.tail()
        self.stop()
        KEPT_LOGS.mkdir(parents=True, exist_ok=True)
        kept = KEPT_LOGS / f"dagster-dev-{time.strftime('%Y%m%d-%H%M%S')}-{self.pid}.log"
        try:
            shutil.copyfile(self.log, kept)
        except OSError:
            kept = self.log
        raise DagsterDevError(f"{why}; its log is kept at {kept}. Last lines:\n{tail}")

    def kill(self) -> None:
        """SIGKILL the whole process group: webserver, daemon, code server and run workers."""
        if self._child is not None:
            self._child.signal_group(signal.SIGKILL)
            assert self._child.process is not None
            self._child.process.wait()
            self._child = None

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL what is left after a grace period."""
        if self._child is not None:
            self._child.stop()
            self._child = None


@contextmanager
def dagster_dev(env: Mapping[str, str], log: Path) -> Iterator[tuple[int, Any, float, int]]:
    """`dagster dev` on a free port: (port, the instance, seconds until webserver + daemon,
    its process id)."""
    dev = DagsterDev(env, log).start()
    try:
        yield dev.port, dev.instance, dev.startup_s, dev.pid
    finally:
        dev.stop()


def runs_for(instance: Any, symbol: str) -> list[Any]:
    """Runs whose partition tag or range covers `symbol`."""
    from trading_assets.partitions import SYMBOLS_PARTITION
    from trading_assets.runs import run_symbols

    keys = list(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    return [r.dagster_run for r in instance.get_run_records()
            if symbol in run_symbols(r.dagster_run.tags, keys)]


def ui_run(port: int, instance: Any, symbol: str) -> dict[str, Any]:
    """Launch one symbol by GraphQL as the UI does; seconds from launch to SUCCESS."""
    from dagster_graphql import DagsterGraphQLClient

    from trading_assets.partitions import SYMBOLS_PARTITION
    from trading_assets.runs import JOB_NAME, LOCATION_NAME

    instance.add_dynamic_partitions(SYMBOLS_PARTITION, [symbol])
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
    started = time.perf_counter()
    run_id = client.submit_job_execution(
        JOB_NAME, repository_location_name=LOCATION_NAME, repository_name="__repository__",
        tags={"dagster/partition": symbol, "trading/launched_by": "bench"})
    run = wait_for(lambda: (r := instance.get_run_by_id(run_id)) is not None and r.is_finished
                   and r, RUN_TIMEOUT_S)
    wall = time.perf_counter() - started
    return {"symbol": symbol, "launch_to_end_s": round(wall, 3),
            "status": run.status.value if run else "timed out"}


def runs_layer_run(instance: Any, resources: dict[str, Any], symbol: str) -> dict[str, Any]:
    """One symbol as the CLI and Gradio launch it with a daemon up (runs.launch_symbols)."""
    from trading_assets.runs import launch_symbols

    started = time.perf_counter()
    [outcome] = launch_symbols([symbol], instance=instance, resources=resources,
                               launched_by="bench", mode="daemon", timeout_s=RUN_TIMEOUT_S)
    return {"symbol": symbol, "launch_to_end_s": round(time.perf_counter() - started, 3),
            "status": outcome.status, "mode": outcome.mode}


def add_to_signal(instance: Any, resources: dict[str, Any], symbol: str) -> dict[str, Any]:
    """Add a symbol as the CLI does; seconds until its signal is in the review list."""
    from trading_assets.partitions import register_symbols

    app_db = resources["app_db"]
    started = time.perf_counter()
    register_symbols(instance, app_db, [symbol])
    found = wait_for(lambda: app_db.latest_signal(symbol), RUN_TIMEOUT_S)
    wall = time.perf_counter() - started
    return {"symbol": symbol, "add_to_signal_s": round(wall, 3) if found else None,
            "status": found.status if found else "no signal"}


def many_symbols(instance: Any, resources: dict[str, Any], n: int, root_pid: int
                 ) -> dict[str, Any]:
    """n symbols through the daemon's queue as the CLI launches them with `make dev` up: wall
    time to the last run's end, runs, symbols completed, peak memory of the dagster dev tree."""
    import threading

    from trading_assets.assets.trading import portfolio
    from trading_assets.bench.common import tree_rss_mb
    from trading_assets.runs import launch_symbols

    symbols = [f"Q{i:04d}" for i in range(n)]
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss_mb(root_pid) or 0.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        outcomes = launch_symbols(symbols, instance=instance, resources=resources,
                                  launched_by="bench", mode="daemon",
                                  timeout_s=RUN_TIMEOUT_S + 2 * n)
    finally:
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    completed = set(instance.get_materialized_partitions(portfolio.key)) & set(symbols)
    spans = [(stats.start_time, stats.end_time) for o in outcomes
             if (stats := instance.get_run_stats(o.run_id)).start_time and stats.end_time]
    return {"symbols": n, "wall_s": round(wall, 3), "runs": len(outcomes),
            "most_runs_at_once": max((sum(s <= t < e for s, e in spans) for t, _ in spans),
                                     default=0),
            "runs_succeeded": sum(o.success for o in outcomes),
            "symbols_completed": len(completed),
            "failures": [f for o in outcomes for f in o.failures][:5],
            "peak_tree_rss_mb": round(peak[0], 1)}


def bench_live(env: Mapping[str, str], log: Path, symbols: int = 0) -> dict[str, Any]:
    """Import costs, then the paths against one `dagster dev`; afterwards, how many runs each
    symbol got; last, `symbols` symbols through the queue (none when 0)."""
    from trading_assets.settings import build_resources

    resources = build_resources(env)
    imports = {module: import_cost(module, env)
               for module in ("trading_assets.definitions", "dagster")}
    try:
        with dagster_dev(env, log) as (port, instance, startup_s, pid):
            ui = ui_run(port, instance, "UIRUN")
            queued = runs_layer_run(instance, resources, "VIARUNS")
            added = add_to_signal(instance, resources, "ADDED")
            # One more sensor interval: a duplicate run would be queued by now.
            time.sleep(12)
            for result in (ui, queued, added):
                result["runs"] = len(runs_for(instance, result["symbol"]))
            many = many_symbols(instance, resources, symbols, pid) if symbols else None
    except DagsterDevError as exc:
        return {"error": str(exc)}
    return {"imports": imports, "startup_s": round(startup_s, 3), "ui_run": ui,
            "runs_layer": queued, "add_to_signal": added, "many": many}


def live_rows(live: dict[str, Any], row: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """The bench table's rows for the live section (`row` is bench._row)."""
    section = "live `dagster dev` (webserver + daemon)"
    if "error" in live:
        return [row(section, f"FAILED: {live['error']}", None, "")]
    ui, queued, added = live["ui_run"], live["runs_layer"], live["add_to_signal"]
    definitions, dagster = live["imports"]["trading_assets.definitions"], \
        live["imports"]["dagster"]
    return [
        row(section, "load trading_assets.definitions, wall (fresh process)",
            definitions["wall_s"], "s", TARGET_DEFINITIONS_IMPORT_S),
        row(section, "load trading_assets.definitions, CPU (user + system)",
            definitions["cpu_s"], "s", TARGET_DEFINITIONS_IMPORT_S),
        row(section, "  of which `import dagster` alone, CPU", dagster["cpu_s"], "s"),
        row(section, "dagster dev start-up (webserver + daemon ready)", live["startup_s"], "s"),
        row(section, "one symbol by GraphQL launchRun, launch to end", ui["launch_to_end_s"],
            "s", TARGET_UI_RUN_S),
        row(section, f"  run status ({ui['status']}), runs for the symbol", ui["runs"], "runs",
            1, op="=="),
        row(section, "one symbol via runs.launch_symbols (CLI/Gradio), daemon queue",
            queued["launch_to_end_s"], "s", TARGET_UI_RUN_S),
        row(section, f"  run status ({queued['status']}), runs for the symbol", queued["runs"],
            "runs", 1, op="=="),
        row(section, "add a symbol -> signal in review (new_symbols sensor)",
            added["add_to_signal_s"], "s", TARGET_ADD_TO_SIGNAL_S),
        row(section, f"  signal {added['status']}, runs for the symbol", added["runs"], "runs",
            1, op="=="),
        *many_rows(live.get("many"), section, row),
    ]


def many_rows(many: dict[str, Any] | None, section: str, row: Callable[..., dict[str, Any]]
              ) -> list[dict[str, Any]]:
    """The rows of the many-symbols run through the queue (none when it was not run)."""
    if not many:
        return []
    n = many["symbols"]
    return [
        row(section, f"{n} symbols via the daemon queue (CLI with make dev up), launch to end",
            many["wall_s"], "s"),
        row(section, f"  runs ({many['runs_succeeded']} succeeded), symbols completed",
            many["symbols_completed"], "symbols", n, op=">="),
        row(section, "  most of its runs running at once (one launch: one at a time)",
            many["most_runs_at_once"], "runs", 1, op="=="),
        row(section, "  peak memory, whole dagster dev tree (webserver, daemon, code server, "
            "runs, chart workers)", many["peak_tree_rss_mb"], "MB"),
    ]
