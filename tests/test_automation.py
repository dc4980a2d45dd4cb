"""Schedule ticks and sensor evaluations on a test instance, and one 50-symbol tick end to end."""

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

import trading_assets.assets.charts as charts_module
from resources.app_db import AppDatabase
from trading_assets import automation
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal
from trading_assets.automation import (
    RANGE_END,
    RANGE_START,
    STALE_REVIEWER,
    Automation,
    build_automation,
    plan_batches,
    post_alert,
    run_symbols,
)
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.core import clock
from trading_assets.core.charts import ChartImage
from trading_assets.core.config import AutomationSettings
from trading_assets.core.keys import bars_info_key, bars_key
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.signal import (
    Action,
    AnalysisOutcome,
    ConfidenceLevel,
    SignalStatus,
    TradingSignal,
    Trend,
)
from trading_assets.definitions import SYMBOL_ASSETS
from trading_assets.partitions import SYMBOLS_PARTITION, contiguous_batches, contiguous_ranges
from trading_assets.settings import ConfigError, automation_config

NY = ZoneInfo("America/New_York")
FRIDAY_TICK = datetime(2026, 11, 20, 16, 30, tzinfo=NY)  # the simulated bars end 2026-11-20
FRIDAY_EVENING = datetime(2026, 11, 20, 17, 0, tzinfo=NY)


@pytest.fixture
def auto() -> Automation:
    return build_automation(AutomationSettings(max_symbols_per_run=3, running=False))


