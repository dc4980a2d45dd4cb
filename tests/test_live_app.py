"""The app against a live `dagster dev` (webserver + daemon), one for the whole module.

* The health banner in real headless Chromium: with no daemon on the instance the page says
  what does not happen and how to start it; once `dagster dev` runs, the banner gives way to
  one line with a link to the Dagster UI.
* Lower-case keys typed in the Dagster UI, through its GraphQL API: a run launched on `intc`
  runs for INTC (the key is kept while the run may still start), and a run launched on a key
  symbol_sync already renamed ends with a message naming the symbol, never Dagster's internal
  "Partition range ... is not a valid range". Runs the new_symbols sensor starts for the
  renamed symbols are symbol_pipeline runs with our tags, counted in the last run column.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagster as dg
import pytest

from tests.test_ui_browser import ARTIFACTS, chromium_tab, require_chromium, serving
from trading_assets.bench.live import dagster_dev, free_port, wait_for
from trading_assets.local_app import create_storage
from trading_assets.partitions import SYMBOLS_PARTITION
from trading_assets.runs import home_config
from ui.config import UIConfig

RUN_TIMEOUT_S = 240.0
REPO = {"repositoryLocationName": "trading_assets", "repositoryName": "__repository__"}
ANALYSIS = [{"path": [name]} for name in ("ohlcv", "indicators", "charts", "llm_signal")]


@pytest.fixture(scope="module")
def live_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One Dagster home and data folder for the app, `dagster dev` and the test."""
    import os

    root = tmp_path_factory.mktemp("live")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(home_config(home))
    # The instance's files exist before `dagster dev` and this process open them at once.
    create_storage(dg.DagsterInstance.from_config(str(home)))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("TRADING_", "LLM_", "IBKR_", "MINIO_", "APP_DATABASE"))}
    return {**base, "DAGSTER_HOME": str(home), "TRADING_DATA_DIR": str(root / "data"),
            "TRADING_SIMULATED_AS_OF": "2026-11-20", "MLFLOW_TRACKING_URI": "off"}


@pytest.fixture(scope="module")
def served(live_env: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """The Gradio app on the module's instance, linking to a Dagster UI not started yet."""
    require_chromium()
    from trading_assets.settings import build_resources

    instance = dg.DagsterInstance.from_config(live_env["DAGSTER_HOME"])
    resources = build_resources(live_env)
    config = UIConfig(server_port=free_port(), dagster_url=f"http://127.0.0.1:{free_port()}")
    with serving(resources, instance, config) as served_app:
        yield served_app


@pytest.fixture(scope="module")
def live(live_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[int, dg.DagsterInstance]]:
    """`dagster dev` on the module's instance, started the first time a test asks for it."""
    log = tmp_path_factory.mktemp("logs") / "dagster-dev.log"
    with dagster_dev(live_env, log) as (port, instance, _, _):
        yield port, instance


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium_tab(height=900, timeout_ms=30_000) as tab:
        yield tab


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_the_banner_says_when_the_daemon_is_down_and_goes_once_it_runs(
        served: tuple[str, Any], page: Any, request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect

    url, app = served
    page.goto(url)
    down = page.locator("#daemon-down")
    expect(down).to_be_visible(timeout=30_000)
    expect(down).to_contain_text("Dagster daemon not running")
    expect(down).to_contain_text("approved signals do not become orders")
    expect(down).to_contain_text("daily_refresh schedule does not fire")
    expect(down).to_contain_text("make up")
    expect(down).to_contain_text("The Dagster UI does not answer")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-daemon-down.png"))

    port, _ = request.getfixturevalue("live")  # now start `dagster dev` on the same instance
    ctx = app.ui_context
    ctx.config = replace(ctx.config, dagster_url=f"http://127.0.0.1:{port}")
    up = page.locator("#daemon-up")
    expect(up).to_be_visible(timeout=120_000)  # the page re-reads the health every 5 s
    expect(down).to_have_count(0, timeout=30_000)
    # (a tick may still probe the old address: the next one, 5 s later, links the new one)
    expect(up.get_by_role("link", name="Dagster UI")).to_have_attribute(
        "href", f"http://127.0.0.1:{port}", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "ui-daemon-up.png"))


def graphql(port: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """One request to the webserver's GraphQL endpoint, as the Dagster UI sends it."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)["data"]


ADD_PARTITION = """
mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "symbols",
                      partitionKey: $key) { __typename } }"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def launch_from_the_ui(port: int, key: str) -> str:
    """Materialize the analysis assets for partition `key` as the Dagster UI's dialog does."""
    params = {"selector": {**REPO, "pipelineName": "__ASSET_JOB", "assetSelection": ANALYSIS,
                           "assetCheckSelection": []},
              "mode": "default", "runConfigData": "{}",
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]}}
    launched = graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def sync_tick(instance: dg.DagsterInstance, env: dict[str, str], cursor: str | None) -> Any:
    """One symbol_sync tick on the live instance, as the sensor daemon runs it."""
    from trading_assets.automation import AutomationSettings, build_automation
    from trading_assets.settings import build_resources

    [sync] = [s for s in build_automation(AutomationSettings()).sensors
              if s.name == "symbol_sync"]
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=build_resources(env)) as context:
        result = sync(context)
    for request in result.dynamic_partitions_requests or []:  # what the daemon then does
        for key in request.partition_keys:
            instance.delete_dynamic_partition(SYMBOLS_PARTITION, key)
    return result


