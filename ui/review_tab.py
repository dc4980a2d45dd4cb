"""The Signal review tab: the signals a person can act on, one signal with its levels drawn on
its chart, the charts the analyst saw, its indicators and audit trail, and the decision
(Approve runs the orders step's pre-trade checks first; Cancel takes a working order back)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd

from resources.review import approve_signal, cancel_working_order
from trading_assets.core.charts import render_chart, signal_levels
from trading_assets.core.errors import error_text
from trading_assets.core.keys import indicators_key
from trading_assets.core.lifecycle import allowed_targets
from trading_assets.core.review import REVIEW_DECISIONS, reviewer_name
from trading_assets.core.signal import SignalStatus
from ui.config import UIContext, UIError
from ui.format import (
    checked_png,
    data_label,
    escape,
    escape_html,
    mlflow_cell,
    num,
    pil_image,
    run_link,
    toast_text,
    when,
)
from ui.widgets import PRIVATE, STORED_TEXT, banner, done, guarded

QUEUE_COLUMNS = ["created", "symbol", "action", "conf", "bar date", "status", "reason",
                 "analyst", "id"]
QUEUE_WIDTHS = ["135px", "75px", "75px", "55px", "100px", "140px", "310px", "140px", "85px"]
# Decisions a person takes here besides approve / reject.
CANCEL = "cancel"
SIMULATED_BANNER = (
    "SIMULATED DATA: this signal was computed from generated bars, not market prices. "
    "Do not trade on it; set TRADING_DATA_SOURCE to csv, url or ibkr for real data."
)


def pending_signals(ctx: UIContext) -> list[Any]:
    """Signals waiting for a person's first decision, newest first (a HOLD, a LOW call or a
    SELL with nothing to sell is no_action and never waits here)."""
    return ctx.app_db.list_signals(status=SignalStatus.PENDING_REVIEW.value)


def retry_signals(ctx: UIContext) -> list[Any]:
    """Approved signals that ended without an order for a reason that can change by itself
    (cash, exposure, working orders, the broker cancelled it), newest first: each may be
    approved again. A refusal of the signal's own numbers is not offered."""
    rows = [r for r in ctx.app_db.list_signals(status=SignalStatus.NOT_PLACED.value)
            if r.retryable]
    rows += ctx.app_db.list_signals(status=SignalStatus.ORDER_FAILED.value)
    return sorted(rows, key=lambda row: row.updated_at, reverse=True)


def queue_table(rows: Sequence[Any]) -> pd.DataFrame:
    """One row a signal; the id is shortened (the detail pane shows it whole, to copy)."""
    return pd.DataFrame([{
        "created": when(r.created_at), "symbol": r.symbol, "action": r.action or "ERROR",
        "conf": r.confidence_score, "bar date": str(r.bar_date), "status": r.status,
        "reason": r.status_reason[:300], "analyst": f"{r.provider}/{r.model}", "id": r.id[:8],
    } for r in rows], columns=QUEUE_COLUMNS)


def signal_label(row: Any) -> str:
    simulated = " · simulated" if row.simulated else ""
    score = "–" if row.confidence_score is None else row.confidence_score
    return (f"{row.symbol} {row.action or 'ERROR'} {score} · {row.status} · "
            f"{row.bar_date}{simulated} · {row.id[:8]}")


@dataclass
class SignalView:
    """What the review tab shows for one signal."""

    signal_id: str
    status: str
    simulated: bool
    markdown: str
    indicators_markdown: str
    charts: dict[str, bytes | None]  # the charts the analyst saw
    levels_chart: bytes | None = None  # the daily chart with the signal's levels drawn
    actions: frozenset[str] = field(default_factory=frozenset)  # approve, reject, cancel


_LEVEL_ROWS = [("entry", "entry_price"), ("stop", "stop_loss"), ("target", "take_profit"),
               ("R multiple", "r_multiple"), ("support", "support"),
               ("resistance", "resistance"), ("size % of equity", "position_size_pct")]
_INDICATOR_ROWS = [("close", "close"), ("sma_20", "SMA 20"), ("sma_50", "SMA 50"),
                   ("sma_200", "SMA 200"), ("rsi_14", "RSI 14"), ("macd", "MACD"),
                   ("macd_signal", "MACD signal"), ("macd_hist", "MACD histogram"),
                   ("bb_upper", "Bollinger upper"), ("bb_lower", "Bollinger lower"),
                   ("atr_14", "ATR 14"), ("volume", "volume"), ("volume_sma_20", "volume SMA 20")]


