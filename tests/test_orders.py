"""No order that the market, the limits or the person would not allow (pre-trade checks), and
orders that carry the signal's exits and follow it to P&L (paper brackets, working orders).

Pure checks first (core/pretrade.py, core/fills.py), then the paper broker on hand-made bars,
then whole runs with crafted model answers from an OpenAI-compatible server on loopback.
The IBKR side of the same observations, read off the TWS peer's wire, is in
tests/test_ibkr_orders.py.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import ValidationError

from resources.paper_broker import PaperBroker
from tests.conftest import buy, metadata_for, run_cli, run_symbols, stored_buy
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.trading import orders, portfolio
from trading_assets.bench.llm_peer import OpenAIServer, answer, signal_fields
from trading_assets.core.fills import Bar, bracket_exit, limit_fill, stop_fill
from trading_assets.core.keys import bars_info_key
from trading_assets.core.orders import (
    AccountSnapshot,
    Book,
    Market,
    OrderRequest,
    OrderType,
    Position,
    SymbolSettings,
    WorkingOrder,
)
from trading_assets.core.policy import TradingPolicy, entry_status
from trading_assets.core.pretrade import decide_order, round_to_tick
from trading_assets.core.signal import (
    Action,
    ConfidenceLevel,
    SignalStatus,
    TradingSignal,
    Trend,
)
from trading_assets.settings import build_resources

DAY = date(2026, 11, 20)
EXECUTION = [orders, portfolio]


def book(cash: float = 100_000.0, positions: dict[str, Position] | None = None,
         working: tuple[WorkingOrder, ...] = ()) -> Book:
    equity = cash + sum((p.market_value or 0.0) for p in (positions or {}).values())
    return Book(AccountSnapshot(account="PAPER-1", cash=cash, equity=equity, buying_power=cash),
                positions or {}, working)


def decide(signal: TradingSignal, *, close: float = 100.0, quote: float | None = None,
           tick: float = 0.01, the_book: Book | None = None,
           settings: SymbolSettings | None = None, policy: TradingPolicy | None = None,
           order_type: OrderType = OrderType.BRACKET) -> Any:
    return decide_order(
        signal_id="sig-1", signal=signal, status=SignalStatus.APPROVED,
        settings=settings or SymbolSettings(symbol=signal.symbol),
        market=Market(signal.symbol, last_close=close, bar_date=DAY, quote=quote, tick=tick),
        book=the_book or book(), order_type=order_type, policy=policy or TradingPolicy())


# --- the model's levels against the market ------------------------------------------------


@pytest.mark.parametrize(("levels", "refusal"), [
    # An entry 1,000x the last close (410,240 for 410.24 seen by a paper broker and IBKR).
    ({"entry_price": 100_000.0, "stop_loss": 99_900.0, "take_profit": 101_000.0},
     "entry 100000 is 99900.0% from the last close 100.00 (limit 5%, "
     "TRADING_MAX_ENTRY_DEVIATION_PCT)"),
    # A stop of 0.004: rounded to the tick it was sent as a STP at 0.0.
    ({"stop_loss": 0.004}, "the stop 0.004 is 100.0% from the entry 100 (limit 25%, "
                           "TRADING_MAX_STOP_DISTANCE_PCT)"),
    # A target of 1e308 overflowed the tick rounding after the ledger claim.
    ({"take_profit": 9_999_999.0}, "the target 1e+07 is 9999899.0% from the entry 100 "
                                   "(limit 50%, TRADING_MAX_TARGET_DISTANCE_PCT)"),
])
def test_absurd_but_schema_valid_levels_are_refused_with_the_number_and_the_limit(
        levels: dict[str, float], refusal: str) -> None:
    decision = decide(buy(**levels))
    assert not decision.place and decision.request is None
    assert decision.reason == refusal
    assert decision.retry is False  # the signal's own numbers never change by waiting


def test_the_entry_is_also_checked_against_the_live_quote() -> None:
    decision = decide(buy(entry=100.0), close=100.0, quote=110.0)
    assert not decision.place
    assert "from the live quote 110.00" in decision.reason


def test_levels_are_rounded_to_the_tick_and_must_stay_a_bracket() -> None:
    placed = decide(buy(entry=100.03, stop=95.07, target=110.02), tick=0.05).request
    assert placed is not None
    assert (placed.limit_price, placed.stop_loss, placed.take_profit) == (100.05, 95.05, 110.0)
    # A stop within half a tick of the entry rounds onto it: no bracket left.
    refused = decide(buy(entry=100.0, stop=99.99, target=110.0), tick=0.05)
    assert not refused.place and "on the 0.05 tick grid" in refused.reason
    assert round_to_tick(0.004, 0.01) == 0.0  # what the old code sent as the stop


def test_working_entry_orders_count_toward_the_symbols_exposure() -> None:
    # Five earlier BUYs of 5 % each rest unfilled: 50 shares at 100 of 100,000 equity.
    resting = tuple(WorkingOrder(f"sig-{i}", "ACME", "BUY", 10.0, 99.0) for i in range(4))
    decision = decide(buy(), the_book=book(working=resting))
    assert decision.place and decision.request is not None
    assert decision.request.quantity == 50  # 5 % of equity
    assert decide(buy(), the_book=book(working=resting)).place
    full = resting + (WorkingOrder("sig-9", "ACME", "BUY", 160.0, 99.0),)
    refused = decide(buy(), the_book=book(working=full))
    assert not refused.place and refused.retry
    assert refused.reason.startswith("exposure limit reached: holding 0 shares and 200 in "
                                     "working BUY orders of ACME")


def test_cash_held_for_working_buys_is_not_spent_twice() -> None:
    other = (WorkingOrder("sig-x", "OTHER", "BUY", 999.9, 100.0),)  # 99,990 promised
    refused = decide(buy(), the_book=book(cash=100_000.0, working=other),
                     policy=TradingPolicy(max_account_exposure_pct=1000.0))
    assert not refused.place and refused.retry
    assert "99990.00 is held for working BUY orders" in refused.reason


def test_the_accounts_exposure_counts_every_position_and_working_entry() -> None:
    held = {"BIG": Position("BIG", 900.0, 100.0, 100.0, 90_000.0)}
    refused = decide(buy(), the_book=book(cash=10_000.0, positions=held),
                     policy=TradingPolicy(max_account_exposure_pct=80.0))
    assert not refused.place
    assert "account exposure limit reached" in refused.reason
    assert "TRADING_MAX_ACCOUNT_EXPOSURE_PCT" in refused.reason


def test_shares_promised_to_working_exits_are_not_sold_twice() -> None:
    held = {"ACME": Position("ACME", 30.0, 90.0, 100.0, 3_000.0)}
    exits = (WorkingOrder("sig-0:sl", "ACME", "SELL", 30.0, 85.0, exit=True),
             WorkingOrder("sig-0:tp", "ACME", "SELL", 30.0, 120.0, exit=True))
    sell = buy(action=Action.SELL, entry=100.0, stop=105.0, target=90.0, trend=Trend.DOWN)
    refused = decide(sell, the_book=book(positions=held, working=exits))
    assert not refused.place and refused.retry
    assert "already promised to working SELL orders (sig-0:sl, sig-0:tp)" in refused.reason
    # Without working exits the SELL closes the long with a plain limit (no bracket).
    plain = decide(sell, the_book=book(positions=held)).request
    assert plain is not None and plain.order_type is OrderType.LIMIT
    assert plain.quantity == 30 and plain.stop_loss is None


def test_order_size_and_notional_are_capped_and_say_so() -> None:
    policy = TradingPolicy(max_order_shares=20, max_order_notional=1_500.0)
    decision = decide(buy(), policy=policy)
    assert decision.request is not None and decision.request.quantity == 15
    assert "capped at 20 shares (TRADING_MAX_ORDER_SHARES)" in decision.reason
    assert "capped at 1,500 notional (TRADING_MAX_ORDER_NOTIONAL)" in decision.reason


# --- the schema: finite levels or none --------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, math.nan, 1e308])
def test_the_schema_refuses_infinite_and_absurd_levels(value: float) -> None:
    with pytest.raises(ValidationError, match="take_profit"):
        buy(take_profit=value)


def test_a_stored_signal_that_no_longer_reads_back_says_why() -> None:
    from resources.app_tables import SignalRow

    stored = buy().model_dump(mode="json")
    stored["take_profit"] = None  # what JSON made of Infinity in the old code
    row = SignalRow(id="x", symbol="ACME", bar_date=DAY, status="approved", signal_json=stored)
    signal, problem = row.read_signal()
    assert signal is None
    assert problem.startswith("the stored signal no longer passes the signal schema")
    assert "BUY and SELL need entry_price, stop_loss and take_profit" in problem


# --- who waits for a person ---------------------------------------------------------------


@pytest.mark.parametrize(("signal", "held", "expected"), [
    (buy(action=Action.HOLD, entry=None, stop=None, target=None), 0.0,
     (SignalStatus.NO_ACTION, "HOLD: no order to decide")),
    (buy(confidence_level=ConfidenceLevel.LOW, confidence_score=30), 0.0,
     (SignalStatus.NO_ACTION, "BUY with LOW confidence (30/100): not actionable")),
    (buy(action=Action.SELL, entry=100.0, stop=105.0, target=90.0), 0.0,
     (SignalStatus.NO_ACTION, "SELL with no position to sell and shorting disabled "
                              "(TRADING_ALLOW_SHORT)")),
    (buy(action=Action.SELL, entry=100.0, stop=105.0, target=90.0), 10.0,
     (SignalStatus.AUTO_APPROVED, "")),
    (buy(reasoning=" ", key_factors=[]), 0.0,
     (SignalStatus.PENDING_REVIEW, "not auto-approved: the reasoning is blank; no key factor is "
                                   "given; a person decides")),
    (buy(), 0.0, (SignalStatus.AUTO_APPROVED, "")),
])
def test_only_actionable_signals_that_explain_themselves_skip_the_queue(
        signal: TradingSignal, held: float, expected: tuple[SignalStatus, str]) -> None:
    assert entry_status(signal, enabled=True, auto_approve=True, min_confidence=60, held=held,
                        allow_short=False) == expected


# --- the paper broker works brackets bar by bar -------------------------------------------


def test_fill_rules_on_one_bar() -> None:
    bar = Bar(DAY, open=100.0, high=104.0, low=96.0, close=101.0)
    assert limit_fill(True, 97.0, bar) == 97.0  # reached intraday: at the limit
    assert limit_fill(True, 101.0, bar) == 100.0  # opened below it: at the open
    assert limit_fill(True, 95.0, bar) is None
    assert stop_fill(True, 97.0, bar) == 97.0
    assert stop_fill(True, 101.0, bar) == 100.0  # gapped through: at the open
    # Stop and target both inside the bar: the stop is assumed first.
    assert bracket_exit(True, 97.0, 103.0, bar) == ("stop_loss", 97.0)
    assert bracket_exit(True, 95.0, 103.0, bar) == ("take_profit", 103.0)
    # On the entry's own bar only the stop can fill.
    assert bracket_exit(True, 95.0, 103.0, bar, entered_at=98.0) is None
    assert bracket_exit(True, 97.0, 103.0, bar, entered_at=98.0) == ("stop_loss", 97.0)


@pytest.fixture
def paper(tmp_path: Path) -> PaperBroker:
    return PaperBroker(paper_database_url=f"sqlite:///{tmp_path / 'paper.db'}",
                       starting_cash=100_000.0, slippage_bps=0.0)


def bracket(ref: str = "sig-1", entry: float = 100.0, stop: float = 95.0,
            target: float = 110.0, quantity: int = 10, days: int = 1) -> OrderRequest:
    return OrderRequest(symbol="ACME", action=Action.BUY, quantity=quantity,
                        order_type=OrderType.BRACKET, order_ref=ref, limit_price=entry,
                        stop_loss=stop, take_profit=target, entry_days=days, bar_date=DAY)


def bars(*rows: tuple[float, float, float, float]) -> list[Bar]:
    """Bars on the sessions after DAY (Friday 2026-11-20): Monday 23rd, Tuesday 24th, ..."""
    days = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27),
            date(2026, 11, 30)]
    return [Bar(d, *row) for d, row in zip(days, rows, strict=False)]


def place(paper: PaperBroker, request: OrderRequest, close: float = 101.0) -> Any:
    return paper.place_order(request, Market("ACME", last_close=close, bar_date=DAY))


@pytest.mark.parametrize(("series", "exit_role", "exit_price", "pnl"), [
    # Entry fills Monday at 100; Tuesday's low reaches the stop.
    ([(100.5, 101, 99.5, 100.5), (99, 99.5, 94, 95)], "stop_loss", 95.0, -50.0 - 2.0),
    # Target reached Tuesday.
    ([(100.5, 101, 99.5, 100.5), (105, 111, 104, 110.5)], "take_profit", 110.0, 100.0 - 2.0),
    # One bar touches both: the stop is assumed first.
    ([(100.5, 101, 99.5, 100.5), (100, 112, 94, 105)], "stop_loss", 95.0, -50.0 - 2.0),
    # A gap through the stop fills at the open, below the stop.
    ([(100.5, 101, 99.5, 100.5), (90, 92, 89, 91)], "stop_loss", 90.0, -100.0 - 2.0),
])
def test_a_paper_bracket_exits_on_the_bars(paper: PaperBroker, series: list[Any],
                                           exit_role: str, exit_price: float,
                                           pnl: float) -> None:
    assert place(paper, bracket()).status == "Submitted"  # 100 < the close: it rests
    paper.mark("ACME", bars(*series))
    order = paper.find_order("sig-1")
    assert order is not None and (order.status, order.filled, order.avg_fill_price) == \
        ("Filled", 10.0, 100.0)
    assert order.filled_on == date(2026, 11, 23)
    exits = {e.role: e for e in order.exits}
    assert exits[exit_role].status == "Filled"
    assert exits[exit_role].avg_fill_price == exit_price
    other = "take_profit" if exit_role == "stop_loss" else "stop_loss"
    assert exits[other].status == "Cancelled"
    assert exits[other].reason == f"OCA: the {exit_role.replace('_', '-')} of sig-1 filled"
    assert paper.position("ACME").quantity == 0  # type: ignore[union-attr]
    account = paper.account()
    assert account.realized_pnl == pytest.approx(pnl + 2.0)  # before the two commissions
    assert account.cash == pytest.approx(100_000.0 + pnl)
    # The same bars again change nothing: each bar is worked once.
    paper.mark("ACME", bars(*series))
    assert paper.account().cash == pytest.approx(100_000.0 + pnl)


def test_a_day_old_limit_entry_expires_with_its_bracket(paper: PaperBroker) -> None:
    place(paper, bracket(entry=90.0, stop=85.0, target=100.0))
    paper.mark("ACME", bars((100, 102, 95, 101)))  # Monday never reaches 90
    order = paper.find_order("sig-1")
    assert order is not None and order.status == "Cancelled"
    assert order.reason.startswith("expired: not filled within 1 session (time in force DAY; "
                                   "limit 90, last bar 2026-11-23 low 95 high 102)")
    assert [e.status for e in order.exits] == ["Cancelled", "Cancelled"]
    assert paper.working_orders() == []


def test_a_good_till_date_entry_works_its_sessions(paper: PaperBroker) -> None:
    place(paper, bracket(entry=90.0, stop=85.0, target=100.0, days=3))
    paper.mark("ACME", bars((100, 102, 95, 101), (99, 100, 93, 94)))
    assert paper.find_order("sig-1").status == "Submitted"  # type: ignore[union-attr]
    paper.mark("ACME", bars((100, 102, 95, 101), (99, 100, 93, 94), (92, 93, 89, 90)))
    filled = paper.find_order("sig-1")
    assert filled is not None and filled.status == "Filled" and filled.avg_fill_price == 90.0


def test_working_orders_are_what_can_still_fill(paper: PaperBroker) -> None:
    place(paper, bracket(entry=90.0, stop=85.0, target=100.0))
    [entry] = paper.working_orders()  # the exits wait for the entry and promise nothing yet
    assert (entry.order_ref, entry.remaining, entry.price, entry.exit) == ("sig-1", 10, 90, False)
    paper.mark("ACME", bars((89, 91, 88, 90)))
    working = {w.order_ref: w for w in paper.working_orders()}
    assert set(working) == {"sig-1:tp", "sig-1:sl"} and all(w.exit for w in working.values())


# --- whole runs: crafted model answers, the paper broker -----------------------------------


@pytest.fixture
def model() -> Any:
    with OpenAIServer() as server:
        yield server


def model_env(env: dict[str, str], server: OpenAIServer, **extra: str) -> dict[str, str]:
    return {**env, "LLM_PROVIDER": "openai", "LLM_BASE_URL": server.base_url,
            "LLM_API_KEY": "sk-test-orders", "LLM_HTTP_RETRIES": "0", "LLM_TIMEOUT_S": "10",
            **extra}


def last_close(instance: dg.DagsterInstance, resources: dict[str, Any], symbol: str) -> float:
    """Store the symbol's bars (the ohlcv step alone) and return its last close."""
    assert run_symbols(instance, resources, [symbol], assets=[ohlcv]).success
    return float(resources["store"].read_json(bars_info_key(symbol))["last_close"])


