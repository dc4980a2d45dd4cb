"""Orders at IBKR: checked before they are placed, placed once per order_ref, reconciled after."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from resources.ibkr.errors import IBKRError, IBKRPermissionError
from resources.ibkr.session import _POLL_S, IBKRSession, _Connection, _platform_symbol
from resources.ibkr.values import ib_number
from trading_assets.core.calendar import session_after
from trading_assets.core.lifecycle import FAILED_BROKER_STATUSES, WORKING_BROKER_STATUSES
from trading_assets.core.orders import (
    BrokerOrder,
    ExitReport,
    OrderRequest,
    OrderType,
    SymbolSettings,
    WorkingOrder,
)
from trading_assets.core.pretrade import round_to_tick
from trading_assets.core.signal import Action
from trading_assets.core.symbols import validate_symbol

if TYPE_CHECKING:
    from ib_async import Fill, Order, Trade

log = logging.getLogger(__name__)

# IBKR paper accounts start with DU (individual) or DF (advisor); anything else moves real money.
_PAPER_PREFIXES = ("DU", "DF")
_UNACKNOWLEDGED = frozenset({"", "PendingSubmit", "ApiPending"})
# After the gateway acknowledged an order, how long to wait for its fill and commission reports.
_FILL_GRACE_S = 2.0
_TAKE_PROFIT_SUFFIX = ":tp"
_STOP_LOSS_SUFFIX = ":sl"
_EXIT_ROLES = {_TAKE_PROFIT_SUFFIX: "take_profit", _STOP_LOSS_SUFFIX: "stop_loss"}
# How long the pre-trade check waits for a snapshot quote before it checks against the close.
_QUOTE_TIMEOUT_S = 5.0


def _is_paper_account(account: str) -> bool:
    return account.upper().startswith(_PAPER_PREFIXES)


def _time_in_force(request: OrderRequest) -> dict[str, str]:
    """An entry works for `entry_days` sessions: DAY for one, else good till the close of the
    last one (GTD), counted from the bar the order was decided on."""
    if request.entry_days <= 1 or request.bar_date is None:
        return {"tif": "DAY"}
    last = session_after(request.bar_date, request.entry_days)
    return {"tif": "GTD", "goodTillDate": f"{last:%Y%m%d} 16:00:00 US/Eastern"}


def _validate_request(request: OrderRequest, tick: float = 0.01) -> None:
    """Defence in depth behind core/pretrade.py: nothing leaves for IBKR unless every price is
    finite, positive and on the tick grid, and a bracket's exits lie on either side of it."""
    for name in ("limit_price", "stop_loss", "take_profit"):
        value = getattr(request, name)
        if value is not None and not (math.isfinite(value) and value > 0
                                      and round_to_tick(value, tick) > 0):
            raise ValueError(f"Order {request.order_ref}: {name} {value} is not a positive "
                             f"finite price on the {tick:g} tick grid; not sent.")
    if request.action not in (Action.BUY, Action.SELL):
        raise ValueError(f"Order {request.order_ref}: action must be BUY or SELL, "
                         f"not {request.action}.")
    if request.quantity < 1:
        raise ValueError(f"Order {request.order_ref}: quantity must be at least 1 share.")
    if not request.order_ref:
        raise ValueError("Order has no order_ref; it is the idempotency key and is required.")
    if request.order_type is OrderType.LIMIT and request.limit_price is None:
        raise ValueError(f"Order {request.order_ref}: a LMT order needs limit_price.")
    if request.order_type is OrderType.BRACKET:
        stop, target, entry = request.stop_loss, request.take_profit, request.limit_price
        if stop is None or target is None:
            raise ValueError(f"Order {request.order_ref}: a BRACKET order needs stop_loss "
                             "and take_profit.")
        low, high = (stop, target) if request.action is Action.BUY else (target, stop)
        if not (low < (entry if entry is not None else (low + high) / 2) < high):
            raise ValueError(
                f"Order {request.order_ref}: for {request.action.value} the stop_loss "
                f"({stop}) and take_profit ({target}) must lie on either side of the entry "
                f"({entry if entry is not None else 'market'})."
            )


