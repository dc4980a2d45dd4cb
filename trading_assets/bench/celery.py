"""Bench: symbol_pipeline on the Celery executor, the same symbols with 1 and with 2 workers.

    python -m trading_assets.bench.celery --symbols 200 --workers 1,2 --chunk 50

Needs `pip install '.[celery]'`, RabbitMQ (TRADING_CELERY_BROKER_URL, default the local one) and
a PostgreSQL server (--postgres, default postgresql://postgres@127.0.0.1:5432/postgres) where
it creates throwaway databases: launcher and workers must share the instance. Each worker
count gets fresh databases, a fresh data folder and its own queue, on embedded defaults
(simulated bars, rules analyst, paper broker). Chunk runs are launched from their own
processes, `--parallel` at a time, the same way for every worker count.
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
from pathlib import Path
from typing import Any

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


def queue_state(broker: str, queue: str) -> tuple[int, int]:
    """(messages waiting, consumers) of `queue`; (0, 0) before anyone declared it."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        try:
            result = connection.default_channel.queue_declare(queue, passive=True)
        except NotFound:
            return 0, 0
        return result.message_count, result.consumer_count


def start_workers(count: int, env: Mapping[str, str], logs: Path) -> list[subprocess.Popen]:
    """`count` workers on env's queue, returned once all of them consume it."""
    from trading_assets.executors import broker_url, celery_queue

    workers = [subprocess.Popen(
        [sys.executable, "-m", "trading_assets.executors", "worker", "--name", f"bench-{i}"],
        env=dict(env), stdout=(logs / f"worker-{i}.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True) for i in range(count)]
    deadline = time.monotonic() + 300
    while queue_state(broker_url(env), celery_queue(env))[1] < count:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            for worker in workers:
                os.killpg(worker.pid, signal.SIGKILL)
            logs_text = "".join(p.read_text()[-1500:] for p in sorted(logs.glob("*.log")))
            raise RuntimeError(f"workers did not start:\n{logs_text}")
        time.sleep(0.5)
    return workers


def launch(batch: list[str], env: Mapping[str, str]) -> bool:
    """One run over `batch` from its own process; True when it succeeded."""
    done = subprocess.run([sys.executable, "-m", "trading_assets.bench.celery", "--launch",
                           *batch], env=dict(env), capture_output=True, text=True)
    return done.returncode == 0


def bench_workers(workers: int, symbols: int, chunk: int, parallel: int, server: str,
                  workdir: Path) -> dict[str, Any]:
    """Materialize `symbols` as chunk runs on `workers` workers; elapsed wall time and counts."""
    import dagster as dg

    from trading_assets.executors import broker_url
    from trading_assets.partitions import register_symbols
    from trading_assets.runs import symbol_batches
    from trading_assets.settings import build_resources

    token = uuid.uuid4().hex[:8]
    home, logs = workdir / f"home-{workers}", workdir / f"logs-{workers}"
    home.mkdir()
    logs.mkdir()
    with databases(server, token, ("dagster", "app", "paper")) as urls:
        # dagster-postgres is written for psycopg2 (SQLAlchemy 2.1 would pick psycopg 3).
        dagster_url = urls["dagster"].replace("postgresql://", "postgresql+psycopg2://", 1)
        (home / "dagster.yaml").write_text(INSTANCE_YAML.format(url=dagster_url))
        env = {**os.environ, "DAGSTER_HOME": str(home),
               "TRADING_DATA_DIR": str(workdir / f"data-{workers}"),
               "TRADING_SIMULATED_AS_OF": "2026-11-20", "MLFLOW_TRACKING_URI": "off",
               "APP_DATABASE_URL": urls["app"], "PAPER_BROKER_DATABASE_URL": urls["paper"],
               "TRADING_EXECUTOR": "celery", "TRADING_CELERY_QUEUE": f"bench-{token}",
               "PYTHONWARNINGS": "ignore"}
        names = [f"B{i:04d}" for i in range(symbols)]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            register_symbols(instance, build_resources(env)["app_db"], names)
            batches = symbol_batches(instance, names, chunk)  # the runs layer's chunks
        procs: list[subprocess.Popen] = []
        try:
            procs = start_workers(workers, env, logs)
            started = time.perf_counter()
            with ThreadPoolExecutor(parallel) as pool:
                ok = list(pool.map(lambda batch: launch(batch, env), batches))
            elapsed = time.perf_counter() - started
        finally:
            for proc in procs:
                # The whole group: `dagster-celery worker start` runs celery as its child.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _delete_queue(broker_url(env), env["TRADING_CELERY_QUEUE"])
    return {"workers": workers, "symbols": symbols, "runs": len(batches),
            "runs_ok": sum(ok), "seconds": round(elapsed, 1),
            "symbols_per_min": round(symbols / elapsed * 60, 1)}


def _delete_queue(broker: str, queue: str) -> None:
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        connection.default_channel.queue_delete(queue)


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