def auto_approve(resources: dict[str, Any], symbol: str, **settings: Any) -> None:
    resources["app_db"].upsert_settings(SymbolSettings(symbol=symbol, auto_approve=True,
                                                       min_confidence=50, **settings))


def levels(close: float, entry: float | None = None, **changes: Any) -> dict[str, Any]:
    """A valid BUY answer at `close` (entry, 5 % stop, 10 % target), with changes."""
    entry = round(close if entry is None else entry, 2)
    return {"entry_price": entry, "stop_loss": round(entry * 0.95, 2),
            "take_profit": round(entry * 1.10, 2), "support": round(entry * 0.9, 2),
            "resistance": round(entry * 1.2, 2), **changes}


def test_an_entry_a_thousand_times_the_close_is_refused_before_any_claim(
        instance: dg.DagsterInstance, env: dict[str, str], model: OpenAIServer) -> None:
    resources = build_resources(model_env(env, model))
    close = last_close(instance, resources, "ACME")
    auto_approve(resources, "ACME")
    model.script(answer(signal_fields("ACME", **levels(close, entry=close * 1000))))
    result = run_symbols(instance, resources, ["ACME"])
    app_db = resources["app_db"]
    [row] = app_db.list_signals(symbol="ACME")
    assert row.status == SignalStatus.NOT_PLACED.value and not row.retryable
    assert row.status_reason.startswith(f"entry {round(close * 1000, 2):g} is 99900.0% from the "
                                        f"last close {close:.2f} (limit 5%")
    assert app_db.list_orders("ACME") == []  # nothing claimed: nothing left unknown
    assert resources["broker"].orders("ACME") == []
    meta = metadata_for(result, "orders", "ACME")
    assert (meta["orders_placed"], meta["not_placed"]) == (0, 1)


