"""Which executor runs the symbol pipeline's steps: in process (default) or Celery over RabbitMQ.

TRADING_EXECUTOR=celery (with `pip install .[celery]`) sends every step to `dagster-celery`
workers through the broker at TRADING_CELERY_BROKER_URL (default: the local RabbitMQ,
pyamqp://guest@$DAGSTER_CELERY_BROKER_HOST:5672//). Workers and launcher share the Dagster
instance (PostgreSQL) and read the same environment, so every step loads the same resources.

`python -m trading_assets.executors worker --name w1` writes the worker config from the same
settings and starts one `dagster-celery worker` (docker-compose's celery profile and the tests
use it), so executor and workers can never disagree on broker, queue or acknowledgement.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from trading_assets.core.config import ConfigError, ExecutorSettings


def executor_kind(env: Mapping[str, str] | None = None) -> str:
    """TRADING_EXECUTOR: in_process (default), multiprocess or celery."""
    return ExecutorSettings.from_env(env).kind


def broker_url(env: Mapping[str, str] | None = None) -> str:
    """TRADING_CELERY_BROKER_URL, else the RabbitMQ at DAGSTER_CELERY_BROKER_HOST (127.0.0.1)."""
    return ExecutorSettings.from_env(env).broker


def check_broker_password(url: str) -> None:
    """Refuse a broker URL that names a user with an empty password (RABBITMQ_PASSWORD left empty
    under docker-compose's celery profile, which compose itself cannot require: it interpolates
    every service, even outside its profile)."""
    parts = urlsplit(url)
    if parts.username and parts.password == "":
        raise ConfigError(
            f"TRADING_CELERY_BROKER_URL has user {parts.username!r} and an empty password. Set "
            "RABBITMQ_PASSWORD in .env (docker compose --profile celery), or put the password "
            "in the URL."
        )


def celery_config(env: Mapping[str, str] | None = None, *, for_worker: bool = False
                  ) -> dict[str, Any]:
    """The celery_executor config, shared by the executor and the worker config file.

    The broker URL may hold a password: the executor gets it as an env reference (the Dagster
    UI shows the variable name) when the process environment sets it; a worker config file
    gets the value, since `dagster-celery worker start` writes it into the worker's settings.
    """
    settings = ExecutorSettings.from_env(env)
    url = settings.broker
    from_env = os.environ.get("TRADING_CELERY_BROKER_URL", "").strip() == url
    return {
        "broker": url if for_worker or not from_env else {"env": "TRADING_CELERY_BROKER_URL"},
        "backend": settings.backend,
        "config_source": {
            "task_default_queue": settings.queue,
            # A step's message is acknowledged when the step ends, not when a worker takes it:
            # if the worker dies (SIGKILL, OOM, lost container) the broker hands the step to
            # another worker instead of the run waiting forever for a result that never comes.
            # Steps therefore run at least once; the assets are idempotent (one order per
            # signal, claimed in the ledger before the broker is called).
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # One step per worker process at a time; nothing hoarded by a busy worker.
            "worker_prefetch_multiplier": 1,
        },
    }


def pipeline_executor(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """in_process_executor unless TRADING_EXECUTOR says multiprocess or celery (configured)."""
    kind = executor_kind(env)
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError("TRADING_EXECUTOR=celery needs the celery extra: "
                          "pip install '.[celery]' (or unset TRADING_EXECUTOR).") from None
    return celery_executor.configured(celery_config(env), name="celery")


def ensure_pool_limits(instance: dg.DagsterInstance, job: dg.JobDefinition) -> None:
    """Create the instance's limit row of every pool the job's steps use, once, up front.

    Dagster creates a pool's row when a step first claims it; on PostgreSQL two runs doing
    that at the same moment make one of them fail (UniqueViolation, then an aborted
    transaction: seen with two chunk runs started together on a fresh instance).
    """
    storage = instance.event_log_storage
    pools = {op.pool for op in job.graph.iterate_op_defs() if op.pool}
    for pool in sorted(pools - {limit.name for limit in storage.get_pool_limits()}):
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except Exception:
            # Another launcher created it between our read and our insert: that is fine.
            if pool not in {limit.name for limit in storage.get_pool_limits()}:
                raise


def write_worker_config(path: Path, env: Mapping[str, str] | None = None) -> Path:
    """The `-y` file of `dagster-celery worker start`: the executor's own config."""
    import yaml

    path.write_text(yaml.safe_dump({"execution": {"config": celery_config(env,
                                                                          for_worker=True)}}))
    return path


def worker_command(name: str, config: Path, env: Mapping[str, str] | None = None,
                   concurrency: int = 1) -> list[str]:
    """argv of one worker on this pipeline's queue; one process per step by default (solo
    pool: a killed worker takes its step with it instead of leaving an orphan running it)."""
    pool = ["-P", "solo"] if concurrency == 1 else ["-P", "prefork", "-c", str(concurrency)]
    return ["dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", str(config),
            "-q", ExecutorSettings.from_env(env).queue, "-n", name,
            "-i", "trading_assets.celery_worker", "--", *pool]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trading_assets.executors",
                                     description="Start a Celery worker for symbol_pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="start one dagster-celery worker (foreground)")
    worker.add_argument("--name", default="trading", help="worker name (before the @host)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps at once (default 1)")
    args = parser.parse_args(argv)
    try:
        check_broker_password(broker_url())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config = Path(tempfile.mkdtemp(prefix="trading-celery-")) / "celery.yaml"
    write_worker_config(config)
    command = worker_command(args.name, config, concurrency=args.concurrency)
    # dagster-celery starts `celery` by name: find both next to this interpreter (a venv that
    # is not on PATH) before anything else on PATH.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
