"""`orders` (idempotent, risk-checked broker orders) and `portfolio` (positions, cash, P&L)."""


from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime

import dagster as dg

from resources.app_db import AppDatabase, SignalRow
from resources.app_tables import TradeRow
from resources.broker import Broker
from resources.object_store import ObjectStore
from resources.policy import PolicyResource
from trading_assets.assets.metadata import png_markdown
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.charts import preview_png
from trading_assets.core.fills import bars_from_frame
from trading_assets.core.keys import portfolio_key
from trading_assets.core.lifecycle import NOT_PLACED, UNKNOWN, could_still_exist, outcome_of
from trading_assets.core.orders import (
    AccountSnapshot,
    OrderDecision,
    Position,
    SymbolSettings,
)
from trading_assets.core.plots import render_equity
from trading_assets.core.policy import TradingPolicy
from trading_assets.core.signal import SignalStatus
from trading_assets.partitions import symbol_asset

# A gateway that is down or drops mid-request is retried with backoff; the ledger row written
# before placement makes the retry reconcile instead of placing a second order.
BROKER_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
# Who expires an approval the prices have moved away from (the sensor uses the same rule).
STALE_REVIEWER = "orders:stale"


def decisions_table(rows: list[tuple[str, OrderDecision]],
                    statuses: dict[str, str]) -> dg.TableMetadataValue:
    """Each signal's decision and the status it ended in (executed, not_placed, ...)."""
    schema = dg.TableSchema(columns=[
        dg.TableColumn("signal_id", "string"), dg.TableColumn("placed", "bool"),
        dg.TableColumn("signal_status", "string"), dg.TableColumn("reason", "string"),
    ])
    return dg.MetadataValue.table(
        [dg.TableRecord({"signal_id": sid, "placed": d.place,
                         "signal_status": statuses.get(sid, ""), "reason": d.reason})
         for sid, d in rows],
        schema=schema,
    )


def execute_signal(broker: Broker, app_db: AppDatabase, policy: PolicyResource, row: SignalRow,
                   store: ObjectStore, run_id: str, settings: SymbolSettings) -> OrderDecision:
    """Check, then place at most one order for the signal; every decision is recorded, and a
    refusal is stored on the signal (not_placed, with the reason) for a person to act on.

    The pre-trade checks (resources/policy.py -> core/pretrade.py) run before the ledger
    claim: a model's absurd level is refused with its number and the limit, and nothing is
    left `unknown` at the ledger.
    """
    check = policy.preflight(row, store=store, broker=broker, settings=settings)
    if check.stale:
        return _decline(app_db, row, run_id, check.refusal,
                        lambda: app_db.review_signal(row.id, SignalStatus.EXPIRED,
                                                     note=check.stale, reviewer=STALE_REVIEWER,
                                                     actor="system"))
    if check.unreadable:
        return _decline(app_db, row, run_id, f"not placed: {check.unreadable}",
                        lambda: app_db.fail_signal(row.id, check.unreadable))
    decision = check.decision
    assert decision is not None
    if decision.request is None:
        reason = f"not placed: {decision.reason}"
        return _decline(app_db, row, run_id, reason, lambda: app_db.settle_signal(
            row.id, SignalStatus.NOT_PLACED, decision.reason, retryable=decision.retry))
    claimed = app_db.claim_order(row.id, row.symbol, broker.kind, decision.request.action.value,
                                 decision.request.quantity, decision.request.order_type.value,
                                 decision.request.limit_price, decision.request.stop_loss,
                                 decision.request.take_profit)
    if claimed is None:  # another run claimed it first, or it stopped being approved meanwhile
        return _decline(app_db, row, run_id, unclaimed_reason(app_db, row.id), lambda: None)
    request = replace(decision.request, order_ref=claimed.order_ref)
    # Recorded once the claim holds, so the ledger never shows a "placed" decision for a signal
    # that was rejected between listing and claiming.
    app_db.record_decision(row.symbol, row.id, True, decision.reason, run_id)
    # Every broker's place_order asks for this orderRef first: after a crash between placement
    # and the ledger update the order exists at the broker and is returned, not sent again.
    try:
        order = broker.place_order(request, check.market, settings)
    except Exception as exc:
        # The broker may or may not have it: `unknown` until reconciliation says which.
        app_db.update_order(row.id, None, error=f"placement failed: {exc}")
        raise
    app_db.update_order(row.id, order)
    outcome, note = outcome_of(order.status, order.filled, order.quantity)
    if outcome is SignalStatus.ORDER_FAILED:
        return OrderDecision(False, f"order failed: broker {order.status} {request.order_ref}: "
                                    f"{order.reason or 'no reason given'}", request)
    return OrderDecision(True, f"{decision.reason}: {order.status}" + (f" ({note})" if note
                                                                      else ""), request)


