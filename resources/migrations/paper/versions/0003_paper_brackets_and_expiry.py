"""Bracket children, times in force and bar-by-bar fills in the paper book.

* paper_orders.parent_ref / role: a bracket's take-profit and stop-loss rows point at their
  entry (role entry | take_profit | stop_loss); existing rows are entries.
* paper_orders.aux_price: a stop order's trigger price.
* paper_orders.expire_after_sessions: an unfilled entry is cancelled (expired) after this many
  sessions (1 = a DAY order; NULL = good till cancelled, the exits).
* paper_orders.placed_on / evaluated_through / filled_on: the bar date it was placed at, the
  last bar it was worked against (no bar counts twice) and the session it filled in.
* paper_orders.realized_pnl: what an exit realized (before commission).

An existing Submitted limit order keeps working under the new rules from its creation date on,
as a DAY order: it is expired by the first later bar that does not fill it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.add_column(sa.Column("parent_ref", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False,
                                   server_default="entry"))
        batch.add_column(sa.Column("aux_price", sa.Float(), nullable=True))
        batch.add_column(sa.Column("expire_after_sessions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("placed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("evaluated_through", sa.Date(), nullable=True))
        batch.add_column(sa.Column("filled_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("realized_pnl", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.create_index("ix_paper_orders_symbol_status", ["symbol", "status"])
    # Orders of the old book rest from the day they were created, as DAY orders.
    op.execute("UPDATE paper_orders SET expire_after_sessions = 1, "
               "placed_on = DATE(created_at) WHERE status = 'Submitted'")


def downgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.drop_index("ix_paper_orders_symbol_status")
        for column in ("realized_pnl", "filled_on", "evaluated_through", "placed_on",
                       "expire_after_sessions", "aux_price", "role", "parent_ref"):
            batch.drop_column(column)
