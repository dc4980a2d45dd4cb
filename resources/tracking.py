"""MLflow tracking of every signal: best effort, bounded by a short timeout, never blocks a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest


@dataclass(frozen=True)
class TrackingResult:
    run_id: str | None
    error: str | None = None


class Tracking(dg.ConfigurableResource):
    """Logs one MLflow run per signal (see the LLM issue for the full contents)."""

    tracking_uri: str = ""
    experiment: str = "trading-signals"
    timeout_s: float = 10.0
    enabled: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_dir: str) -> Tracking:
        return cls(tracking_uri=env.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{data_dir}/mlflow.db")

    def log_signal(
        self,
        *,
        signal_id: str,
        status: str,
        outcome: AnalysisOutcome,
        request: AnalysisRequest,
        data_source: str,
        dagster_run_id: str,
    ) -> TrackingResult:
        return TrackingResult(run_id=None, error="MLflow tracking is not wired in yet")
