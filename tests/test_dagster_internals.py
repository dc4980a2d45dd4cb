"""Dagster on a leash: the pins cap the minor line the tests run, every private Dagster import
is listed in docs/upgrading-dagster.md with a test, and these tests fail when upstream
changes the shape or behaviour of a private name the project relies on."""

from __future__ import annotations

import ast
import inspect
import re
import threading
import tomllib
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("trading_assets", "resources", "ui", "tests")


def private_imports() -> dict[str, set[str]]:
    """Each `dagster._` module imported anywhere in SCANNED -> the files importing it."""
    found: dict[str, set[str]] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module] if node.module != "dagster" else [
                        f"dagster.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                for module in modules:
                    if module.startswith("dagster._"):
                        found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def upgrade_table() -> list[tuple[str, str, str]]:
    """docs/upgrading-dagster.md's rows: (private import, where used, tests)."""
    text = (ROOT / "docs" / "upgrading-dagster.md").read_text()
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`dagster._"):
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_dagster_is_pinned_to_the_minor_line_the_tests_run() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"],
             *[s for extra in project["optional-dependencies"].values() for s in extra]]
    pinned = [Requirement(spec) for spec in specs if spec.startswith("dagster")]
    assert {r.name for r in pinned} >= {"dagster", "dagster-webserver", "dagster-postgres"}
    for requirement in pinned:
        installed = Version(version(requirement.name))
        assert installed in requirement.specifier, (requirement, installed)
        caps = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
        assert caps == [Version(f"{installed.major}.{installed.minor + 1}")], requirement


def test_every_private_dagster_import_is_listed_with_a_test_that_exists() -> None:
    rows = upgrade_table()
    listed = " ".join(module for module, _, _ in rows)
    for module, files in private_imports().items():
        assert f"`{module}`" in listed, \
            f"{module} ({', '.join(sorted(files))}) not in docs/upgrading-dagster.md"
        [(_, where, _)] = [row for row in rows if f"`{module}`" in row[0]]
        for file in files:
            assert f"`{file}`" in where or file == "tests/test_dagster_internals.py", \
                (module, file)
    for _, _, tests in rows:
        named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", tests)
        assert named, tests
        for file, test in named:
            source = (ROOT / file).read_text()
            assert not test or f"def {test}(" in source, f"{file}::{test} does not exist"


# --- trading_assets/event_log.py --------------------------------------------------------------


def test_sqlite_event_log_storage_keeps_the_methods_a_batch_overrides() -> None:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    def params(name: str) -> list[str]:
        return list(inspect.signature(getattr(SqliteEventLogStorage, name)).parameters)

    assert params("__init__") == ["self", "base_dir", "inst_data"]
    assert params("run_connection") == ["self", "run_id"]
    assert params("index_connection") == ["self"]
    assert params("store_event") == ["self", "event"]
    assert params("store_event_batch") == ["self", "events"]
    assert params("from_config_value") == ["inst_data", "config_value"]
    assert set(SqliteEventLogStorage.config_type()) == {"base_dir"}


def test_sqlite_event_log_connections_take_the_lock_a_batch_makes_reentrant(
        tmp_path: Path) -> None:
    # A batch opens the index's connection and, inside it, the run file's: both through
    # Dagster's connect, which holds the storage's `_db_lock` while a connection is open.
    from trading_assets.event_log import BatchingSqliteEventLogStorage

    storage = BatchingSqliteEventLogStorage(str(tmp_path / "storage"))
    nested_done = threading.Event()

    def nested() -> None:
        with storage.index_connection(), storage.run_connection("a-run"):
            nested_done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(30)
    assert nested_done.is_set(), "opening both connections at once deadlocked"

    other_done = threading.Event()

    def other() -> None:
        with storage.index_connection():
            other_done.set()

    with storage._db_lock:  # held: Dagster's connect must wait for it
        waiter = threading.Thread(target=other, daemon=True)
        waiter.start()
        waiter.join(1.0)
        assert not other_done.is_set(), "Dagster's connect no longer takes _db_lock"
    waiter.join(30)
    assert other_done.is_set()


# --- trading_assets/runs.py -------------------------------------------------------------------


def test_a_queued_runs_origin_names_location_repository_and_job() -> None:
    from trading_assets import runs

    remote, python = runs._job_origins()
    again = dg.deserialize_value(dg.serialize_value(remote))  # as the run storage keeps it
    assert again == remote
    assert remote.repository_origin.code_location_origin.location_name == runs.LOCATION_NAME
    assert remote.repository_origin.repository_name == "__repository__"
    assert remote.job_name == python.job_name == runs.JOB_NAME
    assert list(inspect.signature(dg.DagsterInstance.submit_run).parameters) == [
        "self", "run_id", "workspace"]
    create = inspect.signature(dg.DagsterInstance.create_run_for_job).parameters
    assert {"job_def", "run_config", "tags", "remote_job_origin", "job_code_origin"} <= set(create)


# --- trading_assets/run_monitor.py ------------------------------------------------------------


def test_run_health_result_and_worker_status_keep_their_shape() -> None:
    from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

    assert {"RUNNING", "FAILED"} <= set(WorkerStatus.__members__)
    result = CheckRunHealthResult(WorkerStatus.FAILED, "gone")
    assert (result.status, result.msg) == (WorkerStatus.FAILED, "gone")
    assert list(inspect.signature(dg.DefaultRunLauncher.check_run_worker_health).parameters) \
        == ["self", "run"]


def test_the_code_server_client_keeps_its_shape() -> None:
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult

    assert {"port", "socket", "host", "use_ssl"} <= set(
        inspect.signature(DagsterGrpcClient).parameters)
    assert list(inspect.signature(DagsterGrpcClient.can_cancel_execution).parameters) == [
        "self", "can_cancel_execution_request", "timeout"]
    request = CanCancelExecutionRequest(run_id="r1")
    assert dg.deserialize_value(dg.serialize_value(request)).run_id == "r1"
    reply = dg.serialize_value(CanCancelExecutionResult(can_cancel=True))
    assert dg.deserialize_value(reply, CanCancelExecutionResult).can_cancel is True


def test_the_grpc_info_tag_is_dagsters() -> None:
    from dagster._core.storage.tags import GRPC_INFO_TAG

    from trading_assets.run_monitor import _GRPC_INFO_TAG

    assert _GRPC_INFO_TAG == GRPC_INFO_TAG


# --- trading_assets/settings.py ---------------------------------------------------------------


@pytest.mark.parametrize(("cron", "valid"), [("30 16 * * 1-5", True), ("0 9 * * *", True),
                                              ("every day", False), ("61 16 * * *", False)])
def test_cron_validation_keeps_its_shape(cron: str, valid: bool) -> None:
    from dagster._utils.schedules import is_valid_cron_string

    assert list(inspect.signature(is_valid_cron_string).parameters) == ["cron_string"]
    assert is_valid_cron_string(cron) is valid


# --- tests ------------------------------------------------------------------------------------


def test_a_daemon_heartbeat_keeps_its_shape() -> None:
    from dagster._daemon.types import DaemonHeartbeat

    assert list(inspect.signature(DaemonHeartbeat).parameters)[:3] == [
        "timestamp", "daemon_type", "daemon_id"]
    with dg.instance_for_test() as instance:
        instance.add_daemon_heartbeat(DaemonHeartbeat(12.5, "QUEUED_RUN_COORDINATOR", "d1"))
        assert instance.get_daemon_heartbeats()["QUEUED_RUN_COORDINATOR"].timestamp == 12.5


def test_the_instance_config_loader_keeps_its_shape(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert config["telemetry"] == {"enabled": False} and custom_class is None


def test_the_repository_snapshot_keeps_its_shape() -> None:
    from dagster._core.remote_representation.external_data import (
        RepositorySnap,
        ResourceConfigEnvVarSnap,
    )

    assert list(inspect.signature(RepositorySnap.from_def).parameters)[0] == "repository_def"
    assert ResourceConfigEnvVarSnap(name="X").name == "X"
