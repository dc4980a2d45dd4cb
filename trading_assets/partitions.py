"""Symbols are dynamic partitions, added from the Dagster UI, the Gradio app, the CLI or sensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

if TYPE_CHECKING:
    from resources.app_db import AppDatabase

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


def unregister_symbols(instance: dg.DagsterInstance, app_db: AppDatabase,
                       symbols: list[str]) -> tuple[list[str], list[str]]:
    """Remove symbols' partitions and settings (their signals and orders stay); returns the
    partitions removed and the symbols whose settings were removed."""
    removed = remove_symbols(instance, symbols)
    forgotten = [s for s in dict.fromkeys(validate_symbol(s) for s in symbols)
                 if app_db.remove_symbol(s)]
    return removed, forgotten


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
