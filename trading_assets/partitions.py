"""Symbols are dynamic partitions: added from the Dagster UI, the Gradio app, the CLI or a sensor."""

from __future__ import annotations

import dagster as dg

from trading_assets.core.symbols import validate_symbol

SYMBOLS_PARTITION = "symbols"
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITION)


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


def list_symbols(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
