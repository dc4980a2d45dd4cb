"""Orders and reviews never dead-end: every approved signal ends executed, or in a status with
its reason that a person can leave (re-approve or reject) from the CLI and the app.

Each stuck state is reproduced (a refusal after approval, a crash inside the broker call, a
killed process between claim and placement, a cancelled fill) and then recovered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.conftest import metadata_for, run_cli, run_symbols
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from trading_assets.assets.trading import orders, portfolio
from trading_assets.bench.llm_peer import OpenAIServer, Received, Reply, answer, signal_fields
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.signal import SignalStatus
from trading_assets.runs import home_config
from trading_assets.settings import build_resources

ROOT = Path(__file__).resolve().parents[1]
EXECUTION = [orders, portfolio]


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """Market orders, which fill at once: these tests follow a signal to `executed` in one run
    (the default bracket's resting entry is followed in tests/test_orders.py)."""
    return {**env, "TRADING_ORDER_TYPE": "mkt"}


@pytest.fixture
def crash_env(env: dict[str, str]) -> dict[str, str]:
    """No grace period: the second look that finds nothing declares the order not placed."""
    return {**env, "TRADING_RECONCILE_GRACE_S": "0"}


def auto_approved(instance: dg.DagsterInstance, resources: dict[str, Any]) -> Any:
    """ORCL's simulated bars give an actionable BUY; auto-approval sends it to orders."""
    resources["app_db"].upsert_settings(SymbolSettings(symbol="ORCL", auto_approve=True,
                                                       min_confidence=50))
    return resources


def cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> int:
    return run_cli(monkeypatch, env, *args)


# --- approval semantics ------------------------------------------------------------------


def test_a_person_approval_below_min_confidence_is_placed(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    assert run_symbols(instance, resources, ["ORCL"]).success
    [pending] = app_db.list_signals(symbol="ORCL")
    assert pending.status == SignalStatus.PENDING_REVIEW.value
    # min_confidence above the signal's score: it gates auto-approval, not a person.
    app_db.upsert_settings(SymbolSettings(symbol="ORCL",
                                          min_confidence=pending.confidence_score + 1))
    app_db.review_signal(pending.id, SignalStatus.APPROVED, reviewer="alice")
    result = run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)
    assert app_db.get_signal(pending.id).status == SignalStatus.EXECUTED.value
    assert metadata_for(result, "orders", "ORCL")["orders_placed"] == 1
    assert len(resources["broker"].orders("ORCL")) == 1


def test_a_refusal_after_approval_is_not_placed_with_its_reason_and_can_be_reapproved(
        instance: dg.DagsterInstance, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    resources = build_resources(env)
    app_db = resources["app_db"]
    assert run_symbols(instance, resources, ["ORCL"]).success
    [signal] = app_db.list_signals(symbol="ORCL")
    app_db.review_signal(signal.id, SignalStatus.APPROVED, reviewer="alice")
    app_db.upsert_settings(SymbolSettings(symbol="ORCL", enabled=False))  # a hard limit
    result = run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)

    refused = app_db.get_signal(signal.id)
    assert refused.status == SignalStatus.NOT_PLACED.value
    assert "ORCL is disabled" in refused.status_reason
    meta = metadata_for(result, "orders", "ORCL")
    assert (meta["orders_placed"], meta["not_placed"]) == (0, 1)
    [record] = meta["decisions"].records
    assert record.data["signal_status"] == "not_placed"
    assert "ORCL is disabled" in record.data["reason"]
    assert cli(monkeypatch, env, "signals", "list", "--symbol", "ORCL") == 0
    listed = capsys.readouterr().out
    assert "not_placed" in listed and "ORCL is disabled" in listed

    # A person re-approves once the limit no longer applies: the order is placed.
    app_db.upsert_settings(SymbolSettings(symbol="ORCL", enabled=True))
    assert cli(monkeypatch, env, "signals", "reapprove", signal.id, "--reviewer", "alice") == 0
    assert app_db.get_signal(signal.id).status == SignalStatus.APPROVED.value
    run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)
    assert app_db.get_signal(signal.id).status == SignalStatus.EXECUTED.value
    assert [o.order_ref for o in resources["broker"].orders("ORCL")] == [signal.id]


# --- crashes between the ledger claim and the broker ---------------------------------------


