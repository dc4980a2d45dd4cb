"""The production column end to end: the whole graph for two symbols with the Dagster instance on
PostgreSQL (from the repository's own dagster.yaml), the application tables on PostgreSQL and the
object store on an S3 server driven by the minio SDK.

Without PostgreSQL these tests skip loudly; with CI=true they fail (tests/peers/postgres.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.app_db import AppDatabase
from resources.migrations import VERSION_TABLE, head_revision
from tests.conftest import metadata_for, run_symbols
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from tests.peers.s3_server import S3Server, new_bucket, s3_server  # noqa: F401
from trading_assets.core.keys import bars_info_key, bars_key, chart_key, transcript_key
from trading_assets.partitions import SYMBOLS_PARTITION
from trading_assets.settings import build_resources

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["TSLA", "NVDA"]
pytestmark = pytest.mark.postgres


@dataclass
class Stack:
    home: Path  # a DAGSTER_HOME holding the repository's production dagster.yaml
    dagster_db: sa.URL
    app_db_url: str
    bucket: str
    s3: S3Server
    resources: dict[str, Any]
    result: dg.ExecuteInProcessResult

    def second_instance(self) -> dg.DagsterInstance:
        """Another instance object on the same database, as another process would open it."""
        return dg.DagsterInstance.from_config(str(self.home))


@pytest.fixture(scope="module")
def stack(postgres_server: PostgresServer, s3_server: S3Server,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    dagster_db = postgres_server.create_database("dagster")
    app_db_url = postgres_server.create_database("app").render_as_string(hide_password=False)
    bucket = new_bucket()
    env = {
        "TRADING_DATA_DIR": str(tmp / "data"), "TRADING_SIMULATED_AS_OF": "2026-11-20",
        "MLFLOW_TRACKING_URI": "off", "APP_DATABASE_URL": app_db_url, **s3_server.env(bucket),
    }
    # Set for the whole module: dagster.yaml reads DAGSTER_POSTGRES_* whenever an instance
    # opens, and the store's secrets are EnvVar references resolved at use.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**postgres_server.dagster_env(dagster_db), **env}.items():
            patch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            resources = build_resources(env)
            result = run_symbols(instance, resources, SYMBOLS)
            yield Stack(home, dagster_db, app_db_url, bucket, s3_server, resources, result)
        finally:
            instance.dispose()


def test_the_instance_comes_from_the_production_dagster_yaml(stack: Stack) -> None:
    instance = stack.second_instance()
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled
    finally:
        instance.dispose()


def test_the_whole_graph_runs_for_two_symbols(stack: Stack) -> None:
    assert stack.result.success
    for symbol in SYMBOLS:
        assert metadata_for(stack.result, "ohlcv", symbol)["status"] == "ok"
        charts = metadata_for(stack.result, "charts", symbol)
        assert f"/{stack.bucket}/charts/{symbol}/" in charts["daily_chart"]
        assert metadata_for(stack.result, "llm_signal", symbol)["status"] in (
            "pending_review", "auto_approved", "no_action")
        assert metadata_for(stack.result, "portfolio", symbol)["status"] == "ok"


def test_runs_materializations_and_partitions_read_back_from_postgres(stack: Stack) -> None:
    instance = stack.second_instance()
    try:
        run = instance.get_run_by_id(stack.result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_dynamic_partitions(SYMBOLS_PARTITION) == SYMBOLS
        for asset in ("ohlcv", "indicators", "charts", "llm_signal", "orders", "portfolio"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(SYMBOLS)
        event = instance.get_latest_materialization_event(dg.AssetKey("llm_signal"))
        assert event is not None and event.run_id == stack.result.run_id
    finally:
        instance.dispose()
    # The rows are in PostgreSQL itself, not in some SQLite file next to the config.
    engine = sa.create_engine(stack.dagster_db)
    try:
        with engine.connect() as connection:
            runs = connection.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
            keys = connection.execute(sa.text(
                "SELECT partition FROM dynamic_partitions ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    assert runs >= 1 and keys == SYMBOLS
    assert not list(stack.home.glob("**/*.db"))


def test_signals_and_the_ledger_live_in_postgres_at_the_migrated_schema(stack: Stack) -> None:
    app_db = AppDatabase(url=stack.app_db_url)
    assert app_db.engine.dialect.name == "postgresql"
    for symbol in SYMBOLS:
        signal = app_db.latest_signal(symbol)
        assert signal is not None and signal.simulated and signal.provider == "rules"
        assert app_db.decisions_for(symbol), "the orders asset records every decision"
    with app_db.engine.connect() as connection:
        version = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
        assert version.scalar_one() == head_revision()


def test_data_charts_and_transcripts_are_objects_in_the_bucket(stack: Stack) -> None:
    client = stack.s3.client()
    names = {o.object_name for o in client.list_objects(stack.bucket, recursive=True)}
    for symbol in SYMBOLS:
        info = stack.resources["store"].read_json(bars_info_key(symbol))
        assert info["bars_key"] in names and bars_key(symbol) not in names
        assert chart_key(symbol, "daily", date.fromisoformat(info["last_date"])) in names
        signal = AppDatabase(url=stack.app_db_url).latest_signal(symbol)
        assert signal is not None
        if transcript_key(symbol, signal.id) in names:  # the rules analyst may keep none
            assert client.stat_object(stack.bucket, transcript_key(symbol, signal.id)).size > 0
    assert not (Path(stack.resources["store"].root)).exists()  # nothing fell back to disk


def test_a_second_run_reuses_signals_and_places_no_second_order(stack: Stack) -> None:
    instance = stack.second_instance()
    try:
        again = run_symbols(instance, stack.resources, ["TSLA"])
    finally:
        instance.dispose()
    assert again.success
    assert metadata_for(again, "llm_signal", "TSLA")["reused_existing_signal"] is True
    app_db = AppDatabase(url=stack.app_db_url)
    assert len(app_db.list_signals(symbol="TSLA")) == 1
    assert len(app_db.list_orders("TSLA")) <= 1
