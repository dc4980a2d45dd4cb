"""Alembic environment of the application tables (the models in resources/app_tables.py).

The app runs this through `resources.migrations.upgrade_to_head`, which hands over an open
connection; the plain `alembic` command and `python -m resources.migrations` reach it too. How to
add a migration: README.md in this folder.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from resources.app_tables import Base
from resources.migrations import VERSION_TABLE, configured_url, migration_engine

config = context.config


def _database_url() -> str:
    """`-x url=...`, else sqlalchemy.url, else APP_DATABASE_URL."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    return url or configured_url("-x url=... to alembic")


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                    compare_to: Any) -> bool:
    # A shared database may hold other tables (the paper broker's, Dagster's): autogenerate
    # must never propose dropping what these models do not own.
    return not (type_ == "table" and reflected and compare_to is None)


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        # Batch mode lets one script alter columns on SQLite (copy-and-move) and PostgreSQL alike.
        render_as_batch=True,
        include_object=_include_object,
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=_database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = migration_engine(_database_url())
    try:
        with engine.begin() as own_connection:
            _configure(connection=own_connection)
            context.run_migrations()
    finally:
        engine.dispose()
