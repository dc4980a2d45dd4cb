"""The paper broker's tables (SQLAlchemy models): account, positions and the order book.

resources/paper_broker.py reads and writes them; the Alembic scripts in
resources/migrations/paper build them, in the paper broker's own database.
"""

from datetime import UTC, date, datetime

from sqlalchemy import Date, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class PaperBase(DeclarativeBase):
    """The paper broker's tables, apart from the application tables (a database of their own)."""


class PaperAccountRow(PaperBase):
    __tablename__ = "paper_account"

    account: Mapped[str] = mapped_column(String(16), primary_key=True)
    cash: Mapped[float] = mapped_column(Float)
    starting_cash: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)


class PaperPositionRow(PaperBase):
    __tablename__ = "paper_positions"

    symbol: Mapped[str] = mapped_column(String(12), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float, default=0.0)
    avg_cost: Mapped[float] = mapped_column(Float, default=0.0)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    last_price: Mapped[float] = mapped_column(Float, default=0.0)


class PaperOrderRow(PaperBase):
    """One order of the paper book: an entry, or a bracket's take-profit or stop-loss."""

    __tablename__ = "paper_orders"
    __table_args__ = (Index("ix_paper_orders_symbol_status", "symbol", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_ref: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(12))
    action: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[float] = mapped_column(Float)
    order_type: Mapped[str] = mapped_column(String(16))
    limit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    filled: Mapped[float] = mapped_column(Float, default=0.0)
    avg_fill_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    commission: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")  # why it was cancelled
    parent_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="entry")  # | take_profit | stop_loss
    aux_price: Mapped[float | None] = mapped_column(Float, nullable=True)  # a stop's trigger
    # An unfilled entry expires after this many sessions (1 = DAY); None = good till cancelled.
    expire_after_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    placed_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # bar date at placing
    evaluated_through: Mapped[date | None] = mapped_column(Date, nullable=True)
    filled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)  # an exit's, before costs
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 default=lambda: datetime.now(UTC))
