"""`orders` (idempotent, risk-checked broker orders) and `portfolio` (positions, cash, P&L)."""


from dataclasses import asdict
from datetime import date

import dagster as dg

from resources.app_db import AppDatabase, SignalRow
from resources.broker import Broker
from resources.object_store import ObjectStore
from trading_assets.assets.signals import bar_info, llm_signal
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.calendar import sessions_after
from trading_assets.core.keys import portfolio_key
from trading_assets.core.orders import (
    AccountSnapshot,
    OrderDecision,
    OrderType,
    Position,
    SymbolSettings,
    approval_stale_reason,
    decide_order,
)
from trading_assets.core.signal import SignalStatus
from trading_assets.partitions import symbols_partitions

# A gateway that is down or drops mid-request is retried with backoff; the ledger row written
# before placement makes the retry reconcile instead of placing a second order.
BROKER_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)


def decisions_table(rows: list[tuple[str, OrderDecision]]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[
        dg.TableColumn("signal_id", "string"), dg.TableColumn("placed", "bool"),
        dg.TableColumn("reason", "string"),
    ])
    return dg.MetadataValue.table(
        [dg.TableRecord({"signal_id": sid, "placed": d.place, "reason": d.reason})
         for sid, d in rows],
        schema=schema,
    )


def execute_signal(broker: Broker, app_db: AppDatabase, row: SignalRow, price: float,
                   last_bar_date: date, run_id: str, settings: SymbolSettings) -> OrderDecision:
    """Decide, then place at most one order for the signal; every decision is recorded."""
    signal = row.trading_signal()
    stale = approval_stale_reason(
        bar_date=row.bar_date, age_sessions=sessions_after(row.bar_date, last_bar_date),
        reference_close=row.reference_close(), latest_close=price,
        max_age_sessions=broker.max_signal_age_sessions,
        max_move_pct=broker.max_price_move_pct,
    )
    if stale:
        app_db.review_signal(row.id, SignalStatus.EXPIRED, reviewer="orders:stale", note=stale)
        decision = OrderDecision(False, f"approval expired: {stale}")
        app_db.record_decision(row.symbol, row.id, False, decision.reason, run_id)
        return decision
    if signal is None:
        decision = OrderDecision(False, f"signal {row.id} has no content ({row.status})")
    else:
        decision = decide_order(
            signal_id=row.id, signal=signal, status=SignalStatus(row.status),
            settings=settings, account=broker.account(),
            position=broker.position(row.symbol), price=price, allow_short=broker.allow_short,
            order_type=OrderType(broker.order_type),
        )
    request = decision.request
    if request is None:
        app_db.record_decision(row.symbol, row.id, False, decision.reason, run_id)
        return decision
    claimed = app_db.claim_order(row.id, row.symbol, broker.kind, request.action.value,
                                 request.quantity, request.order_type.value, request.limit_price,
                                 request.stop_loss, request.take_profit)
    if claimed is None:  # another run claimed it first, or it stopped being approved meanwhile
        decision = OrderDecision(False, unclaimed_reason(app_db, row.id))
        app_db.record_decision(row.symbol, row.id, False, decision.reason, run_id)
        return decision
    # Recorded once the claim holds, so the ledger never shows a "placed" decision for a signal
    # that was rejected between listing and claiming.
    app_db.record_decision(row.symbol, row.id, True, decision.reason, run_id)
    # Every broker's place_order asks for this orderRef first: after a crash between placement
    # and the ledger update the order exists at the broker and is returned, not sent again.
    order = broker.place_order(request, price, settings)
    app_db.update_order(row.id, order)
    return OrderDecision(True, f"{decision.reason}: {order.status}", request)


def unclaimed_reason(app_db: AppDatabase, signal_id: str) -> str:
    """Why a claim found nothing to take: an order already in the ledger, or a changed status."""
    if app_db.order_for_signal(signal_id) is not None:
        return f"not placed: signal {signal_id} already has a ledger entry"
    current = app_db.get_signal(signal_id)
    status = current.status if current is not None else "deleted"
    return f"not placed: signal {signal_id} is no longer approved (now {status})"


def reconcile_unresolved(broker: Broker, app_db: AppDatabase, symbol: str) -> list[str]:
    """Ledger rows left 'submitting' by a crash: ask the broker, never re-place blindly."""
    notes = []
    for row in app_db.unresolved_orders(symbol):
        order = broker.find_order(row.signal_id)
        if order is not None:
            app_db.update_order(row.signal_id, order)
            notes.append(f"{row.signal_id}: reconciled, broker has it as {order.status}")
        else:
            app_db.update_order(row.signal_id, None,
                                error="placement outcome unknown and the broker has no order "
                                      "with this reference; not re-sent")
            notes.append(f"{row.signal_id}: broker has no such order; left unplaced for review")
    return notes


def trade_symbol(broker: Broker, app_db: AppDatabase, store: ObjectStore, symbol: str,
                 run_id: str, settings: SymbolSettings
                 ) -> tuple[list[tuple[str, OrderDecision]], list[str]]:
    """One symbol's orders step: (signal id, decision) for each signal, and reconcile notes.

    The broker is marked at the last close, placements a crash left open are reconciled, then
    each approved signal is executed; with none waiting, that is recorded as the decision.
    """
    info, last_bar_date = bar_info(store, symbol)
    price = float(info["last_close"])
    broker.mark_price(symbol, price)
    notes = reconcile_unresolved(broker, app_db, symbol)
    decided = [(row.id, execute_signal(broker, app_db, row, price, last_bar_date, run_id,
                                       settings))
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


@dg.asset(
    partitions_def=symbols_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[llm_signal],
    group_name="trading",
    kinds={"ibkr"},
    pool="ibkr",
    retry_policy=BROKER_RETRY,
    description="At most one risk-checked broker order per approved signal (orderRef = signal "
                "id); every decision, including 'no order', is recorded.",
)
def orders(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase,
           broker: Broker) -> None:
    loop = SymbolLoop(context, app_db)
    for symbol in loop:
        with loop.attempt(symbol):
            decided, notes = trade_symbol(broker, app_db, store, symbol, context.run.run_id,
                                          loop.settings(symbol))
            placed = [d for _, d in decided if d.place]
            loop.record(
                symbol,
                {
                    "status": "ok",
                    "broker": broker.label,
                    "orders_placed": len(placed),
                    "summary": placed[0].reason if placed else decided[-1][1].reason,
                    "decisions": decisions_table(decided),
                    "reconciled": "; ".join(notes) or "nothing to reconcile",
                },
            )
    loop.finish()


@dg.asset(
    partitions_def=symbols_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[orders],
    group_name="trading",
    kinds={"ibkr"},
    pool="ibkr",
    retry_policy=BROKER_RETRY,
    description="The symbol's position, cost, value and P&L, and the account's cash and equity.",
)
def portfolio(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase,
              broker: Broker) -> None:
    loop = SymbolLoop(context, app_db)
    account = broker.account()
    positions = {p.symbol: p for p in broker.positions()}
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
                    "account_cash": dg.MetadataValue.float(account.cash),
                    "account_equity": dg.MetadataValue.float(account.equity),
                },
            )
    loop.finish()
