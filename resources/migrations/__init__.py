"""Alembic migrations of the application tables, run to head whenever the app opens its database.

The scripts ship inside the package (resources/migrations/versions), so a wheel or the Docker image
migrates its own database: an upgrade adds columns and tables around the existing signals,
reviews and orders ledger instead of recreating anything. README.md in this folder says how to
add a migration; tests/test_migrations.py fails when the ORM models and the migrations drift apart.
The paper broker's database has a chain of its own (resources/migrations/paper), run the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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




@dataclass(frozen=True)
class Chain:
    """One database's migration history: its scripts, where it keeps its revision, and how a
    database built by create_all before the migrations existed is recognised."""

    label: str  # for messages: "Application database"
    setting: str  # the variable that names the database URL
    scripts: Path
    version_table: str
    # A table that create_all built: present without the version table means "pre-migration",
    # stamped at BASELINE_REVISION and upgraded from there.
    marker_table: str


APP_CHAIN = Chain("Application database", "APP_DATABASE_URL", MIGRATIONS_DIR, VERSION_TABLE,
                  "signals")
# The paper book (resources/paper_tables.py) in PAPER_BROKER_DATABASE_URL; its own version table,
# so it may share a database with the application tables.
PAPER_CHAIN = Chain("Paper broker database", "PAPER_BROKER_DATABASE_URL", MIGRATIONS_DIR / "paper",
                    "paper_alembic_version", "paper_orders")


class SchemaMigrationError(RuntimeError):
    """The application database cannot be brought to the schema this code expects."""


def configured_url(how_to_pass: str, env: Mapping[str, str] | None = None,
                   chain: Chain = APP_CHAIN) -> str:
    """APP_DATABASE_URL (the chain's setting), for the command lines; the app itself passes the
    URL it opens.

    No default of its own: where the embedded SQLite file lives is the code location's setting
    (TRADING_DATA_DIR, which resources never read), and the app migrates that file when it opens it.
    """
    env = os.environ if env is None else env
    url = env.get(chain.setting, "")
    if not url:
        raise SchemaMigrationError(
            f"No {chain.label.lower()} given: set {chain.setting} or pass {how_to_pass}. (The "
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


def current_revision(connection: Connection, version_table: str = VERSION_TABLE) -> str | None:
    """The revision the database is at, None for an empty (or pre-migration) schema."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": version_table})
    return context.get_current_revision()


def _predates_migrations(connection: Connection, chain: Chain) -> bool:
    """Tables built by create_all before migrations existed: no version table, but the marker."""
    tables = set(inspect(connection).get_table_names())
    return chain.version_table not in tables and chain.marker_table in tables


def upgrade_to_head(target: str | Engine, scripts: Path | None = None,
                    chain: Chain = APP_CHAIN) -> str:
    """Migrate the database (a URL, or an engine for in-memory SQLite) to the head of `chain`
    (the application tables by default; `scripts` replaces its folder); returns the revision.

    An empty database gets the whole schema. Several processes may open the database at once
    (webserver, daemon, code server, Gradio): the upgrade runs in one transaction under a lock,
    so the second one finds the work done.
    """
    from alembic import command
    from alembic.util import CommandError

    scripts = scripts or chain.scripts
    own_engine = isinstance(target, str)
    engine = migration_engine(target) if isinstance(target, str) else target
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Transaction-scoped: released at commit, so concurrent starters take turns.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            config = alembic_config(connection, scripts)
            if _predates_migrations(connection, chain):
                command.stamp(config, BASELINE_REVISION)
            command.upgrade(config, "head")
            return current_revision(connection, chain.version_table) or ""
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        todo = ("Check that the folder is writable and no other program holds the file "
                f"({chain.setting}, TRADING_DATA_DIR)." if engine.dialect.name == "sqlite"
                else f"Start the database server or check {chain.setting}.")
        raise SchemaMigrationError(
            f"{chain.label} {safe_url(url)} not reachable ({reason}). {todo}"
        ) from exc
    except CommandError as exc:
        if "Can't locate revision" in str(exc):
            raise SchemaMigrationError(
                f"{chain.label} {safe_url(url)} has a schema newer than this version of "
                f"trading-signals knows ({exc}; newest known: {head_revision(scripts)}). Run the "
                "newer version, or restore a backup taken before the upgrade."
            ) from exc
        raise SchemaMigrationError(
            f"Migrating {chain.label.lower()} {safe_url(url)} failed: {exc}"
        ) from exc
    finally:
        if own_engine:
            engine.dispose()


def schema_diffs(url: str, metadata: MetaData, version_table: str = VERSION_TABLE) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (the ORM models'
    tables, which the caller passes: the models import these migrations, not the other way
    round) and its chain's `version_table`; [] = in sync."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": version_table, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def run_migrations(metadata: MetaData, chain: Chain) -> None:
    """The body of a chain's env.py: run its scripts against `metadata` (the models' tables).

    On the connection upgrade_to_head hands over, else on `-x url=...`, sqlalchemy.url or the
    chain's setting (the plain `alembic` command and `python -m resources.migrations`).
    """
    from alembic import context

    config = context.config

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                       compare_to: Any) -> bool:
        # A shared database may hold other tables (the other chain's, Dagster's): autogenerate
        # must never propose dropping what these models do not own.
        return not (type_ == "table" and reflected and compare_to is None)

    def configure(**kwargs: Any) -> None:
        context.configure(
            target_metadata=metadata,
            version_table=chain.version_table,
            compare_type=True,
            # Batch mode lets one script alter columns on SQLite (copy-and-move) and PostgreSQL.
            render_as_batch=True,
            include_object=include_object,
            **kwargs,
        )

    def database_url() -> str:
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
            "sqlalchemy.url")
        return url or configured_url("-x url=... to alembic", chain=chain)

    if context.is_offline_mode():
        configure(url=database_url(), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    elif (connection := config.attributes.get("connection")) is not None:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = migration_engine(database_url())
        try:
            with engine.begin() as own_connection:
                configure(connection=own_connection)
                context.run_migrations()
        finally:
            engine.dispose()
