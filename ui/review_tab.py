"""The Signal review tab: the queue of signals waiting for a person, one signal with its charts,
levels, indicators and audit trail, and the Approve / Reject decision."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd

from resources.review import approve_signal
from trading_assets.core.errors import error_text
from trading_assets.core.lifecycle import RETRYABLE_STATUSES
from trading_assets.core.review import REVIEW_DECISIONS, reviewer_name
from trading_assets.core.signal import SignalStatus
from ui.config import UIContext, UIError
from ui.format import checked_png, data_label, escape, mlflow_cell, num, pil_image, run_link, when
from ui.widgets import PRIVATE, banner, done, guarded

QUEUE_COLUMNS = ["created", "symbol", "bar date", "action", "confidence", "data", "analyst",
                 "signal id", "status", "reason"]
# What waits for a person: new signals, and approved ones that ended without an order (a risk
# limit refused them, the broker rejected or cancelled, or reconciliation found nothing): those
# are re-approved (a new order attempt) or rejected from the same buttons.
QUEUE_STATUSES = (SignalStatus.PENDING_REVIEW, *sorted(RETRYABLE_STATUSES))


def pending_signals(ctx: UIContext) -> list[Any]:
    """Signals waiting for a person, newest first."""
    rows = [row for status in QUEUE_STATUSES
            for row in ctx.app_db.list_signals(status=status.value)]
    return sorted(rows, key=lambda row: row.created_at, reverse=True)


def queue_table(rows: Sequence[Any]) -> pd.DataFrame:
    return pd.DataFrame([{
        "created": when(r.created_at), "symbol": r.symbol, "bar date": str(r.bar_date),
        "action": r.action or "ERROR", "confidence": r.confidence_score,
        "data": data_label(r), "analyst": f"{r.provider}/{r.model}", "signal id": r.id,
        "status": r.status, "reason": r.status_reason[:200],
    } for r in rows], columns=QUEUE_COLUMNS)


def signal_label(row: Any) -> str:
    simulated = " · SIMULATED" if row.simulated else ""
    score = "–" if row.confidence_score is None else row.confidence_score
    return (f"{row.symbol} {row.action or 'ERROR'} {score} · "
            f"{row.bar_date}{simulated} · {row.id[:8]}")


@dataclass
class SignalView:
    """What the review tab shows for one signal."""

    signal_id: str
    status: str
    simulated: bool
    markdown: str
    indicators_markdown: str
    charts: dict[str, bytes | None]


SIMULATED_BANNER = (
    "SIMULATED DATA: this signal was computed from generated bars, not market prices. "
    "Do not trade on it; set TRADING_DATA_SOURCE to csv, url or ibkr for real data."
)
_INDICATOR_ROWS = [("close", "close"), ("sma_20", "SMA 20"), ("sma_50", "SMA 50"),
                   ("sma_200", "SMA 200"), ("rsi_14", "RSI 14"), ("macd", "MACD"),
                   ("macd_signal", "MACD signal"), ("macd_hist", "MACD histogram"),
                   ("bb_upper", "Bollinger upper"), ("bb_lower", "Bollinger lower"),
                   ("atr_14", "ATR 14"), ("volume", "volume"), ("volume_sma_20", "volume SMA 20")]


def signal_view(ctx: UIContext, signal_id: str) -> SignalView:
    """The signal with its charts (read through the object store only), levels and audit trail."""
    row = ctx.app_db.get_signal(signal_id) if signal_id else None
    if row is None:
        raise UIError(f"No signal with id {signal_id!r}; refresh the queue.")
    signal = row.signal_json or {}
    lines = [f"### {escape(row.symbol)} · {escape(row.action or 'ERROR')} · confidence "
             f"{num(row.confidence_score, 0)} ({escape(row.confidence_level or '–')})",
             f"**Status: {escape(row.status)}** · bar date {row.bar_date} · trend "
             f"{escape(signal.get('trend', '–'))} · signal id `{escape(row.id)}`", ""]
    if row.simulated:
        lines += [f"**⚠ {SIMULATED_BANNER}**", ""]
    if row.error:
        lines += [f"**Analyst error:** {escape(row.error)}", ""]
    if row.status_reason:
        lines += [f"**Why {escape(row.status)}:** {escape(row.status_reason)}", ""]
    if row.status in RETRYABLE_STATUSES:
        lines += ["_No order was placed. Approve to try again (a new order attempt with its own "
                  "orderRef), or reject._", ""]
    if signal.get("reasoning"):
        lines += [f"**Reasoning.** {escape(signal['reasoning'])}", ""]
    factors = signal.get("key_factors") or []
    if factors:
        lines += ["**Key factors**", *[f"- {escape(f)}" for f in factors], ""]
    lines += ["**Levels**", "",
              "| entry | stop | target | R multiple | support | resistance | size % |",
              "|---|---|---|---|---|---|---|",
              "| " + " | ".join(num(signal.get(k)) for k in (
                  "entry_price", "stop_loss", "take_profit", "r_multiple", "support",
                  "resistance", "position_size_pct")) + " |", ""]
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
    return SignalView(signal_id=row.id, status=row.status, simulated=bool(row.simulated),
                      markdown="\n".join(lines), indicators_markdown=indicator_table(row),
                      charts=charts)


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
    """Approve or reject a pending signal, recording who, when and why."""
    if not signal_id:
        raise UIError("Choose a signal from the queue first.")
    chosen = REVIEW_DECISIONS.get(decision)
    if chosen is None:
        raise UIError(f"Unknown decision {decision!r}; approve or reject.")
    note = (note or "").strip()
    try:  # the database refuses an over-long note or reviewer name, and a settled signal
        if chosen is SignalStatus.APPROVED:  # the orders step's own checks, run now
            row = approve_signal(app_db=ctx.app_db, policy=ctx.resources["policy"],
                                 store=ctx.store, broker=ctx.broker, signal_id=signal_id,
                                 reviewer=reviewer, note=note)
        else:
            row = ctx.app_db.review_signal(signal_id, chosen, reviewer=reviewer, note=note)
    except (KeyError, ValueError) as exc:  # ReviewRefused too: the checks' reason
        raise UIError(error_text(exc)) from exc
    follow = (" The approved-signals sensor (or Run now) sends it to the orders step; a hard "
              "risk limit can still refuse it, and then it shows as not_placed with the reason "
              "(min confidence only gates auto-approval)." if chosen is SignalStatus.APPROVED
              else "")
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
        return [self.c.queue, self.c.pick, *self.c.view]

    def first_values(self) -> list[Any]:
        """The queue, its picker on the newest signal, and that signal."""
        table, dropdown, value = queue_outputs(self.ctx, None)
        return [table, dropdown, *view_outputs(self.ctx, value)]


def queue_outputs(ctx: UIContext, keep: str | None = None, select_first: bool = True
                  ) -> tuple[Any, Any, str]:
    """The queue table, its picker (kept on `keep`, else the newest) and the chosen id."""
    rows = pending_signals(ctx)
    choices = [(signal_label(r), r.id) for r in rows]
    ids = [r.id for r in rows]
    value = keep if keep in ids else (ids[0] if ids and select_first else None)
    return queue_table(rows), gr.Dropdown(choices=choices, value=value), value or ""


def view_outputs(ctx: UIContext, signal_id: str) -> list[Any]:
    """Chosen id, simulated banner, both charts, detail and indicators of one signal."""
    if not signal_id:
        return ["", gr.HTML(visible=False), None, None,
                "_No signal chosen. Signals waiting for review appear in the queue above._", ""]
    view = signal_view(ctx, signal_id)
    shown = gr.HTML(banner(SIMULATED_BANNER), visible=view.simulated)
    return [view.signal_id, shown, pil_image(view.charts["daily"]),
            pil_image(view.charts["weekly"]), view.markdown, view.indicators_markdown]


def _layout() -> SimpleNamespace:
    """The tab's components (inside the page's gr.Tabs)."""
    c = SimpleNamespace()
    with gr.Tab("Signal review", id="review") as c.tab:
        c.status = gr.Markdown(elem_id="review-status")
        c.queue = gr.Dataframe(label="Waiting for a person: pending review, not placed or "
                                     "order failed (newest first)",
                               interactive=False, headers=QUEUE_COLUMNS, elem_id="queue-table",
                               max_height=240)
        with gr.Row(equal_height=True):
            c.pick = gr.Dropdown(label="Signal", choices=[], scale=4, elem_id="signal-pick")
            c.reload_btn = gr.Button("Reload queue", scale=1, elem_id="reload-queue")
        current = gr.State("")
        sim_banner = gr.HTML(visible=False, elem_id="signal-simulated")
        with gr.Row():
            daily = gr.Image(label="Daily chart", type="pil", interactive=False, format="png",
                             buttons=["fullscreen"], elem_id="daily-chart")
            weekly = gr.Image(label="Weekly chart", type="pil", interactive=False, format="png",
                              buttons=["fullscreen"], elem_id="weekly-chart")
        with gr.Row():
            with gr.Column(scale=3):
                detail = gr.Markdown(elem_id="signal-detail")
                c.note = gr.Textbox(label="Note (stored with the decision)", lines=2,
                                    elem_id="review-note")
                with gr.Row():
                    c.approve_btn = gr.Button("Approve", variant="primary", elem_id="approve")
                    c.reject_btn = gr.Button("Reject", variant="stop", elem_id="reject")
            with gr.Column(scale=2):
                indicators = gr.Markdown(elem_id="signal-indicators")
    c.current = current
    c.view = [current, sim_banner, daily, weekly, detail, indicators]
    return c


def _wire(ctx: UIContext, c: SimpleNamespace) -> None:
    """Choosing a signal (picker or row), reloading the queue, approving and rejecting."""
    n_view = len(c.view)

    @guarded(1 + n_view)
    def show_signal(signal_id: str | None) -> tuple[Any, ...]:
        return ("", *view_outputs(ctx, signal_id or ""))

    @guarded(2 + n_view)
    def show_signal_row(evt: gr.SelectData) -> tuple[Any, ...]:
        row = evt.row_value or []
        signal_id = str(row[-1]) if row else ""
        return ("", signal_id, *view_outputs(ctx, signal_id))

    @guarded(3 + n_view)
    def reload_queue(keep: str | None) -> tuple[Any, ...]:
        table, dropdown, value = queue_outputs(ctx, keep)
        return ("", table, dropdown, *view_outputs(ctx, value))

    def decide(decision: str) -> Callable[..., Any]:
        @guarded(4 + n_view)
        def handler(signal_id: str, note_text: str, request: gr.Request) -> tuple[Any, ...]:
            reviewer = reviewer_name(getattr(request, "username", None))
            message = review(ctx, signal_id, decision, note_text, reviewer)
            table, dropdown, _ = queue_outputs(ctx, None, select_first=False)
            # The reviewed signal stays on screen so its new status is visible.
            return (done(message), table, dropdown, "", *view_outputs(ctx, signal_id))

        return handler

    c.pick.input(show_signal, inputs=[c.pick], outputs=[c.status, *c.view], **PRIVATE)
    c.queue.select(show_signal_row, inputs=None, outputs=[c.status, c.pick, *c.view],
                   **PRIVATE)
    reload_outputs = [c.status, c.queue, c.pick, *c.view]
    c.reload_btn.click(reload_queue, inputs=[c.current], outputs=reload_outputs, **PRIVATE)
    c.tab.select(reload_queue, inputs=[c.current], outputs=reload_outputs, **PRIVATE)
    decision_outputs = [c.status, c.queue, c.pick, c.note, *c.view]
    for button, decision in ((c.approve_btn, "approve"), (c.reject_btn, "reject")):
        button.click(decide(decision), inputs=[c.current, c.note], outputs=decision_outputs,
                     **PRIVATE)


def build_review_tab(ctx: UIContext) -> ReviewTab:
    """The Signal review tab with its handlers wired (call inside the page's gr.Tabs)."""
    c = _layout()
    _wire(ctx, c)
    return ReviewTab(ctx=ctx, c=c)
