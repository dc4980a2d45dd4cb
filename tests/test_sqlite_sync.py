"""Dagster's WAL SQLite storage commits without an fsync per event; other SQLite files do not."""

from pathlib import Path

import sqlalchemy as sa

import trading_assets.definitions  # noqa: F401  (loading the code location installs it)
from resources.app_db import AppDatabase


def synchronous(url: str, wal: bool) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    if wal:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    with engine.connect() as conn:  # a new connection, as Dagster opens one per event
        value = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    engine.dispose()
    return int(value)


def test_wal_databases_skip_the_per_commit_fsync_and_others_keep_it(tmp_path: Path) -> None:
    NORMAL, FULL = 1, 2
    assert synchronous(f"sqlite:///{tmp_path / 'events.db'}", wal=True) == NORMAL
    assert synchronous(f"sqlite:///{tmp_path / 'ledger.db'}", wal=False) == FULL


def test_the_dagster_event_log_is_wal_normal_and_the_app_tables_stay_full(
        tmp_path: Path) -> None:
    import dagster as dg

    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        storage = instance.event_log_storage
        with storage.index_connection() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    app_db = AppDatabase(url=f"sqlite:///{tmp_path / 'app.db'}")
    app_db.ensure_symbol("TSLA")
    assert synchronous(app_db.url, wal=False) == 2
