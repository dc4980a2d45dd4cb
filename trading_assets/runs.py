"""The one way to launch and wait for runs: the CLI, the Gradio app, bench and replay use it.

API (small on purpose; other executors build on it):

* ``get_instance()`` / ``ensure_dagster_home()``: the project's Dagster instance;
  ``dagster_env()``: the environment of a process started on it (its event batch size).
* ``launch_symbols(symbols, instance=..., launched_by="cli", mode="auto")`` -> ``list[RunOutcome]``:
  registers the symbols as partitions, splits them into contiguous ranges of the partition list
  (at most TRADING_MAX_SYMBOLS_PER_RUN each) and runs the ``symbol_pipeline`` job once per range,
  waiting for every run. ``mode`` is ``"daemon"`` (submit to the instance's run queue, so
  ``max_concurrent_runs``, the ``ibkr``/``llm`` pools and run tags apply), ``"in-process"``
  (launch here: steps run in this process, or on the Celery workers when TRADING_EXECUTOR=celery)
  or ``"auto"`` (daemon when one is heartbeating, else in-process); each outcome says which
  mode ran it (``"celery"`` for an in-process launch whose steps ran on the workers).
* ``launch_in_child_process(...)``: the in-process launch in a spawned process of its own, for a
  process whose other threads use the same instance (the Gradio app's Run now without a daemon).
* ``submit_batch`` / ``wait_for_runs`` / ``execute_batch``: the same, one range at a time. A wait
  never hangs: it gives up on a run the daemon has not started (stale heartbeat, or
  TRADING_QUEUE_WAIT_S) or a started run no daemon watches, fails a started run whose process
  is gone (run_monitor.py), and that run's outcome says why.
* ``run_failures(instance, run_id)``: each failed step with its underlying error.
* ``run_tags``, ``run_symbols``, ``analysis_runs`` (trading_assets/run_tags.py, re-exported
  here): the tags every run carries and what they say about a run, which the sensors read
  without importing this module's launcher.

A submitted run names the code location ``trading_assets`` (workspace.yaml and the docker
workspace both use that name); the daemon launches it from its own workspace, where only the
location name and job name matter.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trading_assets.run_tags import (
    ACTIVE_STATUSES,
    ANALYSIS_ASSET,
    LAUNCH_TAG,
    LAUNCHED_BY_TAG,
    LAUNCHERS,
    PARTITION_TAG,
    RANGE_END,
    RANGE_START,
    RUNNING_STATUSES,
    WAITING_STATUSES,
    analysing_symbols,
    analysis_runs,
    launch_tags,
    run_symbols,
    run_tags,
)

# run_tags' names are part of this module's API too (callers launch and read runs here).
__all__ = ["ACTIVE_STATUSES", "ANALYSIS_ASSET", "JOB_NAME", "LAUNCH_TAG", "LAUNCHED_BY_TAG",
           "LAUNCHERS",
           "LOCATION_NAME", "PARTITION_TAG", "QUIET_RUN_CONFIG", "RANGE_END", "RANGE_START",
           "RunOutcome", "analysing_symbols", "analysis_runs", "chunk_size", "daemon_running",
           "dagster_env", "ensure_dagster_home", "execute_batch", "execute_pipeline",
           "get_instance", "launch_in_child_process", "launch_symbols", "materialize_ranges",
           "outcome", "resolve_mode", "run_failures",
           "run_symbols", "run_tags", "submit_batch", "symbol_batches", "wait_for_runs"]

JOB_NAME = "symbol_pipeline"
LOCATION_NAME = "trading_assets"
DEFINITIONS_MODULE = "trading_assets.definitions"
# Dagster's console logger prints every event, and a failed step's traceback, to the terminal.
# Runs keep all of it in the event log (Dagster UI) and the CLI prints one line per failure.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# A daemon whose queue heartbeat is older than this is taken as not running.
HEARTBEAT_MAX_AGE_S = 60.0
# How often a wait looks whether its started runs' processes are still alive.
WORKER_CHECK_S = 5.0


@dataclass(frozen=True)
class RunOutcome:
    """One finished run: which symbols, how it ran and, when it failed, why."""

    run_id: str
    symbols: list[str]
    success: bool
    mode: str  # "daemon" | "in-process" | "celery" (launched here, steps on the workers)
    failures: list[str] = field(default_factory=list)
    status: str = ""


# The embedded instance: SQLite under DAGSTER_HOME (Dagster's default layout), an event log that
# writes a batch of events in one transaction (trading_assets/event_log.py), telemetry off. The
# event log's folder is written out in full: a process that opens this home by path (not through
# DAGSTER_HOME) must find the same files.
_GENERATED = "# Written by trading-signals; delete this line to keep your own edits.\n"
# With `make dev`, the chunk runs of one launch (or one sensor tick) queue one after another: on
# a laptop, starting them together only shares the same cores among more processes, each with
# its chart workers (500 symbols: 3 runs, 2.5 GB for the dev tree). Other runs are not held up.
_LAUNCH_ONE_AT_A_TIME = f"""\
concurrency:
  runs:
    tag_concurrency_limits:
      - key: {LAUNCH_TAG}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""
