"""`charts`: daily and weekly candlestick PNGs with indicator panels, visible in the Dagster UI."""


from collections.abc import Iterator

import dagster as dg

from resources.app_db import AppDatabase
from resources.object_store import ObjectStore
from trading_assets.assets.indicators import indicators
from trading_assets.assets.metadata import png_markdown
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.charts import (
    ChartImage,
    ChartJob,
    chart_workers,
    preview_png,
    render_chart,
    render_charts,
)
from trading_assets.core.keys import TIMEFRAMES, bars_info_key, chart_key, indicators_key
from trading_assets.partitions import run_partition_keys, symbol_asset


def chart_markdown(symbol: str, images: dict[str, ChartImage]) -> dg.MarkdownMetadataValue:
    """Inline previews so the charts are visible on the materialization itself."""
    return png_markdown({f"{symbol} {timeframe}": image.preview or preview_png(image.png)
                         for timeframe, image in images.items()})


def chart_job(store: ObjectStore, symbol: str) -> ChartJob:
    """One symbol's charts to draw: its stored indicator frames, marked if bars are simulated."""
    info = store.read_json(bars_info_key(symbol))
    return ChartJob(symbol, {t: store.read_frame(indicators_key(symbol, t)) for t in TIMEFRAMES},
                    simulated=bool(info["simulated"]))  # type: ignore[index]


def store_charts(store: ObjectStore, job: ChartJob,
                 images: dict[str, ChartImage]) -> dict[str, object]:
    """Store the rendered PNGs under their last bar date; the materialization's metadata."""
    keys = {
        timeframe: store.put_bytes(chart_key(job.symbol, timeframe, image.last_date.date()),
                                   image.png, "image/png")
        for timeframe, image in images.items()
    }
    return {
        "status": "ok",
        "simulated": job.simulated,
        **{f"{t}_chart": chart_link(store, k) for t, k in keys.items()},
        "preview": chart_markdown(job.symbol, images),
    }


def chart_link(store: ObjectStore, key: str) -> dg.MetadataValue:
    """A chart a person can open from the Dagster UI: its file, or its MinIO/S3 address."""
    url = store.object_url(key)
    return dg.MetadataValue.url(url) if url else dg.MetadataValue.path(store.location(key))


@symbol_asset(
    deps=[indicators],
    group_name="analysis",
    kinds={"matplotlib"},
    description="Daily and weekly candlestick charts with SMA/Bollinger, volume, RSI and MACD.",
)
def charts(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase) -> None:
    loop = SymbolLoop(context, app_db)

    def jobs() -> Iterator[ChartJob]:
        for symbol in loop:
            job = None
            with loop.attempt(symbol):
                job = chart_job(store, symbol)
            if job is not None:
                yield job

    # A run over many symbols draws in worker processes (matplotlib holds the GIL) while this
    # process stores the PNGs and records the materializations.
    workers = chart_workers(len(run_partition_keys(context)))
    for job, rendered in render_charts(jobs(), workers, render=render_chart):
        with loop.attempt(job.symbol):
            if isinstance(rendered, Exception):
                raise rendered
            loop.record(job.symbol, store_charts(store, job, rendered))
    loop.finish()
