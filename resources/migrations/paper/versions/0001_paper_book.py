"""The paper book: account, positions and the order book keyed by orderRef.

Exactly what `PaperBase.metadata.create_all` built before migrations existed (orders without a
`reason`), so a paper book created that way is stamped at this revision and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paper_account",
        sa.Column("account", sa.String(length=16), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("starting_cash", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account"),
    )
    op.create_table(
        "paper_positions",
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("avg_cost", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("last_price", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("symbol"),
    )
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("order_type", sa.String(length=16), nullable=False),
        sa.Column("limit_price", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled", sa.Float(), nullable=False),
        sa.Column("avg_fill_price", sa.Float(), nullable=True),
        sa.Column("commission", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_ref"),
    )


def downgrade() -> None:
    for table in ("paper_orders", "paper_positions", "paper_account"):
        op.drop_table(table)
