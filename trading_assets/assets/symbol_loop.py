"""One run, many symbols: loop over a run's partition keys; one bad symbol never sinks the rest."""


from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from trading_assets.core.errors import OutageError
from trading_assets.core.orders import SymbolSettings
from trading_assets.partitions import run_partition_keys


def is_transient(exc: BaseException) -> bool:
    """Connection problems and timeouts, which a later attempt may not meet again."""
    return isinstance(exc, ConnectionError | TimeoutError) or "Connection" in type(exc).__name__


class SymbolLoop:
    """Yields the run's symbols that have not failed upstream; records each symbol's failure.

    A failure is written to the application database against the run and the symbol, so later
    assets of the same run skip that symbol and the UI can show why.
    """

    def __init__(self, context: dg.AssetExecutionContext, app_db: AppDatabase) -> None:
        self.context = context
        self.app_db = app_db
        self.asset = context.asset_key.to_user_string()
        self.run_id = context.run.run_id
        self.failed: dict[str, str] = {}
        self.done: list[str] = []
        self.retryable = False
        # A retried step sees its own earlier failures in the run; only upstream ones skip.
        self._upstream_failed = app_db.failed_symbols(self.run_id, exclude_asset=self.asset)
        self._settings: dict[str, SymbolSettings] | None = None
        self._run_keys: list[str] | None = None
        self._key_set: frozenset[str] = frozenset()

    def __iter__(self) -> Iterator[str]:
        for symbol in self.keys():
            reason = self._upstream_failed.get(symbol)
            if reason is not None:
                self.record(symbol, {"status": "skipped", "reason": f"upstream failed: {reason}"})
                self.failed[symbol] = f"skipped, upstream failed: {reason}"
                continue
            yield symbol

    def settings(self, symbol: str) -> SymbolSettings:
        """The settings of one of the run's symbols, read for all of them in one query the first
        time it is asked (one query per symbol was 500 round trips on a 500-symbol run)."""
        if self._settings is None:
            self._settings = self.app_db.settings_by_symbol(self.keys())
        return self._settings[symbol]

    def record(self, symbol: str, metadata: Mapping[str, Any]) -> None:
        """The symbol's materialization metadata (what context.add_asset_metadata records for
        one partition).

        Dagster 1.13's add_asset_metadata checks every call against the instance: two
        has_dynamic_partition queries and a full get_dynamic_partitions, each on a new SQLite
        connection, 8-20 ms a call, a minute over 500 symbols x 6 assets. The symbols this loop
        yields are the run's own partition keys, read once, so that check is made here against
        them and the metadata goes straight to the step's accumulator (the one private Dagster
        use here; a Dagster without it gets the public call). Nothing on the instance, which
        other threads of the process may share, is touched.
        """
        step = self.context.get_step_execution_context()
        accumulator = getattr(step, "_metadata_accumulator", None)
        if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
            self.context.add_asset_metadata(metadata, partition_key=symbol)
            return
        self.keys()  # read on first use
        if symbol not in self._key_set:
            raise dg.DagsterInvariantViolationError(
                f"{self.asset}: metadata for {symbol!r}, which this run does not target.")
        step._metadata_accumulator = accumulator.with_additional_asset_metadata(  # noqa: SLF001
            asset_key=self.context.asset_key, metadata=metadata, partition_key=symbol)

    def keys(self) -> list[str]:
        """The run's partition keys (its symbols, in order), read once per step."""
        if self._run_keys is None:
            self._run_keys = run_partition_keys(self.context)
            self._key_set = frozenset(self._run_keys)
        return self._run_keys

    @contextmanager
    def attempt(self, symbol: str) -> Iterator[None]:
        """Run one symbol's work; an exception fails that symbol only, except an outage of a
        system every symbol needs (the object store, the application database), which ends the
        step at once with its one line: the next symbol would only wait for it again."""
        try:
            yield
        except OutageError:
            raise
        except Exception as exc:  # one symbol's failure is recorded, the loop goes on
            self.retryable |= is_transient(exc)
            self.fail(symbol, f"{type(exc).__name__}: {exc}")
            self.context.log.exception(f"{self.asset} failed for {symbol}")
        else:
            if symbol not in self.failed and symbol not in self.done:
                self.done.append(symbol)

    def fail(self, symbol: str, error: str) -> None:
        self.failed[symbol] = error
        if symbol in self.done:  # e.g. its request was built but the analysis failed
            self.done.remove(symbol)
        self.app_db.record_failure(self.run_id, symbol, self.asset, error)
        self.record(symbol, {"status": "failed", "error": error})

    def finish(self) -> None:
        """Name what failed; fail the step only when no symbol succeeded."""
        if not self.failed:
            return
        summary = "; ".join(f"{symbol}: {error}" for symbol, error in self.failed.items())
        self.context.log.error(f"{self.asset}: {len(self.failed)} symbol(s) failed: {summary}")
        if not self.done:
            raise dg.Failure(
                description=f"{self.asset} failed for every symbol in this run: {summary}",
                metadata={"failed_symbols": dg.MetadataValue.json(self.failed)},
                # Only an outage (gateway down, connection dropped) is worth the retry policy;
                # bad data or a refused order fails the same way on every attempt.
                allow_retries=self.retryable,
            )