def actions_for(status: str) -> frozenset[str]:
    """The decisions a person can take on a signal in this status (the transition table's)."""
    targets = allowed_targets(status, "person")
    found = {word for word, target in (("approve", SignalStatus.APPROVED),
                                       ("reject", SignalStatus.REJECTED)) if target in targets}
    if status == SignalStatus.WORKING.value:
        found.add(CANCEL)
    return frozenset(found)


def levels_chart(ctx: UIContext, row: Any, signal: dict[str, Any]) -> tuple[bytes | None, str]:
    """The symbol's stored daily bars drawn by the project's chart code with the signal's
    entry, stop and target as labelled lines (the charts the model saw stay as they were)."""
    try:
        frame = ctx.store.read_frame(indicators_key(row.symbol, "daily"))
    except Exception as exc:  # no bars stored (yet, or any more): a message, not a crash
        return None, f"The levels chart could not be drawn: {error_text(exc)}"
    levels = signal_levels(signal.get("entry_price"), signal.get("stop_loss"),
                           signal.get("take_profit"))
    title = (f"{row.symbol} daily · {row.action or 'ERROR'} {num(row.confidence_score, 0)} "
             f"of {row.bar_date}")
    image = render_chart(row.symbol, frame, "daily", simulated=bool(row.simulated),
                         levels=levels, title=title)
    return image.png, ""


def signal_view(ctx: UIContext, signal_id: str) -> SignalView:
    """The signal with its levels chart, the analyst's charts (read through the object store
    only), its levels, indicators and audit trail, and what a person may do with it."""
    row = ctx.app_db.get_signal(signal_id) if signal_id else None
    if row is None:
        raise UIError(f"No signal with id {signal_id!r}; refresh the queue.")
    signal = row.signal_json or {}
    lines = [f"### {escape(row.symbol)} · {escape(row.action or 'ERROR')} · confidence "
             f"{num(row.confidence_score, 0)} ({escape(row.confidence_level or '–')})",
             f"**Status: {escape(row.status)}** · bar date {row.bar_date} · trend "
             f"{escape(signal.get('trend', '–'))}", "",
             f"Signal id `{escape(row.id)}`", ""]
    if row.error:
        lines += [f"**Analyst error:** {escape(row.error)}", ""]
    if row.status_reason:
        lines += [f"**Why {escape(row.status)}:** {escape(row.status_reason)}", ""]
    if row.status in (SignalStatus.NOT_PLACED.value, SignalStatus.ORDER_FAILED.value):
        lines += ["_No order was placed. Approve to try again (a new order attempt with its own "
                  "orderRef, checked again first), or reject._", ""]
    if row.status == SignalStatus.WORKING.value:
        lines += ["_Its entry order rests at the broker until it fills or its time in force "
                  "ends. Cancel order takes it (and its exits) back._", ""]
    if signal.get("reasoning"):
        lines += [f"**Reasoning.** {escape(signal['reasoning'])}", ""]
    factors = signal.get("key_factors") or []
    if factors:
        lines += ["**Key factors**", *[f"- {escape(f)}" for f in factors], ""]
    # Level by row: seven columns in the narrow detail pane broke every header mid-word.
    lines += ["**Levels**", "", "| level | value |", "|---|---|",
              *(f"| {label} | {num(signal.get(key))} |" for label, key in _LEVEL_ROWS), ""]
    order = ctx.app_db.order_for_signal(row.id)
    if order is not None:
        lines += [f"**Order:** {escape(order.action)} {order.quantity:g} "
                  f"{escape(order.order_type)} · {escape(order.status)} · orderRef "
                  f"`{escape(order.order_ref)}`", ""]
    tokens = f"{row.prompt_tokens}+{row.completion_tokens} tokens"
    dagster_link = run_link(row.dagster_run_id, ctx.dagster_run_url(row.dagster_run_id))
    lines += [f"**Analyst:** {escape(row.provider)} / {escape(row.model)} · prompt "
              f"{escape(row.prompt_version or '–')} · {tokens} · cost ${row.cost_usd:.4f} · "
              f"{row.latency_s:.2f} s", "",
              f"**Data source:** {escape(data_label(row))}", "",
              f"**Dagster run:** {dagster_link or '–'} · **MLflow run:** "
              f"{mlflow_cell(ctx, row.mlflow_run_id)}", ""]
    reviews = ctx.app_db.reviews_for(row.id)
    if reviews:
        lines.append("**Reviews**")
        lines += [f"- {escape(r.decision)} by {escape(r.reviewer)} at {when(r.decided_at)}"
                  + (f": {escape(r.note)}" if r.note else "") for r in reviews]
    charts: dict[str, bytes | None] = {}
    for timeframe in ("daily", "weekly"):
        key = (row.chart_keys or {}).get(timeframe)
        charts[timeframe] = None
        if not key:
            lines.append(f"\n_No {timeframe} chart was recorded for this signal._")
            continue
        try:
            data = ctx.store.get_bytes(key)
        except Exception as exc:  # a missing or unreadable object is shown, not raised
            lines.append(f"\n_The {timeframe} chart could not be read: {escape(exc)}_")
            continue
        charts[timeframe], problem = checked_png(data, f"The {timeframe} chart")
        if problem:
            lines.append(f"\n_{escape(problem)}_")
    drawn, problem = levels_chart(ctx, row, signal)
    if problem:
        lines.append(f"\n_{escape(problem)}_")
    return SignalView(signal_id=row.id, status=row.status, simulated=bool(row.simulated),
                      markdown="\n".join(lines), indicators_markdown=indicator_table(row),
                      charts=charts, levels_chart=drawn, actions=actions_for(row.status))


