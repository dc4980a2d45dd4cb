"""Alembic migrations of the application tables, on SQLite and PostgreSQL.

The drift test protects everyone who changes resources/app_db.py: when a model gains a column
without a migration, it fails and says how to write one (resources/migrations/README.md).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.app_db import AppDatabase, Base, engine_for
from resources.migrations import (
    BASELINE_REVISION,
    MIGRATIONS_DIR,
    VERSION_TABLE,
    SchemaMigrationError,
    alembic_config,
    current_revision,
    head_revision,
    migration_engine,
    schema_diffs,
    upgrade_to_head,
)
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from trading_assets.core.orders import Market, OrderRequest, OrderType, SymbolSettings
from trading_assets.core.signal import Action, AnalysisOutcome, SignalStatus, TradingSignal

ROOT = Path(__file__).resolve().parents[1]
APP_TABLES = {"symbol_settings", "signals", "signal_reviews", "orders", "order_decisions",
              "run_failures", "analysis_claims", "trades", "equity_points", "llm_exchanges"}


@pytest.fixture(params=["sqlite", "postgres"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A factory of empty databases on the parametrised backend."""
    counter = iter(range(1000))

    def make(purpose: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / f'{purpose}-{next(counter)}.db'}"
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"{purpose}_{request.node.name[-20:]}_{next(counter)}")
        return url.render_as_string(hide_password=False)

    return make


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision_of(url: str, version_table: str = VERSION_TABLE) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection, version_table)
    finally:
        engine.dispose()


def add_history(app_db: AppDatabase) -> str:
    """A signal, its review and its order: what an upgrade must never lose."""
    app_db.upsert_settings(SymbolSettings(symbol="TSLA", auto_approve=True, min_confidence=70))
    signal = TradingSignal(symbol="TSLA", action="BUY", confidence_level="HIGH",
                           confidence_score=81, reasoning="Trend and momentum agree.",
                           key_factors=["SMA 50 above SMA 200"], trend="UP", entry_price=100.0,
                           stop_loss=95.0, take_profit=110.0)
    outcome = AnalysisOutcome(symbol="TSLA", signal=signal, provider="rules", model="rules-v1",
                              prompt_version="signal_v1")
    row = app_db.record_signal(outcome=outcome, bar_date=date(2026, 11, 20),
                               status=SignalStatus.PENDING_REVIEW, data_source="simulated",
                               simulated=True, last_bars=[], indicators={}, chart_keys={})
    app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice", note="looks right")
    app_db.claim_order(row.id, "TSLA", "paper", "BUY", 10, "MKT", None, 95.0, 110.0)
    app_db.record_decision("TSLA", row.id, True, "risk checks passed")
    return row.id


def assert_history_intact(app_db: AppDatabase, signal_id: str) -> None:
    settings = app_db.settings_for("TSLA")
    assert (settings.auto_approve, settings.min_confidence) == (True, 70)
    signal = app_db.get_signal(signal_id)
    assert signal is not None and signal.status == SignalStatus.APPROVED.value
    assert [r.reviewer for r in app_db.reviews_for(signal_id)] == ["alice"]
    order = app_db.order_for_signal(signal_id)
    assert order is not None and (order.action, order.quantity) == ("BUY", 10)
    # The ledger still refuses a second order for the same signal after the upgrade.
    assert app_db.claim_order(signal_id, "TSLA", "paper", "BUY", 10, "MKT", None, None,
                              None) is None
    assert app_db.decisions_for("TSLA")[0].reason == "risk checks passed"


