"""Interactive Brokers through ib_async: daily bars, contracts, orders, positions and account.

Talks to IB Gateway or TWS over the TWS API socket. ib_async is imported inside the methods
(loading the Dagster definitions must stay fast), and one connection is kept per process and
thread: an `IB` object belongs to the event loop of the thread that made it, and TWS accepts one
session per client id. Nothing here ever substitutes simulated data for an IBKR failure; every
failure is an `IBKRError` whose message says what to do.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import dagster as dg
from pydantic import Field

from trading_assets.core.orders import (
    AccountSnapshot,
    BrokerOrder,
    OrderRequest,
    OrderType,
    Position,
    SymbolSettings,
)
from trading_assets.core.signal import Action
from trading_assets.core.symbols import validate_symbol

if TYPE_CHECKING:
    import pandas as pd
    from ib_async import IB, BarDataList, Contract, Fill, Order, Trade

log = logging.getLogger(__name__)

T = TypeVar("T")

# Market-data farm notices ("connection is OK", "HMDS data farm connected"): not errors.
_FARM_NOTICES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2158})
_CONNECTIVITY_LOST = frozenset({502, 504, 1100, 1300})
_CONNECTIVITY_RESTORED = frozenset({1101, 1102})
_NO_SUBSCRIPTION = frozenset({354, 10090, 10168})
_CLIENT_ID_IN_USE = 326
# IBKR paper accounts start with DU (individual) or DF (advisor); anything else moves real money.
_PAPER_PREFIXES = ("DU", "DF")
# If the configured client id is taken (the Gradio app and a run at the same time, or a
# reconnect racing the gateway's cleanup of the old socket), try the next few before giving up.
_CLIENT_ID_ATTEMPTS = 5
_UNACKNOWLEDGED = frozenset({"", "PendingSubmit", "ApiPending"})
# After the gateway acknowledged an order, how long to wait for its fill and commission reports.
_FILL_GRACE_S = 2.0
_POLL_S = 0.02
_TAKE_PROFIT_SUFFIX = ":tp"
_STOP_LOSS_SUFFIX = ":sl"


class IBKRError(RuntimeError):
    """Something IBKR refused or could not do; the message says what to do about it."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class IBKRConnectionError(IBKRError):
    """The gateway is not reachable, refused the session, or lost its link to IBKR."""


class IBKRPacingError(IBKRError):
    """IBKR throttled historical data requests (error 162, pacing violation)."""


class IBKRNoSecurityError(IBKRError):
    """IBKR has no (or no unambiguous) contract for the symbol (error 200)."""


class IBKRPermissionError(IBKRError):
    """Not allowed: no data subscription, read-only mode, or a live account without consent."""


# ---------------------------------------------------------------- historical-data pacing


