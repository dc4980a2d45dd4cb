"""The embedded instance's event log writes a run's per-symbol events in batches, with the same
rows Dagster's own SQLite storage writes one by one (trading_assets/event_log.py); the processes
the project starts carry the batch size, and no instance changes the environment it runs in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from trading_assets import cli, runs
from trading_assets.definitions import SYMBOL_ASSETS, SYMBOL_CHECKS
from trading_assets.event_log import BatchingSqliteEventLogStorage

SYMBOLS = [f"B{i:02d}" for i in range(8)]
BATCH_SIZE_ENV = runs.BATCH_SIZE_ENV


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv(BATCH_SIZE_ENV, raising=False)
    return runs.ensure_dagster_home()


@pytest.fixture
def batching(home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """The project's instance in a process started as the project starts its processes."""
    monkeypatch.setenv(BATCH_SIZE_ENV, runs.dagster_env()[BATCH_SIZE_ENV])
    return runs.get_instance()


@contextmanager
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Each event Dagster hands over alone (its type) and each batch (its events), while the
    block runs."""
    seen: dict[str, list[Any]] = {"single": [], "batch": []}
    single = BatchingSqliteEventLogStorage.store_event
    batch = BatchingSqliteEventLogStorage.store_event_batch

    def store_event(self: Any, event: Any) -> None:
        seen["single"].append(event.dagster_event_type)
        single(self, event)

    def store_event_batch(self: Any, events: Any) -> None:
        seen["batch"].append(list(events))
        batch(self, events)

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event", store_event)
    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", store_event_batch)
    yield seen


class _Statements:
    """A connection that fails its `fail_at`-th statement (once, over all connections)."""

    def __init__(self, conn: Any, state: dict[str, Any]) -> None:
        self._conn, self._state, self.count = conn, state, 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        if self._state["armed"] and self.count == self._state["fail_at"]:
            self._state["armed"] = False
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        return self._conn.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def pending(instance: dg.DagsterInstance, key: dg.AssetKey) -> Any:
    """Partitions planned without a materialization: what the UI shows as in progress/failed."""
    storage = instance.event_log_storage
    return storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)


def written_once(instance: dg.DagsterInstance, run_id: str, symbols: list[str]) -> None:
    """Every event of the run is in its file once, and the index holds each asset event once."""
    records = instance.get_records_for_run(run_id).records
    rows = [dg.serialize_value(r.event_log_entry) for r in records]
    assert len(rows) == len(set(rows)), "an event was stored twice"
    kinds = [r.event_log_entry.dagster_event_type for r in records]
    planned = kinds.count(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assert planned == len(SYMBOL_ASSETS) * len(symbols)
    assert kinds.count(dg.DagsterEventType.ASSET_MATERIALIZATION) == planned
    for asset in SYMBOL_ASSETS:
        assert instance.get_materialized_partitions(asset.key) == set(symbols)
        assert pending(instance, asset.key) == {}  # nothing in progress or failed in the UI
        [entry] = instance.event_log_storage.get_asset_records([asset.key])
        assert entry.asset_entry.last_run_id == run_id
    checked = [key for spec in SYMBOL_CHECKS for key in spec.check_keys]
    for key in checked:
        executions = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
        # As written one by one: a planned row per partition, and the check's evaluation.
        rows = [(e.partition, e.status) for e in executions]
        assert len(rows) == len(set(rows)), key
        assert {partition for partition, _ in rows} == {*symbols, None}, key


def test_the_project_home_configures_the_batch_size_and_leaves_the_environment_alone(
        home: Path) -> None:
    instance = runs.get_instance()
    storage = instance.event_log_storage
    assert isinstance(storage, BatchingSqliteEventLogStorage)
    assert Path(storage._base_dir) == home / "storage"  # Dagster's layout
    assert storage.event_batch_size == runs.EVENT_BATCH_SIZE  # from the instance's dagster.yaml
    assert BATCH_SIZE_ENV not in os.environ  # opening the instance changed nothing


def test_the_processes_the_project_starts_carry_the_batch_size(
        home: Path, tmp_path: Path) -> None:
    from trading_assets.bench.common import bench_env
    from trading_assets.local_app import LocalApp

    size = str(runs.EVENT_BATCH_SIZE)
    assert runs.dagster_env()[BATCH_SIZE_ENV] == size
    assert runs.dagster_env({"DAGSTER_HOME": str(home), BATCH_SIZE_ENV: "7"})[BATCH_SIZE_ENV] \
        == "7"  # a size the environment sets wins
    app = LocalApp("127.0.0.1", 3999, 7999, tmp_path / "workspace.yaml", home)
    assert [child.env[BATCH_SIZE_ENV] for child in app.children] == [size, size]
    assert bench_env(tmp_path / "bench")[BATCH_SIZE_ENV] == size  # a home not created yet
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # e.g. PostgreSQL
    assert BATCH_SIZE_ENV not in runs.dagster_env({"DAGSTER_HOME": str(own)})
    assert BATCH_SIZE_ENV not in os.environ


def test_the_command_starts_itself_with_the_batch_size_once(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        started.append((path, argv, env))
        raise SystemExit(0)  # execve does not return

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["trading-signals", "materialize", "--symbols", "ACME"])
    with pytest.raises(SystemExit):
        cli.main()
    [(path, argv, env)] = started
    assert argv[1:] == ["-m", "trading_assets.cli", "materialize", "--symbols", "ACME"]
    assert path == sys.executable
    assert env[BATCH_SIZE_ENV] == str(runs.EVENT_BATCH_SIZE) and BATCH_SIZE_ENV not in os.environ

    monkeypatch.setenv(BATCH_SIZE_ENV, env[BATCH_SIZE_ENV])  # the started process runs it
    monkeypatch.setattr(sys, "argv", ["trading-signals", "materialize", "--help"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 0 and len(started) == 1
    monkeypatch.delenv(BATCH_SIZE_ENV)  # a command that executes no run starts only once
    monkeypatch.setattr(sys, "argv", ["trading-signals", "signals", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert len(started) == 1


def test_the_home_opened_by_path_from_another_process_sees_the_same_partitions(
        home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The bench and tools open a home with DagsterInstance.from_config(path) while their own
    # DAGSTER_HOME points elsewhere: dynamic partitions live in the event log storage.
    runs.get_instance().add_dynamic_partitions("symbols", ["SEEN"])
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as other:
        assert other.get_dynamic_partitions("symbols") == ["SEEN"]


def test_a_moved_home_gets_its_config_rewritten(home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    moved = tmp_path / "moved"
    home.rename(moved)
    monkeypatch.setenv("DAGSTER_HOME", str(moved))
    runs.ensure_dagster_home()
    assert str(moved / "storage") in (moved / "dagster.yaml").read_text()
    assert str(home) not in (moved / "dagster.yaml").read_text()


def test_a_home_from_an_earlier_version_is_upgraded_and_a_users_own_config_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(old))
    runs.ensure_dagster_home()
    assert "BatchingSqliteEventLogStorage" in (old / "dagster.yaml").read_text()

    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    monkeypatch.setenv("DAGSTER_HOME", str(own))
    runs.ensure_dagster_home()
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_a_range_run_writes_its_per_symbol_events_in_batches_in_emission_order(
        batching: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    instance = batching
    with writes(monkeypatch) as seen:
        [outcome] = runs.launch_symbols(SYMBOLS, instance=instance, resources=resources,
                                        mode="in-process")
    assert outcome.success, outcome.failures
    n_assets = len(SYMBOL_ASSETS)
    # No planned or materialization event went to the store one at a time: they came as one
    # batch of planned events at launch and one batch per asset step.
    singles = [str(t) for t in seen["single"]]
    assert not [t for t in singles if "ASSET_MATERIALIZATION" in t], singles
    sizes = [len(batch) for batch in seen["batch"]]
    assert sizes.count(len(SYMBOLS)) == n_assets
    # The launch batch mixes planned materializations and planned checks: it is read back in
    # the order Dagster handed it over.
    [launch] = [batch for batch in seen["batch"] if len(batch) > len(SYMBOLS)]
    assert {e.dagster_event_type for e in launch} == {
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
    stored = [r.event_log_entry for r in instance.get_records_for_run(outcome.run_id).records]
    position = {dg.serialize_value(e): i for i, e in enumerate(stored)}
    order = [position[dg.serialize_value(e)] for e in launch]
    assert order == sorted(order)

    # Everything a user (or the UI) reads back is as if written one by one.
    written_once(instance, outcome.run_id, SYMBOLS)
    [latest] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SYMBOL_ASSETS[0].key, asset_partitions=[SYMBOLS[3]]),
        limit=1).records
    assert latest.run_id == outcome.run_id and latest.partition_key == SYMBOLS[3]
    assert latest.asset_materialization is not None
    assert latest.asset_materialization.metadata["status"].value == "ok"


def test_a_mixed_batch_failing_in_the_run_file_after_some_inserts_is_stored_once(
        batching: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The launch batch (planned materializations and planned checks) fails at its 5th insert
    # into the run's file: nothing of it may stay, and Dagster's fallback stores each event once.
    state = {"armed": True, "fail_at": 5}
    opened = SqliteEventLogStorage.run_connection

    @contextmanager
    def run_connection(self: Any, run_id: str | None = None) -> Iterator[Any]:
        with opened(self, run_id) as conn:
            yield _Statements(conn, state)

    monkeypatch.setattr(SqliteEventLogStorage, "run_connection", run_connection)
    with writes(monkeypatch) as seen:
        [outcome] = runs.launch_symbols(SYMBOLS[:3], instance=batching, resources=resources,
                                        mode="in-process")
    assert outcome.success, outcome.failures
    assert not state["armed"]  # the fault happened
    assert len({e.dagster_event_type for e in seen["batch"][0]}) == 2  # in the mixed batch
    written_once(batching, outcome.run_id, SYMBOLS[:3])


def test_an_index_that_fails_after_the_run_file_committed_gets_its_rows_from_the_fallback(
        batching: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The index's commit fails once a batch's run rows are committed ("database is locked"):
    # Dagster's fallback then writes the index rows alone, the run's file keeps each event once.
    state = {"armed": True, "in_batch": False}
    opened = SqliteEventLogStorage.index_connection
    batch = BatchingSqliteEventLogStorage.store_event_batch

    @contextmanager
    def index_connection(self: Any) -> Iterator[Any]:
        with opened(self) as conn:
            yield conn
            if state["armed"] and state["in_batch"]:
                state["armed"] = False
                raise sa.exc.OperationalError("COMMIT", {}, Exception("database is locked"))

    def store_event_batch(self: Any, events: Any) -> None:
        state["in_batch"] = True
        try:
            batch(self, events)
        finally:
            state["in_batch"] = False

    monkeypatch.setattr(SqliteEventLogStorage, "index_connection", index_connection)
    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", store_event_batch)
    [outcome] = runs.launch_symbols(SYMBOLS[:3], instance=batching, resources=resources,
                                    mode="in-process")
    assert outcome.success, outcome.failures
    assert not state["armed"]
    written_once(batching, outcome.run_id, SYMBOLS[:3])
