"""The asset graph on embedded defaults, materialized on a test instance."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from resources.llm import RulesAnalyst
from tests.conftest import ALL_ASSETS, metadata_for, run_symbols
from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.checks import ohlcv_sanity
from trading_assets.core.bars import simulate_bars
from trading_assets.core.keys import bars_key, chart_key, indicators_key
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest, SignalStatus
from trading_assets.core.symbols import InvalidSymbolError
from trading_assets.partitions import add_symbols


def test_definitions_load_with_no_environment_at_all(tmp_path: Path) -> None:
    code = ("from trading_assets.definitions import defs; "
            "print(len(defs.resolve_asset_graph().get_all_asset_keys()))")
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().splitlines()[-1]) >= 6


def test_each_asset_materializes_on_its_own(instance: dg.DagsterInstance,
                                            resources: dict[str, Any]) -> None:
    add_symbols(instance, ["TSLA"])
    for asset in (ohlcv, indicators, charts):
        result = dg.materialize([asset], instance=instance, resources=resources,
                                partition_key="TSLA")
        assert result.success
    store = resources["store"]
    bars = store.read_bars("TSLA")
    assert len(bars) == 400
    daily = store.read_frame(indicators_key("TSLA", "daily"))
    assert daily["sma_200"].iloc[:199].isna().all()
    png = store.get_bytes(chart_key("TSLA", "daily", bars["date"].iloc[-1].date()))
    assert png.startswith(b"\x89PNG")


def test_whole_graph_for_two_symbols(instance: dg.DagsterInstance,
                                     resources: dict[str, Any]) -> None:
    result = run_symbols(instance, resources, ["TSLA", "NVDA"])
    assert result.success
    for symbol in ("TSLA", "NVDA"):
        bars_meta = metadata_for(result, "ohlcv", symbol)
        assert bars_meta["source"] == "SIMULATED (not market data)"
        assert bars_meta["rows"] == 400
        assert metadata_for(result, "indicators", symbol)["latest"].records
        assert "data:image/png;base64," in metadata_for(result, "charts", symbol)["preview"]
        signal_meta = metadata_for(result, "llm_signal", symbol)
        assert signal_meta["provider"] == "rules"
        # Only a signal a person could act on waits for one (nothing is held: a SELL is no
        # order either).
        actionable = signal_meta["action"] == "BUY" and signal_meta["confidence"] >= 50
        assert signal_meta["status"] == ("pending_review" if actionable else "no_action")
        assert "SIMULATED DATA" in signal_meta["reasoning"]
        assert "no approved signal" in metadata_for(result, "orders", symbol)["summary"]
        assert metadata_for(result, "portfolio", symbol)["account_cash"] == 100_000.0
    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    # One run covered both symbols.
    assert len(instance.get_run_records()) == 1


def test_auto_approved_signal_places_exactly_one_order_across_reruns(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    app_db, broker = resources["app_db"], resources["broker"]
    # ORCL's simulated bars give an actionable BUY (73).
    app_db.upsert_settings(SymbolSettings(symbol="ORCL", auto_approve=True, min_confidence=50))
    for _ in range(2):
        assert run_symbols(instance, resources, ["ORCL"]).success
    signals = app_db.list_signals(symbol="ORCL")
    assert len(signals) == 1
    # The default bracket's limit entry rests at the signal's entry until a later bar reaches
    # it: the signal is working, not executed, and nothing is held or spent yet.
    assert signals[0].status == SignalStatus.WORKING.value
    assert len(app_db.list_orders("ORCL")) == 1
    [order] = broker.orders("ORCL")
    assert order.status == "Submitted" and [e.status for e in order.exits] == ["PreSubmitted"] * 2
    assert broker.position("ORCL") is None
    assert broker.account().cash == 100_000.0


def test_crash_between_placement_and_ledger_update_is_reconciled(
        instance: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    app_db, broker = resources["app_db"], resources["broker"]
    app_db.upsert_settings(SymbolSettings(symbol="ORCL", auto_approve=True, min_confidence=50))

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("process died after the broker accepted the order")

    monkeypatch.setattr(type(app_db), "update_order", crash)
    result = run_symbols(instance, resources, ["ORCL"], raise_on_error=False)
    assert not result.success
    assert "process died" in resources["app_db"].failed_symbols(result.run_id)["ORCL"]
    monkeypatch.undo()
    assert app_db.list_orders("ORCL")[0].status == "submitting"
    assert run_symbols(instance, resources, ["ORCL"]).success
    assert len(broker.orders("ORCL")) == 1
    ledger = app_db.list_orders("ORCL")
    assert len(ledger) == 1 and ledger[0].status == "Submitted"  # the bracket's entry rests


def test_second_run_reuses_the_signal_for_the_same_bar_date(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    run_symbols(instance, resources, ["TSLA"])
    second = run_symbols(instance, resources, ["TSLA"])
    assert metadata_for(second, "llm_signal", "TSLA")["reused_existing_signal"] is True
    assert len(resources["app_db"].list_signals(symbol="TSLA")) == 1


class FailingAnalyst(RulesAnalyst):
    """An analyst whose every answer is an error: the signal must be `error`, never HOLD."""

    def analyze_many(self, requests: list[AnalysisRequest], budget: Any = None,
                     exchanges: Any = None) -> list[AnalysisOutcome]:
        return [AnalysisOutcome(symbol=r.symbol, provider="rules", model="rules-v1",
                                prompt_version="rules-v1", error="model answered nonsense")
                for r in requests]


def test_an_analyst_error_is_stored_as_error_not_hold(instance: dg.DagsterInstance,
                                                      resources: dict[str, Any]) -> None:
    resources = {**resources, "analyst": FailingAnalyst()}
    result = run_symbols(instance, resources, ["TSLA", "NVDA"], raise_on_error=False)
    assert not result.success  # the run ends by naming what failed
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "llm_signal failed for every symbol" in str(failures[0].event_specific_data.error)
    for symbol in ("TSLA", "NVDA"):
        [row] = resources["app_db"].list_signals(symbol=symbol)
        assert row.status == "error" and row.action is None
        assert row.error == "model answered nonsense"
    assert resources["app_db"].list_orders() == []


def test_one_bad_csv_symbol_does_not_sink_the_others(
        instance: dg.DagsterInstance, env: dict[str, str], tmp_path: Path) -> None:
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    bars = simulate_bars("GOOD", pd.Timestamp("2026-11-20").date())
    bars.rename(columns=str.title).to_csv(csv_dir / "GOOD.csv", index=False)
    (csv_dir / "BAD.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,x,1,5\n")
    from trading_assets.settings import build_resources

    resources = build_resources({**env, "TRADING_DATA_SOURCE": "csv",
                                 "TRADING_CSV_DIR": str(csv_dir)})
    result = run_symbols(instance, resources, ["GOOD", "BAD"], raise_on_error=False)
    bad = metadata_for(result, "ohlcv", "BAD")
    assert bad["status"] == "failed"
    assert "BAD.csv row 2" in bad["error"] and "Low" in bad["error"]
    assert metadata_for(result, "ohlcv", "GOOD")["source"] == "csv"
    assert len(resources["app_db"].list_signals(symbol="GOOD")) == 1
    assert metadata_for(result, "llm_signal", "BAD")["status"] == "skipped"
    assert resources["app_db"].list_signals(symbol="BAD") == []
    assert resources["app_db"].run_statuses()["BAD"][0] == "failed in ohlcv"
    assert resources["app_db"].failed_symbols(result.run_id)["BAD"].startswith("ohlcv:")


def _scale_prices(frame: pd.DataFrame, row: int) -> None:
    frame.loc[row, ["open", "high", "low", "close"]] *= 1e300


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f, r: f.__setitem__("high", f["high"].where(f.index != r, f["low"] / 2)),
     "High .* is below Open/Close"),
    (_scale_prices, r"column \"Open\" is '.*e\+302', above the ceiling"),
    (lambda f, r: f.__setitem__("volume", f["volume"].where(f.index != r, -5.0)),
     r"column \"Volume\" is '-5.0', below 0"),
    (lambda f, r: f.__setitem__("volume", f["volume"].where(f.index != r, 1e300)),
     r"column \"Volume\" is '1e\+300', above the ceiling"),
    (lambda f, r: f.__setitem__("date", f["date"].where(f.index != r,
                                                       pd.Timestamp("2099-01-02"))),
     "date 2099-01-02 is after the current XNYS session"),
])
def test_bad_bars_from_the_source_keep_the_last_good_copy(
        instance: dg.DagsterInstance, env: dict[str, str], tmp_path: Path, damage: Any,
        message: str) -> None:
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    good = simulate_bars("ACME", pd.Timestamp("2026-11-20").date())
    good.rename(columns=str.title).to_csv(csv_dir / "ACME.csv", index=False)
    from trading_assets.settings import build_resources

    resources = build_resources({**env, "TRADING_DATA_SOURCE": "csv",
                                 "TRADING_CSV_DIR": str(csv_dir)})
    assert run_symbols(instance, resources, ["ACME"], assets=[ohlcv]).success
    broken = good.copy()
    damage(broken, len(broken) - 1)
    broken.rename(columns=str.title).to_csv(csv_dir / "ACME.csv", index=False)
    result = run_symbols(instance, resources, ["ACME"], assets=[ohlcv], raise_on_error=False)
    assert not result.success
    error = resources["app_db"].failed_symbols(result.run_id)["ACME"]
    # The file and the row as a spreadsheet shows it (row 1 is the header).
    assert f"{csv_dir / 'ACME.csv'} row {len(good) + 1}: " in error
    assert re.search(message, error), error
    stored = resources["store"].read_bars("ACME")
    pd.testing.assert_frame_equal(stored, good)


def test_corrupted_stored_bars_fail_the_blocking_check_and_stop_downstream(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    assert run_symbols(instance, resources, ["TSLA"], assets=[ohlcv]).success
    store = resources["store"]
    bars = store.read_bars("TSLA")
    bars.loc[5, "close"] = float("nan")
    store.write_frame(str(store.bars_key("TSLA")), bars)
    result = dg.materialize(
        [ohlcv, ohlcv_sanity, indicators], instance=instance, resources=resources,
        partition_key="TSLA", raise_on_error=False,
        selection=dg.AssetSelection.assets(indicators) | dg.AssetSelection.checks(ohlcv_sanity),
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "TSLA" in evaluation.metadata["failing_symbols"].value
    assert "missing values" in evaluation.metadata["failing_symbols"].value["TSLA"]
    assert not any(e.materialization.asset_key == indicators.key
                   for e in result.get_asset_materialization_events())


@pytest.mark.parametrize("bad", ["", "aa pl", "A/B", "../X", "A,B", "TOO-LONG-SYMBOL"])
def test_bad_symbols_are_rejected_at_every_entry(instance: dg.DagsterInstance,
                                                 resources: dict[str, Any], bad: str) -> None:
    with pytest.raises(InvalidSymbolError):
        add_symbols(instance, [bad])
    with pytest.raises(InvalidSymbolError):
        resources["app_db"].ensure_symbol(bad)
    with pytest.raises(InvalidSymbolError):
        resources["market_data"].fetch(bad)
    with pytest.raises(InvalidSymbolError):
        bars_key(bad)
    assert instance.get_dynamic_partitions("symbols") == []


def test_all_assets_share_the_symbols_partitions() -> None:
    for asset in ALL_ASSETS:
        if isinstance(asset, dg.AssetsDefinition):
            assert asset.partitions_def is not None
            assert asset.partitions_def.name == "symbols"  # type: ignore[attr-defined]


def test_a_stale_approval_is_expired_not_executed(instance: dg.DagsterInstance,
                                                  env: dict[str, str]) -> None:
    from trading_assets.settings import build_resources

    resources = build_resources(env)
    assert run_symbols(instance, resources, ["ORCL"]).success  # an actionable BUY
    [pending] = resources["app_db"].list_signals(symbol="ORCL")
    resources["app_db"].review_signal(pending.id, SignalStatus.APPROVED, reviewer="alice")
    # Three sessions later the reviewer's approval no longer covers the prices.
    later = build_resources({**env, "TRADING_SIMULATED_AS_OF": "2026-11-25"})
    result = run_symbols(instance, later, ["ORCL"])
    assert later["app_db"].get_signal(pending.id).status == SignalStatus.EXPIRED.value
    assert later["app_db"].list_orders("ORCL") == []
    reasons = [d.reason for d in later["app_db"].decisions_for("ORCL")]
    assert any("approval expired" in r and "3 trading days old" in r for r in reasons)
    assert metadata_for(result, "orders", "ORCL")["orders_placed"] == 0


def test_stale_reason_rules() -> None:
    from datetime import date

    from trading_assets.core.policy import TradingPolicy

    policy = TradingPolicy(approval_max_age_days=1, approval_max_move_pct=3.0)
    fresh = dict(bar_date=date(2026, 11, 20), as_of=date(2026, 11, 23), reference_close=100.0,
                 latest_close=102.0)
    assert policy.stale_reason(**fresh) == ""
    assert "2 trading days old" in policy.stale_reason(**{**fresh, "as_of": date(2026, 11, 24)})
    assert "moved 5.0%" in policy.stale_reason(**{**fresh, "latest_close": 105.0})


def test_the_analyst_is_shown_the_stored_bars_as_the_last_bars(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    # llm_signal takes the last bars from the daily indicator frame, not a second bars read.
    from trading_assets.assets.signals import bar_info, build_request
    from trading_assets.core.bars import last_bars_records

    assert run_symbols(instance, resources, ["TSLA"]).success
    store = resources["store"]
    info, bar_date = bar_info(store, "TSLA")
    request = build_request(store, None, "TSLA", bar_date, info)
    expected = last_bars_records(store.read_bars("TSLA"))
    assert len(expected) == 50 and request.last_bars == expected
    [row] = resources["app_db"].list_signals(symbol="TSLA")
    assert row.last_bars == expected


def test_signals_read_the_broker_positions_once_per_run(
        instance: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from trading_assets.assets.signals import llm_signal

    broker = resources["broker"]
    calls: list[int] = []
    read = type(broker).positions

    def positions(self: Any) -> list[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("gateway down")
        return read(self)

    symbols = ["AAA", "BBB", "CCC"]
    assert run_symbols(instance, resources, symbols, assets=[ohlcv, indicators, charts]).success
    monkeypatch.setattr(type(broker), "positions", positions)
    result = run_symbols(instance, resources, symbols, assets=[llm_signal],
                         raise_on_error=False)
    # The outage fails the symbol that met it, as a per-symbol read did; the next symbol reads
    # again and that one read serves the rest of the run.
    assert len(calls) == 2
    assert "gateway down" in metadata_for(result, "llm_signal", "AAA")["error"]
    assert all(metadata_for(result, "llm_signal", s)["signal_id"] for s in ("BBB", "CCC"))


@pytest.mark.parametrize("order_type", ["MKT", "LMT", "BRACKET"])
def test_limit_and_bracket_orders_enter_at_the_signal_entry(order_type: str) -> None:
    from datetime import date

    from trading_assets.core.analyst import rules_signal
    from trading_assets.core.orders import AccountSnapshot, Book, Market, OrderType
    from trading_assets.core.pretrade import decide_order
    from trading_assets.core.replay import build_replay_request

    bars = simulate_bars("ORCL", pd.Timestamp("2026-11-20").date())
    request = build_replay_request("ORCL", bars, bars["date"].iloc[-1].date(),
                                   data_source="simulated", simulated=True, with_charts=False)
    signal = rules_signal(request)
    assert signal.entry_price is not None
    decision = decide_order(
        signal_id="s1", signal=signal, status=SignalStatus.APPROVED,
        settings=SymbolSettings(symbol="ORCL", min_confidence=0),
        market=Market("ORCL", last_close=signal.entry_price + 1.0, bar_date=date(2026, 11, 20)),
        book=Book(AccountSnapshot(account="paper", cash=100_000.0, equity=100_000.0,
                                  buying_power=100_000.0), {}),
        allow_short=False, order_type=OrderType(order_type))
    assert decision.request is not None
    expected = None if order_type == "MKT" else round(signal.entry_price, 2)
    assert decision.request.limit_price == expected
    bracket = order_type == "BRACKET"
    assert (decision.request.stop_loss is not None) is bracket
    assert (decision.request.take_profit is not None) is bracket


# ------------------------------------------------- reviews and order claims on one signal


def approved_signal(app_db: Any, symbol: str = "TSLA") -> Any:
    """A stored live BUY signal, approved by a reviewer: what an orders run would pick up."""
    from datetime import date

    from trading_assets.core.signal import TradingSignal

    signal = TradingSignal(symbol=symbol, action="BUY", confidence_level="MEDIUM",
                           confidence_score=70, reasoning="Trend and momentum agree.",
                           key_factors=["SMA 50 above SMA 200"], trend="UP", entry_price=100.0,
                           stop_loss=95.0, take_profit=110.0)
    outcome = AnalysisOutcome(symbol=symbol, signal=signal, provider="rules", model="rules-v1",
                              prompt_version="signal_v1")
    row = app_db.record_signal(outcome=outcome, bar_date=date(2026, 11, 20),
                               status=SignalStatus.PENDING_REVIEW, data_source="simulated",
                               simulated=True, last_bars=[], indicators={}, chart_keys={})
    return app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")


def actor_of(decision: SignalStatus) -> str:
    """Only the system expires an approval (core/lifecycle.py); a person rejects."""
    return "system" if decision is SignalStatus.EXPIRED else "person"


def claim(app_db: Any, signal_id: str) -> Any:
    return app_db.claim_order(signal_id, "TSLA", "paper", "BUY", 10, "MKT", None, 95.0, 110.0)


@pytest.mark.parametrize("decision", [SignalStatus.REJECTED, SignalStatus.EXPIRED])
def test_a_signal_rejected_after_approval_cannot_be_claimed(resources: dict[str, Any],
                                                            decision: SignalStatus) -> None:
    app_db = resources["app_db"]
    row = approved_signal(app_db)
    app_db.review_signal(row.id, decision, reviewer="bob", note="changed my mind",
                         actor=actor_of(decision))
    assert claim(app_db, row.id) is None
    assert app_db.order_for_signal(row.id) is None
    assert app_db.get_signal(row.id).status == decision.value
    assert app_db.executable_signals("TSLA") == []


def test_a_pending_signal_cannot_be_claimed(resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    row = approved_signal(app_db)
    with app_db.session() as session:  # as if it had never been approved
        session.get(type(row), row.id).status = SignalStatus.PENDING_REVIEW.value
    assert claim(app_db, row.id) is None
    assert app_db.order_for_signal(row.id) is None


@pytest.mark.parametrize("decision", [SignalStatus.REJECTED, SignalStatus.EXPIRED])
def test_a_claimed_signal_can_no_longer_be_rejected(resources: dict[str, Any],
                                                    decision: SignalStatus) -> None:
    app_db = resources["app_db"]
    row = approved_signal(app_db)
    assert claim(app_db, row.id) is not None
    with pytest.raises(ValueError, match="an order is already in the ledger for this signal"):
        app_db.review_signal(row.id, decision, reviewer="bob", actor=actor_of(decision))
    assert app_db.get_signal(row.id).status == SignalStatus.APPROVED.value
    assert [r.decision for r in app_db.reviews_for(row.id)] == ["approved"]
    assert claim(app_db, row.id) is None  # and still one order per signal


def test_an_order_update_never_turns_a_rejected_signal_into_executed(
        resources: dict[str, Any]) -> None:
    from resources.app_db import SignalRow
    from trading_assets.core.orders import BrokerOrder

    app_db = resources["app_db"]
    row = approved_signal(app_db)
    assert claim(app_db, row.id) is not None
    with app_db.session() as session:  # a status written by an older version, or by hand
        session.get(SignalRow, row.id).status = SignalStatus.REJECTED.value
    filled = BrokerOrder(order_ref=row.id, symbol="TSLA", action="BUY", quantity=10,
                         order_type="MKT", status="Filled", filled=10, avg_fill_price=100.0)
    app_db.update_order(row.id, filled)
    assert app_db.get_signal(row.id).status == SignalStatus.REJECTED.value
    assert app_db.order_for_signal(row.id).status == "Filled"  # the ledger still records it
    # An approved signal does become executed.
    other = approved_signal(app_db, "NVDA")
    app_db.claim_order(other.id, "NVDA", "paper", "BUY", 10, "MKT", None, None, None)
    app_db.update_order(other.id, filled)
    assert app_db.get_signal(other.id).status == SignalStatus.EXECUTED.value


def test_an_orders_run_does_not_place_a_signal_rejected_after_it_was_listed(
        resources: dict[str, Any]) -> None:
    from trading_assets.assets.trading import execute_signal
    from trading_assets.core.keys import bars_info_key

    app_db, broker, store = resources["app_db"], resources["broker"], resources["store"]
    store.write_json(bars_info_key("TSLA"), {"last_date": "2026-11-20", "last_close": 100.0})
    approved_signal(app_db)
    [listed] = app_db.executable_signals("TSLA")
    app_db.review_signal(listed.id, SignalStatus.REJECTED, reviewer="bob")
    decision = execute_signal(broker, app_db, resources["policy"], listed, store, "run-1",
                              app_db.settings_for("TSLA"))
    assert not decision.place
    assert broker.orders("TSLA") == [] and app_db.list_orders("TSLA") == []
    assert app_db.get_signal(listed.id).status == SignalStatus.REJECTED.value
    [recorded] = app_db.decisions_for("TSLA")
    assert not recorded.placed
    assert recorded.reason == f"not placed: signal {listed.id} is no longer approved (now rejected)"


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("note", "x" * 2001, "The note is 2001 characters long; keep it under 2000"),
    ("reviewer", "r" * 65, "The reviewer name is 65 characters long"),
])
def test_a_review_refuses_an_over_long_note_or_reviewer(resources: dict[str, Any], field: str,
                                                        value: str, reason: str) -> None:
    app_db = resources["app_db"]
    row = approved_signal(app_db)
    review = {"reviewer": "bob", "note": "", field: value}
    with pytest.raises(ValueError, match=reason):
        app_db.review_signal(row.id, SignalStatus.REJECTED, **review)
    assert app_db.get_signal(row.id).status == SignalStatus.APPROVED.value
    assert len(app_db.reviews_for(row.id)) == 1
    app_db.review_signal(row.id, SignalStatus.REJECTED, reviewer="r" * 64, note="x" * 2000)
    assert app_db.get_signal(row.id).status == SignalStatus.REJECTED.value


def test_a_symbols_metadata_is_recorded_without_asking_the_instance_again(
        instance: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Dagster's add_asset_metadata reads the instance's partitions on every call (8-20 ms each
    # on SQLite, a minute over 500 symbols x 6 assets). SymbolLoop.record checks against the
    # run's keys, read once, through the step's own metadata (a private Dagster attribute: if a
    # Dagster release drops it, this test says so before a 500-symbol run gets slow).
    from trading_assets.assets.symbol_loop import SymbolLoop
    from trading_assets.partitions import symbols_partitions

    symbols = ["AAA", "BBB", "CCC", "DDD"]
    instance.add_dynamic_partitions("symbols", symbols)
    lookups: list[str] = []
    storage = type(instance)
    for name in ("get_dynamic_partitions", "has_dynamic_partition"):
        real = getattr(storage, name)
        monkeypatch.setattr(storage, name, lambda self, *a, _real=real, _name=name, **k:
                            lookups.append(_name) or _real(self, *a, **k))
    during: list[int] = []

    @dg.asset(partitions_def=symbols_partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def probe(context: dg.AssetExecutionContext) -> None:
        loop = SymbolLoop(context, resources["app_db"])
        before = len(lookups)
        for symbol in loop:
            loop.record(symbol, {"seen": symbol})
        during.append(len(lookups) - before)

    result = dg.materialize([probe], instance=instance, tags={
        "dagster/asset_partition_range_start": "AAA", "dagster/asset_partition_range_end": "DDD"})
    assert result.success
    assert {symbol: metadata_for(result, "probe", symbol)["seen"] for symbol in symbols} == \
        {symbol: symbol for symbol in symbols}
    # The loop's own read of the run's keys, not one per symbol.
    assert during[0] <= 3, lookups
