"""Status from every run: a symbol's last run comes from all runs that cover it (a single key or
a range), whoever launched them (sensor, schedule, Dagster UI, CLI, Gradio), with the launcher
named and a queued run shown as queued; and sensor and schedule runs are symbol_pipeline runs."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from tests.conftest import run_symbols
from trading_assets import cli
from trading_assets.automation import AutomationSettings, build_automation
from trading_assets.partitions import register_symbols
from trading_assets.run_tags import LAUNCHED_BY_TAG, launcher_of
from ui.config import UIContext
from ui.symbols_tab import symbols_table


def ui_run(instance: dg.DagsterInstance, status: str, tags: dict[str, str]) -> str:
    """A run as the Dagster UI's Materialize makes it: `__ASSET_JOB`, none of our tags."""

    from trading_assets.runs import _job_origins

    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=f"ui-{status.lower()}-{len(tags)}",
                     status=dg.DagsterRunStatus(status), tags=tags,
                     remote_job_origin=_job_origins()[0] if status == "QUEUED" else None)
    instance.add_run(run)
    return run.run_id


def test_the_last_run_column_counts_every_run_and_names_its_launcher(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    register_symbols(instance, app_db, ["APPL", "INTC", "MSFT", "TSLA", "NVDA"])

    # APPL: analysed only by the new_symbols sensor (Dagster adds its own sensor tag).
    sensor_tags = {LAUNCHED_BY_TAG: "sensor", "dagster/sensor_name": "new_symbols"}
    sensor_run = dg.materialize(_analysis_assets(), instance=instance, resources=resources,
                                partition_key="APPL", tags=sensor_tags)
    # INTC: failed in a CLI run, then succeeded in a later sensor run.
    app_db.record_failure("cli-run-0001", "INTC", "ohlcv", "DagsterInvalidInvocationError: x")
    dg.materialize(_analysis_assets(), instance=instance, resources=resources,
                   partition_key="INTC", tags=sensor_tags)
    # MSFT: launched from the Dagster UI and still waiting in the daemon's queue.
    ui_run(instance, "QUEUED", {"dagster/partition": "MSFT"})
    # TSLA..NVDA: a range run from the Dagster UI (a backfill), finished.
    ui_run(instance, "SUCCESS", {"dagster/asset_partition_range_start": "TSLA",
                                 "dagster/asset_partition_range_end": "NVDA",
                                 "dagster/backfill": "abcd"})

    table = symbols_table(UIContext(resources=resources, instance=instance))
    last = dict(zip(table["symbol"], table["last run"], strict=True))
    assert last["APPL"].startswith("succeeded ") and "· sensor new_symbols ·" in last["APPL"]
    assert sensor_run.run_id[:8] in last["APPL"]
    assert last["INTC"].startswith("succeeded ") and "sensor new_symbols" in last["INTC"]
    assert last["MSFT"].startswith("queued ") and "· Dagster UI ·" in last["MSFT"]
    for symbol in ("TSLA", "NVDA"):
        assert last[symbol].startswith("succeeded ") and "Dagster UI (backfill)" in last[symbol]


def test_a_symbols_own_failure_in_a_run_that_succeeded_shows(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    register_symbols(instance, resources["app_db"], ["GOOD", "BAD"])
    result = run_symbols(instance, resources, ["GOOD", "BAD"])  # one range run, from a test
    resources["app_db"].record_failure(result.run_id, "BAD", "ohlcv", "no bars for BAD")
    table = symbols_table(UIContext(resources=resources, instance=instance))
    last = dict(zip(table["symbol"], table["last run"], strict=True))
    assert last["GOOD"].startswith("succeeded ")
    assert last["BAD"].startswith("failed in ohlcv: no bars for BAD ")


@pytest.mark.parametrize(("tags", "launcher"), [
    ({LAUNCHED_BY_TAG: "cli"}, "CLI"),
    ({LAUNCHED_BY_TAG: "gradio"}, "Gradio app"),
    ({LAUNCHED_BY_TAG: "schedule", "dagster/schedule_name": "daily_refresh"},
     "schedule daily_refresh"),
    ({"dagster/sensor_name": "new_symbols"}, "sensor new_symbols"),
    ({}, "Dagster UI"),
])
def test_the_launcher_comes_from_our_tag_or_dagsters(tags: dict[str, str], launcher: str
                                                     ) -> None:
    assert launcher_of(tags) == launcher


def _analysis_assets() -> list[Any]:
    from trading_assets.automation.planning import ANALYSIS_ASSETS

    return list(ANALYSIS_ASSETS)


def test_sensor_and_schedule_runs_are_symbol_pipeline_runs_with_the_tags(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    auto = build_automation(AutomationSettings(running=False))
    targets = {s.name: [t.job_name for t in s.targets] for s in auto.sensors if s.targets}
    assert targets == {"new_symbols": ["symbol_pipeline"], "approved_signals": ["symbol_pipeline"]}
    assert [s.job_name for s in auto.schedules] == ["symbol_pipeline"]

    register_symbols(instance, resources["app_db"], ["ACME"])
    [new_symbols] = [s for s in auto.sensors if s.name == "new_symbols"]
    with dg.build_sensor_context(instance=instance, resources=resources,
                                 cursor='{"seen": [], "generation": 0}') as context:
        [request] = new_symbols(context).run_requests  # type: ignore[union-attr]
    assert request.tags[LAUNCHED_BY_TAG] == "sensor" and request.partition_key == "ACME"
    # The request runs as a subset of symbol_pipeline, as the daemon launches it.
    from trading_assets.definitions import SYMBOL_ASSETS, SYMBOL_CHECKS
    from trading_assets.jobs import symbol_pipeline_job

    defs = dg.Definitions(assets=SYMBOL_ASSETS, asset_checks=[*SYMBOL_CHECKS, *auto.checks],
                          jobs=[symbol_pipeline_job], resources=resources)
    job = defs.resolve_job_def("symbol_pipeline").get_subset(
        asset_selection=set(request.asset_selection),
        asset_check_selection=set(request.asset_check_keys or []))
    result = job.execute_in_process(instance=instance, partition_key="ACME",
                                    tags=request.tags)
    assert result.success and result.dagster_run.job_name == "symbol_pipeline"
    assert {e.asset_key.path[0] for e in result.get_asset_materialization_events()} == {
        "ohlcv", "indicators", "charts", "llm_signal"}


def test_symbols_list_shows_the_last_run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                        tmp_path: Any, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    for name, value in {**env, "DAGSTER_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["materialize", "--symbols", "ACME", "--in-process"]) == 0
    assert cli.main(["symbols", "add", "NEWB"]) == 0
    capsys.readouterr()
    assert cli.main(["symbols", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "succeeded" in rows["ACME"] and "CLI" in rows["ACME"]
    assert rows["NEWB"].rstrip().endswith("never")
