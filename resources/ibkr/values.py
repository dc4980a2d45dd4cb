"""Every price and size ib_async hands back becomes a float (or None) here, and nowhere else.

ib_async 2.x gives floats, with IB's UNSET_DOUBLE (sys.float_info.max) or NaN where the gateway
sent no value; ib_async 3.x gives `Decimal | None`, with IB's UNSET_DECIMAL (2**127 - 1) in
places. Reading them all through `ib_number` keeps the move to 3.x to a version bound and a
peer update (docs/ibkr.md "IBKR compatibility").
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal

# IB's "no value" markers (ibapi's const.py; ib_async.util.UNSET_DOUBLE in 2.x).
UNSET_DOUBLE = sys.float_info.max
UNSET_DECIMAL = Decimal(2**127 - 1)
# Anything this large is UNSET_DOUBLE after a trip through text or arithmetic.
_UNSET_FLOOR = 1e300
_UNSET_DECIMAL_FLOAT = float(UNSET_DECIMAL)  # UNSET_DECIMAL that went through float()


def ib_number(value: float | Decimal | str | None) -> float | None:
    """A price or size from ib_async as a float; None for no value (None, "", NaN, infinity,
    UNSET_DOUBLE, UNSET_DECIMAL). Text that is not a number raises ValueError (account values
    mix numbers and text tags)."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal) and (not value.is_finite() or value == UNSET_DECIMAL):
        return None
    number = float(value)
    if not math.isfinite(number) or abs(number) >= _UNSET_FLOOR or number == _UNSET_DECIMAL_FLOAT:
        return None
    return number