@pytest.fixture(autouse=True)
def friday_evening(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sensors and the freshness check read this clock instead of the real one."""
    monkeypatch.setattr(clock, "utc_now", lambda: FRIDAY_EVENING)


def named(defs: list[Any], name: str) -> Any:
    return next(d for d in defs if d.name == name)


def add_symbols(instance: dg.DagsterInstance, app_db: AppDatabase, symbols: list[str],
                **settings: Any) -> None:
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, symbols)
    for symbol in symbols:
        app_db.upsert_settings(SymbolSettings(symbol=symbol, **settings))


def tick(auto: Automation, instance: dg.DagsterInstance, resources: dict[str, Any],
         when: datetime) -> Any:
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   resources=resources) as context:
        return named(auto.schedules, "daily_refresh")(context)


def sense(auto: Automation, name: str, instance: dg.DagsterInstance,
          resources: dict[str, Any], cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=resources) as context:
        return named(auto.sensors, name)(context)


def symbols_of(request: dg.RunRequest) -> tuple[str, str]:
    if request.partition_key:
        return request.partition_key, request.partition_key
    return request.tags[RANGE_START], request.tags[RANGE_END]


def execute(request: dg.RunRequest, auto: Automation, instance: dg.DagsterInstance,
            resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    """Run a RunRequest the way the daemon would: its assets, checks, partition(s) and tags."""
    assets = [a for a in SYMBOL_ASSETS if a.key in set(request.asset_selection or [])]
    wanted = set(request.asset_check_keys or [])
    checks = [c for c in [ohlcv_sanity, indicator_ranges, *auto.checks]
              if set(c.check_keys) & wanted]
    return dg.materialize([*assets, *checks], instance=instance, resources=resources,
                          partition_key=request.partition_key, tags=request.tags,
                          raise_on_error=False,
                          run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})


def make_signal(resources: dict[str, Any], symbol: str, bar_date: date, close: float,
                status: SignalStatus = SignalStatus.PENDING_REVIEW, run_id: str = "",
                stored_close: float | None = None) -> str:
    """A BUY signal for `symbol` that saw `close`; the store's latest bars close at stored_close."""
    signal = TradingSignal(
        symbol=symbol, action=Action.BUY, confidence_level=ConfidenceLevel.HIGH,
        confidence_score=85, reasoning="test", trend=Trend.UP, entry_price=close,
        stop_loss=round(close * 0.95, 2), take_profit=round(close * 1.1, 2), bar_date=bar_date,
    )
    outcome = AnalysisOutcome(symbol=symbol, signal=signal, provider="rules", model="rules-v1",
                              prompt_version="test")
    row = resources["app_db"].record_signal(
        outcome=outcome, bar_date=bar_date, status=status, data_source="simulated",
        simulated=True, last_bars=[{"date": str(bar_date), "close": close}], indicators={},
        chart_keys={}, dagster_run_id=run_id)
    last = close if stored_close is None else stored_close
    resources["store"].write_frame(bars_key(symbol), pd.DataFrame({
        "date": [pd.Timestamp(bar_date)], "open": [last], "high": [last], "low": [last],
        "close": [last], "volume": [1_000.0]}))
    resources["store"].write_json(bars_info_key(symbol), {
        "symbol": symbol, "last_date": str(bar_date), "simulated": True, "source": "simulated",
        "last_close": last})
    return row.id


# --- planning ----------------------------------------------------------------------------


def test_batches_are_contiguous_capped_and_shared_with_the_cli() -> None:
    keys = ["A", "B", "C", "D", "E", "F", "G"]
    assert contiguous_batches(keys, ["A", "B", "D", "E", "F", "G"], 3) == [
        ["A", "B"], ["D", "E", "F"], ["G"]]
    assert contiguous_ranges(keys, ["B", "C", "F"]) == [("B", "C"), ("F", "F")]
    batches = plan_batches(keys, ["A", "B", "D", "E", "F", "G"], {"G": 9, "E": 5}, 3)
    assert batches == [["G"], ["D", "E", "F"], ["A", "B"]]
    bridged = plan_batches(keys, ["A", "D", "G"], {}, 10, bridgeable=["B", "C", "E"])
    assert bridged == [["A", "B", "C", "D"], ["G"]]  # F may not be bridged; E alone is no run


def test_run_symbols_reads_partition_and_range_tags() -> None:
    keys = ["A", "B", "C", "D"]
    assert run_symbols({"dagster/partition": "C"}, keys) == ["C"]
    assert run_symbols({RANGE_START: "B", RANGE_END: "D"}, keys) == ["B", "C", "D"]
    assert run_symbols({RANGE_START: "X", RANGE_END: "D"}, keys) == ["X", "D"]
    assert run_symbols({}, keys) == []


def test_config_from_env_is_validated() -> None:
    config = automation_config({"TRADING_SCHEDULE_CRON": "0 17 * * 1-5",
                                "TRADING_MAX_SYMBOLS_PER_RUN": "50",
                                "ALERT_WEBHOOK_URL": "https://hooks.example/T0/secret"})
    assert (config.schedule_cron, config.max_symbols_per_run) == ("0 17 * * 1-5", 50)
    assert "secret" not in repr(config)
    with pytest.raises(ConfigError, match="TRADING_SCHEDULE_CRON"):
        automation_config({"TRADING_SCHEDULE_CRON": "at five"})
    with pytest.raises(ConfigError, match="TRADING_SCHEDULE_TZ"):
        automation_config({"TRADING_SCHEDULE_TZ": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="TRADING_MAX_SYMBOLS_PER_RUN"):
        automation_config({"TRADING_MAX_SYMBOLS_PER_RUN": "0"})


# --- schedule ------------------------------------------------------------------------------


def test_tick_batches_enabled_symbols_highest_priority_first(auto, instance, resources) -> None:
    app_db = resources["app_db"]
    add_symbols(instance, app_db, ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG"])
    app_db.upsert_settings(SymbolSettings(symbol="CCC", enabled=False))
    app_db.upsert_settings(SymbolSettings(symbol="GGG", priority=10))
    app_db.upsert_settings(SymbolSettings(symbol="EEE", priority=5))

    requests = tick(auto, instance, resources, FRIDAY_TICK)

    assert [symbols_of(r) for r in requests] == [("GGG", "GGG"), ("DDD", "FFF"), ("AAA", "BBB")]
    assert [r.run_key for r in requests] == ["refresh-2026-11-20-000-GGG-GGG",
                                            "refresh-2026-11-20-001-DDD-FFF",
                                            "refresh-2026-11-20-002-AAA-BBB"]
    for request in requests:
        assert {k.to_user_string() for k in request.asset_selection} == {
            "ohlcv", "indicators", "charts", "llm_signal"}  # orders follow via approved_signals
        assert {k.name for k in request.asset_check_keys} == {
            "ohlcv_sanity", "indicator_ranges", "signal_freshness"}
        assert request.tags["trading/trigger"] == "schedule"
    assert requests[1].tags["trading/symbol_count"] == "3"


@pytest.mark.parametrize("when", [
    datetime(2026, 12, 25, 16, 30, tzinfo=NY),  # Christmas
    datetime(2026, 11, 26, 16, 30, tzinfo=NY),  # Thanksgiving
])
def test_no_runs_when_the_exchange_is_closed(auto, instance, resources, when) -> None:
    add_symbols(instance, resources["app_db"], ["AAA", "BBB"])
    result = tick(auto, instance, resources, when)
    assert isinstance(result, dg.SkipReason)
    assert "closed" in result.skip_message


def test_early_close_day_still_ticks(auto, instance, resources) -> None:
    add_symbols(instance, resources["app_db"], ["AAA"])
    requests = tick(auto, instance, resources, datetime(2026, 11, 27, 16, 30, tzinfo=NY))
    assert [r.partition_key for r in requests] == ["AAA"]
    assert requests[0].tags["trading/session"] == "2026-11-27"


def test_no_enabled_symbols_skips(auto, instance, resources) -> None:
    add_symbols(instance, resources["app_db"], ["AAA"], enabled=False)
    assert isinstance(tick(auto, instance, resources, FRIDAY_TICK), dg.SkipReason)


# --- new symbols -------------------------------------------------------------------------


def test_new_symbols_run_once_per_batch(auto, instance, resources) -> None:
    app_db = resources["app_db"]
    add_symbols(instance, app_db, ["OLD", "AAA", "BBB"])
    # A symbol analysed before the sensor existed is not "new" on its first tick.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=llm_signal.key, partition="OLD"))

    first = sense(auto, "new_symbols", instance, resources)
    assert [symbols_of(r) for r in first.run_requests] == [("AAA", "BBB")]
    assert first.run_requests[0].run_key == "new-symbols-1-000-AAA-BBB"

    again = sense(auto, "new_symbols", instance, resources, first.cursor)
    assert again.run_requests in (None, []) and "No new symbols" in again.skip_reason.skip_message

    add_symbols(instance, app_db, ["OFF"], enabled=False)
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["CCC"])  # from the Dagster UI
    third = sense(auto, "new_symbols", instance, resources, again.cursor)
    assert [(r.run_key, r.partition_key) for r in third.run_requests] == [
        ("new-symbols-2-000-CCC-CCC", "CCC")]  # OFF is disabled: seen, not run

    # Removed and added again later: a new run key, so the daemon does not drop it as a repeat.
    instance.delete_dynamic_partition(SYMBOLS_PARTITION, "CCC")
    fourth = sense(auto, "new_symbols", instance, resources, third.cursor)
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["CCC"])
    fifth = sense(auto, "new_symbols", instance, resources, fourth.cursor)
    assert [r.run_key for r in fifth.run_requests] == ["new-symbols-3-000-CCC-CCC"]


# --- symbol sync -------------------------------------------------------------------------


def apply(result: dg.SensorResult, instance: dg.DagsterInstance) -> None:
    """What the sensor daemon does with a result's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def test_symbol_sync_copies_additions_and_removals_both_ways(auto, instance, resources) -> None:
    app_db = resources["app_db"]
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["UIA"])  # added in the Dagster UI
    app_db.upsert_settings(SymbolSettings(symbol="APPB", priority=3))  # added in the app only

    first = sense(auto, "symbol_sync", instance, resources)
    assert not first.dynamic_partitions_requests  # registered as the app registers: directly
    assert set(instance.get_dynamic_partitions(SYMBOLS_PARTITION)) == {"UIA", "APPB"}
    assert app_db.settings_for("UIA") == SymbolSettings(symbol="UIA")  # defaults created
    assert app_db.settings_for("APPB").priority == 3  # its own settings kept
    assert sense(auto, "symbol_sync", instance, resources, first.cursor).skip_reason

    app_db.remove_symbol("UIA")  # removed in the app
    instance.delete_dynamic_partition(SYMBOLS_PARTITION, "APPB")  # removed in the Dagster UI
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["UIC"])  # never in the app

    second = sense(auto, "symbol_sync", instance, resources, first.cursor)
    assert [(type(r).__name__, list(r.partition_keys))
            for r in second.dynamic_partitions_requests] == [
        ("DeleteDynamicPartitionsRequest", ["UIA"])]  # not resurrected with default settings
    configured = {s.symbol for s in app_db.list_settings()}
    assert configured == {"UIC"}  # APPB's settings removed, UIC got defaults, UIA stays gone
    apply(second, instance)
    assert set(instance.get_dynamic_partitions(SYMBOLS_PARTITION)) == {"UIC"}
    third = sense(auto, "symbol_sync", instance, resources, second.cursor)
    assert not third.dynamic_partitions_requests
    assert "In sync (1 symbols)" in third.skip_reason.skip_message


def test_symbol_sync_without_a_cursor_never_deletes(auto, instance, resources) -> None:
    resources["app_db"].upsert_settings(SymbolSettings(symbol="APPB"))
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["UIA"])
    result = sense(auto, "symbol_sync", instance, resources, cursor=None)
    assert not result.dynamic_partitions_requests
    assert set(instance.get_dynamic_partitions(SYMBOLS_PARTITION)) == {"UIA", "APPB"}


# --- approved signals --------------------------------------------------------------------


def test_approved_signals_run_once_and_stale_ones_expire(instance, resources) -> None:
    auto = build_automation(AutomationSettings(max_symbols_per_run=10, running=False))
    app_db = resources["app_db"]
    symbols = ["APP", "OLD", "MOVE", "WAIT", "AUTO", "PEN", "BAT1", "BAT2"]
    add_symbols(instance, app_db, symbols)
    friday = date(2026, 11, 20)
    approved = make_signal(resources, "APP", friday, 100.0)
    old = make_signal(resources, "OLD", date(2026, 11, 17), 100.0)  # Tuesday: 3 days old
    moved = make_signal(resources, "MOVE", friday, 100.0, stored_close=110.0)
    running = dg.DagsterRun(job_name="analysis", run_id="1" * 32,
                            status=dg.DagsterRunStatus.STARTED)
    instance.add_run(running)
    waiting = make_signal(resources, "WAIT", friday, 50.0, SignalStatus.AUTO_APPROVED,
                          run_id=running.run_id)
    auto_ok = make_signal(resources, "AUTO", friday, 50.0, SignalStatus.AUTO_APPROVED)
    make_signal(resources, "PEN", friday, 20.0)  # pending: not for the sensor
    batch = [make_signal(resources, s, friday, 30.0) for s in ("BAT1", "BAT2")]
    for signal_id in (approved, old, moved, *batch):
        app_db.review_signal(signal_id, SignalStatus.APPROVED, reviewer="alice")

    result = sense(auto, "approved_signals", instance, resources)

    by_symbols = {symbols_of(r): r for r in result.run_requests}
    # PEN (nothing to execute) bridges AUTO and BAT1; WAIT (pending its run) splits APP off.
    assert set(by_symbols) == {("APP", "APP"), ("AUTO", "BAT2")}
    assert by_symbols[("APP", "APP")].run_key == f"signal-{approved}"
    assert by_symbols[("AUTO", "BAT2")].run_key.startswith("signals-3-")
    assert {auto_ok, *batch} <= set(json.loads(result.cursor)["requested"])
    for request in result.run_requests:
        assert {k.to_user_string() for k in request.asset_selection} == {"orders", "portfolio"}
    for signal_id, why in ((old, "3 trading days old"), (moved, "price moved 10.0%")):
        assert app_db.get_signal(signal_id).status == SignalStatus.EXPIRED.value
        review = app_db.reviews_for(signal_id)[-1]
        assert (review.reviewer, why in review.note) == (STALE_REVIEWER, True)
    assert app_db.get_signal(waiting).status == SignalStatus.AUTO_APPROVED.value

    # Next tick: nothing repeats while the runs are pending; the analysis run has ended now.
    instance.report_run_failed(instance.get_run_by_id(running.run_id))
    second = sense(auto, "approved_signals", instance, resources, result.cursor)
    assert [r.run_key for r in second.run_requests] == [f"signal-{waiting}"]

    # The orders run acts on APP's signal: it leaves the cursor, and is never requested again.
    assert execute(by_symbols[("APP", "APP")], auto, instance, resources).success
    # Placed: its bracket's limit entry rests at the broker (working), no longer awaiting one.
    assert app_db.get_signal(approved).status == SignalStatus.WORKING.value
    third = sense(auto, "approved_signals", instance, resources, second.cursor)
    assert not third.run_requests
    assert approved not in json.loads(third.cursor)["requested"]


def ended_run(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """The daemon launched the request and the run ended (here: failed before deciding)."""
    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=uuid.uuid4().hex,
                        status=dg.DagsterRunStatus.FAILURE, tags=dict(request.tags))
    instance.add_run(run)


def test_an_approved_signal_is_retried_then_settled_never_kept_forever(instance,
                                                                       resources) -> None:
    auto = build_automation(AutomationSettings(running=False))
    app_db = resources["app_db"]
    add_symbols(instance, app_db, ["APP"])
    signal_id = make_signal(resources, "APP", date(2026, 11, 20), 100.0)
    app_db.review_signal(signal_id, SignalStatus.APPROVED, reviewer="alice")
    cursor, keys = None, []
    for _ in range(automation.MAX_ORDER_RUNS):
        result = sense(auto, "approved_signals", instance, resources, cursor)
        [request] = result.run_requests
        keys.append(request.run_key)
        # Pending or running: not requested again until that run has ended.
        assert not sense(auto, "approved_signals", instance, resources,
                         result.cursor).run_requests
        ended_run(instance, request)
        cursor = result.cursor
    assert len(set(keys)) == automation.MAX_ORDER_RUNS  # a fresh run key for each retry
    last = sense(auto, "approved_signals", instance, resources, cursor)
    assert not last.run_requests
    settled = app_db.get_signal(signal_id)
    assert settled.status == SignalStatus.NOT_PLACED.value
    assert f"{automation.MAX_ORDER_RUNS} orders runs ended without settling it" in (
        settled.status_reason)
    assert signal_id not in json.loads(last.cursor)["requested"]
    # A person can take it from there.
    app_db.review_signal(signal_id, SignalStatus.APPROVED, reviewer="alice")
    assert sense(auto, "approved_signals", instance, resources, last.cursor).run_requests


# --- failures ----------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        _Hook.bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/T0KEN"
    server.shutdown()
    server.server_close()


def test_run_failure_is_recorded_per_symbol_and_alerted_without_secrets(
        instance, resources, webhook) -> None:
    secret = "sk-live-DO-NOT-LEAK-42"
    auto = build_automation(AutomationSettings(alert_webhook_url=webhook, running=False))
    app_db = resources["app_db"]
    add_symbols(instance, app_db, ["AAA", "BBB", "CCC"])
    # The run's database URL is unusable and carries a secret, which the step error quotes.
    broken = {**resources, "app_db": AppDatabase(url=f"sqlite:////proc/{secret}/app.db")}
    run = dg.materialize([ohlcv], instance=instance, resources=broken, raise_on_error=False,
                         tags={RANGE_START: "AAA", RANGE_END: "BBB"})
    assert not run.success
    dagster_run = instance.get_run_by_id(run.run_id)
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    context = dg.build_run_status_sensor_context(
        sensor_name="symbol_run_failures", dagster_event=failure.dagster_event,
        dagster_instance=instance, dagster_run=dagster_run,
        resources={"app_db": app_db}).for_run_failure()

    named(auto.sensors, "symbol_run_failures")(context)

    statuses = app_db.run_statuses()
    for symbol in ("AAA", "BBB"):
        status, _, error = statuses[symbol]
        assert status == "failed in ohlcv" and "run failed" in error
    assert statuses["CCC"][0] == ""  # not in the run
    assert len(_Hook.bodies) == 1
    body = _Hook.bodies[0].decode()
    alert = json.loads(body)
    assert (alert["event"], alert["symbols"], alert["run_id"]) == (
        "run_failure", ["AAA", "BBB"], run.run_id)
    assert alert["failed_steps"] == {"ohlcv": next(iter(alert["failed_steps"].values()))}
    assert secret not in body and "T0KEN" not in body and "/proc" not in body


def test_an_unreachable_webhook_never_raises() -> None:
    with HTTPServer(("127.0.0.1", 0), _Hook) as closed:
        port = closed.server_port  # bound, then closed before anything is sent
    assert post_alert(f"http://127.0.0.1:{port}/x", {"a": 1}, timeout_s=0.5) is False


# --- freshness ---------------------------------------------------------------------------


def test_freshness_sensor_reports_stale_symbols_on_change(auto, instance, resources) -> None:
    add_symbols(instance, resources["app_db"], ["NEW", "OLD", "NONE"])
    add_symbols(instance, resources["app_db"], ["OFF"], enabled=False)
    make_signal(resources, "NEW", date(2026, 11, 20), 10.0)
    make_signal(resources, "OLD", date(2026, 11, 18), 10.0)  # Wednesday: 2 trading days old
    make_signal(resources, "OFF", date(2026, 11, 2), 10.0)

    first = sense(auto, "signal_freshness_sensor", instance, resources)
    evaluations = {e.partition: e for e in first.asset_events}
    assert {s for s, e in evaluations.items() if not e.passed} == {"OLD", "NONE"}
    assert evaluations["OFF"].passed and evaluations["NEW"].passed
    assert evaluations["OLD"].metadata["stale_symbols"].value == ["NONE", "OLD"]
    for event in first.asset_events:  # the daemon stores them as runless check evaluations
        instance.report_runless_asset_event(event)

    second = sense(auto, "signal_freshness_sensor", instance, resources, first.cursor)
    assert not second.asset_events and second.skip_reason.skip_message == "2 stale: NONE, OLD"


# --- end to end --------------------------------------------------------------------------


def _fast_chart(symbol: str, frame: pd.DataFrame, timeframe: str,
                simulated: bool = False) -> ChartImage:
    # With its preview: render_job draws one only for images that come without.
    return ChartImage(timeframe=timeframe, png=b"\x89PNG test", bars_shown=len(frame),
                      last_date=pd.Timestamp(frame["date"].iloc[-1]), preview=b"preview")


def test_a_tick_for_50_symbols_takes_a_handful_of_runs(instance, resources, monkeypatch) -> None:
    # Rendering 100 PNGs costs a minute and proves nothing about runs: charts are stubbed.
    monkeypatch.setattr(charts_module, "render_chart", _fast_chart)
    monkeypatch.setattr(charts_module, "chart_markdown",
                        lambda symbol, images: dg.MetadataValue.md("test"))
    auto = build_automation(AutomationSettings(max_symbols_per_run=30, running=False))
    app_db = resources["app_db"]
    symbols = [f"S{i:02d}" for i in range(50)]
    add_symbols(instance, app_db, symbols, auto_approve=True, min_confidence=0)

    requests = tick(auto, instance, resources, FRIDAY_TICK)
    assert [symbols_of(r) for r in requests] == [("S00", "S29"), ("S30", "S49")]
    results = [execute(r, auto, instance, resources) for r in requests]

    assert all(r.success for r in results)
    assert instance.get_materialized_partitions(llm_signal.key) == set(symbols)
    assert len(instance.get_run_records()) == 2
    freshness = [e for r in results for e in r.get_asset_check_evaluations()
                 if e.check_name == "signal_freshness"]
    assert len(freshness) == 2 and all(e.passed for e in freshness)

    # Auto-approved signals go to orders + portfolio through the approved_signals sensor.
    auto_approved = {s.id for s in app_db.list_signals(status="auto_approved")}
    result = sense(auto, "approved_signals", instance, resources)
    executed = [execute(r, auto, instance, resources) for r in result.run_requests or []]
    assert all(r.success for r in executed)
    assert len(executed) <= 3
    for signal_id in auto_approved:
        assert app_db.order_for_signal(signal_id) is not None or any(
            d.signal_id == signal_id for d in app_db.decisions_for(
                app_db.get_signal(signal_id).symbol))
    assert not sense(auto, "approved_signals", instance, resources, result.cursor).run_requests


# --------------------------------------------------------------------- the CLI's reports


def test_cli_failures_name_the_underlying_error_not_dagsters_wrapper(
        instance: dg.DagsterInstance) -> None:
    from trading_assets.runs import run_failures

    @dg.asset
    def broken() -> None:
        raise ValueError("bad bars for ACME")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    [line] = run_failures(instance, result.run_id)
    assert line == "broken: ValueError: bad bars for ACME"


def test_cli_review_without_a_passwd_entry_and_with_a_zero_confidence(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> None:
    from trading_assets import cli
    from trading_assets.core import review
    from trading_assets.settings import build_resources

    def no_user() -> str:  # docker --user 1234: no passwd entry, no USER
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(review.getpass, "getuser", no_user)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.build_parser().parse_args(["signals", "approve", "x"]).reviewer is None
    app_db = build_resources(env)["app_db"]
    signal = TradingSignal(symbol="ACME", action="HOLD", confidence_level="LOW",
                           confidence_score=0, reasoning="No edge either way.", trend="SIDEWAYS")
    row = app_db.record_signal(
        outcome=AnalysisOutcome(symbol="ACME", signal=signal, provider="rules",
                                model="rules-v1", prompt_version="rules-v1"),
        bar_date=date(2026, 11, 20), status=SignalStatus.PENDING_REVIEW, data_source="csv",
        simulated=False, last_bars=[], indicators={}, chart_keys={})
    assert cli.main(["signals", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()[-1].split()
    assert listed[:6] == [row.id, "ACME", "2026-11-20", "HOLD", "0", "pending_review"]
    assert cli.main(["signals", "reject", row.id, "--note", "flat"]) == 0
    assert "rejected by unknown" in capsys.readouterr().out
    assert cli.main(["signals", "approve", row.id, "--reviewer", "r" * 65]) == 2
    assert "reviewer name is 65 characters long" in capsys.readouterr().err
    assert [r.reviewer for r in app_db.reviews_for(row.id)] == ["unknown"]