# A run whose process died (killed, out of memory, `dagster dev` killed) ends FAILURE with the
# reason within one poll instead of staying STARTED for good: the launcher's health check
# (trading_assets/run_monitor.py) tells the daemon. Start: a run worker imports the code
# location before the run starts, over a minute on a loaded 2-core laptop, so 3 minutes.
# Cancel: a canceled step stops at its next interrupt check; the longest wait without one is an
# LLM attempt (LLM_TIMEOUT_S, 60 s), twice over. Poll: a laptop wants to know within seconds.
_RUN_MONITORING = """\
run_launcher:
  module: trading_assets.run_monitor
  class: MonitoredRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 120
  poll_interval_seconds: 15
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: 60
"""
# What earlier versions wrote; such a home is upgraded in place (the same SQLite files).
_OLD_HOME_CONFIG = "telemetry:\n  enabled: false\n"
# Events a process hands the event log together: every partition of a step's output (at most
# TRADING_MAX_SYMBOLS_PER_RUN, 200 by default), or a run's planned events at launch (6 per
# symbol). A batch is also written when it reaches this size, so memory stays bounded.
EVENT_BATCH_SIZE = 1000
# Dagster hands events over in batches only where this is set in the environment of the
# process writing them; it reads it at every event, so it is set when a process starts, never
# changed in one that runs (switched off mid-batch, the buffered events would never be written).
BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"


def home_config(home: Path) -> str:
    """The dagster.yaml of a project-local instance at `home`."""
    return (f"{_GENERATED}telemetry:\n  enabled: false\nevent_log_storage:\n"
            "  module: trading_assets.event_log\n  class: BatchingSqliteEventLogStorage\n"
            f"  config:\n    base_dir: {json.dumps(str(home / 'storage'))}\n"
            f"    event_batch_size: {EVENT_BATCH_SIZE}\n"
            f"{_LAUNCH_ONE_AT_A_TIME}{_RUN_MONITORING}")


def event_batch_size(home: Path) -> int:
    """The event batch size the instance at `home` asks for (its event log's
    ``event_batch_size``; what `home_config` writes where it has no dagster.yaml yet), 0 for
    none (e.g. a PostgreSQL instance)."""
    import yaml

    path = home / "dagster.yaml"
    text = path.read_text() if path.exists() else home_config(home.resolve())
    storage = (yaml.safe_load(text) or {}).get("event_log_storage") or {}
    size = (storage.get("config") or {}).get("event_batch_size") or 0
    return size if isinstance(size, int) else 0


def dagster_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) for a process the project starts on its instance: with
    DAGSTER_EVENT_BATCH_SIZE from the instance's config unless `env` sets it. This process's
    own environment is left as it is."""
    env = dict(os.environ if env is None else env)
    size = event_batch_size(Path(env.get("DAGSTER_HOME") or ".dagster_home"))
    if size and BATCH_SIZE_ENV not in env:
        env[BATCH_SIZE_ENV] = str(size)
    return env


def ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or a project-local .dagster_home, creating it if needed (and rewriting
    the config this project wrote, e.g. after the folder moved)."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    text = config.read_text() if config.exists() else None
    if text is None or text == _OLD_HOME_CONFIG or text.startswith(_GENERATED):
        expected = home_config(home)
        if text != expected:
            config.write_text(expected)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance() -> Any:
    """The project's Dagster instance (DAGSTER_HOME, default ./.dagster_home)."""
    import dagster as dg

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def chunk_size() -> int:
    """Symbols per run: TRADING_MAX_SYMBOLS_PER_RUN (default 200), shared with the sensors."""
    from trading_assets.settings import automation_config

    return automation_config().max_symbols_per_run


