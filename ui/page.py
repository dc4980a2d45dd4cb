"""The Gradio page: symbols, signal review, history, portfolio and orders, scorecard.

`build_page(ctx)` wires the components to `ui.services`. Every handler goes through `_guarded`,
so a refusal or a failure is a message in the page (a status line plus a toast) and the stack
trace goes to the log.
"""

import functools
import io
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from trading_assets.core.symbols import parse_symbols
from ui import services as sv
from ui.services import UIContext, UIError, escape

log = logging.getLogger(__name__)

TITLE = "Trading signals"
_BANNER_STYLE = ("background:#b91c1c;color:#fff;font-weight:700;padding:10px 14px;"
                 "border-radius:6px;font-size:1.05em;letter-spacing:.01em")
_STATUS_ANY = "any status"
# The settings form's fields, in the order its components are passed around; a blank form
# shows "" except where named here.
FORM_FIELDS = ("enabled", "auto_approve", "priority", "position_size_pct", "max_exposure_pct",
               "risk_level", "min_confidence", "exchange", "primary_exchange", "currency")
_BLANK_FORM = {"enabled": True, "auto_approve": False, "risk_level": "medium"}


def _banner(text: str) -> str:
    return f'<div class="simulated-banner" style="{_BANNER_STYLE}">⚠ {escape(text)}</div>'


def _ok(message: str) -> str:
    return f"**Done:** {message}"


def _refusal(message: str) -> str:
    return f"**Not done:** {escape(message)}"


