"""How a simulated order fills against a daily bar: the paper broker's rules, pure.

A daily bar says where the price opened, how far it went each way and where it closed, not in
which order. So the rules are the conservative ones (docs/lifecycle.md, "The paper broker"):

* A limit order fills at its limit when the bar reaches it, or at the open when the bar opens
  beyond it (a gap gives the better price, as a real limit order would get).
* A stop fills at its trigger when the bar reaches it, or at the open when the bar gaps through
  it (the worse price); the broker adds slippage, as for any market fill.
* A bracket's stop and target touched by the same bar: the stop fills (the loss is assumed).
* On the bar its entry fills, a bracket's stop is checked (the entry may have been on the way
  down to it) but its target is not: which came first that day is unknowable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Bar:
    """One daily bar."""

    day: date
    open: float
    high: float
    low: float
    close: float


def limit_fill(buying: bool, limit: float, bar: Bar) -> float | None:
    """The price a limit order fills at on this bar, or None when the bar never reaches it."""
    if buying:
        if bar.open <= limit:
            return bar.open
        return limit if bar.low <= limit else None
    if bar.open >= limit:
        return bar.open
    return limit if bar.high >= limit else None


def stop_fill(closing_long: bool, trigger: float, bar: Bar, entered_at: float | None = None
              ) -> float | None:
    """The price a stop fills at on this bar (before slippage), or None when not triggered.

    `entered_at` is the entry's fill price when the entry filled on this same bar: a stop the
    entry price is already beyond fills at once, at that price.
    """
    if closing_long:
        if bar.low > trigger:
            return None
        if entered_at is not None:
            return min(trigger, entered_at)
        return min(trigger, bar.open)
    if bar.high < trigger:
        return None
    if entered_at is not None:
        return max(trigger, entered_at)
    return max(trigger, bar.open)


def bracket_exit(closing_long: bool, stop: float, target: float, bar: Bar,
                 entered_at: float | None = None) -> tuple[str, float] | None:
    """Which exit of a bracket fills on this bar and at what price, if one does: ("stop_loss",
    price) or ("take_profit", price). The stop wins a bar that touches both; on the entry's own
    bar (`entered_at` given) only the stop can fill."""
    stopped = stop_fill(closing_long, stop, bar, entered_at)
    if stopped is not None:
        return "stop_loss", stopped
    if entered_at is not None:
        return None
    taken = limit_fill(not closing_long, target, bar)
    return ("take_profit", taken) if taken is not None else None


def bars_from_frame(frame: Any) -> list[Bar]:
    """The daily bars of a stored bars frame (columns date, open, high, low, close), oldest
    first."""
    return [Bar(day=_as_date(row.date), open=float(row.open), high=float(row.high),
                low=float(row.low), close=float(row.close))
            for row in frame.itertuples(index=False)]


def _as_date(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value
