"""Alembic environment of the application tables (the models in resources/app_tables.py).

The app runs this through `resources.migrations.upgrade_to_head`, which hands over an open
connection; the plain `alembic` command and `python -m resources.migrations` reach it too. How to
add a migration: README.md in this folder.
"""

from __future__ import annotations

from resources.app_tables import Base
from resources.migrations import APP_CHAIN, run_migrations

run_migrations(Base.metadata, APP_CHAIN)
