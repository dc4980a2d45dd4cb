"""Pre-trade checks: a signal's numbers against the market and the book, before any claim.

A model's answer is untrusted even when it is valid JSON: an entry 1,000x the close, a stop
that rounds to 0.0 on the tick grid or a target of 1e308 all pass the schema. So before the
orders step claims a ledger row (a refusal then leaves nothing `unknown`), and before a person's
Approve is accepted, the same checks run here:

* the levels: finite, on the right side of the entry, within a band of the entry, the entry
  within a band of the last close (and of the broker's live quote), all still valid after
  rounding to the contract's tick;
* the book: the symbol's exposure counts filled shares AND working entry orders, the cash
  counts what working BUYs will spend, the account's gross exposure counts every position and
  working entry, and shares already promised to working SELL orders cannot be sold twice;
* the order: its quantity and notional within the per-order limits.

Pure: resources/policy.py gathers the market (stored bars, the broker's quote and tick) and the
book (the broker's account, positions and open orders) and calls `decide_order`.
"""

from __future__ import annotations

import math

from trading_assets.core.orders import (
    Book,
    Market,
    OrderDecision,
    OrderRequest,
    OrderType,
    SymbolSettings,
)
from trading_assets.core.policy import TradingCosts, TradingPolicy
from trading_assets.core.signal import EXECUTABLE_STATUSES, Action, SignalStatus, TradingSignal

DEFAULT_COSTS = TradingCosts()
DEFAULT_POLICY = TradingPolicy()


def round_to_tick(price: float, tick: float) -> float:
    """The nearest price on the contract's grid: IBKR rejects prices off it (error 110)."""
    tick = tick if tick > 0 and math.isfinite(tick) else 0.01
    return round(round(price / tick) * tick, 8)


def _pct(a: float, b: float) -> float:
    return abs(a / b - 1) * 100


def level_problem(signal: TradingSignal, market: Market, policy: TradingPolicy) -> str:
    """Why the signal's entry, stop and target cannot be traded at this market ('' if they can).

    The band checks run before any rounding: 1e308 fails them instead of overflowing the tick
    arithmetic, and 0.004 fails them instead of rounding to a stop of 0.0.
    """
    entry, stop, target = signal.entry_price, signal.stop_loss, signal.take_profit
    close = market.last_close
    if entry is None or stop is None or target is None:
        return f"{signal.action.value} needs an entry, a stop and a target (the signal has none)"
    for name, value in (("entry", entry), ("stop", stop), ("target", target)):
        if not (math.isfinite(value) and value > 0):
            return f"the {name} {value} is not a positive finite price"
    buying = signal.action is Action.BUY
    for label, reference in (("last close", close), ("live quote", market.quote)):
        if reference and _pct(entry, reference) > policy.max_entry_deviation_pct:
            return (f"entry {entry:g} is {_pct(entry, reference):.1f}% from the {label} "
                    f"{reference:.2f} (limit {policy.max_entry_deviation_pct:g}%, "
                    "TRADING_MAX_ENTRY_DEVIATION_PCT)")
    if (stop >= entry) if buying else (stop <= entry):
        return (f"the stop {stop:g} is not {'below' if buying else 'above'} the entry "
                f"{entry:g} for a {signal.action.value}")
    if (target <= entry) if buying else (target >= entry):
        return (f"the target {target:g} is not {'above' if buying else 'below'} the entry "
                f"{entry:g} for a {signal.action.value}")
    for name, value, limit, setting in (
            ("stop", stop, policy.max_stop_distance_pct, "TRADING_MAX_STOP_DISTANCE_PCT"),
            ("target", target, policy.max_target_distance_pct,
             "TRADING_MAX_TARGET_DISTANCE_PCT")):
        if _pct(value, entry) > limit:
            return (f"the {name} {value:g} is {_pct(value, entry):.1f}% from the entry "
                    f"{entry:g} (limit {limit:g}%, {setting})")
    e, s, t = (round_to_tick(v, market.tick) for v in (entry, stop, target))
    if min(e, s, t) <= 0 or not ((s < e < t) if buying else (t < e < s)):
        return (f"on the {market.tick:g} tick grid the levels become entry {e:g}, stop {s:g}, "
                f"target {t:g}: not a valid {signal.action.value} bracket")
    return ""


