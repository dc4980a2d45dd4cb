"""The Gradio page: a header, then one tab per module (symbols, signal review, history,
portfolio and orders, scorecard).

Every handler goes through `ui.widgets.guarded`, so a refusal or a failure is a message in the
page (a status line plus a toast) and the stack trace goes to the log.
"""


import gradio as gr

from ui.config import UIContext
from ui.format import escape
from ui.history_tab import build_history_tab
from ui.portfolio_tab import build_portfolio_tab
from ui.review_tab import build_review_tab, simulated_page
from ui.scorecard_tab import build_scorecard_tab
from ui.symbols_tab import build_symbols_tab
from ui.widgets import PRIVATE, banner, guarded

TITLE = "Trading signals"


def header_markdown(ctx: UIContext) -> str:
    """Which data, analyst and broker this page is working with; simulated parts say so."""
    market, analyst = ctx.resources["market_data"], ctx.resources["analyst"]
    return (f"**Market data:** {escape(market.describe())} · **Analyst:** "
            f"{escape(analyst.label)} · **Broker:** {escape(ctx.broker.label)} · "
            f"[Dagster UI]({ctx.config.dagster_url})")


def build_page(ctx: UIContext) -> gr.Blocks:
    """The page over the context's resources and Dagster instance."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(header_markdown(ctx), elem_id="header")
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

    app.ui_context = ctx  # type: ignore[attr-defined]  # tests reach the launcher through it
    return app
