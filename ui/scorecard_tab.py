"""The Scorecard tab: how good the stored signals were at 1, 5 or 20 bars, over every symbol's
outcomes, with the same tables and plots as the signal_scorecard asset."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from resources.outcomes import read_outcomes
from trading_assets.core.outcomes import simulated_count
from trading_assets.core.scorecard import (
    SCORECARD_TABLE_TITLES,
    rate_text,
    render_scorecard_plots,
    scorecard_tables,
    training_period_warning,
)
from trading_assets.partitions import list_symbols
from ui.config import UIContext, UIError
from ui.format import pil_image, text_of
from ui.widgets import PRIVATE, STORED_TEXT, banner, guarded

SCORECARD_HORIZONS = (1, 5, 20)
SIMULATED_SCORECARD = ("SIMULATED DATA behind this scorecard: outcomes scored on generated "
                       "bars say nothing about any market.")
SCORECARD_README = "docs/scorecard.md"
NO_OUTCOMES = ("No scored signals yet: run `trading-signals replay --symbols AAPL --start "
               "2024-01-02` (walk-forward over history with the rules analyst), or "
               "materialize `signal_outcomes` (group *evaluation* in the Dagster UI) after "
               "`llm_signal` has stored live signals.")


@dataclass
class ScorecardView:
    """What the Scorecard tab shows at one horizon.

    `tables` holds the scorecard_tables frames (rates and returns as fractions, rounded for
    display) and `plots` the calibration and hit-rate PNGs; both are empty when there are no
    outcomes yet, and `markdown` says so instead.
    """

    horizon: int
    markdown: str
    simulated: bool = False
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.tables


def parse_horizon(raw: object) -> int:
    """1, 5 or 20 bars (an int, or its text from a dropdown); anything else is refused."""
    text = text_of(raw) if isinstance(raw, str) else raw
    horizon: object = text
    if isinstance(text, str) and text.isdigit():
        horizon = int(text)
    if isinstance(horizon, bool) or not isinstance(horizon, int) \
            or horizon not in SCORECARD_HORIZONS:
        raise UIError(f"Horizon {raw!r} is not one of {', '.join(map(str, SCORECARD_HORIZONS))}"
                      " bars: outcomes are scored at those horizons only.")
    return horizon


def _display(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A scorecard table for the page: floats rounded, NaN (undefined) left empty."""
    shown = frame.copy()
    for column in shown.columns:
        series = shown[column]
        if pd.api.types.is_float_dtype(series):
            shown[column] = series.round(digits).astype(object).where(series.notna(), None)
        elif series.dtype == object:
            shown[column] = [None if isinstance(v, float) and math.isnan(v)
                             else round(v, digits) if isinstance(v, float) else v
                             for v in series]
    return shown


def scorecard_view(ctx: UIContext, horizon: int) -> ScorecardView:
    """The scorecard over every symbol's stored outcomes (outcomes/<SYMBOL>.parquet)."""
    horizon = parse_horizon(horizon)
    outcomes = read_outcomes(ctx.store, list_symbols(ctx.instance))
    if outcomes.empty:
        return ScorecardView(horizon=horizon, markdown=NO_OUTCOMES)
    tables = scorecard_tables(outcomes, horizon)
    simulated = simulated_count(outcomes)
    plots = render_scorecard_plots(tables, horizon, simulated=simulated > 0)
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    return ScorecardView(horizon=horizon, simulated=simulated > 0,
                         markdown=_scorecard_note(summary, horizon, simulated,
                                                  training_period_warning(outcomes)),
                         tables={name: _display(tables[name]) for name in SCORECARD_TABLE_TITLES},
                         plots=plots)


