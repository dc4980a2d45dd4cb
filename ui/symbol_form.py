"""The symbol settings form: its fields in the order the page passes them around, the values it
shows for stored settings, and the parser that turns it back into SymbolSettings (or refuses
with the first field that is wrong, before anything is written)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from trading_assets.core.orders import SymbolSettings
from ui.config import UIError
from ui.format import check_symbol, text_of

RISK_LEVELS = ("low", "medium", "high")
# The settings form's fields, in the order its components are passed around; a blank form
# shows "" except where named here.
FORM_FIELDS = ("enabled", "auto_approve", "priority", "position_size_pct", "max_exposure_pct",
               "risk_level", "min_confidence", "exchange", "primary_exchange", "currency")
_BLANK_FORM = {"enabled": True, "auto_approve": False, "risk_level": "medium"}
_EXCHANGE_RE = re.compile(r"^[A-Z0-9.]{1,16}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _form_value(value: object) -> object:
    """A setting as its form component takes it: flags and text as they are, numbers as text
    (5.0 shown as 5)."""
    if isinstance(value, bool | str):
        return value
    return f"{value:g}" if isinstance(value, float) else str(value)


def form_values(settings: Any | None) -> list[Any]:
    """The settings form's values in FORM_FIELDS order; a blank form without settings."""
    if settings is None:
        return [_BLANK_FORM.get(name, "") for name in FORM_FIELDS]
    return [_form_value(getattr(settings, name)) for name in FORM_FIELDS]


def _parse_number(label: str, value: object, *, whole: bool, low: float, high: float,
                  low_open: bool = False) -> float:
    text = text_of(value)
    if text == "":
        raise UIError(f"{label} is empty; enter a number.")
    try:
        number = float(text)
    except ValueError:
        raise UIError(f"{label} {text!r} is not a number.") from None
    if not math.isfinite(number):
        raise UIError(f"{label} {text!r} is not a finite number.")
    if whole and number != int(number):
        raise UIError(f"{label} {text!r} must be a whole number.")
    if number < low or number > high or (low_open and number == low):
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        raise UIError(f"{label} {text!r} is out of range: it must be {lower} and at most "
                      f"{high:g}.")
    return number


def _parse_flag(label: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = text_of(value).lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise UIError(f"{label} {text!r} is not yes or no.")


def parse_settings(symbol: str, form: Mapping[str, object]) -> SymbolSettings:
    """Turn the settings form into SymbolSettings, or refuse with the first field that is wrong."""
    symbol = check_symbol(symbol)
    risk = text_of(form.get("risk_level")).lower()
    if risk not in RISK_LEVELS:
        raise UIError(f"Risk level {risk!r} is not one of {', '.join(RISK_LEVELS)}.")
    size = _parse_number("Position size %", form.get("position_size_pct"), whole=False,
                         low=0, high=100, low_open=True)
    exposure = _parse_number("Max exposure %", form.get("max_exposure_pct"), whole=False,
                             low=0, high=100, low_open=True)
    if size > exposure:
        raise UIError(f"Position size {size:g}% is larger than the max exposure {exposure:g}%: "
                      "one order could never be placed.")
    exchange = text_of(form.get("exchange")).upper() or "SMART"
    primary = text_of(form.get("primary_exchange")).upper()
    currency = text_of(form.get("currency")).upper() or "USD"
    for label, value in (("Exchange", exchange), ("Primary exchange", primary)):
        if value and not _EXCHANGE_RE.match(value):
            raise UIError(f"{label} {value!r} is not an exchange code such as SMART or NASDAQ.")
    if not _CURRENCY_RE.match(currency):
        raise UIError(f"Currency {currency!r} is not a three-letter code such as USD.")
    return SymbolSettings(
        symbol=symbol,
        enabled=_parse_flag("Enabled", form.get("enabled")),
        priority=int(_parse_number("Priority", form.get("priority"), whole=True,
                                   low=-1000, high=1000)),
        position_size_pct=size,
        risk_level=risk,
        max_exposure_pct=exposure,
        auto_approve=_parse_flag("Auto-approve", form.get("auto_approve")),
        min_confidence=int(_parse_number("Minimum confidence", form.get("min_confidence"),
                                         whole=True, low=0, high=100)),
        exchange=exchange,
        primary_exchange=primary,
        currency=currency,
    )
