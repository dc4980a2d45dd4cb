"""The OpenAI-compatible analyst: any chat-completions endpoint through openai + instructor.

OpenAI, Azure OpenAI's v1 endpoint, Ollama, vLLM, llama.cpp server, LM Studio and gateways all
speak this protocol; instructor turns the answer into a validated signal, re-asking with the
validation errors when the model breaks the schema. Transport failures (timeouts, 429 with
Retry-After, 5xx, refused connections) are retried by the openai client, validation failures by
instructor; both bounds are configuration. Each HTTP attempt has a total deadline
(LLM_TIMEOUT_S, resources/llm_http.py) and a run's analysis step an overall one
(LLM_RUN_TIMEOUT_S). The API key never enters the resource config: it is read from the process
environment at call time and scrubbed from every error text, transcript and log record
(trading_assets/core/secrets.py). A base URL with user:password@ is refused: the client would
send those as HTTP Basic auth in place of the key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, get_args

import dagster as dg
from pydantic import Field, ValidationError

from resources.llm import CostBudget, LLMAnalyst
from resources.llm_http import deadline_http_client, run_deadline
from resources.llm_messages import (
    BOOKKEEPING,
    CallRecord,
    SignalAnswer,
    build_messages,
    exchange_request,
)
from resources.prompts import Prompt, PromptError, load_prompt
from trading_assets.core.config import (
    ConfigError,
    LLMMode,
    LLMSettings,
    plain,
    referable,
    resource_field,
)
from trading_assets.core.exchanges import ExchangeRequest, may_call_model
from trading_assets.core.pricing import (
    Price,
    PriceTableError,
    estimate_cost,
    parse_prices,
    price_for,
)
from trading_assets.core.secrets import (
    api_key,
    install_log_redaction,
    public_url,
    redact,
    secret_values,
    url_credentials,
)
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest, TradingSignal
from trading_assets.core.training import cutoff_for

if TYPE_CHECKING:
    from resources.exchanges import ExchangeStore, RecordedAnswer

MODES = get_args(LLMMode)
OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"
# openai refuses an empty key; local servers (Ollama, llama.cpp, LM Studio) ignore whatever
# is sent, so a placeholder lets them work without a key.
NO_KEY_PLACEHOLDER = "no-key-set"
_LIBRARY_LOGGERS = ("openai", "instructor", "httpx", "httpx2", "httpcore", "httpcore2")


def credentials_refusal(url: str, name: str = "LLM_BASE_URL") -> str | None:
    """Why a base URL with user:password@ is not used (without repeating it), or None."""
    if url_credentials(url) is None:
        return None
    return (f"{name} carries a user:password ({public_url(url)} with credentials in front of "
            "the host); the OpenAI client would send them as HTTP Basic auth in place of the "
            "API key, so nothing was sent. Remove them from the URL and put the key in "
            "LLM_API_KEY.")


class OpenAIAnalyst(LLMAnalyst):
    """Signals from an OpenAI-compatible model. The API key is read from the environment at
    call time, never stored here, so it cannot show in the Dagster UI."""

    # An EnvVar reference when set from the environment: read it through `url`.
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty = OpenAI.")
    model: str = resource_field(LLMSettings, "model")
    mode: str = resource_field(LLMSettings, "mode")
    timeout_s: float = resource_field(LLMSettings, "timeout_s")
    max_retries: int = resource_field(LLMSettings, "max_retries")
    http_retries: int = resource_field(LLMSettings, "http_retries")
    concurrency: int = resource_field(LLMSettings, "concurrency")
    temperature: float | None = resource_field(LLMSettings, "temperature")
    send_images: bool = resource_field(LLMSettings, "send_images")
    max_cost_usd: float = resource_field(LLMSettings, "max_cost_usd")
    run_timeout_s: float = resource_field(LLMSettings, "run_timeout_s")
    prices: str = resource_field(LLMSettings, "prices")
    prompt: str = resource_field(LLMSettings, "prompt")
    cache: str = resource_field(LLMSettings, "cache")
    training_cutoff_date: str = Field(default="", description="The model's training cutoff, "
                                      "YYYY-MM-DD; empty = the published one of known models.")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpenAIAnalyst:
        """Configuration from the LLM_* variables (core/config.py LLMSettings); a bad value is
        a ConfigError naming it."""
        llm = LLMSettings.from_env(env)
        url_var, base_url = llm.base_url_var, llm.base_url
        refusal = credentials_refusal(base_url, url_var)
        if refusal:
            raise ConfigError(refusal)
        try:
            parse_prices(llm.prices)  # refuse a malformed table at start-up, not mid-run
            load_prompt(llm.prompt)
        except (PriceTableError, PromptError) as exc:
            raise ConfigError(str(exc)) from exc
        fields = llm.model_dump(include={
            "model", "mode", "timeout_s", "max_retries", "http_retries", "concurrency",
            "temperature", "send_images", "max_cost_usd", "run_timeout_s", "prices", "prompt",
            "cache"})
        return cls(
            # By reference, so the Dagster UI never shows a query token in the URL.
            base_url=dg.EnvVar(url_var) if base_url and referable(env, url_var) else base_url,
            training_cutoff_date=llm.training_cutoff.isoformat() if llm.training_cutoff else "",
            **fields,
        )

    @property
    def url(self) -> str:
        """The base URL the client uses ("" = OpenAI), resolving an EnvVar reference."""
        return plain(self.base_url).strip()

    @property
    def endpoint(self) -> str:
        """The endpoint's URL as shown to people (no credentials, no query)."""
        return public_url(self.url) or OPENAI_DEFAULT_ENDPOINT

    @property
    def provider(self) -> str:
        return "openai"

    @property
    def label(self) -> str:
        images = "on" if self.send_images else "off"
        return (f"openai-compatible model {self.model} at {self.endpoint} "
                f"(instructor mode {self.mode}, chart images {images})")

    def identity(self) -> tuple[str, str, str]:
        return ("openai", self.model, load_prompt(self.prompt).version)

    def new_budget(self) -> CostBudget:
        """The run's cost cap and time bound; pass it to every analyze_many call of the run."""
        return CostBudget(self.max_cost_usd, self.run_timeout_s)

    def cache_mode(self, default: str) -> str:
        return self.cache or default

    def training_cutoff(self) -> date | None:
        configured = date.fromisoformat(self.training_cutoff_date) \
            if self.training_cutoff_date else None
        return cutoff_for(self.model, configured)

    def analyze_many(self, requests: list[AnalysisRequest], budget: CostBudget | None = None,
                     exchanges: ExchangeStore | None = None) -> list[AnalysisOutcome]:
        """Model calls run concurrently (at most `concurrency` at once); `budget` carries the
        cost cap and time bound across calls of one run (a fresh one per call when omitted);
        `exchanges` answers what it has recorded and keeps new answers (LLM_CACHE)."""
        if not requests:
            return []
        return self._model_many(requests, budget or self.new_budget(), exchanges)

    def _config(self, cache: str = "off") -> dict[str, Any]:
        """What the transcript and MLflow record about the call set-up (no secrets)."""
        return {"provider": self.provider, "endpoint": self.endpoint, "model": self.model,
                "mode": self.mode, "temperature": self.temperature,
                "send_images": self.send_images, "timeout_s": self.timeout_s,
                "max_retries": self.max_retries, "http_retries": self.http_retries,
                "cache": cache}

    def _params(self) -> dict[str, Any]:
        """The request's parameters that shape the answer (part of its digest)."""
        return {"temperature": self.temperature, "instructor_mode": self.mode}

    def _setup_error(self, key: str) -> str | None:
        """Why no call can be made with this configuration, or None."""
        if self.mode not in MODES:
            return f"LLM_MODE={self.mode!r} is unknown; use one of {', '.join(MODES)}."
        if not key and not self.url:
            return ("no API key for OpenAI: set LLM_API_KEY (or OPENAI_API_KEY), or point "
                    "LLM_BASE_URL at a local OpenAI-compatible server, or set "
                    "LLM_PROVIDER=rules.")
        return credentials_refusal(self.url)

    def _model_many(self, requests: list[AnalysisRequest], budget: CostBudget,
                    exchanges: ExchangeStore | None) -> list[AnalysisOutcome]:
        import instructor
        import openai

        prompt = load_prompt(self.prompt)
        key = api_key()
        call = _CallSetup(prompt=prompt, budget=budget, secrets=secret_values(),
                          price=price_for(self.model, parse_prices(self.prices)),
                          exchanges=exchanges, error=self._setup_error(key))
        client = None
        if call.error is None:
            modes = {"tools": instructor.Mode.TOOLS, "json": instructor.Mode.JSON,
                     "json_schema": instructor.Mode.JSON_SCHEMA,
                     "md_json": instructor.Mode.MD_JSON}
            client = openai.OpenAI(api_key=key or NO_KEY_PLACEHOLDER, base_url=self.url or None,
                                   timeout=self.timeout_s, max_retries=self.http_retries,
                                   http_client=deadline_http_client(self.timeout_s))
            call.structured = instructor.from_openai(client, mode=modes[self.mode])
            install_log_redaction(_LIBRARY_LOGGERS)
        try:
            workers = max(1, min(self.concurrency, len(requests)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-call") as pool:
                return list(pool.map(lambda r: self._analyze(r, call), requests))
        finally:
            if client is not None:
                client.close()

    def _analyze(self, request: AnalysisRequest, call: _CallSetup) -> AnalysisOutcome:
        """One symbol: its recorded answer when the store has one (LLM_CACHE), else a model
        call (recorded in record mode); never raises."""
        try:
            messages = build_messages(request, call.prompt, self.send_images)
            exchange = exchange_request(request, call.prompt, self.model, messages,
                                        self._params())
        except Exception as exc:  # the request's own error, never a HOLD
            return self._failed(request, call.prompt, f"{self.model}: the request could not "
                                f"be built: {type(exc).__name__}: {exc}")
        store = call.exchanges
        if store is None:
            return self._call(request, call, messages, exchange, "off")
        from resources.exchanges import ExchangeStoreError

        try:
            recorded = store.lookup(exchange)
        except ExchangeStoreError as exc:
            return self._failed(request, call.prompt, str(exc), exchange.key)
        if recorded is not None:
            store.tally.add(from_store=1, saved_usd=recorded.cost_usd)
            return self._from_store(request, call, exchange, recorded, store.mode)
        if not may_call_model(store.mode):
            store.tally.add(refused=1)
            return self._failed(request, call.prompt, store.miss_error(exchange), exchange.key)
        outcome = self._call(request, call, messages, exchange, store.mode)
        if outcome.transcript and outcome.transcript.get("attempts"):  # the model was called
            store.tally.add(from_model=1, spent_usd=outcome.cost_usd)
        return self._keep(outcome, request, call, exchange, store)

    def _keep(self, outcome: AnalysisOutcome, request: AnalysisRequest, call: _CallSetup,
              exchange: ExchangeRequest, store: ExchangeStore) -> AnalysisOutcome:
        """Record a new valid answer; when a concurrent run recorded the same request first,
        the signal is that run's answer (both runs then hold the same one)."""
        from resources.exchanges import ExchangeStoreError

        if outcome.signal is None:  # failures are never recorded: a later run tries again
            return outcome
        usage = {"prompt_tokens": outcome.prompt_tokens,
                 "completion_tokens": outcome.completion_tokens, "cost_usd": outcome.cost_usd}
        try:
            kept = store.record(exchange, _answer_fields(outcome.signal), usage,
                                outcome.transcript)
        except ExchangeStoreError as exc:
            store.tally.add(unrecorded=1, error=str(exc))
            return outcome.model_copy(update={"transcript": {**(outcome.transcript or {}),
                                                             "cache": {"recorded": str(exc)}}})
        try:
            signal = self._signal(kept.answer, request, call.prompt) if kept.reused else None
        except ValidationError:  # the other run's answer fails today's checks: keep ours
            signal = None
        if signal is None:
            return outcome
        note = {"recorded": "a concurrent run recorded this request first; its answer is used",
                "recorded_at": kept.recorded_at, "original_cost_usd": kept.cost_usd}
        return outcome.model_copy(update={
            "signal": signal, "cached": True, "original_cost_usd": kept.cost_usd,
            "transcript": {**(outcome.transcript or {}), "cache": note}})

    def _signal(self, fields: Mapping[str, Any], request: AnalysisRequest, prompt: Prompt
                ) -> TradingSignal:
        """A model's answer fields as this analyst's signal for the request."""
        return TradingSignal(**fields, provider=self.provider, model=self.model,
                             prompt_version=prompt.version, bar_date=request.bar_date)

    def _from_store(self, request: AnalysisRequest, call: _CallSetup,
                    exchange: ExchangeRequest, recorded: RecordedAnswer, mode: str
                    ) -> AnalysisOutcome:
        """The signal from a recorded answer: no call, cost 0, the original cost beside it."""
        started = time.perf_counter()
        signal: TradingSignal | None = None
        error = None
        try:
            signal = self._signal(recorded.answer, request, call.prompt)
        except ValidationError as exc:  # checks tightened since it was recorded
            error = (f"the recorded answer {exchange.key[:12]} no longer passes the signal "
                     f"checks ({exc.errors()[0]['msg']}); no model call was made. Set "
                     "LLM_CACHE=off to ask the model again.")
        cache = {"mode": mode, "hit": True, "request_key": exchange.key,
                 "recorded_at": recorded.recorded_at, "original_cost_usd": recorded.cost_usd,
                 "original_prompt_tokens": recorded.prompt_tokens,
                 "original_completion_tokens": recorded.completion_tokens}
        transcript = redact({
            "config": self._config(mode),
            "prompt": {"name": call.prompt.name, "version": call.prompt.version,
                       "sha256": call.prompt.sha256},
            "cache": cache, "recorded_transcript": recorded.transcript,
            "outcome": {"signal": signal.model_dump(mode="json") if signal else None,
                        "error": error, "cost_usd": 0.0},
        }, call.secrets)
        return AnalysisOutcome(
            symbol=request.symbol, signal=signal, error=error, provider=self.provider,
            model=self.model, prompt_version=call.prompt.version, cost_usd=0.0,
            latency_s=time.perf_counter() - started, transcript=transcript, cached=True,
            original_cost_usd=recorded.cost_usd, request_key=exchange.key,
            training_cutoff=self.training_cutoff())

    def _failed(self, request: AnalysisRequest, prompt: Prompt, error: str,
                request_key: str = "") -> AnalysisOutcome:
        return AnalysisOutcome(symbol=request.symbol, provider=self.provider, model=self.model,
                               prompt_version=prompt.version, error=error,
                               request_key=request_key, training_cutoff=self.training_cutoff())

    def _call(self, request: AnalysisRequest, call: _CallSetup,
              messages: list[dict[str, Any]], exchange: ExchangeRequest, cache: str
              ) -> AnalysisOutcome:
        """One symbol's model call; never raises (an error becomes the outcome's error)."""
        if call.error is not None:
            return self._failed(request, call.prompt, call.error, exchange.key)
        started = time.perf_counter()
        record = CallRecord(self._config(cache), call.prompt)
        signal: TradingSignal | None = None
        error = call.budget.refusal()
        if error is None:
            options: dict[str, Any] = {"model": self.model}
            if self.temperature is not None:
                options["temperature"] = self.temperature
            try:
                with run_deadline(call.budget.deadline):
                    answer = call.structured.create(
                        response_model=SignalAnswer,
                        messages=messages,
                        max_retries=self.max_retries,
                        context={"symbol": request.symbol},
                        hooks=record.hooks(),
                        **options,
                    )
                signal = self._signal(answer.model_dump(exclude=BOOKKEEPING), request,
                                      call.prompt)
            except Exception as exc:  # stored as the signal's error, never turned into a HOLD
                error = redact(self._explain(exc, record) + _run_bound_note(call.budget),
                               call.secrets)
        latency = time.perf_counter() - started
        cost = estimate_cost(call.price, record.prompt_tokens, record.completion_tokens)
        call.budget.add(cost)
        usage = {"prompt_tokens": record.prompt_tokens,
                 "completion_tokens": record.completion_tokens, "cost_usd": cost,
                 "price_known": call.price.known, "attempts": len(record.attempts),
                 "latency_s": round(latency, 3)}
        result = {"signal": signal.model_dump(mode="json") if signal else None,
                  "error": error, **usage}
        return AnalysisOutcome(
            symbol=request.symbol, signal=signal, error=error, provider=self.provider,
            model=self.model, prompt_version=call.prompt.version,
            prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
            cost_usd=cost, latency_s=latency,
            transcript=record.transcript(result, call.secrets), request_key=exchange.key,
            training_cutoff=self.training_cutoff(),
        )

    def _explain(self, exc: Exception, record: CallRecord) -> str:
        """An error text a trader can act on: what failed, where, and what to change."""
        import openai
        from instructor.core.exceptions import InstructorRetryException

        root: BaseException = exc
        # instructor wraps whatever ended its loop; the cause says what really happened.
        while isinstance(root, InstructorRetryException) and root.__cause__ is not None:
            root = root.__cause__
        where = f"{self.model} at {self.endpoint}"
        if isinstance(root, openai.APIError):
            return self._explain_transport(root, where)
        return self._explain_answer(root, record, where)

    def _explain_transport(self, root: Any, where: str) -> str:
        """The text for an error of the HTTP exchange (timeouts, status codes, connections)."""
        import openai

        retried = f"after {self.http_retries} retries" if self.http_retries else "(no retries)"
        if isinstance(root, openai.APITimeoutError):
            return (f"{where} gave no answer within {self.timeout_s:g} s {retried}. Raise "
                    "LLM_TIMEOUT_S, lower LLM_CONCURRENCY, or check the server's load.")
        if isinstance(root, openai.APIConnectionError):
            cause = f" ({root.__cause__})" if root.__cause__ else ""
            return (f"{where} is not reachable{cause} {retried}. Start the server or fix "
                    "LLM_BASE_URL.")
        if isinstance(root, openai.RateLimitError):
            return (f"{where} kept answering HTTP 429 (rate limited) {retried}: "
                    f"{_api_message(root)}. Lower LLM_CONCURRENCY or raise the account's limits.")
        if isinstance(root, openai.AuthenticationError | openai.PermissionDeniedError):
            return (f"{where} refused the credentials (HTTP {root.status_code}): "
                    f"{_api_message(root)}. Check LLM_API_KEY / OPENAI_API_KEY.")
        if isinstance(root, openai.NotFoundError):
            return (f"{where} answered HTTP 404: {_api_message(root)}. Check LLM_MODEL and "
                    "LLM_BASE_URL (it usually ends in /v1).")
        if isinstance(root, openai.BadRequestError):
            hint = "set LLM_SEND_IMAGES=false for a text-only model, or " \
                if self.send_images else ""
            return (f"{where} rejected the request (HTTP 400): {_api_message(root)}. The "
                    f"server may not support this request: {hint}try LLM_MODE=json or md_json.")
        if isinstance(root, openai.APIStatusError):
            return (f"{where} failed with HTTP {root.status_code} {retried}: "
                    f"{_api_message(root)}.")
        return f"{where} failed: {type(root).__name__}: {root}"

    @staticmethod
    def _explain_answer(root: BaseException, record: CallRecord, where: str) -> str:
        """The text for an answer that arrived but holds no valid signal."""
        from instructor.core.exceptions import IncompleteOutputException

        attempts = len(record.attempts)
        if record.refusal:
            return f"{where} refused to answer: {record.refusal}"
        if record.empty_choices is not None:
            sent = ", ".join(f"{k} {v!r}" for k, v in record.empty_choices.items() if v)
            return (f"{where} answered HTTP 200 with an empty \"choices\" list"
                    f"{f' ({sent})' if sent else ''}: no message and no signal, in {attempts} "
                    "attempt(s). The server may have filtered or dropped the generation; "
                    "check its logs, LLM_MODEL and LLM_MODE.")
        if isinstance(root, IncompleteOutputException):
            return (f"{where} stopped mid-answer (finish_reason=length): the answer was "
                    "truncated before the signal was complete.")
        if isinstance(root, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'signal'}: {e['msg']}"
                for e in root.errors()[:4])
            return f"{where} gave no valid signal in {attempts} attempt(s): {problems}"
        if isinstance(root, ValueError | json.JSONDecodeError):
            return f"{where} gave no usable answer in {attempts} attempt(s): {root}"
        return f"{where} failed: {type(root).__name__}: {root}"


@dataclass
class _CallSetup:
    """What every call of one analyze_many shares: the prompt, the run's budget, the price,
    the secrets to scrub, the exchange store, and the client (None when `error` says why no
    call can be made)."""

    prompt: Prompt
    budget: CostBudget
    secrets: list[str]
    price: Price
    exchanges: ExchangeStore | None
    error: str | None
    structured: Any = None


def _answer_fields(signal: TradingSignal) -> dict[str, Any]:
    """What the model said, without the fields the platform fills in (what is recorded)."""
    return signal.model_dump(mode="json", exclude=BOOKKEEPING)


def _run_bound_note(budget: CostBudget) -> str:
    """A note for a call that failed once the run's time bound had passed."""
    if budget.deadline is None or time.monotonic() < budget.deadline:
        return ""
    return (f" The run's analysis step reached LLM_RUN_TIMEOUT_S={budget.run_timeout_s:g} s "
            "during this call, so it was not retried further.")


def _api_message(error: Any) -> str:
    """The server's own error message, shortened."""
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or getattr(error, "message", "") or error)[:300]
