"""Recorded model exchanges, and what each signal says about its answer and its model.

* llm_exchanges: the index of the recorded exchange store, one row per request digest (the
  answer itself is an object in the object store); the primary key keeps one answer per
  request when two runs record it at once.
* signals.cached / original_cost_usd / request_key: the answer came from the store (cost_usd
  is then 0, original_cost_usd what it cost when recorded) and which request it answered.
* signals.training_cutoff: the model's training cutoff when the signal was made.

Existing signals are fresh answers (cached false, no request key, cutoff unknown); their
signal_json has no horizon_days / timeframes_agree and reads back with both unknown.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_exchanges",
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("bar_date", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("prompt_version", sa.String(length=128), nullable=False),
        sa.Column("images_sha256", sa.String(length=64), nullable=False),
        sa.Column("params_sha256", sa.String(length=64), nullable=False),
        sa.Column("schema_sha256", sa.String(length=64), nullable=False),
        sa.Column("messages_sha256", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=256), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_key", name=op.f("pk_llm_exchanges")),
    )
    op.create_index("ix_llm_exchanges_symbol_bar_date", "llm_exchanges",
                    ["symbol", "bar_date"])
    with op.batch_alter_table("signals", recreate="auto") as batch:
        batch.add_column(sa.Column("cached", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("original_cost_usd", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("request_key", sa.String(length=64), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("training_cutoff", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("training_cutoff")
        batch.drop_column("request_key")
        batch.drop_column("original_cost_usd")
        batch.drop_column("cached")
    op.drop_index("ix_llm_exchanges_symbol_bar_date", table_name="llm_exchanges")
    op.drop_table("llm_exchanges")
