"""One way to add a symbol: the CLI, the Gradio app and the symbol_sync sensor all register
through partitions.register_symbols, which confirms the contract at IBKR when IBKR is configured
(the TWS-protocol peer, real ib_async client) and says what nothing checked when it is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources.ibkr import disconnect_all, reset_pacing
from tests.peers.tws_peer import TwsPeer
from trading_assets import cli
from trading_assets.automation import AutomationSettings, build_automation
from trading_assets.partitions import SYMBOLS_PARTITION, list_symbols
from trading_assets.runs import get_instance
from trading_assets.settings import build_resources
from ui.config import UIContext
from ui.symbols_tab import add_new_symbols


@pytest.fixture
def home(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment: the test data folder and a Dagster home of its own."""
    for name, value in {**env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def ibkr_env(home: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """IBKR market data from the TWS peer (AAPL and MSFT listed; ZZZZ unknown)."""
    reset_pacing()
    with TwsPeer() as peer:
        extra = {"TRADING_DATA_SOURCE": "ibkr", "IBKR_PORT": str(peer.port),
                 "IBKR_CONNECT_TIMEOUT": "3", "IBKR_REQUEST_TIMEOUT": "3"}
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        yield {**home, **extra}
        disconnect_all()


def test_with_simulated_data_adding_says_nothing_checked_the_ticker(
        home: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["symbols", "add", "APPL"]) == 0
    assert capsys.readouterr().out.strip() == (
        "APPL: added. With simulated data any well-formed ticker is accepted; nothing checked "
        "that APPL trades.")
    assert cli.main(["symbols", "add", "APPL,MSFT"]) == 0
    assert capsys.readouterr().out.strip() == (
        "MSFT: added. APPL: already there. With simulated data any well-formed ticker is "
        "accepted; nothing checked that MSFT trades.")


def test_the_cli_qualifies_at_ibkr_like_the_app(ibkr_env: dict[str, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["symbols", "add", "AAPL"]) == 0
    out = capsys.readouterr().out
    assert "AAPL: added." in out and "APPLE INC on NASDAQ" in out and "simulated" not in out
    resources = build_resources(ibkr_env)
    assert resources["app_db"].settings_for("AAPL").primary_exchange == "NASDAQ"
    # A confirmed symbol is not asked again (materialize registers its symbols every time).
    from resources.ibkr import IBKRResource

    asked: list[str] = []
    qualify = IBKRResource.qualify
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IBKRResource, "qualify",
                      lambda self, symbol, settings=None: asked.append(symbol)
                      or qualify(self, symbol, settings))
        assert cli.main(["symbols", "add", "AAPL"]) == 0
    assert capsys.readouterr().out.strip() == "AAPL: already there." and asked == []

    # A ticker IBKR does not know is refused, and nothing of the command is written.
    assert cli.main(["symbols", "add", "MSFT,ZZZZ"]) == 1
    err = capsys.readouterr().err
    assert "IBKR could not confirm ZZZZ, so nothing was added" in err
    assert len(err.strip().splitlines()) == 1
    assert list_symbols(get_instance()) == ["AAPL"]
    assert [s.symbol for s in resources["app_db"].list_settings()] == ["AAPL"]

    # The app's Add gives the same answer through the same function.
    ctx = UIContext(resources=resources, instance=get_instance())
    assert "MSFT: added." in add_new_symbols(ctx, "MSFT")
    assert resources["app_db"].settings_for("MSFT").primary_exchange == "NASDAQ"


def test_symbol_sync_registers_dagster_ui_keys_through_ibkr_too(ibkr_env: dict[str, str]
                                                                ) -> None:
    resources = build_resources(ibkr_env)
    auto = build_automation(AutomationSettings(running=False))
    [sync] = [s for s in auto.sensors if s.name == "symbol_sync"]
    with dg.instance_for_test() as instance:
        # Typed in the Dagster UI: a real ticker, a lower-case one and one IBKR does not know.
        instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["AAPL", "msft", "ZZZZ"])
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result: Any = sync(context)
        for request in result.dynamic_partitions_requests:  # what the sensor daemon does
            for key in request.partition_keys:
                instance.delete_dynamic_partition(SYMBOLS_PARTITION, key)
        assert list_symbols(instance) == ["AAPL", "MSFT"]
        settings = resources["app_db"].settings_by_symbol(["AAPL", "MSFT"])
        assert {s.primary_exchange for s in settings.values()} == {"NASDAQ"}
        assert [s.symbol for s in resources["app_db"].list_settings()] == ["AAPL", "MSFT"]


# --- keys a queued or running run names ----------------------------------------------------


def add_run(instance: dg.DagsterInstance, key: str, status: str) -> str:
    """A run of the UI's asset job on `key`, as the Dagster UI's Materialize leaves it."""

    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=f"{key.lower()}-{status.lower()}-run",
                     status=dg.DagsterRunStatus(status), tags={"dagster/partition": key})
    instance.add_run(run)
    return run.run_id


def test_a_key_a_queued_run_names_is_kept_until_the_run_ends(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    auto = build_automation(AutomationSettings(running=False))
    [sync] = [s for s in auto.sensors if s.name == "symbol_sync"]
    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["intc"])  # typed in the Dagster UI
    run_id = add_run(instance, "intc", "STARTING")  # ... and launched from its Materialize dialog

    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        first: Any = sync(context)
    assert not first.dynamic_partitions_requests  # "intc" stays while its run may start
    assert list(instance.get_dynamic_partitions(SYMBOLS_PARTITION)) == ["intc", "INTC"]

    instance.report_run_failed(instance.get_run_by_id(run_id))  # the run has ended
    with dg.build_sensor_context(instance=instance, resources=resources,
                                 cursor=first.cursor) as context:
        second: Any = sync(context)
    [delete] = second.dynamic_partitions_requests
    assert list(delete.partition_keys) == ["intc"]


def test_removing_a_symbol_a_running_run_names_is_refused(
        home: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    from ui.config import UIError
    from ui.symbols_tab import remove_symbol

    assert cli.main(["symbols", "add", "AAPL"]) == 0
    instance = get_instance()
    add_run(instance, "AAPL", "STARTED")
    capsys.readouterr()
    assert cli.main(["symbols", "remove", "AAPL"]) == 1
    err = capsys.readouterr().err
    assert "AAPL (run aapl-sta) still queued or running" in err and "Traceback" not in err
    ctx = UIContext(resources=build_resources(home), instance=instance)
    with pytest.raises(UIError, match="still queued or running"):
        remove_symbol(ctx, "AAPL")
    assert list_symbols(instance) == ["AAPL"]
    assert [s.symbol for s in ctx.app_db.list_settings()] == ["AAPL"]


def test_a_run_on_a_key_renamed_before_it_started_ends_naming_the_symbol(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    from tests.conftest import ALL_ASSETS
    from trading_assets.runs import run_failures

    instance.add_dynamic_partitions(SYMBOLS_PARTITION, ["INTC"])  # symbol_sync renamed "intc"
    result = dg.materialize(ALL_ASSETS, instance=instance, resources=resources,
                            tags={"dagster/partition": "intc"}, raise_on_error=False)
    assert not result.success
    [failure] = run_failures(instance, result.run_id)
    assert "Partition key 'intc' was renamed to INTC by the symbol_sync sensor" in failure
    assert "launch the run for INTC instead" in failure
    assert "not a valid range" not in failure
