"""Signals that nobody needs to review, refusals that may change, the trades of each signal,
and the equity curve.

* symbol_settings.removed_at: a removed symbol keeps its settings for a later re-add.
* signals.retryable: a not_placed refusal whose reason can change by itself (cash, exposure,
  working orders), offered again in the review queue; a refusal of the signal's own numbers
  is not.
* Existing pending_review HOLD and LOW-confidence signals become no_action with the reason
  (nothing to approve: core/policy.entry_status); their rows stay, reviews and all.
* trades: per filled order, the entry, the exit (target, stop, a SELL signal), why, the R
  multiple and the P&L, linked to its signal.
* equity_points: the account's cash, equity and P&L at every portfolio materialization.

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
    with op.batch_alter_table("symbol_settings") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("retryable", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE signals SET status = 'no_action', "
               "status_reason = 'HOLD: no order to decide' "
               "WHERE status = 'pending_review' AND mode = 'live' AND action = 'HOLD'")
    op.execute("UPDATE signals SET status = 'no_action', "
               "status_reason = action || ' with LOW confidence: not actionable' "
               "WHERE status = 'pending_review' AND mode = 'live' AND confidence_level = 'LOW'")
    op.create_table(
        "trades",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_ref", sa.String(length=48), nullable=False),
        sa.Column("signal_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("entry_on", sa.Date(), nullable=True),
        sa.Column("stop_loss", sa.Float(), nullable=True),
        sa.Column("take_profit", sa.Float(), nullable=True),
        sa.Column("exit_quantity", sa.Float(), nullable=False, server_default="0"),
        sa.Column("exit_price", sa.Float(), nullable=True),
        sa.Column("exit_on", sa.Date(), nullable=True),
        sa.Column("exit_reason", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("commission", sa.Float(), nullable=False, server_default="0"),
        sa.Column("realized_pnl", sa.Float(), nullable=True),
        sa.Column("r_multiple", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint("order_ref", name=op.f("uq_trades_order_ref")),
    )
    op.create_index(op.f("ix_trades_symbol"), "trades", ["symbol"])
    op.create_index(op.f("ix_trades_signal_id"), "trades", ["signal_id"])
    op.create_table(
        "equity_points",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("broker", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bar_date", sa.Date(), nullable=True),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("unrealized_pnl", sa.Float(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=True),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_points")),
    )
    op.create_index(op.f("ix_equity_points_at"), "equity_points", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_equity_points_at"), table_name="equity_points")
    op.drop_table("equity_points")
    op.drop_index(op.f("ix_trades_signal_id"), table_name="trades")
    op.drop_index(op.f("ix_trades_symbol"), table_name="trades")
    op.drop_table("trades")
    op.execute("UPDATE signals SET status = 'pending_review' WHERE status = 'no_action'")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("retryable")
    with op.batch_alter_table("symbol_settings") as batch:
        batch.drop_column("removed_at")
