"""What the CLI and the app share about a human review: the decisions and who made them."""

from __future__ import annotations

import getpass

from trading_assets.core.signal import SignalStatus

# The words a reviewer uses (CLI sub-command, app button) and the status each one sets.
# "reapprove" (approve works too) sends a not_placed or order_failed signal back to the orders
# step as a new order attempt (core/lifecycle.py).
REVIEW_DECISIONS = {"approve": SignalStatus.APPROVED, "reapprove": SignalStatus.APPROVED,
                    "reject": SignalStatus.REJECTED}


def reviewer_name(username: str | None) -> str:
    """The given (logged-in) user, else the OS user running the process (reviews always say who)."""
    if username:
        return username
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME in a container
        return "unknown"
