"""MLflow tracking against a temporary SQLite store, and against dead addresses."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import resources.tracking as tracking_module
from resources.llm_openai import OpenAIAnalyst
from resources.tracking import RunRecord, Tracking, TrackingResult
from trading_assets.bench.llm_peer import (
    OpenAIServer,
    analysis_request,
    answer,
    http_error,
    signal_fields,
)
from trading_assets.core.config import ConfigError
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest

API_KEY = "sk-tracking-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def model_outcomes() -> Iterator[tuple[AnalysisRequest, AnalysisOutcome, AnalysisOutcome]]:
    """One valid and one failed model outcome, made by the real clients on the test server."""
    with pytest.MonkeyPatch.context() as patch, OpenAIServer() as server:
        patch.setenv("LLM_API_KEY", API_KEY)
        server.script(answer(signal_fields("TSLA")), http_error(500, f"crashed, key {API_KEY}"))
        analyst = OpenAIAnalyst(base_url=server.base_url, model="gpt-4o-mini",
                                http_retries=0, mode="tools")
        request = analysis_request("TSLA")
        good = analyst.analyze_many([request])[0]
        bad = analyst.analyze_many([request])[0]
        assert good.ok and bad.error
        yield request, good, bad


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Tracking:
    """A local store as `make demo` gets it (creating one takes a few seconds, so shared)."""
    tracking = Tracking.from_env({}, str(tmp_path_factory.mktemp("data")))
    tracking.warm_up()
    return tracking


def mlflow_client(tracking: Tracking) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.tracking_uri)


def log(tracking: Tracking, request: AnalysisRequest, outcome: AnalysisOutcome,
        status: str, signal_id: str = "sig-1", **extra: Any) -> TrackingResult:
    return tracking.log_signal(signal_id=signal_id, status=status, outcome=outcome,
                               request=request, data_source="simulated",
                               dagster_run_id="dagster-run-42", **extra)


def test_signal_becomes_one_mlflow_run_with_params_metrics_and_artifacts(
        store: Tracking, model_outcomes: Any, tmp_path: Path) -> None:
    request, good, _ = model_outcomes
    result = log(store, request, good, "pending_review", signal_id="sig-good")
    assert result.error is None and result.run_id
    # A local store has no MLflow UI until someone starts one: the run id and how to open it.
    assert result.url is None
    shown = result.metadata()["mlflow_run"]
    assert isinstance(shown, str) and result.run_id in shown and "mlflow ui" in shown

    client = mlflow_client(store)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "trading-signals"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["dagster.run_id"], tags["symbol"], tags["provider"]) == \
        ("dagster-run-42", "TSLA", "openai")
    assert (tags["signal_id"], tags["signal_status"], tags["action"]) == \
        ("sig-good", "pending_review", "BUY")
    assert {k: run.data.params[k] for k in ("model", "prompt_version", "instructor_mode",
                                             "data_source")} == {
        "model": "gpt-4o-mini", "prompt_version": good.prompt_version,
        "instructor_mode": "tools", "data_source": "simulated"}
    metrics = run.data.metrics
    assert metrics["confidence_score"] == 84
    assert metrics["prompt_tokens"] == 1200 and metrics["completion_tokens"] == 300
    assert metrics["cost_usd"] == pytest.approx(good.cost_usd)
    assert metrics["latency_s"] == pytest.approx(good.latency_s)
    assert metrics["daily.rsi_14"] == 61.5 and metrics["weekly.rsi_14"] == 58.0
    assert "daily.bb_upper" not in metrics  # a warm-up None is not logged as a number

    files = {f.path for f in client.list_artifacts(result.run_id)} | \
        {f.path for f in client.list_artifacts(result.run_id, "charts")}
    assert {"charts/daily.png", "charts/weekly.png", "transcript.json", "signal.json",
            "request.json"} <= files
    local = Path(client.download_artifacts(result.run_id, "", str(tmp_path)))
    assert (local / "charts/daily.png").read_bytes() == request.daily_chart_png
    signal_doc = json.loads((local / "signal.json").read_text())
    assert signal_doc["signal"]["confidence_score"] == 84
    transcript = json.loads((local / "transcript.json").read_text())
    assert transcript["prompt"]["version"] == good.prompt_version
    assert transcript["attempts"][0]["response"]["tool_calls"]
    # Artifacts live under the data directory, not in ./mlruns of the working directory.
    assert run.info.artifact_uri.startswith(store.artifact_root)


def test_error_signal_is_tracked_as_a_failed_run_with_its_error(
        store: Tracking, model_outcomes: Any, tmp_path: Path) -> None:
    request, _, bad = model_outcomes
    result = log(store, request, bad, "error", signal_id="sig-bad")
    assert result.run_id, result.error
    client = mlflow_client(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["signal_status"] == "error" and run.data.tags["action"] == "none"
    assert run.data.metrics["error"] == 1.0 and "confidence_score" not in run.data.metrics
    path = client.download_artifacts(result.run_id, "signal.json", str(tmp_path))
    assert "HTTP 500" in json.loads(Path(path).read_text())["error"]


def test_api_key_reaches_no_param_tag_metric_or_artifact(
        store: Tracking, model_outcomes: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", API_KEY)
    request, good, bad = model_outcomes
    client = mlflow_client(store)
    for outcome, status in ((good, "pending_review"), (bad, "error")):
        result = log(store, request, outcome, status, signal_id=f"sig-key-{status}")
        assert result.run_id and API_KEY not in repr(result.metadata())
        run = client.get_run(result.run_id)
        logged = json.dumps([run.data.params, run.data.tags, run.data.metrics])
        assert API_KEY not in logged
        local = Path(client.download_artifacts(result.run_id, "", str(tmp_path / status)))
        for artifact in local.rglob("*.json"):
            assert API_KEY not in artifact.read_text()
    assert "[REDACTED]" in bad.error  # the server echoed the key; it was scrubbed


def test_each_signal_gets_its_own_run_in_the_one_experiment(
        store: Tracking, model_outcomes: Any) -> None:
    request, good, _ = model_outcomes
    ids = [log(store, request, good, "pending_review", signal_id=f"sig-many-{i}").run_id
           for i in range(3)]
    assert len(set(ids)) == 3
    experiment = mlflow_client(store).get_experiment_by_name("trading-signals")
    runs = mlflow_client(store).search_runs(
        [experiment.experiment_id], "tags.signal_id LIKE 'sig-many-%'")
    assert sorted(r.info.run_id for r in runs) == sorted(ids)


def test_explicit_chart_pngs_are_the_ones_logged(store: Tracking, model_outcomes: Any,
                                                 tmp_path: Path) -> None:
    request, good, _ = model_outcomes
    result = log(store, request, good, "pending_review", signal_id="sig-charts",
                 chart_pngs={"daily": b"\x89PNG other daily", "weekly": b"\x89PNG other w"})
    path = mlflow_client(store).download_artifacts(result.run_id, "charts/daily.png",
                                                   str(tmp_path))
    assert Path(path).read_bytes() == b"\x89PNG other daily"


def test_other_runs_share_the_store_in_their_own_experiment(store: Tracking) -> None:
    record = RunRecord(run_name="signal scorecard", tags={"dagster.run_id": "r-7"},
                       params={"horizon_bars": "5"}, metrics={"hit_rate": 0.55},
                       artifacts={"tables/summary.csv": b"metric,value\nhit_rate,0.55\n"})
    result = store.log_run(record, experiment="trading-signals-scorecard")
    assert result.run_id, result.error
    run = mlflow_client(store).get_run(result.run_id)
    experiment = mlflow_client(store).get_experiment(run.info.experiment_id)
    assert experiment.name == "trading-signals-scorecard"
    assert experiment.artifact_location == f"{store.artifact_root}/trading-signals-scorecard"
    assert run.data.metrics == {"hit_rate": 0.55} and run.data.params == {"horizon_bars": "5"}


# --- outages -------------------------------------------------------------------------------


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server or proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def mlflow_imported() -> None:
    """Import mlflow up front so the outage timings measure the network, not the import."""
    import mlflow.tracking  # noqa: F401


def test_hung_server_delays_a_run_by_at_most_one_timeout(blackhole: int,
                                                         model_outcomes: Any) -> None:
    request, good, _ = model_outcomes
    tracking = Tracking(tracking_uri=f"http://127.0.0.1:{blackhole}", timeout_s=1.0)
    results = [log(tracking, request, good, "pending_review", signal_id=f"s{i}")
               for i in range(5)]
    assert all(r.run_id is None and r.error for r in results)
    # One call waited out the timeout; the other four were skipped without waiting.
    waited = [r for r in results if "did not answer within 1 s" in r.error]
    skipped = [r for r in results if "still busy" in r.error]
    assert (waited, len(skipped)) == ([results[0]], 4)
    assert results[0].metadata() == {"mlflow_error": results[0].error,
                                     "mlflow_run": "not tracked: see mlflow_error"}


def test_refused_connection_fails_fast_and_is_not_retried_per_signal(
        model_outcomes: Any) -> None:
    request, good, _ = model_outcomes
    port = free_port()
    tracking = Tracking(tracking_uri=f"http://127.0.0.1:{port}", timeout_s=5.0)
    first = log(tracking, request, good, "pending_review")
    second = log(tracking, request, good, "pending_review")
    assert "did not answer" not in first.error  # refused at once, not timed out
    assert f"127.0.0.1:{port}" in first.error and "connection refused" in first.error
    assert "skipping it" in second.error


def test_credentials_in_the_tracking_uri_are_not_shown(model_outcomes: Any) -> None:
    request, good, _ = model_outcomes
    tracking = Tracking(tracking_uri=f"http://admin:hunter2-pass@127.0.0.1:{free_port()}",
                        timeout_s=2.0)
    result = log(tracking, request, good, "pending_review")
    assert "hunter2" not in result.error and "hunter2" not in tracking.label


# --- configuration -------------------------------------------------------------------------


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("called although tracking is off")


def test_local_sqlite_store_is_the_default(tmp_path: Path) -> None:
    tracking = Tracking.from_env({"MLFLOW_TRACKING_URI": ""}, str(tmp_path))
    assert tracking.active
    assert tracking.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.artifact_root == (tmp_path.resolve() / "mlflow-artifacts").as_uri()
    assert tracking.timeout_s == 10.0 and tracking.experiment == "trading-signals"


def test_server_settings_from_the_environment(tmp_path: Path) -> None:
    tracking = Tracking.from_env({"MLFLOW_TRACKING_URI": "http://mlflow:5000",
                                  "MLFLOW_EXPERIMENT_NAME": "signals-prod",
                                  "MLFLOW_TIMEOUT_S": "3"}, str(tmp_path))
    assert (tracking.tracking_uri, tracking.experiment, tracking.timeout_s) == \
        ("http://mlflow:5000", "signals-prod", 3.0)
    assert tracking.artifact_root == ""  # the server decides (proxied artifacts)
    assert tracking.run_url("7", "abc") == "http://mlflow:5000/#/experiments/7/runs/abc"


def test_tracking_off_returns_at_once_without_an_error(
        model_outcomes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request, good, _ = model_outcomes
    tracking = Tracking.from_env({"MLFLOW_TRACKING_URI": "off"}, str(tmp_path))
    # Nothing is built and no MLflow worker is started or waited for.
    monkeypatch.setattr(tracking_module, "build_run_record", _never)
    monkeypatch.setattr(Tracking, "_worker", _never)
    result = log(tracking, request, good, "pending_review")
    assert result == TrackingResult(run_id=None)
    assert "off" in result.metadata()["mlflow"] and tracking.label == "MLflow off"
    assert result.metadata()["mlflow_run"].startswith("not tracked")


def test_a_configured_mlflow_ui_makes_the_run_a_link(store: Tracking, model_outcomes: Any) -> None:
    request, good, _ = model_outcomes
    linked = store.model_copy(update={"ui_url": "http://mlflow.example:5000"})
    result = log(linked, request, good, "pending_review", signal_id="sig-linked")
    link = result.metadata()["mlflow_run"]
    assert isinstance(link, dg.UrlMetadataValue)
    assert link.url == f"http://mlflow.example:5000/#/experiments/{result.experiment_id}/runs/" \
                       f"{result.run_id}"


def test_a_bad_timeout_is_a_configuration_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MLFLOW_TIMEOUT_S='soon' is not a number"):
        Tracking.from_env({"MLFLOW_TIMEOUT_S": "soon"}, str(tmp_path))


def test_the_ui_hint_never_prints_a_password_in_the_uri(tmp_path: Path) -> None:
    uri = "postgresql://mlflow:hunter2-pass@db:5432/mlflow"
    hint = Tracking.from_env({"MLFLOW_TRACKING_URI": uri}, str(tmp_path)).ui_hint
    assert "hunter2" not in hint
    assert '`mlflow ui --backend-store-uri "$MLFLOW_TRACKING_URI"`' in hint
    # Without credentials the URI itself is the command to run.
    local = Tracking.from_env({}, str(tmp_path))
    assert f"--backend-store-uri {local.tracking_uri}`" in local.ui_hint


def test_a_uri_from_the_process_environment_is_kept_by_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "http://admin:hunter2-pass@mlflow:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking = Tracking.from_env(os.environ, str(tmp_path))
    # The Dagster UI shows the variable's name; the worker still gets the URI.
    assert isinstance(tracking.tracking_uri, dg.EnvVar) and tracking.uri == uri
    assert tracking.active and tracking.label == "MLflow at http://mlflow:5000"
    assert tracking.run_url("7", "abc") == "http://mlflow:5000/#/experiments/7/runs/abc"
