"""A loopback OpenAI-compatible chat-completions server, scripted per caller.

The bench's LLM section calls it (so it ships in the package: `trading-signals bench` runs
from an installed package, without the tests folder), and the tests script it per test.

It answers `POST /v1/chat/completions` the way OpenAI, vLLM or Ollama do: with a tool call
when the request offers tools (instructor's `tools` mode), else with JSON content (`json`,
`json_schema`; fenced for `md_json`). Each test scripts the replies (valid, invalid, errors
with headers, slow, refusals, truncations) and reads back the requests it received.

    with OpenAIServer() as server:
        server.script(answer(signal_fields("TSLA")))
        LLMAnalyst(provider="openai", base_url=server.base_url, ...).analyze_many([...])
        server.requests[0].body["messages"]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trading_assets.core.signal import AnalysisRequest


@dataclass
class Reply:
    """One scripted answer. `fields` become the signal (tool arguments or JSON content);
    `raw` is sent verbatim instead (malformed JSON); `status` != 200 sends an error body."""

    fields: dict[str, Any] | None = None
    raw: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    delay_s: float = 0.0
    finish_reason: str | None = None
    refusal: str | None = None
    usage: tuple[int, int] = (1200, 300)
    # Misbehaviours: send the headers, then the first `drip_bytes` of the body one byte every
    # `drip_s` seconds; answer `"choices": []`; put the request's Authorization header into
    # the error message (as some gateways' 401 pages do).
    drip_s: float = 0.0
    drip_bytes: int = 0
    empty_choices: bool = False
    echo_authorization: bool = False


def answer(fields: dict[str, Any], **kw: Any) -> Reply:
    return Reply(fields=fields, **kw)


def malformed(raw: str, **kw: Any) -> Reply:
    return Reply(raw=raw, **kw)


def http_error(status: int, message: str, **kw: Any) -> Reply:
    return Reply(status=status, error=message, **kw)


def refusal(text: str) -> Reply:
    return Reply(refusal=text)


def drip(every_s: float, first_bytes: int) -> Reply:
    """A valid answer whose first `first_bytes` bytes come one at a time, `every_s` apart."""
    return Reply(fields=signal_fields("TSLA"), drip_s=every_s, drip_bytes=first_bytes)


def no_choices() -> Reply:
    return Reply(empty_choices=True)


def echo_authorization(status: int = 401) -> Reply:
    return Reply(status=status, echo_authorization=True)


def signal_fields(symbol: str = "TSLA", **changes: Any) -> dict[str, Any]:
    """A valid BUY signal as a model would send it; `changes` break or adjust it."""
    fields: dict[str, Any] = {
        "symbol": symbol, "action": "BUY", "confidence_level": "HIGH", "confidence_score": 84,
        "reasoning": "Price above a rising SMA stack with positive MACD momentum.",
        "key_factors": ["close > SMA50 > SMA200", "MACD histogram positive"],
        "trend": "UP", "support": 95.0, "resistance": 112.0, "entry_price": 101.0,
        "stop_loss": 96.0, "take_profit": 111.0, "position_size_pct": 5.0,
        "horizon_days": 20, "timeframes_agree": True,
    }
    fields.update(changes)
    return fields


def analysis_request(symbol: str = "TSLA", charts: bool = True) -> AnalysisRequest:
    """A request shaped like the one `llm_signal` builds: summaries, 50 bars, two charts."""
    start = date(2026, 9, 1)
    bars = [{"date": (start + timedelta(days=i)).isoformat(), "open": 100.0 + i * 0.1,
             "high": 101.0 + i * 0.1, "low": 99.0 + i * 0.1, "close": 100.5 + i * 0.1,
             "volume": 1_000_000 + i} for i in range(50)]
    summary = {"close": 105.4, "sma_20": 103.0, "sma_50": 101.0, "sma_200": 95.0,
               "rsi_14": 61.5, "macd_hist": 0.42, "atr_14": 2.1, "bb_upper": None}
    return AnalysisRequest(
        symbol=symbol, bar_date=start + timedelta(days=49), data_source="simulated",
        simulated=True, daily_summary=summary, weekly_summary={**summary, "rsi_14": 58.0},
        last_bars=bars, position={"quantity": 10.0, "avg_price": 98.5},
        daily_chart_png=b"\x89PNG daily chart " + symbol.encode() if charts else None,
        weekly_chart_png=b"\x89PNG weekly chart " + symbol.encode() if charts else None,
    )


@dataclass
class Received:
    """A request the server got: path, headers (lower-case names) and the JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """Headers and body as one string, for 'does X appear anywhere' checks."""
        return json.dumps(self.headers) + json.dumps(self.body)

    def user_parts(self) -> list[dict[str, Any]]:
        """The content parts of the user message (a plain string becomes one text part)."""
        user = next(m for m in self.body["messages"] if m["role"] == "user")
        content = user["content"]
        return [{"type": "text", "text": content}] if isinstance(content, str) else content


class _LoopbackHTTPServer(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when 100 clients call at once.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False


class OpenAIServer:
    """The server, on a free loopback port, in a background thread."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.max_in_flight = 0  # most requests being answered at once
        # Per dripping request: bytes dripped before the client hung up or the drip ended.
        self.dripped: list[int] = []
        self._in_flight = 0
        self.responder: Callable[[Received], Reply] | None = None
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd = _LoopbackHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> OpenAIServer:
        """Queue replies, used in order; after them `responder` (if set) answers."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _count(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return http_error(500, "test server: no reply scripted")
        try:
            return self.responder(received)
        except Exception as exc:  # a broken test responder shows up as a 500, not a hang
            return http_error(500, f"test server responder failed: {exc!r}")


def completion_body(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """A chat.completion object answering `request` as `reply` says."""
    text = reply.raw if reply.raw is not None else json.dumps(reply.fields)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = reply.finish_reason or "stop"
    if reply.refusal is not None:
        message["refusal"] = reply.refusal
    elif request.get("tools"):
        name = request["tools"][0]["function"]["name"]
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": name, "arguments": text}}]
        finish = reply.finish_reason or "tool_calls"
    else:
        system = " ".join(str(m.get("content")) for m in request["messages"]
                          if m["role"] == "system")
        fenced = "```json" in system  # instructor's md_json mode asks for a fenced block
        message["content"] = f"```json\n{text}\n```" if fenced else text
    prompt_tokens, completion_tokens = reply.usage
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": request.get("model", "test-model"),
        "choices": [] if reply.empty_choices else
        [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                body)
            server._count(+1)
            try:
                reply = server._next_reply(received)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
            finally:
                server._count(-1)
            if not self.path.endswith("/chat/completions"):
                reply = http_error(404, f"no route {self.path}")
            if reply.echo_authorization:
                reply = http_error(reply.status, "Invalid credentials: Authorization: "
                                   + received.headers.get("authorization", "(none)"))
            if reply.status != 200:
                payload = {"error": {"message": reply.error, "type": "test_error",
                                     "code": reply.status}}
            else:
                payload = completion_body(body, reply)
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.drip_bytes:
                    self._drip(data, reply)
                    data = data[reply.drip_bytes:]
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing to answer

        def _drip(self, data: bytes, reply: Reply) -> None:
            """Send the body's head byte by byte; the rest follows in `do_POST`."""
            sent = 0
            try:
                for byte in data[:reply.drip_bytes]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    sent += 1
                    time.sleep(reply.drip_s)
            finally:
                with server._lock:
                    server.dripped.append(sent)

    return Handler
