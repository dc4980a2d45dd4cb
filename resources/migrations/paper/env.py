"""Alembic environment of the paper broker's tables (resources/paper_tables.py)."""

from __future__ import annotations

from resources.migrations import PAPER_CHAIN, run_migrations
from resources.paper_tables import PaperBase

run_migrations(PaperBase.metadata, PAPER_CHAIN)
