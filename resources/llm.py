"""The analyst behind `llm_signal`: one interface, one class per implementation.

`RulesAnalyst` is the offline default (deterministic, labelled rules); `OpenAIAnalyst`
(resources/llm_openai.py) talks to any OpenAI-compatible model. Both produce the same
TradingSignal schema with the same `analyze_many` / `label` / `identity` surface, and a
failure becomes an AnalysisOutcome with an error, never a HOLD. resources/analysts.py picks
one from the environment (settings.py binds it as the "analyst" resource).
"""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from trading_assets.core.analyst import RULES_MODEL, RULES_PROMPT_VERSION, rules_signal
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest

if TYPE_CHECKING:
    from resources.exchanges import ExchangeStore


class CostBudget:
    """What one Dagster run may still spend on model calls: USD and time, shared by the
    worker threads.

    Checked before each call: once the cost cap or the run's time bound is reached, further
    calls are refused. Calls already in flight finish (their attempts never outlive the
    run's deadline), so a run can overshoot the cost cap by at most `concurrency - 1` calls.
    """

    def __init__(self, limit_usd: float = 0.0, run_timeout_s: float = 0.0) -> None:
        self.limit_usd = limit_usd
        self.run_timeout_s = run_timeout_s
        # time.monotonic() after which no model call may start or continue; None = unbounded.
        self.deadline = time.monotonic() + run_timeout_s if run_timeout_s > 0 else None
        self._spent = 0.0
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def add(self, usd: float) -> None:
        with self._lock:
            self._spent += usd

    def refusal(self) -> str | None:
        """Why the next call may not be made, or None while the budget allows it."""
        with self._lock:
            if self.limit_usd > 0 and self._spent >= self.limit_usd:
                return (f"LLM_MAX_COST_USD reached: ${self._spent:.4f} of ${self.limit_usd:g} "
                        "spent in this run, so this model call was not made. Raise "
                        "LLM_MAX_COST_USD or analyse fewer symbols per run.")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return (f"LLM_RUN_TIMEOUT_S reached: this run's analysis step used its "
                    f"{self.run_timeout_s:g} s, so this model call was not made. Raise "
                    "LLM_RUN_TIMEOUT_S, lower LLM_TIMEOUT_S, or analyse fewer symbols per run.")
        return None


class LLMAnalyst(dg.ConfigurableResource):
    """The analyst interface `llm_signal` depends on; settings.py binds one implementation."""

    @property
    def provider(self) -> str:
        """"rules" or "openai": recorded on every signal and shown in the CLI."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """One line for people: what analyses the signals."""
        raise NotImplementedError

    def identity(self) -> tuple[str, str, str]:
        """(provider, model, prompt_version) of the signals this analyst produces now.

        The llm_signal asset looks up a stored signal with the same identity and bar date, so a
        re-run costs no second model call.
        """
        raise NotImplementedError

    def new_budget(self) -> CostBudget:
        """A budget for one Dagster run; pass it to every analyze_many call of the run."""
        return CostBudget()

    def cache_mode(self, default: str) -> str:
        """The LLM_CACHE mode of this analyst's model calls; `default` when it sets none (a
        live run passes "off", a replay "record": core/exchanges.py)."""
        return default

    def training_cutoff(self) -> date | None:
        """The model's training cutoff (core/training.py); None for no model or unknown."""
        return None

    def analyze_many(self, requests: list[AnalysisRequest], budget: CostBudget | None = None,
                     exchanges: ExchangeStore | None = None) -> list[AnalysisOutcome]:
        """One outcome per request, in the same order; errors are outcomes, not exceptions.

        `exchanges` is the recorded exchange store in the run's LLM_CACHE mode: a model
        analyst answers from it where it can and records new answers in it.
        """
        raise NotImplementedError


class RulesAnalyst(LLMAnalyst):
    """The deterministic rules analyst: offline, free, labelled `provider=rules` everywhere."""

    @property
    def provider(self) -> str:
        return "rules"

    @property
    def label(self) -> str:
        return "rules (deterministic, no language model)"

    def identity(self) -> tuple[str, str, str]:
        return ("rules", RULES_MODEL, RULES_PROMPT_VERSION)

    def analyze_many(self, requests: list[AnalysisRequest], budget: CostBudget | None = None,
                     exchanges: ExchangeStore | None = None) -> list[AnalysisOutcome]:
        # Deterministic and free: nothing to record, the store is not consulted.
        return [self._analyze(request) for request in requests]

    def _analyze(self, request: AnalysisRequest) -> AnalysisOutcome:
        started = time.perf_counter()
        base = {"symbol": request.symbol, "provider": "rules", "model": RULES_MODEL,
                "prompt_version": RULES_PROMPT_VERSION}
        try:
            signal = rules_signal(request)
        except Exception as exc:  # the error is stored on the signal, never hidden as a HOLD
            return AnalysisOutcome(**base, error=f"rules analyst failed: {exc}",
                                   latency_s=time.perf_counter() - started)
        return AnalysisOutcome(**base, signal=signal, latency_s=time.perf_counter() - started)
