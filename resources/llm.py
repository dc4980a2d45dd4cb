"""The analyst behind `llm_signal`: the offline rules analyst, or any OpenAI-compatible model.

Both produce the same TradingSignal schema; a failure becomes an AnalysisOutcome with an error,
never a HOLD.

The model provider speaks the OpenAI chat-completions protocol (OpenAI, Azure OpenAI's v1
endpoint, Ollama, vLLM, llama.cpp server, LM Studio, gateways) through the openai client, and
instructor turns the answer into a validated signal, re-asking with the validation errors when
the model breaks the schema. Transport failures (timeouts, 429 with Retry-After, 5xx, refused
connections) are retried by the openai client, validation failures by instructor; both bounds
are configuration. The API key never enters the resource config: it is read from the process
environment (LLM_API_KEY, then OPENAI_API_KEY) at call time and scrubbed from every error text,
transcript and log record this module's libraries write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field, ValidationError, ValidationInfo, model_validator
from pydantic.json_schema import SkipJsonSchema

from trading_assets.core.analyst import RULES_MODEL, RULES_PROMPT_VERSION, rules_signal
from trading_assets.core.env import ConfigError, env_bool, env_number, plain, referable
from trading_assets.core.pricing import (
    Price,
    PriceTableError,
    estimate_cost,
    parse_prices,
    price_for,
)
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest, TradingSignal
from trading_assets.prompts import Prompt, PromptError, load_prompt

PROVIDERS = ("rules", "openai")
MODES = ("tools", "json", "json_schema", "md_json")
API_KEY_VARS = ("LLM_API_KEY", "OPENAI_API_KEY")
# Everything scrubbed from transcripts, errors, logs and MLflow: the LLM keys and the other
# credentials a deployment may hold in its environment.
SECRET_VARS = (*API_KEY_VARS, "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_PASSWORD")
OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"
# openai refuses an empty key; local servers (Ollama, llama.cpp, LM Studio) ignore whatever
# is sent, so a placeholder lets them work without a key.
NO_KEY_PLACEHOLDER = "no-key-set"
REDACTED = "[REDACTED]"
# Shorter "secrets" would garble ordinary text when scrubbed and are not real keys anyway.
_MIN_SECRET_LENGTH = 8
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
_LIBRARY_LOGGERS = ("openai", "instructor", "httpx", "httpx2", "httpcore")
# Fields the platform fills in (r_multiple is computed from the levels, not taken on trust).
_BOOKKEEPING = {"provider", "model", "prompt_version", "timeframe", "bar_date", "generated_at",
                "r_multiple"}


# --- secrets --------------------------------------------------------------------------------


def api_key(env: Mapping[str, str] | None = None) -> str:
    """The configured API key (LLM_API_KEY, then OPENAI_API_KEY), or "" when none is set."""
    env = os.environ if env is None else env
    return next((env[name] for name in API_KEY_VARS if env.get(name)), "")


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret that must never be written anywhere (the values of SECRET_VARS)."""
    env = os.environ if env is None else env
    values = {env.get(name, "") for name in SECRET_VARS}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of `value` (str, dict, list, nested) with secrets and auth headers replaced."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in _SECRET_HEADERS else redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, secrets) for item in value]
    return value


