"""Throwaway PostgreSQL databases for the stack tests, on 127.0.0.1:5432 (TEST_POSTGRES_URL).

Every database this session creates carries one session token in its name and is dropped at
the end. Without a server the tests skip with a loud message; with CI=true they fail instead,
so a CI run can never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import URL, make_url

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> URL:
    return make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_SERVER_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip loudly on a laptop without PostgreSQL; fail in CI."""
    message = (
        f"\n{'!' * 78}\nPOSTGRESQL NOT AVAILABLE at "
        f"{server_url().render_as_string(hide_password=True)} ({reason}).\n"
        "The PostgreSQL stack tests did NOT run. Start PostgreSQL or set TEST_POSTGRES_URL; "
        "with CI=true this is a failure.\n" + "!" * 78
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


class PostgresServer:
    """Creates databases named trading_test_<session>_<purpose> and drops them all at the end."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.session = uuid.uuid4().hex[:10]
        self.created: list[str] = []

    def _admin(self) -> Any:
        """A psycopg2 connection to the server's maintenance database, in autocommit mode."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.url.host or "127.0.0.1", port=self.url.port or 5432,
            user=self.url.username or "postgres", password=self.url.password or None,
            dbname=self.url.database or "postgres", connect_timeout=3,
        )
        connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        return connection

    def create_database(self, purpose: str) -> URL:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"trading_test_{self.session}_{purpose}".lower()
        connection = self._admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        self.created.append(name)
        return self.url.set(database=name)

    def drop_all(self) -> None:
        connection = self._admin()
        try:
            with connection.cursor() as cursor:
                for name in self.created:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()
        self.created.clear()

    def dagster_env(self, database: URL) -> dict[str, str]:
        """The DAGSTER_POSTGRES_* variables the production dagster.yaml reads."""
        return {
            "DAGSTER_POSTGRES_HOST": database.host or "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(database.port or 5432),
            "DAGSTER_POSTGRES_USER": database.username or "postgres",
            "DAGSTER_POSTGRES_PASSWORD": database.password or "",
            "DAGSTER_POSTGRES_DB": database.database or "",
        }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(server_url())
    try:
        server._admin().close()
    except Exception as exc:  # any failure to connect means: no usable server
        unavailable(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    try:
        yield server
    finally:
        server.drop_all()
