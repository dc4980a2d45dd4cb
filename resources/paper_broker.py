"""The paper broker: a small simulated brokerage with its own persisted database.

An account with cash, positions and an order book keyed by orderRef, so it answers "do you
already have an order for this signal?" exactly as IBKR does. A market order fills at once at
the latest price plus slippage; a limit entry rests and is worked against each later daily bar
(core/fills.py), expiring after its time in force like an IBKR DAY or GTD order; a bracket's
take-profit and stop-loss (one OCA group, orderRefs `<ref>:tp` and `<ref>:sl`) work once the
entry filled, and the first to fill closes the position, realizes the P&L and cancels the other.
Every fill charges commission; a BUY the cash cannot pay for is Cancelled with the reason.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from resources.app_tables import engine_for
from resources.broker import Broker
from resources.migrations import PAPER_CHAIN
from resources.paper_tables import PaperAccountRow, PaperOrderRow, PaperPositionRow
from trading_assets.core.calendar import sessions_after
from trading_assets.core.config import BrokerSettings, plain
from trading_assets.core.fills import Bar, bracket_exit, limit_fill
from trading_assets.core.lifecycle import WORKING_BROKER_STATUSES
from trading_assets.core.orders import (
    AccountSnapshot,
    BrokerOrder,
    ExitReport,
    Market,
    OrderRequest,
    OrderType,
    Position,
    SymbolSettings,
    WorkingOrder,
)
from trading_assets.core.signal import Action

PAPER_ACCOUNT = "PAPER-1"
TAKE_PROFIT, STOP_LOSS = "take_profit", "stop_loss"
# A bracket child's orderRef: the entry's, then these (IBKR uses the same, resources/ibkr).
EXIT_SUFFIXES = {TAKE_PROFIT: ":tp", STOP_LOSS: ":sl"}


def _order_row(session: Session, order_ref: str) -> PaperOrderRow | None:
    """The paper order book's order with this orderRef (unique), if any."""
    return session.scalars(
        select(PaperOrderRow).where(PaperOrderRow.order_ref == order_ref)
    ).first()


def _children(session: Session, parent_ref: str) -> list[PaperOrderRow]:
    return list(session.scalars(select(PaperOrderRow).where(
        PaperOrderRow.parent_ref == parent_ref).order_by(PaperOrderRow.id)).all())


def _exit_report(row: PaperOrderRow) -> ExitReport:
    return ExitReport(order_ref=row.order_ref, role=row.role, order_type=row.order_type,
                      status=row.status, price=row.aux_price or row.limit_price,
                      filled=row.filled, avg_fill_price=row.avg_fill_price,
                      commission=row.commission, filled_on=row.filled_on,
                      reason=row.reason or "")


def _to_broker_order(row: PaperOrderRow, children: Iterable[PaperOrderRow] = ()) -> BrokerOrder:
    exits = [_exit_report(child) for child in children]
    return BrokerOrder(
        order_ref=row.order_ref, symbol=row.symbol, action=row.action, quantity=row.quantity,
        order_type=OrderType.BRACKET.value if exits else row.order_type, status=row.status,
        broker_order_id=f"paper-{row.id}", filled=row.filled, avg_fill_price=row.avg_fill_price,
        commission=row.commission, limit_price=row.limit_price, broker="paper",
        reason=row.reason or "", exits=exits, filled_on=row.filled_on,
    )


