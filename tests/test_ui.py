"""The Gradio app's tab functions (ui.*_tab) on test resources and a test Dagster instance."""

from __future__ import annotations

import ast
import getpass
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from PIL import Image

from resources.ibkr import disconnect_all, reset_pacing
from tests.conftest import on_bars_evening
from tests.peers.tws_peer import TwsPeer
from trading_assets.core.fills import Bar
from trading_assets.core.keys import bars_info_key, outcomes_key
from trading_assets.core.orders import Market, OrderRequest, OrderType, SymbolSettings
from trading_assets.core.outcomes import outcomes_frame
from trading_assets.core.review import reviewer_name
from trading_assets.core.scorecard import SCORECARD_TABLE_TITLES
from trading_assets.core.signal import (
    Action,
    AnalysisOutcome,
    ConfidenceLevel,
    SignalStatus,
    TradingSignal,
    Trend,
)
from trading_assets.partitions import add_symbols, list_symbols
from trading_assets.run_monitor import WORKER_TAG
from trading_assets.settings import build_resources
from ui.config import RunLauncher, UIConfig, UIConfigError, UIContext, UIError, is_loopback
from ui.format import escape
from ui.history_tab import history_table
from ui.portfolio_tab import (
    account_markdown,
    orders_table,
    pnl_table,
    positions_table,
    recent_decisions_table,
    trades_table,
)
from ui.review_tab import (
    pending_signals,
    queue_table,
    retry_signals,
    review,
    signal_label,
    signal_view,
)
from ui.scorecard_tab import scorecard_view
from ui.symbol_form import parse_settings
from ui.symbols_tab import (
    add_new_symbols,
    launches_markdown,
    remove_symbol,
    run_now,
    save_settings,
    set_enabled,
    symbols_table,
)

GOOD_FORM: dict[str, object] = {
    "enabled": True, "auto_approve": False, "priority": "3", "position_size_pct": "4.5",
    "max_exposure_pct": "15", "risk_level": "low", "min_confidence": "70", "exchange": "smart",
    "primary_exchange": "nasdaq", "currency": "usd",
}


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """conftest's environment with MLflow off: these tests are about the page (5 s per run)."""
    return {**env, "MLFLOW_TRACKING_URI": "off"}