def test_an_infinite_level_is_reasked_not_stored(
        instance: dg.DagsterInstance, env: dict[str, str], model: OpenAIServer) -> None:
    resources = build_resources(model_env(env, model))
    close = last_close(instance, resources, "ACME")
    bad = {**signal_fields("ACME", **levels(close)), "take_profit": math.inf}
    model.script(answer(bad), answer(signal_fields("ACME", **levels(close))))
    assert run_symbols(instance, resources, ["ACME"]).success
    [row] = resources["app_db"].list_signals(symbol="ACME")
    signal, problem = row.read_signal()
    assert problem == "" and signal is not None and math.isfinite(signal.take_profit or 0)
    assert len(model.requests) == 2
    assert "take_profit" in str(model.requests[1].body["messages"][2:])  # the re-ask said why


def test_blank_reasoning_waits_for_a_person_marked_so(
        instance: dg.DagsterInstance, env: dict[str, str], model: OpenAIServer) -> None:
    resources = build_resources(model_env(env, model))
    close = last_close(instance, resources, "ACME")
    auto_approve(resources, "ACME")
    model.script(answer(signal_fields("ACME", confidence_score=100, reasoning=" ",
                                      key_factors=[], **levels(close))))
    assert run_symbols(instance, resources, ["ACME"]).success
    [row] = resources["app_db"].list_signals(symbol="ACME")
    assert row.status == SignalStatus.PENDING_REVIEW.value
    assert row.status_reason == ("not auto-approved: the reasoning is blank; no key factor is "
                                 "given; a person decides")
    assert resources["broker"].orders("ACME") == []


