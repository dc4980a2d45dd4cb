"""Dagster's embedded SQLite storage commits without an fsync per event (WAL, synchronous=NORMAL).

Dagster's SQLite instance (the embedded default; production uses dagster-postgres) opens a new
connection for every event and writes each asset event twice (the run's shard and the index):
with SQLite's default synchronous=FULL each commit waits for an fsync, which was the largest
single cost of a 500-symbol run (about 3 ms of 5 per commit on the benchmark VM). Dagster puts
these databases in WAL mode, where synchronous=NORMAL is SQLite's documented safe setting: no
corruption on a crash or power loss; a power loss may only undo the last commits (the run's
latest events), never tear one.

Only databases in WAL mode are touched: Dagster's, and the local MLflow store, which
`wal_database` switches to WAL (tracking is best effort; a signal's MLflow run is four commits,
each of which waited for two fsyncs in the default rollback journal). The application tables,
the orders ledger and the paper broker (rollback-journal SQLite files) keep synchronous=FULL:
an order's ledger row is on disk before the broker is asked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

_installed = False


def relax_wal_sync(dbapi_connection: Any, _record: Any = None) -> None:
    """synchronous=NORMAL on a SQLite connection whose database is in WAL mode; else nothing."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode and str(mode[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def install() -> None:
    """Apply relax_wal_sync to every new SQLAlchemy connection in this process (once)."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", relax_wal_sync)
    _installed = True


def wal_database(path: Path) -> None:
    """Put the SQLite file at `path` (created if missing) in WAL mode, kept in the file, and
    make this process's later connections to it skip the per-commit fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    install()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
