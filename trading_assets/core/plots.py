"""Line plots over time, as PNG bytes: a symbol's price with its past signals, and the account's
equity curve. The Gradio app and the portfolio asset's metadata show the same images.

Plain matplotlib on a figure of its own per call (Agg, no pyplot): these are drawn a few at a
time for a person, not hundreds per run like the candlestick charts (core/charts.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

# Marker and colour per action; an outcome (once known) colours the marker's edge.
_ACTION_STYLE = {"BUY": ("^", "#1e8449"), "SELL": ("v", "#c0392b"), "HOLD": ("o", "#7f7f7f")}


@dataclass(frozen=True)
class SignalMark:
    """One past signal on a symbol's price history."""

    day: date
    action: str  # BUY | SELL | HOLD (an error has no mark)
    confidence: int
    status: str
    outcome: str = ""  # e.g. "+2.4% at 5 bars"; empty until the bars are in


def _figure(width: float = 10.0, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=80, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.2, 0.88, 0.68), facecolor="#fafafa")
    ax.grid(True, color="#d0d0d0", linewidth=0.6)
    ax.set_axisbelow(True)
    for spine in ax.spines.values():
        spine.set_color("#c0c0c0")
    return fig, ax


def _dates(ax: Any) -> None:
    """Date labels that fit whatever the span: minutes apart (several runs a day) or years."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def render_history(symbol: str, closes: list[tuple[date, float]], marks: list[SignalMark],
                   simulated: bool) -> bytes:
    """The symbol's closes with every past signal marked: action, confidence and, once the
    bars are in, its outcome."""
    fig, ax = _figure()
    if closes:
        days, prices = zip(*closes, strict=True)
        ax.plot(days, prices, color="#34495e", linewidth=1.2, label="close")
    by_day = dict(closes)
    for action, (marker, color) in _ACTION_STYLE.items():
        shown = [m for m in marks if m.action == action and m.day in by_day]
        if not shown:
            continue
        ax.scatter([m.day for m in shown], [by_day[m.day] for m in shown], marker=marker,
                   s=90, color=color, edgecolors="black", linewidths=0.6, zorder=3,
                   label=action)
        for m in shown:
            note = f"{m.confidence}" + (f" {m.outcome}" if m.outcome else "")
            ax.annotate(note, (m.day, by_day[m.day]), textcoords="offset points",
                        xytext=(0, 9 if action != "SELL" else -15), ha="center", fontsize=8,
                        color=color)
    ax.set_title(f"{symbol}: closes and past signals (confidence, outcome)", loc="left",
                 fontsize=12, weight="bold")
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=4)
    if simulated:
        fig.text(0.5, 0.5, "SIMULATED DATA", fontsize=40, color="red", alpha=0.15,
                 ha="center", va="center", rotation=15, weight="bold")
    _dates(ax)
    return _png(fig)


def render_equity(points: list[tuple[datetime, float, float]], title: str) -> bytes:
    """The account's equity (and cash) at every portfolio materialization."""
    fig, ax = _figure(10.0, 3.6)
    if points:
        at, equity, cash = zip(*points, strict=True)
        ax.plot(at, equity, color="#1f3b99", linewidth=1.6, marker="o", markersize=3,
                label="equity (cash + marked positions)")
        ax.plot(at, cash, color="#7f7f7f", linewidth=1.0, linestyle="--", label="cash")
        ax.axhline(equity[0], color="#c0c0c0", linewidth=0.8)
        if len(at) == 1:  # one point has no span to place date ticks on: give it a day
            ax.set_xlim(at[0] - timedelta(hours=12), at[0] + timedelta(hours=12))
    else:
        ax.text(0.5, 0.5, "No portfolio materialization yet", ha="center", va="center",
                transform=ax.transAxes, color="#7f7f7f")
    ax.set_title(title, loc="left", fontsize=12, weight="bold")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    _dates(ax)
    return _png(fig)
