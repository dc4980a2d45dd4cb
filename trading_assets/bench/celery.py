"""Bench: symbol_pipeline on the Celery executor, the same symbols with 1 and with 2 workers.

    python -m trading_assets.bench.celery --symbols 200 --workers 1,2 --chunk 50

Needs `pip install '.[celery]'`, RabbitMQ (TRADING_CELERY_BROKER_URL, default the local one) and
a PostgreSQL server (--postgres, default postgresql://postgres@127.0.0.1:5432/postgres) where
it creates throwaway databases: launcher and workers must share the instance. Each worker
count gets fresh databases, a fresh data folder and its own queue, on embedded defaults
(simulated bars, rules analyst, paper broker: bench_env drops the user's LLM_*, IBKR_* ...).
Chunk runs are launched from their own processes, `--parallel` at a time, the same way for every
worker count. CeleryWorkers is also the worker harness of the celery tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trading_assets.bench.common import bench_env

INSTANCE_YAML = """storage:
  postgres:
    postgres_url: "{url}"
concurrency:
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


@contextmanager
def databases(server: str, token: str, purposes: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """Empty databases bench_<token>_<purpose> on `server`, dropped afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    names = {p: f"bench_{token}_{p}" for p in purposes}
    with engine.connect() as connection:
        for name in names.values():
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.make_url(server)
    try:
        yield {p: base.set(database=n).render_as_string(hide_password=False)
               for p, n in names.items()}
    finally:
        with engine.connect() as connection:
            for name in names.values():
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@dataclass
class Worker:
    """One `python -m trading_assets.executors worker` process (it runs celery as its child)."""

    name: str  # the part before @host
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def hostname(self) -> str:
        return f"{self.name}@{os.uname().nodename}"

    def celery_pid(self) -> int:
        """The Celery worker itself: `dagster-celery worker start` runs it as its child."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            if children.exists() and children.read_text().split():
                return int(children.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} started no celery process; see {self.log}")


@dataclass
class CeleryWorkers:
    """Real workers on one queue of their own (the bench's and the celery tests' one harness):
    start them the documented way, wait until they consume, read the queue, kill them and
    delete the queue. `env` is the whole environment of launcher and workers (its
    TRADING_CELERY_BROKER_URL names the broker)."""

    env: dict[str, str]
    logs: Path
    queue: str = field(default_factory=lambda: f"trading-{uuid.uuid4().hex[:10]}")
    workers: list[Worker] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def process_env(self) -> dict[str, str]:
        return {**self.env, "TRADING_CELERY_QUEUE": self.queue}

    def start(self, name: str) -> Worker:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        out = log.open("wb")
        self._files.append(out)
        name = f"{name}-{self.queue}"  # unique per queue: hostnames show in the event log
        process = subprocess.Popen(
            [sys.executable, "-m", "trading_assets.executors", "worker", "--name", name],
            env=self.process_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup kills the whole tree
        )
        worker = Worker(name, process, log)
        self.workers.append(worker)
        return worker

    def consumers(self) -> int:
        return self._declare()[1]

    def depth(self) -> int:
        """Messages waiting in the queue (steps no worker has taken)."""
        return self._declare()[0]

    def wait_ready(self, count: int, timeout_s: float = 90) -> None:
        """Until `count` workers consume the queue (a worker is ready once it consumes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.consumers() >= count:
                return
            for worker in self.workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {worker.name} exited: "
                                       f"{worker.log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"{count} workers not consuming {self.queue} after {timeout_s} s")

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> int:
        """Kill the Celery worker process (not its launcher) with `sig`; return its pid."""
        pid = worker.celery_pid()
        os.kill(pid, sig)
        return pid

    def stop_all(self) -> None:
        """Kill every worker's process group, then delete the queue (and what is in it)."""
        for worker in self.workers:
            try:
                os.killpg(worker.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            worker.process.wait(timeout=30)
        for out in self._files:
            out.close()
        with self._connection() as connection:
            connection.default_channel.queue_delete(self.queue)

    def _connection(self) -> Any:
        from kombu import Connection

        from trading_assets.executors import broker_url

        return Connection(broker_url(self.env), connect_timeout=3)

    def _declare(self) -> tuple[int, int]:
        """(messages, consumers) of the queue, (0, 0) while nobody declared it."""
        from amqp.exceptions import NotFound

        with self._connection() as connection:
            try:
                # Passive: only looks, so the queue keeps the arguments Celery declares it with.
                result = connection.default_channel.queue_declare(self.queue, passive=True)
            except NotFound:
                return 0, 0
            return result.message_count, result.consumer_count


def celery_bench_env(workdir: Path, urls: Mapping[str, str],
                     base: Mapping[str, str] | None = None) -> dict[str, str]:
    """bench_env under `workdir` (embedded defaults: none of the user's LLM_*, IBKR_* ...
    settings) on these databases, with the Celery executor on the user's broker."""
    from trading_assets.executors import broker_url

    base = os.environ if base is None else base
    return {**bench_env(workdir, base=base), "TRADING_EXECUTOR": "celery",
            "TRADING_CELERY_BROKER_URL": broker_url(base),
            "APP_DATABASE_URL": urls["app"], "PAPER_BROKER_DATABASE_URL": urls["paper"]}


def launch(batch: list[str], env: Mapping[str, str]) -> bool:
    """One run over `batch` from its own process; True when it succeeded."""
    done = subprocess.run([sys.executable, "-m", "trading_assets.bench.celery", "--launch",
                           *batch], env=dict(env), capture_output=True, text=True)
    return done.returncode == 0


def bench_workers(workers: int, symbols: int, chunk: int, parallel: int, server: str,
                  workdir: Path) -> dict[str, Any]:
    """Materialize `symbols` as chunk runs on `workers` workers; elapsed wall time and counts."""
    import dagster as dg

    from trading_assets.partitions import register_symbols
    from trading_assets.runs import symbol_batches
    from trading_assets.settings import build_resources

    token = uuid.uuid4().hex[:8]
    with databases(server, token, ("dagster", "app", "paper")) as urls:
        env = celery_bench_env(workdir / f"workers-{workers}", urls)
        home = Path(env["DAGSTER_HOME"])
        home.mkdir(parents=True)
        # dagster-postgres is written for psycopg2 (SQLAlchemy 2.1 would pick psycopg 3).
        dagster_url = urls["dagster"].replace("postgresql://", "postgresql+psycopg2://", 1)
        (home / "dagster.yaml").write_text(INSTANCE_YAML.format(url=dagster_url))
        names = [f"B{i:04d}" for i in range(symbols)]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            register_symbols(instance, build_resources(env)["app_db"], names)
            batches = symbol_batches(instance, names, chunk)  # the runs layer's chunks
        cluster = CeleryWorkers(env, home.parent / "logs", queue=f"bench-{token}")
        try:
            for i in range(workers):
                cluster.start(f"bench-{i}")
            cluster.wait_ready(workers, timeout_s=300)
            started = time.perf_counter()
            with ThreadPoolExecutor(parallel) as pool:
                ok = list(pool.map(lambda batch: launch(batch, cluster.process_env()), batches))
            elapsed = time.perf_counter() - started
        finally:
            cluster.stop_all()
    return {"workers": workers, "symbols": symbols, "runs": len(batches),
            "runs_ok": sum(ok), "seconds": round(elapsed, 1),
            "symbols_per_min": round(symbols / elapsed * 60, 1)}


def _launch_main(batch: list[str]) -> int:
    import dagster as dg

    from trading_assets.runs import execute_pipeline, run_tags

    with dg.DagsterInstance.get() as instance:
        result = execute_pipeline(instance, run_tags(batch, "bench"))
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trading_assets.bench.celery",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--chunk", type=int, default=50, help="symbols per range run")
    parser.add_argument("--parallel", type=int, default=2, help="runs launched at a time")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--launch", nargs="+", metavar="SYMBOL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.launch:
        return _launch_main(args.launch)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        for count in [int(c) for c in args.workers.split(",")]:
            results.append(bench_workers(count, args.symbols, args.chunk, args.parallel,
                                         args.postgres, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    return 0 if all(r["runs_ok"] == r["runs"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
