"""The MLflow store worker: one daemon thread per store doing every MLflow call in order.

Split from resources/tracking.py (the resource and the run records): this is the part that
bounds each call, survives outages and keeps mlflow off the caller's thread.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trading_assets.core.secrets import public_url, redact

# After the store proved unreachable, skip it this long before trying again.
COOL_DOWN_S = 60.0
# The most a worker's start-up (import mlflow, create a local store) may take before callers
# stop waiting for it.
STARTUP_LIMIT_S = 60.0


@dataclass
class RunRecord:
    """Everything one MLflow run receives: tags, params, finite metrics, artifact bytes by
    relative path; `failed` marks the run FAILED (an analyst error) instead of FINISHED."""

    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: dict[str, bytes] = field(default_factory=dict)
    failed: bool = False



class StoreWorker:
    """One daemon thread doing all MLflow calls for one store, in order.

    Daemon, so a hung MLflow call can never keep a finished Dagster run process alive. Its
    start-up (importing mlflow, and for a local SQLite store creating or migrating the schema)
    is local work of a few seconds that no outage can stretch; callers' timeouts do not run
    during it, but it may take at most STARTUP_LIMIT_S.

    Only the import may run ahead in the background (`preload`): creating a SQLite store runs
    alembic migrations, and alembic keeps its migration context in module globals, so a store
    created while the run's own thread migrates the application database would break both.
    Store work therefore happens only while a caller is waiting for it.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.local = not uri.startswith(("http://", "https://", "databricks"))
        self._jobs: queue.Queue[tuple[Future[Any], Callable[[], Any], float, bool]] = \
            queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._reached = False  # the store has answered at least once
        self._starting_since: float | None = None
        self._busy_since: float | None = None
        self._busy_limit = 0.0
        self._blocked_until = 0.0
        self._blocked_reason = ""

    @property
    def where(self) -> str:
        return f"MLflow at {public_url(self.uri)}"

    def submit(self, job: Callable[[], Any], timeout_s: float, needs_store: bool = True
               ) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, job, timeout_s, needs_store))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="mlflow-tracking")
                self._thread.start()
        return future

    def skip_reason(self) -> str | None:
        """Why a call should not even wait for MLflow now, or None."""
        now = time.monotonic()
        with self._lock:
            if self._starting_since is not None and now - self._starting_since > STARTUP_LIMIT_S:
                return (f"{self.where} is still starting after {STARTUP_LIMIT_S:g} s (importing "
                        "mlflow, opening the store); signal not tracked.")
            if self._busy_since is not None and now - self._busy_since > self._busy_limit:
                return (f"{self.where} is still busy with a request that exceeded the "
                        f"{self._busy_limit:g} s timeout; signal not tracked.")
            if now < self._blocked_until:
                return self._blocked_reason
        return None

    def wait(self, future: Future[Any], timeout_s: float) -> Any:
        """The job's result, waiting at most `timeout_s` beyond the worker's start-up."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            with self._lock:
                starting = self._starting_since
            if starting is not None and now - starting <= STARTUP_LIMIT_S:
                deadline = max(deadline, now + timeout_s)
            if now >= deadline:
                raise FutureTimeout
            try:
                return future.result(timeout=min(deadline - now, 0.2))
            except FutureTimeout:
                continue

    def _loop(self) -> None:
        while True:
            future, job, timeout_s, needs_store = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue  # its caller already gave up waiting
            started = time.monotonic()
            try:
                if needs_store:
                    self._start()
                started = time.monotonic()
                with self._lock:
                    self._busy_since, self._busy_limit = started, timeout_s
                result = job()
            except BaseException as exc:
                overran = time.monotonic() - started > timeout_s
                with self._lock:
                    self._busy_since = None
                    if overran or not self._reached:
                        # Unreachable or hanging: give the store a rest instead of making
                        # every later signal of the run pay for it again.
                        self._blocked_until = time.monotonic() + COOL_DOWN_S
                        self._blocked_reason = (
                            f"{self.where} failed moments ago ({short_error(exc)}); skipping it "
                            f"for up to {COOL_DOWN_S:g} s.")
                future.set_exception(exc)
            else:
                with self._lock:
                    self._busy_since, self._blocked_until = None, 0.0
                    self._reached = self._reached or needs_store
                future.set_result(result)

    def preload(self) -> None:
        """Import mlflow (seconds of CPU), touching no store: safe beside the run's own work."""
        with self._lock:
            self._starting_since = time.monotonic()
        try:
            import mlflow.tracking  # noqa: F401
        finally:
            with self._lock:
                self._starting_since = None

    def _start(self) -> None:
        """Import mlflow and, for a local store, open it (creating the schema on first use)."""
        if self._client is not None:
            return
        with self._lock:
            self._starting_since = time.monotonic()
        try:
            from mlflow.tracking import MlflowClient

            if self.uri.startswith("sqlite:///"):
                Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True,
                                                                      exist_ok=True)
            client = MlflowClient(tracking_uri=self.uri)
            if self.local:
                client.search_experiments(max_results=1)  # creates or migrates the schema
            self._client = client
        finally:
            with self._lock:
                self._starting_since = None

    def experiment_id(self, name: str, artifact_location: str) -> str:
        """The experiment's id, creating it (with its artifact location) on first use."""
        if name not in self._experiments:
            found = self._client.get_experiment_by_name(name)
            self._experiments[name] = found.experiment_id if found else \
                self._client.create_experiment(
                    name, artifact_location=artifact_location or None,
                    tags={"workflow": "trading-signals"})
        return self._experiments[name]

    def log_run(self, record: RunRecord, experiment: str, artifact_location: str
                ) -> tuple[str, str]:
        """Create, fill and close one run; returns (run id, experiment id)."""
        from mlflow.entities import Metric, Param

        client = self._client
        experiment_id = self.experiment_id(experiment, artifact_location)
        run = client.create_run(experiment_id, tags=record.tags, run_name=record.run_name)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        try:
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in record.metrics.items()],
                params=[Param(k, v) for k, v in record.params.items()],
            )
            if record.artifacts:
                with tempfile.TemporaryDirectory(prefix="mlflow-artifacts-") as tmp:
                    for name, data in record.artifacts.items():
                        path = Path(tmp) / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(data)
                    client.log_artifacts(run_id, tmp)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FAILED" if record.failed else "FINISHED")
        return run_id, experiment_id



_WORKERS: dict[str, StoreWorker] = {}
_WORKERS_LOCK = threading.Lock()


_NETWORK_FAILURES = (("Connection refused", "connection refused"),
                     ("timed out", "no answer in time"),
                     ("Name or service not known", "unknown host"),
                     ("Failed to resolve", "unknown host"))


def short_error(exc: BaseException) -> str:
    """One line saying what went wrong: the network cause when there is one."""
    text = str(exc)
    for needle, meaning in _NETWORK_FAILURES:
        if needle in text:
            return f"not reachable: {meaning}"
    lines = str(redact(text)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")



def worker_for(uri: str) -> StoreWorker:
    """The one worker for this store URI in this process (created on first use)."""
    with _WORKERS_LOCK:
        if uri not in _WORKERS:
            _WORKERS[uri] = StoreWorker(uri)
        return _WORKERS[uri]
