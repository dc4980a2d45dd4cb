"""The embedded instance's event log: Dagster's SQLite storage, writing a batch in one go.

A run over a range of symbols writes one "materialization planned" event per symbol and asset
when it starts, and one materialization per symbol and asset as each step ends: 6,000 events
for 500 symbols. Dagster's SQLite storage writes every event on its own: a new engine, a new
connection and a commit to the run's file, then the same again for the cross-run index: a third
of the run process's samples in a profile of 200 symbols (about half of its main thread).
Dagster hands such events over as a batch when ``DAGSTER_EVENT_BATCH_SIZE`` is set in the
environment of the process that writes them; the SQLite storage then still writes one by one.
This class writes a batch through Dagster's own ``store_event``, every event in emission order,
over one connection and one transaction per file: the same rows, and whatever an upgrade adds
to ``store_event`` applies to batches too.

Used by the project-local DAGSTER_HOME (``runs.home_config`` is its dagster.yaml, with
``base_dir`` the ``storage`` folder Dagster's default uses, and ``event_batch_size`` the size
the processes the project starts hand over: ``runs.dagster_env``); a PostgreSQL instance (the
production dagster.yaml) is untouched. The Dagster internals used here are listed in
docs/upgrading-dagster.md with the tests that fail when they change.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage


class _DiscardRunRows(Exception):
    """Raised inside the run file's transaction to roll it back (its rows are there already)."""


@dataclass(frozen=True)
class _Open:
    """The connections one thread's batch writes through: the run's file and the index."""

    run_id: str
    run: Any
    index: Any


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` is one transaction per file.

    Nothing of a batch is stored until the run file's transaction commits (the index commits
    after it), so a failure rolls the whole batch back and Dagster's fallback (one
    ``store_event`` per event) stores each event once. If the index alone fails after the run
    file committed, the fallback's ``store_event`` of those events writes their index rows only.
    """

    def __init__(self, base_dir: str, inst_data: Any = None,
                 event_batch_size: int = 0) -> None:
        self._local = threading.local()  # the open batch of each thread (read from here on)
        super().__init__(base_dir, inst_data=inst_data)
        self.event_batch_size = event_batch_size
        # A batch holds the index's and the run file's connections at once, each opened by
        # Dagster's own connect (which takes this lock): it must be re-entrant.
        self._db_lock = threading.RLock()

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": dg.StringSource,
                "event_batch_size": dg.Field(dg.IntSource, is_required=False, default_value=0)}

    @classmethod
    def from_config_value(cls, inst_data: Any,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> BatchingSqliteEventLogStorage:
        return cls(config_value["base_dir"], inst_data=inst_data,
                   event_batch_size=config_value.get("event_batch_size", 0))

    def run_connection(self, run_id: str | None = None) -> Any:
        open_ = getattr(self._local, "open", None)
        if open_ is not None and run_id == open_.run_id:
            return nullcontext(open_.run)
        return super().run_connection(run_id)

    def index_connection(self) -> Any:
        open_ = getattr(self._local, "open", None)
        return nullcontext(open_.index) if open_ is not None else super().index_connection()

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        """Store one run's events, in order, the run's file in one transaction, then the index
        in another; events of several runs are stored one by one."""
        if len({event.run_id for event in events}) != 1:
            super().store_event_batch(events)
            return
        self._local.unindexed = []
        self._write(events, keep_run_rows=True)

    def store_event(self, event: dg.EventLogEntry) -> None:
        """Dagster's ``store_event``; for an event whose batch left it out of the index only
        (Dagster's fallback after the index failed), its index rows alone."""
        unindexed = getattr(self._local, "unindexed", [])
        if any(event is other for other in unindexed):
            self._local.unindexed = [other for other in unindexed if other is not event]
            self._write([event], keep_run_rows=False)
            return
        super().store_event(event)

    def _write(self, events: Sequence[dg.EventLogEntry], keep_run_rows: bool) -> None:
        """``store_event`` for each of `events` over shared connections; the run file commits
        (or, without `keep_run_rows`, rolls back) before the index commits."""
        run_committed = False
        try:
            with super().index_connection() as index:
                try:
                    with super().run_connection(events[0].run_id) as run:
                        self._local.open = _Open(events[0].run_id, run, index)
                        try:
                            for event in events:
                                super().store_event(event)
                        finally:
                            self._local.open = None
                        if not keep_run_rows:
                            raise _DiscardRunRows
                    run_committed = True
                except _DiscardRunRows:
                    pass
        except Exception:
            if run_committed:  # the fallback's store_event writes their index rows only
                self._local.unindexed = list(events)
            raise
