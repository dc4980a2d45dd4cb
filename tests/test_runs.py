"""The runs layer, the sensors' dedupe, partition-key repair, loading the definitions, CLI exits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from trading_assets import runs
from trading_assets.automation import AutomationSettings, build_automation
from trading_assets.core.bars import simulate_bars
from trading_assets.core.keys import bars_info_key
from trading_assets.partitions import SYMBOLS_PARTITION, list_symbols

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 20)


def _sense(name: str, instance: dg.DagsterInstance, resources: dict[str, Any],
           cursor: str | None = None) -> dg.SensorResult:
    auto = build_automation(AutomationSettings(running=False))
    sensor = next(s for s in auto.sensors if s.name == name)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        return sensor(ctx)


def _active_run(instance: dg.DagsterInstance, tags: dict[str, str],
                status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED) -> str:
    """A run record as the queue holds it while the daemon has not finished it."""
    run_id = str(uuid.uuid4())
    remote, python = runs._job_origins()  # a queued run names where the daemon finds its job
    instance.add_run(dg.DagsterRun(job_name=runs.JOB_NAME, run_id=run_id, tags=tags,
                                   status=status, remote_job_origin=remote,
                                   job_code_origin=python))
    return run_id


class _Clock:
    """Stands in for the runs layer's `time`: a sleep advances it at once and counts a poll;
    `on_sleep` plays what the world does meanwhile (a daemon heartbeat, a run finishing)."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now, self.sleeps, self.on_sleep = 1_800_000_000.0, 0, on_sleep

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        assert self.sleeps < 1000, "the wait never ends"
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self)


def _heartbeat(instance: dg.DagsterInstance, at: float) -> None:
    from dagster._daemon.types import DaemonHeartbeat

    instance.add_daemon_heartbeat(DaemonHeartbeat(at, "QUEUED_RUN_COORDINATOR", "test", None))


# --- the runs layer on a real instance ----------------------------------------------------


def test_in_process_runs_are_symbol_pipeline_runs_tagged_with_who_and_what(
        home: Path, resources: dict[str, Any]) -> None:
    instance = runs.get_instance()
    assert not runs.daemon_running(instance)
    assert runs.resolve_mode(instance, "auto") == "in-process"
    [one] = runs.launch_symbols(["ACME"], instance=instance, resources=resources,
                                launched_by="gradio")
    assert one.success and one.mode == "in-process" and one.symbols == ["ACME"]
    run = instance.get_run_by_id(one.run_id)
    assert run.job_name == "symbol_pipeline"
    assert run.tags["dagster/partition"] == "ACME"
    assert run.tags["trading/launched_by"] == "gradio"
    [two] = runs.launch_symbols(["BETA", "GAMA"], instance=instance, resources=resources,
                                launched_by="cli")
    tags = instance.get_run_by_id(two.run_id).tags
    assert (tags[runs.RANGE_START], tags[runs.RANGE_END]) == ("BETA", "GAMA")
    assert two.symbols == ["BETA", "GAMA"] and two.success
    assert resources["app_db"].latest_signal("GAMA").dagster_run_id == two.run_id
    with pytest.raises(ValueError, match="launched_by"):
        runs.run_tags(["ACME"], "someone")


def test_with_a_daemon_heartbeat_runs_are_queued_for_the_daemon(home: Path) -> None:
    from dagster._daemon.types import DaemonHeartbeat

    instance = runs.get_instance()
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "QUEUED_RUN_COORDINATOR",
                                                  "test", None))
    assert runs.daemon_running(instance)
    assert runs.resolve_mode(instance, "auto") == "daemon"
    assert runs.resolve_mode(instance, "in-process") == "in-process"
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA"])
    run_id = runs.submit_batch(instance, ["ACME", "BETA"], "cli")
    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.QUEUED  # waiting for the daemon, not run here
    assert run.job_name == "symbol_pipeline"
    assert run.remote_job_origin.location_name == "trading_assets"
    assert run.tags[runs.RANGE_START] == "ACME" and run.tags["trading/launched_by"] == "cli"
    # Nobody drains the queue here: the wait gives up and says so instead of hanging.
    [outcome] = runs.wait_for_runs(instance, [run_id], timeout_s=0.2, poll_s=0.05)
    assert not outcome.success and outcome.status == "QUEUED"
    assert "still QUEUED" in outcome.failures[0]