def test_a_crash_inside_the_broker_call_is_reconciled_to_not_placed_then_reapproved(
        instance: dg.DagsterInstance, crash_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from resources.paper_broker import PaperBroker

    resources = auto_approved(instance, build_resources(crash_env))
    app_db, broker = resources["app_db"], resources["broker"]

    def gateway_dropped(*args: object, **kwargs: object) -> None:
        raise ConnectionError("gateway dropped the connection mid-order")

    with monkeypatch.context() as patched:
        patched.setattr(PaperBroker, "place_order", gateway_dropped)
        assert not run_symbols(instance, resources, ["ORCL"], raise_on_error=False).success
    [signal] = app_db.list_signals(symbol="ORCL")
    assert app_db.order_for_signal(signal.id).status in ("unknown", "not_placed")

    # The step's retry or the next run asks the broker again: nothing there, so the attempt is
    # not placed (the failed call itself was the first look).
    assert run_symbols(instance, resources, ["ORCL"], assets=EXECUTION).success
    ledger = app_db.order_for_signal(signal.id)
    assert ledger.status == "not_placed"
    assert f"no order with orderRef {signal.id}" in ledger.error
    refused = app_db.get_signal(signal.id)
    assert refused.status == SignalStatus.NOT_PLACED.value
    assert "not placed" in refused.status_reason and broker.orders("ORCL") == []

    # Re-approved: a new claim with a new orderRef, placed exactly once.
    app_db.review_signal(signal.id, SignalStatus.APPROVED, reviewer="alice")
    assert run_symbols(instance, resources, ["ORCL"], assets=EXECUTION).success
    assert app_db.get_signal(signal.id).status == SignalStatus.EXECUTED.value
    assert [o.order_ref for o in broker.orders("ORCL")] == [f"{signal.id}-2"]
    assert sorted(o.attempt for o in app_db.list_orders("ORCL")) == [1, 2]


KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    import dagster as dg
    from resources.paper_broker import PaperBroker
    from trading_assets.definitions import SYMBOL_ASSETS
    from trading_assets.settings import build_resources

    def killed(*args, **kwargs):  # the process dies after the ledger claim, before the broker
        os.kill(os.getpid(), signal.SIGKILL)

    PaperBroker.place_order = killed
    env = json.loads(sys.argv[1])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["ORCL"])
        dg.materialize(SYMBOL_ASSETS, instance=instance, resources=build_resources(env),
                       partition_key="ORCL")
