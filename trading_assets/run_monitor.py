"""Whether a run's process is still alive, and the run launcher that tells Dagster's monitoring.

Dagster's run monitoring notices a dead run worker only through the run launcher's health
check, and the DefaultRunLauncher (one process per run, started by the code server) has none:
after `kill -9` on `dagster dev`'s process group and a restart, the run stayed STARTED for
good, and every "is a run in flight?" check (Run now, the sensors, a waiting CLI) blocked on
it. `MonitoredRunLauncher` is the DefaultRunLauncher with that check; the instance configs
name it (runs.home_config, dagster.yaml). The same test serves the launchers' waits and the
analysis claims (a claim belongs to a live run).

A process counts as gone only when that is certain: its pid on this machine no longer runs
(or is a zombie, or now belongs to a process started after the run), or the code server that
started it answers that it has no such run. Anything else (another machine, a code server
that does not answer) counts as alive; `dagster/max_runtime` still bounds such a run.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# host:pid of the process that executes an in-process run (the CLI, the Gradio app, replay):
# a run launched through the code server records its worker's pid in its own event log.
WORKER_TAG = "trading/worker"
_GRPC_INFO_TAG = ".dagster/grpc_info"  # dagster._core.storage.tags.GRPC_INFO_TAG
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})
_STARTED_PROCESS = "Started process for run"  # the run worker's first engine event
_CLOCK_SLACK_S = 2.0  # /proc start times are whole clock ticks, run times are not
_GRPC_TIMEOUT_S = 10


def worker_tags() -> dict[str, str]:
    """The tag naming this process as the run's worker (runs executed in this process)."""
    return {WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def worker_gone(instance: Any, run: Any) -> str:
    """Why the unfinished `run`'s process is certainly gone, or "" (alive, or cannot tell).

    A run the code server started is asked about there first; when that server does not
    answer (it died with the process group) the worker's pid decides, if it ran on this
    machine. A run executed in a process of ours (WORKER_TAG) is judged by that pid.
    """
    grpc = _grpc_info(run)
    if grpc is not None:
        running = _ask_code_server(grpc, run.run_id)
        if running is not None:
            return "" if running else (
                f"the code server at {_where(grpc)} that started it no longer runs it (the "
                "server restarted or the process died)")
    local = _local_worker(instance, run, grpc)
    if local is None:
        return ""
    pid, where = local
    if _process_alive(pid, _run_start(instance, run.run_id)):
        return ""
    return (f"its process (pid {pid} {where}) is gone: killed, out of memory, or its machine "
            "restarted")


def end_if_dead(instance: Any, run: Any) -> str:
    """Mark a STARTED run whose process is gone FAILURE, saying why; "" when it is alive,
    finished or cannot be judged. The status is read again after the process check, so a run
    that ended normally meanwhile (its worker writes the end first) is left alone. A STARTING
    run is not judged (its process may not be registered yet): Dagster's start timeout is."""
    if run is None or run.is_finished or run.status.value != "STARTED":
        return ""
    why = worker_gone(instance, run)
    if not why:
        return ""
    latest = instance.get_run_by_id(run.run_id)
    if latest is None or latest.is_finished:
        return ""
    message = (f"Run {run.run_id[:8]} failed: {why}. Nothing it was doing continues; run its "
               "symbols again (their analysis claims are released).")
    instance.report_run_failed(latest, message)
    return message


def run_alive(instance: Any, run_id: str) -> bool:
    """False when Dagster has no such run, has it finished, or its process is gone (which is
    then recorded on the run); what holds an analysis claim."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    return not end_if_dead(instance, run)


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    """The DefaultRunLauncher with the run-worker health check Dagster's run monitoring uses.

    A dead worker's run is marked FAILURE here with the reason as its message, which the
    monitoring daemon then sees as a status change and leaves alone: the run's failure reads as
    a sentence instead of Dagster's health-check repr.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: Any) -> CheckRunHealthResult:
        why = end_if_dead(self._instance, run)
        if why:
            return CheckRunHealthResult(WorkerStatus.FAILED, why)
        return CheckRunHealthResult(WorkerStatus.RUNNING)


# --------------------------------------------------------------------------- where the worker is


def _local_worker(instance: Any, run: Any, grpc: dict[str, Any] | None
                  ) -> tuple[int, str] | None:
    """(pid, "on host") of the run's process when it runs on this machine, else None."""
    tag = run.tags.get(WORKER_TAG, "")
    if tag:
        host, _, pid = tag.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            return int(pid), f"on {host}"
        return None
    if grpc is None or not _is_loopback(grpc):
        return None
    pid = _started_pid(instance, run.run_id)
    return (pid, "on this machine") if pid is not None else None


def _grpc_info(run: Any) -> dict[str, Any] | None:
    raw = run.tags.get(_GRPC_INFO_TAG)
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _is_loopback(grpc: dict[str, Any]) -> bool:
    return bool(grpc.get("socket")) or str(grpc.get("host") or "").lower() in _LOOPBACK


def _started_pid(instance: Any, run_id: str) -> int | None:
    """The pid the run worker wrote in its "Started process for run (pid: N)" event."""
    from dagster import DagsterEventType

    records = instance.event_log_storage.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20, ascending=True).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or not (event.message or "").startswith(_STARTED_PROCESS):
            continue
        pid = getattr(event.engine_event_data.metadata.get("pid"), "value", None)
        if str(pid).isdigit():
            return int(str(pid))
    return None


def _run_start(instance: Any, run_id: str) -> float | None:
    record = instance.get_run_record_by_id(run_id)
    return getattr(record, "start_time", None)


def _process_alive(pid: int, run_started: float | None) -> bool:
    """A live, non-zombie process with this pid, started no later than the run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:  # not Linux, or it ended just now
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")
    state, started = stat
    if state in ("Z", "X"):
        return False
    return run_started is None or started is None or started <= run_started + _CLOCK_SLACK_S


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as a Unix time) from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        with open("/proc/stat") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        return fields[0], boot + int(fields[19]) / ticks
    except (IndexError, ValueError):
        return fields[0] if fields else "?", None


def _where(grpc: dict[str, Any]) -> str:
    return str(grpc.get("socket") or f"{grpc.get('host')}:{grpc.get('port')}")


def _ask_code_server(grpc: dict[str, Any], run_id: str) -> bool | None:
    """Whether the code server that started the run still runs it; None when it does not
    answer (down with its process group, restarting, or unreachable from here)."""
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult

    try:
        client = DagsterGrpcClient(port=grpc.get("port"), socket=grpc.get("socket"),
                                   host=grpc.get("host") or "localhost",
                                   use_ssl=bool(grpc.get("use_ssl", False)))
        reply = dg.deserialize_value(client.can_cancel_execution(
            CanCancelExecutionRequest(run_id=run_id), timeout=_GRPC_TIMEOUT_S),
            CanCancelExecutionResult)
    except Exception:  # noqa: BLE001 (refused, timed out, another version: cannot tell)
        return None
    return bool(reply.can_cancel)
