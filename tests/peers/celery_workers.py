"""Real `dagster-celery worker` processes on loopback RabbitMQ for the celery tests.

Each test session gets its own queue (trading-test-<token>) and worker names, so parallel
sessions on one broker never take each other's steps. Workers are started the documented way
(`python -m trading_assets.executors worker`, which writes the worker config from the same
settings as the executor and runs `dagster-celery worker start`), and are killed, and their
queue deleted, at the end. Without a broker the tests skip loudly; with CI=true they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.peers.postgres import in_ci

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL") or "pyamqp://guest:guest@127.0.0.1:5672//"


def broker_unavailable(reason: str) -> None:
    message = (f"\n{'!' * 78}\nRABBITMQ NOT AVAILABLE at 127.0.0.1:5672 ({reason}).\nThe celery "
               "tests did NOT run. Start it (`rabbitmq-server -detached`); with CI=true this is "
               f"a failure.\n{'!' * 78}")
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def check_broker(url: str = BROKER_URL) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure to connect means: no usable broker
        broker_unavailable(str(exc) or type(exc).__name__)


@dataclass
class Worker:
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
        raise AssertionError(f"worker {self.name} started no celery process; see {self.log}")


@dataclass
class CeleryWorkers:
    """Start, kill and clean up workers on one queue; read the queue's depth."""

    env: dict[str, str]  # the whole environment of launcher and workers
    logs: Path
    queue: str = field(default_factory=lambda: f"trading-test-{uuid.uuid4().hex[:10]}")
    workers: list[Worker] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "TRADING_CELERY_QUEUE": self.queue}

    def start(self, name: str) -> Worker:
        log = self.logs / f"{name}.log"
        out = log.open("wb")
        self._files.append(out)
        name = f"{name}-{self.queue}"  # unique per session: hostnames show in the event log
        process = subprocess.Popen(
            [sys.executable, "-m", "trading_assets.executors", "worker", "--name", name],
            cwd=ROOT, env=self.process_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup kills the whole tree
        )
        worker = Worker(name, process, log)
        self.workers.append(worker)
        return worker

    def consumers(self) -> int:
        return self._declare()[2]

    def depth(self) -> int:
        """Messages waiting in the queue (steps no worker has taken)."""
        return self._declare()[1]

    def wait_ready(self, count: int, timeout_s: float = 90) -> None:
        """Until `count` workers consume the queue (a worker is ready once it consumes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.consumers() >= count:
                return
            for worker in self.workers:
                if worker.process.poll() is not None:
                    raise AssertionError(f"worker {worker.name} exited: "
                                         f"{worker.log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"{count} workers not consuming {self.queue} after {timeout_s} s")

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
        self.delete_queue()

    def delete_queue(self) -> None:
        from kombu import Connection

        with Connection(BROKER_URL, connect_timeout=3) as connection:
            connection.default_channel.queue_delete(self.queue)

    def _declare(self) -> tuple[str, int, int]:
        """(name, messages, consumers) of the queue, (name, 0, 0) while nobody declared it."""
        from amqp.exceptions import NotFound
        from kombu import Connection

        with Connection(BROKER_URL, connect_timeout=3) as connection:
            try:
                # Passive: only looks, so the queue keeps the arguments Celery declares it with.
                result: Any = connection.default_channel.queue_declare(self.queue, passive=True)
            except NotFound:
                return self.queue, 0, 0
            return result.queue, result.message_count, result.consumer_count


def celery_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what selects the celery executor on the test broker."""
    return {**base, "TRADING_EXECUTOR": "celery", "TRADING_CELERY_BROKER_URL": BROKER_URL}