def _scorecard_note(summary: Mapping[str, Any], horizon: int, simulated: int,
                    training_warning: str = "") -> str:
    signals, scored = int(summary["signals"]), int(summary["scored"])
    bars = f"{horizon} bar" + ("s" if horizon != 1 else "")
    pending, no_bars = int(summary["pending"]), int(summary["no_bars"])
    lines = []
    if simulated:
        lines += [f"**⚠ SIMULATED DATA: {simulated} of {signals} signals were scored on "
                  "generated bars, not market prices. Their hit rates measure the analyst "
                  "against a random walk, not any market: do not read them as a track "
                  "record.**", ""]
    if training_warning:  # counts and dates only: no stored text reaches the page
        lines += [f"**⚠ {training_warning.removeprefix('WARNING: ')}**", ""]
    lines.append(
        f"**{signals} signal(s)** on {summary['symbols']} symbol(s) from {summary['analysts']} "
        f"analyst set-up(s), bar dates {summary['first_bar_date']} .. "
        f"{summary['last_bar_date']}. **Scored at {bars}: {scored}** · pending "
        f"(fewer than {bars} since): {pending}"
        + (f" · no stored bars: {no_bars}" if no_bars else "") + ".")
    if scored:
        lines.append(
            f"\nHit rate {rate_text(summary['hit_rate'])} (95% interval "
            f"{rate_text(summary['hit_rate_ci_low'])} – "
            f"{rate_text(summary['hit_rate_ci_high'])}) · "
            f"BUY/SELL only {rate_text(summary['directional_hit_rate'])} · HOLD share "
            f"{rate_text(summary['hold_share'])}.")
    else:
        lines.append(f"\nNo signal is scored at {bars} yet: the tables fill in once the "
                     f"{bars} after a signal exist and `signal_outcomes` is "
                     "materialized again.")
    overlap = (" At 20 bars, signals less than 20 bars apart share bars, so the intervals "
               "are too narrow." if horizon == 20 else "")
    lines.append(
        f"\n_This is not proof that following the signals makes money: read the intervals, "
        f"not the points; a hit rate counts only above its base rate; costs, slippage and "
        f"survivorship are ignored.{overlap} See {SCORECARD_README}._")
    return "\n".join(lines)


def build_scorecard_tab(ctx: UIContext) -> None:
    """The Scorecard tab with its handlers wired (call inside the page's gr.Tabs)."""
    with gr.Tab("Scorecard", id="scorecard") as tab:
        with gr.Row(equal_height=True):
            horizon_pick = gr.Dropdown(label="Horizon (bars after the signal)",
                                       choices=[("1 bar", 1), ("5 bars", 5), ("20 bars", 20)],
                                       value=5, elem_id="scorecard-horizon", scale=3)
            refresh_btn = gr.Button("Refresh", elem_id="refresh-scorecard", scale=1)
        status = gr.Markdown(elem_id="scorecard-status", **STORED_TEXT)
        sim_banner = gr.HTML(visible=False, elem_id="scorecard-simulated")
        note = gr.Markdown(elem_id="scorecard-note", **STORED_TEXT)
        with gr.Column(visible=False) as results:
            with gr.Row():
                hit_img = gr.Image(label="Hit rate by action", type="pil", interactive=False,
                                   format="png", buttons=["fullscreen"],
                                   elem_id="scorecard-hit-rate")
                cal_img = gr.Image(label="Calibration", type="pil", interactive=False,
                                   format="png", buttons=["fullscreen"],
                                   elem_id="scorecard-calibration")
            tables = {name: gr.Dataframe(label=title, interactive=False, wrap=True,
                                         elem_id=f"scorecard-{name}".replace("_", "-"))
                      for name, title in SCORECARD_TABLE_TITLES.items()}

    @guarded(5 + len(tables))
    def scorecard(horizon: Any) -> tuple[Any, ...]:
        view = scorecard_view(ctx, horizon)
        shown = gr.HTML(banner(SIMULATED_SCORECARD), visible=view.simulated)
        if view.empty:
            return ("", shown, view.markdown, gr.Column(visible=False), None, None,
                    *[None for _ in tables])
        return ("", shown, view.markdown, gr.Column(visible=True),
                pil_image(view.plots.get("hit_rate")), pil_image(view.plots.get("calibration")),
                *[view.tables[name] for name in tables])

    outputs = [status, sim_banner, note, results, hit_img, cal_img, *tables.values()]
    refresh_btn.click(scorecard, inputs=[horizon_pick], outputs=outputs, **PRIVATE)
    horizon_pick.input(scorecard, inputs=[horizon_pick], outputs=outputs, **PRIVATE)
    tab.select(scorecard, inputs=[horizon_pick], outputs=outputs, **PRIVATE)
