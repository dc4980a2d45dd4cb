"""The chart renderer: a key on the price panel, previews drawn with the chart."""

from datetime import date

import pytest

from trading_assets.core.bars import simulate_bars
from trading_assets.core.charts import (
    OVERLAYS,
    ChartJob,
    _figure,
    preview_png,
    price_legend,
    render_chart,
    render_charts,
)
from trading_assets.core.indicators import indicator_frames


@pytest.fixture(scope="module")
def job() -> ChartJob:
    return ChartJob("AAA", indicator_frames(simulate_bars("AAA", date(2026, 11, 20))), True)


def test_the_price_panel_has_a_key_naming_each_overlay_in_its_colour(job: ChartJob) -> None:
    render_chart(job.symbol, job.frames["daily"], "daily", simulated=True)
    price = _figure().axes[0]
    legend = price.get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["SMA 20", "SMA 50", "SMA 200", "Bollinger 20, 2σ"]
    assert labels == [label for label, _, _ in price_legend()]
    # Each key entry has the colour of the line it names, as drawn on the panel.
    drawn = {line.get_color() for line in price.get_lines()}
    keyed = {label: handle.get_color()
             for label, handle in zip(labels, legend.legend_handles, strict=True)}
    assert set(keyed.values()) == drawn
    assert keyed["SMA 200"] == next(c for col, c, *_ in OVERLAYS if col == "sma_200")


@pytest.mark.parametrize("workers", [0, 2])
def test_previews_are_drawn_with_the_charts(job: ChartJob, workers: int) -> None:
    [(_, images)] = list(render_charts([job], workers=workers))
    assert not isinstance(images, Exception)
    for image in images.values():
        assert image.preview == preview_png(image.png)


def test_one_symbols_inline_previews_stay_within_their_event_log_budget(job: ChartJob) -> None:
    """The previews ride in the charts materialization, which Dagster's SQLite storage writes
    twice per symbol: both together stay under 28 KB of markdown (36 KB at 420 px wide)."""
    from trading_assets.assets.charts import chart_markdown
    from trading_assets.core.charts import render_job

    images = render_job(job)
    markdown = chart_markdown(job.symbol, images).value
    assert markdown.count("data:image/png;base64,") == 2  # still shown inline, both timeframes
    assert len(markdown) < 28_000