def daemon_running(instance: Any) -> bool:
    """True when the instance queues runs and a daemon drains the queue (fresh heartbeat)."""
    return _queues_runs(instance) and _daemon_silence(instance) is None


def _queues_runs(instance: Any) -> bool:
    import dagster as dg

    return isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)


def _daemon_silence(instance: Any) -> str | None:
    """None while the queue daemon heartbeats, else how it is silent ("never heartbeat", ...)."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    if beat is None:
        return "no Dagster daemon is heartbeating on this instance"
    age = time.time() - beat.timestamp
    if age < HEARTBEAT_MAX_AGE_S:
        return None
    return f"the Dagster daemon's last heartbeat is {age:.0f} s old"


def queue_wait_s() -> float:
    """TRADING_QUEUE_WAIT_S: how long a launcher waits for the daemon to start a queued run
    (read with the other launch settings, so a bad value stops the command at start)."""
    from trading_assets.settings import automation_config

    return automation_config().queue_wait_s


def symbol_batches(instance: Any, symbols: Sequence[str], size: int | None = None,
                   keys: Sequence[str] | None = None) -> list[list[str]]:
    """Contiguous stretches of the partition list covering `symbols`, `size` at most each
    (`keys`: that list when the caller has read it already)."""
    from trading_assets.partitions import contiguous_batches

    return contiguous_batches(_partition_keys(instance) if keys is None else keys, symbols,
                              size or chunk_size())


def launch_symbols(symbols: Sequence[str], *, instance: Any | None = None,
                   resources: dict[str, Any] | None = None, launched_by: str = "cli",
                   mode: str = "auto", timeout_s: float | None = None) -> list[RunOutcome]:
    """Register `symbols` and run the symbol pipeline for them, a run per range; waits."""
    from trading_assets.partitions import register_symbols
    from trading_assets.settings import build_resources

    instance = instance or get_instance()
    resources = resources or build_resources()
    mode = resolve_mode(instance, mode)
    if mode == "daemon":
        # Load the job before the partitions appear, so the new_symbols sensor sees this
        # run queued (and leaves the symbols alone) as soon as it can see the symbols.
        from trading_assets.definitions import defs  # noqa: F401
    register_symbols(instance, resources["app_db"], list(symbols), resources)
    batches = symbol_batches(instance, symbols)
    if mode == "daemon":
        launch = launch_tags(len(batches), f"{launched_by}-{uuid.uuid4().hex[:12]}")
        run_ids = [submit_batch(instance, batch, launched_by, launch) for batch in batches]
        return wait_for_runs(instance, run_ids, timeout_s=timeout_s)
    return [execute_batch(instance, batch, resources, launched_by) for batch in batches]


# Processes for launch_in_child_process, started on first use and kept warm: importing
# Dagster, the definitions and the chart stack again for every run cost 15-20 s on a loaded
# 2-core machine, five times the run itself. Two, so two overlapping launches both start.
CHILD_PROCESSES = 2
_child_pool: Any = None
_child_pool_lock = threading.Lock()


def launch_in_child_process(symbols: Sequence[str], *, instance: Any,
                            resources: Mapping[str, Any], launched_by: str
                            ) -> list[RunOutcome]:
    """`launch_symbols(mode="in-process")` in a Python process of its own; waits for it.

    For a long-lived process that serves other threads (the Gradio app): the run gets its own
    instance object, SQLite connections and memory, so nothing it does to them is seen by the
    page, and a crash or out-of-memory ends the run (run monitoring marks it FAILURE via its
    worker tag), not the app. The processes are spawned (forking a process with threads is
    unsafe) in a session of their own (Ctrl-C on the app's terminal stops the app, which waits
    for the run, instead of interrupting the run half-written) and reused.
    """
    from concurrent.futures.process import BrokenProcessPool

    job = (list(symbols), instance.get_ref(),
           {name: _recipe(resource) for name, resource in resources.items()}, launched_by,
           dagster_env())  # the instance's event batch size too
    pool = _child_processes()
    try:
        return pool.submit(_run_child_job, job).result()
    except BrokenProcessPool:
        with _child_pool_lock:  # the next launch starts fresh processes
            global _child_pool
            if _child_pool is pool:
                _child_pool = None
        raise RuntimeError(
            f"the run process for {', '.join(symbols)} ended before it reported (killed or out "
            "of memory?); run monitoring marks a started run failed; see the app's log and "
            "run it again") from None


def _child_processes() -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _child_pool
    with _child_pool_lock:
        if _child_pool is None:
            _child_pool = ProcessPoolExecutor(
                max_workers=CHILD_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                initializer=os.setsid)
        return _child_pool


def _run_child_job(job: tuple[list[str], Any, dict[str, Any], str, dict[str, str]]
                   ) -> list[RunOutcome]:
    """The child's side of launch_in_child_process: the same instance, resources and
    environment (settings read at run time, e.g. TRADING_EXECUTOR) as the launcher's now."""
    import dagster as dg

    symbols, instance_ref, recipes, launched_by, environ = job
    os.environ.clear()
    os.environ.update(environ)
    resources = {name: _rebuild(recipe) for name, recipe in recipes.items()}
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        return launch_symbols(symbols, instance=instance, resources=resources,
                              launched_by=launched_by, mode="in-process")


