"""Candlestick charts: price with SMA and Bollinger overlays, volume, RSI and MACD, as PNG bytes.

Drawn with plain matplotlib (Agg) on one figure that is built once per process and reused:
creating the axes and their tick objects was most of the cost of a chart (mplfinance builds a
new figure with eight axes for every call). Candles are two collections (wicks, bodies), volume
and the MACD histogram one LineCollection each, and every axis limit is set from the data, so
a chart depends only on its input frame and the same frame always gives the same bytes.

matplotlib holds the GIL while it draws, so threads do not render two charts at once; for a run
over many symbols `render_charts` hands the work to worker processes (one per CPU), which
doubles the charts throughput on a two-core machine.
"""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads when a chart is drawn, not when the definitions load
    import pandas as pd

DAILY_BARS_SHOWN = 150
WEEKLY_BARS_SHOWN = 104
PANEL_RATIOS = (4.0, 1.0, 1.2, 1.2)  # price, volume, RSI, MACD
PRICE_COLUMNS = ["low", "high", "bb_lower", "bb_upper", "sma_20", "sma_50", "sma_200"]
# Price overlays: column, colour, line width, style, and the legend label (both bands share one).
OVERLAYS = (("sma_20", "#1f77b4", 0.8, "-", "SMA 20"), ("sma_50", "#ff7f0e", 0.8, "-", "SMA 50"),
            ("sma_200", "#d62728", 0.8, "-", "SMA 200"),
            ("bb_upper", "#7f7f7f", 0.6, "--", "Bollinger 20, 2σ"),
            ("bb_lower", "#7f7f7f", 0.6, "--", "Bollinger 20, 2σ"))
UP, DOWN, WICK = "#00b060", "#fe3032", "#606060"
VOLUME_UP, VOLUME_DOWN = "#4dc790", "#fd6b6c"
X_LABELS = 7  # date labels along the bottom
# A signal's levels drawn on a chart: (label, price or None, colour).
Levels = tuple[tuple[str, float | None, str], ...]


# Below this many symbols a run renders in its own process: starting workers (importing
# matplotlib and pandas, about a second) costs more than a second core saves (~0.1 s a symbol).
PARALLEL_MIN_SYMBOLS = 40
# Jobs queued ahead per worker: enough to keep them busy, few enough to bound the frames held.
QUEUED_PER_WORKER = 4


@dataclass(frozen=True)
class ChartImage:
    timeframe: str
    png: bytes
    last_date: pd.Timestamp
    bars_shown: int
    preview: bytes = b""  # the small inline PNG (preview_png), drawn beside the chart by render_job


@dataclass(frozen=True)
class ChartJob:
    """One symbol's charts to draw: its indicator frames by timeframe."""

    symbol: str
    frames: dict[str, pd.DataFrame]
    simulated: bool


def price_legend() -> list[tuple[str, str, str]]:
    """(label, colour, line style) of each price overlay, once per label: the price panel's key."""
    seen: dict[str, tuple[str, str, str]] = {}
    for _column, color, _width, style, label in OVERLAYS:
        seen.setdefault(label, (label, color, style))
    return list(seen.values())