def test_a_stored_row_that_no_longer_validates_is_an_error_and_blocks_nothing(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")
    poisoned = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED, prompt="old")
    with app_db.session() as session:  # what the old code stored for take_profit=Infinity
        row = session.get(type(poisoned), poisoned.id)
        row.signal_json = {**row.signal_json, "take_profit": None}
    good = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED, prompt="new")
    result = run_symbols(instance, resources, ["ACME"], assets=EXECUTION)
    assert result.success
    failed = app_db.get_signal(poisoned.id)
    assert failed.status == SignalStatus.ERROR.value
    assert "no longer passes the signal schema" in failed.error
    assert app_db.get_signal(good.id).status == SignalStatus.WORKING.value
    assert [o.order_ref for o in resources["broker"].orders("ACME")] == [good.id]


def test_six_resting_buys_never_exceed_the_symbols_exposure(
        instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    resources = build_resources({**env, "TRADING_ORDER_TYPE": "lmt"})
    app_db, broker = resources["app_db"], resources["broker"]
    close = last_close(instance, resources, "ACME")
    # Six approved BUYs (several days' signals, or several analysts), each at 5 % of equity,
    # each with an entry 1 % under the close: every limit rests.
    rows = [stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED, prompt=f"p{i}",
                       entry=round(close * 0.99, 2), stop=round(close * 0.94, 2),
                       target=round(close * 1.1, 2)) for i in range(6)]
    result = run_symbols(instance, resources, ["ACME"], assets=EXECUTION)
    ledger = app_db.list_orders("ACME")
    equity = broker.account().equity
    # Each decision counted the orders resting before it: together within 20 % of equity.
    assert sum(o.quantity * o.limit_price for o in ledger) <= 0.20 * equity
    refused = [s for s in (app_db.get_signal(r.id) for r in rows)
               if s.status == SignalStatus.NOT_PLACED.value]
    assert refused and all(r.retryable for r in refused)
    assert all("in working BUY orders of ACME" in r.status_reason for r in refused)
    assert metadata_for(result, "orders", "ACME")["orders_placed"] == len(ledger) == 6 - \
        len(refused)
    # The 1 % dip fills every resting order: still within 20 % of equity.
    broker.mark("ACME", [Bar(date(2026, 11, 23), close, close, close * 0.985, close * 0.99)])
    held = broker.position("ACME")
    assert held is not None
    assert held.quantity * close * 0.99 <= 0.20 * broker.account().equity + close