class OrderRequests(IBKRSession):
    """Finding and placing orders (a mixin of IBKRResource)."""

    if TYPE_CHECKING:
        order_timeout: float

    def find_order(self, order_ref: str, bracket: bool = False) -> BrokerOrder | None:
        """The order IBKR knows under `order_ref`: open, completed, or seen in today's fills.

        `bracket`: the ledger sent a bracket. If the connection dropped between its entry and
        its exits, IBKR holds an untransmitted entry with one exit or none; that half-bracket
        is cancelled here (nothing of it traded) and reported Cancelled with the reason, so
        the signal can be re-approved instead of resting on an entry without its stop.
        """
        found = self._find_order(order_ref)
        if (bracket and found is not None and found.filled == 0 and len(found.exits) < 2
                and found.status in WORKING_BROKER_STATUSES):
            log.warning("IBKR holds order %s without its exits; cancelling it", order_ref)
            self.cancel_order(order_ref)
            cancelled = self._find_order(order_ref) or found
            return replace(cancelled, reason=(
                "the bracket reached IBKR incomplete (the connection dropped before its exits "
                "arrived); its entry was cancelled untransmitted, nothing traded"))
        return found

    def _find_order(self, order_ref: str) -> BrokerOrder | None:
        conn = self._connection()
        open_trades = self._call(conn, "the open orders request", lambda ib: ib.reqAllOpenOrders())
        completed = self._call(
            conn, "the completed orders request", lambda ib: ib.reqCompletedOrders(apiOnly=True)
        )
        self._call(conn, "the executions request", lambda ib: ib.reqExecutions())
        # Live trades of this session first (they carry fills and commissions), then what the
        # gateway lists; completed orders are the only record of a filled order after a restart.
        trades = [*conn.ib.trades(), *open_trades, *completed]

        def first(ref: str) -> Trade | None:
            return next((t for t in trades if t.order.orderRef == ref), None)

        parent = first(order_ref)
        fills = [f for f in conn.ib.fills() if f.execution.orderRef == order_ref]
        if parent is None and not fills:
            return None
        children = [t for t in (first(order_ref + _TAKE_PROFIT_SUFFIX),
                                first(order_ref + _STOP_LOSS_SUFFIX)) if t is not None]
        return self._broker_order(order_ref, parent, fills, children)

    def place_order(
        self, request: OrderRequest, settings: SymbolSettings | None = None
    ) -> BrokerOrder:
        """Place MKT, LMT or BRACKET once per `order_ref`, asking IBKR first whether it exists.

        If the gateway does not acknowledge in `order_timeout` or the connection drops, the
        order is reconciled after a reconnect and never sent a second time.
        """
        if self.readonly:
            raise IBKRPermissionError(
                f"IBKR is configured read-only (readonly=True, IBKR_READONLY): order "
                f"{request.order_ref} ({request.action} {request.quantity} {request.symbol}) "
                "was refused. Turn read-only off to trade."
            )
        symbol = validate_symbol(request.symbol)
        _validate_request(request)
        conn = self._connection()
        account = self._check_may_trade(conn)
        existing = self.find_order(request.order_ref)
        if existing is not None:
            log.info("IBKR already has order %s (%s); not placing it again",
                     request.order_ref, existing.status)
            return existing
        qualified = self._qualified(conn, symbol, settings)
        _validate_request(request, qualified.min_tick)
        orders = self._build_orders(conn, request, account, qualified.min_tick)
        trades: list[Trade] = []
        try:
            for order in orders:
                trades.append(conn.ib.placeOrder(qualified.contract, order))
            acknowledged = self._await_acknowledgement(conn, trades)
        except ConnectionError:
            acknowledged = False
        if acknowledged:
            return self._broker_order(request.order_ref, trades[0], list(trades[0].fills),
                                      trades[1:])
        reason = ("the connection dropped" if not conn.ib.isConnected()
                  else f"no acknowledgement within {self.order_timeout:g} s")
        return self._reconcile(request, reason)

    def _check_may_trade(self, conn: _Connection) -> str:
        """The account to trade in, after the live-money consent checks."""
        account = self._require_account(conn)
        if _is_paper_account(account):
            return account
        if not self.live:
            raise IBKRPermissionError(
                f"The IBKR gateway is logged in to LIVE account {account}; orders are refused. "
                f"To trade real money set TRADING_LIVE=true and IBKR_ACCOUNT={account}, or log "
                "IB Gateway in to a paper account (DU...)."
            )
        if self.account != account:
            raise IBKRPermissionError(
                f"Live trading is on but IBKR_ACCOUNT is not set to the connected live account "
                f"{account}; orders are refused. Set IBKR_ACCOUNT={account} to confirm it."
            )
        return account

    def _build_orders(self, conn: _Connection, request: OrderRequest, account: str,
                      tick: float) -> list[Order]:
        """ib_async orders for a request; a bracket is parent + take-profit + stop-loss, the
        exits one OCA group (the first to fill cancels the other) that works until cancelled."""
        from ib_async import LimitOrder, MarketOrder, StopOrder

        action, quantity, ref = request.action.value, float(request.quantity), request.order_ref
        limit = round_to_tick(request.limit_price, tick) if request.limit_price else None
        lifetime = _time_in_force(request)
        if request.order_type is OrderType.MARKET:
            return [MarketOrder(action, quantity, orderRef=ref, account=account, tif="DAY")]
        if request.order_type is OrderType.LIMIT:
            assert limit is not None
            return [LimitOrder(action, quantity, limit, orderRef=ref, account=account,
                               **lifetime)]
        assert request.stop_loss is not None and request.take_profit is not None
        exit_action = "SELL" if request.action is Action.BUY else "BUY"
        parent_id = conn.ib.client.getReqId()
        # Only the last order of the group transmits: IBKR holds the others until it arrives,
        # so an interrupted bracket never leaves an entry without its exits.
        parent = (LimitOrder(action, quantity, limit, **lifetime) if limit is not None
                  else MarketOrder(action, quantity, tif="DAY"))
        parent.orderId, parent.orderRef, parent.account = parent_id, ref, account
        parent.transmit = False
        exits = {"parentId": parent_id, "account": account, "tif": "GTC", "ocaGroup": ref,
                 "ocaType": 1}
        take_profit = LimitOrder(
            exit_action, quantity, round_to_tick(request.take_profit, tick),
            orderId=conn.ib.client.getReqId(), transmit=False,
            orderRef=ref + _TAKE_PROFIT_SUFFIX, **exits,
        )
        stop_loss = StopOrder(
            exit_action, quantity, round_to_tick(request.stop_loss, tick),
            orderId=conn.ib.client.getReqId(), transmit=True,
            orderRef=ref + _STOP_LOSS_SUFFIX, **exits,
        )
        return [parent, take_profit, stop_loss]

    def cancel_order(self, order_ref: str) -> BrokerOrder | None:
        """Cancel the working order with this orderRef and its bracket's exits at IBKR; the
        order as IBKR reports it afterwards (None when IBKR has no such order)."""
        conn = self._connection()
        self._check_may_trade(conn)
        trades = self._call(conn, "the open orders request", lambda ib: ib.reqAllOpenOrders())
        ours = [t for t in (*conn.ib.trades(), *trades)
                if t.order.orderRef in (order_ref, order_ref + _TAKE_PROFIT_SUFFIX,
                                        order_ref + _STOP_LOSS_SUFFIX)
                and t.orderStatus.status in WORKING_BROKER_STATUSES]
        seen: set[int] = set()
        for trade in ours:
            if trade.order.permId in seen:
                continue
            seen.add(trade.order.permId)
            conn.ib.cancelOrder(trade.order)
        deadline = time.monotonic() + self.order_timeout
        while ours and time.monotonic() < deadline and any(
                t.orderStatus.status in WORKING_BROKER_STATUSES for t in ours):
            conn.ib.sleep(_POLL_S)
        return self.find_order(order_ref)

    def working_orders(self) -> list[WorkingOrder]:
        """Every open order of the account (whoever placed it): what can still fill. A
        bracket's exits count once their entry filled; before that they promise nothing."""
        conn = self._connection()
        account = self._require_account(conn)
        trades = self._call(conn, "the open orders request", lambda ib: ib.reqAllOpenOrders())
        unique = {(t.order.clientId, t.order.orderId, t.order.permId): t
                  for t in (*conn.ib.trades(), *trades)}
        waiting_parents = {(t.order.clientId, t.order.orderId) for t in unique.values()
                           if t.orderStatus.status in WORKING_BROKER_STATUSES}
        working = []
        for trade in unique.values():
            order, status = trade.order, trade.orderStatus
            if status.status not in WORKING_BROKER_STATUSES:
                continue
            if order.account and order.account != account:
                continue
            if order.parentId and (order.clientId, order.parentId) in waiting_parents:
                continue
            remaining = (ib_number(order.totalQuantity) or 0.0) - (ib_number(status.filled) or 0.0)
            price = ib_number(order.auxPrice if order.orderType.startswith("STP")
                              else order.lmtPrice)
            working.append(WorkingOrder(
                order_ref=order.orderRef, symbol=_platform_symbol(trade.contract.symbol),
                action=order.action, remaining=remaining, price=price,
                exit=bool(order.parentId) or order.orderRef.endswith(tuple(_EXIT_ROLES))))
        return working

    def tick_and_quote(self, symbol: str, settings: SymbolSettings | None = None
                       ) -> tuple[float, float | None]:
        """The contract's minimum tick, and a snapshot price (mid, else last) when IBKR gives
        one in a few seconds; None without a market-data subscription or an answer."""
        conn = self._connection()
        qualified = self._qualified(conn, validate_symbol(symbol), settings)
        try:
            [ticker] = self._call(conn, "the quote request", lambda ib: ib.reqTickers(
                qualified.contract), symbol)
        except (IBKRError, ValueError) as exc:
            log.info("No IBKR quote for %s (%s): the pre-trade check uses the last close",
                     symbol, exc)
            return qualified.min_tick, None
        bid, ask, last = (ib_number(v) for v in (ticker.bid, ticker.ask, ticker.last))
        quote = (bid + ask) / 2 if bid and ask and bid > 0 and ask > 0 else last
        return qualified.min_tick, quote if quote and quote > 0 else None

    def _await_acknowledgement(self, conn: _Connection, trades: list[Trade]) -> bool:
        """Wait for the gateway to acknowledge every order, then briefly for fills/commissions.

        False when nothing came back within order_timeout or the connection dropped.
        """
        ib = conn.ib
        deadline = time.monotonic() + self.order_timeout

        def settled() -> bool:
            if any(t.orderStatus.status in _UNACKNOWLEDGED for t in trades):
                return False
            parent = trades[0]
            if parent.order.orderType == "MKT" and not parent.isDone():
                return False
            return all(f.commissionReport.execId for t in trades for f in t.fills)

        acknowledged_at: float | None = None
        while not settled():
            if not ib.isConnected():
                return False
            now = time.monotonic()
            if acknowledged_at is None and not any(
                t.orderStatus.status in _UNACKNOWLEDGED for t in trades
            ):
                acknowledged_at = now
            if acknowledged_at is not None and now - acknowledged_at >= _FILL_GRACE_S:
                return True  # acknowledged and working; fills are reported later
            if acknowledged_at is None and now >= deadline:
                return False
            # Poll rather than ib.waitOnUpdate(): that one subscribes a loop step too late when
            # the answer is already in the socket buffer, and then sleeps its whole timeout.
            ib.sleep(_POLL_S)
        return True

    def _reconcile(self, request: OrderRequest, reason: str) -> BrokerOrder:
        """After a timeout or a dropped connection: reconnect and ask; never send again."""
        log.warning(
            "IBKR did not confirm order %s (%s); reconnecting to check whether it arrived "
            "(it will not be sent again)", request.order_ref, reason,
        )
        self._drop_connection()
        found = self.find_order(request.order_ref,
                                bracket=request.order_type is OrderType.BRACKET)
        if found is not None:
            return found
        raise IBKRError(
            f"IBKR did not confirm order {request.order_ref} ({request.action.value} "
            f"{request.quantity} {request.symbol}: {reason}) and, after reconnecting, has no "
            "record of it. "
            "It was NOT sent again: check Orders/Trades in TWS or IB Gateway before retrying, "
            "because it may still arrive."
        )

    def _broker_order(self, order_ref: str, trade: Trade | None, fills: list[Fill],
                      children: list[Trade]) -> BrokerOrder:
        """One BrokerOrder from the parent trade (if known), its fills and bracket children."""
        shares, avg_price = _filled(fills)
        commission = _commission(fills)
        exits = [
            ExitReport(
                order_ref=child.order.orderRef,
                role=_EXIT_ROLES.get(child.order.orderRef[len(order_ref):], "exit"),
                order_type=child.order.orderType,
                status=child.orderStatus.status,
                price=ib_number(child.order.lmtPrice if child.order.orderType == "LMT"
                                else child.order.auxPrice),
                filled=ib_number(child.orderStatus.filled) or 0.0,
                avg_fill_price=ib_number(child.orderStatus.avgFillPrice) or None,
                commission=_commission(child.fills),
            )
            for child in children
        ]
        child_info = [{"order_ref": e.order_ref, "order_type": e.order_type,
                       "status": e.status, "price": e.price} for e in exits]
        if trade is None:  # only executions survive, e.g. an order of an earlier day's session
            execution = fills[0].execution
            return BrokerOrder(
                order_ref=order_ref,
                symbol=_platform_symbol(fills[0].contract.symbol),
                action="BUY" if execution.side == "BOT" else "SELL",
                quantity=shares,
                order_type="",
                status="Filled",
                broker_order_id=str(execution.permId),
                filled=shares,
                avg_fill_price=avg_price,
                commission=commission,
                broker="ibkr",
                exits=exits,
                raw={"account": execution.acctNumber, "children": child_info,
                     "exec_ids": [f.execution.execId for f in fills]},
            )
        order, status = trade.order, trade.orderStatus
        order_id = str(order.permId) if order.permId else f"{order.clientId}:{order.orderId}"
        return BrokerOrder(
            order_ref=order_ref,
            symbol=_platform_symbol(trade.contract.symbol),
            action=order.action,
            quantity=ib_number(order.totalQuantity) or 0.0,
            order_type=OrderType.BRACKET.value if children else order.orderType,
            status=status.status,
            broker_order_id=order_id,
            filled=shares or ib_number(status.filled) or 0.0,
            avg_fill_price=avg_price if shares else ib_number(status.avgFillPrice) or None,
            commission=commission,
            limit_price=ib_number(order.lmtPrice) if order.orderType == "LMT" else None,
            broker="ibkr",
            exits=exits,
            reason=_cancel_reason(order.tif, status.status,
                                  [entry.message for entry in trade.log if entry.message]),
            raw={
                "account": order.account,
                "order_id": order.orderId,
                "client_id": order.clientId,
                "perm_id": order.permId,
                "ib_order_type": order.orderType,
                "children": child_info,
                "exec_ids": [f.execution.execId for f in fills],
                "log": [entry.message for entry in trade.log if entry.message][-5:],
            },
        )


