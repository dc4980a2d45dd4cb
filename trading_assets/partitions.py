"""Symbols are dynamic partitions, added from the Dagster UI, the Gradio app, the CLI or sensors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import dagster as dg

from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

if TYPE_CHECKING:
    from resources.app_db import AppDatabase
    from resources.broker import Broker
    from resources.ibkr import IBKRResource

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


class SymbolBusyError(ValueError):
    """A symbol a queued or running run still names: removing its key now would fail that run
    inside Dagster ("Partition range x to x is not a valid range")."""


def busy_keys(instance: dg.DagsterInstance, keys: Iterable[str]) -> dict[str, list[str]]:
    """Those of `keys` that an unfinished run names, each with those runs' ids."""
    from trading_assets.run_tags import active_runs

    active = active_runs(instance, list(instance.get_dynamic_partitions(SYMBOLS_PARTITION)))
    return {key: [run.run_id for run in active[key]] for key in keys if key in active}


def remove_symbols(instance: dg.DagsterInstance, symbols: list[str]) -> list[str]:
    """Remove symbols that are partitions; returns the ones that were removed. Refuses
    (SymbolBusyError, nothing removed) while a queued or running run names one of them."""
    valid = [validate_symbol(s) for s in symbols]
    existing = set(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    removed = [s for s in dict.fromkeys(valid) if s in existing]
    busy = busy_keys(instance, removed)
    if busy:
        runs = ", ".join(f"{key} (run {', '.join(i[:8] for i in ids)})"
                         for key, ids in busy.items())
        raise SymbolBusyError(f"Not removed: {runs} still queued or running; removing the key "
                              "now would fail that run. Remove it once the run has ended, or "
                              "cancel the run in the Dagster UI first.")
    for symbol in removed:
        instance.delete_dynamic_partition(SYMBOLS_PARTITION, symbol)
    return removed


class SymbolRefusedError(ValueError):
    """A symbol the broker or market-data venue did not confirm; nothing was added."""


@dataclass(frozen=True)
class Registration:
    """What adding symbols did: new partitions, ones already there, the contracts IBKR
    confirmed, and, when nothing was checked, what that means (`unchecked`)."""

    added: list[str]
    known: list[str]
    contracts: dict[str, dict[str, object]] = field(default_factory=dict)
    unchecked: str = ""

    def message(self) -> str:
        """One line for the CLI and the app, e.g. "APPL: added. With simulated data ..."."""
        parts = []
        if self.added:
            parts.append(f"{', '.join(self.added)}: added.")
        if self.known:
            parts.append(f"{', '.join(self.known)}: already there.")
        if self.contracts:
            parts.append("IBKR contracts: " + "; ".join(
                f"{s} {c.get('longName') or ''} on {c.get('primaryExchange') or '?'} "
                f"(conId {c.get('conId')})" for s, c in self.contracts.items()) + ".")
        if self.unchecked and self.added:
            parts.append(self.unchecked.format(symbols=", ".join(self.added),
                                               trade="trades" if len(self.added) == 1
                                               else "trade"))
        return " ".join(parts)


def symbol_venue(resources: Mapping[str, Any]) -> IBKRResource | None:
    """The IBKR connection that confirms new symbols (TRADING_DATA_SOURCE=ibkr or
    TRADING_BROKER=ibkr), else None: nothing can check that a ticker trades."""
    market, broker = resources.get("market_data"), resources.get("broker")
    if market is not None and market.source == "ibkr":
        return market.ibkr
    if broker is not None and broker.kind == "ibkr":
        return broker.ibkr
    return None


def unchecked_note(resources: Mapping[str, Any]) -> str:
    """What adding a symbol checked when no venue confirms it ({symbols}, {trade}: filled in)."""
    market = resources.get("market_data")
    source = getattr(market, "source", "simulated")
    if source == "simulated":
        return ("With simulated data any well-formed ticker is accepted; nothing checked that "
                "{symbols} {trade}.")
    return (f"With {source} data nothing checked that {{symbols}} {{trade}}; a ticker its "
            "source lacks fails at its first run.")


def qualify_symbols(venue: IBKRResource, app_db: AppDatabase, symbols: Sequence[str]
                    ) -> dict[str, dict[str, object]]:
    """Every symbol's contract at IBKR, before anything is written; the first refusal (or an
    unreachable gateway) is a SymbolRefusedError naming the symbol."""
    contracts = {}
    for symbol in symbols:
        try:
            contracts[symbol] = dict(venue.qualify(symbol, app_db.settings_for(symbol)))
        except Exception as exc:  # IBKRError subclasses carry the actionable text
            raise SymbolRefusedError(f"IBKR could not confirm {symbol}, so nothing was added: "
                                     f"{exc}") from exc
    return contracts


def register_symbols(instance: dg.DagsterInstance, app_db: AppDatabase, symbols: Sequence[str],
                     resources: Mapping[str, Any] | None = None) -> Registration:
    """The one way a symbol is added (CLI, Gradio, runs, the symbol_sync sensor): validate,
    confirm the contract at IBKR when `resources` use it, then add the partitions and default
    settings (with the exchange and currency IBKR gave). Nothing is written when a symbol is
    refused (InvalidSymbolError, SymbolRefusedError)."""
    valid = list(dict.fromkeys(validate_symbol(s) for s in symbols))
    venue = symbol_venue(resources) if resources is not None else None
    contracts = {}
    if venue is not None:  # a symbol whose contract was confirmed before is not asked again
        known = app_db.settings_by_symbol(valid)
        contracts = qualify_symbols(venue, app_db,
                                    [s for s in valid if not known[s].primary_exchange])
    new = add_symbols(instance, valid)
    for symbol in valid:
        settings = app_db.ensure_symbol(symbol)
        contract = contracts.get(symbol)
        if contract and not settings.primary_exchange:
            app_db.upsert_settings(replace(
                settings, primary_exchange=str(contract.get("primaryExchange") or "")[:16],
                currency=str(contract.get("currency") or settings.currency)[:8]))
    return Registration(added=new, known=[s for s in valid if s not in new], contracts=contracts,
                        unchecked="" if venue is not None or resources is None
                        else unchecked_note(resources))


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


def run_partition_keys(context: Any) -> list[str]:
    """The symbols of the running step's run (`context.partition_keys`).

    A key removed after the run was launched (symbol_sync renames a key typed as `intc` to
    INTC) makes Dagster raise "Partition range intc to intc is not a valid range" from inside
    the step; instead the step fails with a message saying what became of the key and what to
    launch."""
    try:
        return list(context.partition_keys)
    except dg.DagsterInvalidInvocationError:
        raise dg.Failure(description=missing_keys_message(context.instance, context.run.tags),
                         allow_retries=False) from None


def missing_keys_message(instance: dg.DagsterInstance, tags: Mapping[str, str]) -> str:
    """Why the keys a run names are gone (renamed, removed as no symbol, or removed)."""
    from trading_assets.run_tags import PARTITION_TAG, RANGE_END, RANGE_START

    named = [tags[t] for t in (PARTITION_TAG, RANGE_START, RANGE_END) if tags.get(t)]
    existing = set(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    lines = []
    for key in dict.fromkeys(k for k in named if k not in existing):
        try:
            symbol: str | None = validate_symbol(key)
        except InvalidSymbolError:
            symbol = None
        if symbol is None:
            lines.append(f"Partition key {key!r} is not a symbol; the symbol_sync sensor removed "
                         "it. Launch the run for a ticker such as AAPL.")
        elif symbol != key:
            where = ("" if symbol in existing else f" (add {symbol} first: it is not a "
                     "partition either)")
            lines.append(f"Partition key {key!r} was renamed to {symbol} by the symbol_sync "
                         f"sensor (symbols are upper-case tickers) before this run started, so "
                         f"nothing ran for it: launch the run for {symbol} instead{where}. A "
                         f"new symbol is also analysed by the new_symbols sensor on its own.")
        else:
            lines.append(f"Partition key {key!r} was removed after this run was launched; add "
                         f"it again (trading-signals symbols add {key}) and launch the run.")
    return " ".join(lines) or "A partition key of this run no longer exists."


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
