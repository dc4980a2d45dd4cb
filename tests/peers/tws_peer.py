"""A loopback IB Gateway for tests: the TWS API socket protocol, answered as server version 176.

Written from the wire facts in /work/shared/TWS_PROTOCOL.md (what ib_async 2.1 and ib_insync
0.9.86 send and expect). It keeps its own orders, executions, positions and cash, so a client
that reconnects sees what it placed before, and its switches script the failures the platform
must survive (pacing, missing subscriptions, a crash between placement and the ledger write).

    peer = TwsPeer().start()          # background thread, free port on 127.0.0.1
    IBKRResource(port=peer.port, ...)
    peer.stop()
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

SERVER_VERSION = 176
# IB's "no value" for a double, as IBKR's Java server writes Double.MAX_VALUE; ib_async 2.x
# reads it as its UNSET_DOUBLE.
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
PAPER_ACCOUNT = "DU123456"
DONE_STATUSES = frozenset({"Filled", "Cancelled"})
EXCHANGE_TZ = ZoneInfo("America/New_York")

FieldValue = str | int | float | bool | None


def _encode(value: FieldValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _float(text: str) -> float | None:
    """A price field as sent by the client: empty means unset."""
    return float(text) if text not in ("", "1.7976931348623157e+308") else None


# ---------------------------------------------------------------- deterministic market data


@dataclass(frozen=True)
class Listing:
    """A stock the peer knows; anything else is answered with error 200."""

    symbol: str
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    long_name: str = ""

    @property
    def con_id(self) -> int:
        return 100_000 + zlib.crc32(self.symbol.encode()) % 900_000


DEFAULT_LISTINGS = (
    Listing("AAPL", "NASDAQ", long_name="APPLE INC"),
    Listing("MSFT", "NASDAQ", long_name="MICROSOFT CORP"),
    Listing("TSLA", "NASDAQ", long_name="TESLA INC"),
    Listing("NVDA", "NASDAQ", long_name="NVIDIA CORP"),
    Listing("SPY", "ARCA", long_name="SPDR S&P 500 ETF TRUST"),
    Listing("BRK B", "NYSE", long_name="BERKSHIRE HATHAWAY INC-CL B"),
)

# IB duration units in calendar days ("S" asks for less than a day: one bar).
_DURATION_DAYS = {"S": 0, "D": 1, "W": 7, "M": 30, "Y": 365}


def duration_days(duration: str) -> int:
    """Calendar days covered by an IB duration string such as "2 Y" or "30 D"."""
    count, unit = duration.split()
    return max(int(count) * _DURATION_DAYS[unit[0].upper()], 1)


@lru_cache(maxsize=1)
def _sessions() -> frozenset[date]:
    """NYSE sessions, as IBKR dates its daily bars: no weekends, no holidays.

    Read from exchange_calendars here rather than through trading_assets.core.calendar: the
    peer stands for IBKR, so the dates it serves must not come from the code the tests check."""
    import exchange_calendars as xcals

    calendar = xcals.get_calendar("XNYS", start="2010-01-01", end=f"{date.today().year + 2}-12-31")
    return frozenset(session.date() for session in calendar.sessions)


def exchange_today(now: datetime) -> date:
    """The date in New York at `now`: IBKR dates daily bars by the exchange's day, so at
    00:30 UTC on a Monday the newest bar is still Friday's."""
    return now.astimezone(EXCHANGE_TZ).date()


def last_trading_day(on: date) -> date:
    """The newest session on or before `on` (the exchange calendar's, holidays skipped)."""
    sessions = _sessions()
    while on not in sessions:
        on -= timedelta(days=1)
    return on


def daily_bar(symbol: str, day: date) -> tuple[float, float, float, float, float]:
    """(open, high, low, close, volume) for one symbol and day: a pure function of both."""
    seed = zlib.crc32(symbol.encode())
    base = 40.0 + seed % 260
    phase = (seed % 628) / 100.0

    def close_on(t: int) -> float:
        wave = 0.12 * math.sin(t / 29 + phase) + 0.05 * math.sin(t / 7.3 + 2 * phase)
        return base * (1 + wave + 0.02 * math.sin(t / 2.1))

    t = day.toordinal()
    close = round(close_on(t), 2)
    open_ = round(close_on(t - 1) * (1 + 0.003 * math.sin(t * 1.7)), 2)
    high = round(max(open_, close) * (1.006 + 0.004 * abs(math.sin(t * 0.9))), 2)
    low = round(min(open_, close) * (0.994 - 0.004 * abs(math.cos(t * 1.3))), 2)
    volume = float(1_000_000 + (seed % 1000) * 1000 + int(200_000 * abs(math.sin(t / 3))))
    return open_, high, low, close, volume