def scripts_with_extra_revision(tmp_path: Path) -> Path:
    """The packaged scripts plus a revision after head that rebuilds `signals` and `orders`
    (SQLite batch copy).

    A table rebuild is where an upgrade could lose rows or the one-order-per-signal constraint.
    """
    scripts = tmp_path / "scripts"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_test_only.py").write_text(textwrap.dedent('''
        """Test only: a column on signals and orders, with the tables rebuilt on SQLite."""

        import sqlalchemy as sa
        from alembic import op

        revision = "9999"
        down_revision = "HEAD"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            for table in ("signals", "orders"):
                with op.batch_alter_table(table, recreate="auto") as batch:
                    batch.add_column(sa.Column("note", sa.Text(), nullable=False,
                                               server_default=""))
                    batch.alter_column("symbol", existing_type=sa.String(12),
                                       type_=sa.String(16), existing_nullable=False)


        def downgrade() -> None:
            for table in ("signals", "orders"):
                with op.batch_alter_table(table) as batch:
                    batch.drop_column("note")
    ''').replace("HEAD", head_revision()))
    return scripts


# --- the packaged scripts -----------------------------------------------------------------------


def test_the_initial_migration_builds_exactly_the_app_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert upgrade_to_head(url) == head_revision()
    assert tables(url) == APP_TABLES | {VERSION_TABLE}
    assert set(Base.metadata.tables) >= APP_TABLES


def test_models_and_migrations_do_not_drift(new_database: Callable[[str], str]) -> None:
    url = new_database("drift")
    upgrade_to_head(url)
    diffs = schema_diffs(url, Base.metadata)
    assert diffs == [], (
        "resources/app_tables.py and the migrations disagree. Write a migration: "
        'python -m resources.migrations revision -m "what changed" (see '
        f"resources/migrations/README.md). Differences: {diffs}"
    )


def test_there_is_one_head_and_history_starts_at_the_baseline() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, "two migrations claim to be head: renumber one"
    assert [s.revision for s in script.walk_revisions()][-1] == BASELINE_REVISION


def test_migration_scripts_are_shipped_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["resources"]
    needed = [p.relative_to(ROOT / "resources").as_posix()
              for p in MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
              and p.suffix != ".py" or p.parent.name == "versions" and p.suffix == ".py"]
    missing = [n for n in needed if not any(fnmatch(n, pattern) for pattern in patterns)]
    assert missing == [], f"add to [tool.setuptools.package-data] resources: {missing}"


# --- upgrades keep data ---------------------------------------------------------------------------


def test_an_empty_database_is_migrated_when_the_app_opens_it(
        new_database: Callable[[str], str]) -> None:
    url = new_database("empty")
    app_db = AppDatabase(url=url)
    assert app_db.list_settings() == []
    assert APP_TABLES <= tables(url)
    assert revision_of(url) == head_revision()


def test_an_upgrade_keeps_signals_reviews_and_orders(new_database: Callable[[str], str],
                                                     tmp_path: Path) -> None:
    url = new_database("upgrade")
    upgrade_to_head(url)  # the released schema (0001) ...
    app_db = AppDatabase(url=url)
    signal_id = add_history(app_db)
    engine_for(url).dispose()

    scripts = scripts_with_extra_revision(tmp_path)  # ... then a release that rebuilds tables
    assert upgrade_to_head(url, scripts) == "9999"

    assert_history_intact(app_db, signal_id)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            notes = connection.execute(sa.text("SELECT note FROM signals")).scalars().all()
    finally:
        engine.dispose()
    assert notes == [""]  # existing rows got the server default


def test_a_database_built_before_migrations_is_adopted_with_its_rows(
        new_database: Callable[[str], str], tmp_path: Path) -> None:
    url = new_database("legacy")
    # What engine_for's create_all built before migrations existed: the 0001 schema, unstamped.
    baseline = tmp_path / "baseline"
    shutil.copytree(MIGRATIONS_DIR, baseline, ignore=shutil.ignore_patterns("__pycache__"))
    for script in (baseline / "versions").glob("*.py"):
        if not script.name.startswith(BASELINE_REVISION):
            script.unlink()
    upgrade_to_head(url, baseline)
    legacy = sa.create_engine(url)
    with legacy.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
    legacy.dispose()
    signal_id = add_history(AppDatabase(url=url))  # engine_for stamps 0001, upgrades to head
    assert revision_of(url) == head_revision()
    # A fresh process opening it again changes nothing and loses nothing.
    upgrade_to_head(url)
    assert_history_intact(AppDatabase(url=url), signal_id)


def scripts_up_to(tmp_path: Path, revision: str) -> Path:
    """The packaged scripts without the revisions after `revision` (an older release)."""
    scripts = tmp_path / f"scripts-{revision}"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for script in (scripts / "versions").glob("*.py"):
        if script.name[:4].isdigit() and script.name[:4] > revision:
            script.unlink()
    return scripts


def test_signals_stored_before_horizons_and_recorded_answers_still_read(
        new_database: Callable[[str], str], tmp_path: Path) -> None:
    """A signal written by the 0003 schema (no horizon, agreement, cache or cutoff columns,
    signal_json without the new fields) reads back after the upgrade, and is scored."""
    from trading_assets.assets.scorecard import signal_facts
    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.outcomes import score_signals

    url = new_database("pre_horizon")
    assert upgrade_to_head(url, scripts_up_to(tmp_path, "0003")) == "0003"
    old_json = {"symbol": "TSLA", "action": "BUY", "confidence_level": "HIGH",
                "confidence_score": 81, "reasoning": "Trend and momentum agree.",
                "key_factors": [], "trend": "UP", "support": None, "resistance": None,
                "entry_price": 100.0, "stop_loss": 95.0, "take_profit": 110.0,
                "r_multiple": 2.0, "position_size_pct": 5.0, "timeframe": "daily+weekly",
                "provider": "openai", "model": "gpt-4o-mini", "prompt_version": "signal_v1@x",
                "bar_date": "2026-06-01", "generated_at": "2026-06-01T21:00:00+00:00"}
    engine = sa.create_engine(url)
    signals = sa.Table("signals", sa.MetaData(), autoload_with=engine)
    now = sa.func.now()
    with engine.begin() as connection:
        connection.execute(signals.insert().values(
            id="old1", symbol="TSLA", bar_date=date(2026, 6, 1), mode="replay", variant="",
            provider="openai", model="gpt-4o-mini", prompt_version="signal_v1@x",
            status="replay", action="BUY", confidence_level="HIGH", confidence_score=81,
            signal_json=old_json, error="", status_reason="", data_source="simulated",
            simulated=True, last_bars=[], indicators={}, chart_keys={}, prompt_tokens=1200,
            completion_tokens=300, cost_usd=0.00036, latency_s=1.5, dagster_run_id="",
            mlflow_run_id="", created_at=now, updated_at=now))
    engine.dispose()

    assert upgrade_to_head(url) == head_revision()
    row = AppDatabase(url=url).get_signal("old1")
    assert row is not None
    signal = row.trading_signal()
    assert signal is not None and signal.action is Action.BUY and signal.r_multiple == 2.0
    assert (signal.horizon_days, signal.timeframes_agree) == (None, None)
    assert (row.cached, row.original_cost_usd, row.request_key, row.training_cutoff) == \
        (False, 0.0, "", None)
    assert row.cost_usd == pytest.approx(0.00036)
    bars = simulate_bars("TSLA", date(2026, 11, 20), 300)
    [scored] = score_signals([signal_facts(row)], [("replay", bars)]).to_dict("records")
    assert scored["action"] == "BUY" and scored["training_period"] == "cutoff unknown"
    assert pd.isna(scored["hit_stated"]) and not pd.isna(scored["hit_5"])


def test_processes_starting_together_migrate_once(new_database: Callable[[str], str]) -> None:
    url = new_database("race")
    with ThreadPoolExecutor(max_workers=4) as pool:
        revisions = list(pool.map(lambda _: upgrade_to_head(url), range(4)))
    assert revisions == [head_revision()] * 4
    assert APP_TABLES <= tables(url)


def test_a_database_newer_than_the_code_is_refused_clearly(
        new_database: Callable[[str], str]) -> None:
    url = new_database("newer")
    upgrade_to_head(url)
    engine = migration_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaMigrationError, match="newer than this version"):
        upgrade_to_head(url)


def test_an_unreachable_server_names_the_setting_and_hides_the_password() -> None:
    url = "postgresql://trader:hunter2@127.0.0.1:1/trading"
    with pytest.raises(SchemaMigrationError) as raised:
        upgrade_to_head(url)
    message = str(raised.value)
    assert "APP_DATABASE_URL" in message and "127.0.0.1:1" in message
    assert "hunter2" not in message


def test_the_command_line_checks_for_drift(capsys: pytest.CaptureFixture[str]) -> None:
    from resources.migrations.__main__ import main

    assert main(["check"]) == 0
    assert "match" in capsys.readouterr().out


def test_the_command_line_migrates_APP_DATABASE_URL(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from resources.migrations.__main__ import main

    url = f"sqlite:///{tmp_path / 'configured.db'}"
    monkeypatch.setenv("APP_DATABASE_URL", url)
    assert main(["upgrade"]) == 0
    assert revision_of(url) == head_revision()
    assert "(head)" in capsys.readouterr().out


def test_the_command_line_without_a_database_url_says_what_to_set(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from resources.migrations.__main__ import main

    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path))
    for command in (["upgrade"], ["current"]):
        assert main(command) == 2
        error = capsys.readouterr().err
        assert "APP_DATABASE_URL" in error and "--url" in error
    assert list(tmp_path.iterdir()) == []  # no database was made up


def test_the_migrations_import_nothing_of_the_code_location(tmp_path: Path) -> None:
    """Resources sit below the code location: the migrations take a URL and never load
    trading_assets.settings (which imports resources.app_db, which runs the migrations)."""
    code = ("import sys\n"
            "from resources.migrations.__main__ import main\n"
            "assert main(['upgrade']) == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith('trading_assets.')\n"
            "             and not m.startswith('trading_assets.core')))\n")
    env = {"PATH": "/usr/bin:/bin", "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    for path in MIGRATIONS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            wrong = [n for n in names
                     if n.startswith("trading_assets") and not n.startswith("trading_assets.core")]
            assert wrong == [], f"{path.relative_to(ROOT)} imports {wrong}"


# --- the paper broker's own database ------------------------------------------------------------


def old_paper_book(url: str, *, with_reason: bool) -> None:
    """The paper book as the code before its migrations built it (create_all; `reason` came
    later, by an ALTER TABLE on open), with a filled order in it."""
    metadata = sa.MetaData()
    sa.Table("paper_account", metadata,
             sa.Column("account", sa.String(16), primary_key=True),
             sa.Column("cash", sa.Float, nullable=False),
             sa.Column("starting_cash", sa.Float, nullable=False),
             sa.Column("realized_pnl", sa.Float, nullable=False))
    sa.Table("paper_positions", metadata,
             sa.Column("symbol", sa.String(12), primary_key=True),
             *[sa.Column(name, sa.Float, nullable=False)
               for name in ("quantity", "avg_cost", "realized_pnl", "last_price")])
    sa.Table("paper_orders", metadata,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("order_ref", sa.String(64), nullable=False, unique=True),
             sa.Column("symbol", sa.String(12), nullable=False),
             sa.Column("action", sa.String(8), nullable=False),
             sa.Column("quantity", sa.Float, nullable=False),
             sa.Column("order_type", sa.String(16), nullable=False),
             sa.Column("limit_price", sa.Float, nullable=True),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("filled", sa.Float, nullable=False),
             sa.Column("avg_fill_price", sa.Float, nullable=True),
             sa.Column("commission", sa.Float, nullable=False),
             *([sa.Column("reason", sa.Text, server_default="")] if with_reason else []),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(metadata.tables["paper_account"].insert().values(
                account="PAPER-1", cash=99_000.0, starting_cash=100_000.0, realized_pnl=0.0))
            connection.execute(metadata.tables["paper_orders"].insert().values(
                order_ref="old-signal", symbol="TSLA", action="BUY", quantity=4.0,
                order_type="MKT", status="Filled", filled=4.0, avg_fill_price=250.0,
                commission=1.0, created_at=sa.func.now()))
    finally:
        engine.dispose()


@pytest.mark.parametrize("with_reason", [False, True], ids=["before-reason", "after-reason"])
def test_a_paper_book_built_by_the_old_code_opens_and_is_migrated(
        new_database: Callable[[str], str], with_reason: bool) -> None:
    from resources.migrations import PAPER_CHAIN
    from resources.paper_broker import PaperBroker

    url = new_database("paper_old")
    old_paper_book(url, with_reason=with_reason)
    broker = PaperBroker(paper_database_url=url, starting_cash=100_000.0)
    old = broker.find_order("old-signal")
    assert old is not None and (old.status, old.filled, old.reason) == ("Filled", 4.0, "")
    assert broker.account().cash == 99_000.0
    # The column the old code added by hand now comes from the paper broker's migrations.
    request = OrderRequest(symbol="TSLA", action=Action.BUY, quantity=10_000,
                           order_type=OrderType.MARKET, order_ref="too-big")
    market = Market("TSLA", last_close=250.0, bar_date=date(2026, 11, 20))
    assert broker.place_order(request, market).reason.startswith("insufficient cash")
    assert broker.find_order("too-big").reason.startswith("insufficient cash")  # type: ignore[union-attr]
    assert revision_of(url, PAPER_CHAIN.version_table) == head_revision(PAPER_CHAIN.scripts)


def test_paper_book_models_and_migrations_do_not_drift(
        new_database: Callable[[str], str]) -> None:
    from resources.migrations import PAPER_CHAIN
    from resources.paper_tables import PaperBase

    url = new_database("paper_drift")
    assert upgrade_to_head(url, chain=PAPER_CHAIN) == head_revision(PAPER_CHAIN.scripts)
    assert tables(url) == set(PaperBase.metadata.tables) | {PAPER_CHAIN.version_table}
    assert schema_diffs(url, PaperBase.metadata, PAPER_CHAIN.version_table) == []


def test_waiting_holds_become_no_action_and_every_signal_survives_the_upgrade(
        new_database: Callable[[str], str], tmp_path: Path) -> None:
    url = new_database("no_action")
    released = tmp_path / "released"  # the schema as the previous release left it (0002)
    shutil.copytree(MIGRATIONS_DIR, released, ignore=shutil.ignore_patterns("__pycache__"))
    for script in (released / "versions").glob("*.py"):
        if script.name[:4] > "0002":
            script.unlink()
    assert upgrade_to_head(url, released) == "0002"
    rows = [("hold", "HOLD", "MEDIUM", "pending_review"), ("low", "BUY", "LOW", "pending_review"),
            ("buy", "BUY", "HIGH", "pending_review"), ("done", "HOLD", "MEDIUM", "rejected")]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for signal_id, action, level, status in rows:
                connection.execute(sa.text(
                    "INSERT INTO signals (id, symbol, bar_date, mode, variant, provider, model, "
                    "prompt_version, status, action, confidence_level, confidence_score, error, "
                    "data_source, simulated, prompt_tokens, completion_tokens, cost_usd, "
                    "latency_s, dagster_run_id, mlflow_run_id, created_at, updated_at, "
                    "status_reason) VALUES (:id, 'TSLA', '2026-11-20', 'live', '', 'rules', "
                    ":id, 'v1', :status, :action, :level, 60, '', 'simulated', :false, 0, 0, "
                    "0, 0, '', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '')"),
                    {"id": signal_id, "status": status, "action": action, "level": level,
                     "false": False})
    finally:
        engine.dispose()
    assert upgrade_to_head(url) == head_revision()
    app_db = AppDatabase(url=url)
    got = {s.id: (s.status, s.status_reason) for s in app_db.list_signals(limit=10)}
    assert got == {"hold": ("no_action", "HOLD: no order to decide"),
                   "low": ("no_action", "BUY with LOW confidence: not actionable"),
                   "buy": ("pending_review", ""), "done": ("rejected", "")}