""")


def test_a_killed_process_between_claim_and_placement_is_recovered(
        instance: dg.DagsterInstance, crash_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    resources = auto_approved(instance, build_resources(crash_env))
    app_db, broker = resources["app_db"], resources["broker"]
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(crash_env)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    [signal] = app_db.list_signals(symbol="ORCL")
    assert app_db.order_for_signal(signal.id).status == "submitting"
    # The order could still exist: no one may drop the signal yet.
    with pytest.raises(ValueError, match="an order is already in the ledger"):
        app_db.review_signal(signal.id, SignalStatus.REJECTED, reviewer="bob")

    run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)  # first look: unknown
    assert app_db.order_for_signal(signal.id).status == "unknown"
    assert app_db.get_signal(signal.id).status == SignalStatus.AUTO_APPROVED.value
    run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)  # second look: not placed
    assert app_db.order_for_signal(signal.id).status == "not_placed"
    assert app_db.get_signal(signal.id).status == SignalStatus.NOT_PLACED.value

    assert cli(monkeypatch, crash_env, "signals", "reject", signal.id, "--reviewer", "bob") == 0
    assert app_db.get_signal(signal.id).status == SignalStatus.REJECTED.value
    assert broker.orders("ORCL") == []


def test_an_unknown_order_is_not_given_up_within_the_grace_period(
        instance: dg.DagsterInstance, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from resources.paper_broker import PaperBroker

    resources = auto_approved(instance, build_resources(env))  # default grace: 300 s
    app_db = resources["app_db"]
    with monkeypatch.context() as patched:
        patched.setattr(PaperBroker, "place_order", lambda *a, **k: 1 / 0)
        run_symbols(instance, resources, ["ORCL"], raise_on_error=False)
    for _ in range(2):
        run_symbols(instance, resources, ["ORCL"], assets=EXECUTION)
    [signal] = app_db.list_signals(symbol="ORCL")
    assert app_db.order_for_signal(signal.id).status == "unknown"
    assert app_db.get_signal(signal.id).status == SignalStatus.AUTO_APPROVED.value
    assert app_db.claim_order(signal.id, "ORCL", "paper", "BUY", 1, "MKT", None, None,
                              None) is None


# --- sizing and broker refusals ----------------------------------------------------------


@pytest.mark.parametrize("buffer_pct", [0.0, 0.5])
def test_a_paper_buy_sized_to_all_the_cash_fills(tmp_path: Path, buffer_pct: float) -> None:
    from datetime import date

    from resources.paper_broker import PaperBroker
    from trading_assets.core.orders import Market, OrderType
    from trading_assets.core.policy import TradingPolicy
    from trading_assets.core.pretrade import decide_order
    from trading_assets.core.signal import Action, ConfidenceLevel, TradingSignal, Trend

    broker = PaperBroker(paper_database_url=f"sqlite:///{tmp_path / 'paper.db'}",
                         starting_cash=10_000.0)
    signal = TradingSignal(symbol="TSLA", action=Action.BUY, confidence_level=ConfidenceLevel.HIGH,
                           confidence_score=85, reasoning="r", trend=Trend.UP, entry_price=100.0,
                           stop_loss=95.0, take_profit=110.0, position_size_pct=100.0)
    settings = SymbolSettings(symbol="TSLA", position_size_pct=100.0, max_exposure_pct=200.0)
    market = Market("TSLA", last_close=100.0, bar_date=date(2026, 11, 20))
    decision = decide_order(signal_id="s1", signal=signal, status=SignalStatus.APPROVED,
                            settings=settings, market=market, book=broker.book(),
                            order_type=OrderType.MARKET, costs=broker.costs(),
                            policy=TradingPolicy(cash_buffer_pct=buffer_pct))
    assert decision.request is not None and decision.request.quantity == 99
    order = broker.place_order(decision.request, market)
    assert order.status == "Filled", order.reason
    cash = broker.account().cash
    assert 0 <= cash and cash >= 10_000.0 * buffer_pct / 100 - 0.01


def test_a_cancelled_order_is_order_failed_with_the_brokers_reason(
        resources: dict[str, Any]) -> None:
    from datetime import date

    from resources.paper_broker import PaperBroker
    from tests.test_assets import approved_signal
    from trading_assets.core.orders import Market, OrderRequest, OrderType
    from trading_assets.core.signal import Action

    app_db = resources["app_db"]
    broker = PaperBroker(paper_database_url=resources["broker"].paper_database_url,
                         starting_cash=1_000.0)
    row = approved_signal(app_db)
    claimed = app_db.claim_order(row.id, "TSLA", "paper", "BUY", 20, "MKT", None, None, None)
    order = broker.place_order(OrderRequest(symbol="TSLA", action=Action.BUY, quantity=20,
                                            order_type=OrderType.MARKET,
                                            order_ref=claimed.order_ref),
                                Market("TSLA", last_close=100.0, bar_date=date(2026, 11, 20)))
    assert order.status == "Cancelled"
    app_db.update_order(row.id, order)
    failed = app_db.get_signal(row.id)
    assert failed.status == SignalStatus.ORDER_FAILED.value
    assert "Cancelled" in failed.status_reason and "insufficient cash" in failed.status_reason
    # A cancelled order cannot fill: the signal may be re-approved as a new attempt.
    app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")
    again = app_db.claim_order(row.id, "TSLA", "paper", "BUY", 5, "MKT", None, None, None)
    assert again is not None and again.order_ref == f"{row.id}-2"


# --- one analysis per symbol, bar and analyst ------------------------------------------


SYMBOLS = ["AAPL", "ORCL", "NVDA", "AMZN"]


def model_answer(received: Received) -> Reply:
    """A valid BUY for whichever symbol the prompt is about, slow enough for runs to overlap."""
    symbol = next(s for s in SYMBOLS if s in received.text)
    return answer(signal_fields(symbol), delay_s=5.0)


CONCURRENT_RUN = textwrap.dedent("""
    import json, sys
    import dagster as dg
    from trading_assets.definitions import SYMBOL_ASSETS, SYMBOL_CHECKS
    from trading_assets.settings import build_resources

    env, symbols, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = dg.materialize(
            [*SYMBOL_ASSETS, *SYMBOL_CHECKS], instance=instance, resources=build_resources(env),
            raise_on_error=False, tags={"dagster/asset_partition_range_start": symbols[0],
                                        "dagster/asset_partition_range_end": symbols[-1]})
        reused = {}
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            if materialization.asset_key.to_user_string() == "llm_signal":
                value = materialization.metadata["reused_existing_signal"]
                reused[materialization.partition] = bool(getattr(value, "value", value))
    with open(out, "w") as handle:
        json.dump({"success": result.success, "reused": reused}, handle)
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_concurrent_runs_call_the_model_once_per_symbol(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        app_url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        app_url = server.create_database(f"claims_{tmp_path.name[-12:]}").render_as_string(
            hide_password=False)
    # One Dagster instance, as every deployment has: a claim belongs to a run that instance
    # knows (a holder it has never heard of is taken over at once).
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(home_config(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("symbols", SYMBOLS)
    with OpenAIServer() as model:
        model.responder = model_answer
        runs = [subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, json.dumps({
                "DAGSTER_HOME": str(home),
                "TRADING_DATA_DIR": str(tmp_path / f"run{i}"), "APP_DATABASE_URL": app_url,
                "TRADING_SIMULATED_AS_OF": "2026-11-20", "MLFLOW_TRACKING_URI": "off",
                "LLM_PROVIDER": "openai", "LLM_BASE_URL": model.base_url,
                "LLM_API_KEY": "sk-test", "LLM_MODEL": "gpt-4o-mini"}),
             json.dumps(SYMBOLS), str(tmp_path / f"run{i}.json")], cwd=ROOT)
            for i in range(2)]
        assert [run.wait(timeout=600) for run in runs] == [0, 0]
    results = [json.loads((tmp_path / f"run{i}.json").read_text()) for i in range(2)]
    assert all(r["success"] for r in results)
    called = sorted(next(s for s in SYMBOLS if s in r.text) for r in model.requests)
    assert called == sorted(SYMBOLS)  # one model call per symbol over both runs
    app_db = build_resources({"APP_DATABASE_URL": app_url,
                              "TRADING_DATA_DIR": str(tmp_path / "run0")})["app_db"]
    for symbol in SYMBOLS:
        assert len(app_db.list_signals(symbol=symbol)) == 1
    reused = [r["reused"][s] for r in results for s in SYMBOLS]
    assert reused.count(True) == len(SYMBOLS)  # the other run reused each result


# --- the transition table is the one source --------------------------------------------------

def test_retryable_statuses_are_the_tables_reapproval_cycles() -> None:
    from trading_assets.core.lifecycle import (
        RETRYABLE_STATUSES,
        TRANSITIONS,
        Transition,
        retryable_statuses,
    )

    assert RETRYABLE_STATUSES == {SignalStatus.NOT_PLACED, SignalStatus.ORDER_FAILED}
    # A new re-approval row in the table makes its status retryable without any other edit.
    reapprove_expired = (*TRANSITIONS, Transition(SignalStatus.EXPIRED, SignalStatus.APPROVED,
                                                  "person", "re-approve"))
    assert SignalStatus.EXPIRED in retryable_statuses(reapprove_expired)
    # pending_review -> approved is a first approval, not a retry.
    assert SignalStatus.PENDING_REVIEW not in RETRYABLE_STATUSES


def test_the_readme_draws_the_one_transition_table() -> None:
    from trading_assets.core.lifecycle import mermaid_diagram

    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert any(mermaid_diagram() in path.read_text() for path in docs if path.exists()), \
        "docs/lifecycle.md's diagram differs from core/lifecycle.py (mermaid_diagram())"


def test_every_status_a_signal_can_reach_has_a_way_out_or_is_final() -> None:
    from trading_assets.core.lifecycle import ENTRY_STATUSES, FINAL_STATUSES, TRANSITIONS

    reachable = {s for s, _ in ENTRY_STATUSES} | {t.target for t in TRANSITIONS}
    leaves = {t.source for t in TRANSITIONS}
    # error is replaced by the next analysis of its bar; the rest are final or have an exit.
    stuck = reachable - leaves - set(FINAL_STATUSES) - {SignalStatus.ERROR}
    assert not stuck, f"statuses nobody can leave: {sorted(stuck)}"
    # Every status the system parks a signal in with a reason, a person can act on.
    person_exits = {t.source for t in TRANSITIONS if t.actor == "person"}
    assert {SignalStatus.NOT_PLACED, SignalStatus.ORDER_FAILED,
            SignalStatus.PENDING_REVIEW} <= person_exits
