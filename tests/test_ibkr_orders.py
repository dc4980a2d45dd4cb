"""What an order really carries to IBKR, read off the TWS peer's wire: the pre-trade checks
keep absurd levels off it, a bracket goes as three orders in one OCA group with the signal id
in each orderRef, exactly once, and its entry expires or fills as the gateway reports.

The real ib_async client against the loopback peer (tests/peers/tws_peer.py); market data from
the peer too, so the stored close, the live quote and the fills agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg
import pytest

from resources.ibkr import IBKRResource, disconnect_all, reset_pacing
from tests.conftest import run_symbols
from tests.peers.tws_peer import TwsPeer
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.trading import orders, portfolio
from trading_assets.core.keys import bars_info_key
from trading_assets.core.orders import OrderRequest, OrderType, SymbolSettings
from trading_assets.core.signal import (
    Action,
    AnalysisOutcome,
    ConfidenceLevel,
    SignalStatus,
    TradingSignal,
    Trend,
)
from trading_assets.settings import build_resources

DAY = date(2026, 11, 20)
EXECUTION = [orders, portfolio]
_CLIENT_IDS = itertools.count(300)


@pytest.fixture
def peer() -> Iterator[TwsPeer]:
    reset_pacing()
    with TwsPeer(as_of=DAY) as running:
        yield running
        disconnect_all()


@pytest.fixture
def ibkr(env: dict[str, str], peer: TwsPeer, instance: dg.DagsterInstance) -> dict[str, Any]:
    """Resources on the peer (bars and broker), AAPL's bars stored up to 2026-11-20."""
    resources = build_resources({
        **env, "TRADING_DATA_SOURCE": "ibkr", "TRADING_BROKER": "ibkr",
        "IBKR_PORT": str(peer.port), "IBKR_CLIENT_ID": str(next(_CLIENT_IDS)),
        "IBKR_CONNECT_TIMEOUT": "3", "IBKR_REQUEST_TIMEOUT": "5", "IBKR_ORDER_TIMEOUT": "2",
    })
    assert run_symbols(instance, resources, ["AAPL"], assets=[ohlcv]).success
    return resources


def close_of(resources: dict[str, Any]) -> float:
    return float(resources["store"].read_json(bars_info_key("AAPL"))["last_close"])


def approved(resources: dict[str, Any], entry: float, stop: float, target: float,
             prompt: str = "test") -> Any:
    """An approved BUY of AAPL with these levels, exactly as a model could have sent them."""
    signal = TradingSignal.model_construct(
        symbol="AAPL", action=Action.BUY, confidence_level=ConfidenceLevel.HIGH,
        confidence_score=85, reasoning="r", key_factors=["k"], trend=Trend.UP, support=None,
        resistance=None, entry_price=entry, stop_loss=stop, take_profit=target,
        r_multiple=None, position_size_pct=5.0, timeframe="daily+weekly", provider="test",
        model="m", prompt_version=prompt, bar_date=DAY)
    app_db = resources["app_db"]
    row = app_db.record_signal(
        outcome=AnalysisOutcome(symbol="AAPL", signal=signal, provider="test", model="m",
                                prompt_version=prompt),
        bar_date=DAY, status=SignalStatus.PENDING_REVIEW, data_source="ibkr", simulated=False,
        last_bars=[{"date": str(DAY), "close": close_of(resources)}], indicators={},
        chart_keys={})
    return app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")


@pytest.mark.parametrize(("scale", "reason"), [
    ({"entry": 1000.0, "stop": 999.0, "target": 1001.0}, "% from the last close"),
    ({"stop_abs": 0.004}, "the stop 0.004 is 100.0% from the entry"),
    ({"target_abs": 9_999_999.0}, "the target 1e+07 is"),
])
def test_absurd_levels_never_reach_the_wire(ibkr: dict[str, Any], peer: TwsPeer,
                                            instance: dg.DagsterInstance,
                                            scale: dict[str, float], reason: str) -> None:
    close = close_of(ibkr)
    entry = round(close * scale.get("entry", 1.0), 2)
    stop = scale.get("stop_abs", round(close * scale.get("stop", 0.95), 2))
    target = scale.get("target_abs", round(close * scale.get("target", 1.1), 2))
    row = approved(ibkr, entry, stop, target)
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    refused = ibkr["app_db"].get_signal(row.id)
    assert refused.status == SignalStatus.NOT_PLACED.value and reason in refused.status_reason
    assert peer.wire == [] and peer.place_order_count == 0
    assert ibkr["app_db"].list_orders("AAPL") == []


