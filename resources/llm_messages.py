"""What goes to the model and what comes back: the answer schema, the chat messages built from
an AnalysisRequest and its prompt, and the per-call transcript recorded via instructor's hooks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from pydantic import Field, ValidationInfo, model_validator
from pydantic.json_schema import SkipJsonSchema

from resources.prompts import Prompt
from trading_assets.core.exchanges import ExchangeRequest, sha256_hex
from trading_assets.core.secrets import redact
from trading_assets.core.signal import AnalysisRequest, TradingSignal

# Fields the platform fills in (r_multiple is computed from the levels, not taken on trust).
BOOKKEEPING = {"provider", "model", "prompt_version", "timeframe", "bar_date", "generated_at",
               "r_multiple"}


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
    # Optional in TradingSignal only so that signals stored before them still read back: the
    # model must state both.
    horizon_days: int = Field(ge=1, le=260, description=TradingSignal.model_fields[
        "horizon_days"].description)
    timeframes_agree: bool = Field(description=TradingSignal.model_fields[
        "timeframes_agree"].description)

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


def exchange_request(request: AnalysisRequest, prompt: Prompt, model: str,
                     messages: list[dict[str, Any]], params: Mapping[str, Any]
                     ) -> ExchangeRequest:
    """The request as the recorded exchange store keys it (core/exchanges.py): the messages
    with every image data URL replaced by "image <n>", and the images' SHA-256 digests in
    that order (so a changed chart is named as such, not as changed messages)."""
    images: list[str] = []
    stripped = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                url = part.get("image_url", {}).get("url", "") \
                    if isinstance(part, Mapping) and part.get("type") == "image_url" else ""
                if url.startswith("data:"):
                    images.append(sha256_hex(base64.b64decode(url.partition(",")[2])))
                    part = {"type": "image_url", "image_url": {"url": f"image {len(images)}"}}
                parts.append(part)
            message = {**message, "content": parts}
        stripped.append(message)
    return ExchangeRequest(
        symbol=request.symbol, bar_date=request.bar_date, model=model,
        prompt_version=prompt.version, messages=stripped, images=tuple(images),
        params=dict(params), schema=answer_schema())


@cache
def answer_schema() -> dict[str, Any]:
    """The JSON schema of the answer the model is asked for (part of the request digest)."""
    return SignalAnswer.model_json_schema()


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


class CallRecord:
    """Collects one signal's request/response transcript and token usage via instructor hooks."""

    def __init__(self, config: dict[str, Any], prompt: Prompt) -> None:
        self.config = config
        self.prompt = prompt
        self.attempts: list[dict[str, Any]] = []
        self.request: dict[str, Any] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.refusal: str | None = None
        self.empty_choices: dict[str, Any] | None = None  # what a choice-less answer said
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
        if not choices:
            # Some servers answer 200 with no choice at all (a filtered or failed generation);
            # instructor then fails on choices[0], so keep what the server did send.
            self.empty_choices = {"id": getattr(response, "id", None),
                                  "model": getattr(response, "model", None)}
            answer["choices"] = []
        else:
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

