"""The embedded instance's event log writes a run's per-symbol events in batches, with the same
rows Dagster's own SQLite storage writes one by one (trading_assets/event_log.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from trading_assets import runs
from trading_assets.definitions import SYMBOL_ASSETS
from trading_assets.event_log import BatchingSqliteEventLogStorage

SYMBOLS = [f"B{i:02d}" for i in range(8)]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    return runs.ensure_dagster_home()


@contextmanager
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Each single-event write (by event type) and each batch write, while the block runs."""
    seen: dict[str, list[Any]] = {"single": [], "batch": []}
    single = SqliteEventLogStorage.store_event
    batch = BatchingSqliteEventLogStorage.store_event_batch

    def store_event(self: Any, event: Any) -> None:
        seen["single"].append(event.dagster_event_type)
        single(self, event)

    def store_event_batch(self: Any, events: Any) -> None:
        seen["batch"].append(len(events))
        batch(self, events)

    monkeypatch.setattr(SqliteEventLogStorage, "store_event", store_event)
    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", store_event_batch)
    yield seen


def pending(instance: dg.DagsterInstance, key: dg.AssetKey) -> Any:
    """Partitions planned without a materialization: what the UI shows as in progress/failed."""
    storage = instance.event_log_storage
    return storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)


def test_the_project_home_uses_the_batching_event_log_and_turns_batches_on(home: Path) -> None:
    instance = runs.get_instance()
    assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
    assert Path(instance.event_log_storage._base_dir) == home / "storage"  # Dagster's layout
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"


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


def test_a_range_run_writes_its_per_symbol_events_in_batches_and_reads_back_the_same(
        home: Path, resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    instance = runs.get_instance()
    with writes(monkeypatch) as seen:
        [outcome] = runs.launch_symbols(SYMBOLS, instance=instance, resources=resources,
                                        mode="in-process")
    assert outcome.success, outcome.failures
    n_assets = len(SYMBOL_ASSETS)
    # No planned or materialization event went to the store one at a time: they came as one
    # batch of planned events at launch and one batch per asset step.
    singles = [str(t) for t in seen["single"]]
    assert not [t for t in singles if "ASSET_MATERIALIZATION" in t], singles
    assert seen["batch"].count(len(SYMBOLS)) == n_assets
    assert max(seen["batch"]) >= n_assets * len(SYMBOLS)  # the planned events, together

    # Everything a user (or the UI) reads back is as if written one by one.
    run_id = outcome.run_id
    records = instance.get_records_for_run(run_id).records
    kinds = [r.event_log_entry.dagster_event_type for r in records]
    assert kinds.count(dg.DagsterEventType.ASSET_MATERIALIZATION) == n_assets * len(SYMBOLS)
    assert kinds.count(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED) == \
        n_assets * len(SYMBOLS)
    for asset in SYMBOL_ASSETS:
        assert instance.get_materialized_partitions(asset.key) == set(SYMBOLS)
        assert pending(instance, asset.key) == {}  # nothing in progress or failed in the UI
    [latest] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SYMBOL_ASSETS[0].key, asset_partitions=[SYMBOLS[3]]),
        limit=1).records
    assert latest.run_id == run_id and latest.partition_key == SYMBOLS[3]
    assert latest.asset_materialization is not None
    assert latest.asset_materialization.metadata["status"].value == "ok"


def test_a_batch_that_fails_before_it_commits_is_written_once_by_dagsters_fallback(
        home: Path, resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    instance = runs.get_instance()
    storage = instance.event_log_storage
    calls = {"n": 0}
    prepare = BatchingSqliteEventLogStorage.prepare_insert_event

    def flaky_prepare(self: Any, event: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # inside the first batch, before anything is committed
            raise OSError("disk full")
        return prepare(self, event)

    monkeypatch.setattr(type(storage), "prepare_insert_event", flaky_prepare)
    [outcome] = runs.launch_symbols(SYMBOLS[:3], instance=instance, resources=resources,
                                    mode="in-process")
    assert outcome.success, outcome.failures
    records = instance.get_records_for_run(outcome.run_id).records
    planned = [r for r in records if r.event_log_entry.dagster_event_type
               == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert len(planned) == len(SYMBOL_ASSETS) * 3  # each exactly once
    assert len({(r.event_log_entry.dagster_event.asset_key, r.partition_key)
                for r in planned}) == len(planned)


def test_an_index_write_that_fails_after_the_run_file_committed_is_redone_one_by_one(
        home: Path, resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    instance = runs.get_instance()
    mirror = BatchingSqliteEventLogStorage._mirror_in_index
    failed: list[int] = []

    def flaky_mirror(self: Any, conn: Any, pairs: Any) -> None:
        if len(pairs) > 1 and not failed:
            failed.append(len(pairs))
            mirror(self, conn, pairs[:1])  # part of it written, then the transaction fails
            raise OSError("database is locked")
        mirror(self, conn, pairs)

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "_mirror_in_index", flaky_mirror)
    [outcome] = runs.launch_symbols(SYMBOLS[:3], instance=instance, resources=resources,
                                    mode="in-process")
    assert outcome.success, outcome.failures and failed
    records = instance.get_records_for_run(outcome.run_id).records
    planned = [r for r in records if r.event_log_entry.dagster_event_type
               == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert len(planned) == len(SYMBOL_ASSETS) * 3  # the run's own log: each once
    for asset in SYMBOL_ASSETS:  # the index: each once, nothing pending
        assert instance.get_materialized_partitions(asset.key) == set(SYMBOLS[:3])
        assert pending(instance, asset.key) == {}


def test_without_the_helpers_it_relies_on_it_writes_one_event_at_a_time(
        home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A future Dagster without the private index helpers: plain per-event writes, no batches.
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    monkeypatch.delattr(SqlEventLogStorage, "_store_asset_event_tags")
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    storage = BatchingSqliteEventLogStorage(str(tmp_path / "storage"))
    assert not storage.batches and "DAGSTER_EVENT_BATCH_SIZE" not in os.environ