def test_a_request_the_checks_never_made_is_still_refused_before_the_wire(
        peer: TwsPeer) -> None:
    ibkr = IBKRResource(port=peer.port, client_id=next(_CLIENT_IDS), connect_timeout=3.0,
                        request_timeout=3.0, order_timeout=1.0)
    request = OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1,
                           order_type=OrderType.BRACKET, order_ref="raw-1", limit_price=100.0,
                           stop_loss=0.004, take_profit=110.0)
    with pytest.raises(ValueError, match="stop_loss 0.004 is not a positive finite price on "
                                         "the 0.01 tick grid"):
        ibkr.place_order(request)
    assert peer.wire == []


def test_a_bracket_goes_as_one_oca_group_with_the_signal_id_in_each_order_ref_once(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    close = close_of(ibkr)
    row = approved(ibkr, close - 0.004, round(close * 0.95, 3), round(close * 1.1, 3))
    for _ in range(2):  # the second run finds the order by its orderRef: nothing re-sent
        assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    wire = peer.wire_orders(row.id)
    assert [w["orderRef"] for w in wire] == [row.id, f"{row.id}:tp", f"{row.id}:sl"]
    parent, take_profit, stop_loss = wire
    assert (parent["action"], parent["orderType"], parent["tif"], parent["transmit"]) == \
        ("BUY", "LMT", "DAY", "0")
    assert float(parent["lmtPrice"]) == round(close, 2)  # on the 0.01 grid
    assert (take_profit["orderType"], take_profit["tif"], take_profit["action"]) == \
        ("LMT", "GTC", "SELL")
    assert float(take_profit["lmtPrice"]) == round(close * 1.1, 2)
    assert (stop_loss["orderType"], stop_loss["tif"], stop_loss["transmit"]) == ("STP", "GTC",
                                                                                 "1")
    assert float(stop_loss["auxPrice"]) == round(close * 0.95, 2) > 0
    assert take_profit["ocaGroup"] == stop_loss["ocaGroup"] == row.id
    assert take_profit["parentId"] == stop_loss["parentId"] == parent["orderId"]
    signal = ibkr["app_db"].get_signal(row.id)
    assert signal.status == SignalStatus.EXECUTED.value  # a limit at the close fills there
    assert len(ibkr["app_db"].list_orders("AAPL")) == 1


def test_an_ibkr_entry_fills_then_its_stop_closes_the_trade(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    close = close_of(ibkr)
    stop, target = round(close * 0.95, 2), round(close * 1.1, 2)
    row = approved(ibkr, round(close * 0.99, 2), stop, target)
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    app_db = ibkr["app_db"]
    assert app_db.get_signal(row.id).status == SignalStatus.WORKING.value
    working = ibkr["broker"].working_orders()
    assert [(w.order_ref, w.exit) for w in working] == [(row.id, False)]

    peer.trade_at("AAPL", round(close * 0.99, 2))  # the entry fills; its exits start working
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    assert app_db.get_signal(row.id).status == SignalStatus.EXECUTED.value
    assert {w.order_ref for w in ibkr["broker"].working_orders()} == {f"{row.id}:tp",
                                                                       f"{row.id}:sl"}
    peer.trade_at("AAPL", stop)  # the stop is hit; OCA cancels the target
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    [trade] = app_db.trades(signal_id=row.id)
    assert trade.status == "closed" and trade.exit_reason == "stopped out (stop-loss filled)"
    assert trade.exit_price == stop and trade.r_multiple == pytest.approx(-1.0, abs=0.01)
    assert ibkr["broker"].working_orders() == []
    assert peer.place_order_count == 3  # the bracket, once


def test_an_unfilled_day_entry_expires_at_the_gateway_and_the_signal_says_so(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    close = close_of(ibkr)
    row = approved(ibkr, round(close * 0.97, 2), round(close * 0.92, 2), round(close * 1.1, 2))
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    assert [o.order_ref for o in peer.expire_day_orders()][0] == row.id  # the session ended
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    failed = ibkr["app_db"].get_signal(row.id)
    assert failed.status == SignalStatus.ORDER_FAILED.value
    assert "not filled within its time in force (DAY): expired" in failed.status_reason


def test_a_longer_time_in_force_goes_as_good_till_date(
        env: dict[str, str], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    resources = build_resources({
        **env, "TRADING_DATA_SOURCE": "ibkr", "TRADING_BROKER": "ibkr",
        "TRADING_ENTRY_DAYS": "3", "IBKR_PORT": str(peer.port),
        "IBKR_CLIENT_ID": str(next(_CLIENT_IDS)), "IBKR_CONNECT_TIMEOUT": "3",
        "IBKR_REQUEST_TIMEOUT": "5", "IBKR_ORDER_TIMEOUT": "2"})
    assert run_symbols(instance, resources, ["AAPL"], assets=[ohlcv]).success
    close = close_of(resources)
    row = approved(resources, round(close * 0.99, 2), round(close * 0.95, 2),
                   round(close * 1.1, 2))
    assert run_symbols(instance, resources, ["AAPL"], assets=EXECUTION).success
    [parent] = [w for w in peer.wire_orders(row.id) if w["orderRef"] == row.id]
    # Three sessions after Friday 2026-11-20: Monday, Tuesday, Wednesday.
    assert (parent["tif"], parent["goodTillDate"]) == ("GTD", "20261125 16:00:00 US/Eastern")


def test_the_entry_is_checked_against_the_gateways_live_quote(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    close = close_of(ibkr)
    peer.quotes["AAPL"] = round(close * 1.08, 2)  # the market moved since the stored close
    row = approved(ibkr, close, round(close * 0.95, 2), round(close * 1.1, 2))
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    refused = ibkr["app_db"].get_signal(row.id)
    assert refused.status == SignalStatus.NOT_PLACED.value
    assert f"from the live quote {close * 1.08:.2f}" in refused.status_reason
    assert peer.wire == []


def test_working_orders_and_settings_reach_the_removal(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    from trading_assets.partitions import unregister_symbols

    close = close_of(ibkr)
    row = approved(ibkr, round(close * 0.99, 2), round(close * 0.95, 2), round(close * 1.1, 2))
    ibkr["app_db"].upsert_settings(SymbolSettings("AAPL", position_size_pct=2.0))
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    report = unregister_symbols(instance, ibkr["app_db"], ibkr["broker"], ["AAPL"])
    assert report.cancelled == [f"{row.id} (Cancelled)"]
    assert {o.status for o in peer.orders_with_ref(row.id)} == {"Cancelled"}
    assert ibkr["app_db"].get_signal(row.id).status == SignalStatus.EXPIRED.value
    assert ibkr["app_db"].settings_for("AAPL").position_size_pct == 2.0  # kept for a re-add


def test_a_bracket_cut_off_before_its_exits_is_cancelled_not_left_without_a_stop(
        ibkr: dict[str, Any], peer: TwsPeer, instance: dg.DagsterInstance) -> None:
    close = close_of(ibkr)
    row = approved(ibkr, round(close * 0.99, 2), round(close * 0.95, 2), round(close * 1.1, 2))
    peer.drop_on_place_order = True  # the gateway takes the entry, then the socket dies
    run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION, raise_on_error=False)
    peer.drop_on_place_order = False
    assert peer.place_order_count == 1  # the untransmitted entry only: no exits arrived
    assert {o.status for o in peer.orders_with_ref(row.id)} == {"Cancelled"}
    failed = ibkr["app_db"].get_signal(row.id)
    assert failed.status == SignalStatus.ORDER_FAILED.value
    assert "the bracket reached IBKR incomplete" in failed.status_reason
    # Re-approved: a new attempt, the whole bracket, once.
    ibkr["app_db"].review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")
    assert run_symbols(instance, ibkr, ["AAPL"], assets=EXECUTION).success
    assert [w["orderRef"] for w in peer.wire_orders(f"{row.id}-2")] == [
        f"{row.id}-2", f"{row.id}-2:tp", f"{row.id}-2:sl"]
    assert ibkr["app_db"].get_signal(row.id).status == SignalStatus.WORKING.value