def public_url(url: str) -> str:
    """A URL safe to show and log: user:password, query and fragment removed."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)
    return url.split("?", 1)[0].split("#", 1)[0]


class _RedactingFilter(logging.Filter):
    """Scrubs API keys from records of the HTTP/LLM libraries (an error body may echo a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if secrets:
            message = record.getMessage()
            if any(secret in message for secret in secrets):
                record.msg, record.args = redact(message, secrets), ()
            if record.exc_info:
                # The formatted traceback would carry the exception text again.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                         secrets)
                record.exc_info = None
        return True


_FILTER = _RedactingFilter()


def _install_log_redaction() -> None:
    """Attach the filter to every existing openai/instructor/httpx logger (filters on a parent
    logger do not see records of its children, so each one gets it)."""
    manager = logging.Logger.manager
    for name in [*_LIBRARY_LOGGERS, *list(manager.loggerDict)]:
        if name.split(".")[0] in _LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


# --- the answer schema and the request ------------------------------------------------------


# The docstring below is the tool description the model reads. The bookkeeping fields are
# filled in by the platform, so they are hidden from the schema the model sees; the
# TradingSignal validators still apply and drive instructor's re-asks.
class SignalAnswer(TradingSignal):
    """Your trading signal for the one symbol you were asked about."""

    r_multiple: SkipJsonSchema[float | None] = None
    provider: SkipJsonSchema[str] = "openai"
    model: SkipJsonSchema[str] = ""
    prompt_version: SkipJsonSchema[str] = ""
    timeframe: SkipJsonSchema[str] = "daily+weekly"
    bar_date: SkipJsonSchema[date | None] = None
    generated_at: SkipJsonSchema[datetime] = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _requested_symbol(self, info: ValidationInfo) -> SignalAnswer:
        expected = (info.context or {}).get("symbol")
        if expected and self.symbol != expected:
            raise ValueError(f"symbol must be {expected}, the symbol you were asked about, "
                             f"not {self.symbol}")
        return self


def _number(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _summary_lines(summary: Mapping[str, float | None]) -> str:
    if not summary:
        return "(none)"
    return "\n".join(f"- {name}: {_number(value) if value is not None else 'n/a (warm-up)'}"
                     for name, value in summary.items())


def _bar_lines(bars: list[dict[str, object]]) -> str:
    columns = ("date", "open", "high", "low", "close", "volume")
    rows = []
    for bar in bars:
        day = bar.get("date")
        day = day.date() if isinstance(day, datetime) else day
        rows.append(",".join([str(day), *(_number(bar.get(c)) for c in columns[1:])]))
    return "\n".join(rows) or "(none)"


def chart_images(request: AnalysisRequest) -> dict[str, bytes]:
    """The request's chart PNGs by timeframe, daily first."""
    pngs = {"daily": request.daily_chart_png, "weekly": request.weekly_chart_png}
    return {name: png for name, png in pngs.items() if png}


def build_messages(request: AnalysisRequest, prompt: Prompt, send_images: bool
                   ) -> list[dict[str, Any]]:
    """The chat messages for one request: the prompt's system part, then the user part with
    the data and, for vision models, the daily and weekly charts as PNG data URLs."""
    images = chart_images(request) if send_images else {}
    if images:
        chart_note = f"Attached charts: {' then '.join(images)} candlesticks with indicators.\n"
    elif send_images:
        chart_note = "No chart images are available for this bar date.\n"
    else:
        chart_note = ""
    position = ", ".join(f"{k}={_number(v)}" for k, v in request.position.items()) \
        or "none (flat)"
    text = prompt.render_user({
        "symbol": request.symbol,
        "bar_date": request.bar_date.isoformat(),
        "data_source": request.data_source,
        "simulated_note": " (SIMULATED bars, not market data)" if request.simulated else "",
        "position": position,
        "daily_summary": _summary_lines(request.daily_summary),
        "weekly_summary": _summary_lines(request.weekly_summary),
        "bar_count": str(len(request.last_bars)),
        "bars": _bar_lines(request.last_bars),
        "chart_note": chart_note,
    })
    content: str | list[dict[str, Any]] = text
    if images:
        content = [{"type": "text", "text": text}] + [
            {"type": "image_url",
             "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
            for png in images.values()
        ]
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": content}]


# --- cost cap -------------------------------------------------------------------------------


class CostBudget:
    """USD spent on model calls in one Dagster run, shared by the worker threads.

    Checked before each call: once the cap is reached further calls are refused. Calls already
    in flight finish, so a run can overshoot by at most `concurrency - 1` calls.
    """

    def __init__(self, limit_usd: float = 0.0) -> None:
        self.limit_usd = limit_usd
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
        return None


# --- transcript -----------------------------------------------------------------------------


def _describe_image(url: str) -> str:
    """A short stand-in for a data URL: the charts are stored as artifacts of their own."""
    if not url.startswith("data:"):
        return url
    header, _, data = url.partition(",")
    raw = base64.b64decode(data) if data else b""
    media_type = header.removeprefix("data:").split(";")[0]
    return f"<{media_type}, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}>"


def _transcript_message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                url = part.get("image_url", {}).get("url", "")
                parts.append({"type": "image_url", "image_url": {"url": _describe_image(url)}})
            else:
                parts.append(dict(part) if isinstance(part, Mapping) else part)
        content = parts
    out = {k: v for k, v in message.items() if k != "content"}
    out["content"] = content
    return json.loads(json.dumps(out, default=str))


class _CallRecord:
    """Collects one signal's request/response transcript and token usage via instructor hooks."""

    def __init__(self, config: dict[str, Any], prompt: Prompt) -> None:
        self.config = config
        self.prompt = prompt
        self.attempts: list[dict[str, Any]] = []
        self.request: dict[str, Any] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.refusal: str | None = None
        self._sent = 0  # messages already in the transcript

    def hooks(self) -> Any:
        from instructor.core.hooks import Hooks

        hooks = Hooks()
        hooks.on("completion:kwargs", self._on_kwargs)
        hooks.on("completion:response", self._on_response)
        hooks.on("completion:error", self._on_error)
        hooks.on("parse:error", self._on_error)
        return hooks

    def _on_kwargs(self, *args: Any, **kwargs: Any) -> None:
        messages = list(kwargs.get("messages") or [])
        if not self.request:
            # What instructor sent besides the messages: the tool or JSON schema and options.
            self.request = json.loads(json.dumps(
                {k: v for k, v in kwargs.items() if k != "messages"}, default=str))
        # Re-asks append to the conversation; record only what is new in each attempt.
        new = messages[self._sent:]
        self._sent = len(messages)
        self.attempts.append({"messages": [_transcript_message(m) for m in new]})

    def _on_response(self, response: Any) -> None:
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        answer: dict[str, Any] = {}
        choices = getattr(response, "choices", None) or []
        if choices:
            message = choices[0].message
            answer = {"finish_reason": choices[0].finish_reason, "content": message.content}
            if getattr(message, "refusal", None):
                answer["refusal"] = self.refusal = message.refusal
            if message.tool_calls:
                answer["tool_calls"] = [
                    {"name": call.function.name, "arguments": call.function.arguments}
                    for call in message.tool_calls
                ]
        if usage is not None:
            answer["usage"] = {"prompt_tokens": usage.prompt_tokens,
                               "completion_tokens": usage.completion_tokens}
        self._attempt()["response"] = answer

    def _on_error(self, error: Exception, **_: Any) -> None:
        self._attempt().setdefault("errors", []).append(f"{type(error).__name__}: {error}")

    def _attempt(self) -> dict[str, Any]:
        if not self.attempts:
            self.attempts.append({"messages": []})
        return self.attempts[-1]

    def transcript(self, outcome: dict[str, Any], secrets: list[str]) -> dict[str, object]:
        return redact({
            "config": self.config,
            "prompt": {"name": self.prompt.name, "version": self.prompt.version,
                       "sha256": self.prompt.sha256},
            "request": self.request,
            "attempts": self.attempts,
            "outcome": outcome,
        }, secrets)


# --- the resource ---------------------------------------------------------------------------


class LLMAnalyst(dg.ConfigurableResource):
    """Turns AnalysisRequests into signals; `provider` is rules (offline default) or openai
    (any OpenAI-compatible endpoint). The API key is read from the environment at call time,
    never stored here, so it cannot show in the Dagster UI."""

    provider: str = Field(default="rules", description="rules or openai.")
    # An EnvVar reference when set from the environment (a URL may carry user:password@):
    # read it through `url`.
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty = OpenAI.")
    model: str = Field(default="gpt-4o-mini", description="Model name the endpoint knows.")
    mode: str = Field(default="tools", description="instructor mode: " + ", ".join(MODES))
    timeout_s: float = Field(default=60.0, description="Timeout of one HTTP request.")
    max_retries: int = Field(default=2, description="Re-asks after an invalid answer.")
    http_retries: int = Field(default=2, description="Retries of timeouts, 429, 5xx, refused.")
    concurrency: int = Field(default=10, description="Model calls in flight at once.")
    temperature: float | None = Field(default=0.2, description="None = endpoint default.")
    send_images: bool = Field(default=True, description="Attach daily/weekly chart PNGs.")
    max_cost_usd: float = Field(default=0.0, description="Cap per run in USD; 0 = no cap.")
    prices: str = Field(default="", description="JSON price overrides, see LLM_PRICES.")
    prompt: str = Field(default="signal_v1", description="Prompt template name.")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LLMAnalyst:
        """Configuration from LLM_* variables; see the README's LLM section.

        The provider defaults to openai when an API key or LLM_BASE_URL is set (a local
        server needs no key), else to the rules analyst. A bad value is a ConfigError naming
        the variable.
        """
        # LLM_BASE_URL, else OPENAI_BASE_URL (both read through env.get, the call shape
        # tests/test_deploy_config.py scans for).
        url_var = "OPENAI_BASE_URL" if env.get("OPENAI_BASE_URL") \
            and not env.get("LLM_BASE_URL") else "LLM_BASE_URL"
        base_url = env.get(url_var, "").strip()
        provider = env.get("LLM_PROVIDER", "").strip().lower() \
            or ("openai" if api_key(env) or base_url else "rules")
        if provider not in PROVIDERS:
            raise ConfigError(f"LLM_PROVIDER={provider!r} is unknown; use rules or openai.")
        mode = env.get("LLM_MODE", "").strip().lower() or "tools"
        if mode not in MODES:
            raise ConfigError(f"LLM_MODE={mode!r} is unknown; use one of {', '.join(MODES)} "
                              "(local servers often support only json or md_json).")
        prices = env.get("LLM_PRICES", "")
        prompt = env.get("LLM_PROMPT", "").strip() or "signal_v1"
        try:
            parse_prices(prices)  # refuse a malformed table at start-up, not mid-run
            load_prompt(prompt)
        except (PriceTableError, PromptError) as exc:
            raise ConfigError(str(exc)) from exc
        temperature_raw = env.get("LLM_TEMPERATURE", "").strip().lower()
        return cls(
            provider=provider,
            # By reference, so the Dagster UI never shows a user:password@ in the URL.
            base_url=dg.EnvVar(url_var) if base_url and referable(env, url_var) else base_url,
            model=env.get("LLM_MODEL", "").strip() or "gpt-4o-mini",
            mode=mode,
            timeout_s=env_number(env, "LLM_TIMEOUT_S", 60.0, minimum=0.1),
            max_retries=env_number(env, "LLM_MAX_RETRIES", 2, int, minimum=0),
            http_retries=env_number(env, "LLM_HTTP_RETRIES", 2, int, minimum=0),
            concurrency=env_number(env, "LLM_CONCURRENCY", 10, int, minimum=1),
            temperature=None if temperature_raw in {"none", "default"}
            else env_number(env, "LLM_TEMPERATURE", 0.2, minimum=0),
            send_images=env_bool(env, "LLM_SEND_IMAGES", True),
            max_cost_usd=env_number(env, "LLM_MAX_COST_USD", 0.0, minimum=0),
            prices=prices,
            prompt=prompt,
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
    def label(self) -> str:
        if self.provider == "rules":
            return "rules (deterministic, no language model)"
        images = "on" if self.send_images else "off"
        return (f"openai-compatible model {self.model} at {self.endpoint} "
                f"(instructor mode {self.mode}, chart images {images})")

    def identity(self) -> tuple[str, str, str]:
        """(provider, model, prompt_version) of the signals this analyst produces now.

        The llm_signal asset looks up a stored signal with the same identity and bar date, so a
        re-run costs no second model call.
        """
        if self.provider == "rules":
            return ("rules", RULES_MODEL, RULES_PROMPT_VERSION)
        return ("openai", self.model, load_prompt(self.prompt).version)

    def new_budget(self) -> CostBudget:
        """A cost budget for one Dagster run; pass it to every analyze_many call of the run."""
        return CostBudget(self.max_cost_usd)

    def analyze_many(self, requests: list[AnalysisRequest], budget: CostBudget | None = None
                     ) -> list[AnalysisOutcome]:
        """One outcome per request, in the same order; errors are outcomes, not exceptions.

        Model calls run concurrently (at most `concurrency` at once); `budget` carries the
        cost cap across calls of one run (a fresh one per call when omitted).
        """
        if self.provider not in PROVIDERS:
            raise ValueError(f"Unknown LLM_PROVIDER {self.provider!r}; choose rules or openai.")
        if self.provider == "rules":
            return [self._rules(request) for request in requests]
        if not requests:
            return []
        return self._model_many(requests, budget or self.new_budget())

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

    # -- the model provider --

    def _config(self) -> dict[str, Any]:
        """What the transcript and MLflow record about the call set-up (no secrets)."""
        return {"provider": self.provider, "endpoint": self.endpoint, "model": self.model,
                "mode": self.mode, "temperature": self.temperature,
                "send_images": self.send_images, "timeout_s": self.timeout_s,
                "max_retries": self.max_retries, "http_retries": self.http_retries}

    def _model_many(self, requests: list[AnalysisRequest], budget: CostBudget
                    ) -> list[AnalysisOutcome]:
        import instructor
        import openai

        prompt = load_prompt(self.prompt)
        price = price_for(self.model, parse_prices(self.prices))
        key = api_key()
        secrets = secret_values()
        modes = {"tools": instructor.Mode.TOOLS, "json": instructor.Mode.JSON,
                 "json_schema": instructor.Mode.JSON_SCHEMA, "md_json": instructor.Mode.MD_JSON}
        error = None
        if self.mode not in modes:
            error = f"LLM_MODE={self.mode!r} is unknown; use one of {', '.join(MODES)}."
        elif not key and not self.url:
            error = ("no API key for OpenAI: set LLM_API_KEY (or OPENAI_API_KEY), or point "
                     "LLM_BASE_URL at a local OpenAI-compatible server, or set "
                     "LLM_PROVIDER=rules.")
        if error:
            return [self._failed(r, prompt, error) for r in requests]
        client = openai.OpenAI(api_key=key or NO_KEY_PLACEHOLDER, base_url=self.url or None,
                               timeout=self.timeout_s, max_retries=self.http_retries)
        with client:
            structured = instructor.from_openai(client, mode=modes[self.mode])
            _install_log_redaction()
            workers = max(1, min(self.concurrency, len(requests)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-call") as pool:
                return list(pool.map(
                    lambda r: self._call(structured, r, prompt, price, budget, secrets),
                    requests))

    def _failed(self, request: AnalysisRequest, prompt: Prompt, error: str
                ) -> AnalysisOutcome:
        return AnalysisOutcome(symbol=request.symbol, provider=self.provider, model=self.model,
                               prompt_version=prompt.version, error=error)

    def _call(self, structured: Any, request: AnalysisRequest, prompt: Prompt, price: Price,
              budget: CostBudget, secrets: list[str]) -> AnalysisOutcome:
        """One symbol's model call; never raises (an error becomes the outcome's error)."""
        started = time.perf_counter()
        record = _CallRecord(self._config(), prompt)
        signal: TradingSignal | None = None
        error = budget.refusal()
        if error is None:
            options: dict[str, Any] = {"model": self.model}
            if self.temperature is not None:
                options["temperature"] = self.temperature
            try:
                answer = structured.create(
                    response_model=SignalAnswer,
                    messages=build_messages(request, prompt, self.send_images),
                    max_retries=self.max_retries,
                    context={"symbol": request.symbol},
                    hooks=record.hooks(),
                    **options,
                )
                signal = TradingSignal(
                    **answer.model_dump(exclude=_BOOKKEEPING), provider=self.provider,
                    model=self.model, prompt_version=prompt.version, bar_date=request.bar_date)
            except Exception as exc:  # stored as the signal's error, never turned into a HOLD
                error = redact(self._explain(exc, record), secrets)
        latency = time.perf_counter() - started
        cost = estimate_cost(price, record.prompt_tokens, record.completion_tokens)
        budget.add(cost)
        usage = {"prompt_tokens": record.prompt_tokens,
                 "completion_tokens": record.completion_tokens, "cost_usd": cost,
                 "price_known": price.known, "attempts": len(record.attempts),
                 "latency_s": round(latency, 3)}
        result = {"signal": signal.model_dump(mode="json") if signal else None,
                  "error": error, **usage}
        return AnalysisOutcome(
            symbol=request.symbol, signal=signal, error=error, provider=self.provider,
            model=self.model, prompt_version=prompt.version,
            prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
            cost_usd=cost, latency_s=latency, transcript=record.transcript(result, secrets),
        )

    def _explain(self, exc: Exception, record: _CallRecord) -> str:
        """An error text a trader can act on: what failed, where, and what to change."""
        import openai
        from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException

        root: BaseException = exc
        # instructor wraps whatever ended its loop; the cause says what really happened.
        while isinstance(root, InstructorRetryException) and root.__cause__ is not None:
            root = root.__cause__
        where = f"{self.model} at {self.endpoint}"
        retried = f"after {self.http_retries} retries" if self.http_retries else "(no retries)"
        attempts = len(record.attempts)
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
        if record.refusal:
            return f"{where} refused to answer: {record.refusal}"
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


def _api_message(error: Any) -> str:
    """The server's own error message, shortened."""
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or getattr(error, "message", "") or error)[:300]