def test_removing_a_symbol_ends_its_signals_and_orders_and_a_re_add_executes_nothing_old(
        instance: dg.DagsterInstance, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets.assets.charts import charts
    from trading_assets.assets.indicators import indicators
    from trading_assets.assets.signals import llm_signal
    from trading_assets.cli import main as cli_main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resources = build_resources(env)
    app_db, broker = resources["app_db"], resources["broker"]
    close = last_close(instance, resources, "DELX")
    auto_approve(resources, "DELX", position_size_pct=1.0, max_exposure_pct=2.0)
    waiting = stored_buy(app_db, "DELX", close, SignalStatus.PENDING_REVIEW, prompt="a")
    resting = stored_buy(app_db, "DELX", close, SignalStatus.AUTO_APPROVED, prompt="b",
                         entry=round(close * 0.99, 2))
    assert run_symbols(instance, resources, ["DELX"], assets=EXECUTION).success
    assert app_db.get_signal(resting.id).status == SignalStatus.WORKING.value

    monkeypatch.setattr("trading_assets.cli.get_instance", lambda: instance)
    assert cli_main(["symbols", "remove", "DELX"]) == 0
    out = capsys.readouterr().out
    assert "removed: DELX" in out and "orders cancelled" in out
    # The resting entry was cancelled at the broker, then every signal expired: none can be
    # re-approved into an order after a re-add.
    assert app_db.order_for_signal(resting.id).error == "cancelled: DELX was removed"
    assert {r.status for r in app_db.list_signals(symbol="DELX")} == {"expired"}
    assert all(r.status_reason == "DELX was removed" for r in app_db.list_signals(symbol="DELX"))
    assert broker.working_orders() == []

    # Re-added: the settings come back (1 %, 2 %), the old approvals stay expired.
    assert cli_main(["symbols", "add", "DELX"]) == 0
    assert app_db.settings_for("DELX").max_exposure_pct == 2.0
    run_symbols(instance, resources, ["DELX"],
                assets=[ohlcv, indicators, charts, llm_signal, orders, portfolio])
    old = {waiting.id, resting.id}
    assert [o.signal_id for o in app_db.list_orders("DELX") if o.signal_id in old] == \
        [resting.id]  # only the attempt cancelled at removal: nothing new for an old signal
    for order in app_db.list_orders("DELX"):  # a fresh signal's order has the kept 1 % size
        if order.signal_id not in old:
            assert order.quantity * order.limit_price <= 0.01 * broker.account().equity


def test_an_entry_executes_only_once_filled_and_a_day_old_one_expires(
        instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    resources = build_resources(env)  # the default bracket: a limit entry that rests
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")  # Friday 2026-11-20: 281.70
    fills = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED, prompt="at-close")
    rests = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED, prompt="3pct-under",
                       entry=round(close * 0.97, 2), stop=round(close * 0.92, 2))
    assert run_symbols(instance, resources, ["ACME"], assets=EXECUTION).success
    assert {app_db.get_signal(s.id).status for s in (fills, rests)} == {"working"}

    # Monday's bar (low 275.63) reaches the close, not 3 % under it.
    monday = build_resources({**env, "TRADING_SIMULATED_AS_OF": "2026-11-23"})
    result = run_symbols(instance, monday, ["ACME"], assets=[ohlcv, orders, portfolio])
    assert app_db.get_signal(fills.id).status == SignalStatus.EXECUTED.value
    [trade] = app_db.trades(signal_id=fills.id)
    assert (trade.entry_price, trade.entry_on, trade.status) == (close, date(2026, 11, 23),
                                                                 "open")
    expired = app_db.get_signal(rests.id)
    assert expired.status == SignalStatus.ORDER_FAILED.value
    assert "expired: not filled within 1 session (time in force DAY" in expired.status_reason
    notes = metadata_for(result, "orders", "ACME")["reconciled"]
    assert f"{rests.id}: Submitted -> Cancelled" in notes
    assert f"{fills.id}: Submitted -> Filled" in notes


