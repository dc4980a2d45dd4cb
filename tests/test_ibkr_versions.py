"""IBKR across gateway and library versions: the API server version agreed at connect, a gateway
that shares none with ib_async (one line, exit 2), and every number ib_async hands back read
through one conversion (floats from 2.x, `Decimal | None` from 3.x, IB's unset markers).

The gateway is the TWS-protocol peer (tests/peers/tws_peer.py) driven by the real ib_async.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from resources.ibkr import IBKRError, IBKRResource, IBKRVersionError, disconnect_all
from resources.ibkr.values import UNSET_DECIMAL, UNSET_DOUBLE, ib_number
from tests.peers.tws_peer import TwsPeer
from trading_assets import cli
from trading_assets.health import system_health
from trading_assets.settings import ConfigError, build_resources, check_start

MakeIBKR = Callable[..., IBKRResource]
CLIENT_RANGE = "157..178"  # what ib_async 2.1 offers in its handshake


@pytest.fixture
def ibkr_env(env: dict[str, str], peer: TwsPeer, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment with IBKR market data and broker on the peer."""
    extra = {"TRADING_DATA_SOURCE": "ibkr", "TRADING_BROKER": "ibkr",
             "IBKR_PORT": str(peer.port), "IBKR_CONNECT_TIMEOUT": "3",
             "IBKR_REQUEST_TIMEOUT": "3", "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    for name, value in {**env, **extra}.items():
        monkeypatch.setenv(name, value)
    return {**env, **extra}


# ---------------------------------------------------------------- one conversion


@pytest.mark.parametrize(("value", "expected"), [
    (187.25, 187.25),
    (Decimal("187.25"), 187.25),
    (Decimal("100"), 100.0),
    ("12.5", 12.5),
    (0, 0.0),
    (None, None),
    ("", None),
    (math.nan, None),
    (math.inf, None),
    (Decimal("NaN"), None),
    (Decimal("Infinity"), None),
    (UNSET_DOUBLE, None),  # ib_async 2.x's unset price
    (UNSET_DECIMAL, None),  # ib_async 3.x's unset size
    (float(UNSET_DECIMAL), None),  # the same after a float() on the way
])
def test_ib_number_reads_floats_decimals_and_unset_markers(
        value: float | Decimal | str | None, expected: float | None) -> None:
    number = ib_number(value)
    assert number == expected
    assert number is None or type(number) is float


def test_ib_number_refuses_text_that_is_no_number() -> None:
    with pytest.raises(ValueError):
        ib_number("INDIVIDUAL")  # an account value's text tag


def test_an_order_with_decimal_sizes_and_none_prices_becomes_floats() -> None:
    """What ib_async 3.x hands back: Decimal sizes and prices, None where unset."""
    from ib_async import (
        CommissionReport,
        Execution,
        Fill,
        LimitOrder,
        OrderStatus,
        Stock,
        Trade,
    )

    order = LimitOrder("BUY", Decimal("10"), Decimal("187.25"), orderRef="sig-1",
                       orderId=7, clientId=17, permId=1001)
    status = OrderStatus(orderId=7, status="Filled", filled=Decimal("10"),
                         remaining=Decimal("0"), avgFillPrice=None)
    contract = Stock("AAPL", "SMART", "USD")
    now = datetime.now(UTC)
    fills = [Fill(contract, Execution(execId=f"e{i}", shares=Decimal(shares), price=price,
                                      orderRef="sig-1", side="BOT"),
                  CommissionReport(execId=f"e{i}", commission=commission), now)
             for i, (shares, price, commission) in enumerate([
                 ("4", Decimal("187.20"), Decimal("1.00")),
                 ("6", Decimal("187.30"), None)])]
    trade = Trade(contract=contract, order=order, orderStatus=status, fills=fills)

    placed = IBKRResource()._broker_order("sig-1", trade, fills, [])

    assert placed.quantity == 10.0 and placed.filled == 10.0
    assert placed.avg_fill_price == pytest.approx(187.26)
    assert placed.commission == 1.0 and placed.limit_price == 187.25
    for name in ("quantity", "filled", "avg_fill_price", "commission", "limit_price"):
        assert type(getattr(placed, name)) is float, name


def test_unset_prices_from_the_gateway_are_none_never_1e308(
        peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    """A gateway without prices sends IB's unset marker, which ib_async 2.x reads as
    1.8e308: a tick of that size, or a cost of it, would pass as a number."""
    peer.unset_prices = True
    peer.seed_position("AAPL", 10, 150.0)
    ibkr = make_ibkr()

    tick, _quote = ibkr.tick_and_quote("AAPL")
    assert tick == 0.01  # the default tick, not 1.8e308

    # The position's cost is unknown (the risk checks value a position by it): an error that
    # says so, not a position costing 1.8e308 per share.
    with pytest.raises(IBKRError, match="IBKR sent no average cost for the AAPL position "
                                        "of account DU123456"):
        ibkr.positions()


def test_a_position_without_its_own_cost_takes_the_portfolios(
        peer: TwsPeer, make_ibkr: MakeIBKR, monkeypatch: pytest.MonkeyPatch) -> None:
    peer.seed_position("MSFT", 5, 300.0)
    send_positions = peer._positions

    def unset_cost(client: object, fields: list[str]) -> None:
        peer.unset_prices = True  # the position message only: the portfolio keeps its prices
        try:
            send_positions(client, fields)  # type: ignore[arg-type]
        finally:
            peer.unset_prices = False

    monkeypatch.setitem(peer._handlers, 61, unset_cost)
    [held] = make_ibkr().positions()
    assert (held.symbol, held.quantity, held.avg_cost) == ("MSFT", 5.0, 300.0)
    assert held.market_price is not None and held.market_price < 1e6


# ---------------------------------------------------------------- the version agreed at connect


def test_the_handshake_records_the_negotiated_version_and_gateway_time(
        peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    ibkr = make_ibkr()
    handshake = ibkr.handshake()

    [answered] = peer.handshakes
    assert answered["offered"] == f"v{CLIENT_RANGE}"
    assert handshake.server_version == 176
    assert handshake.connection_time == answered["connection_time"]
    metadata = ibkr.handshake_metadata()
    assert metadata["ibkr_api_server_version"] == 176
    assert metadata["ibkr_gateway_connection_time"] == answered["connection_time"]
    assert re.fullmatch(rf"ib_async 2\.\d+\.\d+ \(server versions {CLIENT_RANGE}\)",
                        str(metadata["ib_async"]))


@pytest.mark.parametrize(("announced", "expected"), [
    (228, rf"IBKR gateway at 127\.0\.0\.1:\d+ speaks API server version 228; ib_async "
          rf"2\.\d+\.\d+ speaks {CLIENT_RANGE}\. The gateway needs IBKR's newer protocol: "
          r"upgrade to ib_async 3\.x \(API server versions 226\.\.228\)"),
    (150, rf"IBKR gateway at 127\.0\.0\.1:\d+ speaks API server version 150; ib_async "
          rf"2\.\d+\.\d+ speaks {CLIENT_RANGE}\. Upgrade IB Gateway/TWS: IBKR requires 10\.51 "
          r"or later from December 2026"),
])
def test_a_gateway_outside_the_client_range_is_refused_in_one_line(
        peer: TwsPeer, make_ibkr: MakeIBKR, announced: int, expected: str) -> None:
    peer.server_version = announced
    with pytest.raises(IBKRVersionError) as raised:
        make_ibkr().qualify("AAPL")

    message = str(raised.value)
    assert re.match(expected, message), message
    assert "\n" not in message and 'docs/ibkr.md "IBKR compatibility"' in message


def test_a_gateway_that_closes_the_handshake_is_named_at_once(
        peer: TwsPeer, make_ibkr: MakeIBKR) -> None:
    """Without a check the client waited out the connect timeout, then blamed the login."""
    peer.refuse_handshake = True
    with pytest.raises(IBKRVersionError) as raised:
        make_ibkr(connect_timeout=30.0).qualify("AAPL")

    message = str(raised.value)
    assert re.match(rf"IBKR gateway at 127\.0\.0\.1:{peer.port} closed the API handshake "
                    rf"without announcing its server version; ib_async 2\.\d+\.\d+ speaks "
                    rf"{CLIENT_RANGE}\. IB Gateway/TWS 10\.51 and later accept only ib_async "
                    r"3\.x \(API server versions 226\.\.228\): upgrade ib_async", message), message
    assert "\n" not in message
    assert [h["offered"] for h in peer.handshakes] == [f"v{CLIENT_RANGE}"]  # not retried


# ---------------------------------------------------------------- start check, CLI and status


def test_the_start_check_records_the_gateways_version(
        ibkr_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trading_assets.settings"):
        check_start(ibkr_env)
    assert re.search(rf"IBKR gateway at 127\.0\.0\.1:\d+: API server version 176, gateway "
                     rf"connection time \d{{8}} [\d:]{{8}} UTC; ib_async 2\.\d+\.\d+ \(server "
                     rf"versions {CLIENT_RANGE}\)", caplog.text), caplog.text


def test_the_start_check_refuses_a_gateway_that_shares_no_version(
        ibkr_env: dict[str, str], peer: TwsPeer) -> None:
    peer.server_version = 228
    with pytest.raises(ConfigError, match="speaks API server version 228; ib_async .* speaks "
                                          "157..178"):
        check_start(ibkr_env)


@pytest.mark.parametrize("gateway", ["newer", "refusing"])
def test_the_cli_exits_2_with_one_line_naming_both_versions(
        ibkr_env: dict[str, str], peer: TwsPeer, capsys: pytest.CaptureFixture[str],
        gateway: str) -> None:
    if gateway == "newer":
        peer.server_version = 228
    else:
        peer.refuse_handshake = True

    assert cli.main(["symbols", "list"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert CLIENT_RANGE in err and "ib_async 3.x" in err
    assert ("version 228" in err) if gateway == "newer" else ("without announcing" in err)


def test_status_shows_the_gateways_version_and_a_refusal(
        ibkr_env: dict[str, str], peer: TwsPeer) -> None:
    import dagster as dg

    resources = build_resources(ibkr_env)
    with dg.instance_for_test() as instance:
        up = {c.part: c for c in system_health(resources, instance, "http://127.0.0.1:9").checks}
        disconnect_all()
        peer.server_version = 228
        down = {c.part: c for c in
                system_health(resources, instance, "http://127.0.0.1:9").checks}

    for part in ("market data", "broker"):
        assert up[part].up and "API server version 176, gateway connection time" in \
            up[part].detail, up[part]
        assert not down[part].up and "speaks API server version 228" in down[part].detail
        assert CLIENT_RANGE in down[part].detail
