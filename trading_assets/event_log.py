"""The embedded instance's event log: Dagster's SQLite storage, writing a batch in one go.

A run over a range of symbols writes one "materialization planned" event per symbol and asset
when it starts, and one materialization per symbol and asset as each step ends: 6,000 events
for 500 symbols. Dagster's SQLite storage writes every event on its own: a new engine, a new
connection and a commit to the run's file, then the same again for the cross-run index: a third
of the run process's samples in a profile of 200 symbols (about half of its main thread).
Dagster already hands such events over as a batch when ``DAGSTER_EVENT_BATCH_SIZE`` is set (its
PostgreSQL storage writes them in one statement); the SQLite storage falls back to one write per
event. This class writes the batch in one transaction per file, with the same rows, so the UI
and every query see the same thing.

Used by the project-local DAGSTER_HOME (``runs.home_config`` is its dagster.yaml, with
``base_dir`` the ``storage`` folder Dagster's default uses); a PostgreSQL instance (the
production dagster.yaml) is untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import _check as check
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._serdes import ConfigurableClassData

# Events one step hands over together: every partition of a step's output (at most
# TRADING_MAX_SYMBOLS_PER_RUN, 200 by default), or a run's planned events at launch (6 per
# symbol). A batch is also written when it reaches this size, so memory stays bounded.
EVENT_BATCH_SIZE = "1000"


_INDEX_HELPERS = ("prepare_insert_event", "_store_asset_event_tags", "_store_asset_event",
                  "index_transaction", "run_connection")


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` is one transaction per file.

    Construction also turns Dagster's event batching on in this process (unless
    ``DAGSTER_EVENT_BATCH_SIZE`` is set already): without it nothing arrives as a batch.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        # The index rows are written through the same (private) helpers store_event uses; a
        # Dagster release without them gets one write per event again, never a half batch.
        self.batches = all(callable(getattr(self, name, None)) for name in _INDEX_HELPERS)
        if self.batches:
            os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> BatchingSqliteEventLogStorage:
        return cls(config_value["base_dir"], inst_data=inst_data)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Write one batch: the run's file in one transaction, then the index in another.

        Everything that can fail without touching the disk (building the statements) happens
        first, and the run's file is written all or nothing, so a failure there leaves nothing
        behind and Dagster's fallback (one ``store_event`` per event) writes each event once.
        Once the run's file holds the batch, a failing index write is redone one event at a
        time here instead: handing it back would write the run's rows a second time (which
        only happens if the index keeps failing event by event too).
        """
        check.sequence_param(events, "events", of_type=EventLogEntry)
        if not self.batches or len({event.run_id for event in events}) != 1:
            super().store_event_batch(events)
            return
        batched = [e for e in events if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS]
        statements = [self.prepare_insert_event(event) for event in batched]
        for event in events:  # e.g. a planned asset check among a run's planned events
            if not (event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS):
                self.store_event(event)
        if not batched:
            return
        with self.run_connection(batched[0].run_id) as conn:
            for statement in statements:
                conn.execute(statement)
        pairs = list(zip(batched, statements, strict=True))
        try:
            with self.index_transaction() as conn:
                self._mirror_in_index(conn, pairs)
        except Exception:
            for pair in pairs:
                with self.index_transaction() as conn:
                    self._mirror_in_index(conn, [pair])

    def _mirror_in_index(self, conn: Any, pairs: Sequence[tuple[EventLogEntry, Any]]) -> None:
        """The cross-run index rows of asset events, as ``store_event`` writes them."""
        for event, statement in pairs:
            with db_result(conn, statement) as result:
                event_id = result.inserted_primary_key[0]
            self._store_asset_event_tags(conn, [event], [event_id])
            self._store_asset_event(conn, event, event_id)