def _recipe(value: Any) -> Any:
    """A configured resource as (class, its fields), nested resources too: Dagster's resources
    do not survive pickling (their config schema does not unpickle), their fields do."""
    import dagster as dg

    if isinstance(value, dg.ConfigurableResource):
        return _Recipe(type(value), {name: _recipe(getattr(value, name))
                                     for name in type(value).model_fields})
    return value


@dataclass(frozen=True)
class _Recipe:
    cls: type
    fields: dict[str, Any]


def _rebuild(value: Any) -> Any:
    if isinstance(value, _Recipe):
        return value.cls(**{name: _rebuild(field) for name, field in value.fields.items()})
    return value


def resolve_mode(instance: Any, mode: str) -> str:
    """"daemon" or "in-process" for a requested mode ("auto" asks the instance)."""
    if mode not in ("auto", "daemon", "in-process"):
        raise ValueError(f"mode={mode!r}: use auto, daemon or in-process.")
    if mode == "auto":
        return "daemon" if daemon_running(instance) else "in-process"
    return mode


def _job_origins() -> tuple[Any, Any]:
    """The remote and Python origins a queued run needs.

    The daemon resolves the remote origin by name in its own workspace (location, repository,
    job), so it names nothing else; the Python origin is the job workers rebuild
    (``symbol_pipeline`` here, as Celery's workers do). Dagster's public ways to queue a run
    need a webserver (GraphQL) or start a code server per run (``dagster job launch``, 23 s
    on a loaded 2-core machine), hence these private classes (docs/upgrading-dagster.md).
    """
    import dagster as dg
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    location = RegisteredCodeLocationOrigin(LOCATION_NAME)
    remote = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), JOB_NAME)
    return remote, dg.reconstructable(symbol_pipeline).get_python_origin()


def submit_batch(instance: Any, batch: Sequence[str], launched_by: str,
                 extra_tags: Mapping[str, str] | None = None) -> str:
    """Queue one symbol_pipeline run over `batch` on the instance; returns its run id.

    The run is created from the code location's own job (so the Dagster UI shows its plan) and
    handed to the run coordinator: the daemon starts it within the queue and pool limits.
    """
    from trading_assets.executors import ensure_pool_limits

    job = symbol_pipeline()
    # Two runs starting together on a fresh PostgreSQL instance would race to create the
    # pools' limit rows (one fails): create them here, before the daemon starts either.
    ensure_pool_limits(instance, job)
    remote, python = _job_origins()
    run = instance.create_run_for_job(job_def=job, run_config=QUIET_RUN_CONFIG,
                                      tags={**run_tags(batch, launched_by),
                                            **(extra_tags or {})},
                                      remote_job_origin=remote, job_code_origin=python)
    instance.submit_run(run.run_id, workspace=None)  # QueuedRunCoordinator needs none
    return run.run_id


