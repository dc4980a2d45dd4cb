"""Failed logins slow down per client: the first few are checked at once, then each failure
locks the client out for a delay that doubles (1 s, 2 s, 4 s ... up to 5 minutes).

Gradio checks the password in its `/login` route and hands the `auth` callable only the name
and password, never who asks, so the throttle sits in front of that route as ASGI middleware
(passed to Gradio's FastAPI app through `launch(app_kwargs=...)`). An attempt during a lockout
is refused with 429 and Retry-After before the password is looked at, the right one included;
a successful login clears the client's count. The client is the connecting address: behind a
reverse proxy every user shares the proxy's, so let the proxy limit logins too (docs/app.md).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_CLIENTS = 10_000  # addresses remembered; the oldest is forgotten first


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class FailedLogins:
    """Per-client failures and lockouts; `clock` is injectable for tests."""

    def __init__(self, free_attempts: int = 3, first_delay_s: float = 1.0,
                 max_delay_s: float = 300.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.free_attempts, self.first_delay_s, self.max_delay_s = (free_attempts,
                                                                    first_delay_s, max_delay_s)
        self.clock = clock
        self.checked = 0  # attempts whose password was looked at
        self.refused = 0  # attempts refused during a lockout, password not looked at
        self._clients: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now); counts a refusal when > 0."""
        with self._lock:
            record = self._clients.get(client)
            wait = 0.0 if record is None else record.locked_until - self.clock()
            if wait > 0:
                self.refused += 1
                return wait
            self.checked += 1
            return 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            record = self._clients.pop(client, None) or _Record()
            record.failures += 1
            over = record.failures - self.free_attempts + 1  # the last free one locks
            if over > 0:
                delay = min(self.first_delay_s * 2 ** (over - 1), self.max_delay_s)
                record.locked_until = self.clock() + delay
            self._clients[client] = record
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


class LoginThrottle:
    """ASGI middleware applying FailedLogins to Gradio's POST /login."""

    def __init__(self, app: ASGIApp, logins: FailedLogins) -> None:
        self.app, self.logins = app, logins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not str(scope.get("path", "")).rstrip("/").endswith("/login")):
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown",))[0])
        wait = self.logins.wait_s(client)
        if wait > 0:
            await _refuse(send, math.ceil(wait))
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message.get("status", 0)))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] == 200:
            self.logins.succeeded(client)
        elif status and status[0] in (400, 401, 403):  # Gradio: 400 "Incorrect credentials."
            self.logins.failed(client)


async def _refuse(send: Send, retry_after: int) -> None:
    body = json.dumps({"detail": f"Too many failed logins from this address: try again in "
                                 f"{retry_after} s."}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry_after).encode())]})
    await send({"type": "http.response.body", "body": body})
