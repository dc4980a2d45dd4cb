"""Per-run writes to the application database in one transaction, not one or two per symbol:
analysis claims (one model call per symbol, bar and analyst across runs), MLflow run ids."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import event

DAY = date(2026, 11, 20)
KEYS = [("AAA", DAY), ("BBB", DAY), ("CCC", DAY)]


@contextmanager
def commits(app_db: Any) -> Iterator[list[int]]:
    """The commits on the application database while the block runs."""
    seen: list[int] = []

    def on_commit(_conn: Any) -> None:
        seen.append(1)

    event.listen(app_db.engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(app_db.engine, "commit", on_commit)


def test_a_run_claims_and_releases_its_analyses_in_one_commit_each(
        resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    with commits(app_db) as claimed:
        assert app_db.claim_analyses(KEYS, "rules", "run-1", 60.0) == [True, True, True]
    # Another run meets the held leases: nothing for it, and no second model call.
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [False, False, False]
    # The holder renews its own claims.
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", 60.0) == [True]
    with commits(app_db) as released:
        app_db.release_analyses(KEYS[:2], "rules", "run-1")
    assert (len(claimed), len(released)) == (1, 1)  # one per call, not one or two per symbol
    # Released ones are free for the other run; the one still held is not.
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [True, True, False]


def test_an_expired_lease_is_taken_over(resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", -1.0) == [True]  # expired at once
    assert app_db.claim_analyses(KEYS, "rules", "run-2", 60.0) == [True, True, True]
    assert app_db.claim_analyses(KEYS[:1], "rules", "run-1", 60.0) == [False]


def test_a_run_links_its_signals_to_their_mlflow_runs_in_one_commit(
        instance: Any, env: dict[str, str]) -> None:
    from tests.conftest import run_symbols
    from trading_assets.assets.charts import charts
    from trading_assets.assets.indicators import indicators
    from trading_assets.assets.market_data import ohlcv
    from trading_assets.assets.signals import llm_signal
    from trading_assets.settings import build_resources

    tracked = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}  # the local default
    tracked["MLFLOW_TIMEOUT_S"] = "120"  # a busy machine must not turn a run into an error
    resources = build_resources(tracked)
    app_db = resources["app_db"]
    symbols = ["AAA", "BBB", "CCC"]
    assert run_symbols(instance, resources, symbols, assets=[ohlcv, indicators, charts]).success
    linked: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE signals SET mlflow_run_id"):
            linked.append(statement)

    event.listen(app_db.engine, "before_cursor_execute", on_execute)
    try:
        result = run_symbols(instance, resources, symbols, assets=[llm_signal])
    finally:
        event.remove(app_db.engine, "before_cursor_execute", on_execute)
    assert result.success
    rows = {s: app_db.latest_signal(s) for s in symbols}
    assert all(row is not None and row.mlflow_run_id for row in rows.values())
    # One UPDATE statement (executemany) for the run's three links, not one per signal.
    assert len(linked) == 1, linked


def test_a_run_waiting_on_another_runs_analyses_polls_them_in_one_query(
        instance: Any, resources: dict[str, Any], monkeypatch: Any) -> None:
    from types import SimpleNamespace

    import dagster as dg

    from tests.conftest import run_symbols
    from trading_assets.assets import signals
    from trading_assets.assets.charts import charts
    from trading_assets.assets.indicators import indicators
    from trading_assets.assets.market_data import ohlcv

    app_db, store = resources["app_db"], resources["store"]
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    assert run_symbols(instance, resources, symbols, assets=[ohlcv, indicators, charts]).success
    keys = [(s, signals.bar_info(store, s)[1]) for s in symbols]
    analyst = "|".join(resources["analyst"].identity())
    # The other run is alive (a claim of a run that ended or died would be taken over at once).
    instance.add_run(dg.DagsterRun(job_name="symbol_pipeline", run_id="other-run",
                                   status=dg.DagsterRunStatus.STARTED))
    assert app_db.claim_analyses(keys, analyst, "other-run", 900.0) == [True] * 4
    statements: list[str] = []
    at_poll: list[int] = []

    def sleep(_seconds: float) -> None:  # the other run ends its analyses at the third poll
        at_poll.append(len(statements))
        if len(at_poll) == 3:
            app_db.release_analyses(keys, analyst, "other-run")

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    monkeypatch.setattr(signals, "time", SimpleNamespace(sleep=sleep))
    event.listen(app_db.engine, "before_cursor_execute", on_execute)
    try:
        result = run_symbols(instance, resources, symbols, assets=[signals.llm_signal])
    finally:
        event.remove(app_db.engine, "before_cursor_execute", on_execute)
    assert result.success and len(at_poll) == 3
    # While the other run holds them, one query per poll for all four symbols.
    assert [b - a for a, b in zip(at_poll, at_poll[1:], strict=False)] == [1, 1]
    # Once its leases ended this run analysed them itself, as before.
    assert {app_db.latest_signal(s).dagster_run_id for s in symbols} == {result.run_id}
