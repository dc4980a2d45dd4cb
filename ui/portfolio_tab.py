"""The Portfolio and orders tab: the broker's account, its equity curve and P&L per symbol,
positions, the trades each signal made, the orders ledger and the orders step's recent
decisions (including every "no order" and why)."""

import logging
from typing import Any

import gradio as gr
import pandas as pd

from trading_assets.core.plots import render_equity
from ui.config import UIContext, UIError
from ui.format import escape, escape_html, money, pil_image, run_link, when
from ui.widgets import PRIVATE, STORED_TEXT, guarded, refusal

log = logging.getLogger(__name__)

def account_markdown(ctx: UIContext) -> str:
    """Cash, equity and P&L from the broker; an unreachable broker is a message, not a crash."""
    try:
        account = ctx.broker.account()
    except Exception as exc:  # IBKR down must not take the page with it
        log.warning("broker account unavailable: %s", exc)
        raise UIError(f"The broker ({ctx.broker.label}) did not answer: {exc}") from exc
    paper = " — **PAPER** trading, simulated fills" if account.broker == "paper" else ""
    return (f"**Broker:** {escape(ctx.broker.label)} · account {escape(account.account)}{paper}"
            "\n\n| cash | equity | buying power | realized P&L | unrealized P&L | currency |"
            "\n|---|---|---|---|---|---|"
            f"\n| {money(account.cash)} | {money(account.equity)} | "
            f"{money(account.buying_power)} | {money(account.realized_pnl)} | "
            f"{money(account.unrealized_pnl)} | {escape(account.currency)} |"
            f"\n\n{policy_markdown(ctx)}")


def policy_markdown(ctx: UIContext) -> str:
    """The rules the orders step applies (core/policy.py, the same object it reads)."""
    policy = ctx.resources["policy"].rules
    return (f"**Policy:** min confidence gates auto-approval only · approvals expire after "
            f"{policy.approval_max_age_days} trading day(s) or a "
            f"{policy.approval_max_move_pct:g}% price move · a BUY reserves slippage, "
            f"commission and {policy.cash_buffer_pct:g}% of cash · an order the broker never "
            f"showed is declared not placed after two searches, "
            f"{policy.reconcile_grace_s:g} s after its claim")


POSITION_COLUMNS = ["symbol", "quantity", "avg cost", "market price", "market value",
                    "unrealized P&L", "realized P&L"]


def positions_table(ctx: UIContext) -> pd.DataFrame:
    try:
        positions = ctx.broker.positions()
    except Exception as exc:  # same as account_markdown
        raise UIError(f"The broker ({ctx.broker.label}) did not answer: {exc}") from exc
    return positions_frame(positions)


def positions_frame(positions: list[Any]) -> pd.DataFrame:
    return pd.DataFrame([{
        "symbol": p.symbol, "quantity": p.quantity, "avg cost": round(p.avg_cost, 4),
        "market price": p.market_price, "market value": p.market_value,
        "unrealized P&L": None if p.unrealized_pnl is None else round(p.unrealized_pnl, 2),
        "realized P&L": round(p.realized_pnl, 2),
    } for p in positions if p.quantity or p.realized_pnl], columns=POSITION_COLUMNS)


ORDER_COLUMNS = ["created", "symbol", "action", "qty", "type", "status", "filled", "avg fill",
                 "limit", "stop", "target", "fees", "order ref", "note"]
ORDER_WIDTHS = ["135px", "70px", "75px", "55px", "85px", "95px", "70px", "85px", "75px",
                "75px", "75px", "60px", "110px", "260px"]


def orders_table(ctx: UIContext) -> pd.DataFrame:
    """The orders ledger (one attempt per row, each with its orderRef), newest first; the
    orderRef's first 8 characters are the signal id's."""
    return pd.DataFrame([{
        "created": when(o.created_at), "symbol": o.symbol, "action": o.action,
        "qty": o.quantity, "type": o.order_type, "status": o.status, "filled": o.filled,
        "avg fill": o.avg_fill_price, "limit": o.limit_price, "stop": o.stop_loss,
        "target": o.take_profit, "fees": o.commission, "order ref": _short_ref(o.order_ref),
        "note": o.error[:200],
    } for o in ctx.app_db.list_orders()], columns=ORDER_COLUMNS)


def _short_ref(order_ref: str) -> str:
    """`<signal id>` or `<signal id>-2`, shortened to the id's first 8 characters."""
    head, _, attempt = order_ref.partition("-")
    return head[:8] + (f"-{attempt}" if attempt else "")


TRADE_COLUMNS = ["symbol", "side", "qty", "entry", "entry on", "stop", "target", "exit",
                 "exit on", "why", "R", "P&L", "status", "signal"]
TRADE_WIDTHS = ["70px", "55px", "55px", "80px", "100px", "75px", "75px", "80px", "100px",
                "230px", "55px", "85px", "70px", "85px"]


