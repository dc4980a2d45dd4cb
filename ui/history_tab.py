"""The History tab: every signal, filtered by symbol, status and bar dates, with its last review
and links to its Dagster and MLflow runs; for one symbol, its price with every past signal."""

from typing import Any

import gradio as gr
import pandas as pd

from trading_assets.core.keys import bars_info_key, outcomes_key
from trading_assets.core.plots import SignalMark, render_history
from trading_assets.core.signal import SignalStatus
from ui.config import UIContext, UIError
from ui.format import (
    check_symbol,
    data_label,
    mlflow_cell,
    parse_day,
    pil_image,
    run_link,
    text_of,
    when,
)
from ui.widgets import PRIVATE, STORED_TEXT, guarded

STATUS_CHOICES = tuple(s.value for s in SignalStatus if s is not SignalStatus.REPLAY)
_STATUS_ANY = "any status"
HISTORY_COLUMNS = ["created", "symbol", "bar date", "action", "confidence", "status", "reason",
                   "reviewed by", "reviewed at", "note", "data", "analyst", "Dagster run",
                   "MLflow run", "signal id"]
HISTORY_DATATYPES = ["str"] * 12 + ["markdown", "markdown", "str"]


def history_table(ctx: UIContext, symbol: str = "", status: str = "", since: str = "",
                  until: str = "") -> pd.DataFrame:
    """Signals newest first, with their last review and links to their Dagster and MLflow runs."""
    wanted = check_symbol(symbol) if text_of(symbol) else None
    status = text_of(status)
    if status and status not in STATUS_CHOICES:
        raise UIError(f"Status {status!r} is not one of {', '.join(STATUS_CHOICES)}.")
    start, end = parse_day("From date", since), parse_day("To date", until)
    if start and end and start > end:
        raise UIError(f"From date {start} is after to date {end}.")
    rows = ctx.app_db.list_signals(symbol=wanted, status=status or None, since=start,
                                   until=end)
    reviews = ctx.app_db.latest_reviews([r.id for r in rows])
    records = []
    for r in rows:
        rv = reviews.get(r.id)
        records.append({
            "created": when(r.created_at), "symbol": r.symbol, "bar date": str(r.bar_date),
            "action": r.action or "ERROR", "confidence": r.confidence_score, "status": r.status,
            "reason": r.status_reason[:200], "reviewed by": rv.reviewer if rv else "",
            "reviewed at": when(rv.decided_at) if rv else "",
            "note": rv.note if rv else (r.error[:200] if r.error else ""),
            "data": data_label(r), "analyst": f"{r.provider}/{r.model}",
            "Dagster run": run_link(r.dagster_run_id, ctx.dagster_run_url(r.dagster_run_id)),
            "MLflow run": mlflow_cell(ctx, r.mlflow_run_id), "signal id": r.id[:8],
        })
    return pd.DataFrame(records, columns=HISTORY_COLUMNS)




HISTORY_BARS = 260  # about a year of daily closes under the marks


def signal_outcomes(ctx: UIContext, symbol: str) -> dict[str, str]:
    """Each scored signal's outcome in words (signal_outcomes asset), by signal id; nothing
    for a signal whose bars are not in yet."""
    try:
        frame = ctx.store.read_frame(outcomes_key(symbol))
    except Exception:  # not scored yet: the marks show without outcomes
        return {}
    found = {}
    for row in frame.itertuples(index=False):
        parts = []
        move = getattr(row, "fwd_return_5", None)
        if move is not None and move == move:  # not NaN
            parts.append(f"{move * 100:+.1f}% at 5 bars")
        trade = getattr(row, "trade_outcome", "")
        if trade in ("target", "stop", "timeout"):
            parts.append(str(trade))
        if parts:
            found[str(row.signal_id)] = ", ".join(parts)
    return found


def symbol_history_png(ctx: UIContext, symbol: str) -> bytes | None:
    """The symbol's closes with every past live signal marked (action, confidence, outcome);
    None when no bars are stored for it."""
    try:
        bars = ctx.store.read_bars(symbol).tail(HISTORY_BARS)
    except Exception:
        return None
    closes = [(day.date(), float(close)) for day, close in zip(bars["date"], bars["close"],
                                                               strict=True)]
    outcomes = signal_outcomes(ctx, symbol)
    marks = [SignalMark(day=r.bar_date, action=r.action, confidence=r.confidence_score or 0,
                        status=r.status, outcome=outcomes.get(r.id, ""))
             for r in ctx.app_db.list_signals(symbol=symbol, limit=500) if r.action]
    simulated = bool(ctx.store.read_json(bars_info_key(symbol)).get("simulated", False))
    return render_history(symbol, closes, marks, simulated)


def build_history_tab(ctx: UIContext) -> None:
    """The History tab with its search wired (call inside the page's gr.Tabs)."""
    with gr.Tab("History", id="history") as tab:
        with gr.Row(equal_height=True):
            symbol_box = gr.Textbox(label="Symbol", placeholder="all")
            status_pick = gr.Dropdown(label="Status", value=_STATUS_ANY,
                                      choices=[_STATUS_ANY, *STATUS_CHOICES])
            since_box = gr.Textbox(label="Bar date from", placeholder="YYYY-MM-DD")
            until_box = gr.Textbox(label="Bar date to", placeholder="YYYY-MM-DD")
            search_btn = gr.Button("Search", variant="primary", elem_id="history-search")
        status_md = gr.Markdown(elem_id="history-status", **STORED_TEXT)
        plot = gr.Image(show_label=False, type="pil", interactive=False, format="png",
                        visible=False, elem_id="history-plot")
        table = gr.Dataframe(label="Signals (newest first)", interactive=False,
                             headers=HISTORY_COLUMNS, wrap=True, datatype=HISTORY_DATATYPES,
                             elem_id="history-table",
                             column_widths=["135px", "75px", "100px", "70px", "115px", "140px",
                                            "280px", "110px", "135px", "170px", "150px",
                                            "130px", "100px", "100px", "90px"])

    @guarded(3)
    def search(symbol: str, status: str, since: str, until: str) -> tuple[Any, ...]:
        found = history_table(ctx, symbol, "" if status == _STATUS_ANY else status, since, until)
        # One symbol: its price with every past signal marked, above the table.
        drawn = symbol_history_png(ctx, check_symbol(symbol)) if text_of(symbol) else None
        note = "" if drawn or not text_of(symbol) else " No bars are stored for it to plot."
        return (f"{len(found)} signal(s).{note}",
                gr.Image(value=pil_image(drawn), visible=drawn is not None), found)

    inputs = [symbol_box, status_pick, since_box, until_box]
    outputs = [status_md, plot, table]
    search_btn.click(search, inputs=inputs, outputs=outputs, **PRIVATE)
    tab.select(search, inputs=inputs, outputs=outputs, **PRIVATE)
