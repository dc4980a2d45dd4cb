"""MLflow tracking of every signal: best effort, bounded by a short timeout, never blocks a run.

One MLflow run per signal, in one experiment for the workflow, tagged with the Dagster run id,
symbol and provider: params (model, prompt version, instructor mode, data source), metrics
(confidence, latency, tokens, cost, indicator values) and artifacts (both charts, the request
and the redacted transcript, the signal JSON).

Every MLflow call runs on one daemon worker thread per store, and a caller waits at most
`timeout_s` for it, not counting the worker's one-off local start-up (importing mlflow and,
for the local SQLite store, creating its schema: seconds, capped at STARTUP_LIMIT_S; no outage
can stretch it; `warm_up()` imports mlflow in the background when the run starts). A call
that overruns is abandoned (reported as an error in the asset's metadata) and, while the
worker is still stuck on it, or for a cool-down after the store proved unreachable, later
calls return at once: an outage costs a run one timeout, not one per signal. MLflow's own
HTTP timeout is set to the same bound and its retries to none, because its defaults (7
retries with back-off, 120 s each) are how the system this replaces hung for minutes.

dagster-mlflow's `mlflow_tracking` resource does not fit here: it opens one MLflow run per
Dagster run at resource start-up (with its own blocking back-off, no hard timeout), sets the
tracking URI process-wide and imports mlflow when the definitions load. This resource uses
MlflowClient directly instead, imported on the worker thread (resources/tracking_worker.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.llm_messages import chart_images
from resources.tracking_worker import (
    RunRecord,
    StoreWorker,
    short_error,
    worker_for,
)
from trading_assets.core.config import TrackingSettings, plain, referable, resource_field
from trading_assets.core.secrets import public_url, redact, secret_values
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest

log = logging.getLogger(__name__)

DISABLED_VALUES = frozenset({"off", "none", "disabled", "false", "0"})
DEFAULT_UI_URL = "http://127.0.0.1:5000"
# MLflow's HTTP settings this module owns unless the user set them before it was imported.
_USER_HTTP_ENV = {name for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT",
                                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES") if name in os.environ}


@dataclass(frozen=True)
class TrackingResult:
    """Where a signal's MLflow run is, or why there is none (tracking never raises)."""

    run_id: str | None
    error: str | None = None
    url: str | None = None  # only where an MLflow UI URL is configured (MLFLOW_UI_URL, a server)
    experiment_id: str | None = None
    hint: str | None = None  # how to open the run when there is no URL

    def metadata(self) -> dict[str, Any]:
        """Dagster metadata for the signal: `mlflow_run` is a link to the MLflow run where an
        MLflow UI URL is configured, else text saying how to open it or why it is not tracked."""
        if self.run_id:
            run: Any = dg.MetadataValue.url(self.url) if self.url else (
                f"{self.run_id} (no MLflow UI URL configured: {self.hint or 'set MLFLOW_UI_URL'})")
            return {"mlflow_run_id": self.run_id, "mlflow_run": run}
        if self.error:
            return {"mlflow_run": "not tracked: see mlflow_error", "mlflow_error": self.error}
        return {"mlflow_run": "not tracked: MLflow tracking is off (MLFLOW_TRACKING_URI=off)",
                "mlflow": "tracking off (MLFLOW_TRACKING_URI=off)"}


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def build_run_record(*, signal_id: str, status: str, outcome: AnalysisOutcome,
                     request: AnalysisRequest, data_source: str, dagster_run_id: str,
                     chart_pngs: Mapping[str, bytes] | None = None) -> RunRecord:
    """Tags, params, metrics and artifacts of one signal's run, with secrets removed."""
    signal = outcome.signal
    secrets = secret_values()  # read from the environment once, not once per field
    transcript = redact(outcome.transcript or {}, secrets)
    config = transcript.get("config", {}) if isinstance(transcript, dict) else {}
    tags = {
        "dagster.run_id": dagster_run_id, "symbol": request.symbol,
        "provider": outcome.provider, "signal_id": signal_id, "signal_status": status,
        "action": signal.action.value if signal else "none",
        "simulated": str(request.simulated).lower(),
        # A recorded answer (LLM_CACHE): no model call, cost_usd 0, original_cost_usd kept.
        "cached": str(outcome.cached).lower(),
    }
    params = {
        "provider": outcome.provider, "model": outcome.model,
        "prompt_version": outcome.prompt_version or "n/a",
        "instructor_mode": str(config.get("mode", "n/a")),
        "data_source": data_source, "bar_date": request.bar_date.isoformat(),
        "endpoint": str(config.get("endpoint", "n/a")),
        "temperature": str(config.get("temperature", "n/a")),
        "send_images": str(config.get("send_images", "n/a")),
        "llm_cache": str(config.get("cache", "n/a")),
        "request_key": outcome.request_key or "n/a",
        "training_cutoff": str(outcome.training_cutoff or "unknown"),
    }
    metrics: dict[str, float | None] = {
        "latency_s": outcome.latency_s, "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
        "cost_usd": outcome.cost_usd, "original_cost_usd": outcome.original_cost_usd,
        "error": 0.0 if outcome.ok else 1.0,
    }
    if signal and signal.horizon_days is not None:
        metrics["horizon_days"] = signal.horizon_days
    if signal:
        metrics |= {"confidence_score": signal.confidence_score,
                    "position_size_pct": signal.position_size_pct,
                    "entry_price": signal.entry_price, "stop_loss": signal.stop_loss,
                    "take_profit": signal.take_profit, "r_multiple": signal.r_multiple}
    for timeframe, summary in (("daily", request.daily_summary),
                               ("weekly", request.weekly_summary)):
        metrics |= {f"{timeframe}.{name}": value for name, value in summary.items()}
    pngs = chart_images(request) if chart_pngs is None else chart_pngs
    artifacts = {f"charts/{name}.png": png for name, png in pngs.items() if png}
    signal_doc = {"signal_id": signal_id, "status": status, "symbol": request.symbol,
                  "provider": outcome.provider, "model": outcome.model,
                  "prompt_version": outcome.prompt_version, "error": outcome.error,
                  "signal": signal.model_dump(mode="json") if signal else None}
    request_doc = request.model_dump(mode="json",
                                     exclude={"daily_chart_png", "weekly_chart_png"})
    # The transcript is already redacted above.
    for name, doc in (("signal.json", redact(signal_doc, secrets)),
                      ("request.json", redact(request_doc, secrets)),
                      ("transcript.json", transcript)):
        artifacts[name] = json.dumps(doc, indent=2, default=str).encode()
    return RunRecord(
        run_name=f"{request.symbol} {request.bar_date.isoformat()} {signal_id}",
        tags={k: str(redact(v, secrets))[:5000] for k, v in tags.items()},
        params={k: str(redact(v, secrets))[:500] for k, v in params.items()},
        metrics={k: f for k, v in metrics.items() if (f := _finite(v)) is not None},
        artifacts=artifacts,
        failed=not outcome.ok,
    )



