"""One run, many symbols: loop over a run's partition keys; one bad symbol never sinks the rest."""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from resources.app_db import AppDatabase


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

    def __iter__(self) -> Iterator[str]:
        for symbol in self.context.partition_keys:
            reason = self._upstream_failed.get(symbol)
            if reason is not None:
                self.context.add_asset_metadata(
                    {"status": "skipped", "reason": f"upstream failed: {reason}"},
                    partition_key=symbol,
                )
                self.failed[symbol] = f"skipped, upstream failed: {reason}"
                continue
            yield symbol

    @contextmanager
    def attempt(self, symbol: str) -> Iterator[None]:
        """Run one symbol's work; an exception fails that symbol only."""
        try:
            yield
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
        self.context.add_asset_metadata({"status": "failed", "error": error},
                                        partition_key=symbol)

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