def indicator_table(row: Any) -> str:
    """The latest daily and weekly indicator values the analyst saw, as a Markdown table."""
    indicators = row.indicators or {}
    daily, weekly = indicators.get("daily") or {}, indicators.get("weekly") or {}
    if not daily and not weekly:
        return "_No indicator summary was recorded for this signal._"
    lines = ["**Indicators** (latest bar)", "", "| indicator | daily | weekly |", "|---|---|---|"]
    lines += [f"| {label} | {num(daily.get(key))} | {num(weekly.get(key))} |"
              for key, label in _INDICATOR_ROWS if key in daily or key in weekly]
    return "\n".join(lines)


def review(ctx: UIContext, signal_id: str, decision: str, note: str, reviewer: str) -> str:
    """Approve (after the pre-trade checks), reject, or cancel a working order, recording who,
    when and why."""
    if not signal_id:
        raise UIError("Choose a signal from the queue first.")
    if decision != CANCEL and decision not in REVIEW_DECISIONS:
        raise UIError(f"Unknown decision {decision!r}; approve, reject or cancel.")
    note = (note or "").strip()
    try:  # the database refuses an over-long note or reviewer name, and a settled signal
        if decision == CANCEL:
            row = cancel_working_order(app_db=ctx.app_db, broker=ctx.broker,
                                       signal_id=signal_id, reviewer=reviewer, note=note)
        elif REVIEW_DECISIONS[decision] is SignalStatus.APPROVED:  # the orders step's checks
            row = approve_signal(app_db=ctx.app_db, policy=ctx.resources["policy"],
                                 store=ctx.store, broker=ctx.broker, signal_id=signal_id,
                                 reviewer=reviewer, note=note)
        else:
            row = ctx.app_db.review_signal(signal_id, REVIEW_DECISIONS[decision],
                                           reviewer=reviewer, note=note)
    except (KeyError, ValueError) as exc:  # ReviewRefused too: the checks' reason
        raise UIError(error_text(exc)) from exc
    follow = {
        SignalStatus.APPROVED.value: " The pre-trade checks passed. " + (
            "The approved_signals sensor (or Run now) sends it to the orders step, which "
            "checks again before it places." if ctx.daemon().up else
            "Its order waits for the Dagster daemon, which is not running: nothing sends this "
            "approval to the orders step until it starts (`make up` or `make dev`), or until "
            "Run now on the Symbols tab."),
        SignalStatus.ORDER_FAILED.value: " Its order was cancelled at the broker.",
    }.get(row.status, "")
    return (f"{row.symbol} {row.action} signal {row.id[:8]} is now **{row.status}** by "
            f"{escape(reviewer)} at {when(datetime.now(UTC))}.{follow}")


# ---------------------------------------------------------------------------------- the tab


