"""Symbols are dynamic partitions, added from the Dagster UI, the Gradio app, the CLI or sensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

if TYPE_CHECKING:
    from resources.app_db import AppDatabase
    from resources.broker import Broker

SYMBOLS_PARTITION = "symbols"
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITION)


def symbol_asset(**kwargs: Any) -> Any:
    """`@dg.asset` for a per-symbol stage: partitioned by symbol, and one run may cover a range
    of symbols (the asset loops over `context.partition_keys`)."""
    return dg.asset(partitions_def=symbols_partitions,
                    backfill_policy=dg.BackfillPolicy.single_run(), **kwargs)


def add_symbols(instance: dg.DagsterInstance, symbols: list[str]) -> list[str]:
    """Validate and add symbols as partitions; returns the ones that were new."""
    valid = [validate_symbol(s) for s in symbols]
    existing = set(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    new = [s for s in dict.fromkeys(valid) if s not in existing]
    if new:
        instance.add_dynamic_partitions(SYMBOLS_PARTITION, new)
    return new


def remove_symbols(instance: dg.DagsterInstance, symbols: list[str]) -> list[str]:
    """Remove symbols that are partitions; returns the ones that were removed."""
    valid = [validate_symbol(s) for s in symbols]
    existing = set(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    removed = [s for s in dict.fromkeys(valid) if s in existing]
    for symbol in removed:
        instance.delete_dynamic_partition(SYMBOLS_PARTITION, symbol)
    return removed


def register_symbols(instance: dg.DagsterInstance, app_db: AppDatabase,
                     symbols: list[str]) -> list[str]:
    """Add symbols as partitions with settings (defaults unless configured); returns the new
    partitions."""
    new = add_symbols(instance, symbols)
    for symbol in symbols:
        app_db.ensure_symbol(symbol)
    return new


@dataclass
class Removal:
    """What removing symbols ended: partitions, waiting signals, working orders."""

    partitions: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)  # signal ids
    cancelled: list[str] = field(default_factory=list)  # orderRefs, with the broker's status
    kept: list[str] = field(default_factory=list)  # what could not be ended, and why
    held: list[str] = field(default_factory=list)  # positions that stay open
    forgotten: list[str] = field(default_factory=list)  # symbols whose settings were deleted

    def lines(self) -> list[str]:
        parts = [("removed", self.partitions), ("signals expired", self.expired),
                 ("orders cancelled", self.cancelled), ("positions still held", self.held),
                 ("settings deleted", self.forgotten), ("NOT ended", self.kept)]
        return [f"{label}: {', '.join(items)}" for label, items in parts if items]


REMOVED_REVIEWER = "symbols:remove"


def retire_symbol(app_db: AppDatabase, broker: Broker, symbol: str, report: Removal) -> None:
    """End what a removed symbol had in flight: its working orders are cancelled at the
    broker (by orderRef) and its waiting, approved and re-approvable signals expire, so a later
    re-add never executes an old approval. A held position stays (and is said to)."""
    reason = f"{symbol} was removed"
    for row in app_db.followed_orders(symbol):
        try:
            order = broker.cancel_order(row.order_ref, reason=f"cancelled: {reason}")
        except Exception as exc:  # the broker is down: say so, the person retries
            report.kept.append(f"order {row.order_ref}: cancel failed ({exc})")
            continue
        if order is not None:
            app_db.update_order(row.signal_id, order)
            report.cancelled.append(f"{row.order_ref} ({order.status})")
    expired, kept = app_db.expire_waiting_signals(symbol, reason, REMOVED_REVIEWER)
    report.expired += expired
    report.kept += kept
    try:
        position = broker.position(symbol)
    except Exception as exc:
        report.kept.append(f"{symbol} position unknown ({exc})")
        return
    if position is not None and position.quantity:
        report.held.append(f"{symbol} {position.quantity:g} shares")


def unregister_symbols(instance: dg.DagsterInstance, app_db: AppDatabase, broker: Broker,
                       symbols: list[str], forget_settings: bool = False) -> Removal:
    """Remove symbols' partitions and end what they had in flight (retire_symbol); their
    settings are kept for a later re-add unless `forget_settings`, their signals and orders
    stay for the audit trail."""
    report = Removal()
    report.partitions = remove_symbols(instance, symbols)
    for symbol in dict.fromkeys(validate_symbol(s) for s in symbols):
        retire_symbol(app_db, broker, symbol, report)
        if app_db.remove_symbol(symbol, forget=forget_settings) and forget_settings:
            report.forgotten.append(symbol)
    return report


def list_symbols(instance: dg.DagsterInstance) -> list[str]:
    """The partition keys that are valid symbols, in insertion order (see invalid_keys)."""
    keys = list(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    bad = invalid_keys(keys)
    return [key for key in keys if key not in bad]


def invalid_keys(keys: Iterable[str]) -> dict[str, str | None]:
    """Partition keys that are not valid symbols (Dagster's UI accepts any key), each with the
    symbol it normalises to (`nvda` -> NVDA) or None when it is no symbol at all (`../etc`)."""
    bad: dict[str, str | None] = {}
    for key in keys:
        try:
            symbol = validate_symbol(key)
        except InvalidSymbolError:
            bad[key] = None
            continue
        if symbol != key:
            bad[key] = symbol
    return bad


def invalid_key_notice(key: str, symbol: str | None) -> str:
    """What the sync sensor does with an invalid partition key, for its log and the app."""
    if symbol is not None:
        return f"Partition key {key!r} is not a symbol as written: renamed to {symbol}."
    return (f"Partition key {key!r} is not a valid symbol (a ticker such as AAPL or BRK.B): "
            "removed.")


def contiguous_batches(all_keys: Sequence[str], wanted: Iterable[str],
                       max_size: int | None = None) -> list[list[str]]:
    """Runs of consecutive `all_keys` that are all wanted, each at most `max_size` keys long.

    A Dagster run over dynamic partitions covers a range of the partition list in insertion
    order, so a selection with gaps (disabled symbols) takes one run per gap-free stretch.
    """
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}.")
    wanted_set = set(wanted)
    batches: list[list[str]] = []
    current: list[str] = []
    for key in all_keys:
        if key in wanted_set and (max_size is None or len(current) < max_size):
            current.append(key)
            continue
        if current:
            batches.append(current)
        current = [key] if key in wanted_set else []
    if current:
        batches.append(current)
    return batches


def contiguous_ranges(all_keys: Sequence[str], wanted: Iterable[str],
                      max_size: int | None = None) -> list[tuple[str, str]]:
    """(start, end) ranges of `all_keys` covering exactly the `wanted` keys."""
    return [(batch[0], batch[-1]) for batch in contiguous_batches(all_keys, wanted, max_size)]
