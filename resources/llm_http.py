"""A total wall-clock deadline for each HTTP attempt of the openai client.

The client's timeout bounds each socket read, not a request: a server that sends one byte
every 2 s never trips a 5 s read timeout and can hold an attempt for as long as it likes. Here
every attempt (each retry is a new one) starts a clock in an httpx request hook, and every
connect, read and write of that attempt gets at most the time left, so an attempt ends at its
deadline whatever the server does. The deadline is also capped by the run's bound (see
`run_deadline`). The check sits in the connection pool's network backend because that is
where the bytes are read; httpx has no public hook there, hence the one private attribute.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Handed to a read/write once the deadline has passed: the socket call then times out at once
# (the client maps that to its timeout error) instead of waiting for the next byte.
_EXPIRED_S = 0.001
_state = threading.local()  # deadlines of the attempt running on this thread


def _bounded(timeout: float | None) -> float:
    """`timeout` cut to the time left before this thread's attempt deadline."""
    deadline = getattr(_state, "deadline", math.inf)
    if deadline == math.inf:
        return timeout  # type: ignore[return-value]  # no attempt clock on this thread
    left = max(_EXPIRED_S, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


@contextmanager
def run_deadline(deadline: float | None) -> Iterator[None]:
    """Within the block, no attempt on this thread runs past `deadline` (time.monotonic())."""
    _state.run_deadline = math.inf if deadline is None else deadline
    try:
        yield
    finally:
        _state.run_deadline = math.inf
        _state.deadline = math.inf


class _DeadlineStream:
    """A network stream whose every operation ends by the attempt's deadline."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> _DeadlineStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend:
    """Wraps the pool's network backend so the streams it opens honour the deadline."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None
                    ) -> _DeadlineStream:
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _bounded(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> _DeadlineStream:
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _bounded(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_http_client(attempt_s: float) -> Any:
    """The openai client's default HTTP client (limits, redirects, proxies from the
    environment), with each attempt bounded to `attempt_s` seconds in total."""
    import openai

    def start_attempt(request: Any) -> None:
        run_ends = getattr(_state, "run_deadline", math.inf)
        if time.monotonic() >= run_ends:
            # An OpenAIError is not retried by the client: no attempt starts after the run's
            # bound, so nothing more reaches (or is billed by) the server.
            raise openai.APITimeoutError(request=request)
        _state.deadline = min(time.monotonic() + attempt_s, run_ends)

    client = openai.DefaultHttpxClient(event_hooks={"request": [start_attempt]})
    transports = [client._transport, *client._mounts.values()]  # noqa: SLF001
    for transport in filter(None, transports):
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            client.close()
            raise RuntimeError("the HTTP client's connection pool changed shape; the LLM "
                               "attempt deadline cannot be installed (check the httpx version)")
        pool._network_backend = _DeadlineBackend(pool._network_backend)  # noqa: SLF001
    return client