def trades_table(ctx: UIContext) -> pd.DataFrame:
    """Every filled order: how it entered, how it ended and why, its R multiple and P&L."""
    return pd.DataFrame([{
        "symbol": t.symbol, "side": t.side, "qty": t.quantity, "entry": t.entry_price,
        "entry on": str(t.entry_on or ""), "stop": t.stop_loss, "target": t.take_profit,
        "exit": t.exit_price, "exit on": str(t.exit_on or ""),
        "why": t.exit_reason or ("open" if t.status == "open" else ""), "R": t.r_multiple,
        "P&L": t.realized_pnl, "status": t.status, "signal": t.signal_id[:8],
    } for t in ctx.app_db.trades()], columns=TRADE_COLUMNS)


PNL_COLUMNS = ["symbol", "held", "market value", "unrealized P&L", "realized P&L",
               "closed trades", "won"]


def pnl_table(ctx: UIContext, positions: list[Any]) -> pd.DataFrame:
    """Realized and unrealized P&L per symbol (the broker's positions) and its closed trades."""
    closed: dict[str, list[float]] = {}
    for trade in ctx.app_db.trades():
        if trade.status == "closed" and trade.realized_pnl is not None:
            closed.setdefault(trade.symbol, []).append(trade.realized_pnl)
    by_symbol = {p.symbol: p for p in positions}
    rows = []
    for symbol in sorted(set(by_symbol) | set(closed)):
        p, results = by_symbol.get(symbol), closed.get(symbol, [])
        rows.append({
            "symbol": symbol, "held": p.quantity if p else 0.0,
            "market value": p.market_value if p else None,
            "unrealized P&L": None if p is None or p.unrealized_pnl is None
            else round(p.unrealized_pnl, 2),
            "realized P&L": round(p.realized_pnl, 2) if p else round(sum(results), 2),
            "closed trades": len(results), "won": sum(1 for r in results if r > 0)})
    return pd.DataFrame(rows, columns=PNL_COLUMNS)


def equity_png(ctx: UIContext) -> bytes:
    """The equity curve: cash plus marked positions at every portfolio materialization."""
    points = [(p.at, p.equity, p.cash) for p in ctx.app_db.equity_curve()]
    return render_equity(points, f"{ctx.broker.label}: equity at each portfolio run")


DECISION_COLUMNS = ["decided", "symbol", "placed", "reason", "signal id", "Dagster run"]


def recent_decisions_table(ctx: UIContext, limit: int = 50) -> pd.DataFrame:
    """What the orders asset decided lately, including every 'no order' and why."""
    return pd.DataFrame([{
        "decided": when(d.decided_at), "symbol": d.symbol, "placed": "yes" if d.placed else "no",
        "reason": d.reason, "signal id": d.signal_id[:8],
        "Dagster run": run_link(d.dagster_run_id, ctx.dagster_run_url(d.dagster_run_id)),
    } for d in ctx.app_db.recent_decisions(limit)], columns=DECISION_COLUMNS)




def build_portfolio_tab(ctx: UIContext) -> None:
    """The Portfolio and orders tab with its handlers wired (call inside the page's gr.Tabs)."""
    with gr.Tab("Portfolio and orders", id="portfolio") as tab:
        status = gr.Markdown(elem_id="portfolio-status", **STORED_TEXT)
        account_md = gr.Markdown(elem_id="account", **STORED_TEXT)
        equity = gr.Image(show_label=False, type="pil", interactive=False, format="png",
                          elem_id="equity-plot")
        pnl_df = gr.Dataframe(label="P&L per symbol", interactive=False, headers=PNL_COLUMNS,
                              elem_id="pnl-table")
        positions_df = gr.Dataframe(label="Positions", interactive=False,
                                    headers=POSITION_COLUMNS)
        trades_df = gr.Dataframe(label="Trades: entry, exit and why (newest first)",
                                 interactive=False, headers=TRADE_COLUMNS, wrap=True,
                                 column_widths=TRADE_WIDTHS, elem_id="trades-table")
        orders_df = gr.Dataframe(label="Orders ledger (newest first)", interactive=False,
                                 headers=ORDER_COLUMNS, wrap=True, column_widths=ORDER_WIDTHS,
                                 elem_id="orders-table")
        decisions_df = gr.Dataframe(label="Recent order decisions", interactive=False,
                                    headers=DECISION_COLUMNS, wrap=True,
                                    datatype=["str"] * 5 + ["markdown"],
                                    column_widths=["135px", "75px", "75px", "500px", "100px",
                                                   "110px"])
        refresh_btn = gr.Button("Refresh", elem_id="refresh-portfolio")

    @guarded(8)
    def portfolio() -> tuple[Any, ...]:
        ours = (pil_image(equity_png(ctx)), trades_table(ctx), orders_table(ctx),
                recent_decisions_table(ctx))
        try:
            positions = ctx.broker.positions()
            account = account_markdown(ctx)
        except Exception as exc:  # the ledger is ours and still worth showing
            message = f"The broker ({ctx.broker.label}) did not answer: {exc}"
            gr.Warning(escape_html(message), title="Broker unavailable")
            return refusal(message), gr.skip(), ours[0], gr.skip(), gr.skip(), *ours[1:]
        return ("", account, ours[0], pnl_table(ctx, positions), positions_frame(positions),
                *ours[1:])

    outputs = [status, account_md, equity, pnl_df, positions_df, trades_df, orders_df,
               decisions_df]
    refresh_btn.click(portfolio, outputs=outputs, **PRIVATE)
    tab.select(portfolio, outputs=outputs, **PRIVATE)