def _volume_label(value: float, _pos: object = None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


class _Figure:
    """The reusable figure: four stacked panels, title and watermark; data artists per chart."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

        # A Figure with its own Agg canvas: no pyplot, no global figure registry to leak into.
        self.fig = Figure(figsize=(10, 7.5), dpi=72, facecolor="white")
        FigureCanvasAgg(self.fig)
        left, right, bottom, top = 0.04, 0.90, 0.09, 0.92
        unit = (top - bottom) / sum(PANEL_RATIOS)
        self.axes = []
        y = top
        for i, ratio in enumerate(PANEL_RATIOS):
            y -= ratio * unit
            ax = self.fig.add_axes((left, y, right - left, ratio * unit), facecolor="#fafafa")
            ax.yaxis.tick_right()
            ax.yaxis.set_label_position("right")
            # Few y ticks, and none at a panel's top edge where it would touch the panel above.
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6 if i == 0 else 3,
                                                   prune=None if i == 0 else "upper"))
            ax.grid(True, color="#d0d0d0", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.tick_params(labelsize=9, labelbottom=i == len(PANEL_RATIOS) - 1)
            for spine in ax.spines.values():
                spine.set_color("#c0c0c0")
            ax.set_ylabel(("Price", "Volume", "RSI", "MACD")[i])
            # A fixed label position: placing it from the tick labels' extents measured every
            # tick label's text on every draw.
            ax.yaxis.set_label_coords(1.075, 0.5)
            ax.xaxis.set_label_coords(0.5, -0.2)
            self.axes.append(ax)
        # The key is static (the overlays never change), so it is built once with the figure.
        from matplotlib.lines import Line2D

        self.axes[0].legend(
            handles=[Line2D([], [], color=color, linestyle=style, linewidth=1.2, label=label)
                     for label, color, style in price_legend()],
            # Above the panel's right end, beside the title: on the panel it would hide candles.
            loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2, fontsize=8,
            ncol=4, frameon=False)
        self.axes[1].yaxis.set_major_formatter(FuncFormatter(_volume_label))
        self.axes[2].set_ylim(0, 100)
        self.axes[2].yaxis.set_major_locator(FixedLocator([30, 50, 70]))  # oversold, overbought
        self.title = self.fig.text(left, 0.95, "", ha="left", va="center", fontsize="x-large",
                                   weight="bold")
        self.watermark = self.fig.text(0.5, 0.55, "SIMULATED DATA", fontsize=44, color="red",
                                       alpha=0.18, ha="center", va="center", rotation=20,
                                       weight="bold")
        self.artists: list[Any] = []

    def draw(self, data: pd.DataFrame, title: str, simulated: bool, dpi: int,
             levels: Levels = ()) -> bytes:
        import numpy as np
        from matplotlib.collections import LineCollection, PolyCollection

        for artist in self.artists:
            artist.remove()
        self.artists = []
        price, volume, rsi, macd = self.axes
        n = len(data)
        x = np.arange(n, dtype=float)
        o, h, lo, c = (data[k].to_numpy(float) for k in ("open", "high", "low", "close"))
        up = c >= o

        wicks = LineCollection(_segments(x, lo, h), colors=WICK, linewidths=0.7)
        half = 0.3
        bottom, top = np.minimum(o, c), np.maximum(o, c)
        bodies = PolyCollection(
            np.stack([np.column_stack([x - half, bottom]), np.column_stack([x - half, top]),
                      np.column_stack([x + half, top]), np.column_stack([x + half, bottom])],
                     axis=1),
            facecolors=np.where(up, UP, DOWN), edgecolors=np.where(up, UP, DOWN),
            linewidths=0.5)
        self.artists += [price.add_collection(wicks, autolim=False),
                         price.add_collection(bodies, autolim=False)]
        for column, color, width, style, _label in OVERLAYS:
            self.artists += price.plot(x, data[column].to_numpy(float), color=color,
                                       linewidth=width, linestyle=style)
        low = float(np.nanmin(data[PRICE_COLUMNS].to_numpy(float)))
        high = float(np.nanmax(data[PRICE_COLUMNS].to_numpy(float)))
        low, high = self._levels(levels, low, high, n)
        price.set_ylim(low * 0.98, high * 1.02)

        vol = data["volume"].to_numpy(float)
        self.artists.append(volume.add_collection(
            _bars(x, vol, np.where(up, VOLUME_UP, VOLUME_DOWN)), autolim=False))
        volume.set_ylim(0, float(np.nanmax(vol)) * 1.1 if n else 1.0)

        self.artists += rsi.plot(x, data["rsi_14"].to_numpy(float), color="#9467bd",
                                 linewidth=1.0)

        hist = data["macd_hist"].to_numpy(float)
        lines = np.column_stack([data["macd"].to_numpy(float),
                                 data["macd_signal"].to_numpy(float), hist])
        self.artists.append(macd.add_collection(_bars(x, np.nan_to_num(hist), "#999999"),
                                                autolim=False))
        self.artists += macd.plot(x, lines[:, 0], color="#1f77b4", linewidth=1.0)
        self.artists += macd.plot(x, lines[:, 1], color="#ff7f0e", linewidth=1.0)
        if np.isfinite(lines).any():
            lo_m, hi_m = float(np.nanmin(lines)), float(np.nanmax(lines))
            pad = (hi_m - lo_m) * 0.08 or abs(hi_m) * 0.1 or 1.0
            macd.set_ylim(lo_m - pad, hi_m + pad)
        else:
            macd.set_ylim(-1.0, 1.0)

        step = max(1, -(-n // X_LABELS))
        ticks = list(range(0, n, step))
        labels = [data.index[i].strftime("%Y-%m-%d") for i in ticks]
        for ax in self.axes:
            ax.set_xlim(-1, n)
            ax.set_xticks(ticks, labels if ax is macd else [])
        self.title.set_text(title)
        self.watermark.set_visible(simulated)
        buffer = io.BytesIO()
        # zlib level 3 instead of 6: a third less encoding time for files about 4% larger.
        self.fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
        return buffer.getvalue()


    def _levels(self, levels: Levels, low: float, high: float, n: int) -> tuple[float, float]:
        """Draw a signal's entry, stop and target as labelled lines across the price panel;
        the price range grows to show them, unless a level is absurdly far (it is then named
        at the panel's edge instead of squashing the candles to a line)."""
        price = self.axes[0]
        span = high - low or abs(high) or 1.0
        shown = {value for _, value, _ in levels
                 if value is not None and low - span <= value <= high + span}
        if shown:
            low, high = min(low, *shown), max(high, *shown)
        above = below = 0
        for label, value, color in levels:
            if value is None:
                continue
            if value in shown:
                self.artists.append(price.axhline(value, color=color, linewidth=1.2,
                                                  linestyle="-."))
                self.artists.append(price.text(n - 0.5, value, f"{label} {value:,.2f}",
                                               color=color, fontsize=9, ha="right",
                                               va="bottom", weight="bold",
                                               backgroundcolor=(1, 1, 1, 0.7)))
                continue
            # Off the chart: named at the panel's top or bottom edge, one under the other.
            if value > high:
                y, above = 0.95 - 0.07 * above, above + 1
            else:
                y, below = 0.03 + 0.07 * below, below + 1
            self.artists.append(price.text(
                0.01, y, f"{label} {value:,.2f} (off the chart)", color=color, fontsize=9,
                ha="left", va="bottom", weight="bold", backgroundcolor=(1, 1, 1, 0.7),
                transform=price.transAxes))
        return low, high


def _segments(x: Any, y0: Any, y1: Any) -> Any:
    """Vertical segments (x, y0)-(x, y1) as the (n, 2, 2) array a LineCollection takes."""
    import numpy as np

    return np.stack([np.column_stack([x, y0]), np.column_stack([x, y1])], axis=1)


def _bars(x: Any, heights: Any, colors: Any) -> Any:
    """Bars from zero as one LineCollection (Axes.vlines builds its segments in Python)."""
    import numpy as np
    from matplotlib.collections import LineCollection

    return LineCollection(_segments(x, np.zeros_like(heights), heights), colors=colors,
                          linewidths=2)


# matplotlib is not thread-safe: one figure per thread, built on the thread's first chart.
_local = threading.local()


def _figure() -> _Figure:
    figure = getattr(_local, "figure", None)
    if figure is None:
        figure = _local.figure = _Figure()
    return figure


def render_chart(symbol: str, frame: pd.DataFrame, timeframe: str, *, simulated: bool,
                 bars: int | None = None, dpi: int = 72, levels: Levels = (),
                 title: str = "") -> ChartImage:
    """Render one timeframe's indicator frame to PNG bytes (Agg backend, no window); `levels`
    draws a signal's entry, stop and target on it (signal_levels)."""
    import pandas as pd

    shown = bars or (DAILY_BARS_SHOWN if timeframe == "daily" else WEEKLY_BARS_SHOWN)
    data = frame.tail(shown).set_index("date")
    data.index = pd.DatetimeIndex(data.index)
    last_date = pd.Timestamp(data.index[-1])
    png = _figure().draw(data, title or f"{symbol} {timeframe} to {last_date.date()}",
                         simulated, dpi, levels)
    return ChartImage(timeframe=timeframe, png=png, last_date=last_date, bars_shown=len(data))


def signal_levels(entry: float | None, stop: float | None, target: float | None) -> Levels:
    """A signal's levels as render_chart draws them: (label, price, colour)."""
    return (("entry", entry, "#1f3b99"), ("stop", stop, "#c0392b"),
            ("target", target, "#1e8449"))


# Inline preview width: Dagster's SQLite storage writes each materialization twice, so a symbol's
# two previews cost twice their size in the event log (27 KB of PNG at 420 px, 19 KB at 320 px;
# the full chart stays one click away). Fewer than 64 colours lose the SIMULATED watermark.
PREVIEW_WIDTH = 320


def preview_png(png: bytes, width: int = PREVIEW_WIDTH) -> bytes:
    """A small palette PNG for inline display: a full chart in every event would bloat the log."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    height = round(image.height * width / image.width)
    # Fast octree quantization keeps the thin coloured lines and is 3x quicker than median cut;
    # zlib's default level already gets within 8% of optimize=True at a third of the time.
    small = image.resize((width, height), Image.Resampling.LANCZOS).quantize(
        colors=64, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()


Renderer = Callable[..., ChartImage]


def render_job(job: ChartJob, render: Renderer = render_chart) -> dict[str, ChartImage]:
    """Every timeframe of one job with its inline preview (in a worker process when run in
    parallel: the preview's resize and quantization were a sixth of the run process's time)."""
    from dataclasses import replace

    images = {timeframe: render(job.symbol, frame, timeframe, simulated=job.simulated)
              for timeframe, frame in job.frames.items()}
    return {timeframe: image if image.preview else replace(image, preview=preview_png(image.png))
            for timeframe, image in images.items()}


def chart_workers(symbols: int, cpus: int | None = None) -> int:
    """Worker processes for a run over `symbols` symbols: one per CPU, none for small runs."""
    cpus = cpus or os.cpu_count() or 1
    return cpus if cpus > 1 and symbols >= PARALLEL_MIN_SYMBOLS else 0


def render_charts(jobs: Iterable[ChartJob], workers: int = 0, render: Renderer = render_chart
                  ) -> Iterator[tuple[ChartJob, dict[str, ChartImage] | Exception]]:
    """(job, images or the exception that job raised) for each job, in the jobs' order.

    With `workers` > 1 the jobs are drawn by that many worker processes, at most
    QUEUED_PER_WORKER jobs per worker in flight; otherwise in this process. A job's failure is
    returned, not raised: the other symbols go on.
    """
    if workers <= 1:
        for job in jobs:
            try:
                yield job, render_job(job, render)
            except Exception as exc:  # one symbol's failure, reported to the caller
                yield job, exc
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[tuple[ChartJob, Future[dict[str, ChartImage]]]] = deque()
    local = threading.local()
    started: list[_Worker] = []
    lock = threading.Lock()

    def call(job: ChartJob) -> dict[str, ChartImage]:
        # Each dispatch thread owns one worker and waits on its pipe (no GIL held meanwhile).
        worker = getattr(local, "worker", None)
        if worker is None or not worker.alive:
            try:
                worker = local.worker = _Worker()
            except OSError:  # no interpreter to start (frozen or embedded Python): draw here
                return render_job(job, render)
            with lock:
                started.append(worker)
        return worker.call(job, render)

    def oldest() -> tuple[ChartJob, dict[str, ChartImage] | Exception]:
        job, future = pending.popleft()
        try:
            return job, future.result()
        except Exception as exc:  # the job's own error, or a worker that died under it
            return job, exc

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="chart-worker") as dispatch:
            for job in jobs:
                pending.append((job, dispatch.submit(call, job)))
                if len(pending) >= workers * QUEUED_PER_WORKER:
                    yield oldest()
            while pending:
                yield oldest()
    finally:
        for future in (f for _, f in pending):
            future.cancel()
        for worker in started:
            worker.stop()


class ChartWorkerError(RuntimeError):
    """A chart failed in a worker process (the worker's traceback is in the message notes)."""


class _Worker:
    """A `python -c serve_worker()` process answering pickled jobs on its stdin and stdout.

    A plain subprocess rather than multiprocessing: it never re-imports the parent's __main__
    (a script without a main guard would run again) and never forks a process that has threads
    (a Dagster run has several).
    """

    def __init__(self) -> None:
        import subprocess
        import sys
        from pathlib import Path

        # The worker imports this very checkout, whatever the parent's sys.path tricks were.
        root = str(Path(__file__).resolve().parents[2])
        boot = (f"import sys; sys.path.insert(0, {root!r}); "
                "from trading_assets.core.charts import serve_worker; serve_worker()")
        self.proc = subprocess.Popen([sys.executable, "-c", boot],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, job: ChartJob, render: Renderer) -> dict[str, ChartImage]:
        import pickle

        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            pickle.dump((job, render), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            status, payload = pickle.load(self.proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self.stop()
            raise ChartWorkerError(f"chart worker process ended unexpectedly "
                                   f"(exit code {self.proc.poll()}): {exc!r}") from exc
        if status == "ok":
            return payload  # type: ignore[no-any-return]
        name, message, trace = payload
        error = ChartWorkerError(f"{name}: {message}")
        error.add_note(f"in the chart worker:\n{trace}")
        raise error

    def stop(self) -> None:
        import subprocess

        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # end of input: the worker exits
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve_worker() -> None:
    """The worker's loop: (job, render) in, ("ok", images) or ("error", details) out."""
    import pickle
    import sys
    import traceback

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the reply stream
    while True:
        try:
            job, render = pickle.load(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, object] = ("ok", render_job(job, render))
        except Exception as exc:  # reported to the parent, which fails that symbol only
            reply = ("error", (type(exc).__name__, str(exc), traceback.format_exc()))
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
