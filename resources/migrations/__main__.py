"""`python -m resources.migrations`: upgrade, inspect and extend the application schema.

    upgrade   migrate the database (--url, else APP_DATABASE_URL) to head
    current   print the database's revision and the newest known one
    check     fail if the models in resources/app_db.py differ from what the migrations build
    revision  write a new migration from that difference: revision -m "add signals.note"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData

from resources.migrations import (
    MIGRATIONS_DIR,
    SchemaMigrationError,
    alembic_config,
    configured_url,
    current_revision,
    head_revision,
    migration_engine,
    safe_url,
    schema_diffs,
    upgrade_to_head,
)


def _configured_url(url: str) -> str:
    return url or configured_url("--url")


def next_revision_id() -> str:
    """0002, 0003, ...: ids that sort like the history they describe."""
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory.from_config(alembic_config())
             .walk_revisions()}
    number = len(known) + 1
    while f"{number:04d}" in known:
        number += 1
    return f"{number:04d}"


def cmd_upgrade(url: str) -> int:
    url = _configured_url(url)
    print(f"{safe_url(url)} is at revision {upgrade_to_head(url)} (head)")
    return 0


def cmd_current(url: str) -> int:
    url = _configured_url(url)
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    finally:
        engine.dispose()
    print(f"{safe_url(url)}: {current or 'empty (no revision)'}; newest known: {head_revision()}")
    return 0


def app_metadata() -> MetaData:
    """The application tables as the ORM models declare them."""
    from resources.app_tables import Base

    return Base.metadata


def cmd_check() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'check.db'}"
        upgrade_to_head(url)
        diffs = schema_diffs(url, app_metadata())
    for diff in diffs:
        print(f"drift: {diff}")
    if diffs:
        print('The models and the migrations differ: python -m resources.migrations revision -m '
              '"what changed"', file=sys.stderr)
        return 1
    print(f"Models match the migrations (head {head_revision()}).")
    return 0


def cmd_revision(message: str) -> int:
    from alembic import command

    # Compare the models with a scratch database at head, so the new script holds exactly the
    # models' change and nothing about whatever database the developer has configured.
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'revision.db'}"
        upgrade_to_head(url)
        engine = migration_engine(url)
        try:
            with engine.begin() as connection:
                script = command.revision(alembic_config(connection), message=message,
                                          autogenerate=True, rev_id=next_revision_id())
        finally:
            engine.dispose()
    path = Path(getattr(script, "path", MIGRATIONS_DIR / "versions"))
    print(f"Wrote {path}. Read it, adjust it (server defaults for new NOT NULL columns), then run "
          "the tests: pytest tests/test_migrations.py")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resources.migrations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("upgrade", "current"):
        command = sub.add_parser(name)
        command.add_argument("--url", default="", help="database URL (default: APP_DATABASE_URL)")
    sub.add_parser("check")
    revision = sub.add_parser("revision")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "upgrade":
            return cmd_upgrade(args.url)
        if args.command == "current":
            return cmd_current(args.url)
        if args.command == "check":
            return cmd_check()
        return cmd_revision(args.message)
    except SchemaMigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