def daily_bars(symbol: str, end: date, calendar_days: int) -> list[tuple[date, tuple]]:
    """Session bars in the `calendar_days` ending at `end`, oldest first."""
    days = (end - timedelta(days=offset) for offset in range(calendar_days))
    sessions = _sessions()
    return [(d, daily_bar(symbol, d)) for d in sorted(days) if d in sessions]


def last_price(symbol: str, as_of: date | None = None) -> float:
    """Fill price: the close of the latest bar (today's, or `as_of`'s)."""
    return daily_bar(symbol, last_trading_day(as_of or exchange_today(datetime.now(UTC))))[3]


# ---------------------------------------------------------------- peer state


@dataclass
class PeerOrder:
    client_id: int
    order_id: int
    perm_id: int
    listing: Listing
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    parent_id: int
    transmit: bool
    oca_group: str = ""
    good_till_date: str = ""
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES


@dataclass
class PeerExecution:
    exec_id: str
    order: PeerOrder
    side: str
    shares: float
    price: float
    time: datetime
    commission: float
    realized_pnl: float


@dataclass
class Holding:
    listing: Listing
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0


@dataclass(eq=False)
class _Client:
    """One socket connection."""

    writer: asyncio.StreamWriter
    client_id: int | None = None
    market_data_type: int = 1
    closed: bool = False

    def send(self, *fields: FieldValue) -> None:
        if self.closed:
            return
        payload = "".join(f"{_encode(value)}\0" for value in fields).encode()
        self.writer.write(struct.pack(">I", len(payload)) + payload)

    def error(self, req_id: int, code: int, message: str) -> None:
        self.send(4, 2, req_id, code, message, "")

    def close(self) -> None:
        self.closed = True
        self.writer.close()


Handler = Callable[[_Client, list[str]], None]