def follow_orders(broker: Broker, app_db: AppDatabase, symbol: str) -> list[str]:
    """Ask the broker about every order of the symbol it may still change: working entries
    (filled, expired, cancelled?) and filled brackets whose exits may have closed the trade."""
    notes = []
    for row in app_db.followed_orders(symbol):
        order = broker.find_order(row.order_ref)
        if order is None:
            continue  # an unresolved placement: reconcile_unresolved's business
        before = (row.status, row.filled)
        app_db.update_order(row.signal_id, order)
        exited = next((e for e in order.exits if e.filled), None)
        if (order.status, order.filled) != before:
            notes.append(f"{row.order_ref}: {before[0]} -> {order.status}"
                         + (f" ({order.reason})" if order.reason else ""))
        elif exited is not None:
            notes.append(f"{row.order_ref}: {exited.role.replace('_', '-')} filled at "
                         f"{exited.avg_fill_price}")
    return notes


def _decline(app_db: AppDatabase, row: SignalRow, run_id: str, reason: str,
             settle: Callable[[], object]) -> OrderDecision:
    """Record a 'no order' decision and settle the signal (a person may have decided first:
    their decision stands, and the reason says so)."""
    try:
        settle()
    except (KeyError, ValueError):
        reason = unclaimed_reason(app_db, row.id)
    app_db.record_decision(row.symbol, row.id, False, reason, run_id)
    return OrderDecision(False, reason)


def unclaimed_reason(app_db: AppDatabase, signal_id: str) -> str:
    """Why a claim found nothing to take: an order that could still exist, or a changed status."""
    order = app_db.order_for_signal(signal_id)
    if order is not None and could_still_exist(order.status):
        return (f"not placed: signal {signal_id} already has a ledger entry ({order.order_ref}, "
                f"{order.status})")
    current = app_db.get_signal(signal_id)
    status = current.status if current is not None else "deleted"
    return f"not placed: signal {signal_id} is no longer approved (now {status})"


def reconcile_unresolved(broker: Broker, app_db: AppDatabase, policy: TradingPolicy,
                         symbol: str) -> list[str]:
    """Ledger rows a crash left `submitting` or `unknown`: ask the broker, never re-place.

    An order the broker shows settles the row. One it does not show becomes `unknown`; it is
    declared `not_placed` (so the signal may be re-approved) only when an earlier look also
    found nothing and the claim is at least TRADING_RECONCILE_GRACE_S old (docs/lifecycle.md).
    """
    notes = []
    for row in app_db.unresolved_orders(symbol):
        order = broker.find_order(row.order_ref, bracket=row.order_type == "BRACKET")
        if order is not None:
            app_db.update_order(row.signal_id, order)
            notes.append(f"{row.order_ref}: reconciled, broker has it as {order.status}")
            continue
        now = datetime.now(UTC)
        claimed = row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC)
        age = (now - claimed).total_seconds()
        evidence = (f"{broker.label} has no order with orderRef {row.order_ref} (open orders, "
                    f"completed orders, executions) at {now:%Y-%m-%d %H:%M:%S} UTC, "
                    f"{age:.0f} s after the claim")
        if row.status == UNKNOWN and age >= policy.reconcile_grace_s:
            app_db.record_unplaced(row.id, NOT_PLACED, f"{evidence}; also absent at the "
                                   f"previous check ({row.error[:300]})")
            notes.append(f"{row.order_ref}: not placed (absent twice); the signal may be "
                         "re-approved or rejected")
        else:
            app_db.record_unplaced(row.id, UNKNOWN, f"{evidence}; asked again on the next run")
            notes.append(f"{row.order_ref}: broker has no such order yet; asked again next run")
    return notes


def trade_symbol(broker: Broker, app_db: AppDatabase, store: ObjectStore, symbol: str,
                 run_id: str, settings: SymbolSettings, policy: PolicyResource
                 ) -> tuple[list[tuple[str, OrderDecision]], list[str]]:
    """One symbol's orders step: (signal id, decision) for each signal, and follow-up notes.

    The broker is given the stored bars (the paper broker works its resting orders and
    brackets on them), placements a crash left open are reconciled, working orders followed,
    then each approved signal is checked and executed; with none waiting, that is recorded.
    """
    broker.mark(symbol, bars_from_frame(store.read_bars(symbol)))
    notes = reconcile_unresolved(broker, app_db, policy.rules, symbol)
    notes += follow_orders(broker, app_db, symbol)
    decided = [(row.id, execute_signal(broker, app_db, policy, row, store, run_id, settings))
               for row in app_db.executable_signals(symbol)]
    if not decided:
        latest = app_db.latest_signal(symbol)
        reason = (f"no approved signal waiting: latest is {latest.status} "
                  f"({latest.action or 'error'})" if latest else "no signal yet")
        app_db.record_decision(symbol, latest.id if latest else "", False, reason, run_id)
        decided = [(latest.id if latest else "", OrderDecision(False, reason))]
    return decided, notes


def snapshot_portfolio(store: ObjectStore, app_db: AppDatabase, broker_label: str, symbol: str,
                       account: AccountSnapshot, position: Position | None) -> None:
    """Store the symbol's position beside the account, and mark the symbol's run done."""
    snapshot = {"symbol": symbol, "broker": broker_label, "account": asdict(account),
                "position": asdict(position) if position else None}
    store.write_json(portfolio_key(symbol), snapshot)
    app_db.record_run_status(symbol, "ok")


