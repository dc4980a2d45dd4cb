"""One ib_async session per process and thread: connecting, the account, requests, contracts.

An `IB` object belongs to the event loop of the thread that made it, and TWS accepts one
session per client id, so connections are cached per (config, process, thread). Every request
goes through `IBKRSession._call`, which turns ib_async's failures into `IBKRError`s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from resources.ibkr.errors import (
    _CLIENT_ID_IN_USE,
    _CONNECTIVITY_LOST,
    _CONNECTIVITY_RESTORED,
    _FARM_NOTICES,
    _NO_SUBSCRIPTION,
    IBKRConnectionError,
    IBKRConnectionLost,
    IBKRError,
    IBKRNoSecurityError,
    IBKRPacingError,
    IBKRPermissionError,
    IBKRVersionError,
)
from resources.ibkr.values import ib_number
from resources.ibkr.versions import Handshake, HandshakeListener, last_handshake, remember
from trading_assets.core.orders import SymbolSettings

if TYPE_CHECKING:
    from ib_async import IB, Contract

log = logging.getLogger(__name__)

T = TypeVar("T")

# If the configured client id is taken (the Gradio app and a run at the same time, or a
# reconnect racing the gateway's cleanup of the old socket), try the next few before giving up.
_CLIENT_ID_ATTEMPTS = 5
_POLL_S = 0.02


@dataclass
class _Qualified:
    contract: Contract
    long_name: str
    min_tick: float


@dataclass(eq=False)
class _Connection:
    """One live IB session with what it learned: accounts, contracts, gateway notices."""

    ib: IB
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    client_id: int
    accounts: list[str] = field(default_factory=list)
    account: str = ""  # the account orders, positions and snapshots use ("" = ambiguous)
    contracts: dict[tuple[str, str, str, str], _Qualified] = field(default_factory=dict)
    connectivity_lost: str = ""  # the 1100-style notice not yet followed by 1101/1102
    delayed_data: bool = False  # reqMarketDataType(3) was sent on this session
    delayed_req_ids: set[int] = field(default_factory=set)  # requests answered with 10167
    rejected: asyncio.Future[str] | None = None  # set when the gateway refuses the client id
    handshake: Handshake | None = None  # the API server version and time the gateway announced

    def on_error(self, req_id: int, code: int, message: str, _contract: object) -> None:
        if code in _FARM_NOTICES:
            return
        if code in _CONNECTIVITY_LOST:
            self.connectivity_lost = f"{message} (error {code})"
        elif code in _CONNECTIVITY_RESTORED:
            self.connectivity_lost = ""
        elif code == 10167:
            self.delayed_req_ids.add(req_id)
        elif code == _CLIENT_ID_IN_USE and self.rejected is not None and not self.rejected.done():
            self.rejected.set_result(message)

    def close(self) -> None:
        """Disconnect and let the socket actually close (its loop only runs inside requests)."""
        try:
            self.ib.errorEvent -= self.on_error
            self.ib.disconnect()
            if not self.loop.is_running() and not self.loop.is_closed():
                self.loop.run_until_complete(asyncio.sleep(0))
        except Exception:  # closing is best effort; the gateway drops dead sockets itself
            log.debug("closing IBKR connection failed", exc_info=True)


class _ClientIdInUse(Exception):
    pass


# (host, port, client id, readonly, account, pid, thread id): the thread id stays last.
_ConnectionKey = tuple[str, int, int, bool, str, int, int]
_CONNECTIONS: dict[_ConnectionKey, _Connection] = {}
_CONNECTIONS_LOCK = threading.Lock()


def _prune_dead_threads() -> list[_Connection]:
    """Remove connections whose thread ended (call with the lock held); return them to close."""
    dead = [key for key, conn in _CONNECTIONS.items() if not conn.thread.is_alive()]
    return [_CONNECTIONS.pop(key) for key in dead]


def disconnect_all() -> None:
    """Close this thread's IBKR connections (and those of threads that ended)."""
    me = threading.get_ident()
    with _CONNECTIONS_LOCK:
        closing = _prune_dead_threads()
        for key in [key for key in _CONNECTIONS if key[-1] == me]:
            closing.append(_CONNECTIONS.pop(key))
    for conn in closing:
        conn.close()


def _refuse_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise IBKRError(
        "IBKRResource is synchronous and was called from inside a running asyncio event loop. "
        "Call it from a worker thread (asyncio.to_thread or run_in_executor)."
    )


