"""A run whose process dies ends FAILURE, says why, and holds nothing: a real `dagster dev`.

One `dagster dev` for the module (webserver, daemon, code server, run workers) on the instance
`make dev` sets up, and a loopback OpenAI-compatible model that holds its answers until the
test lets them go, so a run can be killed while `llm_signal` holds the symbol's analysis claim:

* only the run worker killed: Dagster's code server marks the run FAILURE, and the next run of
  the symbol takes the dead run's claim over at once instead of waiting out its 15-minute lease;
* the whole process group killed and `dagster dev` started again: run monitoring marks the run
  FAILURE within its poll interval, with the reason, and the symbol runs again.

Either way the symbol ends with one signal and at most one order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from trading_assets.bench.common import AS_OF, bench_env
from trading_assets.bench.live import DagsterDev, wait_for
from trading_assets.bench.llm_peer import OpenAIServer, Received, Reply, answer, signal_fields
from trading_assets.core.bars import simulate_bars
from trading_assets.core.orders import SymbolSettings

pytestmark = pytest.mark.timeout(900)

RUN_TIMEOUT_S = 240.0


class HeldModel:
    """The model peer: each answer waits until `release()`; requests are counted per symbol."""

    def __init__(self) -> None:
        self.server = OpenAIServer()
        self.gate = threading.Event()
        self.server.responder = self._respond

    def _respond(self, received: Received) -> Reply:
        symbol = symbol_of(received)
        self.gate.wait(RUN_TIMEOUT_S)
        close = float(simulate_bars(symbol, date.fromisoformat(AS_OF))["close"].iloc[-1])
        return answer(signal_fields(
            symbol, entry_price=round(close, 2), stop_loss=round(close * 0.95, 2),
            take_profit=round(close * 1.10, 2), support=round(close * 0.96, 2),
            resistance=round(close * 1.12, 2), position_size_pct=2.0))

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def calls_for(self, symbol: str) -> int:
        return sum(symbol_of(r) == symbol for r in list(self.server.requests))


def symbol_of(received: Received) -> str:
    text = received.user_parts()[0]["text"]
    return text.split("Symbol: ", 1)[1].split("\n", 1)[0]


@pytest.fixture(scope="module")
def model() -> Iterator[HeldModel]:
    held = HeldModel()
    held.server.start()
    try:
        yield held
    finally:
        held.release()
        held.server.stop()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, model: HeldModel) -> Iterator[DagsterDev]:
    workdir = tmp_path_factory.mktemp("dead-runs")
    env = bench_env(workdir)
    env.update(LLM_PROVIDER="openai", LLM_BASE_URL=model.server.base_url,
               LLM_API_KEY="sk-test", LLM_MODEL="gpt-4o-mini", LLM_HTTP_RETRIES="0",
               LLM_MAX_RETRIES="0", LLM_SEND_IMAGES="false",
               TRADING_AUTOMATION_RUNNING="false")  # no sensor runs beside the test's own
    server = DagsterDev(env, workdir / "dagster-dev.log").start()
    try:
        yield server
    finally:
        model.release()
        server.stop()


@pytest.fixture(scope="module")
def resources(dev: DagsterDev) -> dict[str, Any]:
    from trading_assets.settings import build_resources

    return build_resources(dev.env)


def start_held_run(dev: DagsterDev, resources: dict[str, Any], model: HeldModel,
                   symbol: str) -> str:
    """Queue a run of `symbol` and return its id once it waits in llm_signal for the model."""
    from trading_assets.partitions import register_symbols
    from trading_assets.runs import submit_batch

    model.hold()
    register_symbols(dev.instance, resources["app_db"], [symbol])
    resources["app_db"].upsert_settings(SymbolSettings(symbol, auto_approve=True,
                                                       min_confidence=50))
    run_id = submit_batch(dev.instance, [symbol], "cli")
    assert wait_for(lambda: model.calls_for(symbol) == 1, RUN_TIMEOUT_S), \
        f"the run of {symbol} never asked the model; see {dev.log}"
    return run_id


def run_again(dev: DagsterDev, resources: dict[str, Any], symbol: str) -> Any:
    from trading_assets.runs import submit_batch, wait_for_runs

    [outcome] = wait_for_runs(dev.instance, [submit_batch(dev.instance, [symbol], "cli")],
                              timeout_s=RUN_TIMEOUT_S)
    return outcome


def claim_holders(resources: dict[str, Any], symbol: str) -> list[str]:
    """Who holds analysis claims on `symbol` (read straight from the table)."""
    from sqlalchemy import select

    from resources.app_tables import AnalysisClaimRow

    with resources["app_db"].session() as session:
        return list(session.scalars(select(AnalysisClaimRow.holder)
                                    .where(AnalysisClaimRow.symbol == symbol)).all())


def assert_one_signal_and_order(resources: dict[str, Any], model: HeldModel,
                                symbol: str) -> None:
    app_db = resources["app_db"]
    signals = app_db.list_signals(symbol=symbol)
    # One signal, auto-approved and sent once: working at the broker or already filled.
    assert len(signals) == 1 and signals[0].status in {"working", "executed"}, signals
    assert len(app_db.list_orders(symbol)) == 1
    assert model.calls_for(symbol) == 2  # the dead run's call and the new run's, no more


def test_the_run_after_a_killed_run_worker_takes_its_analysis_claim_over(
        dev: DagsterDev, resources: dict[str, Any], model: HeldModel) -> None:
    from trading_assets.run_monitor import _started_pid

    dead = start_held_run(dev, resources, model, "KWK")
    killed = time.monotonic()
    os.kill(_started_pid(dev.instance, dead), signal.SIGKILL)
    # The code server that started the worker notices its death and fails the run ...
    assert wait_for(lambda: dev.instance.get_run_by_id(dead).status.value == "FAILURE", 120)
    print(f"\nrun {dead[:8]}: FAILURE {time.monotonic() - killed:.1f} s after its worker "
          "was killed")
    # ... but the claim the worker held on KWK's analysis is still in the table.
    assert claim_holders(resources, "KWK") == [dead]
    model.release()
    again = run_again(dev, resources, "KWK")
    print(f"KWK ran again: {again.status} {time.monotonic() - killed:.1f} s after the kill")
    assert again.success, again.failures
    assert_one_signal_and_order(resources, model, "KWK")


def test_a_killed_dagster_dev_fails_its_run_within_the_monitoring_interval(
        dev: DagsterDev, resources: dict[str, Any], model: HeldModel) -> None:
    from trading_assets.runs import analysing_symbols, run_failures

    dead = start_held_run(dev, resources, model, "KGR")
    killed = time.monotonic()
    dev.kill()  # webserver, daemon, code server and the run worker: nothing left to report
    assert dev.instance.get_run_by_id(dead).status.value == "STARTED"
    dev.start()
    poll = dev.instance.run_monitoring_poll_interval_seconds
    assert dev.instance.run_monitoring_enabled
    failed = wait_for(lambda: dev.instance.get_run_by_id(dead).status.value == "FAILURE",
                      3 * poll + 60)
    print(f"\nrun {dead[:8]}: FAILURE {time.monotonic() - killed:.1f} s after the kill, "
          f"dagster dev restart took {dev.startup_s:.1f} s (poll interval {poll} s)")
    assert failed, f"run {dead[:8]} still {dev.instance.get_run_by_id(dead).status.value}"
    [why] = run_failures(dev.instance, dead)
    assert "is gone" in why or "no longer runs it" in why, why
    assert "KGR" not in analysing_symbols(dev.instance, ["KGR"])
    model.release()
    again = run_again(dev, resources, "KGR")
    print(f"KGR ran again: {again.status} {time.monotonic() - killed:.1f} s after the kill")
    assert again.success, again.failures
    assert_one_signal_and_order(resources, model, "KGR")