@dataclass
class ReviewTab:
    """The Signal review tab's components; the page paints `first_outputs` on load."""

    ctx: UIContext
    c: SimpleNamespace  # the components by name

    @property
    def first_outputs(self) -> list[Any]:
        return [self.c.status, *self.c.lists, *self.c.view]

    def first_values(self) -> list[Any]:
        """Status, both lists, the picker on the newest signal, and that signal."""
        lists, value = list_outputs(self.ctx, None)
        return [gr.skip(), *lists, *view_outputs(self.ctx, value, simulated_page(self.ctx))]


def simulated_page(ctx: UIContext) -> bool:
    """Whether the page already carries the SIMULATED banner (ui/page.py)."""
    return ctx.resources["market_data"].source == "simulated"


def list_outputs(ctx: UIContext, keep: str | None = None, select_first: bool = True
                 ) -> tuple[list[Any], str]:
    """Both tables, their ids (for row clicks), the picker (kept on `keep` even when it left
    the lists, so a decided signal stays chosen) and the chosen id."""
    waiting, retry = pending_signals(ctx), retry_signals(ctx)
    rows = [*waiting, *retry]
    ids = [r.id for r in rows]
    choices = [(signal_label(r), r.id) for r in rows]
    if keep and keep not in ids and (kept := ctx.app_db.get_signal(keep)) is not None:
        choices.insert(0, (signal_label(kept), kept.id))
    value = keep if keep and any(v == keep for _, v in choices) else (
        ids[0] if ids and select_first else None)
    return ([queue_table(waiting), [r.id for r in waiting], queue_table(retry),
             [r.id for r in retry], gr.Dropdown(choices=choices, value=value)], value or "")


def view_outputs(ctx: UIContext, signal_id: str, simulated_page: bool = True) -> list[Any]:
    """Chosen id, simulated banner, the levels chart, both analyst charts, detail, indicators
    and the three buttons, enabled only where a person may act."""
    if not signal_id:
        return ["", gr.HTML(visible=False), None, None, None,
                "_No signal chosen. Signals waiting for a person appear in the lists above._",
                "", *(gr.Button(interactive=False) for _ in range(3))]
    view = signal_view(ctx, signal_id)
    # One SIMULATED notice per view: the page's banner, or (real data today, an old simulated
    # signal) this one.
    shown = gr.HTML(banner(SIMULATED_BANNER), visible=view.simulated and not simulated_page)
    return [view.signal_id, shown, pil_image(view.levels_chart), pil_image(view.charts["daily"]),
            pil_image(view.charts["weekly"]), view.markdown, view.indicators_markdown,
            *(gr.Button(interactive=action in view.actions)
              for action in ("approve", "reject", CANCEL))]


def _layout() -> SimpleNamespace:
    """The tab's components (inside the page's gr.Tabs)."""
    c = SimpleNamespace()
    with gr.Tab("Signal review", id="review") as c.tab:
        c.status = gr.Markdown(elem_id="review-status", **STORED_TEXT)
        c.queue = gr.Dataframe(label="Waiting for a person (newest first)", interactive=False,
                               headers=QUEUE_COLUMNS, elem_id="queue-table", max_height=240,
                               wrap=True, column_widths=QUEUE_WIDTHS)
        c.retry = gr.Dataframe(label="Refused or failed, may be approved again: the reason can "
                                     "change by itself (cash, exposure, the broker)",
                               interactive=False, headers=QUEUE_COLUMNS, elem_id="retry-table",
                               max_height=200, wrap=True, column_widths=QUEUE_WIDTHS)
        c.queue_ids, c.retry_ids = gr.State([]), gr.State([])
        with gr.Row(equal_height=True):
            c.pick = gr.Dropdown(label="Signal", choices=[], scale=4, elem_id="signal-pick")
            c.reload_btn = gr.Button("Reload lists", scale=1, elem_id="reload-queue")
        current = gr.State("")
        sim_banner = gr.HTML(visible=False, elem_id="signal-simulated")
        with gr.Row():
            with gr.Column(scale=3):
                # No label: Gradio's label would sit on the chart's title (the symbol).
                levels = gr.Image(show_label=False, type="pil", interactive=False,
                                  format="png", buttons=["fullscreen"], elem_id="levels-chart")
                with gr.Accordion("Charts the analyst saw", open=False):
                    daily = gr.Image(show_label=False, type="pil", interactive=False,
                                     format="png", buttons=["fullscreen"],
                                     elem_id="daily-chart")
                    weekly = gr.Image(show_label=False, type="pil", interactive=False,
                                      format="png", buttons=["fullscreen"],
                                      elem_id="weekly-chart")
            with gr.Column(scale=2):
                detail = gr.Markdown(elem_id="signal-detail", **STORED_TEXT)
                c.note = gr.Textbox(label="Note (stored with the decision)", lines=2,
                                    elem_id="review-note")
                with gr.Row():
                    c.approve_btn = gr.Button("Approve", variant="primary", elem_id="approve")
                    c.reject_btn = gr.Button("Reject", variant="stop", elem_id="reject")
                    c.cancel_btn = gr.Button("Cancel order", elem_id="cancel-order")
                # Right under the buttons: where the person looks after pressing one.
                c.feedback = gr.Markdown(elem_id="review-feedback", **STORED_TEXT)
                indicators = gr.Markdown(elem_id="signal-indicators", **STORED_TEXT)
    c.current = current
    c.lists = [c.queue, c.queue_ids, c.retry, c.retry_ids, c.pick]
    c.view = [current, sim_banner, levels, daily, weekly, detail, indicators, c.approve_btn,
              c.reject_btn, c.cancel_btn]
    return c