def test_a_wait_for_queued_runs_ends_when_the_daemon_heartbeat_goes_stale(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon took the runs' submission, then died: the CLI, Gradio and bench waited forever.
    monkeypatch.setenv("TRADING_QUEUE_WAIT_S", "3600")
    clock = _Clock()
    monkeypatch.setattr(runs, "time", clock)
    instance = runs.get_instance()
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA"])
    _heartbeat(instance, clock.now)
    queued = _active_run(instance, {"dagster/partition": "ACME"}, dg.DagsterRunStatus.QUEUED)
    done = _active_run(instance, {"dagster/partition": "BETA"}, dg.DagsterRunStatus.SUCCESS)
    stuck, ok = runs.wait_for_runs(instance, [queued, done], poll_s=10)
    assert clock.sleeps == 6  # the heartbeat was 60 s old (HEARTBEAT_MAX_AGE_S) at poll 7
    assert ok.success and ok.symbols == ["BETA"]
    assert not stuck.success and stuck.status == "QUEUED" and stuck.symbols == ["ACME"]
    [why] = stuck.failures
    assert why.startswith(f"run {queued[:8]} is still QUEUED: the Dagster daemon's last "
                          "heartbeat is 60 s old; start `make dev` (or `dagster-daemon run`) "
                          "or run with --in-process")
    assert why.endswith("the run stays queued and will start when a daemon does")


def test_a_queued_run_a_live_daemon_never_starts_is_given_up_after_the_queue_wait(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_QUEUE_WAIT_S", "30")
    instance = runs.get_instance()
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA"])
    running = _active_run(instance, {"dagster/partition": "BETA"})

    def daemon(clock: _Clock) -> None:  # heartbeats; the started run ends at the 5th poll
        _heartbeat(instance, clock.now)
        if clock.sleeps == 5:
            instance.report_run_failed(instance.get_run_by_id(running))

    clock = _Clock(daemon)
    monkeypatch.setattr(runs, "time", clock)
    _heartbeat(instance, clock.now)
    queued = _active_run(instance, {"dagster/partition": "ACME"}, dg.DagsterRunStatus.QUEUED)
    stuck, ended = runs.wait_for_runs(instance, [queued, running], poll_s=10)
    # While its sibling ran the queued run was moving (one launch's runs go one at a time);
    # given up 30 s after the sibling ended with nothing else starting.
    assert clock.sleeps == 8
    assert ended.status == "FAILURE" and not any("still" in f for f in ended.failures)
    assert stuck.status == "QUEUED" and not stuck.success
    assert "the Dagster daemon has not started it in 30 s" in stuck.failures[0]
    assert "the run stays queued" in stuck.failures[0]


def test_a_wait_for_a_started_run_ends_when_no_daemon_heartbeats(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.config import RunLauncher

    clock = _Clock()
    monkeypatch.setattr(runs, "time", clock)
    instance = runs.get_instance()
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME"])
    started = _active_run(instance, {"dagster/partition": "ACME"})
    [one] = runs.wait_for_runs(instance, [started], poll_s=10)
    assert clock.sleeps == 0 and not one.success and one.status == "STARTED"
    assert one.failures[0].startswith(f"run {started[:8]} is still STARTED: no Dagster daemon "
                                      "is heartbeating on this instance")
    # Gradio's "Run now" ends too, and its message is the reason.
    launcher = RunLauncher(lambda symbols, inst, res: runs.wait_for_runs(inst, [started]))
    launch = launcher.start(["ACME"], instance, {})
    assert launcher.join()
    assert launch.success is False and launch.error == one.failures[0]


def test_waiting_for_several_runs_reads_the_symbol_list_once(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = runs.get_instance()
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA", "GAMA"])
    run_ids = [_active_run(instance, {"dagster/partition": s}, dg.DagsterRunStatus.SUCCESS)
               for s in ("ACME", "BETA", "GAMA")]
    reads = []
    original = instance.get_dynamic_partitions
    monkeypatch.setattr(instance, "get_dynamic_partitions",
                        lambda name: reads.append(name) or original(name))
    outcomes = runs.wait_for_runs(instance, run_ids)
    assert [o.symbols for o in outcomes] == [["ACME"], ["BETA"], ["GAMA"]]
    assert len(reads) == 1


def test_submitting_a_run_creates_the_pool_limit_rows_before_the_daemon_starts_it(
        home: Path) -> None:
    # Dagster creates a pool's row when a step first claims it: two runs doing so together on
    # PostgreSQL made one fail. Submitting creates the rows first, once. (The production
    # dagster.yaml sets a default pool limit; without one Dagster keeps no rows.)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n"
                                       "concurrency:\n  pools:\n    default_limit: 1\n")
    instance = runs.get_instance()
    assert {limit.name for limit in instance.event_log_storage.get_pool_limits()} == set()
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA"])
    runs.submit_batch(instance, ["ACME"], "cli")
    pools = {limit.name for limit in instance.event_log_storage.get_pool_limits()}
    assert pools == {"ibkr", "llm"}
    runs.submit_batch(instance, ["BETA"], "cli")  # already there: nothing to create, no error
    assert {limit.name for limit in instance.event_log_storage.get_pool_limits()} == pools


def test_with_the_celery_executor_an_in_process_launch_sends_the_run_to_the_executor(
        home: Path, resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a daemon the launch happens here; with TRADING_EXECUTOR=celery it must still go
    # through the configured executor (steps on the workers), not run with a resource dict.
    launched: list[dict[str, str]] = []

    def execute_pipeline(instance: dg.DagsterInstance, tags: dict[str, str],
                         run_config: dict[str, Any] | None = None) -> Any:
        launched.append(dict(tags))  # stands in for the workers: records the run, succeeded
        run_id = str(uuid.uuid4())
        instance.add_run(dg.DagsterRun(job_name=runs.JOB_NAME, run_id=run_id, tags=tags,
                                       status=dg.DagsterRunStatus.SUCCESS))
        return instance.get_run_by_id(run_id)

    monkeypatch.setattr(runs, "execute_pipeline", execute_pipeline)
    monkeypatch.setenv("TRADING_EXECUTOR", "celery")
    instance = runs.get_instance()
    [one] = runs.launch_symbols(["ACME"], instance=instance, resources=resources,
                                launched_by="gradio", mode="in-process")
    from trading_assets.run_monitor import worker_tags

    assert launched == [{**runs.run_tags(["ACME"], "gradio"), **worker_tags()}]
    assert one.mode == "celery" and one.success and one.symbols == ["ACME"]
    # Nothing ran in this process: no materialization, no signal written by a local run.
    assert instance.get_materialized_partitions(dg.AssetKey("ohlcv")) == set()
    assert resources["app_db"].latest_signal("ACME") is None
    monkeypatch.delenv("TRADING_EXECUTOR")
    [two] = runs.launch_symbols(["ACME"], instance=instance, resources=resources,
                                launched_by="gradio", mode="in-process")
    assert two.mode == "in-process" and two.success and len(launched) == 1

# --- new_symbols never redoes fresh work ----------------------------------------------------


def test_new_symbols_skips_symbols_with_a_queued_or_running_run(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["ACME", "BETA", "GAMA", "DELT"])
    busy = _active_run(instance, {"dagster/partition": "ACME", "trading/launched_by": "gradio"})
    _active_run(instance, {runs.RANGE_START: "BETA", runs.RANGE_END: "GAMA"})
    first = _sense("new_symbols", instance, resources)
    assert [r.partition_key for r in first.run_requests] == ["DELT"]
    again = _sense("new_symbols", instance, resources, first.cursor)
    assert not again.run_requests  # a repeated tick is a no-op
    assert "already queued or running: ACME, BETA, GAMA" in again.skip_reason.skip_message
    # ACME's run ends without a signal (it failed): the next tick analyses it.
    instance.report_run_failed(instance.get_run_by_id(busy))
    third = _sense("new_symbols", instance, resources, again.cursor)
    assert [r.partition_key for r in third.run_requests] == ["ACME"]


def test_new_symbols_skips_a_symbol_whose_signal_is_for_its_latest_bar(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    [done] = runs.launch_symbols(["ACME"], instance=instance, resources=resources,
                                 launched_by="gradio", mode="in-process")
    assert done.success
    # The sensor's first look at a deployment would skip it as materialized anyway; a cursor
    # that has never seen ACME is what a quick "Add + Run now" between two ticks looks like.
    cursor = json.dumps({"seen": [], "generation": 4})
    result = _sense("new_symbols", instance, resources, cursor)
    assert not result.run_requests
    assert "signal already fresh: ACME" in result.skip_reason.skip_message
    # A newer bar stored later (next session) makes the signal stale again.
    store = resources["store"]
    info = store.read_json(bars_info_key("ACME"))
    store.write_json(bars_info_key("ACME"), {**info, "last_date": "2026-11-23"})
    later = _sense("new_symbols", instance, resources, cursor)
    assert [r.partition_key for r in later.run_requests] == ["ACME"]


# --- partition keys typed in the Dagster UI --------------------------------------------------


def test_symbol_sync_renames_lower_case_keys_and_removes_non_symbols(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    from ui.config import UIContext
    from ui.symbols_tab import symbols_table

    app_db = resources["app_db"]
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["AAPL", "nvda", "../etc", "aapl"])
    assert list_symbols(instance) == ["AAPL"]  # never offered as a symbol meanwhile
    table = symbols_table(UIContext(resources=resources, instance=instance))
    notices = table[table["symbol"].isin(["nvda", "../etc"])]
    assert set(notices["enabled"]) == {"-"}  # a notice row, never an enabled symbol
    assert "renamed to NVDA" in notices.set_index("symbol").loc["nvda", "last run"]

    result = _sense("symbol_sync", instance, resources)
    [delete] = result.dynamic_partitions_requests
    assert sorted(delete.partition_keys) == ["../etc", "aapl", "nvda"]
    assert "NVDA" in instance.get_dynamic_partitions(SYMBOLS_PARTITION)  # registered
    assert {s.symbol for s in app_db.list_settings()} == {"AAPL", "NVDA"}
    for request in result.dynamic_partitions_requests:  # what the sensor daemon does
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(SYMBOLS_PARTITION, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(SYMBOLS_PARTITION, key)
    assert sorted(instance.get_dynamic_partitions(SYMBOLS_PARTITION)) == ["AAPL", "NVDA"]
    assert _sense("symbol_sync", instance, resources, result.cursor).skip_reason


# --- imports (layering and cycles: test_structure.py) ---------------------------------------


def test_loading_the_definitions_imports_no_heavy_library_and_prints_no_warning() -> None:
    heavy = ["pandas", "matplotlib", "mlflow", "gradio", "ib_async", "openai", "minio"]
    code = ("import json, sys, warnings\n"
            "warnings.simplefilter('default')\n"
            "import trading_assets.definitions\n"
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n")
    child = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(child.stdout.strip().splitlines()[-1]) == []
    assert "Warning" not in child.stderr, child.stderr


# --- the CLI says which symbols failed -------------------------------------------------------


def test_cli_exits_non_zero_and_marks_a_failed_csv_symbol(
        home: Path, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets import cli

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for symbol in ("GOOD", "BAD"):
        bars = simulate_bars(symbol, AS_OF)
        bars.rename(columns=str.title).to_csv(csv_dir / f"{symbol}.csv", index=False)
    for name, value in {**env, "TRADING_DATA_SOURCE": "csv",
                        "TRADING_CSV_DIR": str(csv_dir)}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["materialize", "--symbols", "GOOD,BAD"]) == 0
    assert "in this process (no Dagster daemon running)" in capsys.readouterr().out

    (csv_dir / "BAD.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,x,1,5\n")
    assert cli.main(["materialize", "--symbols", "GOOD,BAD"]) == 1
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()
            if line.startswith(("GOOD ", "BAD "))}
    assert "FAILED" in rows["BAD"] and "BAD.csv row 2" in rows["BAD"]
    assert "no_action" not in rows["BAD"]  # the earlier run's signal is not shown as new
    assert "no_action" in rows["GOOD"]  # GOOD's bars give a HOLD: nothing to review
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert "FAILED: BAD" in captured.err


def test_a_cli_command_builds_the_resources_once_and_ends_on_a_run_no_daemon_starts(
        home: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets import cli, settings

    for name, value in {**env, "TRADING_QUEUE_WAIT_S": "1"}.items():
        monkeypatch.setenv(name, value)
    builds = []
    build = settings.build_resources
    monkeypatch.setattr(settings, "build_resources",
                        lambda *a, **k: builds.append(1) or build(*a, **k))
    assert cli.main(["symbols", "add", "ACME"]) == 0
    assert len(builds) == 1  # the start check's resources serve the command
    clock = _Clock()
    monkeypatch.setattr(runs, "time", clock)
    _heartbeat(runs.get_instance(), clock.now)  # a daemon that never starts the run
    assert cli.main(["materialize", "--symbols", "ACME"]) == 1
    assert len(builds) == 2 and clock.sleeps == 2  # gave up after TRADING_QUEUE_WAIT_S
    err = capsys.readouterr().err
    assert "is still QUEUED: the Dagster daemon has not started it in 1 s" in err
    assert "FAILED: ACME" in err


def test_run_now_refuses_a_symbol_the_sensor_is_already_analysing(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    from ui.config import UIContext, UIError
    from ui.symbols_tab import add_new_symbols, run_now

    ctx = UIContext(resources=resources, instance=instance)
    add_new_symbols(ctx, "ACME")
    run_id = _active_run(instance, {"dagster/partition": "ACME",
                                    "trading/launched_by": "sensor"})
    with pytest.raises(UIError, match=f"already has a Dagster run started .*{run_id[:8]}"):
        run_now(ctx, "ACME")
    assert ctx.launcher.recent() == []  # nothing launched a second time


def test_runs_execute_in_one_process_unless_the_setting_says_otherwise() -> None:
    from trading_assets.core.config import ConfigError
    from trading_assets.definitions import defs
    from trading_assets.executors import pipeline_executor as run_executor

    job = defs.resolve_job_def("symbol_pipeline")
    implicit = defs.resolve_implicit_global_asset_job_def()  # the UI's "Materialize"
    assert job.executor_def is dg.in_process_executor
    assert implicit.executor_def is dg.in_process_executor
    assert run_executor({"TRADING_EXECUTOR": "multiprocess"}) is dg.multiprocess_executor
    # celery is a supported choice now (the celery extra; tests/test_celery.py runs it).
    assert run_executor({"TRADING_EXECUTOR": "celery"}).name == "celery"
    with pytest.raises(ConfigError, match="TRADING_EXECUTOR='threads'"):
        run_executor({"TRADING_EXECUTOR": "threads"})


def test_the_runs_of_one_launch_share_a_tag_that_the_project_home_runs_one_at_a_time(
        home: Path, resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # 500 symbols through `make dev` were three runs at once on two cores, each with its chart
    # workers: 2.5 GB for the dev tree. Now the chunks of one launch queue behind each other.
    monkeypatch.setenv("TRADING_MAX_SYMBOLS_PER_RUN", "2")
    instance = runs.get_instance()
    symbols = ["AA", "BB", "CC", "DD", "EE"]
    outcomes = runs.launch_symbols(symbols, instance=instance, resources=resources,
                                   mode="daemon", timeout_s=0)  # no daemon: they stay queued
    launched = [instance.get_run_by_id(o.run_id) for o in outcomes]
    assert len(launched) == 3
    assert {r.tags[runs.LAUNCH_TAG] for r in launched} == {launched[0].tags[runs.LAUNCH_TAG]}
    assert launched[0].tags[runs.LAUNCH_TAG].startswith("cli-")
    [single] = runs.launch_symbols(["FF"], instance=instance, resources=resources,
                                   mode="daemon", timeout_s=0)
    assert runs.LAUNCH_TAG not in instance.get_run_by_id(single.run_id).tags
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": runs.LAUNCH_TAG, "value": {"applyLimitPerUniqueValue": True},
            "limit": 1} in limits


def test_a_sensor_tick_that_makes_several_runs_ties_them_together_as_one_launch() -> None:
    from trading_assets.automation.planning import analysis_requests
    from trading_assets.core.orders import SymbolSettings

    keys = ["AA", "BB", "CC", "DD", "EE"]
    settings = {k: SymbolSettings(symbol=k) for k in keys}
    several = analysis_requests(settings, keys, keys, "new-symbols-7", {}, 2, "sensor")
    assert len(several) == 3
    assert {r.tags[runs.LAUNCH_TAG] for r in several} == {"new-symbols-7"}
    [one] = analysis_requests(settings, keys, keys, "new-symbols-8", {}, 10, "sensor")
    assert runs.LAUNCH_TAG not in one.tags