def _filled(fills: list[Fill]) -> tuple[float, float | None]:
    """Shares filled and their average price (None before a fill), from executions."""
    sized = [(ib_number(f.execution.shares) or 0.0, ib_number(f.execution.price)) for f in fills]
    priced = [(shares, price) for shares, price in sized if price is not None]
    shares = sum(shares for shares, _ in sized)
    priced_shares = sum(shares for shares, _ in priced)
    average = (sum(shares * price for shares, price in priced) / priced_shares
               if priced_shares else None)
    return shares, average


def _commission(fills: list[Fill]) -> float:
    """What the fills cost, from the commission reports that arrived."""
    return sum(ib_number(f.commissionReport.commission) or 0.0 for f in fills
               if f.commissionReport.execId)


def _cancel_reason(tif: str, status: str, messages: list[str]) -> str:
    """Why an order ended without (all of) its fill, in IBKR's words where it gave some; a DAY
    or GTD entry cancelled without a word most likely expired."""
    if status not in FAILED_BROKER_STATUSES:
        return ""
    said = "; ".join(messages[-2:])[-300:]
    if status in ("Cancelled", "ApiCancelled") and tif in ("DAY", "GTD"):
        base = f"not filled within its time in force ({tif}): expired, or cancelled at IBKR"
    else:
        base = f"IBKR {status}"
    return base + (f" ({said})" if said else "")