class HistoricalPacer:
    """IBKR's historical-data pacing rules, enforced in-process before a request is sent.

    IBKR documents, for small bars and as a soft limit for larger ones: at most 60 historical
    requests in any 10 minutes, no identical request within 15 s, and no more than 6 for one
    contract within 2 s. Breaking them earns error 162 and a penalty box for the whole
    session, so a platform looping over hundreds of symbols stays under the strict limits:
    it waits for a free slot, and serves an identical request from a 15-second cache.
    """

    def __init__(
        self,
        max_requests: int = 60,
        window_s: float = 600.0,
        identical_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.window_s = window_s
        self.identical_s = identical_s
        self._clock = clock
        self._sent: deque[float] = deque()
        self._recent: dict[Hashable, tuple[float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a request slot and return 0, or return the seconds until a slot frees up."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self.window_s:
                self._sent.popleft()
            if len(self._sent) < self.max_requests:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + self.window_s - now

    def cached(self, key: Hashable) -> pd.DataFrame | None:
        """The answer to an identical request made within `identical_s`, if any."""
        with self._lock:
            hit = self._recent.get(key)
            if hit is None or self._clock() - hit[0] >= self.identical_s:
                self._recent.pop(key, None)
                return None
            return hit[1].copy()

    def remember(self, key: Hashable, frame: pd.DataFrame) -> None:
        with self._lock:
            now = self._clock()
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < self.identical_s}
            self._recent[key] = (now, frame.copy())

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self._recent.clear()


_PACER = HistoricalPacer()


def reset_pacing() -> None:
    """Forget pacing history and cached bars (tests; a process that knows the gateway restarted)."""
    _PACER.reset()


# ---------------------------------------------------------------- connections


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


# ---------------------------------------------------------------- small pure helpers


def duration_for(trading_days: int) -> str:
    """An IB duration string covering `trading_days` sessions, with room for holidays."""
    calendar_days = math.ceil(trading_days * 365 / 252) + 10
    if calendar_days <= 365:  # IB refuses "D" durations longer than a year
        return f"{calendar_days} D"
    return f"{math.ceil(calendar_days / 365)} Y"


def _ib_symbol(symbol: str) -> str:
    """IBKR writes share classes with a space (BRK B); the platform writes BRK.B."""
    return symbol.replace(".", " ")


def _platform_symbol(ib_symbol: str) -> str:
    return ib_symbol.strip().replace(" ", ".")


def _is_paper_account(account: str) -> bool:
    return account.upper().startswith(_PAPER_PREFIXES)


def _price(value: object) -> float | None:
    """A price from ib_async, or None for its 'unset' markers (empty, NaN, 1.79e308)."""
    if value is None or value == "":
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) and abs(number) < 1e300 else None


def _round_to_tick(price: float, tick: float) -> float:
    """IBKR rejects prices off the contract's tick grid (error 110)."""
    tick = tick if tick > 0 else 0.01
    return round(round(price / tick) * tick, 8)


def _validate_request(request: OrderRequest) -> None:
    if request.action not in (Action.BUY, Action.SELL):
        raise ValueError(f"Order {request.order_ref}: action must be BUY or SELL, "
                         f"not {request.action}.")
    if request.quantity < 1:
        raise ValueError(f"Order {request.order_ref}: quantity must be at least 1 share.")
    if not request.order_ref:
        raise ValueError("Order has no order_ref; it is the idempotency key and is required.")
    if request.order_type is OrderType.LIMIT and request.limit_price is None:
        raise ValueError(f"Order {request.order_ref}: a LMT order needs limit_price.")
    if request.order_type is OrderType.BRACKET:
        stop, target, entry = request.stop_loss, request.take_profit, request.limit_price
        if stop is None or target is None:
            raise ValueError(f"Order {request.order_ref}: a BRACKET order needs stop_loss "
                             "and take_profit.")
        low, high = (stop, target) if request.action is Action.BUY else (target, stop)
        if not (low < (entry if entry is not None else (low + high) / 2) < high):
            raise ValueError(
                f"Order {request.order_ref}: for {request.action.value} the stop_loss "
                f"({stop}) and take_profit ({target}) must lie on either side of the entry "
                f"({entry if entry is not None else 'market'})."
            )


# ---------------------------------------------------------------- the resource


class IBKRResource(dg.ConfigurableResource):
    """Interactive Brokers via IB Gateway/TWS: daily bars, contracts, orders, positions, account.

    Paper accounts by default: orders against a live account need `live=True` and `account`
    set to that account. Every failure raises an IBKRError subclass with an actionable message.
    """

    host: str = Field(default="127.0.0.1", description="IB Gateway/TWS host (IBKR_HOST).")
    port: int = Field(
        default=4002,
        description="API port (IBKR_PORT): IB Gateway 4002 paper / 4001 live, TWS 7497 / 7496.",
    )
    client_id: int = Field(default=17, description="API client id; the next few are tried too.")
    account: str = Field(default="", description="Account to trade and report (IBKR_ACCOUNT).")
    readonly: bool = Field(default=False, description="Refuse every order (IBKR_READONLY).")
    live: bool = Field(default=False, description="Allow orders on a live account (TRADING_LIVE).")
    connect_timeout: float = Field(default=10.0, description="Seconds to connect and sync.")
    request_timeout: float = Field(default=30.0, description="Seconds to wait for one request.")
    allow_delayed_data: bool = Field(
        default=False, description="Use delayed data when there is no subscription (error 354)."
    )
    order_timeout: float = Field(
        default=15.0, description="Seconds to wait for the gateway to acknowledge an order."
    )

    # ------------------------------------------------------------ public interface

    def fetch_daily_bars(
        self, symbol: str, lookback_days: int, settings: SymbolSettings | None = None
    ) -> pd.DataFrame:
        """The last `lookback_days` daily TRADES bars (regular hours), oldest first.

        Columns: date (datetime64[ns], tz-naive, midnight), open, high, low, close, volume.
        `frame.attrs["delayed"]` is True when IBKR served delayed data.
        """
        import pandas as pd

        symbol = validate_symbol(symbol)
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be at least 1, got {lookback_days}.")
        conn = self._connection()
        contract = self._qualified(conn, symbol, settings).contract
        duration = duration_for(lookback_days)
        key = (self.host, self.port, contract.conId, contract.exchange, contract.currency,
               duration, "1 day", "TRADES", True)
        frame = _PACER.cached(key)
        if frame is None:
            bars, delayed = self._historical_bars(conn, contract, symbol, duration)
            frame = pd.DataFrame(
                {
                    "date": [bar.date for bar in bars],
                    "open": [bar.open for bar in bars],
                    "high": [bar.high for bar in bars],
                    "low": [bar.low for bar in bars],
                    "close": [bar.close for bar in bars],
                    "volume": [bar.volume for bar in bars],
                }
            )
            dates = pd.to_datetime(frame["date"])
            if dates.dt.tz is not None:
                dates = dates.dt.tz_localize(None)
            frame["date"] = dates.dt.normalize().astype("datetime64[ns]")
            frame[["open", "high", "low", "close", "volume"]] = frame[
                ["open", "high", "low", "close", "volume"]
            ].astype(float)
            frame = frame.sort_values("date").drop_duplicates("date", keep="last")
            frame.attrs.update({"source": "ibkr", "delayed": delayed, "con_id": contract.conId})
            _PACER.remember(key, frame)
        result = frame.tail(lookback_days).reset_index(drop=True)
        result.attrs = dict(frame.attrs)
        return result

    def qualify(self, symbol: str, settings: SymbolSettings | None = None) -> dict[str, object]:
        """Resolve a symbol to IBKR's contract (conId, exchanges, currency, name)."""
        symbol = validate_symbol(symbol)
        found = self._qualified(self._connection(), symbol, settings)
        contract = found.contract
        return {
            "symbol": symbol,
            "conId": contract.conId,
            "exchange": contract.exchange,
            "primaryExchange": contract.primaryExchange,
            "currency": contract.currency,
            "longName": found.long_name,
        }

    def find_order(self, order_ref: str) -> BrokerOrder | None:
        """The order IBKR knows under `order_ref`: open, completed, or seen in today's fills."""
        conn = self._connection()
        open_trades = self._call(conn, "the open orders request", lambda ib: ib.reqAllOpenOrders())
        completed = self._call(
            conn, "the completed orders request", lambda ib: ib.reqCompletedOrders(apiOnly=True)
        )
        self._call(conn, "the executions request", lambda ib: ib.reqExecutions())
        # Live trades of this session first (they carry fills and commissions), then what the
        # gateway lists; completed orders are the only record of a filled order after a restart.
        trades = [*conn.ib.trades(), *open_trades, *completed]

        def first(ref: str) -> Trade | None:
            return next((t for t in trades if t.order.orderRef == ref), None)

        parent = first(order_ref)
        fills = [f for f in conn.ib.fills() if f.execution.orderRef == order_ref]
        if parent is None and not fills:
            return None
        children = [t for t in (first(order_ref + _TAKE_PROFIT_SUFFIX),
                                first(order_ref + _STOP_LOSS_SUFFIX)) if t is not None]
        return self._broker_order(order_ref, parent, fills, children)

    def place_order(
        self, request: OrderRequest, settings: SymbolSettings | None = None
    ) -> BrokerOrder:
        """Place MKT, LMT or BRACKET once per `order_ref`, asking IBKR first whether it exists.

        If the gateway does not acknowledge in `order_timeout` or the connection drops, the
        order is reconciled after a reconnect and never sent a second time.
        """
        if self.readonly:
            raise IBKRPermissionError(
                f"IBKR is configured read-only (readonly=True, IBKR_READONLY): order "
                f"{request.order_ref} ({request.action} {request.quantity} {request.symbol}) "
                "was refused. Turn read-only off to trade."
            )
        symbol = validate_symbol(request.symbol)
        _validate_request(request)
        conn = self._connection()
        account = self._check_may_trade(conn)
        existing = self.find_order(request.order_ref)
        if existing is not None:
            log.info("IBKR already has order %s (%s); not placing it again",
                     request.order_ref, existing.status)
            return existing
        qualified = self._qualified(conn, symbol, settings)
        orders = self._build_orders(conn, request, account, qualified.min_tick)
        trades: list[Trade] = []
        try:
            for order in orders:
                trades.append(conn.ib.placeOrder(qualified.contract, order))
            acknowledged = self._await_acknowledgement(conn, trades)
        except ConnectionError:
            acknowledged = False
        if acknowledged:
            return self._broker_order(request.order_ref, trades[0], list(trades[0].fills),
                                      trades[1:])
        reason = ("the connection dropped" if not conn.ib.isConnected()
                  else f"no acknowledgement within {self.order_timeout:g} s")
        return self._reconcile(request, reason)

    def positions(self) -> list[Position]:
        """Stock positions of the account, with market price and P&L from the portfolio."""
        conn, account = self._account_updates()
        held = self._call(conn, "the positions request", lambda ib: ib.reqPositions())
        portfolio = {item.contract.conId: item for item in conn.ib.portfolio(account)}
        result = []
        for position in held:
            if position.account != account or not position.position:
                continue
            if position.contract.secType != "STK":  # the platform trades stocks only
                continue
            item = portfolio.get(position.contract.conId)
            result.append(
                Position(
                    symbol=_platform_symbol(position.contract.symbol),
                    quantity=float(position.position),
                    avg_cost=float(position.avgCost),
                    market_price=_price(item.marketPrice) if item else None,
                    market_value=_price(item.marketValue) if item else None,
                    unrealized_pnl=_price(item.unrealizedPNL) if item else None,
                    realized_pnl=(_price(item.realizedPNL) or 0.0) if item else 0.0,
                )
            )
        return result

    def account_snapshot(self) -> AccountSnapshot:
        """Net liquidation, cash, buying power and P&L of the account, in its base currency."""
        conn, account = self._account_updates()
        values: dict[tuple[str, str], float] = {}
        for value in conn.ib.accountValues(account):
            try:
                values[(value.tag, value.currency)] = float(value.value)
            except ValueError:  # text tags such as AccountType
                continue
        log.debug("IBKR account update: %d numeric values", len(values))
        base = next((cur for tag, cur in values if tag == "NetLiquidation" and cur != "BASE"),
                    "USD")

        def pick(tag: str) -> float | None:
            # Ledger tags arrive per currency and as a BASE total; account tags in base only.
            for currency in ("BASE", base):
                if (tag, currency) in values:
                    return values[(tag, currency)]
            return None

        equity, cash = pick("NetLiquidation"), pick("TotalCashValue")
        if equity is None or cash is None:
            raise IBKRError(
                f"IBKR sent no NetLiquidation/TotalCashValue for account {account}. Check that "
                "the gateway is logged in and the account is funded, then retry."
            )
        items = conn.ib.portfolio(account)
        realized = pick("RealizedPnL")
        unrealized = pick("UnrealizedPnL")
        return AccountSnapshot(
            account=account,
            cash=cash,
            equity=equity,
            buying_power=pick("BuyingPower") or 0.0,
            currency=base,
            realized_pnl=realized if realized is not None
            else sum(_price(i.realizedPNL) or 0.0 for i in items),
            unrealized_pnl=unrealized if unrealized is not None
            else sum(_price(i.unrealizedPNL) or 0.0 for i in items),
            broker="ibkr",
        )

    def _account_updates(self) -> tuple[_Connection, str]:
        """The connection and its account, with the account's values and portfolio updated."""
        conn = self._connection()
        account = self._require_account(conn)
        self._call(conn, "the account update request", lambda ib: ib.reqAccountUpdates(account))
        return conn, account

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
            conn.accounts = ib.managedAccounts()
            try:
                conn.account = self._pick_account(conn.accounts)
            except IBKRError:
                conn.close()
                raise
            log.info("connected to IBKR %s:%d as client %d", self.host, self.port, client_id)
            return conn
        raise IBKRConnectionError(
            f"IBKR gateway at {self.host}:{self.port} refused client ids {self.client_id}.."
            f"{self.client_id + _CLIENT_ID_ATTEMPTS - 1} ({last_refusal}). Close other API "
            "sessions or configure a free client id."
        )

    async def _handshake(self, conn: _Connection) -> None:
        """ib_async's connect, bounded by connect_timeout and aborted if the id is refused."""
        from ib_async import StartupFetch, StartupFetchALL

        conn.rejected = asyncio.get_running_loop().create_future()
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
            {connecting, conn.rejected},
            timeout=self.connect_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if connecting in done:
            connecting.result()  # raises what the connect raised
            return
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        if conn.rejected.done():
            raise _ClientIdInUse(conn.rejected.result())
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

    def _check_may_trade(self, conn: _Connection) -> str:
        """The account to trade in, after the live-money consent checks."""
        account = self._require_account(conn)
        if _is_paper_account(account):
            return account
        if not self.live:
            raise IBKRPermissionError(
                f"The IBKR gateway is logged in to LIVE account {account}; orders are refused. "
                f"To trade real money set TRADING_LIVE=true and IBKR_ACCOUNT={account}, or log "
                "IB Gateway in to a paper account (DU...)."
            )
        if self.account != account:
            raise IBKRPermissionError(
                f"Live trading is on but IBKR_ACCOUNT is not set to the connected live account "
                f"{account}; orders are refused. Set IBKR_ACCOUNT={account} to confirm it."
            )
        return account

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
                raise IBKRConnectionError(
                    f"Lost the connection to the IBKR gateway at {self.host}:{self.port} during "
                    f"{what} ({exc}). Check that IB Gateway/TWS is still running; the next call "
                    "reconnects."
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
        found = _Qualified(contract, stocks[0].longName, float(stocks[0].minTick or 0.01))
        conn.contracts[key] = found
        return found

    def _historical_bars(self, conn: _Connection, contract: Contract, symbol: str,
                         duration: str) -> tuple[BarDataList, bool]:
        """Daily TRADES bars, after a pacing slot; delayed data only when allowed."""
        for _ in range(2):
            while (wait := _PACER.reserve()) > 0:
                log.info("IBKR pacing: %d historical requests in %g s; waiting %.0f s",
                         _PACER.max_requests, _PACER.window_s, wait)
                try:
                    conn.ib.sleep(min(wait, 5.0))  # keeps ib_async's loop serving the socket
                except ConnectionError as exc:
                    raise IBKRConnectionError(
                        f"Lost the connection to the IBKR gateway at {self.host}:{self.port} "
                        "while waiting for a historical data slot; the next call reconnects."
                    ) from exc
            try:
                bars = self._call(
                    conn,
                    "the daily bars request",
                    lambda ib: ib.reqHistoricalData(
                        contract,
                        endDateTime="",
                        durationStr=duration,
                        barSizeSetting="1 day",
                        whatToShow="TRADES",
                        useRTH=True,
                        formatDate=1,
                        timeout=self.request_timeout,
                    ),
                    symbol,
                )
            except IBKRPermissionError as exc:
                may_delay = self.allow_delayed_data and not conn.delayed_data
                if exc.code in _NO_SUBSCRIPTION and may_delay:
                    log.warning("no IBKR market data subscription for %s; using delayed data",
                                symbol)
                    conn.ib.reqMarketDataType(3)
                    conn.delayed_data = True
                    continue
                raise
            if not bars:
                raise IBKRError(
                    f"IBKR returned no daily bars for {symbol} within {self.request_timeout:g} s "
                    f"(duration {duration}). Check the symbol's market data in TWS and retry."
                )
            return bars, conn.delayed_data or bars.reqId in conn.delayed_req_ids
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ orders

    def _build_orders(self, conn: _Connection, request: OrderRequest, account: str,
                      tick: float) -> list[Order]:
        """ib_async orders for a request; a bracket is parent + take-profit + stop-loss."""
        from ib_async import LimitOrder, MarketOrder, StopOrder

        action, quantity, ref = request.action.value, float(request.quantity), request.order_ref
        limit = _round_to_tick(request.limit_price, tick) if request.limit_price else None
        if request.order_type is OrderType.MARKET:
            return [MarketOrder(action, quantity, orderRef=ref, account=account, tif="DAY")]
        if request.order_type is OrderType.LIMIT:
            assert limit is not None
            return [LimitOrder(action, quantity, limit, orderRef=ref, account=account, tif="DAY")]
        assert request.stop_loss is not None and request.take_profit is not None
        exit_action = "SELL" if request.action is Action.BUY else "BUY"
        parent_id = conn.ib.client.getReqId()
        # Only the last order of the group transmits: IBKR holds the others until it arrives,
        # so an interrupted bracket never leaves an entry without its exits.
        parent = (LimitOrder(action, quantity, limit) if limit is not None
                  else MarketOrder(action, quantity))
        parent.orderId, parent.orderRef, parent.account = parent_id, ref, account
        parent.tif, parent.transmit = "DAY", False
        take_profit = LimitOrder(
            exit_action, quantity, _round_to_tick(request.take_profit, tick),
            orderId=conn.ib.client.getReqId(), parentId=parent_id, transmit=False,
            orderRef=ref + _TAKE_PROFIT_SUFFIX, account=account, tif="GTC",
        )
        stop_loss = StopOrder(
            exit_action, quantity, _round_to_tick(request.stop_loss, tick),
            orderId=conn.ib.client.getReqId(), parentId=parent_id, transmit=True,
            orderRef=ref + _STOP_LOSS_SUFFIX, account=account, tif="GTC",
        )
        return [parent, take_profit, stop_loss]

    def _await_acknowledgement(self, conn: _Connection, trades: list[Trade]) -> bool:
        """Wait for the gateway to acknowledge every order, then briefly for fills/commissions.

        False when nothing came back within order_timeout or the connection dropped.
        """
        ib = conn.ib
        deadline = time.monotonic() + self.order_timeout

        def settled() -> bool:
            if any(t.orderStatus.status in _UNACKNOWLEDGED for t in trades):
                return False
            parent = trades[0]
            if parent.order.orderType == "MKT" and not parent.isDone():
                return False
            return all(f.commissionReport.execId for t in trades for f in t.fills)

        acknowledged_at: float | None = None
        while not settled():
            if not ib.isConnected():
                return False
            now = time.monotonic()
            if acknowledged_at is None and not any(
                t.orderStatus.status in _UNACKNOWLEDGED for t in trades
            ):
                acknowledged_at = now
            if acknowledged_at is not None and now - acknowledged_at >= _FILL_GRACE_S:
                return True  # acknowledged and working; fills are reported later
            if acknowledged_at is None and now >= deadline:
                return False
            # Poll rather than ib.waitOnUpdate(): that one subscribes a loop step too late when
            # the answer is already in the socket buffer, and then sleeps its whole timeout.
            ib.sleep(_POLL_S)
        return True

    def _reconcile(self, request: OrderRequest, reason: str) -> BrokerOrder:
        """After a timeout or a dropped connection: reconnect and ask; never send again."""
        log.warning(
            "IBKR did not confirm order %s (%s); reconnecting to check whether it arrived "
            "(it will not be sent again)", request.order_ref, reason,
        )
        self._drop_connection()
        found = self.find_order(request.order_ref)
        if found is not None:
            return found
        raise IBKRError(
            f"IBKR did not confirm order {request.order_ref} ({request.action.value} "
            f"{request.quantity} {request.symbol}: {reason}) and, after reconnecting, has no "
            "record of it. "
            "It was NOT sent again: check Orders/Trades in TWS or IB Gateway before retrying, "
            "because it may still arrive."
        )

    def _broker_order(self, order_ref: str, trade: Trade | None, fills: list[Fill],
                      children: list[Trade]) -> BrokerOrder:
        """One BrokerOrder from the parent trade (if known), its fills and bracket children."""
        shares = sum(f.execution.shares for f in fills)
        avg_price = (sum(f.execution.shares * f.execution.price for f in fills) / shares
                     if shares else None)
        commission = sum(f.commissionReport.commission for f in fills if f.commissionReport.execId)
        child_info = [
            {
                "order_ref": child.order.orderRef,
                "order_type": child.order.orderType,
                "status": child.orderStatus.status,
                "price": _price(child.order.lmtPrice if child.order.orderType == "LMT"
                                else child.order.auxPrice),
                "broker_order_id": str(child.order.permId or ""),
            }
            for child in children
        ]
        if trade is None:  # only executions survive, e.g. an order of an earlier day's session
            execution = fills[0].execution
            return BrokerOrder(
                order_ref=order_ref,
                symbol=_platform_symbol(fills[0].contract.symbol),
                action="BUY" if execution.side == "BOT" else "SELL",
                quantity=shares,
                order_type="",
                status="Filled",
                broker_order_id=str(execution.permId),
                filled=shares,
                avg_fill_price=avg_price,
                commission=commission,
                broker="ibkr",
                raw={"account": execution.acctNumber, "children": child_info,
                     "exec_ids": [f.execution.execId for f in fills]},
            )
        order, status = trade.order, trade.orderStatus
        order_id = str(order.permId) if order.permId else f"{order.clientId}:{order.orderId}"
        return BrokerOrder(
            order_ref=order_ref,
            symbol=_platform_symbol(trade.contract.symbol),
            action=order.action,
            quantity=float(order.totalQuantity),
            order_type=OrderType.BRACKET.value if children else order.orderType,
            status=status.status,
            broker_order_id=order_id,
            filled=shares or float(status.filled),
            avg_fill_price=avg_price if shares else _price(status.avgFillPrice or None),
            commission=commission,
            limit_price=_price(order.lmtPrice) if order.orderType == "LMT" else None,
            broker="ibkr",
            raw={
                "account": order.account,
                "order_id": order.orderId,
                "client_id": order.clientId,
                "perm_id": order.permId,
                "ib_order_type": order.orderType,
                "children": child_info,
                "exec_ids": [f.execution.execId for f in fills],
                "log": [entry.message for entry in trade.log if entry.message][-5:],
            },
        )
