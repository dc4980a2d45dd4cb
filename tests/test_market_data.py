"""Market data sources: one class per source, and the url source against a loopback server."""

import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from resources.market_data import (
    CsvMarketData,
    IbkrMarketData,
    SimulatedMarketData,
    UrlMarketData,
)
from tests.conftest import metadata_for, run_symbols
from trading_assets.assets.market_data import ohlcv
from trading_assets.core.bars import BarDataError, simulate_bars
from trading_assets.core.symbols import InvalidSymbolError
from trading_assets.settings import ConfigError, build_resources

AS_OF = date(2026, 11, 20)


def yahoo_csv(symbol: str) -> str:
    bars = simulate_bars(symbol, AS_OF).rename(columns=str.title)
    bars.insert(5, "Adj Close", bars["Close"])
    return bars.to_csv(index=False, date_format="%Y-%m-%d")


class Provider(BaseHTTPRequestHandler):
    """A daily-CSV provider with one route per behaviour seen in the wild."""

    seen: list[str] = []

    def log_message(self, *args: Any) -> None:  # quiet test output
        pass

    def send(self, status: int, body: str, kind: str = "text/csv") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Provider.seen.append(self.path)
        route, _, name = self.path.partition("?")[0].strip("/").partition("/")
        symbol = name.removesuffix(".csv").upper()
        if route == "yahoo":
            self.send(200, yahoo_csv(symbol))
        elif route == "stooq":  # Stooq's columns: no Adj Close, symbol lower case with .us
            frame = simulate_bars(symbol.removesuffix(".US"), AS_OF).rename(columns=str.title)
            self.send(200, frame.to_csv(index=False, date_format="%Y-%m-%d"))
        elif route == "polish":  # the same provider's Polish headers
            frame = simulate_bars(symbol, AS_OF).set_axis(
                ["Data", "Otwarcie", "Najwyzszy", "Najnizszy", "Zamkniecie", "Wolumen"], axis=1)
            self.send(200, frame.to_csv(index=False, date_format="%Y-%m-%d"))
        elif route == "future":
            self.send(200, yahoo_csv(symbol) + "2099-01-02,10,11,9,10.5,10.5,1000\n")
        elif route == "nodata":
            self.send(200, "No data", "text/plain")
        elif route == "html":
            self.send(200, "<!doctype html><title>Sign in</title>", "text/html")
        elif route == "redirect":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/secret.csv")
            self.end_headers()
        elif route == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            try:
                for _ in range(100):  # 20 s of one byte every 0.2 s unless the client hangs up
                    self.wfile.write(b"D")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        else:
            self.send(404, "not found", "text/plain")


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def url_source(template: str, **extra: str) -> Any:
    return build_resources({"TRADING_DATA_SOURCE": "url", "TRADING_CSV_URL": template,
                            "TRADING_DATA_DIR": "/tmp/unused", **extra})["market_data"]


def test_settings_pick_one_class_per_source(tmp_path: Path) -> None:
    base = {"TRADING_DATA_DIR": str(tmp_path)}
    classes = {name: type(build_resources({**base, "TRADING_DATA_SOURCE": name,
                                           "TRADING_CSV_URL": "https://x.test/{symbol}.csv"}
                                          )["market_data"])
               for name in ("simulated", "csv", "url", "ibkr")}
    assert classes == {"simulated": SimulatedMarketData, "csv": CsvMarketData,
                       "url": UrlMarketData, "ibkr": IbkrMarketData}
    assert type(build_resources(base)["market_data"]) is SimulatedMarketData
    with pytest.raises(ConfigError, match="TRADING_DATA_SOURCE='yahoo'"):
        build_resources({**base, "TRADING_DATA_SOURCE": "yahoo"})


def test_a_longer_lookback_keeps_the_source_and_its_settings() -> None:
    market = SimulatedMarketData(as_of="2026-11-20", lookback_days=400)
    longer = market.with_lookback_days(700)
    assert type(longer) is SimulatedMarketData and longer.as_of == "2026-11-20"
    assert len(longer.fetch("TSLA").frame) == 700


def test_url_source_reads_yahoo_csv_through_the_csv_checks(provider: str) -> None:
    market = url_source(provider + "/yahoo/{symbol}.csv")
    bars = market.fetch("tsla")
    assert (bars.source, bars.simulated) == ("url", False)
    expected = simulate_bars("TSLA", AS_OF)
    pd.testing.assert_frame_equal(bars.frame, expected, check_dtype=False)
    assert Provider.seen[-1] == "/yahoo/TSLA.csv"
    assert "CSV from http://127.0.0.1" in market.describe()