def decide_order(
    *,
    signal_id: str,
    signal: TradingSignal,
    status: SignalStatus,
    settings: SymbolSettings,
    market: Market,
    book: Book,
    allow_short: bool = False,
    order_type: OrderType = OrderType.BRACKET,
    costs: TradingCosts = DEFAULT_COSTS,
    policy: TradingPolicy = DEFAULT_POLICY,
    approving: bool = False,
) -> OrderDecision:
    """Review state, actionability, the levels and the book; an order or the reason for none.

    `approving` runs the checks for a person's Approve (the signal is not approved yet).
    min_confidence is not checked here: it gates auto-approval only (core/policy.py), and a
    person's approval stands unless a hard limit refuses it. A BUY reserves slippage,
    commission and the cash buffer, so an order sized to the cash still fills.
    """
    symbol = signal.symbol
    if not approving and status not in EXECUTABLE_STATUSES:
        return OrderDecision(False, f"signal is {status.value}, not approved")
    if not signal.is_actionable:
        return OrderDecision(
            False, f"signal is not actionable ({signal.action.value}, {signal.confidence_level})")
    if not settings.enabled:
        return OrderDecision(False, f"{symbol} is disabled", retry=True)
    close = market.last_close
    if not (close > 0 and math.isfinite(close)):
        return OrderDecision(False, f"no valid price for {symbol}", retry=True)
    problem = level_problem(signal, market, policy)
    if problem:
        return OrderDecision(False, problem)
    entry = round_to_tick(signal.entry_price, market.tick)  # type: ignore[arg-type]
    # The price the order is sized at: where it enters (a market order: the quote or close).
    price = (market.quote or close) if order_type is OrderType.MARKET else entry
    held = book.held(symbol)
    closing = signal.action is Action.SELL and held > 0
    sized = (_size_buy(signal, settings, book, price, costs, policy) if signal.action is Action.BUY
             else _size_sell(signal, settings, book, price, allow_short))
    if isinstance(sized, OrderDecision):
        return sized
    quantity, notes = sized, []
    if quantity > policy.max_order_shares:
        quantity = policy.max_order_shares
        notes.append(f"capped at {quantity} shares (TRADING_MAX_ORDER_SHARES)")
    if quantity * price > policy.max_order_notional:
        quantity = int(policy.max_order_notional // price)
        notes.append(f"capped at {policy.max_order_notional:,.0f} notional "
                     "(TRADING_MAX_ORDER_NOTIONAL)")
        if quantity < 1:
            return OrderDecision(False, f"one share at {price:.2f} is above the order notional "
                                 f"limit {policy.max_order_notional:,.0f} "
                                 "(TRADING_MAX_ORDER_NOTIONAL)")
    # An exit plan belongs to an opening order; a SELL that closes a long is a plain order.
    kind = order_type
    if closing and kind is OrderType.BRACKET:
        kind = OrderType.LIMIT
    is_bracket = kind is OrderType.BRACKET
    size_pct = min(signal.position_size_pct or settings.position_size_pct,
                   settings.position_size_pct)
    reason = (f"{signal.action.value} {quantity} {symbol} ({size_pct:g}% of equity"
              + (f"; {'; '.join(notes)}" if notes else "") + ")")
    return OrderDecision(True, reason, OrderRequest(
        symbol=symbol, action=signal.action, quantity=quantity, order_type=kind,
        order_ref=signal_id,
        limit_price=None if kind is OrderType.MARKET else entry,
        stop_loss=round_to_tick(signal.stop_loss, market.tick)  # type: ignore[arg-type]
        if is_bracket else None,
        take_profit=round_to_tick(signal.take_profit, market.tick)  # type: ignore[arg-type]
        if is_bracket else None,
        entry_days=policy.entry_days, bar_date=market.bar_date,
    ))


def _target_value(signal: TradingSignal, settings: SymbolSettings, book: Book) -> float:
    size_pct = min(signal.position_size_pct or settings.position_size_pct,
                   settings.position_size_pct)
    return max(book.account.equity, 0.0) * size_pct / 100.0


def _size_buy(signal: TradingSignal, settings: SymbolSettings, book: Book, price: float,
              costs: TradingCosts, policy: TradingPolicy) -> int | OrderDecision:
    """Shares a BUY may take: its size, the symbol's and the account's exposure room and the
    cash, each counting the working entry orders as if they had filled."""
    symbol, equity = signal.symbol, max(book.account.equity, 0.0)
    held = book.held(symbol)
    entries = [w for w in book.working if not w.exit]
    pending = sum(w.remaining for w in entries if w.symbol == symbol and w.action == "BUY")
    max_value = equity * settings.max_exposure_pct / 100.0
    room = max_value - (held + pending) * price
    if room <= price:
        return OrderDecision(
            False, f"exposure limit reached: holding {held:g} shares and {pending:g} in working "
            f"BUY orders of {symbol} at {price:.2f} ({(held + pending) * price:,.0f}) against max "
            f"{settings.max_exposure_pct:g}% of equity ({max_value:,.0f})", retry=True)
    committed = sum(w.remaining * (w.price or 0.0) for w in entries if w.action == "BUY")
    gross = (sum(abs(p.market_value if p.market_value is not None else p.quantity * p.avg_cost)
                 for p in book.positions.values())
             + sum(w.remaining * (w.price or 0.0) for w in entries))
    account_room = equity * policy.max_account_exposure_pct / 100.0 - gross
    if account_room <= price:
        return OrderDecision(
            False, f"account exposure limit reached: positions and working entry orders "
            f"{gross:,.0f} against max {policy.max_account_exposure_pct:g}% of equity "
            f"({equity:,.0f}, TRADING_MAX_ACCOUNT_EXPOSURE_PCT)", retry=True)
    cash = book.account.cash - committed
    affordable = policy.affordable_shares(cash, price, costs)
    quantity = min(int(_target_value(signal, settings, book) // price), int(room // price),
                   int(account_room // price), affordable)
    if affordable < 1:
        return OrderDecision(False, f"not enough cash for one share at {price:.2f} with "
                             f"slippage, commission and the {policy.cash_buffer_pct:g}% cash "
                             f"buffer reserved (cash {book.account.cash:.2f}, of which "
                             f"{committed:.2f} is held for working BUY orders)", retry=True)
    if quantity < 1:
        return OrderDecision(False, f"position size too small for one share at {price:.2f}")
    return quantity


def _size_sell(signal: TradingSignal, settings: SymbolSettings, book: Book, price: float,
               allow_short: bool) -> int | OrderDecision:
    """Shares a SELL may sell. Closing a long: its size, capped by the shares held that no
    working SELL (a bracket's exits included) has promised already. Opening a short (only with
    shorting on): its size within the symbol's exposure, working SELL entries counted."""
    symbol = signal.symbol
    held = book.held(symbol)
    quantity = int(_target_value(signal, settings, book) // price)
    selling = [w for w in book.working_for(symbol) if w.action == "SELL"]
    if held > 0:
        free = held - sum(w.remaining for w in selling)
        if free < 1:
            refs = ", ".join(sorted({w.order_ref for w in selling}))
            return OrderDecision(
                False, f"the {held:g} shares of {symbol} held are already promised to working "
                f"SELL orders ({refs}); cancel those first or let them work", retry=True)
        quantity = min(quantity, int(free))
    elif not allow_short:
        return OrderDecision(False, "SELL with no position to sell and shorting disabled",
                             retry=True)
    else:
        pending = sum(w.remaining for w in selling if not w.exit)
        max_value = max(book.account.equity, 0.0) * settings.max_exposure_pct / 100.0
        room = max_value - (-held + pending) * price
        if room <= price:
            return OrderDecision(
                False, f"exposure limit reached: short {-held:g} shares and {pending:g} in "
                f"working SELL orders of {symbol} against max {settings.max_exposure_pct:g}% "
                "of equity", retry=True)
        quantity = min(quantity, int(room // price))
    if quantity < 1:
        return OrderDecision(False, f"position size too small for one share at {price:.2f}")
    return quantity