class PaperBroker(Broker):
    """Paper trading with simulated fills (TRADING_BROKER=paper, the default)."""

    kind: ClassVar[str] = "paper"
    paper_database_url: str = "sqlite:///data/paper_broker.db"
    starting_cash: float = BrokerSettings().starting_cash

    @property
    def label(self) -> str:
        return "paper (simulated fills)"

    @contextmanager
    def _session(self) -> Iterator[Session]:
        # An EnvVar reference (it may hold a password) until a Dagster run resolves it. The
        # shared engine cache migrates the paper book to head (resources/migrations/paper).
        engine = engine_for(plain(self.paper_database_url), PAPER_CHAIN)
        factory = sessionmaker(engine, expire_on_commit=False)
        with factory() as session, session.begin():
            if session.get(PaperAccountRow, PAPER_ACCOUNT) is None:
                session.add(PaperAccountRow(account=PAPER_ACCOUNT, cash=self.starting_cash,
                                            starting_cash=self.starting_cash))
                session.flush()
            yield session

    # --- orders --------------------------------------------------------------------------

    def find_order(self, order_ref: str, bracket: bool = False) -> BrokerOrder | None:
        # A paper bracket is written in one transaction: it is never found half-placed.
        with self._session() as session:
            row = _order_row(session, order_ref)
            return _to_broker_order(row, _children(session, order_ref)) if row else None

    def place_order(self, request: OrderRequest, market: Market,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        with self._session() as session:
            existing = _order_row(session, request.order_ref)
            if existing is not None:
                return _to_broker_order(existing, _children(session, request.order_ref))
            placed_on = request.bar_date or market.bar_date
            row = PaperOrderRow(
                order_ref=request.order_ref, symbol=request.symbol, action=request.action.value,
                quantity=float(request.quantity),
                order_type=(OrderType.MARKET.value if request.order_type is OrderType.MARKET
                            else OrderType.LIMIT.value),
                limit_price=request.limit_price, status="Submitted", reason="", role="entry",
                expire_after_sessions=request.entry_days, placed_on=placed_on,
            )
            session.add(row)
            children = []
            if request.order_type is OrderType.BRACKET:
                children = self._add_exits(session, row, request)
            session.flush()
            price = market.quote or market.last_close
            buying = row.action == Action.BUY.value
            fill = self.costs().fill_price(price, buying)
            limit = row.limit_price
            if limit is None or (fill <= limit if buying else fill >= limit):
                # Marketable now: fills at the latest price plus slippage (a limit no worse).
                if limit is not None:
                    fill = min(fill, limit) if buying else max(fill, limit)
                self._fill(session, row, fill, placed_on, price)
            return _to_broker_order(row, children)

    @staticmethod
    def _add_exits(session: Session, parent: PaperOrderRow, request: OrderRequest
                   ) -> list[PaperOrderRow]:
        """The bracket's take-profit (limit) and stop-loss (stop): they wait for the entry."""
        exit_action = Action.SELL.value if parent.action == Action.BUY.value else Action.BUY.value
        children = [
            PaperOrderRow(order_ref=parent.order_ref + EXIT_SUFFIXES[TAKE_PROFIT],
                          symbol=parent.symbol, action=exit_action, quantity=parent.quantity,
                          order_type=OrderType.LIMIT.value, limit_price=request.take_profit,
                          status="PreSubmitted", reason="", role=TAKE_PROFIT,
                          parent_ref=parent.order_ref, placed_on=parent.placed_on),
            PaperOrderRow(order_ref=parent.order_ref + EXIT_SUFFIXES[STOP_LOSS],
                          symbol=parent.symbol, action=exit_action, quantity=parent.quantity,
                          order_type="STP", aux_price=request.stop_loss, status="PreSubmitted",
                          reason="", role=STOP_LOSS, parent_ref=parent.order_ref,
                          placed_on=parent.placed_on),
        ]
        session.add_all(children)
        return children

    def cancel_order(self, order_ref: str, reason: str = "cancelled") -> BrokerOrder | None:
        """Cancel the order with this orderRef and its working exits; None if unknown."""
        with self._session() as session:
            row = _order_row(session, order_ref)
            if row is None:
                return None
            children = _children(session, order_ref)
            for each in (row, *children):
                if each.status in WORKING_BROKER_STATUSES:
                    each.status, each.reason = "Cancelled", reason
            return _to_broker_order(row, children)

    def working_orders(self) -> list[WorkingOrder]:
        with self._session() as session:
            rows = session.scalars(select(PaperOrderRow).where(
                PaperOrderRow.status == "Submitted")).all()
            marks = {p.symbol: p.last_price for p in session.scalars(select(PaperPositionRow))}
            return [WorkingOrder(order_ref=r.order_ref, symbol=r.symbol, action=r.action,
                                 remaining=r.quantity - r.filled,
                                 price=r.aux_price or r.limit_price or marks.get(r.symbol),
                                 exit=r.role != "entry")
                    for r in rows]

    # --- working the book against the bars -------------------------------------------------

    def mark(self, symbol: str, bars: Iterable[Bar]) -> None:
        """Work the symbol's orders against each bar after they were placed, oldest first, and
        mark its position at the last close. A bar is worked once per order."""
        bars = sorted(bars, key=lambda b: b.day)
        if not bars:
            return
        with self._session() as session:
            working = list(session.scalars(select(PaperOrderRow).where(
                PaperOrderRow.symbol == symbol,
                PaperOrderRow.status.in_(("Submitted", "PreSubmitted")))
                .order_by(PaperOrderRow.id)).all())
            if working:
                start = min(r.evaluated_through or r.placed_on or bars[0].day for r in working)
                for bar in (b for b in bars if b.day > start):
                    self._work_bar(session, working, bar)
            position = session.get(PaperPositionRow, symbol)
            if position is not None:
                position.last_price = bars[-1].close

    def _work_bar(self, session: Session, working: list[PaperOrderRow], bar: Bar) -> None:
        for row in working:
            if row.role != "entry" or row.status != "Submitted" or not _due(row, bar.day):
                continue
            buying = row.action == Action.BUY.value
            price = (bar.open if row.order_type == OrderType.MARKET.value
                     else limit_fill(buying, row.limit_price, bar))  # type: ignore[arg-type]
            if price is not None:
                if row.order_type == OrderType.MARKET.value:
                    price = self.costs().fill_price(price, buying)
                self._fill(session, row, price, bar.day, bar.close)
            elif row.expire_after_sessions is not None and row.placed_on is not None and (
                    sessions_after(row.placed_on, bar.day) >= row.expire_after_sessions):
                self._expire(session, row, bar)
            row.evaluated_through = bar.day
        # Brackets whose entry has filled (on this bar or before): their exits work now.
        parents = {r.parent_ref for r in working if r.parent_ref and r.status == "Submitted"}
        for ref in sorted(parents):
            parent = _order_row(session, ref)
            if parent is not None and parent.status == "Filled":
                self._work_exits(session, parent, bar)

    def _work_exits(self, session: Session, parent: PaperOrderRow, bar: Bar) -> None:
        children = {c.role: c for c in _children(session, parent.order_ref)
                    if c.status == "Submitted" and _due(c, bar.day)}
        if STOP_LOSS not in children or TAKE_PROFIT not in children:
            return
        stop, target = children[STOP_LOSS], children[TAKE_PROFIT]
        same_bar = parent.filled_on == bar.day
        hit = bracket_exit(parent.action == Action.BUY.value, stop.aux_price,  # type: ignore[arg-type]
                           target.limit_price, bar,  # type: ignore[arg-type]
                           parent.avg_fill_price if same_bar else None)
        for child in (stop, target):
            child.evaluated_through = bar.day
        if hit is None:
            return
        role, price = hit
        filled, other = (stop, target) if role == STOP_LOSS else (target, stop)
        if role == STOP_LOSS:  # a stop becomes a market order: slippage against us
            price = self.costs().fill_price(price, filled.action == Action.BUY.value)
        self._fill(session, filled, price, bar.day, bar.close)
        if filled.status == "Filled" and other.status == "Submitted":
            other.status = "Cancelled"
            other.reason = f"OCA: the {role.replace('_', '-')} of {parent.order_ref} filled"

    @staticmethod
    def _expire(session: Session, row: PaperOrderRow, bar: Bar) -> None:
        row.status = "Cancelled"
        days = row.expire_after_sessions or 1
        row.reason = (f"expired: not filled within {days} session{'s' if days > 1 else ''} "
                      f"(time in force {'DAY' if days == 1 else f'{days} sessions'}; "
                      f"limit {row.limit_price:g}, last bar {bar.day} low {bar.low:g} high "
                      f"{bar.high:g})")
        for child in _children(session, row.order_ref):
            if child.status in WORKING_BROKER_STATUSES:
                child.status, child.reason = "Cancelled", f"its entry {row.order_ref} expired"

    def _fill(self, session: Session, row: PaperOrderRow, price: float, day: date | None,
              mark: float) -> None:
        """Fill the whole order at `price`, move cash and the position; a BUY the cash cannot
        pay for is Cancelled instead (with its exits)."""
        buying = row.action == Action.BUY.value
        commission = self.costs().commission(row.quantity)
        account = session.get(PaperAccountRow, PAPER_ACCOUNT)
        assert account is not None  # _session creates it
        position = session.get(PaperPositionRow, row.symbol)
        if position is None:
            position = PaperPositionRow(symbol=row.symbol, quantity=0.0, avg_cost=0.0,
                                        realized_pnl=0.0)
            session.add(position)
        quantity = row.quantity
        if row.role != "entry":  # an exit closes at most what is still held
            quantity = min(quantity, abs(position.quantity))
            if quantity <= 0:
                row.status, row.reason = "Cancelled", "no position left to close"
                return
        signed = quantity if buying else -quantity
        cost = signed * price
        if buying and row.role == "entry" and account.cash < cost + commission:
            row.status = "Cancelled"
            row.reason = (f"insufficient cash: {quantity:g} x {price:.4f} + commission "
                          f"{commission:.2f} = {cost + commission:.2f} > cash {account.cash:.2f}")
            for child in _children(session, row.order_ref):
                child.status, child.reason = "Cancelled", f"its entry {row.order_ref} was cancelled"
            return
        row.realized_pnl = _apply_fill(account, position, signed, price)
        position.last_price = mark
        account.cash -= cost + commission
        row.status, row.filled, row.avg_fill_price = "Filled", quantity, round(price, 4)
        row.commission, row.filled_on = round(commission, 4), day
        if row.role == "entry":
            for child in _children(session, row.order_ref):
                if child.status == "PreSubmitted":
                    child.status = "Submitted"

    # --- account ---------------------------------------------------------------------------

    def positions(self) -> list[Position]:
        with self._session() as session:
            rows = session.scalars(select(PaperPositionRow)).all()
            return [
                Position(symbol=r.symbol, quantity=r.quantity, avg_cost=r.avg_cost,
                         market_price=r.last_price or None,
                         market_value=r.quantity * r.last_price if r.last_price else None,
                         unrealized_pnl=(r.last_price - r.avg_cost) * r.quantity
                         if r.last_price else None,
                         realized_pnl=r.realized_pnl)
                for r in rows
            ]

    def account(self) -> AccountSnapshot:
        positions = self.positions()
        with self._session() as session:
            account = session.get(PaperAccountRow, PAPER_ACCOUNT)
            assert account is not None
            cash, realized = account.cash, account.realized_pnl
        market_value = sum(p.market_value or p.quantity * p.avg_cost for p in positions)
        unrealized = sum(p.unrealized_pnl or 0.0 for p in positions)
        return AccountSnapshot(account=PAPER_ACCOUNT, cash=round(cash, 2),
                               equity=round(cash + market_value, 2), buying_power=round(cash, 2),
                               realized_pnl=round(realized, 2), unrealized_pnl=round(unrealized, 2),
                               broker="paper")

    def orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """The book's entry orders (a bracket's exits ride on theirs), oldest first."""
        with self._session() as session:
            query = select(PaperOrderRow).where(PaperOrderRow.role == "entry")
            if symbol:
                query = query.where(PaperOrderRow.symbol == symbol)
            return [_to_broker_order(r, _children(session, r.order_ref))
                    for r in session.scalars(query.order_by(PaperOrderRow.id)).all()]


def _due(row: PaperOrderRow, day: date) -> bool:
    """Whether this bar is new to the order: after it was placed and not worked yet."""
    after = row.evaluated_through or row.placed_on
    return after is None or day > after


def _apply_fill(account: PaperAccountRow, position: PaperPositionRow, signed: float,
                fill: float) -> float:
    """Move the position's quantity and average cost; realize P&L on the part that closes and
    return it."""
    old_qty = position.quantity
    new_qty = old_qty + signed
    pnl = 0.0
    if old_qty == 0 or (old_qty > 0) == (signed > 0):
        position.avg_cost = (position.avg_cost * abs(old_qty) + fill * abs(signed)) / abs(new_qty)
    else:
        closed = min(abs(signed), abs(old_qty))
        pnl = closed * (fill - position.avg_cost) * (1 if old_qty > 0 else -1)
        position.realized_pnl += pnl
        account.realized_pnl += pnl
        if abs(signed) > abs(old_qty):
            position.avg_cost = fill
    position.quantity = new_qty
    return pnl