def _set_http_bounds(timeout_s: float) -> None:
    """MLflow reads these per request: no retries, and an HTTP timeout as short as ours."""
    bounds = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    for name, value in bounds.items():
        if name not in _USER_HTTP_ENV:
            os.environ[name] = value



class Tracking(dg.ConfigurableResource):
    """Logs one MLflow run per signal; best effort, every call bounded by `timeout_s`."""

    # An EnvVar reference when set from the environment (a URI may carry a password): read it
    # through `uri`.
    tracking_uri: str = Field(default="", description="MLflow tracking URI; empty = off.")
    experiment: str = resource_field(TrackingSettings, "experiment")
    timeout_s: float = resource_field(TrackingSettings, "timeout_s")
    enabled: bool = True
    artifact_root: str = Field(default="", description="Artifact location of a new "
                               "experiment; empty = the tracking server's default.")
    ui_url: str = Field(default="", description="MLflow UI base URL for run links.")

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_dir: str) -> Tracking:
        """MLFLOW_TRACKING_URI unset or empty: a local SQLite store under `data_dir`; off:
        tracking off; else that store or server (http://host:5000, postgresql://...)."""
        settings = TrackingSettings.from_env(env)
        raw = settings.tracking_uri.get_secret_value()
        enabled = raw.lower() not in DISABLED_VALUES
        root = Path(data_dir).resolve()
        uri = raw if raw and enabled else f"sqlite:///{root / 'mlflow.db'}"
        is_server = uri.startswith(("http://", "https://", "databricks"))
        artifact_root = settings.artifact_root
        if not artifact_root and not is_server:
            # Without it a SQLite store puts artifacts in ./mlruns of whatever the cwd is.
            artifact_root = (root / "mlflow-artifacts").as_uri()
        # By reference, so the Dagster UI shows the variable's name, never a password in it.
        configured = dg.EnvVar("MLFLOW_TRACKING_URI") \
            if raw and enabled and referable(env, "MLFLOW_TRACKING_URI") else uri
        return cls(
            tracking_uri=configured if enabled else "",
            experiment=settings.experiment,
            timeout_s=settings.timeout_s,
            enabled=enabled,
            artifact_root=artifact_root,
            # A server's own address, without any user:password (links end up in metadata).
            ui_url=settings.ui_url or (public_url(uri) if is_server else ""),
        )

    @property
    def uri(self) -> str:
        """The tracking URI ("" = off), resolving an EnvVar reference."""
        return plain(self.tracking_uri).strip()

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.uri)

    @property
    def label(self) -> str:
        """Where signals are tracked, for the demo output."""
        return f"MLflow at {public_url(self.uri)}" if self.active else "MLflow off"

    def _worker(self) -> StoreWorker:
        return worker_for(self.uri)

    def _artifact_location(self, experiment: str) -> str:
        return f"{self.artifact_root.rstrip('/')}/{experiment}" if self.artifact_root else ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.warm_up()

    def warm_up(self) -> None:
        """Start importing mlflow in the background (never waits), so the first signal does
        not wait seconds for it."""
        if self.active:
            _set_http_bounds(self.timeout_s)
            worker = self._worker()
            worker.submit(worker.preload, self.timeout_s, needs_store=False)

    @property
    def ui_hint(self) -> str:
        """How a person opens the runs the links point at (a local store needs `mlflow ui`)."""
        if not self.active:
            return "MLflow tracking is off (MLFLOW_TRACKING_URI=off)."
        if self.ui_url:
            return f"MLflow UI: {public_url(self.ui_url)}"
        # A URI with credentials (user:password@, ?password=) is named, never printed: only
        # MLFLOW_TRACKING_URI can hold one (the default is a local SQLite path).
        uri = self.uri if public_url(self.uri) == self.uri else '"$MLFLOW_TRACKING_URI"'
        return (f"MLflow UI: run `mlflow ui --backend-store-uri {uri}` and open "
                f"{DEFAULT_UI_URL} (or set MLFLOW_UI_URL).")

    def run_url(self, experiment_id: str, run_id: str) -> str:
        base = (self.ui_url or DEFAULT_UI_URL).rstrip("/")
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"

    def log_signal(
        self,
        *,
        signal_id: str,
        status: str,
        outcome: AnalysisOutcome,
        request: AnalysisRequest,
        data_source: str,
        dagster_run_id: str,
        chart_pngs: Mapping[str, bytes] | None = None,
    ) -> TrackingResult:
        """Log one signal as one MLflow run; never raises, never waits beyond `timeout_s`.

        `chart_pngs` ({"daily": png, "weekly": png}) defaults to the request's charts.
        """
        if not self.active:
            return TrackingResult(run_id=None)
        try:
            record = build_run_record(
                signal_id=signal_id, status=status, outcome=outcome, request=request,
                data_source=data_source, dagster_run_id=dagster_run_id, chart_pngs=chart_pngs)
        except Exception as exc:
            return TrackingResult(None, f"MLflow run not built: {short_error(exc)}")
        return self.log_run(record)

    def log_run(self, record: RunRecord, experiment: str | None = None) -> TrackingResult:
        """Log any run (a scorecard, a backtest) into `experiment` (default: the signals
        experiment) with the same bounds as log_signal: never raises, never waits beyond
        `timeout_s`, skips at once while the store is known to be down."""
        if not self.active:
            return TrackingResult(run_id=None)
        experiment = experiment or self.experiment
        _set_http_bounds(self.timeout_s)
        worker = self._worker()
        skip = worker.skip_reason()
        if skip:
            return TrackingResult(None, skip)
        location = self._artifact_location(experiment)
        future = worker.submit(lambda: worker.log_run(record, experiment, location),
                               self.timeout_s)
        where = worker.where
        try:
            run_id, experiment_id = worker.wait(future, self.timeout_s)
        except FutureTimeout:
            future.cancel()  # dropped if it has not started; otherwise left to finish
            error = (f"{where} did not answer within {self.timeout_s:g} s; run not tracked "
                     "(the Dagster run goes on). Check the server or raise MLFLOW_TIMEOUT_S.")
            log.warning(error)
            return TrackingResult(None, error)
        except Exception as exc:
            error = (f"{where} failed ({short_error(exc)}); run not tracked (the Dagster run goes "
                     "on). Start the MLflow server or fix MLFLOW_TRACKING_URI.")
            log.warning(error)
            return TrackingResult(None, error)
        if not self.ui_url:  # a local store: no UI serves it until someone starts `mlflow ui`
            return TrackingResult(run_id, None, None, experiment_id, self.ui_hint)
        return TrackingResult(run_id, None, self.run_url(experiment_id, run_id), experiment_id)