class TwsPeer:
    """A scriptable TWS/IB Gateway on loopback, run in a background thread."""

    def __init__(
        self,
        accounts: Iterable[str] = (PAPER_ACCOUNT,),
        cash: float = 100_000.0,
        listings: Iterable[Listing] = DEFAULT_LISTINGS,
        host: str = "127.0.0.1",
        as_of: date | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.host = host
        self.as_of = as_of  # the peer's "today" for bars and fills; None = the clock's date
        self.clock = clock  # "now" when as_of is None, read in New York as the exchange does
        self.port = 0
        self.accounts = list(accounts)
        self.cash = cash
        self.listings = {listing.symbol: listing for listing in listings}

        # Switches tests flip to script the gateway's behaviour.
        self.historical_pacing_violation = False  # reqHistoricalData -> error 162
        self.historical_needs_subscription = False  # -> error 354 unless delayed data (type 3/4)
        self.drop_on_place_order = False  # record the order, then close the socket unanswered
        self.ignore_place_order = False  # record the order, never answer it
        self.swallow_place_order = False  # count the message, then forget it: no record, no answer
        self.drop_on_historical_data = 0  # drop the socket on this many bar requests, unanswered
        self.quotes: dict[str, float] = {}  # snapshot price per symbol (default: last close)
        self.quote_error: int | None = None  # answer reqMktData with this error code instead
        # The handshake: the API server version announced (one above the client's range is a
        # gateway that wants a newer protocol; the peer still answers in text, so a client that
        # does not check carries on), or close the socket without announcing one at all.
        self.server_version = SERVER_VERSION
        self.refuse_handshake = False
        # A gateway without prices (just started, or no data for them): the portfolio's prices,
        # positions' average cost and contracts' minimum tick are sent as IB's unset marker.
        self.unset_prices = False

        # What happened, for assertions.
        self.place_order_count = 0
        self.historical_request_count = 0
        self.orders: dict[tuple[int, int], PeerOrder] = {}
        self.executions: list[PeerExecution] = []
        self.holdings: dict[str, Holding] = {}
        self.unhandled: list[list[str]] = []
        # The wire: every placeOrder message as the client sent it, decoded (see wire_orders).
        self.wire: list[dict[str, str]] = []
        self.max_connections = 0  # most client sockets open at the same time
        # Every handshake: the version range the client offered, and what the peer answered
        # ("" when it refused).
        self.handshakes: list[dict[str, str]] = []

        self._next_order_id = 1
        self._next_perm_id = 1_000_001
        self._lock = threading.RLock()
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._handlers: dict[int, Handler] = {
            1: self._market_data,
            3: self._place_order,
            4: self._cancel_order,
            5: self._open_orders,
            6: self._account_updates,
            7: self._executions,
            8: self._req_ids,
            9: self._contract_details,
            16: self._all_open_orders,
            17: self._managed_accounts,
            20: self._historical_data,
            49: self._current_time,
            59: self._market_data_type,
            61: self._positions,
            71: self._start_api,
            76: self._account_updates_multi,
            99: self._completed_orders,
            # cancellations and auto-binding need no answer
            15: self._ignore,
            25: self._ignore,
            64: self._ignore,
            77: self._ignore,
        }

    # ------------------------------------------------------------ lifecycle

    def start(self) -> TwsPeer:
        """Listen on a free loopback port in a background thread; `port` is set on return."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"tws-peer-{id(self):x}", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("TWS peer did not start within 5 s")
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> TwsPeer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every client socket, as a gateway restart would."""
        self._on_loop(self._close_clients)

    def notify(self, code: int, message: str) -> None:
        """Send every client a notice not tied to a request (1100 lost, 1102 restored, ...)."""
        self._on_loop(lambda: [client.error(-1, code, message) for client in self._clients])

    def _on_loop(self, action: Callable[[], object]) -> None:
        """Run `action` on the peer's thread and wait for it."""
        assert self._loop is not None

        async def run() -> None:
            with self._lock:
                action()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    # ------------------------------------------------------------ test helpers

    def add_listing(self, listing: Listing) -> None:
        with self._lock:
            self.listings[listing.symbol] = listing

    def seed_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        with self._lock:
            holding = self.holdings.setdefault(symbol, Holding(self.listings[symbol]))
            holding.quantity, holding.avg_cost = quantity, avg_cost
            self.cash -= quantity * avg_cost

    def expire_day_orders(self) -> list[PeerOrder]:
        """The end of the session: unfilled DAY entries are cancelled, as IBKR does, and with
        them the exits of their brackets; every connected client hears of it."""
        expired = []
        with self._lock:
            for order in self.orders.values():
                if order.done or order.tif != "DAY" or order.filled:
                    continue
                order.status = "Cancelled"
                expired.append(order)
                for child in self.orders.values():
                    if child.parent_id == order.order_id and child.client_id == order.client_id:
                        child.status = "Cancelled"
                        expired.append(child)
        self._on_loop(lambda: [self._send_status(client, order) for client in self._clients
                               for order in expired if client.client_id == order.client_id])
        return expired

    def trade_at(self, symbol: str, price: float) -> list[PeerOrder]:
        """The market trades `symbol` at `price`: resting limits and stops it reaches fill (a
        bracket's exits start working once their entry filled; one exit cancels the other)."""
        touched: list[PeerOrder] = []
        fills: list[PeerExecution] = []
        with self._lock:
            for order in sorted(self.orders.values(), key=lambda o: o.order_id):
                if order.done or order.listing.symbol != symbol or order.status != "Submitted":
                    continue
                buy = order.action == "BUY"
                limit, stop = order.lmt_price, order.aux_price
                reached = (order.order_type == "LMT" and limit is not None
                           and (price <= limit if buy else price >= limit)) or (
                    order.order_type == "STP" and stop is not None
                    and (price >= stop if buy else price <= stop))
                if not reached:
                    continue
                fills.append(self._fill(order, price))
                touched.append(order)
                for other in self.orders.values():
                    if other is order or other.done:
                        continue
                    if other.parent_id == order.order_id and other.client_id == order.client_id:
                        other.status = "Submitted"  # the entry filled: its exits work now
                        touched.append(other)
                    elif order.oca_group and other.oca_group == order.oca_group:
                        other.status = "Cancelled"
                        touched.append(other)
        self._on_loop(lambda: [
            (self._send_order(client, order), None) for client in self._clients
            for order in touched if client.client_id == order.client_id] + [
            self._send_execution(client, -1, execution) for client in self._clients
            for execution in fills if client.client_id == execution.order.client_id])
        return touched

    def wire_orders(self, order_ref_prefix: str = "") -> list[dict[str, str]]:
        """placeOrder messages on the wire whose orderRef starts with the prefix."""
        return [w for w in self.wire if w["orderRef"].startswith(order_ref_prefix)]

    def orders_with_ref(self, order_ref: str) -> list[PeerOrder]:
        with self._lock:
            return [order for order in self.orders.values() if order.order_ref == order_ref]

    def today(self) -> date:
        return self.as_of or exchange_today(self.clock())

    @property
    def connection_count(self) -> int:
        return len(self._clients)

    # ------------------------------------------------------------ socket plumbing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._clients.add(client)
        self.max_connections = max(self.max_connections, len(self._clients))
        try:
            if await reader.readexactly(4) != b"API\0":
                return
            offered = await self._read_message(reader)  # "v157..178"
            if self.refuse_handshake:
                self.handshakes.append({"offered": offered[0], "server_version": "",
                                        "connection_time": ""})
                return  # closed without a word, as a gateway that speaks none of that range
            now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
            self.handshakes.append({"offered": offered[0],
                                    "server_version": str(self.server_version),
                                    "connection_time": now})
            client.send(self.server_version, now)
            while not client.closed:
                fields = await self._read_message(reader)
                handler = self._handlers.get(int(fields[0]))
                if handler is None:
                    self.unhandled.append(fields)
                    continue
                with self._lock:
                    handler(client, fields)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
            client.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        fields = (await reader.readexactly(size)).decode().split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        return fields

    def _close_clients(self) -> None:
        for client in list(self._clients):
            client.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        self._close_clients()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    # ------------------------------------------------------------ handshake and ids

    def _start_api(self, client: _Client, fields: list[str]) -> None:
        client_id = int(fields[2])
        if any(other.client_id == client_id for other in self._clients if other is not client):
            client.error(-1, 326, "Unable to connect as the client id is already in use. "
                         "Retry with a unique client id.")
            client.close()
            return
        client.client_id = client_id
        client.send(15, 1, ",".join(self.accounts))
        client.send(9, 1, self._next_order_id)

    def _req_ids(self, client: _Client, _fields: list[str]) -> None:
        client.send(9, 1, self._next_order_id)

    def _managed_accounts(self, client: _Client, _fields: list[str]) -> None:
        client.send(15, 1, ",".join(self.accounts))

    def _current_time(self, client: _Client, _fields: list[str]) -> None:
        client.send(49, 1, int(time.time()))

    def _market_data_type(self, client: _Client, fields: list[str]) -> None:
        client.market_data_type = int(fields[2])

    def _ignore(self, _client: _Client, _fields: list[str]) -> None:
        pass

    # ------------------------------------------------------------ contracts and bars

    def _lookup(self, fields: list[str], start: int) -> Listing | None:
        """Resolve a 12-field request contract block starting at `start`."""
        con_id, symbol, sec_type = fields[start], fields[start + 1], fields[start + 2]
        primary, currency = fields[start + 8], fields[start + 9]
        if con_id not in ("", "0"):
            listing = next((x for x in self.listings.values() if x.con_id == int(con_id)), None)
        else:
            listing = self.listings.get(symbol.upper())
        if listing is None or sec_type not in ("", "STK"):
            return None
        if currency and currency != listing.currency:
            return None
        if primary and primary != listing.primary_exchange:
            return None
        return listing

    def _contract_details(self, client: _Client, fields: list[str]) -> None:
        req_id = int(fields[2])
        listing = self._lookup(fields, 3)
        if listing is None:
            client.error(req_id, 200, "No security definition has been found for the request")
            return
        exchange = fields[10] or "SMART"
        client.send(
            10, req_id, listing.symbol, "STK", "", 0.0, "", exchange, listing.currency,
            listing.symbol, "NMS", "NMS", listing.con_id,
            UNSET_DOUBLE_TEXT if self.unset_prices else 0.01,
            "", "LMT,MKT,STP,STPLMT,TRAIL", "SMART,NASDAQ,NYSE,ARCA,ISLAND", 1, 0,
            listing.long_name or listing.symbol, listing.primary_exchange, "", "", "", "",
            "US/Eastern", "", "", "", "", 0,  # ... evRule, evMultiplier, numSecIds
            1, "", "", "26", "", "COMMON",  # aggGroup ... stockType
            0.0001, 0.0001, 100.0,  # minSize, sizeIncrement, suggestedSizeIncrement
        )
        client.send(52, 1, req_id)

    def _historical_data(self, client: _Client, fields: list[str]) -> None:
        self.historical_request_count += 1
        req_id = int(fields[1])
        listing = self._lookup(fields, 2)
        end_text, bar_size, duration = fields[15], fields[16], fields[17]
        if listing is None:
            client.error(req_id, 200, "No security definition has been found for the request")
            return
        if self.drop_on_historical_data > 0:  # a gateway restart in the middle of a download
            self.drop_on_historical_data -= 1
            client.close()
            return
        if self.historical_pacing_violation:
            client.error(req_id, 162, "Historical Market Data Service error message:"
                         "Historical data request pacing violation")
            return
        if self.historical_needs_subscription:
            if client.market_data_type not in (3, 4):
                client.error(req_id, 354, "Requested market data is not subscribed. "
                             "Delayed market data is available.")
                return
            client.error(req_id, 10167, "Requested market data is not subscribed. "
                         "Displaying delayed market data.")
        if bar_size != "1 day":
            client.error(req_id, 321, f"Error validating request: the test peer serves only "
                         f"'1 day' bars, not {bar_size!r}")
            return
        end = last_trading_day(
            datetime.strptime(end_text[:8], "%Y%m%d").date() if end_text[:8].isdigit()
            else self.today()
        )
        bars = daily_bars(listing.symbol, end, duration_days(duration))
        flat: list[FieldValue] = []
        for day, (open_, high, low, close, volume) in bars:
            wap = round((high + low + close) / 3, 4)
            flat += [f"{day:%Y%m%d}", open_, high, low, close, volume, wap, int(volume // 100)]
        start = bars[0][0] if bars else end
        client.send(17, req_id, f"{start:%Y%m%d} 00:00:00", f"{end:%Y%m%d} 23:59:59",
                    len(bars), *flat)

    # ------------------------------------------------------------ orders

    def _place_order(self, client: _Client, fields: list[str]) -> None:
        self.place_order_count += 1
        assert client.client_id is not None
        # Field positions of a non-combo order (ib_async client.placeOrder).
        self.wire.append({name: fields[i] if i < len(fields) else "" for name, i in (
            ("orderId", 1), ("symbol", 3), ("action", 16), ("totalQuantity", 17),
            ("orderType", 18), ("lmtPrice", 19), ("auxPrice", 20), ("tif", 21),
            ("ocaGroup", 22), ("account", 23), ("orderRef", 26), ("transmit", 27),
            ("parentId", 28), ("goodTillDate", 38))})
        if self.swallow_place_order:
            return
        order_id = int(fields[1])
        listing = self._lookup(fields, 2)
        if listing is None:
            client.error(order_id, 200, "No security definition has been found for the request")
            return
        key = (client.client_id, order_id)
        existing = self.orders.get(key)
        order = PeerOrder(
            client_id=client.client_id,
            order_id=order_id,
            perm_id=existing.perm_id if existing else self._new_perm_id(),
            listing=listing,
            action=fields[16],
            quantity=float(fields[17]),
            order_type=fields[18],
            lmt_price=_float(fields[19]),
            aux_price=_float(fields[20]),
            tif=fields[21],
            account=fields[23] or self.accounts[0],
            order_ref=fields[26],
            parent_id=int(fields[28] or 0),
            transmit=fields[27] != "0",
            oca_group=fields[22],
            good_till_date=fields[38] if len(fields) > 38 else "",
        )
        self.orders[key] = order
        self._next_order_id = max(self._next_order_id, order_id + 1)
        touched, fills = self._accept(order)
        if self.drop_on_place_order:
            client.close()  # the broker has the order; the client never hears of it
            return
        if self.ignore_place_order:
            return
        for each in touched:
            self._send_order(client, each)
        for execution in fills:
            self._send_execution(client, -1, execution)

    def _accept(self, order: PeerOrder) -> tuple[list[PeerOrder], list[PeerExecution]]:
        """Apply transmit rules: a group waits, untransmitted, until its last order arrives."""
        if not order.transmit:
            order.status = "PreSubmitted"
            return [order], []
        parent = self.orders.get((order.client_id, order.parent_id)) if order.parent_id else order
        assert parent is not None
        children = [o for o in self.orders.values()
                    if o.client_id == parent.client_id and o.parent_id == parent.order_id]
        fills = [] if parent.done else self._work(parent)
        for child in children:
            child.status = "Submitted" if parent.status == "Filled" else "PreSubmitted"
        return [parent, *children], fills

    def _work(self, order: PeerOrder) -> list[PeerExecution]:
        """Fill a marketable order at the latest close; leave anything else working."""
        price = last_price(order.listing.symbol, self.today())
        limit = order.lmt_price
        marketable = order.order_type == "MKT" or (
            order.order_type == "LMT" and limit is not None
            and (limit >= price if order.action == "BUY" else limit <= price)
        )
        if not marketable:
            order.status = "PreSubmitted" if order.order_type == "STP" else "Submitted"
            return []
        return [self._fill(order, price)]

    def _fill(self, order: PeerOrder, price: float) -> PeerExecution:
        shares = order.quantity - order.filled
        signed = shares if order.action == "BUY" else -shares
        commission = max(1.0, round(0.005 * shares, 2))
        holding = self.holdings.setdefault(order.listing.symbol, Holding(order.listing))
        realized = 0.0
        if holding.quantity == 0 or (holding.quantity > 0) == (signed > 0):
            new_quantity = holding.quantity + signed
            holding.avg_cost = (
                holding.avg_cost * abs(holding.quantity) + price * shares
            ) / abs(new_quantity)
            holding.quantity = new_quantity
        else:
            closing = min(abs(signed), abs(holding.quantity))
            direction = 1 if holding.quantity > 0 else -1
            realized = (price - holding.avg_cost) * closing * direction - commission
            holding.quantity += signed
            if abs(signed) > closing:  # flipped through zero
                holding.avg_cost = price
        holding.realized_pnl += realized
        self.cash -= signed * price + commission
        order.filled, order.avg_fill_price, order.status = order.quantity, price, "Filled"
        execution = PeerExecution(
            exec_id=f"0000e0d5.{order.perm_id:08x}.{len(self.executions) + 1:02d}.01",
            order=order,
            side="BOT" if order.action == "BUY" else "SLD",
            shares=shares,
            price=price,
            time=datetime.now(UTC),
            commission=commission,
            realized_pnl=realized,
        )
        self.executions.append(execution)
        return execution

    def _cancel_order(self, client: _Client, fields: list[str]) -> None:
        order_id = int(fields[2])
        order = self.orders.get((client.client_id or 0, order_id))
        if order is None or order.done:
            client.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled "
                         "is not found.")
            return
        order.status = "Cancelled"
        self._send_status(client, order)
        client.error(order_id, 202, "Order Canceled - reason:")

    def _market_data(self, client: _Client, fields: list[str]) -> None:
        """A snapshot quote (reqMktData with snapshot on): bid, ask and last, then the end."""
        req_id = int(fields[2])
        listing = self._lookup(fields, 3)
        if listing is None:
            client.error(req_id, 200, "No security definition has been found for the request")
            return
        if self.quote_error is not None:
            client.error(req_id, self.quote_error, "Requested market data is not subscribed.")
            return
        price = self.quotes.get(listing.symbol, last_price(listing.symbol, self.today()))
        for tick_type, value in ((1, price - 0.01), (2, price + 0.01), (4, price)):
            client.send(1, 6, req_id, tick_type, round(value, 2), 100, 0)
        client.send(57, 1, req_id)

    def _new_perm_id(self) -> int:
        self._next_perm_id += 1
        return self._next_perm_id

    def _open_orders(self, client: _Client, _fields: list[str]) -> None:
        self._send_open_orders(client, only_client=client.client_id)

    def _all_open_orders(self, client: _Client, _fields: list[str]) -> None:
        self._send_open_orders(client, only_client=None)

    def _send_open_orders(self, client: _Client, only_client: int | None) -> None:
        for order in self.orders.values():
            if not order.done and only_client in (None, order.client_id):
                self._send_order(client, order)
        client.send(53, 1)

    def _completed_orders(self, client: _Client, _fields: list[str]) -> None:
        for order in self.orders.values():
            if order.done:
                client.send(*self._completed_order_fields(order))
        client.send(102)

    def _executions(self, client: _Client, fields: list[str]) -> None:
        req_id, client_filter, symbol_filter = int(fields[2]), int(fields[3] or 0), fields[6]
        for execution in self.executions:
            if client_filter and execution.order.client_id != client_filter:
                continue
            if symbol_filter and execution.order.listing.symbol != symbol_filter:
                continue
            self._send_execution(client, req_id, execution)
        client.send(55, 1, req_id)

    # ------------------------------------------------------------ portfolio and account

    def _positions(self, client: _Client, _fields: list[str]) -> None:
        for holding in self.holdings.values():
            if holding.quantity:
                listing = holding.listing
                client.send(
                    61, 3, self.accounts[0], listing.con_id, listing.symbol, "STK", "", 0.0, "",
                    "", listing.primary_exchange, listing.currency, listing.symbol, "NMS",
                    holding.quantity, UNSET_DOUBLE_TEXT if self.unset_prices else holding.avg_cost,
                )
        client.send(62, 1)

    def _account_values(self) -> list[tuple[str, str, str]]:
        market_value = unrealized = realized = 0.0
        for holding in self.holdings.values():
            price = last_price(holding.listing.symbol, self.today())
            market_value += holding.quantity * price
            unrealized += (price - holding.avg_cost) * holding.quantity
            realized += holding.realized_pnl
        net_liquidation = self.cash + market_value
        values = [
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", f"{net_liquidation:.2f}", "USD"),
            ("TotalCashValue", f"{self.cash:.2f}", "USD"),
            ("BuyingPower", f"{max(net_liquidation, 0.0) * 4:.2f}", "USD"),
            ("GrossPositionValue", f"{abs(market_value):.2f}", "USD"),
        ]
        for currency in ("USD", "BASE"):  # TWS sends ledger values per currency and in BASE
            values += [
                ("RealizedPnL", f"{realized:.2f}", currency),
                ("UnrealizedPnL", f"{unrealized:.2f}", currency),
            ]
        return values

    def _account_updates(self, client: _Client, fields: list[str]) -> None:
        subscribe, account = fields[2] == "1", fields[3] or self.accounts[0]
        if not subscribe:
            return
        client.send(6, 2, "AccountCode", account, "", account)
        for key, value, currency in self._account_values():
            client.send(6, 2, key, value, currency, account)
        for holding in self.holdings.values():
            listing, price = holding.listing, last_price(holding.listing.symbol, self.today())
            prices: list[FieldValue] = [
                price, round(holding.quantity * price, 2), holding.avg_cost,
                round((price - holding.avg_cost) * holding.quantity, 2), holding.realized_pnl]
            client.send(
                7, 8, listing.con_id, listing.symbol, "STK", "", 0.0, "", "",
                listing.primary_exchange, listing.currency, listing.symbol, "NMS",
                holding.quantity,
                *([UNSET_DOUBLE_TEXT] * len(prices) if self.unset_prices else prices),
                account,
            )
        client.send(8, 1, datetime.now(UTC).strftime("%H:%M"))
        client.send(54, 1, account)

    def _account_updates_multi(self, client: _Client, fields: list[str]) -> None:
        req_id, account = int(fields[2]), fields[3] or self.accounts[0]
        for key, value, currency in self._account_values():
            client.send(73, 1, req_id, account, "", key, value, currency)
        client.send(74, 1, req_id)

    # ------------------------------------------------------------ outgoing order messages

    def _send_order(self, client: _Client, order: PeerOrder) -> None:
        client.send(*self._open_order_fields(order))
        self._send_status(client, order)

    @staticmethod
    def _send_status(client: _Client, order: PeerOrder) -> None:
        client.send(
            3, order.order_id, order.status, order.filled, order.quantity - order.filled,
            order.avg_fill_price, order.perm_id, order.parent_id, order.avg_fill_price,
            order.client_id, "", 0.0,
        )

    def _send_execution(self, client: _Client, req_id: int, execution: PeerExecution) -> None:
        order, listing = execution.order, execution.order.listing
        client.send(
            11, req_id, order.order_id,
            listing.con_id, listing.symbol, "STK", "", 0.0, "", "", listing.primary_exchange,
            listing.currency, listing.symbol, "NMS",
            execution.exec_id, execution.time.strftime("%Y%m%d %H:%M:%S UTC"), order.account,
            listing.primary_exchange, execution.side, execution.shares, execution.price,
            order.perm_id, order.client_id, 0, execution.shares, execution.price,
            order.order_ref, "", "", "", 1,
        )
        client.send(59, 1, execution.exec_id, execution.commission, "USD",
                    execution.realized_pnl, "", "")

    @staticmethod
    def _contract_fields(order: PeerOrder) -> list[FieldValue]:
        """The 11-field contract block of openOrder / completedOrder (no primaryExchange)."""
        listing = order.listing
        return [listing.con_id, listing.symbol, "STK", "", 0.0, "", "", "SMART",
                listing.currency, listing.symbol, "NMS"]

    def _open_order_fields(self, order: PeerOrder) -> list[FieldValue]:
        """openOrder at server version 176: 128 fields, in decoder.openOrder's order."""
        return [
            5, order.order_id, *self._contract_fields(order),
            order.action, order.quantity, order.order_type, order.lmt_price, order.aux_price,
            order.tif, order.oca_group, order.account, "O", 0, order.order_ref, order.client_id,
            order.perm_id, 0, 0, 0, "", "", "", "", "",  # ... goodAfterTime, (shares), faGroup..
            "",  # faProfile: still sent below server version 177
            "", "", "", "", "", 0, "", -1, 0, "", "", "", "", "",  # modelCode .. stockRangeUpper
            0, 0, 0, 0, "", 0, 0, 0, "", order.parent_id, 0, "", "", "", "",  # .. dnAuxPrice
            0, "", "", "", "", "", "",  # continuousUpdate .. comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo routing params
            "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
            "",  # hedgeType
            0, "", "", 0, 0,  # optOutSmartRouting, clearing account/intent, notHeld, no DNC
            "",  # algoStrategy
            0, 0, order.status, "", "", "", "", "", "", "", "", "",  # solicited .. margins
            "", "", "", "", "", 0, 0,  # commission .. warningText, randomizeSize/Price
            0,  # conditions
            "", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, 0, 0,  # adjusted .. priceMgmt
            "", "", 0,  # duration, postToAts, autoCancelParent
            "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
        ]

    def _completed_order_fields(self, order: PeerOrder) -> list[FieldValue]:
        """completedOrder at server version 176: 97 fields, in decoder.completedOrder's order."""
        finished = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        return [
            101, *self._contract_fields(order),
            order.action, order.quantity, order.order_type, order.lmt_price, order.aux_price,
            order.tif, "", order.account, "O", 0, order.order_ref, order.perm_id,
            0, 0, 0, "", "", "", "",  # outsideRth .. faPercentage
            "",  # faProfile
            "", "", "", "", "", 0, "", -1, "", "", "", "", "", 0, 0, 0, "", 0, 0, "", 0, "", "",
            0, "", "", "", "",  # continuousUpdate .. comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo routing params
            "", "", "",  # scale sizes and increment
            "",  # hedgeType
            "", "", 0, 0,  # clearingAccount, clearingIntent, notHeld, no DNC
            "",  # algoStrategy
            0, order.status, 0, 0,  # solicited, status, randomizeSize, randomizePrice
            0,  # conditions
            "", "", "", 0, 0, "", order.filled, 0, 0, "", 0, 0, 0, finished, order.status,
            "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
        ]