def finished(instance: dg.DagsterInstance, run_id: str) -> Any:
    return wait_for(lambda: (r := instance.get_run_by_id(run_id)) is not None
                    and r.is_finished and r, RUN_TIMEOUT_S)


@pytest.mark.timeout(600)
def test_lower_case_keys_from_the_dagster_ui_never_fail_inside_dagster(
        live: tuple[int, dg.DagsterInstance], live_env: dict[str, str]) -> None:
    from trading_assets.runs import run_failures
    from trading_assets.settings import build_resources

    port, instance = live
    env = live_env
    app_db = build_resources(env)["app_db"]

    # `intc` added in the Materialize dialog and launched at once: the run runs for INTC.
    assert graphql(port, ADD_PARTITION, {"repo": REPO, "key": "intc"})
    run_id = launch_from_the_ui(port, "intc")
    active = not instance.get_run_by_id(run_id).is_finished
    first = sync_tick(instance, env, None)  # the sync renames it meanwhile
    keys = instance.get_dynamic_partitions(SYMBOLS_PARTITION)
    assert "INTC" in keys
    if active and not instance.get_run_by_id(run_id).is_finished:
        assert "intc" in keys  # kept while its run may still start
    run = finished(instance, run_id)
    assert run and run.status == dg.DagsterRunStatus.SUCCESS, run_failures(instance, run_id)
    assert run.job_name == "__ASSET_JOB" and "trading/launched_by" not in run.tags
    assert app_db.latest_signal("INTC") is not None
    sync_tick(instance, env, first.cursor)
    assert "intc" not in instance.get_dynamic_partitions(SYMBOLS_PARTITION)

    # `amd` renamed to AMD before anyone launched it; a stale dialog launches `amd` anyway.
    assert graphql(port, ADD_PARTITION, {"repo": REPO, "key": "amd"})
    sync_tick(instance, env, None)
    assert "amd" not in instance.get_dynamic_partitions(SYMBOLS_PARTITION)
    stale = finished(instance, launch_from_the_ui(port, "amd"))
    assert stale and stale.status == dg.DagsterRunStatus.FAILURE
    [failure] = run_failures(instance, stale.run_id)
    assert "Partition key 'amd' was renamed to AMD by the symbol_sync sensor" in failure
    assert "launch the run for AMD instead" in failure
    assert "not a valid range" not in failure

    # The new_symbols sensor analyses the renamed symbols in symbol_pipeline runs, tagged.
    def sensor_run() -> Any:
        return next((r for r in instance.get_runs()
                     if r.tags.get("dagster/sensor_name") == "new_symbols" and r.is_finished
                     and r.tags.get("dagster/partition") == "AMD"), None)

    amd_run = wait_for(sensor_run, RUN_TIMEOUT_S, poll_s=2.0)
    assert amd_run is not None and amd_run.job_name == "symbol_pipeline"
    assert amd_run.tags["trading/launched_by"] == "sensor"
    from trading_assets.run_tags import last_run_cells

    cells = last_run_cells(instance, app_db, ["INTC", "AMD"],
                           instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    assert "· sensor new_symbols ·" in cells["AMD"]
    assert cells["INTC"].split(" · ")[1] in ("sensor new_symbols", "Dagster UI")
