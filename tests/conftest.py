"""Shared fixtures: a test Dagster instance, resources on a temporary data directory, symbols."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

# Tests must never pick up a developer's keys or servers: the embedded defaults are the baseline
# and each test opts into what it needs.
for _name in list(os.environ):
    if _name.startswith(("LLM_", "OPENAI_", "TRADING_", "IBKR_", "MINIO_", "MLFLOW_",
                         "APP_DATABASE", "PAPER_")):
        os.environ.pop(_name)

from trading_assets.definitions import SYMBOL_ASSETS, SYMBOL_CHECKS  # noqa: E402
from trading_assets.partitions import SYMBOLS_PARTITION  # noqa: E402
from trading_assets.settings import build_resources  # noqa: E402

ALL_ASSETS: list[Any] = [*SYMBOL_ASSETS, *SYMBOL_CHECKS]
# The evening of the simulated bars' last day (TRADING_SIMULATED_AS_OF below): a person's
# Approve checks how old a signal is against this clock.
BARS_EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)


def on_bars_evening(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the clock Approve and the sensors read (core/clock.py) to BARS_EVENING."""
    from trading_assets.core import clock

    monkeypatch.setattr(clock, "utc_now", lambda: BARS_EVENING)


def buy(entry: float = 100.0, stop: float = 95.0, target: float = 110.0, **kw: Any) -> Any:
    """A HIGH-confidence BUY of ACME with its levels (keyword arguments override any field)."""
    from trading_assets.core.signal import Action, ConfidenceLevel, TradingSignal, Trend

    fields: dict[str, Any] = dict(
        symbol="ACME", action=Action.BUY, confidence_level=ConfidenceLevel.HIGH,
        confidence_score=85, reasoning="Trend and momentum agree.",
        key_factors=["daily: close above SMA 50"], trend=Trend.UP, entry_price=entry,
        stop_loss=stop, take_profit=target, position_size_pct=5.0)
    return TradingSignal(**{**fields, **kw})


def stored_buy(app_db: Any, symbol: str, close: float, status: Any, prompt: str = "test",
               **changes: Any) -> Any:
    """A BUY stored for the bars' last day with levels around `close`, as llm_signal stores one."""
    from trading_assets.core.signal import AnalysisOutcome

    day = BARS_EVENING.date()
    signal = buy(symbol=symbol, **{"entry": round(close, 2), "stop": round(close * 0.95, 2),
                                   "target": round(close * 1.1, 2), **changes})
    outcome = AnalysisOutcome(symbol=symbol, signal=signal, provider="test", model="m",
                              prompt_version=prompt)
    return app_db.record_signal(outcome=outcome, bar_date=day, status=status,
                                data_source="simulated", simulated=True,
                                last_bars=[{"date": str(day), "close": close}], indicators={},
                                chart_keys={})


def run_cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> int:
    """The CLI on the test's environment, on the evening of its bars' last day."""
    from trading_assets.cli import main as cli_main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    on_bars_evening(monkeypatch)
    return cli_main(list(args))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real DAGSTER_HOME (SQLite storage, queued run coordinator) like the CLI's own."""
    from trading_assets import runs

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return runs.ensure_dagster_home()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """The environment the resources are built from; tests add variables to it."""
    return {"TRADING_DATA_DIR": str(data_dir), "TRADING_SIMULATED_AS_OF": "2026-11-20",
            "MLFLOW_TRACKING_URI": "off"}


@pytest.fixture
def resources(env: dict[str, str]) -> dict[str, Any]:
    return build_resources(env)


@pytest.fixture
def peer() -> Iterator[Any]:
    """A TWS-protocol peer on loopback (tests/peers/tws_peer.py) for the real ib_async client."""
    from resources.ibkr import disconnect_all, reset_pacing
    from tests.peers.tws_peer import TwsPeer

    reset_pacing()
    with TwsPeer() as running:
        yield running
        disconnect_all()


@pytest.fixture
def make_ibkr(peer: Any) -> Any:
    """IBKRResource factory pointed at the peer, with test-sized timeouts (overrides win)."""
    from resources.ibkr import IBKRResource

    def make(**overrides: object) -> IBKRResource:
        config: dict[str, object] = {"port": peer.port, "connect_timeout": 3.0,
                                     "request_timeout": 3.0, "order_timeout": 1.0}
        return IBKRResource(**{**config, **overrides})

    return make


def run_symbols(instance: dg.DagsterInstance, resources: dict[str, Any], symbols: list[str],
                assets: list[Any] | None = None, raise_on_error: bool = True
                ) -> dg.ExecuteInProcessResult:
    """Materialize `assets` (default: the whole graph with checks) for symbols in one run."""
    existing = set(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    missing = [s for s in symbols if s not in existing]
    if missing:
        instance.add_dynamic_partitions(SYMBOLS_PARTITION, missing)
    keys = instance.get_dynamic_partitions(SYMBOLS_PARTITION)
    selected = [k for k in keys if k in symbols]
    if len(selected) == 1:
        return dg.materialize(assets or ALL_ASSETS, instance=instance, resources=resources,
                              partition_key=selected[0], raise_on_error=raise_on_error)
    return dg.materialize(
        assets or ALL_ASSETS, instance=instance, resources=resources,
        raise_on_error=raise_on_error,
        tags={"dagster/asset_partition_range_start": selected[0],
              "dagster/asset_partition_range_end": selected[-1]},
    )


def metadata_for(result: dg.ExecuteInProcessResult, asset: str, symbol: str) -> dict[str, Any]:
    """The metadata values of one asset's materialization for one symbol."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == asset and mat.partition == symbol:
            return {key: value.value for key, value in mat.metadata.items()}
    raise AssertionError(f"no materialization of {asset} for {symbol}")
