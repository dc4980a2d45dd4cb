"""The paper broker: a small simulated brokerage with its own persisted database.

An account with cash, positions and an order book keyed by orderRef, so it answers "do you
already have an order for this signal?" exactly as IBKR does. Fills at the latest price plus
slippage, charging commission; a BUY the cash cannot pay for is Cancelled with the reason.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from resources.app_tables import engine_for
from resources.broker import Broker
from resources.migrations import PAPER_CHAIN
from resources.paper_tables import PaperAccountRow, PaperOrderRow, PaperPositionRow
from trading_assets.core.env import plain
from trading_assets.core.orders import (
    AccountSnapshot,
    BrokerOrder,
    OrderRequest,
    OrderType,
    Position,
    SymbolSettings,
)
from trading_assets.core.signal import Action

PAPER_ACCOUNT = "PAPER-1"


def _order_row(session: Session, order_ref: str) -> PaperOrderRow | None:
    """The paper order book's order with this orderRef (unique), if any."""
    return session.scalars(
        select(PaperOrderRow).where(PaperOrderRow.order_ref == order_ref)
    ).first()


def _to_broker_order(row: PaperOrderRow) -> BrokerOrder:
    return BrokerOrder(
        order_ref=row.order_ref, symbol=row.symbol, action=row.action, quantity=row.quantity,
        order_type=row.order_type, status=row.status, broker_order_id=f"paper-{row.id}",
        filled=row.filled, avg_fill_price=row.avg_fill_price, commission=row.commission,
        limit_price=row.limit_price, broker="paper", reason=row.reason or "",
    )


class PaperBroker(Broker):
    """Paper trading with simulated fills (TRADING_BROKER=paper, the default)."""

    kind: ClassVar[str] = "paper"
    paper_database_url: str = "sqlite:///data/paper_broker.db"
    starting_cash: float = 100_000.0

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

    def find_order(self, order_ref: str) -> BrokerOrder | None:
        with self._session() as session:
            row = _order_row(session, order_ref)
            return _to_broker_order(row) if row else None

    def place_order(self, request: OrderRequest, market_price: float,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        with self._session() as session:
            existing = _order_row(session, request.order_ref)
            if existing is not None:
                return _to_broker_order(existing)
            row = PaperOrderRow(
                order_ref=request.order_ref, symbol=request.symbol, action=request.action.value,
                quantity=float(request.quantity), order_type=request.order_type.value,
                limit_price=request.limit_price, status="Submitted", reason="",
            )
            session.add(row)
            session.flush()
            self._try_fill(session, row, market_price)
            return _to_broker_order(row)

    def _try_fill(self, session: Session, row: PaperOrderRow, price: float) -> None:
        """Fill at the latest price plus slippage against us; a limit fills only if it crosses."""
        buying = row.action == Action.BUY.value
        costs = self.costs()
        fill = costs.fill_price(price, buying)
        if row.order_type in (OrderType.LIMIT.value, OrderType.BRACKET.value) and row.limit_price:
            if (buying and fill > row.limit_price) or (not buying and fill < row.limit_price):
                return  # rests as Submitted until a later price crosses it
        commission = costs.commission(row.quantity)
        account = session.get(PaperAccountRow, PAPER_ACCOUNT)
        assert account is not None  # _session creates it
        position = session.get(PaperPositionRow, row.symbol)
        if position is None:
            position = PaperPositionRow(symbol=row.symbol, quantity=0.0, avg_cost=0.0,
                                        realized_pnl=0.0)
            session.add(position)
        signed = row.quantity if buying else -row.quantity
        cost = signed * fill
        if buying and account.cash < cost + commission:
            row.status = "Cancelled"
            row.reason = (f"insufficient cash: {row.quantity:g} x {fill:.4f} + commission "
                          f"{commission:.2f} = {cost + commission:.2f} > cash {account.cash:.2f}")
            return
        _apply_fill(account, position, signed, fill)
        position.last_price = price
        account.cash -= cost + commission
        row.status, row.filled, row.avg_fill_price = "Filled", row.quantity, round(fill, 4)
        row.commission = round(commission, 4)

    def mark_price(self, symbol: str, price: float) -> None:
        with self._session() as session:
            position = session.get(PaperPositionRow, symbol)
            if position is not None:
                position.last_price = price
            resting = session.scalars(select(PaperOrderRow).where(
                PaperOrderRow.symbol == symbol, PaperOrderRow.status == "Submitted")).all()
            for row in resting:
                self._try_fill(session, row, price)

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
        with self._session() as session:
            query = select(PaperOrderRow)
            if symbol:
                query = query.where(PaperOrderRow.symbol == symbol)
            return [_to_broker_order(r) for r in session.scalars(query).all()]


def _apply_fill(account: PaperAccountRow, position: PaperPositionRow, signed: float,
                fill: float) -> None:
    """Move the position's quantity and average cost; realize P&L on the part that closes."""
    old_qty = position.quantity
    new_qty = old_qty + signed
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