def _guarded(n_outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn UIError and surprises into a status line (first output) and a toast; skip the rest."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except UIError as exc:
                message = str(exc)
            except Exception as exc:  # never a stack trace in the page: it goes to the log
                log.exception("%s failed", fn.__name__)
                message = (f"Unexpected error ({type(exc).__name__}): {exc}. The details are "
                           "in the app's log.")
            gr.Warning(escape(message), title="Not done")
            if n_outputs == 1:
                return _refusal(message)
            return (_refusal(message), *[gr.skip() for _ in range(n_outputs - 1)])

        return wrapper

    return decorate


def _image(data: bytes | None) -> Any:
    """PNG bytes from the object store as a PIL image (the page never fetches a URL itself)."""
    if data is None:
        return None
    from PIL import Image

    data, _ = sv.checked_png(data, "The image")  # a corrupt file shows as a placeholder
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _form_value(value: object) -> object:
    """A setting as its form component takes it: flags and text as they are, numbers as text
    (5.0 shown as 5)."""
    if isinstance(value, bool | str):
        return value
    return f"{value:g}" if isinstance(value, float) else str(value)


def _form_values(settings: Any | None) -> list[Any]:
    """The settings form's values in FORM_FIELDS order; a blank form without settings."""
    if settings is None:
        return [_BLANK_FORM.get(name, "") for name in FORM_FIELDS]
    return [_form_value(getattr(settings, name)) for name in FORM_FIELDS]


def build_page(ctx: UIContext) -> gr.Blocks:
    """The page over the context's resources and Dagster instance."""
    resources = ctx.resources

    def pick_and_form(value: str | None = None) -> list[Any]:
        """The symbol picker (kept on `value`, else the first symbol) and that symbol's form."""
        choices = sv.symbol_choices(ctx)
        chosen = value if value in choices else (choices[0] if choices else None)
        settings = ctx.app_db.settings_for(chosen) if chosen else None
        return [gr.Dropdown(choices=choices, value=chosen), *_form_values(settings)]

    def queue_outputs(keep: str | None = None, select_first: bool = True
                      ) -> tuple[Any, Any, str]:
        rows = sv.pending_signals(ctx)
        choices = [(sv.signal_label(r), r.id) for r in rows]
        ids = [r.id for r in rows]
        value = keep if keep in ids else (ids[0] if ids and select_first else None)
        return sv.queue_table(rows), gr.Dropdown(choices=choices, value=value), value or ""

    def view_outputs(signal_id: str) -> list[Any]:
        if not signal_id:
            return ["", gr.HTML(visible=False), None, None,
                    "_No signal chosen. Signals waiting for review appear in the queue above._",
                    ""]
        view = sv.signal_view(ctx, signal_id)
        banner = gr.HTML(_banner(sv.SIMULATED_BANNER), visible=view.simulated)
        return [view.signal_id, banner, _image(view.charts["daily"]),
                _image(view.charts["weekly"]), view.markdown, view.indicators_markdown]

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(sv.header_markdown(ctx), elem_id="header")
        if resources["market_data"].source == "simulated":
            gr.HTML(_banner("SIMULATED market data: bars are generated, not market prices. "
                            "Nothing on this page is a real market view."))

        with gr.Tabs():
            # ---------------------------------------------------------------- symbols
            with gr.Tab("Symbols", id="symbols") as symbols_tab:
                sym_status = gr.Markdown(elem_id="symbols-status")
                with gr.Row(equal_height=True):
                    add_box = gr.Textbox(label="Add symbols", placeholder="AAPL, MSFT, BRK.B",
                                         elem_id="add-symbols", scale=4)
                    add_btn = gr.Button("Add", variant="primary", elem_id="add-button",
                                        scale=1)
                symbols_df = gr.Dataframe(label="Symbols (Dagster dynamic partitions)",
                                          interactive=False, elem_id="symbols-table",
                                          headers=sv.SYMBOL_COLUMNS, wrap=True,
                                          column_widths=["80px", "75px", "75px", "90px",
                                                         "80px", "100px", "90px", "100px",
                                                         "290px", "250px"])
                with gr.Row(equal_height=True):
                    pick = gr.Dropdown(label="Symbol", choices=[], elem_id="symbol-pick",
                                       scale=2)
                    run_btn = gr.Button("Run now", variant="primary", elem_id="run-now")
                    enable_btn = gr.Button("Enable", elem_id="enable")
                    disable_btn = gr.Button("Disable", elem_id="disable")
                    remove_btn = gr.Button("Remove", variant="stop", elem_id="remove")
                    refresh_btn = gr.Button("Refresh", elem_id="refresh-symbols")
                with gr.Accordion("Settings of the chosen symbol", open=True):
                    with gr.Row():
                        f_enabled = gr.Checkbox(label="Enabled", value=True)
                        f_auto = gr.Checkbox(label="Auto-approve")
                        f_priority = gr.Textbox(label="Priority (-1000..1000)")
                        f_size = gr.Textbox(label="Position size % of equity")
                        f_exposure = gr.Textbox(label="Max exposure % of equity")
                    with gr.Row():
                        f_risk = gr.Dropdown(label="Risk level", choices=list(sv.RISK_LEVELS),
                                             value="medium")
                        f_conf = gr.Textbox(label="Minimum confidence (0-100)")
                        f_exchange = gr.Textbox(label="Exchange", placeholder="SMART")
                        f_primary = gr.Textbox(label="Primary exchange", placeholder="NASDAQ")
                        f_currency = gr.Textbox(label="Currency", placeholder="USD")
                    save_btn = gr.Button("Save settings", elem_id="save-settings")
                gr.Markdown("#### Runs started here")
                runs_md = gr.Markdown(elem_id="runs")
                seen_version = gr.State(0)
                timer = gr.Timer(4)

            # ---------------------------------------------------------------- review
            with gr.Tab("Signal review", id="review") as review_tab:
                review_status = gr.Markdown(elem_id="review-status")
                queue_df = gr.Dataframe(label="Waiting for a person: pending review, not placed or "
                                              "order failed (newest first)",
                                        interactive=False, headers=sv.QUEUE_COLUMNS,
                                        elem_id="queue-table", max_height=240)
                with gr.Row(equal_height=True):
                    signal_pick = gr.Dropdown(label="Signal", choices=[], scale=4,
                                              elem_id="signal-pick")
                    reload_btn = gr.Button("Reload queue", scale=1, elem_id="reload-queue")
                current = gr.State("")
                sim_banner = gr.HTML(visible=False, elem_id="signal-simulated")
                with gr.Row():
                    daily_img = gr.Image(label="Daily chart", type="pil", interactive=False,
                                         format="png", buttons=["fullscreen"],
                                         elem_id="daily-chart")
                    weekly_img = gr.Image(label="Weekly chart", type="pil", interactive=False,
                                          format="png", buttons=["fullscreen"],
                                          elem_id="weekly-chart")
                with gr.Row():
                    with gr.Column(scale=3):
                        detail = gr.Markdown(elem_id="signal-detail")
                        note = gr.Textbox(label="Note (stored with the decision)", lines=2,
                                          elem_id="review-note")
                        with gr.Row():
                            approve_btn = gr.Button("Approve", variant="primary",
                                                    elem_id="approve")
                            reject_btn = gr.Button("Reject", variant="stop", elem_id="reject")
                    with gr.Column(scale=2):
                        indicators_md = gr.Markdown(elem_id="signal-indicators")

            # ---------------------------------------------------------------- history
            with gr.Tab("History", id="history") as history_tab:
                with gr.Row(equal_height=True):
                    h_symbol = gr.Textbox(label="Symbol", placeholder="all")
                    h_status = gr.Dropdown(label="Status", value=_STATUS_ANY,
                                           choices=[_STATUS_ANY, *sv.STATUS_CHOICES])
                    h_from = gr.Textbox(label="Bar date from", placeholder="YYYY-MM-DD")
                    h_to = gr.Textbox(label="Bar date to", placeholder="YYYY-MM-DD")
                    h_btn = gr.Button("Search", variant="primary", elem_id="history-search")
                history_status = gr.Markdown(elem_id="history-status")
                history_df = gr.Dataframe(label="Signals (newest first)", interactive=False,
                                          headers=sv.HISTORY_COLUMNS, wrap=True,
                                          datatype=sv.HISTORY_DATATYPES,
                                          elem_id="history-table",
                                          column_widths=["170px", "80px", "100px", "70px",
                                                         "100px", "120px", "110px", "170px",
                                                         "200px", "170px", "150px", "100px",
                                                         "100px", "290px"])

            # ---------------------------------------------------------------- portfolio
            with gr.Tab("Portfolio and orders", id="portfolio") as portfolio_tab:
                portfolio_status = gr.Markdown(elem_id="portfolio-status")
                account_md = gr.Markdown(elem_id="account")
                positions_df = gr.Dataframe(label="Positions", interactive=False,
                                            headers=sv.POSITION_COLUMNS)
                orders_df = gr.Dataframe(label="Orders ledger (newest first)",
                                         interactive=False, headers=sv.ORDER_COLUMNS, wrap=True)
                decisions_df = gr.Dataframe(label="Recent order decisions", interactive=False,
                                            headers=sv.DECISION_COLUMNS, wrap=True,
                                            datatype=["str"] * 5 + ["markdown"],
                                            column_widths=["170px", "80px", "70px", "420px",
                                                           "290px", "100px"])
                portfolio_btn = gr.Button("Refresh", elem_id="refresh-portfolio")

            # ---------------------------------------------------------------- scorecard
            with gr.Tab("Scorecard", id="scorecard") as scorecard_tab:
                with gr.Row(equal_height=True):
                    sc_horizon = gr.Dropdown(label="Horizon (bars after the signal)",
                                             choices=[("1 bar", 1), ("5 bars", 5),
                                                      ("20 bars", 20)],
                                             value=5, elem_id="scorecard-horizon", scale=3)
                    sc_btn = gr.Button("Refresh", elem_id="refresh-scorecard", scale=1)
                sc_status = gr.Markdown(elem_id="scorecard-status")
                sc_banner = gr.HTML(visible=False, elem_id="scorecard-simulated")
                sc_note = gr.Markdown(elem_id="scorecard-note")
                with gr.Column(visible=False) as sc_results:
                    with gr.Row():
                        sc_hit_img = gr.Image(label="Hit rate by action", type="pil",
                                              interactive=False, format="png",
                                              buttons=["fullscreen"],
                                              elem_id="scorecard-hit-rate")
                        sc_cal_img = gr.Image(label="Calibration", type="pil",
                                              interactive=False, format="png",
                                              buttons=["fullscreen"],
                                              elem_id="scorecard-calibration")
                    sc_tables = {name: gr.Dataframe(label=title, interactive=False, wrap=True,
                                                    elem_id=f"scorecard-{name}".replace("_", "-"))
                                 for name, title in sv.SCORECARD_TABLES.items()}

        components = {"enabled": f_enabled, "auto_approve": f_auto, "priority": f_priority,
                      "position_size_pct": f_size, "max_exposure_pct": f_exposure,
                      "risk_level": f_risk, "min_confidence": f_conf, "exchange": f_exchange,
                      "primary_exchange": f_primary, "currency": f_currency}
        form = [components[name] for name in FORM_FIELDS]
        private: dict[str, Any] = {"api_visibility": "private"}

        # ------------------------------------------------------------ symbol handlers
        @_guarded(2 + len(form))
        def choose_symbol(symbol: str | None) -> tuple[Any, ...]:
            settings = sv.settings_of(ctx, symbol) if symbol else None
            return ("", symbol, *_form_values(settings))

        @_guarded(2 + len(form))
        def choose_symbol_row(evt: gr.SelectData) -> tuple[Any, ...]:
            row = evt.row_value or []
            return (choose_symbol.__wrapped__(str(row[0])) if row
                    else (gr.skip(),) * (2 + len(form)))

        @_guarded(4 + len(form))
        def add(raw: str) -> tuple[Any, ...]:
            message = sv.add_new_symbols(ctx, raw)
            chosen = parse_symbols(raw)[-1]  # valid: add_new_symbols accepted it
            picker, *values = pick_and_form(chosen)
            return (_ok(message), sv.symbols_table(ctx), picker, "", *values)

        @_guarded(3 + len(form))
        def remove(symbol: str | None) -> tuple[Any, ...]:
            message = sv.remove_symbol(ctx, symbol or "")
            return (_ok(message), sv.symbols_table(ctx), *pick_and_form(None))

        def toggle(enabled: bool) -> Callable[..., Any]:
            @_guarded(3)
            def handler(symbol: str | None) -> tuple[Any, ...]:
                message = sv.set_enabled(ctx, symbol or "", enabled)
                return _ok(message), sv.symbols_table(ctx), enabled

            return handler

        @_guarded(2)
        def save(symbol: str | None, *values: Any) -> tuple[Any, ...]:
            message = sv.save_settings(ctx, symbol or "",
                                       dict(zip(FORM_FIELDS, values, strict=True)))
            return _ok(message), sv.symbols_table(ctx)

        @_guarded(3)
        def run(symbol: str | None) -> tuple[Any, ...]:
            message = sv.run_now(ctx, symbol or "")
            return _ok(escape(message)), sv.symbols_table(ctx), sv.launches_markdown(ctx)

        @_guarded(3 + len(form))
        def refresh_symbols(symbol: str | None) -> tuple[Any, ...]:
            return ("", sv.symbols_table(ctx), *pick_and_form(symbol))

        def tick(seen: int) -> tuple[Any, ...]:
            """Follow background runs; refresh the table only when one has ended."""
            try:
                version = ctx.launcher.version
                table = sv.symbols_table(ctx) if version != seen else gr.skip()
                return sv.launches_markdown(ctx), table, version
            except Exception:  # a timer has nobody to tell; the next tick tries again
                log.exception("refreshing the runs panel failed")
                return gr.skip(), gr.skip(), seen

        add_event = dict(fn=add, inputs=[add_box],
                         outputs=[sym_status, symbols_df, pick, add_box, *form], **private)
        add_btn.click(**add_event)
        add_box.submit(**add_event)
        pick.input(choose_symbol, inputs=[pick], outputs=[sym_status, pick, *form], **private)
        symbols_df.select(choose_symbol_row, inputs=None, outputs=[sym_status, pick, *form],
                          **private)
        remove_btn.click(remove, inputs=[pick], outputs=[sym_status, symbols_df, pick, *form],
                         **private)
        enable_btn.click(toggle(True), inputs=[pick],
                         outputs=[sym_status, symbols_df, f_enabled], **private)
        disable_btn.click(toggle(False), inputs=[pick],
                          outputs=[sym_status, symbols_df, f_enabled], **private)
        save_btn.click(save, inputs=[pick, *form], outputs=[sym_status, symbols_df], **private)
        run_btn.click(run, inputs=[pick], outputs=[sym_status, symbols_df, runs_md], **private)
        refresh_btn.click(refresh_symbols, inputs=[pick],
                          outputs=[sym_status, symbols_df, pick, *form], **private)
        symbols_tab.select(refresh_symbols, inputs=[pick],
                           outputs=[sym_status, symbols_df, pick, *form], **private)
        timer.tick(tick, inputs=[seen_version], outputs=[runs_md, symbols_df, seen_version],
                   show_progress="hidden", **private)

        # ------------------------------------------------------------ review handlers
        view_targets = [current, sim_banner, daily_img, weekly_img, detail, indicators_md]

        @_guarded(1 + len(view_targets))
        def show_signal(signal_id: str | None) -> tuple[Any, ...]:
            return ("", *view_outputs(signal_id or ""))

        @_guarded(2 + len(view_targets))
        def show_signal_row(evt: gr.SelectData) -> tuple[Any, ...]:
            row = evt.row_value or []
            signal_id = str(row[-1]) if row else ""
            return ("", signal_id, *view_outputs(signal_id))

        @_guarded(3 + len(view_targets))
        def reload_queue(keep: str | None) -> tuple[Any, ...]:
            table, dropdown, value = queue_outputs(keep)
            return ("", table, dropdown, *view_outputs(value))

        def decide(decision: str) -> Callable[..., Any]:
            @_guarded(4 + len(view_targets))
            def handler(signal_id: str, note_text: str, request: gr.Request) -> tuple[Any, ...]:
                reviewer = sv.reviewer_name(getattr(request, "username", None))
                message = sv.review(ctx, signal_id, decision, note_text, reviewer)
                table, dropdown, _ = queue_outputs(None, select_first=False)
                # The reviewed signal stays on screen so its new status is visible.
                return (_ok(message), table, dropdown, "", *view_outputs(signal_id))

            return handler

        review_outputs = [review_status, queue_df, signal_pick, *view_targets]
        signal_pick.input(show_signal, inputs=[signal_pick],
                          outputs=[review_status, *view_targets], **private)
        queue_df.select(show_signal_row, inputs=None,
                        outputs=[review_status, signal_pick, *view_targets], **private)
        reload_btn.click(reload_queue, inputs=[current], outputs=review_outputs, **private)
        review_tab.select(reload_queue, inputs=[current], outputs=review_outputs, **private)
        decision_outputs = [review_status, queue_df, signal_pick, note, *view_targets]
        approve_btn.click(decide("approve"), inputs=[current, note], outputs=decision_outputs,
                          **private)
        reject_btn.click(decide("reject"), inputs=[current, note], outputs=decision_outputs,
                         **private)

        # ------------------------------------------------------------ history handlers
        @_guarded(2)
        def search(symbol: str, status: str, since: str, until: str) -> tuple[Any, ...]:
            table = sv.history_table(ctx, symbol, "" if status == _STATUS_ANY else status,
                                     since, until)
            return f"{len(table)} signal(s).", table

        history_inputs = [h_symbol, h_status, h_from, h_to]
        h_btn.click(search, inputs=history_inputs, outputs=[history_status, history_df],
                    **private)
        history_tab.select(search, inputs=history_inputs, outputs=[history_status, history_df],
                           **private)

        # ------------------------------------------------------------ portfolio handlers
        @_guarded(5)
        def portfolio() -> tuple[Any, ...]:
            orders, decisions = sv.orders_table(ctx), sv.decisions_table(ctx)
            try:
                account, positions = sv.account_markdown(ctx), sv.positions_table(ctx)
            except UIError as exc:  # the ledger is ours and still worth showing
                gr.Warning(escape(str(exc)), title="Broker unavailable")
                return _refusal(str(exc)), gr.skip(), gr.skip(), orders, decisions
            return "", account, positions, orders, decisions

        portfolio_outputs = [portfolio_status, account_md, positions_df, orders_df,
                             decisions_df]
        portfolio_btn.click(portfolio, outputs=portfolio_outputs, **private)
        portfolio_tab.select(portfolio, outputs=portfolio_outputs, **private)

        # ------------------------------------------------------------ scorecard handlers
        @_guarded(5 + len(sc_tables))
        def scorecard(horizon: Any) -> tuple[Any, ...]:
            view = sv.scorecard_view(ctx, horizon)
            banner = gr.HTML(_banner(sv.SIMULATED_SCORECARD), visible=view.simulated)
            if view.empty:
                return ("", banner, view.markdown, gr.Column(visible=False), None, None,
                        *[None for _ in sc_tables])
            return ("", banner, view.markdown, gr.Column(visible=True),
                    _image(view.plots.get("hit_rate")), _image(view.plots.get("calibration")),
                    *[view.tables[name] for name in sc_tables])

        scorecard_outputs = [sc_status, sc_banner, sc_note, sc_results, sc_hit_img, sc_cal_img,
                             *sc_tables.values()]
        sc_btn.click(scorecard, inputs=[sc_horizon], outputs=scorecard_outputs, **private)
        sc_horizon.input(scorecard, inputs=[sc_horizon], outputs=scorecard_outputs, **private)
        scorecard_tab.select(scorecard, inputs=[sc_horizon], outputs=scorecard_outputs,
                             **private)

        # ------------------------------------------------------------ first paint
        @_guarded(6 + len(form) + len(view_targets))
        def first_paint() -> tuple[Any, ...]:
            table, dropdown, value = queue_outputs(None)
            return ("", sv.symbols_table(ctx), *pick_and_form(None), sv.launches_markdown(ctx),
                    table, dropdown, *view_outputs(value))

        app.load(first_paint, outputs=[sym_status, symbols_df, pick, *form, runs_md, queue_df,
                                       signal_pick, *view_targets], **private)

    app.ui_context = ctx  # type: ignore[attr-defined]  # tests reach the launcher through it
    return app