def test_the_summary_reports_every_order_decision_of_the_run(
        instance: dg.DagsterInstance, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets.cli import main as cli_main

    day2 = {**env, "TRADING_ORDER_TYPE": "mkt", "TRADING_SIMULATED_AS_OF": "2026-11-23",
            "DAGSTER_HOME": str(tmp_path / "home")}
    for name, value in day2.items():
        monkeypatch.setenv(name, value)
    resources = build_resources({**env, "TRADING_ORDER_TYPE": "mkt"})
    close = last_close(instance, resources, "SUMX")
    approved = stored_buy(resources["app_db"], "SUMX", close, SignalStatus.PENDING_REVIEW)
    resources["app_db"].review_signal(approved.id, SignalStatus.APPROVED, reviewer="alice")

    # Day 2: a new signal for Monday's bar, and day 1's approval placed in the same run.
    assert cli_main(["materialize", "--symbols", "SUMX", "--in-process"]) == 0
    out = capsys.readouterr().out
    [order] = resources["app_db"].list_orders("SUMX")
    assert order.signal_id == approved.id and order.status == "Filled"
    row = next(line for line in out.splitlines() if line.startswith("SUMX"))
    assert f"signal {approved.id[:8]}: BUY {order.quantity:g} SUMX (5% of equity): Filled" in row


# --- a person's decisions run the same checks ----------------------------------------------


def test_approve_refuses_at_once_what_the_orders_step_would_refuse(
        instance: dg.DagsterInstance, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    resources = build_resources(env)
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")
    absurd = stored_buy(app_db, "ACME", close, SignalStatus.PENDING_REVIEW, prompt="absurd",
                        entry=round(close * 1000, 2), stop=round(close * 999, 2),
                        target=round(close * 1001, 2))
    assert run_cli(monkeypatch, env, "signals", "approve", absurd.id, "--reviewer", "bob") == 1
    err = capsys.readouterr().err
    assert "Not approved: entry" in err and "99900.0% from the last close" in err
    assert "these are the signal's own numbers, so reject it" in err
    assert app_db.get_signal(absurd.id).status == SignalStatus.PENDING_REVIEW.value

    held_out = stored_buy(app_db, "ACME", close, SignalStatus.PENDING_REVIEW, prompt="cash")
    app_db.upsert_settings(SymbolSettings(symbol="ACME", enabled=False))
    assert run_cli(monkeypatch, env, "signals", "approve", held_out.id) == 1
    assert "approve it again once that no longer holds" in capsys.readouterr().err
    app_db.upsert_settings(SymbolSettings(symbol="ACME"))
    assert run_cli(monkeypatch, env, "signals", "approve", held_out.id) == 0
    assert app_db.get_signal(held_out.id).status == SignalStatus.APPROVED.value
    assert "The pre-trade checks passed" in capsys.readouterr().out


def test_a_hold_cannot_be_approved_and_a_stale_signal_expires_at_approval(
        instance: dg.DagsterInstance, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    resources = build_resources(env)
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")
    hold = stored_buy(app_db, "ACME", close, SignalStatus.NO_ACTION, prompt="hold",
                      action=Action.HOLD, entry=None, stop=None, target=None)
    assert run_cli(monkeypatch, env, "signals", "approve", hold.id) == 1
    assert "no_action is final" in capsys.readouterr().err
    old = stored_buy(app_db, "ACME", close, SignalStatus.PENDING_REVIEW, prompt="old")
    with app_db.session() as session:  # a signal of the 17th, three sessions before the bars
        session.get(type(old), old.id).bar_date = date(2026, 11, 17)
    assert run_cli(monkeypatch, env, "signals", "approve", old.id) == 1
    assert "3 trading days old" in capsys.readouterr().err
    assert app_db.get_signal(old.id).status == SignalStatus.EXPIRED.value


def test_a_person_cancels_a_working_order(
        instance: dg.DagsterInstance, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    resources = build_resources(env)
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")
    resting = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED,
                         entry=round(close * 0.98, 2))
    assert run_symbols(instance, resources, ["ACME"], assets=EXECUTION).success
    assert app_db.get_signal(resting.id).status == SignalStatus.WORKING.value
    assert run_cli(monkeypatch, env, "signals", "cancel", resting.id, "--reviewer", "bob",
                  "--note", "changed my mind") == 0
    cancelled = app_db.get_signal(resting.id)
    assert cancelled.status == SignalStatus.ORDER_FAILED.value
    assert cancelled.status_reason.endswith("cancelled by bob: changed my mind")
    assert resources["broker"].working_orders() == []
    # ... and it can be re-approved (a new attempt) or rejected, like any failed order.
    assert run_cli(monkeypatch, env, "signals", "reject", resting.id) == 0


def test_each_portfolio_materialization_adds_a_point_of_cash_plus_marked_positions(
        instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    resources = build_resources({**env, "TRADING_ORDER_TYPE": "mkt"})
    app_db = resources["app_db"]
    close = last_close(instance, resources, "ACME")
    filled = stored_buy(app_db, "ACME", close, SignalStatus.AUTO_APPROVED)
    first = run_symbols(instance, resources, ["ACME"], assets=EXECUTION)
    monday = build_resources({**env, "TRADING_ORDER_TYPE": "mkt",
                              "TRADING_SIMULATED_AS_OF": "2026-11-23"})
    run_symbols(instance, monday, ["ACME"], assets=[ohlcv, orders, portfolio])
    points = app_db.equity_curve()
    assert len(points) == 2
    for point in points:
        marked = sum(p["market_value"] for p in point.positions.values())
        assert point.equity == pytest.approx(point.cash + marked, abs=0.01)
    assert points[0].cash < 100_000.0 and points[1].positions["ACME"]["quantity"] > 0
    # Monday's close marks the position: the curve moves with it.
    assert points[1].positions["ACME"]["market_value"] != points[0].positions["ACME"][
        "market_value"]
    meta = metadata_for(first, "portfolio", "ACME")
    assert "data:image/png;base64," in meta["equity_curve"]
    [trade] = meta["trades"].records
    assert trade.data["signal_id"] == filled.id and trade.data["status"] == "open"
