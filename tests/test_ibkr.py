"""IBKRResource with the real ib_async client against a loopback TWS peer (tests/peers)."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from resources.ibkr import (
    HistoricalPacer,
    IBKRConnectionError,
    IBKRError,
    IBKRNoSecurityError,
    IBKRPacingError,
    IBKRPermissionError,
    IBKRResource,
    disconnect_all,
    duration_for,
    reset_pacing,
)
from tests.conftest import metadata_for, run_symbols
from tests.peers.tws_peer import (
    Listing,
    TwsPeer,
    daily_bar,
    exchange_today,
    last_price,
    last_trading_day,
)
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.trading import orders, portfolio
from trading_assets.core.bars import bar_problems
from trading_assets.core.orders import OrderRequest, OrderType, SymbolSettings
from trading_assets.core.signal import Action
from trading_assets.settings import build_resources

MakeIBKR = Callable[..., IBKRResource]


def market_buy(ref: str, quantity: int = 5, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(symbol=symbol, action=Action.BUY, quantity=quantity,
                        order_type=OrderType.MARKET, order_ref=ref)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- market data


def test_daily_bars_become_an_oldest_first_dataframe(make_ibkr: MakeIBKR) -> None:
    frame = make_ibkr().fetch_daily_bars("AAPL", 300)

    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert frame["date"].dtype == "datetime64[ns]"
    assert (frame["date"] == frame["date"].dt.normalize()).all()
    assert frame["date"].is_monotonic_increasing and frame["date"].is_unique
    assert all(frame[col].dtype == float for col in ["open", "high", "low", "close", "volume"])
    assert len(frame) == 300
    today = last_trading_day(exchange_today(datetime.now(UTC)))
    assert frame["date"].iloc[-1] == pd.Timestamp(today)
    assert frame["close"].iloc[-1] == daily_bar("AAPL", today)[3]
    assert frame.attrs["source"] == "ibkr" and frame.attrs["delayed"] is False


@pytest.mark.parametrize(("moment", "newest"), [
    # Sunday 19:30 in New York is already Monday in UTC: the newest bar is Friday's. CI ran here.
    (datetime(2026, 12, 7, 0, 30, tzinfo=UTC), date(2026, 12, 4)),
    # Tuesday 21:00 New York, Wednesday in UTC: Tuesday's bar.
    (datetime(2026, 12, 9, 2, 0, tzinfo=UTC), date(2026, 12, 8)),
    # Christmas (a Friday) and Thanksgiving: no bar on a holiday.
    (datetime(2026, 12, 25, 15, 0, tzinfo=UTC), date(2026, 12, 24)),
    (datetime(2026, 11, 26, 18, 0, tzinfo=UTC), date(2026, 11, 25)),
])
def test_bars_served_at_any_hour_pass_the_products_date_checks(
    peer: TwsPeer, make_ibkr: MakeIBKR, moment: datetime, newest: date
) -> None:
    # A clean-clone CI run at 00:00 UTC failed: the peer dated bars by the UTC day, one day
    # ahead of the exchange, and the bar checks rightly refused a bar from the future.
    peer.clock = lambda: moment
    frame = make_ibkr().fetch_daily_bars("AAPL", 300)

    assert frame["date"].iloc[-1] == pd.Timestamp(newest)
    assert bar_problems(frame, today=exchange_today(moment)) == []
    assert not {day.date() for day in frame["date"]} & {date(2025, 12, 25), date(2026, 1, 1)}


def test_identical_request_within_15_seconds_is_served_from_cache(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    ibkr = make_ibkr()
    first = ibkr.fetch_daily_bars("MSFT", 120)
    second = ibkr.fetch_daily_bars("MSFT", 120)

    pd.testing.assert_frame_equal(first, second)
    assert peer.historical_request_count == 1


def test_qualify_returns_the_contract(make_ibkr: MakeIBKR) -> None:
    contract = make_ibkr().qualify("AAPL")

    assert contract["conId"] == Listing("AAPL").con_id
    assert contract["primaryExchange"] == "NASDAQ"
    assert contract["exchange"] == "SMART" and contract["currency"] == "USD"
    assert contract["longName"] == "APPLE INC"


def test_share_class_symbols_are_translated_for_ibkr(make_ibkr: MakeIBKR) -> None:
    assert make_ibkr().qualify("BRK.B")["primaryExchange"] == "NYSE"


def test_unknown_symbol_raises_no_security(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    with pytest.raises(IBKRNoSecurityError, match=r"ZZZZ.*error 200.*exchange"):
        make_ibkr().fetch_daily_bars("ZZZZ", 50)


def test_pacing_violation_raises_pacing_error(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    peer.historical_pacing_violation = True

    with pytest.raises(IBKRPacingError, match=r"TSLA.*pacing violation \(error 162.*wait"):
        make_ibkr().fetch_daily_bars("TSLA", 50)


def test_ohlcv_retries_a_download_the_gateway_dropped_on_a_new_connection(
    peer: TwsPeer, instance: dg.DagsterInstance, env: dict[str, str]
) -> None:
    # docs/ibkr.md promises a dropped gateway is retried with backoff: the drop used to fail
    # the symbol at once.
    peer.drop_on_historical_data = 2
    resources = build_resources({**env, "TRADING_DATA_SOURCE": "ibkr", "IBKR_PORT": str(peer.port),
                                 "IBKR_CONNECT_TIMEOUT": "3", "IBKR_REQUEST_TIMEOUT": "5"})
    try:
        result = run_symbols(instance, resources, ["MSFT"], assets=[ohlcv], raise_on_error=False)
    finally:
        disconnect_all()
    assert result.success
    assert metadata_for(result, "ohlcv", "MSFT")["source"] == "ibkr"
    assert peer.historical_request_count == 3  # dropped twice, answered on the third session


def test_bad_data_and_refusals_are_not_retried(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    peer.historical_pacing_violation = True
    with pytest.raises(IBKRPacingError):
        make_ibkr().fetch_daily_bars("TSLA", 50)
    assert peer.historical_request_count == 1
    peer.historical_pacing_violation = False
    peer.drop_on_historical_data = 5  # a gateway that keeps dropping: bounded, then the reason
    with pytest.raises(IBKRConnectionError, match=r"Lost the connection .*\(IBKR_HOST/IBKR_PORT\)"):
        make_ibkr().fetch_daily_bars("NVDA", 50)
    assert peer.historical_request_count == 1 + 3


def test_missing_subscription_is_refused_unless_delayed_data_is_allowed(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    peer.historical_needs_subscription = True

    with pytest.raises(IBKRPermissionError, match=r"error 354.*allow_delayed_data"):
        make_ibkr().fetch_daily_bars("NVDA", 50)
    frame = make_ibkr(allow_delayed_data=True, client_id=30).fetch_daily_bars("NVDA", 50)
    assert len(frame) == 50 and frame.attrs["delayed"] is True


def test_historical_pacer_waits_for_a_free_slot() -> None:
    now = [0.0]
    pacer = HistoricalPacer(max_requests=2, window_s=600.0, clock=lambda: now[0])

    assert pacer.reserve() == 0 and pacer.reserve() == 0
    assert pacer.reserve() == pytest.approx(600.0)
    now[0] = 599.0
    assert pacer.reserve() == pytest.approx(1.0)
    now[0] = 600.0
    assert pacer.reserve() == 0


@pytest.mark.parametrize(
    ("trading_days", "duration"), [(1, "12 D"), (50, "83 D"), (200, "300 D"), (400, "2 Y")]
)
def test_duration_covers_the_trading_days(trading_days: int, duration: str) -> None:
    assert duration_for(trading_days) == duration


# ---------------------------------------------------------------- connection


def test_gateway_that_is_down_fails_fast_with_connection_error() -> None:
    port = free_port()  # nothing listens here any more
    ibkr = IBKRResource(port=port, connect_timeout=2.0)

    # Refused, not timed out: the error names the refusal, not the connect timeout.
    with pytest.raises(IBKRConnectionError, match=rf"not reachable at 127.0.0.1:{port} "
                       r"\(connection refused\)\. Start IB Gateway"):
        ibkr.qualify("AAPL")


def test_gateway_that_never_answers_fails_within_connect_timeout() -> None:
    with socket.socket() as silent:  # accepts TCP, never speaks the API
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        ibkr = IBKRResource(port=silent.getsockname()[1], connect_timeout=1.0)

        # The configured connect timeout is the one that ended the wait.
        with pytest.raises(IBKRConnectionError,
                           match="did not complete the API handshake within 1 s"):
            ibkr.qualify("AAPL")


def test_connection_is_reused_across_calls(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    ibkr = make_ibkr()
    ibkr.qualify("AAPL")
    ibkr.fetch_daily_bars("AAPL", 20)
    ibkr.positions()

    assert peer.connection_count == 1


def test_gateway_restart_while_idle_reconnects_transparently(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    ibkr = make_ibkr()
    ibkr.qualify("AAPL")
    peer.drop_connections()

    assert ibkr.qualify("MSFT")["primaryExchange"] == "NASDAQ"
    assert peer.connection_count == 1


def test_gateway_that_lost_ibkr_refuses_requests_until_restored(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    ibkr = make_ibkr()
    ibkr.qualify("AAPL")
    peer.notify(1100, "Connectivity between IB and Trader Workstation has been lost.")

    with pytest.raises(IBKRConnectionError, match=r"lost its connection to IBKR.*error 1100"):
        ibkr.fetch_daily_bars("AAPL", 10)
    peer.notify(1102, "Connectivity between IB and Trader Workstation has been restored - "
                "data maintained.")
    assert len(ibkr.fetch_daily_bars("AAPL", 10)) == 10


def test_client_id_in_use_moves_to_the_next_one(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    make_ibkr().qualify("AAPL")  # holds client id 17 on this thread
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            make_ibkr().qualify("MSFT")  # a thread gets its own connection: 17 is taken
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(10)

    assert errors == []
    assert peer.connection_count == 2


def test_configured_account_must_be_one_the_gateway_manages(make_ibkr: MakeIBKR) -> None:
    with pytest.raises(IBKRError, match=r"IBKR_ACCOUNT is DU999999.*logged in to DU123456"):
        make_ibkr(account="DU999999").positions()


def test_each_configured_account_gets_its_own_connection() -> None:
    reset_pacing()
    with TwsPeer(accounts=["DU123456", "DU654321"]) as two_accounts:
        def make(account: str) -> IBKRResource:
            return IBKRResource(port=two_accounts.port, connect_timeout=3.0,
                                request_timeout=3.0, account=account)

        try:
            first = make("DU123456").account_snapshot()
            # Same thread, host, port and client id: the cached connection of the first
            # account must not answer (or trade) for the second.
            second = make("DU654321").account_snapshot()
            connections = two_accounts.connection_count
        finally:
            disconnect_all()

    assert (first.account, second.account) == ("DU123456", "DU654321")
    assert connections == 2


# ---------------------------------------------------------------- orders


def test_market_order_is_placed_once_per_order_ref(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    ibkr = make_ibkr()
    placed = ibkr.place_order(market_buy("signal-1"))

    assert placed.status == "Filled" and placed.broker == "ibkr"
    assert placed.filled == 5 and placed.avg_fill_price == last_price("AAPL")
    assert placed.commission == 1.0
    again = ibkr.place_order(market_buy("signal-1"))
    assert again.broker_order_id == placed.broker_order_id
    assert peer.place_order_count == 1
    assert [o.order_ref for o in peer.orders.values()] == ["signal-1"]


def test_order_is_found_from_a_new_session(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    make_ibkr().place_order(market_buy("signal-2"))
    disconnect_all()  # e.g. the next Dagster run in a new process

    found = make_ibkr().find_order("signal-2")

    assert found is not None and found.status == "Filled" and found.filled == 5
    assert found.commission == 1.0 and found.symbol == "AAPL"
    assert make_ibkr().find_order("never-placed") is None


def test_connection_dropped_after_placement_is_reconciled_not_retried(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    peer.drop_on_place_order = True  # the gateway records the order, then the socket dies
    ibkr = make_ibkr()

    reconciled = ibkr.place_order(market_buy("signal-3"))

    assert reconciled.status == "Filled" and reconciled.filled == 5
    peer.drop_on_place_order = False
    assert ibkr.place_order(market_buy("signal-3")).status == "Filled"
    assert peer.place_order_count == 1


def test_unanswered_placement_is_reconciled_not_retried(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    peer.ignore_place_order = True
    ibkr = make_ibkr(order_timeout=0.5)

    reconciled = ibkr.place_order(market_buy("signal-4"))

    assert reconciled.order_ref == "signal-4" and reconciled.status == "Filled"
    assert peer.place_order_count == 1


def test_placement_the_gateway_never_recorded_is_reported_not_resent(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    peer.swallow_place_order = True  # lost on the way: no record, no answer

    with pytest.raises(IBKRError, match=r"signal-10.*no record of it\. It was NOT sent again"):
        make_ibkr(order_timeout=0.3).place_order(market_buy("signal-10"))
    assert peer.place_order_count == 1


def test_limit_order_below_the_market_rests(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    price = last_price("MSFT")
    request = OrderRequest(symbol="MSFT", action=Action.BUY, quantity=3,
                           order_type=OrderType.LIMIT, order_ref="signal-5",
                           limit_price=round(price * 0.9, 2))

    placed = make_ibkr().place_order(request)

    assert placed.status == "Submitted" and placed.filled == 0
    assert placed.limit_price == round(price * 0.9, 2)
    assert peer.orders_with_ref("signal-5")[0].lmt_price == round(price * 0.9, 2)


def test_bracket_order_transmits_the_group_with_its_last_child(
    peer: TwsPeer, make_ibkr: MakeIBKR
) -> None:
    price = last_price("AAPL")
    request = OrderRequest(symbol="AAPL", action=Action.BUY, quantity=10,
                           order_type=OrderType.BRACKET, order_ref="signal-6",
                           limit_price=round(price + 1, 2), stop_loss=round(price - 5, 2),
                           take_profit=round(price + 10, 2))
    ibkr = make_ibkr()

    placed = ibkr.place_order(request)

    parent, take_profit, stop_loss = sorted(peer.orders.values(), key=lambda o: o.order_id)
    assert [o.transmit for o in (parent, take_profit, stop_loss)] == [False, False, True]
    assert take_profit.parent_id == stop_loss.parent_id == parent.order_id
    assert (take_profit.order_type, take_profit.action) == ("LMT", "SELL")
    assert (stop_loss.order_type, stop_loss.aux_price) == ("STP", round(price - 5, 2))
    assert placed.order_type == "BRACKET" and placed.status == "Filled"
    assert [c["status"] for c in placed.raw["children"]] == ["Submitted", "Submitted"]
    ibkr.place_order(request)
    assert peer.place_order_count == 3


def test_readonly_refuses_orders(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    with pytest.raises(IBKRPermissionError, match="read-only"):
        make_ibkr(readonly=True).place_order(market_buy("signal-7"))
    assert peer.place_order_count == 0


def test_live_account_needs_live_flag_and_matching_account() -> None:
    reset_pacing()
    with TwsPeer(accounts=["U7654321"]) as live_peer:
        def make(**overrides: object) -> IBKRResource:
            return IBKRResource(port=live_peer.port, connect_timeout=3.0, order_timeout=1.0,
                                **overrides)

        with pytest.raises(IBKRPermissionError, match=r"LIVE account U7654321.*TRADING_LIVE"):
            make().place_order(market_buy("signal-8"))
        with pytest.raises(IBKRPermissionError, match="IBKR_ACCOUNT=U7654321"):
            make(live=True, client_id=40).place_order(market_buy("signal-8"))
        assert live_peer.place_order_count == 0

        placed = make(live=True, account="U7654321", client_id=50).place_order(
            market_buy("signal-8"))
        assert placed.status == "Filled" and live_peer.place_order_count == 1
        disconnect_all()


# ---------------------------------------------------------------- portfolio


def test_positions_and_account_values_come_back(peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    peer.seed_position("AAPL", 10, 150.0)
    ibkr = make_ibkr()
    ibkr.place_order(market_buy("signal-9", quantity=4, symbol="MSFT"))

    positions = {p.symbol: p for p in ibkr.positions()}
    account = ibkr.account_snapshot()

    aapl, msft = positions["AAPL"], positions["MSFT"]
    assert (aapl.quantity, aapl.avg_cost) == (10, 150.0)
    assert aapl.market_price == last_price("AAPL")
    assert aapl.unrealized_pnl == pytest.approx((last_price("AAPL") - 150.0) * 10, abs=0.01)
    assert (msft.quantity, msft.avg_cost) == (4, last_price("MSFT"))
    assert account.account == "DU123456" and account.broker == "ibkr"
    assert account.cash == pytest.approx(peer.cash, abs=0.01)
    assert account.equity == pytest.approx(
        peer.cash + 10 * last_price("AAPL") + 4 * last_price("MSFT"), abs=0.01)
    assert account.buying_power > 0 and account.currency == "USD"
    assert account.unrealized_pnl == pytest.approx(aapl.unrealized_pnl, abs=0.02)


# ---------------------------------------------------------------- the whole graph


def test_whole_graph_trades_through_ibkr_once(
    instance: dg.DagsterInstance, env: dict[str, str]
) -> None:
    """ohlcv -> ... -> portfolio with market data and broker on IBKR: one order, ever.

    On the peer's deterministic bars AAPL closes 2026-11-20 as a rules-analyst BUY (the same
    as-of date the other tests give the simulated source). The gateway records the order and
    drops the socket before answering, so the run must reconcile instead of re-sending; a
    second run of orders and portfolio then finds the order and places nothing.
    """
    reset_pacing()
    with TwsPeer(as_of=date(2026, 11, 20)) as peer:
        peer.drop_on_place_order = True
        resources = build_resources({
            **env, "TRADING_DATA_SOURCE": "ibkr", "TRADING_BROKER": "ibkr",
            "TRADING_ORDER_TYPE": "mkt",  # a half-sent bracket: tests/test_ibkr_orders.py
            "IBKR_PORT": str(peer.port), "IBKR_CONNECT_TIMEOUT": "3",
            "IBKR_REQUEST_TIMEOUT": "5",
        })
        resources["app_db"].upsert_settings(SymbolSettings("AAPL", auto_approve=True))
        try:
            first = run_symbols(instance, resources, ["AAPL"])
            peer.drop_on_place_order = False
            second = run_symbols(instance, resources, ["AAPL"], assets=[orders, portfolio])
        finally:
            disconnect_all()

        assert first.success and second.success
        bars = metadata_for(first, "ohlcv", "AAPL")
        assert (bars["source"], bars["simulated"], bars["rows"]) == ("ibkr", False, 400)
        assert bars["last_date"] == "2026-11-20"
        signal = resources["app_db"].latest_signal("AAPL")
        assert signal is not None and signal.action == "BUY", "expected a rules BUY for AAPL"
        assert peer.place_order_count == 1
        [order] = peer.orders_with_ref(signal.id)
        ledger = resources["app_db"].order_for_signal(signal.id)
        assert ledger is not None and ledger.status == "Filled" and ledger.broker == "ibkr"
        assert ledger.filled == order.quantity and ledger.broker_order_id == str(order.perm_id)
        held = metadata_for(second, "portfolio", "AAPL")
        assert held["quantity"] == order.quantity
        assert held["account_cash"] == pytest.approx(peer.cash, abs=0.01)
        # Each materialization names the API server version and gateway time it went through.
        placed = metadata_for(second, "orders", "AAPL")
        times = {h["connection_time"] for h in peer.handshakes}
        for metadata in (bars, placed, held):
            assert metadata["ibkr_api_server_version"] == 176
            assert metadata["ibkr_gateway_connection_time"] in times
            assert "server versions 157..178" in metadata["ib_async"]


def test_loading_the_definitions_does_not_import_ib_async() -> None:
    """ib_async is imported inside the methods that talk to the gateway, so the code server
    and `dagster dev` load the definitions without it (and fast)."""
    code = "import sys, trading_assets.definitions; print('ib_async' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False", "a module imports ib_async at load time"


def test_a_lost_order_is_reconciled_then_not_placed_and_reapproved_once(
    peer: TwsPeer, make_ibkr: MakeIBKR, tmp_path: pathlib.Path
) -> None:
    from datetime import UTC, datetime

    from resources.app_db import AppDatabase
    from resources.broker import IBKRBroker
    from resources.object_store import ObjectStore
    from resources.policy import PolicyResource
    from trading_assets.assets.trading import execute_signal, reconcile_unresolved
    from trading_assets.core.keys import bars_info_key
    from trading_assets.core.policy import TradingPolicy
    from trading_assets.core.signal import (
        AnalysisOutcome,
        ConfidenceLevel,
        SignalStatus,
        TradingSignal,
        Trend,
    )

    app_db = AppDatabase(url=f"sqlite:///{tmp_path / 'app.db'}")
    day = last_trading_day(exchange_today(datetime.now(UTC)))
    price = last_price("AAPL", day)
    signal = TradingSignal(symbol="AAPL", action=Action.BUY, confidence_level=ConfidenceLevel.HIGH,
                           confidence_score=85, reasoning="r", trend=Trend.UP, entry_price=price,
                           stop_loss=round(price * 0.95, 2), take_profit=round(price * 1.1, 2))
    row = app_db.record_signal(
        outcome=AnalysisOutcome(symbol="AAPL", signal=signal, provider="rules", model="rules-v1"),
        bar_date=day, status=SignalStatus.PENDING_REVIEW, data_source="ibkr", simulated=False,
        last_bars=[{"date": str(day), "close": price}], indicators={}, chart_keys={})
    app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")
    broker = IBKRBroker(ibkr=make_ibkr(order_timeout=0.3), order_type="MKT")
    settings = SymbolSettings(symbol="AAPL")
    store = ObjectStore(root=str(tmp_path / "store"))
    store.write_json(bars_info_key("AAPL"), {"last_date": str(day), "last_close": price})

    def execute() -> object:
        listed = app_db.get_signal(row.id)
        return execute_signal(broker, app_db, PolicyResource(reconcile_grace_s=0), listed, store,
                              "run-1", settings)

    peer.swallow_place_order = True  # lost on the way: the gateway never records it
    with pytest.raises(IBKRError):
        execute()
    assert app_db.order_for_signal(row.id).status == "unknown"
    # Within the grace period the order could still appear: it stays unknown, nothing re-sent.
    reconcile_unresolved(broker, app_db, TradingPolicy(reconcile_grace_s=3600), "AAPL")
    assert app_db.order_for_signal(row.id).status == "unknown"
    assert app_db.get_signal(row.id).status == SignalStatus.APPROVED.value
    # Open orders, completed orders and executions checked again after the grace period.
    [note] = reconcile_unresolved(broker, app_db, TradingPolicy(reconcile_grace_s=0), "AAPL")
    assert "not placed" in note
    ledger = app_db.order_for_signal(row.id)
    assert ledger.status == "not_placed" and f"IBKR {peer.port} has no order" in ledger.error
    assert app_db.get_signal(row.id).status == SignalStatus.NOT_PLACED.value

    peer.swallow_place_order = False
    app_db.review_signal(row.id, SignalStatus.APPROVED, reviewer="alice")  # re-approve
    assert execute().place
    assert app_db.get_signal(row.id).status == SignalStatus.EXECUTED.value
    assert broker.find_order(f"{row.id}-2").status == "Filled"
    assert broker.find_order(row.id) is None
    assert peer.place_order_count == 2  # the lost one and the re-approved attempt, no more