def wait_for_runs(instance: Any, run_ids: Sequence[str], timeout_s: float | None = None,
                  poll_s: float = 0.5) -> list[RunOutcome]:
    """Poll until every run has finished, one outcome per run; never forever.

    A run still waiting for the daemon is given up (not canceled) once the daemon's heartbeat
    is stale, or once TRADING_QUEUE_WAIT_S passed with none of these runs running or ending (the
    runs of one launch queue behind each other, so a queued run behind a running sibling is
    moving); a started run once the heartbeat is stale; every run once `timeout_s` passed. The
    outcome of a run given up says why and what to do. A started run whose process is gone
    (run_monitor.end_if_dead) is marked FAILURE with the reason, and its outcome says so.
    """
    from trading_assets.run_monitor import end_if_dead

    start = time.monotonic()
    deadline = None if timeout_s is None else start + timeout_s
    queue_limit = queue_wait_s()
    pending, given_up = list(run_ids), {}
    moved = start  # when one of these runs last ran or ended
    looked = start - WORKER_CHECK_S  # when the started runs' processes were last looked at
    while pending and (deadline is None or time.monotonic() < deadline):
        polled = [instance.get_run_by_id(i) for i in pending]
        now = time.monotonic()
        if now - looked >= WORKER_CHECK_S:
            looked = now
            # A run whose process died is failed here with the reason (the daemon's run
            # monitoring would do the same within its poll): the wait ends on it at once.
            polled = [instance.get_run_by_id(run.run_id) if end_if_dead(instance, run) else run
                      for run in polled]
        active = [run for run in polled if not run.is_finished]
        if len(active) < len(polled) or any(r.status.value in RUNNING_STATUSES
                                            for r in active):
            moved = now
        silence = _daemon_silence(instance) if active and _queues_runs(instance) else None
        for run in active:
            why = _stalled(run, silence, now - moved, queue_limit)
            if why:
                given_up[run.run_id] = why
        pending = [run.run_id for run in active if run.run_id not in given_up]
        if pending:
            time.sleep(poll_s)
    keys = _partition_keys(instance)
    return [outcome(instance, run_id, "daemon", keys=keys, unfinished=given_up.get(run_id, ""))
            for run_id in run_ids]


def _stalled(run: Any, silence: str | None, waited_s: float, queue_limit: float) -> str:
    """Why waiting longer for an unfinished run is pointless, or "" to keep waiting."""
    status = run.status.value
    head = f"run {run.run_id[:8]} is still {status}: "
    if status in WAITING_STATUSES and (silence or waited_s >= queue_limit):
        why = silence or (f"the Dagster daemon has not started it in {waited_s:.0f} s in which "
                          "no run of this launch ran (TRADING_QUEUE_WAIT_S; the queue's run "
                          "and pool limits may hold it)")
        return (f"{head}{why}; start `make dev` (or `dagster-daemon run`) or run with "
                "--in-process; the run stays queued and will start when a daemon does")
    if status in RUNNING_STATUSES and silence:
        return (f"{head}{silence}, so nothing watches it; it may still finish: see it in the "
                "Dagster UI (`make dev`, which also restarts the daemon)")
    return ""


def outcome(instance: Any, run_id: str, mode: str, *, keys: Sequence[str] | None = None,
            unfinished: str = "") -> RunOutcome:
    """What became of a run: its symbols, status and failures, read from the instance.

    `keys`: the symbols partition list when the caller has read it already (one read for
    several runs); `unfinished`: why the wait for this run ended early, when it did.
    """
    run = instance.get_run_by_id(run_id)
    symbols = run_symbols(run.tags, list(_partition_keys(instance) if keys is None else keys))
    failures = run_failures(instance, run_id)
    if not run.is_finished:
        failures.append(unfinished or
                        f"run {run_id[:8]} still {run.status.value} when the wait ended")
    return RunOutcome(run_id=run_id, symbols=symbols, success=run.is_success, mode=mode,
                      failures=failures, status=run.status.value)


