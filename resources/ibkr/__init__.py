"""Interactive Brokers through ib_async: daily bars, contracts, orders, positions and account.

Talks to IB Gateway or TWS over the TWS API socket. ib_async is imported inside the methods
(loading the Dagster definitions must stay fast), and one connection is kept per process and
thread: an `IB` object belongs to the event loop of the thread that made it, and TWS accepts one
session per client id. Nothing here ever substitutes simulated data for an IBKR failure; every
failure is an `IBKRError` whose message says what to do.

The package keeps one room per responsibility: errors.py (what callers catch), pacing.py
(historical-data limits), session.py (connection, account, requests, contracts), versions.py
(the API server version agreed at connect), values.py (every number ib_async hands back),
market_data.py (daily bars), orders.py (checked, placed once, reconciled), account.py
(positions, cash) and resource.py (the ConfigurableResource that combines them).
"""

from __future__ import annotations

from resources.ibkr.errors import (
    IBKRConnectionError,
    IBKRConnectionLost,
    IBKRError,
    IBKRNoSecurityError,
    IBKRPacingError,
    IBKRPermissionError,
    IBKRVersionError,
)
from resources.ibkr.market_data import duration_for
from resources.ibkr.pacing import HistoricalPacer, reset_pacing
from resources.ibkr.resource import IBKRResource
from resources.ibkr.session import disconnect_all

__all__ = [
    "HistoricalPacer",
    "IBKRConnectionError",
    "IBKRConnectionLost",
    "IBKRError",
    "IBKRNoSecurityError",
    "IBKRPacingError",
    "IBKRPermissionError",
    "IBKRResource",
    "IBKRVersionError",
    "disconnect_all",
    "duration_for",
    "reset_pacing",
]
