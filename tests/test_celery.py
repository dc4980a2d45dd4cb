"""The symbol pipeline on Dagster's Celery executor over the local RabbitMQ, end to end.

Two real `dagster-celery worker` processes on a queue of this session, the Dagster instance and
the application tables on PostgreSQL (shared by launcher and workers), range runs launched from
a separate process (tests/peers/celery_launch.py) the way a CLI or daemon would. Never skipped
under CI=true: without RabbitMQ or PostgreSQL the tests fail there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources.ibkr import reset_pacing
from tests.peers.celery_workers import CeleryWorkers, Worker, celery_env, check_broker
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from tests.peers.tws_peer import Listing, TwsPeer
from trading_assets.core.keys import bars_info_key
from trading_assets.partitions import register_symbols
from trading_assets.runs import symbol_batches
from trading_assets.settings import build_resources

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.timeout(600)]
ASSETS = ("ohlcv", "indicators", "charts", "llm_signal", "orders", "portfolio")


@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    workers: CeleryWorkers
    started: list[Worker]
    instance: dg.DagsterInstance
    resources: dict[str, Any]

    def add_symbols(self, symbols: list[str]) -> None:
        """Partitions plus settings that let every clear signal become an order."""
        app_db = self.resources["app_db"]
        register_symbols(self.instance, app_db, symbols)
        for symbol in symbols:
            app_db.upsert_settings(replace(app_db.settings_for(symbol), auto_approve=True,
                                           min_confidence=0))

    def launch(self, batch: list[str], workers: CeleryWorkers | None = None
               ) -> subprocess.Popen[str]:
        """One run over `batch` in its own launching process (started, not waited for), sent
        to the queue of `workers` (default: this cluster's)."""
        return subprocess.Popen(
            [sys.executable, "-m", "tests.peers.celery_launch", *batch], cwd=ROOT,
            env={**(workers or self.workers).process_env(), "PYTHONWARNINGS": "ignore"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, symbols: list[str], chunk: int, parallel: int = 2,
            workers: CeleryWorkers | None = None) -> list[dict[str, Any]]:
        """Chunk runs of the runs layer over `symbols`, `parallel` at a time; outcomes in
        order."""
        batches = symbol_batches(self.instance, symbols, chunk)
        with ThreadPoolExecutor(parallel) as pool:
            return list(pool.map(lambda b: outcome(self.launch(b, workers=workers)), batches))

    def run_id_of(self, start: str, timeout_s: float = 120) -> str:
        """The id of the newest run whose range starts at `start`, once it exists."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.instance.get_runs(dg.RunsFilter(
                tags={"dagster/asset_partition_range_start": start}), limit=1)
            if runs:
                return runs[0].run_id
            time.sleep(0.2)
        raise AssertionError(f"no run for the range starting at {start} after {timeout_s} s")


def outcome(launcher: subprocess.Popen[str], timeout_s: float = 300) -> dict[str, Any]:
    """The launcher's JSON line once its run ended (killed and reported after `timeout_s`)."""
    try:
        out, err = launcher.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        launcher.kill()
        out, err = launcher.communicate()
        raise AssertionError(f"run still going after {timeout_s} s: {err[-3000:]}") from None
    assert launcher.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def step_workers(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step key, celery worker hostname) for every step hand-over in the run's event log."""
    found = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = event.engine_event_data if event else None
        if data and "Celery worker" in data.metadata:
            found.append((event.step_key, str(data.metadata["Celery worker"].value)))
    return found


@pytest.fixture(scope="module")
def cluster(postgres_server: PostgresServer,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    check_broker()
    tmp = tmp_path_factory.mktemp("celery")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # PostgreSQL storage and pools
    (tmp / "logs").mkdir()
    url = {purpose: postgres_server.create_database(purpose).render_as_string(
        hide_password=False) for purpose in ("app", "paper")}
    env = celery_env({
        **postgres_server.dagster_env(postgres_server.create_database("dagster")),
        "DAGSTER_HOME": str(home), "TRADING_DATA_DIR": str(tmp / "data"),
        "TRADING_SIMULATED_AS_OF": "2026-11-20", "MLFLOW_TRACKING_URI": "off",
        "APP_DATABASE_URL": url["app"], "PAPER_BROKER_DATABASE_URL": url["paper"],
    })
    workers = CeleryWorkers(env, tmp / "logs")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            started = [workers.start("w1"), workers.start("w2")]
            workers.wait_ready(2)
            yield Cluster(home, env, workers, started, instance, build_resources(env))
        finally:
            workers.stop_all()
            instance.dispose()


def test_chunk_runs_spread_their_steps_over_both_workers(cluster: Cluster) -> None:
    symbols = [f"CEL{i:02d}" for i in range(24)]
    cluster.add_symbols(symbols)

    outcomes = cluster.run(symbols, chunk=6)

    assert [o["success"] for o in outcomes] == [True] * 4, outcomes
    hosts = {host for o in outcomes for _, host in step_workers(cluster.instance, o["run_id"])}
    assert hosts == {w.hostname for w in cluster.started}
    for asset in ASSETS:
        assert set(symbols) <= cluster.instance.get_materialized_partitions(dg.AssetKey(asset))
    for symbol in symbols:
        assert cluster.resources["app_db"].latest_signal(symbol) is not None, symbol
    assert cluster.workers.depth() == 0


def test_the_ibkr_pool_keeps_one_gateway_session_across_workers(
        cluster: Cluster, tmp_path: Path) -> None:
    """Two chunk runs at once whose ohlcv reads IBKR bars, on two workers of their own: the
    instance's `ibkr` pool lets one such step run at a time, and each worker closes its
    session when its step ends, so the gateway never sees two connections at once."""
    symbols = ["AAPL", "MSFT", "TSLA", "NVDA"]
    reset_pacing()
    with TwsPeer(as_of=date(2026, 11, 20),
                 listings=[Listing(symbol) for symbol in symbols]) as peer:
        env = {**cluster.env, "TRADING_DATA_SOURCE": "ibkr", "IBKR_PORT": str(peer.port),
               "IBKR_CONNECT_TIMEOUT": "5", "IBKR_REQUEST_TIMEOUT": "10"}
        workers = CeleryWorkers(env, tmp_path)
        try:
            started = [workers.start("i1"), workers.start("i2")]
            workers.wait_ready(2)
            cluster.add_symbols(symbols)
            outcomes = cluster.run(symbols, chunk=2, workers=workers)
            hosts = {host for o in outcomes
                     for step, host in step_workers(cluster.instance, o["run_id"])}
        finally:
            workers.stop_all()
        assert [o["success"] for o in outcomes] == [True, True], outcomes
        assert hosts == {w.hostname for w in started}
        for symbol in symbols:
            assert cluster.resources["store"].read_json(bars_info_key(symbol))["source"] == "ibkr"
        assert peer.historical_request_count >= len(symbols)
        assert peer.max_connections == 1


def test_a_worker_killed_mid_step_costs_a_redelivery_not_the_run(cluster: Cluster) -> None:
    """SIGKILL the worker running a chunk's charts step: the broker hands the unacknowledged
    step to the other worker and the run completes; a re-run completes; every symbol keeps
    one signal and at most one order; no message is left in the queue."""
    symbols = [f"KIL{i:02d}" for i in range(10)]
    cluster.add_symbols(symbols)
    launcher = cluster.launch(symbols)
    run_id = cluster.run_id_of(symbols[0])
    by_host = {w.hostname: w for w in cluster.started}
    deadline = time.monotonic() + 240
    victim = None
    while victim is None and time.monotonic() < deadline:
        victim = next((host for step, host in step_workers(cluster.instance, run_id)
                       if step == "charts"), None)
        time.sleep(0.05)
    assert victim is not None, "the charts step never reached a worker"
    cluster.workers.kill(by_host[victim])

    first = outcome(launcher)
    rerun = outcome(cluster.launch(symbols))

    assert first["success"] and rerun["success"], (first, rerun)
    [survivor] = set(by_host) - {victim}
    handovers = [host for step, host in step_workers(cluster.instance, run_id)
                 if step == "charts"]
    assert handovers == [victim, survivor]
    app_db = cluster.resources["app_db"]
    for symbol in symbols:
        signals = app_db.list_signals(symbol=symbol)
        assert len(signals) == 1, (symbol, [s.id for s in signals])
        orders = app_db.list_orders(symbol)
        assert len({o.signal_id for o in orders}) == len(orders) <= 1
    assert cluster.workers.depth() == 0
