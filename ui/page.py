"""The Gradio page: a header, then one tab per module (symbols, signal review, history,
portfolio and orders, scorecard).

Every handler goes through `ui.widgets.guarded`, so a refusal or a failure is a message in the
page (a status line plus a toast) and the stack trace goes to the log.
"""

import html
import logging
from typing import Any

import gradio as gr

from ui.config import UIContext
from ui.format import escape
from ui.history_tab import build_history_tab
from ui.portfolio_tab import build_portfolio_tab
from ui.review_tab import build_review_tab, simulated_page
from ui.scorecard_tab import build_scorecard_tab
from ui.symbols_tab import build_symbols_tab
from ui.widgets import PRIVATE, banner, guarded

log = logging.getLogger(__name__)

TITLE = "Trading signals"
# How often the page re-reads the daemon's heartbeat and probes the Dagster UI.
HEALTH_REFRESH_S = 5


def header_markdown(ctx: UIContext) -> str:
    """Which data, analyst and broker this page is working with; simulated parts say so."""
    market, analyst = ctx.resources["market_data"], ctx.resources["analyst"]
    return (f"**Market data:** {escape(market.describe())} · **Analyst:** "
            f"{escape(analyst.label)} · **Broker:** {escape(ctx.broker.label)}")


def health_html(ctx: UIContext) -> str:
    """The system's state on every page: a red banner while the Dagster daemon is down (what
    does not happen, how to start it), else one line; the Dagster UI linked only when it
    answers."""
    daemon = ctx.daemon()
    url = html.escape(ctx.config.dagster_url)  # an attribute: HTML-escaped, not Markdown
    ui = (f'Open the <a href="{url}" target="_blank" rel="noopener noreferrer">Dagster UI</a>'
          if ctx.dagster_ui_answers() else f"The Dagster UI does not answer at {url}")
    if not daemon.up:
        down = banner(f"Dagster daemon {daemon.detail}.", kind="health")
        return (f'<div id="daemon-down">{down}'
                "<div>Runs started here execute in a separate process this app keeps for its "
                f"runs. {ui}</div></div>")
    return (f'<div id="daemon-up">Dagster daemon running on this instance: sensors, the '
            f"schedule and approvals run. {ui}</div>")


def build_page(ctx: UIContext) -> gr.Blocks:
    """The page over the context's resources and Dagster instance."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(header_markdown(ctx), elem_id="header")
        health = gr.HTML(elem_id="system-health")

        def refresh_health() -> Any:
            try:
                return health_html(ctx)
            except Exception:  # a timer has nobody to tell; the next tick tries again
                log.exception("reading the system's health failed")
                return gr.skip()

        gr.Timer(HEALTH_REFRESH_S).tick(refresh_health, outputs=[health],
                                        show_progress="hidden", **PRIVATE)
        if simulated_page(ctx):
            gr.HTML(banner("SIMULATED market data: bars are generated, not market prices. "
                           "Nothing on this page is a real market view."))
        with gr.Tabs():
            symbols = build_symbols_tab(ctx)
            review = build_review_tab(ctx)
            build_history_tab(ctx)
            build_portfolio_tab(ctx)
            build_scorecard_tab(ctx)

        # First paint, one load per tab: each writes only its own components, so the review
        # tab's chart (the slower paint) never lands after, and over, an action already taken
        # on the symbols tab. A failure shows in the tab's own status line.
        for tab in (symbols, review):
            app.load(guarded(len(tab.first_outputs))(tab.first_values),
                     outputs=tab.first_outputs, **PRIVATE)
        app.load(refresh_health, outputs=[health], **PRIVATE)  # its own event: probes may wait

    app.ui_context = ctx  # type: ignore[attr-defined]  # tests reach the launcher through it
    return app