@symbol_asset(
    deps=[llm_signal],
    group_name="trading",
    kinds={"ibkr"},
    pool="ibkr",
    retry_policy=BROKER_RETRY,
    description="At most one risk-checked broker order per approved signal (orderRef = signal "
                "id); every decision, including 'no order', is recorded.",
)
def orders(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase,
           broker: Broker, policy: PolicyResource) -> None:
    loop = SymbolLoop(context, app_db)
    for symbol in loop:
        with loop.attempt(symbol):
            decided, notes = trade_symbol(broker, app_db, store, symbol, context.run.run_id,
                                          loop.settings(symbol), policy)
            loop.record(symbol, orders_metadata(app_db, broker.label, decided, notes)
                        | broker.connection_metadata())
    loop.finish()


def orders_metadata(app_db: AppDatabase, broker_label: str,
                    decided: list[tuple[str, OrderDecision]], notes: list[str]
                    ) -> dict[str, object]:
    """What the orders materialization shows: placed, refused and failed, each with why."""
    statuses = {sid: row.status for sid, _ in decided
                if sid and (row := app_db.get_signal(sid)) is not None}
    placed = [d for _, d in decided if d.place]
    ended = list(statuses.values())
    return {
        "status": "ok",
        "broker": broker_label,
        "orders_placed": len(placed),
        "not_placed": ended.count(SignalStatus.NOT_PLACED.value),
        "order_failed": ended.count(SignalStatus.ORDER_FAILED.value),
        "summary": placed[0].reason if placed else decided[-1][1].reason,
        "decisions": decisions_table(decided, statuses),
        "reconciled": "; ".join(notes) or "nothing to reconcile",
    }


def trades_table(trades: list[TradeRow]) -> dg.TableMetadataValue:
    """A symbol's trades: entry, exit and why, R multiple and P&L, newest first."""
    columns = [("signal_id", "string"), ("side", "string"), ("quantity", "float"),
               ("entry", "float"), ("entry_on", "string"), ("stop", "float"),
               ("target", "float"), ("exit", "float"), ("exit_on", "string"),
               ("why", "string"), ("r_multiple", "float"), ("pnl", "float"),
               ("status", "string")]
    records = [dg.TableRecord({
        "signal_id": t.signal_id, "side": t.side, "quantity": t.quantity,
        "entry": t.entry_price, "entry_on": str(t.entry_on or ""),
        "stop": t.stop_loss, "target": t.take_profit, "exit": t.exit_price,
        "exit_on": str(t.exit_on or ""), "why": t.exit_reason, "r_multiple": t.r_multiple,
        "pnl": t.realized_pnl, "status": t.status}) for t in trades]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(
        columns=[dg.TableColumn(name, kind) for name, kind in columns]))


def equity_plot(app_db: AppDatabase, account: AccountSnapshot, label: str) -> bytes:
    """The account's equity curve so far, as the small inline PNG the metadata carries."""
    points = [(p.at, p.equity, p.cash) for p in app_db.equity_curve(account.account)]
    return preview_png(render_equity(points, f"{label}: account {account.account} equity"),
                       width=480)


@symbol_asset(
    deps=[orders],
    group_name="trading",
    kinds={"ibkr"},
    pool="ibkr",
    retry_policy=BROKER_RETRY,
    description="The symbol's position, cost, value, P&L and trades; the account's cash and "
                "equity, one point of its equity curve per materialization.",
)
def portfolio(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase,
              broker: Broker) -> None:
    loop = SymbolLoop(context, app_db)
    account = broker.account()
    held = broker.positions()
    positions = {p.symbol: p for p in held}
    # One point of the equity curve per materialization (the account is the same for every
    # symbol of the run), drawn once.
    app_db.record_equity_point(broker.label, account, held, None, context.run.run_id)
    curve = png_markdown({"account equity": equity_plot(app_db, account, broker.label)})
    for symbol in loop:
        with loop.attempt(symbol):
            position = positions.get(symbol)
            snapshot_portfolio(store, app_db, broker.label, symbol, account, position)
            loop.record(
                symbol,
                {
                    "status": "ok",
                    "broker": broker.label,
                    "quantity": dg.MetadataValue.float(position.quantity if position else 0.0),
                    "avg_cost": dg.MetadataValue.float(position.avg_cost if position else 0.0),
                    "market_value": dg.MetadataValue.float(
                        (position.market_value or 0.0) if position else 0.0),
                    "unrealized_pnl": dg.MetadataValue.float(
                        (position.unrealized_pnl or 0.0) if position else 0.0),
                    "realized_pnl": dg.MetadataValue.float(
                        position.realized_pnl if position else 0.0),
                    "trades": trades_table(app_db.trades(symbol=symbol, limit=20)),
                    "account_cash": dg.MetadataValue.float(account.cash),
                    "account_equity": dg.MetadataValue.float(account.equity),
                    "equity_curve": curve,
                    **broker.connection_metadata(),
                },
            )
    loop.finish()
