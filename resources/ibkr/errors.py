"""The IBKR failures callers see, and the TWS API error codes that decide which one."""

from __future__ import annotations

# Market-data farm notices ("connection is OK", "HMDS data farm connected"): not errors.
_FARM_NOTICES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2158})
_CONNECTIVITY_LOST = frozenset({502, 504, 1100, 1300})
_CONNECTIVITY_RESTORED = frozenset({1101, 1102})
_NO_SUBSCRIPTION = frozenset({354, 10090, 10168})
_CLIENT_ID_IN_USE = 326


class IBKRError(RuntimeError):
    """Something IBKR refused or could not do; the message says what to do about it."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class IBKRConnectionError(IBKRError):
    """The gateway is not reachable, refused the session, or lost its link to IBKR."""


class IBKRConnectionLost(IBKRConnectionError):
    """The session dropped in the middle of a request (gateway restart, network blip): the
    request may succeed on a new connection, unlike a refusal or bad data."""


class IBKRPacingError(IBKRError):
    """IBKR throttled historical data requests (error 162, pacing violation)."""


class IBKRNoSecurityError(IBKRError):
    """IBKR has no (or no unambiguous) contract for the symbol (error 200)."""


class IBKRPermissionError(IBKRError):
    """Not allowed: no data subscription, read-only mode, or a live account without consent."""


class IBKRVersionError(IBKRConnectionError):
    """The gateway and ib_async share no API server version (or the gateway refused the
    handshake): a setup problem (library or gateway version), not an outage to retry."""
