"""paper_orders.reason: why an order was Cancelled (e.g. a BUY the cash cannot pay for).

The code before migrations added this column by hand when it opened an older book, and
create_all built it for newer ones: a book stamped at 0001 may have it already.

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
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("paper_orders")}
    if "reason" not in columns:
        with op.batch_alter_table("paper_orders") as batch:
            batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.drop_column("reason")