def test_url_source_reads_stooqs_columns_and_mapped_headers(provider: str) -> None:
    stooq = url_source(provider + "/stooq/?s={symbol_lower}.us&i=d")
    assert len(stooq.fetch("BRK.B").frame) == 400
    assert Provider.seen[-1] == "/stooq/?s=brk.b.us&i=d"
    polish = url_source(provider + "/polish/{symbol}.csv", TRADING_CSV_COLUMNS=(
        "date=Data, open=Otwarcie, high=Najwyzszy, low=Najnizszy, close=Zamkniecie, "
        "volume=Wolumen"))
    assert polish.fetch("NVDA").frame["close"].iloc[-1] == \
        simulate_bars("NVDA", AS_OF)["close"].iloc[-1]
    with pytest.raises(BarDataError, match="missing column.*TRADING_CSV_COLUMNS"):
        url_source(provider + "/polish/{symbol}.csv").fetch("NVDA")


@pytest.mark.parametrize(("route", "message"), [
    ("/missing/{symbol}.csv", r"/missing/TSLA.csv: HTTP 404 Not Found"),
    ("/html/{symbol}", r"not CSV \(the server sent text/html: '<!doctype html"),
    ("/nodata/{symbol}", r"not CSV \(the server sent text/plain: 'No data'\)"),
    ("/future/{symbol}.csv", r"/future/TSLA.csv row 402: date 2099-01-02 is after the current"),
    ("/redirect/{symbol}", r"redirect to a non-http\(s\) URL ftp://"),
])
def test_url_source_failures_say_what_the_server_did(provider: str, route: str,
                                                     message: str) -> None:
    with pytest.raises(BarDataError, match=message):
        url_source(provider + route).fetch("TSLA")


def test_a_dripping_server_is_cut_off_at_the_timeout(provider: str) -> None:
    market = url_source(provider + "/drip/{symbol}", TRADING_CSV_TIMEOUT_S="1")
    with pytest.raises(BarDataError, match=r"no complete answer within 1 s "
                                           r"\(TRADING_CSV_TIMEOUT_S\)"):
        market.fetch("TSLA")


def test_an_unreachable_provider_is_an_error_not_simulated_bars() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BarDataError, match=f"127.0.0.1:{port}/TSLA.csv: cannot download"):
        url_source(f"http://127.0.0.1:{port}/{{symbol}}.csv").fetch("TSLA")


def test_symbols_are_validated_before_they_reach_the_url(provider: str) -> None:
    market = url_source(provider + "/yahoo/{symbol}.csv")
    before = len(Provider.seen)
    for bad in ("../../etc/passwd", "A/B", "TSLA?x=1", "TSLA#", "%2e%2e"):
        with pytest.raises(InvalidSymbolError):
            market.fetch(bad)
    assert len(Provider.seen) == before


@pytest.mark.parametrize(("template", "message"), [
    ("", "must be an http:// or https:// URL"),
    ("file:///etc/{symbol}", "must be an http:// or https:// URL"),
    ("ftp://host/{symbol}.csv", "must be an http:// or https:// URL"),
    ("https://host/data.csv", r"must hold \{symbol\} or \{symbol_lower\}"),
    ("https://host/{symbol}/{secret}", "found secret"),
    ("https://host/{symbol", "unbalanced braces"),
])
def test_bad_url_templates_are_refused_at_start(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        url_source(template)
    with pytest.raises(ValueError, match=message):  # built directly, not through the settings
        UrlMarketData(url_template=template)


def test_the_url_template_is_checked_once_not_per_symbol(
        provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import resources.market_data as market_data

    checked: list[str] = []
    real_check = market_data.check_url_template
    monkeypatch.setattr(market_data, "check_url_template",
                        lambda template, *args: checked.append(template) or
                        real_check(template, *args))
    market = UrlMarketData(url_template=provider + "/yahoo/{symbol}.csv")
    for symbol in ("TSLA", "NVDA", "AMD"):
        market.fetch(symbol)
    assert checked == [provider + "/yahoo/{symbol}.csv"]


def test_keys_in_the_url_never_reach_error_messages(provider: str) -> None:
    market = url_source(provider + "/missing/{symbol}.csv?apikey=s3cr3t&i=d")
    with pytest.raises(BarDataError) as info:
        market.fetch("TSLA")
    assert "s3cr3t" not in str(info.value) and "/missing/TSLA.csv" in str(info.value)
    assert "s3cr3t" not in market.describe()
    # One helper decides what of a URL may be shown, the same one the other resources use.
    import resources.market_data as market_data
    from trading_assets.core import secrets

    assert market_data.public_url is secrets.public_url


def test_ohlcv_stores_url_bars_labelled_with_their_source(
        instance: dg.DagsterInstance, env: dict[str, str], provider: str) -> None:
    resources = build_resources({**env, "TRADING_DATA_SOURCE": "url",
                                 "TRADING_CSV_URL": provider + "/yahoo/{symbol}.csv"})
    result = run_symbols(instance, resources, ["AMD"], assets=[ohlcv])
    assert metadata_for(result, "ohlcv", "AMD")["source"] == "url"
    assert metadata_for(result, "ohlcv", "AMD")["rows"] == 400
