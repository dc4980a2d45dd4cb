"""Alembic migrations of the application tables, run to head whenever the app opens its database.

The scripts ship inside the package (resources/migrations/versions), so a wheel or the Docker image
migrates its own database: an upgrade adds columns and tables around the existing signals,
reviews and orders ledger instead of recreating anything. README.md in this folder says how to
add a migration; tests/test_migrations.py fails when the ORM models and the migrations drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent
# Not Alembic's default "alembic_version": Dagster's Postgres storage keeps its own revision under
# that name, and APP_DATABASE_URL may point at the same database as the Dagster instance.
VERSION_TABLE = "app_alembic_version"
# The schema that `Base.metadata.create_all` built before migrations existed.
BASELINE_REVISION = "0001"
# Any constant works; it only has to differ from other advisory locks taken on the same database.
_PG_LOCK_KEY = 74_201_117


class SchemaMigrationError(RuntimeError):
    """The application database cannot be brought to the schema this code expects."""


def configured_url(how_to_pass: str, env: Mapping[str, str] | None = None) -> str:
    """APP_DATABASE_URL, for the command lines; the app itself passes the URL it opens.

    No default of its own: where the embedded SQLite file lives is the code location's setting
    (TRADING_DATA_DIR, which resources never read), and the app migrates that file when it opens it.
    """
    env = os.environ if env is None else env
    url = env.get("APP_DATABASE_URL", "")
    if not url:
        raise SchemaMigrationError(
            f"No application database given: set APP_DATABASE_URL or pass {how_to_pass}. (The "
            "embedded SQLite database is migrated by the app itself when it first opens it.)"
        )
    return url


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def alembic_config(connection: Connection | None = None, scripts: Path = MIGRATIONS_DIR) -> Config:
    """Alembic configuration for the packaged scripts; migrations run on `connection` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(scripts).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision(scripts: Path = MIGRATIONS_DIR) -> str:
    """The newest revision the scripts know (fails loudly if two branches both claim head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(scripts=scripts)).get_current_head()
    if head is None:
        raise SchemaMigrationError(f"No migration scripts in {scripts / 'versions'}.")
    return head


def migration_engine(url: str) -> Engine:
    """A one-connection engine whose transaction covers DDL too, on SQLite as on PostgreSQL."""
    kwargs: dict[str, Any] = {"poolclass": NullPool}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        # pysqlite commits each DDL statement on its own; an explicit BEGIN IMMEDIATE makes the
        # upgrade all-or-nothing and takes the write lock, so two processes never migrate at once.
        @event.listens_for(engine, "connect")
        def _driver_transactions_off(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, None for an empty (or pre-migration) schema."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _predates_migrations(connection: Connection) -> bool:
    """Tables built by create_all before migrations existed: no version table, but signals."""
    tables = set(inspect(connection).get_table_names())
    return VERSION_TABLE not in tables and "signals" in tables


def upgrade_to_head(target: str | Engine, scripts: Path = MIGRATIONS_DIR) -> str:
    """Migrate the database (a URL, or an engine for in-memory SQLite) to head; returns it.

    An empty database gets the whole schema. Several processes may open the database at once
    (webserver, daemon, code server, Gradio): the upgrade runs in one transaction under a lock,
    so the second one finds the work done.
    """
    from alembic import command
    from alembic.util import CommandError

    own_engine = isinstance(target, str)
    engine = migration_engine(target) if isinstance(target, str) else target
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Transaction-scoped: released at commit, so concurrent starters take turns.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            config = alembic_config(connection, scripts)
            if _predates_migrations(connection):
                command.stamp(config, BASELINE_REVISION)
            command.upgrade(config, "head")
            return current_revision(connection) or ""
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        todo = ("Check that the folder is writable and no other program holds the file "
                "(APP_DATABASE_URL, TRADING_DATA_DIR)." if engine.dialect.name == "sqlite"
                else "Start the database server or check APP_DATABASE_URL.")
        raise SchemaMigrationError(
            f"Application database {safe_url(url)} not reachable ({reason}). {todo}"
        ) from exc
    except CommandError as exc:
        if "Can't locate revision" in str(exc):
            raise SchemaMigrationError(
                f"Application database {safe_url(url)} has a schema newer than this version of "
                f"trading-signals knows ({exc}; newest known: {head_revision(scripts)}). Run the "
                "newer version, or restore a backup taken before the upgrade."
            ) from exc
        raise SchemaMigrationError(
            f"Migrating application database {safe_url(url)} failed: {exc}"
        ) from exc
    finally:
        if own_engine:
            engine.dispose()


def schema_diffs(url: str, metadata: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (the ORM models'
    tables, which the caller passes: the models import these migrations, not the other way
    round); [] = in sync."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()
