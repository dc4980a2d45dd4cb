"""Which API server version the gateway and ib_async agreed on, and what to do when they can't.

When a session opens, the gateway answers the client's range of API server versions with the
one it will speak and its connection time. ib_async 2.x speaks IBKR's text protocol (server
versions up to 178); IB Gateway/TWS 10.51 and later, which IBKR requires from December 2026,
speak the protobuf protocol only ib_async 3.x has (226..228). docs/ibkr.md's "IBKR
compatibility" table says the same; this module turns it into one line a person can act on.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass
from importlib.metadata import version

# The ib_async line that speaks the protobuf protocol, and what it needs: the remedy when a
# gateway wants more than the installed ib_async offers.
PROTOBUF_LINE = "ib_async 3.x (API server versions 226..228)"
COMPATIBILITY = 'docs/ibkr.md "IBKR compatibility"'


def client_versions() -> tuple[int, int]:
    """The API server versions the installed ib_async offers in its handshake."""
    from ib_async.client import Client

    return Client.MinClientVersion, Client.MaxClientVersion


def client_description() -> str:
    """e.g. "ib_async 2.1.0 (server versions 157..178)"."""
    low, high = client_versions()
    return f"ib_async {version('ib_async')} (server versions {low}..{high})"


@dataclass(frozen=True)
class Handshake:
    """What the gateway announced when a session opened."""

    host: str
    port: int
    server_version: int  # the negotiated API server version (ib.client.serverVersion())
    connection_time: str  # as the gateway wrote it, e.g. "20261206 16:30:00 EST"

    def metadata(self) -> dict[str, object]:
        """For materialization metadata: which protocol the data and orders went through."""
        return {"ibkr_api_server_version": self.server_version,
                "ibkr_gateway_connection_time": self.connection_time,
                "ib_async": client_description()}

    def describe(self) -> str:
        return (f"API server version {self.server_version}, gateway connection time "
                f"{self.connection_time or 'not sent'}; {client_description()}")


_LAST: dict[tuple[str, int], Handshake] = {}
_LAST_LOCK = threading.Lock()


def remember(handshake: Handshake) -> None:
    with _LAST_LOCK:
        _LAST[(handshake.host, handshake.port)] = handshake


def last_handshake(host: str, port: int) -> Handshake | None:
    """The latest handshake with this gateway in this process (any thread), if any."""
    with _LAST_LOCK:
        return _LAST.get((host, port))


def version_problem(where: str, server_version: int | None) -> str | None:
    """One line when the gateway at `where` and ib_async share no API server version (None:
    the gateway closed the handshake without announcing one); None when they do."""
    low, high = client_versions()
    client = f"ib_async {version('ib_async')} speaks {low}..{high}"
    if server_version is None:
        return (f"IBKR gateway at {where} closed the API handshake without announcing its "
                f"server version; {client}. IB Gateway/TWS 10.51 and later accept only "
                f"{PROTOBUF_LINE}: upgrade ib_async (see {COMPATIBILITY}), or check that this host "
                "is a trusted IP in the gateway's API settings.")
    if server_version > high:
        return (f"IBKR gateway at {where} speaks API server version {server_version}; {client}. "
                f"The gateway needs IBKR's newer protocol: upgrade to {PROTOBUF_LINE}; see "
                f"{COMPATIBILITY}.")
    if server_version < low:
        return (f"IBKR gateway at {where} speaks API server version {server_version}; {client}. "
                "Upgrade IB Gateway/TWS: IBKR requires 10.51 or later from December 2026, "
                f"which needs {PROTOBUF_LINE}; see {COMPATIBILITY}.")
    return None


class HandshakeListener:
    """Reads the gateway's first message (server version, connection time) off the socket
    (ib_async keeps the version but drops the time), and resolves `refused` with the
    version_problem line when the versions don't meet or the socket closes before it."""

    def __init__(self, where: str, refused: asyncio.Future[str]) -> None:
        self.where = where
        self.refused = refused
        self.reply: tuple[int, str] | None = None
        self._data = b""

    def on_data(self, data: bytes) -> None:
        if self.reply is not None:
            return
        self._data += data
        if len(self._data) < 4:
            return
        (size,) = struct.unpack(">I", self._data[:4])
        if len(self._data) < 4 + size:
            return
        fields = self._data[4:4 + size].decode(errors="replace").split("\0")
        number = fields[0].strip()
        self.reply = (int(number) if number.isdigit() else 0,
                      fields[1] if len(fields) > 1 else "")
        self._data = b""
        self._refuse(version_problem(self.where, self.reply[0]))

    def on_closed(self, _message: str = "") -> None:
        if self.reply is None:
            self._refuse(version_problem(self.where, None))

    def _refuse(self, problem: str | None) -> None:
        if problem and not self.refused.done():
            self.refused.set_result(problem)
