"""The analyst behind `llm_signal`: the offline rules analyst, or any OpenAI-compatible model.

Both produce the same TradingSignal schema; a failure becomes an AnalysisOutcome with an error,
never a HOLD.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import dagster as dg

from trading_assets.core.analyst import RULES_MODEL, RULES_PROMPT_VERSION, rules_signal
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest

PROVIDERS = ("rules", "openai")


class LLMAnalyst(dg.ConfigurableResource):
    """Turns AnalysisRequests into signals; `provider` is rules (offline default) or openai."""

    provider: str = "rules"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LLMAnalyst:
        return cls(provider=env.get("LLM_PROVIDER", "") or "rules")

    @property
    def label(self) -> str:
        return "rules (deterministic, no language model)" if self.provider == "rules" \
            else f"{self.provider}"

    def identity(self) -> tuple[str, str, str]:
        """(provider, model, prompt_version) of the signals this analyst would produce now.

        The llm_signal asset uses it to find a signal already stored for the same bar date and
        analyst, so a re-run costs no second model call.
        """
        return ("rules", RULES_MODEL, RULES_PROMPT_VERSION)

    def analyze_many(self, requests: list[AnalysisRequest]) -> list[AnalysisOutcome]:
        """One outcome per request, in the same order; errors are outcomes, not exceptions."""
        if self.provider not in PROVIDERS:
            raise ValueError(f"Unknown LLM_PROVIDER {self.provider!r}; choose rules or openai.")
        return [self._rules(request) for request in requests]

    def _rules(self, request: AnalysisRequest) -> AnalysisOutcome:
        started = time.perf_counter()
        base = {"symbol": request.symbol, "provider": "rules", "model": RULES_MODEL,
                "prompt_version": RULES_PROMPT_VERSION}
        try:
            signal = rules_signal(request)
        except Exception as exc:  # the error is stored on the signal, never hidden as a HOLD
            return AnalysisOutcome(**base, error=f"rules analyst failed: {exc}",
                                   latency_s=time.perf_counter() - started)
        return AnalysisOutcome(**base, signal=signal, latency_s=time.perf_counter() - started)