# ---------------------------------------------------------------- values ib_async hands back


def _ib_symbol(symbol: str) -> str:
    """IBKR writes share classes with a space (BRK B); the platform writes BRK.B."""
    return symbol.replace(".", " ")


def _platform_symbol(ib_symbol: str) -> str:
    return ib_symbol.strip().replace(" ", ".")


# ---------------------------------------------------------------- the session


class IBKRSession:
    """The connection, account and request plumbing every IBKRResource call goes through.

    A mixin of IBKRResource (resources/ibkr/resource.py), which declares the config fields.
    """

    if TYPE_CHECKING:  # the IBKRResource fields this plumbing reads
        host: str
        port: int
        client_id: int
        account: str
        readonly: bool
        live: bool
        connect_timeout: float
        request_timeout: float
        allow_delayed_data: bool

    # ------------------------------------------------------------ connection

    def _connection(self) -> _Connection:
        """This thread's live session to the gateway, connecting (again) when needed."""
        _refuse_running_loop()
        key = self._key()
        with _CONNECTIONS_LOCK:
            stale = _prune_dead_threads()
            conn = _CONNECTIONS.get(key)
        for dead in stale:
            dead.close()
        if conn is not None:
            try:
                # ib_async reads the socket only while a call runs: take in what arrived while
                # idle (a restarted gateway's EOF, 1100/1102 connectivity notices).
                conn.ib.sleep(_POLL_S)
            except ConnectionError:
                pass
            if conn.ib.isConnected():
                return conn
            conn.close()
        conn = self._open()
        with _CONNECTIONS_LOCK:
            _CONNECTIONS[key] = conn
        return conn

    def handshake(self) -> Handshake:
        """Connect (or reuse this thread's session) and say what the gateway announced: the
        negotiated API server version and its connection time. Raises IBKRVersionError when
        the gateway and ib_async share no version."""
        handshake = self._connection().handshake
        assert handshake is not None
        return handshake

    def handshake_metadata(self) -> dict[str, object]:
        """The latest handshake with this gateway as metadata, without connecting ({} when
        this process has not connected to it)."""
        found = last_handshake(self.host, self.port)
        return found.metadata() if found else {}

    def _key(self) -> _ConnectionKey:
        """Which cached connection is this resource's: per process and thread, and per
        account, since the connection's account is picked from the config that opened it."""
        return (self.host, self.port, self.client_id, self.readonly, self.account,
                os.getpid(), threading.get_ident())

    def _drop_connection(self) -> None:
        with _CONNECTIONS_LOCK:
            conn = _CONNECTIONS.pop(self._key(), None)
        if conn is not None:
            conn.close()

    def _open(self) -> _Connection:
        from ib_async import IB, util

        last_refusal = ""
        for client_id in range(self.client_id, self.client_id + _CLIENT_ID_ATTEMPTS):
            ib = IB()
            ib.RaiseRequestErrors = True  # errors end requests with RequestError, not []
            ib.RequestTimeout = self.request_timeout
            conn = _Connection(ib=ib, loop=util.getLoop(), thread=threading.current_thread(),
                               client_id=client_id)
            ib.errorEvent += conn.on_error
            try:
                util.run(self._handshake(conn))
            except IBKRVersionError:
                conn.close()
                raise
            except _ClientIdInUse as refusal:
                last_refusal = str(refusal)
                log.warning("IBKR client id %d is in use; trying %d", client_id, client_id + 1)
                conn.close()
                continue
            except ConnectionRefusedError as exc:
                conn.close()
                raise IBKRConnectionError(self._unreachable("connection refused")) from exc
            except TimeoutError as exc:
                conn.close()
                raise IBKRConnectionError(
                    f"IBKR gateway at {self.host}:{self.port} did not complete the API "
                    f"handshake within {self.connect_timeout:g} s. Check that IB Gateway/TWS is "
                    "logged in, that this is its API port (IB Gateway 4002 paper / 4001 live, "
                    "TWS 7497 / 7496) and that this host is a trusted IP."
                ) from exc
            except OSError as exc:
                conn.close()
                raise IBKRConnectionError(self._unreachable(exc.strerror or str(exc))) from exc
            assert conn.handshake is not None
            remember(conn.handshake)
            conn.accounts = ib.managedAccounts()
            try:
                conn.account = self._pick_account(conn.accounts)
            except IBKRError:
                conn.close()
                raise
            log.info("connected to IBKR %s:%d as client %d: %s", self.host, self.port, client_id,
                     conn.handshake.describe())
            return conn
        raise IBKRConnectionError(
            f"IBKR gateway at {self.host}:{self.port} refused client ids {self.client_id}.."
            f"{self.client_id + _CLIENT_ID_ATTEMPTS - 1} ({last_refusal}). Close other API "
            "sessions or configure a free client id."
        )

    async def _handshake(self, conn: _Connection) -> None:
        """ib_async's connect, bounded by connect_timeout, aborted if the id is refused and
        refused (IBKRVersionError) when the gateway and ib_async share no API version."""
        loop = asyncio.get_running_loop()
        conn.rejected = loop.create_future()
        listener = HandshakeListener(f"{self.host}:{self.port}", loop.create_future())
        # Subscribed after ib_async's own handler, so it sees each chunk after ib_async did.
        socket_events = conn.ib.client.conn
        socket_events.hasData += listener.on_data
        socket_events.disconnected += listener.on_closed
        try:
            await self._connect(conn, listener.refused)
        finally:
            socket_events.hasData -= listener.on_data
            socket_events.disconnected -= listener.on_closed
        conn.handshake = Handshake(self.host, self.port, conn.ib.client.serverVersion(),
                                   listener.reply[1] if listener.reply else "")

    async def _connect(self, conn: _Connection, version_refused: asyncio.Future[str]) -> None:
        """Wait for the connect, a refused client id, a version refusal or the timeout."""
        from ib_async import StartupFetch, StartupFetchALL

        assert conn.rejected is not None
        connecting = asyncio.ensure_future(
            conn.ib.connectAsync(
                self.host,
                self.port,
                conn.client_id,
                timeout=self.connect_timeout,
                readonly=self.readonly,
                # Account updates are requested per call for the validated account instead.
                fetchFields=StartupFetchALL & ~StartupFetch.ACCOUNT_UPDATES,
            )
        )
        done, _ = await asyncio.wait(
            {connecting, conn.rejected, version_refused},
            timeout=self.connect_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        # Read before cancelling: the cancelled connect closes the socket, which the listener
        # would take for a refused handshake.
        problem = version_refused.result() if version_refused.done() else ""
        if connecting in done and not problem:
            connecting.result()  # raises what the connect raised
            return
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        if conn.rejected.done():
            raise _ClientIdInUse(conn.rejected.result())
        if problem:
            raise IBKRVersionError(problem)
        raise TimeoutError

    def _unreachable(self, reason: str) -> str:
        return (
            f"IBKR gateway not reachable at {self.host}:{self.port} ({reason}). "
            'Start IB Gateway or TWS, enable "ActiveX and Socket Clients", '
            "or set IBKR_HOST/IBKR_PORT."
        )

    def _pick_account(self, accounts: list[str]) -> str:
        if self.account:
            if self.account not in accounts:
                raise IBKRError(
                    f"IBKR_ACCOUNT is {self.account}, but the gateway at {self.host}:{self.port} "
                    f"is logged in to {', '.join(accounts) or 'no account'}. Set IBKR_ACCOUNT to "
                    "one of those, or log the gateway in to that account."
                )
            return self.account
        return accounts[0] if len(accounts) == 1 else ""

    def _require_account(self, conn: _Connection) -> str:
        if not conn.account:
            raise IBKRError(
                f"The IBKR login manages several accounts ({', '.join(conn.accounts)}); set "
                "IBKR_ACCOUNT to the one to trade and report on."
            )
        return conn.account

    # ------------------------------------------------------------ requests

    def _call(self, conn: _Connection, what: str, request: Callable[[IB], T],
              symbol: str = "") -> T:
        """Run one blocking ib_async request; translate its failures into IBKRError."""
        from ib_async import RequestError

        for attempt in (1, 2):
            if conn.connectivity_lost:
                raise IBKRConnectionError(
                    f"IB Gateway at {self.host}:{self.port} has lost its connection to IBKR "
                    f"({conn.connectivity_lost}). Wait for it to reconnect, or restart it."
                )
            try:
                return request(conn.ib)
            except RequestError as exc:
                raise self._translate(exc.code, exc.message, what, symbol) from exc
            except TimeoutError as exc:
                raise IBKRError(
                    f"IBKR did not answer {what}{f' for {symbol}' if symbol else ''} within "
                    f"{self.request_timeout:g} s. The gateway may be busy or throttling; "
                    "retry later."
                ) from exc
            except ConnectionError as exc:
                # ib_async reports a lost socket through one process-wide event, so another
                # thread's dropped connection can abort this request too: retry if ours is up.
                if attempt == 1 and conn.ib.isConnected():
                    continue
                raise IBKRConnectionLost(
                    f"Lost the connection to the IBKR gateway at {self.host}:{self.port} during "
                    f"{what} ({exc}). Check that IB Gateway/TWS is still running (IBKR_HOST/"
                    "IBKR_PORT); the next call reconnects."
                ) from exc
        raise AssertionError("unreachable")

    def _translate(self, code: int, message: str, what: str, symbol: str) -> IBKRError:
        subject = f" for {symbol}" if symbol else ""
        if code == 200:
            return IBKRNoSecurityError(
                f"IBKR has no security definition{subject} (error 200: {message}). Check the "
                "ticker, or set the symbol's exchange, primary exchange and currency.",
                code,
            )
        if code == 162:
            lowered = message.lower()
            if "permission" in lowered or "subscri" in lowered:
                return IBKRPermissionError(
                    f"No market data permission{subject} (error 162: {message}). Subscribe to "
                    "the exchange's market data in IBKR Client Portal.",
                    code,
                )
            if "pacing" not in lowered:
                return IBKRError(f"IBKR historical data service refused {what}{subject} "
                                 f"(error 162: {message}).", code)
            return IBKRPacingError(
                f"IBKR refused {what}{subject}: pacing violation (error 162: {message}). IBKR "
                "allows about 60 historical data requests per 10 minutes and no identical "
                "request within 15 s; wait a few minutes and run again.",
                code,
            )
        if code in _NO_SUBSCRIPTION:
            return IBKRPermissionError(
                f"No market data subscription{subject} (error {code}: {message}). Subscribe in "
                "IBKR Client Portal, or set allow_delayed_data (IBKR_ALLOW_DELAYED_DATA=true) to "
                "accept 15-minute delayed data.",
                code,
            )
        if code in _CONNECTIVITY_LOST:
            return IBKRConnectionError(
                f"IB Gateway at {self.host}:{self.port} lost its connection to IBKR during "
                f"{what} (error {code}: {message}). Wait for it to reconnect, or restart it.",
                code,
            )
        return IBKRError(f"IBKR error {code} during {what}{subject}: {message}", code)

    # ------------------------------------------------------------ contracts (orders and bars)

    def _qualified(self, conn: _Connection, symbol: str,
                   settings: SymbolSettings | None) -> _Qualified:
        """The IBKR contract for a stock, looked up once per session."""
        from ib_async import Stock

        exchange = (settings.exchange if settings else "") or "SMART"
        primary = settings.primary_exchange if settings else ""
        currency = (settings.currency if settings else "") or "USD"
        key = (symbol, exchange, primary, currency)
        if key in conn.contracts:
            return conn.contracts[key]
        stock = Stock(_ib_symbol(symbol), exchange, currency, primaryExchange=primary)
        details = self._call(conn, "the contract lookup", lambda ib: ib.reqContractDetails(stock),
                             symbol)
        stocks = [d for d in details if d.contract is not None and d.contract.secType == "STK"]
        if not stocks:
            raise IBKRNoSecurityError(
                f"IBKR knows no stock {symbol} on {exchange} in {currency}. Check the ticker, or "
                "set the symbol's exchange, primary exchange and currency.", 200
            )
        if len(stocks) > 1:
            where = ", ".join(sorted({d.contract.primaryExchange for d in stocks if d.contract}))
            raise IBKRNoSecurityError(
                f"{symbol} is ambiguous at IBKR ({len(stocks)} stocks: {where}). Set the "
                "symbol's primary exchange in its settings.", 200
            )
        contract = stocks[0].contract
        assert contract is not None
        if exchange == "SMART":
            contract.exchange = "SMART"  # keep smart routing rather than the listing exchange
        found = _Qualified(contract, stocks[0].longName, ib_number(stocks[0].minTick) or 0.01)
        conn.contracts[key] = found
        return found