def _wire(ctx: UIContext, c: SimpleNamespace) -> None:
    """Choosing a signal (picker or a row of either list), reloading, and the decisions."""
    n_view, n_lists = len(c.view), len(c.lists)
    page_is_simulated = simulated_page(ctx)

    def view(signal_id: str) -> list[Any]:
        return view_outputs(ctx, signal_id, page_is_simulated)

    @guarded(1 + n_view)
    def show_signal(signal_id: str | None) -> tuple[Any, ...]:
        return ("", *view(signal_id or ""))

    def show_row(evt: gr.SelectData, ids: list[str]) -> tuple[Any, ...]:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        signal_id = ids[row] if isinstance(row, int) and 0 <= row < len(ids) else ""
        return ("", signal_id, *view(signal_id))

    show_row_guarded = guarded(2 + n_view)(show_row)

    @guarded(1 + n_lists + n_view)
    def reload_lists(keep: str | None) -> tuple[Any, ...]:
        lists, value = list_outputs(ctx, keep)
        return ("", *lists, *view(value))

    def decide(decision: str) -> Callable[..., Any]:
        @guarded(2 + n_lists + 1 + n_view)
        def handler(signal_id: str, note_text: str, request: gr.Request) -> tuple[Any, ...]:
            reviewer = reviewer_name(getattr(request, "username", None))
            try:
                message = review(ctx, signal_id, decision, note_text, reviewer)
            except UIError as exc:  # the refusal where the person looks, and as a toast
                gr.Warning(escape_html(str(exc)), title="Not done")
                return (gr.skip(), f"**Not done:** {escape(str(exc))}",
                        *(gr.skip() for _ in range(n_lists + 1 + n_view)))
            gr.Info(toast_text(message), title="Done")
            lists, _ = list_outputs(ctx, signal_id, select_first=False)
            # The decided signal stays on screen with its new status and buttons.
            return ("", done(message), *lists, "", *view(signal_id))

        return handler

    c.pick.input(show_signal, inputs=[c.pick], outputs=[c.status, *c.view], **PRIVATE)
    for table, ids in ((c.queue, c.queue_ids), (c.retry, c.retry_ids)):
        table.select(show_row_guarded, inputs=[ids], outputs=[c.status, c.pick, *c.view],
                     **PRIVATE)
    reload_outputs = [c.status, *c.lists, *c.view]
    c.reload_btn.click(reload_lists, inputs=[c.current], outputs=reload_outputs, **PRIVATE)
    c.tab.select(reload_lists, inputs=[c.current], outputs=reload_outputs, **PRIVATE)
    decision_outputs = [c.status, c.feedback, *c.lists, c.note, *c.view]
    for button, decision in ((c.approve_btn, "approve"), (c.reject_btn, "reject"),
                             (c.cancel_btn, CANCEL)):
        button.click(decide(decision), inputs=[c.current, c.note], outputs=decision_outputs,
                     **PRIVATE)


def build_review_tab(ctx: UIContext) -> ReviewTab:
    """The Signal review tab with its handlers wired (call inside the page's gr.Tabs)."""
    c = _layout()
    _wire(ctx, c)
    return ReviewTab(ctx=ctx, c=c)