def _partition_keys(instance: Any) -> list[str]:
    from trading_assets.partitions import SYMBOLS_PARTITION

    return list(instance.get_dynamic_partitions(SYMBOLS_PARTITION))


def run_failures(instance: Any, run_id: str) -> list[str]:
    """The run's failed steps, each with its underlying error (not Dagster's wrapper)."""
    import dagster as dg

    from trading_assets.core.errors import root_error, step_error_text

    lines = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        error = root_error(event.event_specific_data.error)
        lines.append(f"{event.step_key}: {step_error_text(error)}" if error
                     else f"{event.step_key}: failed")
    run = instance.get_run_by_id(run_id)
    if not lines and run is not None and run.status.value == "FAILURE":
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
            lines.append(f"run: {record.dagster_event.message or 'failed'}")
    return lines


def _pipeline_job(resources: Mapping[str, Any]) -> Any:
    """The symbol_pipeline job bound to `resources` (tests and scripts pass their own)."""
    import dagster as dg

    from trading_assets.definitions import (
        SYMBOL_ASSETS,
        SYMBOL_CHECKS,
        automation,
        symbol_pipeline_job,
    )

    defs = dg.Definitions(assets=SYMBOL_ASSETS, asset_checks=[*SYMBOL_CHECKS, *automation.checks],
                          jobs=[symbol_pipeline_job], resources=dict(resources))
    return defs.resolve_job_def(JOB_NAME)


def symbol_pipeline() -> Any:
    """The resolved symbol_pipeline job (the target workers reconstruct it from)."""
    from trading_assets.definitions import defs

    return defs.resolve_job_def(JOB_NAME)


def execute_pipeline(instance: Any, tags: Mapping[str, str],
                     run_config: Mapping[str, Any] | None = None) -> Any:
    """Run symbol_pipeline on its configured executor (a range run: pass the range tags).

    Celery workers rebuild the job from `symbol_pipeline` in this module, which is why it is
    reconstructable here rather than materialized in process with a resource dict.
    """
    import dagster as dg

    from trading_assets.executors import ensure_pool_limits

    ensure_pool_limits(instance, symbol_pipeline())
    return dg.execute_job(dg.reconstructable(symbol_pipeline), instance=instance,
                          tags=dict(tags), run_config=dict(run_config or {}),
                          raise_on_error=False)


def execute_batch(instance: Any, batch: Sequence[str], resources: Mapping[str, Any],
                  launched_by: str) -> RunOutcome:
    """Run symbol_pipeline over `batch` from this process (same job, tags and event log).

    With TRADING_EXECUTOR=celery the run goes through the configured executor, so its steps
    run on the Celery workers (which build their resources from their own environment);
    otherwise it executes here with `resources`. The outcome's mode says which ("celery" or
    "in-process").
    """
    from trading_assets import executors
    from trading_assets.run_monitor import worker_tags

    # This process is the run's worker: run monitoring fails the run if the process dies.
    tags = {**run_tags(batch, launched_by), **worker_tags()}
    if executors.executor_kind() == "celery":
        result = execute_pipeline(instance, tags, QUIET_RUN_CONFIG)
        return outcome(instance, result.run_id, "celery")
    result = _pipeline_job(resources).execute_in_process(
        instance=instance, run_config=QUIET_RUN_CONFIG, tags=tags, raise_on_error=False)
    return outcome(instance, result.run_id, "in-process")


def materialize_ranges(instance: Any, symbols: Sequence[str], assets: Sequence[Any],
                       resources: Mapping[str, Any], launched_by: str) -> list[RunOutcome]:
    """Materialize other `assets` (replay's outcomes) in-process, a run per symbol range."""
    import dagster as dg

    from trading_assets.run_monitor import worker_tags

    keys = _partition_keys(instance)  # one read for the batches and every outcome
    outcomes = []
    for batch in symbol_batches(instance, symbols, keys=keys):
        result = dg.materialize(list(assets), instance=instance, resources=dict(resources),
                                raise_on_error=False, run_config=QUIET_RUN_CONFIG,
                                tags={**run_tags(batch, launched_by), **worker_tags()})
        outcomes.append(outcome(instance, result.run_id, "in-process", keys=keys))
    return outcomes
