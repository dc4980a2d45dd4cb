"""Order attempts (re-approval after not_placed), a reason on signals, analysis claims.

* orders: one row per attempt (`attempt`, its own unique `order_ref`); the old unique
  signal_id becomes (signal_id, attempt). Existing rows are attempt 1 with orderRef = signal id,
  exactly what the broker was sent.
* signals.status_reason: why a signal is not_placed, order_failed or expired.
* analysis_claims: one analysis per (symbol, bar date, analyst) at a time, with a lease.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", recreate="auto") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("order_ref", sa.String(length=48), nullable=True))
    op.execute("UPDATE orders SET order_ref = signal_id")
    with op.batch_alter_table("orders", recreate="auto") as batch:
        batch.alter_column("order_ref", existing_type=sa.String(length=48), nullable=False)
        batch.drop_constraint("uq_orders_signal_id", type_="unique")
        batch.create_unique_constraint("uq_orders_order_ref", ["order_ref"])
        batch.create_unique_constraint("uq_orders_signal_attempt", ["signal_id", "attempt"])
        batch.create_index("ix_orders_signal_id", ["signal_id"])
    with op.batch_alter_table("signals", recreate="auto") as batch:
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=False,
                                   server_default=""))
    op.create_table(
        "analysis_claims",
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("bar_date", sa.Date(), nullable=False),
        sa.Column("analyst", sa.String(length=320), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "bar_date", "analyst", name="pk_analysis_claims"),
    )


def downgrade() -> None:
    op.drop_table("analysis_claims")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("status_reason")
    op.execute("DELETE FROM orders WHERE attempt > 1")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_signal_id")
        batch.drop_constraint("uq_orders_signal_attempt", type_="unique")
        batch.drop_constraint("uq_orders_order_ref", type_="unique")
        batch.create_unique_constraint("uq_orders_signal_id", ["signal_id"])
        batch.drop_column("order_ref")
        batch.drop_column("attempt")