DAGSTER_DOWN = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def shared_instance() -> Iterator[dg.DagsterInstance]:
    """One test instance for the module (creating one takes ~2 s); each test starts empty."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def ctx(resources: dict[str, Any], shared_instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[UIContext]:
    on_bars_evening(monkeypatch)  # the seeded signals' evening: Approve checks their age
    # Port 1 on loopback: nothing answers, as when the Dagster UI is not running.
    yield UIContext(resources=resources, instance=shared_instance,
                    config=UIConfig(dagster_url=DAGSTER_DOWN))
    for symbol in list_symbols(shared_instance):
        shared_instance.delete_dynamic_partition("symbols", symbol)


def png(color: str = "white") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def seed_signal(ctx: UIContext, symbol: str = "TSLA", *, action: Action = Action.BUY,
                score: int = 72, bar_date: date = date(2026, 11, 20), simulated: bool = True,
                charts: bool = True, dagster_run_id: str = "run-1234abcd",
                provider: str = "openai", model: str = "gpt-test") -> Any:
    """A stored pending signal with charts in the store, as llm_signal would leave it."""
    levels = ({"entry_price": 100.0, "stop_loss": 95.0, "take_profit": 110.0}
              if action is not Action.HOLD else {})
    signal = TradingSignal(
        symbol=symbol, action=action, confidence_level=ConfidenceLevel.HIGH if score >= 80
        else ConfidenceLevel.MEDIUM, confidence_score=score,
        reasoning="Breakout above resistance <b>on volume</b>.",
        key_factors=["RSI 61: momentum", "MACD cross"], trend=Trend.UP, support=92.0,
        resistance=112.0, position_size_pct=4.0, provider=provider, model=model,
        bar_date=bar_date, **levels,
    )
    outcome = AnalysisOutcome(symbol=symbol, signal=signal, provider=provider, model=model,
                              prompt_version="signal_v1@abc", prompt_tokens=1200,
                              completion_tokens=300, cost_usd=0.0123, latency_s=2.5)
    keys = {t: f"charts/{symbol}/{bar_date}/{t}.png" for t in ("daily", "weekly")}
    if charts:
        for key in keys.values():
            ctx.store.put_bytes(key, png(), "image/png")
    ctx.store.write_json(bars_info_key(symbol), {"last_date": str(bar_date),
                                                  "last_close": 100.0})
    return ctx.app_db.record_signal(
        outcome=outcome, bar_date=bar_date,  # as llm_signal stores it (core/policy.py)
        status=SignalStatus.NO_ACTION if action is Action.HOLD else SignalStatus.PENDING_REVIEW,
        data_source="simulated" if simulated else "ibkr", simulated=simulated, last_bars=[],
        indicators={"daily": {"close": 101.5, "rsi_14": 61.2, "sma_200": None},
                    "weekly": {"close": 101.5, "rsi_14": 55.0}},
        chart_keys=keys, dagster_run_id=dagster_run_id,
    )


# ------------------------------------------------------------------------------- symbols


def test_adding_symbols_creates_partitions_and_default_settings(ctx: UIContext) -> None:
    message = add_new_symbols(ctx, " aapl, MSFT ,brk.b")
    assert list_symbols(ctx.instance) == ["AAPL", "MSFT", "BRK.B"]
    assert {s.symbol for s in ctx.app_db.list_settings()} == {"AAPL", "MSFT", "BRK.B"}
    assert message.startswith("AAPL, MSFT, BRK.B: added. With simulated data")
    assert add_new_symbols(ctx, "AAPL") == "AAPL: already there."


@pytest.mark.parametrize("raw", ["", "  ", "AAPL/../etc", "TOOLONGSYMBOL1", "A..B",
                                 "<img src=x onerror=alert(1)>", "AAPL, BAD SYM", "MSFT,.X"])
def test_an_invalid_symbol_is_refused_and_nothing_is_written(ctx: UIContext, raw: str) -> None:
    with pytest.raises(UIError) as refused:
        add_new_symbols(ctx, raw)
    assert str(refused.value)  # a reason, not an empty refusal
    assert list_symbols(ctx.instance) == []
    assert ctx.app_db.list_settings() == []


def test_refusals_are_escaped_before_they_reach_the_page() -> None:
    # Markdown renders each backslash-escaped character as itself: no tag, link or image.
    assert escape("<img src=x onerror=alert(1)>") == "\\<img src=x onerror=alert(1)\\>"
    assert escape("![x](http://h/a.png)") == "!\\[x\\](http\\://h/a.png)"


def test_removing_a_symbol_drops_partition_and_settings_but_keeps_signals(ctx: UIContext
                                                                         ) -> None:
    add_new_symbols(ctx, "TSLA,NVDA")
    seed_signal(ctx, "TSLA")
    assert "Removed TSLA" in remove_symbol(ctx, "tsla")
    assert list_symbols(ctx.instance) == ["NVDA"]
    assert [s.symbol for s in ctx.app_db.list_settings()] == ["NVDA"]
    assert len(ctx.app_db.list_signals(symbol="TSLA")) == 1
    with pytest.raises(UIError, match="not a symbol here"):
        remove_symbol(ctx, "TSLA")


def test_a_symbol_typed_with_a_newline_or_nbsp_is_refused_not_stripped(ctx: UIContext) -> None:
    add_new_symbols(ctx, "TSLA")
    for raw in ("TSLA\n", "\tTSLA", "\u00a0TSLA", "ſpy"):
        with pytest.raises(UIError):
            remove_symbol(ctx, raw)
    assert "Removed TSLA" in remove_symbol(ctx, " TSLA ")


def test_enable_and_disable_change_the_setting(ctx: UIContext) -> None:
    add_new_symbols(ctx, "TSLA")
    assert set_enabled(ctx, "TSLA", False) == "TSLA disabled."
    assert ctx.app_db.settings_for("TSLA").enabled is False
    set_enabled(ctx, "TSLA", True)
    assert ctx.app_db.settings_for("TSLA").enabled is True
    with pytest.raises(UIError, match="add it first"):
        set_enabled(ctx, "NVDA", False)
    assert ctx.app_db.list_settings()[0].symbol == "TSLA"


def test_settings_are_parsed_and_saved(ctx: UIContext) -> None:
    add_new_symbols(ctx, "TSLA")
    message = save_settings(ctx, "TSLA", GOOD_FORM)
    assert message.startswith("Saved TSLA")
    assert ctx.app_db.settings_for("TSLA") == SymbolSettings(
        symbol="TSLA", enabled=True, priority=3, position_size_pct=4.5, risk_level="low",
        max_exposure_pct=15.0, auto_approve=False, min_confidence=70, exchange="SMART",
        primary_exchange="NASDAQ", currency="USD")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("priority", "high", "is not a number"),
    ("priority", "2.5", "whole number"),
    ("position_size_pct", "", "is empty"),
    ("position_size_pct", "0", "out of range"),
    ("position_size_pct", "5%", "is not a number"),
    ("position_size_pct", "nan", "not a finite number"),
    ("max_exposure_pct", "101", "out of range"),
    ("max_exposure_pct", "3", "larger than the max exposure"),
    ("min_confidence", "-1", "out of range"),
    ("min_confidence", "100.5", "whole number"),
    ("risk_level", "yolo", "Risk level"),
    ("currency", "DOLLARS", "three-letter"),
    ("exchange", "NY SE", "exchange code"),
    ("auto_approve", "maybe", "yes or no"),
])
def test_settings_that_do_not_parse_are_refused_with_the_reason(field: str, value: str,
                                                                reason: str) -> None:
    with pytest.raises(UIError, match=reason):
        parse_settings("TSLA", {**GOOD_FORM, field: value})


def test_refused_settings_write_nothing(ctx: UIContext) -> None:
    add_new_symbols(ctx, "TSLA")
    before = ctx.app_db.settings_for("TSLA")
    with pytest.raises(UIError, match="out of range"):
        save_settings(ctx, "TSLA", {**GOOD_FORM, "min_confidence": "250"})
    assert ctx.app_db.settings_for("TSLA") == before


def test_symbols_table_shows_settings_last_signal_and_last_run(ctx: UIContext) -> None:
    add_new_symbols(ctx, "TSLA,NVDA")
    save_settings(ctx, "NVDA", {**GOOD_FORM, "priority": "9", "auto_approve": True})
    seed_signal(ctx, "TSLA")

    ctx.instance.add_run(dg.DagsterRun(job_name="symbol_pipeline", run_id="tsla-cli-run-0001",
                                    status=dg.DagsterRunStatus.SUCCESS,
                                    tags={"dagster/partition": "TSLA",
                                          "trading/launched_by": "cli"}))
    table = symbols_table(ctx)
    assert list(table["symbol"]) == ["NVDA", "TSLA"]  # higher priority first
    nvda, tsla = table.iloc[0], table.iloc[1]
    assert (nvda["auto-approve"], nvda["position size %"], nvda["risk level"]) == ("yes", 4.5,
                                                                                   "low")
    assert tsla["last signal"] == "2026-11-20 BUY 72 · pending_review · simulated"
    assert tsla["last run"].startswith("succeeded ") and "· CLI · run tsla-cli" in tsla["last run"]
    assert nvda["last run"] == "never"
    ctx.instance.delete_run("tsla-cli-run-0001")  # the module's instance is shared


# --------------------------------------------------------------------------- IBKR check


@pytest.fixture
def ibkr_ctx(env: dict[str, str], ctx: UIContext) -> Iterator[UIContext]:
    reset_pacing()
    with TwsPeer() as peer:
        env.update({"TRADING_DATA_SOURCE": "ibkr", "IBKR_PORT": str(peer.port),
                    "IBKR_CONNECT_TIMEOUT": "3", "IBKR_REQUEST_TIMEOUT": "3"})
        yield UIContext(resources=build_resources(env), instance=ctx.instance)
        disconnect_all()


def test_with_ibkr_configured_a_symbol_is_qualified_before_it_is_added(ibkr_ctx: UIContext
                                                                      ) -> None:
    message = add_new_symbols(ibkr_ctx, "AAPL")
    assert "APPLE INC" in message and "NASDAQ" in message
    assert list_symbols(ibkr_ctx.instance) == ["AAPL"]
    assert ibkr_ctx.app_db.settings_for("AAPL").primary_exchange == "NASDAQ"


def test_a_contract_ibkr_does_not_know_is_refused_and_nothing_is_written(
        ibkr_ctx: UIContext) -> None:
    with pytest.raises(UIError, match="IBKR could not confirm ZZZZ"):
        add_new_symbols(ibkr_ctx, "AAPL,ZZZZ")
    assert list_symbols(ibkr_ctx.instance) == []
    assert ibkr_ctx.app_db.list_settings() == []


def test_an_unreachable_gateway_is_a_message(env: dict[str, str], ctx: UIContext) -> None:
    env.update({"TRADING_BROKER": "ibkr", "IBKR_PORT": "1", "IBKR_CONNECT_TIMEOUT": "2"})
    ctx.resources = build_resources(env)
    with pytest.raises(UIError, match="not reachable at 127.0.0.1:1"):
        add_new_symbols(ctx, "AAPL")
    assert list_symbols(ctx.instance) == []


# ------------------------------------------------------------------------------ run now


@dataclass
class FakeResult:
    run_id: str
    success: bool


def test_run_now_starts_in_the_background_and_reports_its_run(ctx: UIContext) -> None:
    release = threading.Event()
    calls: list[list[str]] = []

    def materialize(symbols: list[str], _instance: Any, _resources: Any) -> list[FakeResult]:
        calls.append(symbols)
        release.wait(10)
        return [FakeResult("0123abcd-run", True)]

    ctx.launcher = RunLauncher(materialize)
    add_new_symbols(ctx, "TSLA")
    message = run_now(ctx, "TSLA")  # returns while the run is still going
    assert message.startswith("Started a Dagster run for TSLA at ")
    # No daemon: the run executes beside the app; no Dagster UI answers: no link to it.
    assert ("in a separate process this app keeps for its runs (no Dagster daemon running)"
            in message)
    assert "The Dagster UI is not running (`make up` or `make dev` starts it)" in message
    assert "/runs" not in message
    assert "TSLA: started " in launches_markdown(ctx) and "starting" in launches_markdown(ctx)
    assert symbols_table(ctx).iloc[0]["last run"] == "starting (Run now)"
    with pytest.raises(UIError, match="already has a run in progress"):
        run_now(ctx, "TSLA")
    release.set()
    assert ctx.launcher.join(10)
    assert calls == [["TSLA"]]
    assert ctx.launcher.version == 1
    assert "succeeded" in launches_markdown(ctx)
    assert "[0123abcd](http://127.0.0.1:1/runs/0123abcd-run)" in launches_markdown(ctx)
    with pytest.raises(UIError, match="add it first"):
        run_now(ctx, "NVDA")


def test_a_failed_launch_is_reported_not_raised(ctx: UIContext) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("instance storage is read-only")

    ctx.launcher = RunLauncher(explode)
    add_new_symbols(ctx, "TSLA")
    run_now(ctx, "TSLA")
    assert ctx.launcher.join(10)
    assert "FAILED: RuntimeError: instance storage is read-only" in launches_markdown(ctx)


def test_run_now_materializes_the_graph_into_a_reviewable_signal(
        resources: dict[str, Any], instance: dg.DagsterInstance) -> None:
    ctx = UIContext(resources=resources, instance=instance)
    add_new_symbols(ctx, "ORCL")  # its simulated bars give an actionable BUY
    run_now(ctx, "ORCL")  # the real runs layer (in-process here), against the test instance
    assert ctx.launcher.join(120)
    [launch] = ctx.launcher.recent()
    assert launch.success, launch.error
    run = ctx.instance.get_run_by_id(launch.run_ids[0])
    assert run is not None and run.is_success
    [pending] = pending_signals(ctx)
    assert pending.symbol == "ORCL" and pending.simulated
    view = signal_view(ctx, pending.id)
    assert all(data and data.startswith(b"\x89PNG") for data in view.charts.values())
    last_run = symbols_table(ctx).iloc[0]["last run"]
    assert last_run.startswith("succeeded ") and "· Gradio app ·" in last_run


def test_the_apps_status_reads_see_the_real_symbols_while_run_now_runs_without_a_daemon(
        resources: dict[str, Any], instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Run now with no daemon: the run must not share the app's instance with the page's
    # threads. Whenever the run checks its partition range (Dagster does, at each step and on
    # each symbol's metadata), and between polls here, a person adds a symbol on another
    # thread and the Symbols table is read: it lists every symbol the instance really holds.
    ctx = UIContext(resources=resources, instance=instance)
    add_new_symbols(ctx, "ORCL")
    # Another instance object on the same storage: what is really there.
    real = dg.DagsterInstance.from_ref(instance.get_ref())
    added, mismatches = [], []

    def page_reads() -> None:
        for _ in range(2):
            added.append(f"NEW{len(added)}")
            add_new_symbols(ctx, added[-1])
            listed = set(symbols_table(ctx)["symbol"])
            truth = set(real.get_dynamic_partitions("symbols"))
            if listed != truth:
                mismatches.append((sorted(truth - listed), sorted(listed - truth)))

    def on_another_thread() -> None:
        reader = threading.Thread(target=page_reads)
        reader.start()
        reader.join(60)

    checked = dg.DynamicPartitionsDefinition.get_partition_keys_in_range

    def while_checking(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("run-now-") and len(added) < 24:
            on_another_thread()  # the run waits meanwhile, mid-step
        return checked(self, *args, **kwargs)

    monkeypatch.setattr(dg.DynamicPartitionsDefinition, "get_partition_keys_in_range",
                        while_checking)
    run_now(ctx, "ORCL")
    while ctx.launcher.recent()[0].running and len(added) < 30:
        on_another_thread()
    assert ctx.launcher.join(300)
    [launch] = ctx.launcher.recent()
    assert launch.success, launch.error
    assert added and mismatches == []
    # The run executed in a process of its own, not in the app's.
    worker = instance.get_run_by_id(launch.run_ids[0]).tags[WORKER_TAG]
    assert worker.rpartition(":")[2] != str(os.getpid())


# ------------------------------------------------------------------------ signal review


def test_pending_queue_is_newest_first_and_only_pending(ctx: UIContext) -> None:
    old = seed_signal(ctx, "TSLA", bar_date=date(2026, 11, 19))
    new = seed_signal(ctx, "NVDA")
    done = seed_signal(ctx, "AAPL")
    review(ctx, done.id, "reject", "", "bob")
    assert [r.id for r in pending_signals(ctx)] == [new.id, old.id]
    table = queue_table(pending_signals(ctx))
    assert list(table["symbol"]) == ["NVDA", "TSLA"]
    assert list(table["id"]) == [new.id[:8], old.id[:8]]  # short; the detail shows it whole
    assert "simulated" in signal_label(new)
    # Nothing a person cannot act on waits: a HOLD is no_action.
    hold = seed_signal(ctx, "AMD", action=Action.HOLD)
    assert hold.id not in [r.id for r in pending_signals(ctx)]


def test_signal_view_shows_everything_a_reviewer_needs(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    view = signal_view(ctx, row.id)
    assert view.simulated and view.status == "pending_review"
    assert view.charts["daily"] == png() and view.charts["weekly"] == png()
    text = view.markdown
    for expected in ("TSLA · BUY · confidence 72 (MEDIUM)", "Status: pending_review",
                     "RSI 61: momentum", "| entry | 100.00 |", "| stop | 95.00 |",
                     "| target | 110.00 |",
                     "| R multiple | 2.00 |", "| resistance | 112.00 |",
                     "openai / gpt-test", "cost $0.0123", "1200+300 tokens",
                     "simulated bars (not market data)", f"Signal id `{row.id}`",
                     "[run-1234](http://127.0.0.1:1/runs/run-1234abcd)",
                     "**MLflow run:** not logged"):
        assert expected in text, expected
    assert "\\<b\\>on volume\\</b\\>" in text  # model text is escaped, not rendered as HTML
    assert "| RSI 14 | 61.20 | 55.00 |" in view.indicators_markdown
    assert "| SMA 200 | – | – |" in view.indicators_markdown  # recorded but not warmed up
    assert "MACD" not in view.indicators_markdown  # never recorded, not invented


def test_real_data_is_not_flagged_and_a_missing_chart_is_a_message(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA", simulated=False, charts=False)
    view = signal_view(ctx, row.id)
    assert not view.simulated and "SIMULATED" not in view.markdown
    assert view.charts == {"daily": None, "weekly": None}
    assert "The daily chart could not be read" in view.markdown
    with pytest.raises(UIError, match="No signal with id"):
        signal_view(ctx, "nope")


def big_png() -> bytes:
    import numpy as np

    noise = (np.random.default_rng(1).random((300, 400, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda data: data[: len(data) // 2], "image file is truncated"),
    (lambda data: b"not a png at all", "the stored file is not an image"),
])
def test_a_corrupt_chart_is_a_placeholder_with_the_reason(ctx: UIContext, damage: Any,
                                                          reason: str) -> None:
    row = seed_signal(ctx, "TSLA")
    ctx.store.put_bytes(row.chart_keys["daily"], damage(big_png()), "image/png")
    view = signal_view(ctx, row.id)
    assert f"The daily chart could not be shown: {reason}" in view.markdown
    with Image.open(io.BytesIO(view.charts["daily"])) as placeholder:
        placeholder.load()  # what the page is given decodes
    assert view.charts["weekly"] == png()
    # The rest of the page still works.
    assert queue_table(pending_signals(ctx))["symbol"].tolist() == ["TSLA"]
    assert "TSLA · BUY" in view.markdown
    from ui.format import pil_image

    assert pil_image(damage(big_png())).size == (720, 80)


def test_approving_records_who_when_and_why(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    message = review(ctx, row.id, "approve", "  levels look sane ", "alice")
    assert "is now **approved** by alice" in message
    assert ctx.app_db.get_signal(row.id).status == "approved"
    [stored] = ctx.app_db.reviews_for(row.id)
    assert (stored.decision, stored.reviewer, stored.note) == ("approved", "alice",
                                                               "levels look sane")
    assert stored.decided_at is not None
    assert "approved by alice" in signal_view(ctx, row.id).markdown
    with pytest.raises(UIError, match="is approved: a person cannot move a signal from "
                                      "approved to approved"):
        review(ctx, row.id, "approve", "", "alice")


def test_rejecting_and_refusals(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    assert "**rejected**" in review(ctx, row.id, "reject", "too extended", "bob")
    with pytest.raises(UIError, match="rejected is final"):
        review(ctx, row.id, "approve", "", "bob")
    with pytest.raises(UIError, match="Choose a signal"):
        review(ctx, "", "approve", "", "bob")
    with pytest.raises(UIError, match="No signal with id 'missing'"):
        review(ctx, "missing", "approve", "", "bob")
    with pytest.raises(UIError, match="under 2000"):
        review(ctx, seed_signal(ctx, "NVDA").id, "approve", "x" * 2001, "bob")
    assert len(ctx.app_db.reviews_for(row.id)) == 1


def test_reviewer_is_the_logged_in_user_or_the_os_user(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    assert reviewer_name("alice") == "alice"
    monkeypatch.setattr(getpass, "getuser", lambda: "trader")
    assert reviewer_name(None) == "trader"


def test_history_filters_by_symbol_status_and_date_with_run_links(ctx: UIContext) -> None:
    ctx.config = UIConfig(mlflow_url="http://mlflow.test:5000")
    tsla = seed_signal(ctx, "TSLA", bar_date=date(2026, 11, 19))
    nvda = seed_signal(ctx, "NVDA", bar_date=date(2026, 11, 20))
    ctx.app_db.set_mlflow_runs({nvda.id: "abcdef0123456789"})
    review(ctx, tsla.id, "approve", "ok", "alice")
    assert list(history_table(ctx)["symbol"]) == ["NVDA", "TSLA"]
    approved = history_table(ctx, status="approved")
    assert list(approved["symbol"]) == ["TSLA"]
    assert (approved.iloc[0]["reviewed by"], approved.iloc[0]["note"]) == ("alice", "ok")
    assert list(history_table(ctx, symbol="nvda")["symbol"]) == ["NVDA"]
    assert list(history_table(ctx, since="2026-11-20")["symbol"]) == ["NVDA"]
    assert list(history_table(ctx, until="2026-11-19")["symbol"]) == ["TSLA"]
    row = history_table(ctx, symbol="NVDA").iloc[0]
    assert row["Dagster run"] == "[run-1234](http://localhost:3000/runs/run-1234abcd)"
    assert row["MLflow run"] == "[abcdef01](http://mlflow.test:5000/#/runs/abcdef0123456789)"
    # Without MLFLOW_UI_URL the id is shown instead of a link.
    ctx.config = UIConfig()
    assert history_table(ctx, symbol="NVDA").iloc[0]["MLflow run"] == "`abcdef0123456789`"
    # A tracking server's own address serves when MLFLOW_UI_URL is not set.
    ctx.resources = {**ctx.resources, "tracking": SimpleNamespace(ui_url="http://mlflow:5000/")}
    assert ctx.mlflow_run_url("abc") == "http://mlflow:5000/#/runs/abc"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"since": "20-11-2026"}, "not a date"),
    ({"until": "2026-02-30"}, "not a date"),
    ({"since": "2026-11-21", "until": "2026-11-20"}, "is after"),
    ({"status": "bogus"}, "is not one of"),
    ({"symbol": "BAD/X"}, "not a valid ticker"),
])
def test_history_refuses_bad_filters(ctx: UIContext, kwargs: dict[str, str], reason: str
                                     ) -> None:
    with pytest.raises(UIError, match=reason):
        history_table(ctx, **kwargs)


# ---------------------------------------------------------------- portfolio and orders


def test_portfolio_shows_account_positions_orders_and_decisions(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    ctx.broker.place_order(OrderRequest(symbol="TSLA", action=Action.BUY, quantity=10,
                                        order_type=OrderType.MARKET, order_ref=row.id),
                           Market("TSLA", last_close=100.0, bar_date=date(2026, 11, 19)))
    ctx.broker.mark("TSLA", [Bar(date(2026, 11, 20), 104.0, 106.0, 103.0, 105.0)])
    review(ctx, row.id, "approve", "", "alice")  # only an approved signal can be claimed
    ctx.app_db.claim_order(row.id, "TSLA", "paper", "BUY", 10, "MKT", None, None, None)
    ctx.app_db.update_order(row.id, ctx.broker.find_order(row.id))
    ctx.app_db.record_decision("TSLA", row.id, True, "BUY 10 TSLA (4% of equity)", "run-1")
    ctx.app_db.record_decision("NVDA", "", False, "no approved signal waiting")
    account = account_markdown(ctx)
    assert "PAPER" in account and "| cash | equity |" in account
    assert "min confidence gates auto-approval only" in account  # the orders step's policy
    assert "0.5% of cash" in account
    positions = positions_table(ctx)
    assert positions.iloc[0]["symbol"] == "TSLA" and positions.iloc[0]["quantity"] == 10
    assert positions.iloc[0]["unrealized P&L"] > 0
    orders = orders_table(ctx)
    assert (orders.iloc[0]["status"], orders.iloc[0]["order ref"]) == ("Filled", row.id[:8])
    decisions = recent_decisions_table(ctx)
    assert list(decisions["symbol"]) == ["NVDA", "TSLA"]
    assert list(decisions["placed"]) == ["no", "yes"]
    [trade] = trades_table(ctx).to_dict("records")  # the fill made a trade, still open
    assert (trade["symbol"], trade["qty"], trade["status"], trade["signal"]) == (
        "TSLA", 10, "open", row.id[:8])
    [pnl] = pnl_table(ctx, ctx.broker.positions()).to_dict("records")
    assert pnl["symbol"] == "TSLA" and pnl["unrealized P&L"] > 0


def test_an_unreachable_broker_is_a_message(ctx: UIContext) -> None:
    class DownBroker:
        label = "IBKR 4002"
        kind = "ibkr"

        def account(self) -> None:
            raise ConnectionError("gateway not reachable")

        positions = account

    ctx.resources = {**ctx.resources, "broker": DownBroker()}
    with pytest.raises(UIError, match="The broker \\(IBKR 4002\\) did not answer"):
        account_markdown(ctx)
    with pytest.raises(UIError, match="gateway not reachable"):
        positions_table(ctx)
    assert orders_table(ctx).empty  # the ledger is ours and still readable


# ----------------------------------------------------------------------- configuration


def test_defaults_listen_on_localhost_without_a_login() -> None:
    config = UIConfig.from_env({})
    assert (config.server_name, config.server_port, config.auth) == ("127.0.0.1", 7860, None)
    assert config.dagster_url == "http://localhost:3000" and config.mlflow_url == ""
    config.check_listen()


def test_gradio_variables_are_honoured() -> None:
    config = UIConfig.from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8080",
                                "GRADIO_USERNAME": "alice", "GRADIO_PASSWORD": "s3cret-s3cret",
                                "DAGSTER_WEBSERVER_URL": "http://dagster:3000/",
                                "MLFLOW_UI_URL": "https://mlflow.example"})
    assert (config.server_name, config.server_port) == ("0.0.0.0", 8080)
    assert config.auth == ("alice", "s3cret-s3cret")
    assert config.dagster_url == "http://dagster:3000"
    config.check_listen()


@pytest.mark.parametrize("env", [
    {"GRADIO_SERVER_NAME": "0.0.0.0"},
    {"GRADIO_SERVER_NAME": "192.168.1.5", "GRADIO_USERNAME": "alice"},
    {"GRADIO_SERVER_NAME": "trading.example"},
])
def test_listening_beyond_localhost_needs_a_login(env: dict[str, str]) -> None:
    with pytest.raises(UIConfigError, match="without a login|GRADIO_PASSWORD is not set"):
        UIConfig.from_env(env).check_listen()


@pytest.mark.parametrize(("env", "reason"), [
    ({"GRADIO_SERVER_PORT": "abc"}, "not a port number"),
    ({"GRADIO_SERVER_PORT": "70000"}, "not a port number"),
    ({"DAGSTER_WEBSERVER_URL": "javascript:alert(1)"}, "not an http"),
    ({"GRADIO_PASSWORD": "x"}, "GRADIO_USERNAME is not set"),
])
def test_bad_settings_are_refused_with_the_reason(env: dict[str, str], reason: str) -> None:
    with pytest.raises(UIConfigError, match=reason):
        UIConfig.from_env(env).check_listen()


@pytest.mark.parametrize(("name", "local"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("127.0.0.2", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("example.com", False),
])
def test_loopback_detection(name: str, local: bool) -> None:
    assert is_loopback(name) is local


def test_main_refuses_a_wide_bind_without_login(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ui.app import main

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.delenv("GRADIO_USERNAME", raising=False)
    monkeypatch.delenv("GRADIO_PASSWORD", raising=False)
    assert main() == 2
    assert "Refusing to listen on '0.0.0.0' without a login" in capsys.readouterr().err


def test_page_handlers_turn_errors_into_messages_not_tracebacks() -> None:
    from ui.widgets import guarded

    @guarded(3)
    def refused() -> tuple[str, str, str]:
        raise UIError("Symbol 'A/B' is <bad>")

    @guarded(1)
    def broken() -> str:
        raise KeyError("boom")

    status, *rest = refused()
    assert status == "**Not done:** Symbol 'A/B' is \\<bad\\>"
    assert len(rest) == 2
    message = broken()
    assert "Unexpected error (KeyError)" in message and "Traceback" not in message


def test_the_page_builds_on_test_resources(ctx: UIContext) -> None:
    from ui.app import build_app

    app = build_app(ctx.resources, ctx.instance)
    assert app.title == "Trading signals"
    assert app.ui_context.instance is ctx.instance


# ------------------------------------------------------------------------------- scorecard


def outcome_row(symbol: str, day: int, action: str, hit: bool | None, *, score: int = 60,
                ret: float = 0.01, provider: str = "rules", model: str = "rules-v1",
                simulated: bool = False) -> dict[str, object]:
    """One signal_outcomes row, scored at every horizon (hit None: still pending)."""
    scored = hit is not None
    row: dict[str, object] = {
        "signal_id": f"{provider}-{symbol}-{day}", "symbol": symbol,
        "bar_date": pd.Timestamp(date(2024, 1, 1)) + pd.offsets.BDay(day), "mode": "replay",
        "variant": "", "provider": provider, "model": model, "prompt_version": model,
        "status": "replay", "action": action, "confidence_score": score,
        "confidence_level": "HIGH" if score >= 80 else "MEDIUM",
        "simulated": simulated, "data_source": "simulated" if simulated else "csv",
        "outcome_status": "scored" if scored else "pending",
        "trade_outcome": "no_trade" if action == "HOLD" else "target" if hit else
        "stop" if scored else "pending",
        "r_multiple": (2.0 if hit else -1.0) if scored and action != "HOLD" else None,
    }
    for h in (1, 5, 20):
        row.update({f"fwd_return_{h}": ret if scored else None, f"hold_band_{h}": 0.02,
                    f"hit_{h}": hit})
    return row


def store_outcomes(ctx: UIContext, rows: list[dict[str, object]]) -> None:
    """Write outcomes/<SYMBOL>.parquet as signal_outcomes would, and add the partitions."""
    frame = outcomes_frame(rows)
    add_symbols(ctx.instance, list(dict.fromkeys(frame["symbol"])))
    for symbol, part in frame.groupby("symbol"):
        ctx.store.write_frame(outcomes_key(str(symbol)), part.reset_index(drop=True))


def test_scorecard_without_outcomes_says_how_to_get_them(ctx: UIContext) -> None:
    view = scorecard_view(ctx, 5)
    assert view.empty and view.tables == {} and view.plots == {} and not view.simulated
    assert "No scored signals yet" in view.markdown
    assert "trading-signals replay" in view.markdown and "signal_outcomes" in view.markdown
    add_symbols(ctx.instance, ["AAPL"])  # a symbol that was never scored: still nothing
    assert scorecard_view(ctx, 5).empty


def test_scorecard_shows_tables_plots_counts_and_flags_simulated_data(ctx: UIContext) -> None:
    rows = ([outcome_row("AAPL", i, "BUY", i < 3, score=85, ret=0.02 if i < 3 else -0.01)
             for i in range(4)]
            + [outcome_row("MSFT", i, "SELL", i < 1, score=55, ret=-0.01 if i < 1 else 0.01,
                           simulated=True) for i in range(5)]
            + [outcome_row("MSFT", 10, "HOLD", True, score=50, ret=0.001),
               outcome_row("MSFT", 30, "BUY", None, score=70),  # pending
               outcome_row("AAPL", 1, "BUY", False, score=90, provider="openai",
                           model="gpt-test", ret=-0.01)])
    store_outcomes(ctx, rows)
    view = scorecard_view(ctx, 5)
    assert not view.empty and view.horizon == 5
    assert list(view.tables) == list(SCORECARD_TABLE_TITLES)
    summary = dict(zip(view.tables["summary"]["metric"], view.tables["summary"]["value"],
                       strict=True))
    assert (summary["signals"], summary["scored"], summary["pending"]) == (12, 11, 1)
    assert summary["simulated_signals"] == 5
    by_action = view.tables["by_action"].set_index(["analyst", "action"])
    buy = by_action.loc[("rules rules-v1", "BUY")]
    assert (buy["n"], buy["hits"], buy["hit_rate"]) == (4, 3, 0.75)
    assert by_action.loc[("rules rules-v1", "SELL"), "hit_rate"] == 0.2
    assert set(view.tables["by_analyst"]["analyst"]) == {"rules rules-v1",
                                                         "openai gpt-test"}
    ab = view.tables["ab"]  # the two set-ups share one date: AAPL day 1
    assert list(ab["common_dates"]) == [1]
    assert set(view.tables["by_confidence"]["confidence_level"]) == {"HIGH", "MEDIUM"}
    assert set(view.tables["returns"]["action"]) >= {"BUY", "SELL", "HOLD", "ALL"}
    assert set(view.plots) == {"calibration", "hit_rate"}
    for data in view.plots.values():
        assert Image.open(io.BytesIO(data)).format == "PNG"
    assert view.simulated
    assert "SIMULATED DATA: 5 of 12 signals" in view.markdown
    assert "Scored at 5 bars: 11" in view.markdown and "pending" in view.markdown
    assert "docs/scorecard.md" in view.markdown and "not proof" in view.markdown
    assert scorecard_view(ctx, "20").horizon == 20  # the dropdown's text is accepted


def test_scorecard_on_market_data_is_not_flagged(ctx: UIContext) -> None:
    store_outcomes(ctx, [outcome_row("AAPL", 0, "BUY", True),
                         outcome_row("AAPL", 5, "BUY", None)])
    view = scorecard_view(ctx, 1)
    assert not view.simulated and "SIMULATED" not in view.markdown
    assert "Scored at 1 bar: 1" in view.markdown


def test_scorecard_warns_when_model_signals_sit_inside_the_training_period(
        ctx: UIContext) -> None:
    from trading_assets.assets.scorecard import scorecard_metadata
    from trading_assets.core.scorecard import training_period_warning

    inside = {"training_cutoff": pd.Timestamp("2024-06-01"), "training_period": "before cutoff"}
    rows = [{**outcome_row("AAPL", i, "BUY", i % 2 == 0, provider="openai", model="gpt-test"),
             **inside} for i in range(4)] + [outcome_row("AAPL", 9, "BUY", True)]
    store_outcomes(ctx, rows)
    view = scorecard_view(ctx, 5)
    assert "**⚠ 4 of 4 model signal(s) (2024-01-01 .. 2024-01-04) are dated on or before " \
        "their model's training cutoff" in view.markdown
    periods = view.tables["by_training_period"]
    assert set(periods["training_period"]) == {"before cutoff", "no model"}
    warning = training_period_warning(outcomes_frame(rows))
    metadata = scorecard_metadata(view.tables, {}, "tracking off", warning)
    assert metadata["training_period"] == warning and warning.startswith("WARNING: 4 of 4")
    assert warning in metadata["plots"].value


def test_the_asset_metadata_and_the_page_title_the_scorecard_tables_alike(
        ctx: UIContext) -> None:
    from trading_assets.assets.scorecard import scorecard_metadata

    store_outcomes(ctx, [outcome_row("AAPL", i, "BUY", i % 2 == 0) for i in range(6)])
    view = scorecard_view(ctx, 5)
    metadata = scorecard_metadata(view.tables, {}, "tracking off")
    titles = {name: metadata[name].schema.columns[0].description
              for name in SCORECARD_TABLE_TITLES if name != "summary"}
    assert titles == {name: title for name, title in SCORECARD_TABLE_TITLES.items()
                      if name != "summary"}


def test_a_missing_simulated_flag_counts_as_market_data() -> None:
    from trading_assets.core.outcomes import simulated_count

    frame = outcomes_frame([outcome_row("AAPL", 0, "BUY", True, simulated=True),
                            outcome_row("AAPL", 1, "BUY", True),
                            {**outcome_row("AAPL", 2, "BUY", True), "simulated": None}])
    assert frame["simulated"].isna().sum() == 1
    assert simulated_count(frame) == 1
    assert simulated_count(outcomes_frame([])) == 0


@pytest.mark.parametrize("horizon", [0, 2, 10, "7", "five", "", None, True, 5.0, -5])
def test_scorecard_refuses_a_horizon_outcomes_do_not_have(ctx: UIContext,
                                                          horizon: object) -> None:
    with pytest.raises(UIError, match=r"not one of 1, 5, 20 bars"):
        scorecard_view(ctx, horizon)  # type: ignore[arg-type]


# ------------------------------------------------------------- shared reads and helpers


def test_latest_signals_are_the_newest_live_signal_of_each_symbol(ctx: UIContext) -> None:
    from resources.app_db import SignalRow

    older = seed_signal(ctx, "TSLA", bar_date=date(2026, 11, 18))
    newer = seed_signal(ctx, "TSLA", bar_date=date(2026, 11, 20))
    nvda = seed_signal(ctx, "NVDA")
    with ctx.app_db.session() as session:  # a model may say 0; the schema's level would be LOW
        session.get(SignalRow, newer.id).confidence_score = 0
    latest = ctx.app_db.latest_signals()
    assert {s: r.id for s, r in latest.items()} == {"TSLA": newer.id, "NVDA": nvda.id}
    assert older.id not in {r.id for r in latest.values()}
    assert latest["TSLA"].id == ctx.app_db.latest_signal("TSLA").id
    add_new_symbols(ctx, "TSLA")
    # A confidence of 0 is a score, not a missing one.
    assert " BUY 0 · " in symbols_table(ctx).iloc[0]["last signal"]
    assert signal_label(latest["TSLA"]).startswith("TSLA BUY 0 · ")


def test_symbol_overview_gives_defaults_and_last_runs_in_one_read(ctx: UIContext) -> None:
    ctx.app_db.upsert_settings(SymbolSettings(symbol="TSLA", priority=7))
    ctx.app_db.record_run_status("TSLA", "ok", "")
    overview = ctx.app_db.symbol_overview(["TSLA", "NVDA"])
    (tsla, (status, at, error)), (nvda, never) = overview["TSLA"], overview["NVDA"]
    assert (tsla.priority, status, error) == (7, "ok", "") and at is not None
    assert nvda == SymbolSettings(symbol="NVDA") and never == ("", None, "")
    assert ctx.app_db.settings_by_symbol(["NVDA", "TSLA"]) == {"NVDA": nvda, "TSLA": tsla}


def test_register_and_unregister_keep_partitions_and_settings_together(ctx: UIContext) -> None:
    from trading_assets.partitions import register_symbols, unregister_symbols

    assert register_symbols(ctx.instance, ctx.app_db, ["TSLA", "NVDA"]).added == ["TSLA",
                                                                                "NVDA"]
    assert register_symbols(ctx.instance, ctx.app_db, ["TSLA"]).added == []
    assert {s.symbol for s in ctx.app_db.list_settings()} == {"TSLA", "NVDA"}
    ctx.app_db.upsert_settings(SymbolSettings(symbol="AMD"))  # settings without a partition
    removal = unregister_symbols(ctx.instance, ctx.app_db, ctx.broker, ["TSLA", "AMD"])
    assert removal.partitions == ["TSLA"] and removal.forgotten == []
    assert list_symbols(ctx.instance) == ["NVDA"]
    assert {s.symbol for s in ctx.app_db.list_settings()} == {"NVDA"}  # kept, not listed
    assert ctx.app_db.remove_symbol("TSLA") is False
    assert "Removed NVDA" in remove_symbol(ctx, "NVDA")
    ctx.app_db.upsert_settings(SymbolSettings(symbol="AMD"))
    assert "Removed AMD" in remove_symbol(ctx, "AMD")  # settings alone still count


def test_the_review_refuses_an_over_long_reviewer_name(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    with pytest.raises(UIError, match="reviewer name is 65 characters long"):
        review(ctx, row.id, "approve", "", "r" * 65)
    assert ctx.app_db.reviews_for(row.id) == []


def test_a_claimed_signal_cannot_be_rejected_from_the_page(ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    review(ctx, row.id, "approve", "", "alice")
    ctx.app_db.claim_order(row.id, "TSLA", "paper", "BUY", 10, "MKT", None, None, None)
    with pytest.raises(UIError, match="an order is already in the ledger"):
        review(ctx, row.id, "reject", "too late", "bob")
    assert ctx.app_db.get_signal(row.id).status == "approved"


def test_reviewer_name_without_a_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert reviewer_name(None) == "unknown"
    assert reviewer_name("alice") == "alice"


def test_the_login_password_stays_out_of_the_config_repr() -> None:
    config = UIConfig.from_env({"GRADIO_USERNAME": "trader", "GRADIO_PASSWORD": "s3cret-pw"})
    assert config.auth == ("trader", "s3cret-pw")
    assert "s3cret-pw" not in repr(config) and "trader" in repr(config)


def test_mlflow_links_never_carry_the_tracking_password(ctx: UIContext) -> None:
    tracking = SimpleNamespace(ui_url="https://user:s3cret@mlflow.example:5000/")
    ctx.resources = {**ctx.resources, "tracking": tracking}
    assert ctx.mlflow_url == "https://mlflow.example:5000"
    assert ctx.mlflow_run_url("abc") == "https://mlflow.example:5000/#/runs/abc"
    assert "s3cret" not in history_table(ctx).to_string()


def test_the_settings_form_round_trips_through_its_field_names() -> None:
    from ui.symbol_form import FORM_FIELDS, form_values

    settings = SymbolSettings(symbol="TSLA", enabled=False, auto_approve=True, priority=3,
                              position_size_pct=4.5, max_exposure_pct=15.0, risk_level="low",
                              min_confidence=70, exchange="SMART", primary_exchange="NASDAQ",
                              currency="USD")
    values = form_values(settings)
    assert values == [False, True, "3", "4.5", "15", "low", "70", "SMART", "NASDAQ", "USD"]
    assert parse_settings("TSLA", dict(zip(FORM_FIELDS, values, strict=True))) == settings
    assert form_values(None) == [True, False, "", "", "", "medium", "", "", "", ""]


def test_a_signal_refused_after_approval_waits_in_the_queue_with_its_reason(
        ctx: UIContext) -> None:
    row = seed_signal(ctx, "TSLA")
    review(ctx, row.id, "approve", "", "alice")
    assert ctx.app_db.settle_signal(row.id, SignalStatus.NOT_PLACED,
                                    "exposure limit reached: holding 200 shares",
                                    retryable=True)
    assert pending_signals(ctx) == []
    [queued] = retry_signals(ctx)  # a list of its own: the reason can change by itself
    assert queued.id == row.id
    table = queue_table([queued])
    assert table.loc[0, "status"] == "not_placed"
    assert "exposure limit" in table.loc[0, "reason"]
    view = signal_view(ctx, row.id)
    assert "Why not_placed:" in view.markdown and "exposure limit" in view.markdown
    history = history_table(ctx, symbol="TSLA")
    assert "exposure limit" in history.loc[0, "reason"]
    # The same Approve button re-approves it (a new order attempt); Reject ends it.
    assert "is now **approved**" in review(ctx, row.id, "approve", "limit raised", "alice")
    assert pending_signals(ctx) == [] and retry_signals(ctx) == []
    # A refusal of the signal's own numbers is not offered again.
    other = seed_signal(ctx, "NVDA")
    review(ctx, other.id, "approve", "", "alice")
    ctx.app_db.settle_signal(other.id, SignalStatus.NOT_PLACED, "entry 1e+05 is 99900% from")
    assert retry_signals(ctx) == []


# ----------------------------------------------------------------------------- import layers


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_app_imports_only_runs_settings_partitions_core_and_resources() -> None:
    allowed = ("trading_assets.runs", "trading_assets.settings", "trading_assets.partitions",
               "trading_assets.core", "trading_assets.run_tags", "trading_assets.health")
    files = sorted((Path(__file__).parents[1] / "ui").glob("*.py"))
    assert len(files) > 5
    back_edges = {f"{path.name}: {name}" for path in files for name in _imported_modules(path)
                  if name.split(".")[0] in ("trading_assets", "tests")
                  and not any(name == a or name.startswith(a + ".") for a in allowed)}
    assert back_edges == set()


# ------------------------------------------------------------------ the system's health


def beat(instance: dg.DagsterInstance, age_s: float = 0.0) -> None:
    """Heartbeats of the daemons this app relies on, `age_s` old (what `dagster dev` writes)."""
    import time

    from dagster._daemon.types import DaemonHeartbeat

    for daemon in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"):
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age_s, daemon, "d1", []))


def test_with_the_daemon_down_the_page_says_what_waits_and_how_to_start_it(
        resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.page import health_html

    on_bars_evening(monkeypatch)  # Approve checks the seeded signals' age

    with dg.instance_for_test() as instance:
        ctx = UIContext(resources=resources, instance=instance,
                        config=UIConfig(dagster_url=DAGSTER_DOWN))
        page = health_html(ctx)
        assert 'id="daemon-down"' in page
        for words in ("approved signals do not become orders", "daily_refresh schedule",
                      "make up", "make dev", "The Dagster UI does not answer"):
            assert words in page, words
        assert "<a href" not in page  # no link to a Dagster UI that is not there
        row = seed_signal(ctx, "TSLA")
        message = review(ctx, row.id, "approve", "", "alice")
        assert "Its order waits for the Dagster daemon, which is not running" in message

        beat(instance, age_s=90)  # a daemon that stopped a minute and a half ago
        assert 'id="daemon-down"' in health_html(ctx)
        beat(instance)
        assert 'id="daemon-up"' in health_html(ctx)
        other = seed_signal(ctx, "NVDA")
        message = review(ctx, other.id, "approve", "", "alice")
        assert "The approved_signals sensor (or Run now) sends it" in message


@pytest.fixture
def dagster_ui() -> Iterator[str]:
    """A loopback server answering /server_info as a Dagster webserver does."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = b'{"dagster_webserver_version": "1.13.27"}'
            self.send_response(200 if self.path == "/server_info" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_run_now_with_the_daemon_up_says_it_runs_in_the_daemons_queue_and_links_the_ui(
        resources: dict[str, Any], dagster_ui: str) -> None:
    from ui.page import health_html

    queued = {"run_coordinator": {"module": "dagster.core.run_coordinator",
                                  "class": "QueuedRunCoordinator"}}
    with dg.instance_for_test(overrides=queued) as instance:
        beat(instance)
        ctx = UIContext(resources=resources, instance=instance,
                        config=UIConfig(dagster_url=dagster_ui),
                        launcher=RunLauncher(lambda *_: [FakeResult("run-0001", True)]))
        add_new_symbols(ctx, "TSLA")
        message = run_now(ctx, "TSLA")
        assert ctx.launcher.join(10)
        assert message.startswith("Submitted a Dagster run for TSLA to the Dagster daemon's "
                                  "queue at ")
        assert "it runs in the daemon's run worker, not in this app" in message
        assert f"Follow it in the Dagster UI: {dagster_ui}/runs." in message
        assert f'<a href="{dagster_ui}"' in health_html(ctx)
