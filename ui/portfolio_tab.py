"""The Portfolio and orders tab: the broker's account and positions, the orders ledger and the
orders step's recent decisions (including every "no order" and why)."""

import logging
from typing import Any

import gradio as gr
import pandas as pd

from ui.config import UIContext, UIError
from ui.format import escape, escape_html, money, run_link, when
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
    return pd.DataFrame([{
        "symbol": p.symbol, "quantity": p.quantity, "avg cost": round(p.avg_cost, 4),
        "market price": p.market_price, "market value": p.market_value,
        "unrealized P&L": None if p.unrealized_pnl is None else round(p.unrealized_pnl, 2),
        "realized P&L": round(p.realized_pnl, 2),
    } for p in positions if p.quantity or p.realized_pnl], columns=POSITION_COLUMNS)


ORDER_COLUMNS = ["created", "symbol", "action", "quantity", "type", "status", "filled",
                 "avg fill", "commission", "limit", "stop", "target", "broker", "broker id",
                 "signal id", "error", "order ref"]


def orders_table(ctx: UIContext) -> pd.DataFrame:
    """The orders ledger (one live attempt per signal, each with its orderRef), newest first."""
    return pd.DataFrame([{
        "created": when(o.created_at), "symbol": o.symbol, "action": o.action,
        "quantity": o.quantity, "type": o.order_type, "status": o.status, "filled": o.filled,
        "avg fill": o.avg_fill_price, "commission": o.commission, "limit": o.limit_price,
        "stop": o.stop_loss, "target": o.take_profit, "broker": o.broker,
        "broker id": o.broker_order_id, "signal id": o.signal_id, "error": o.error[:200],
        "order ref": o.order_ref,
    } for o in ctx.app_db.list_orders()], columns=ORDER_COLUMNS)


DECISION_COLUMNS = ["decided", "symbol", "placed", "reason", "signal id", "Dagster run"]


def recent_decisions_table(ctx: UIContext, limit: int = 50) -> pd.DataFrame:
    """What the orders asset decided lately, including every 'no order' and why."""
    return pd.DataFrame([{
        "decided": when(d.decided_at), "symbol": d.symbol, "placed": "yes" if d.placed else "no",
        "reason": d.reason, "signal id": d.signal_id,
        "Dagster run": run_link(d.dagster_run_id, ctx.dagster_run_url(d.dagster_run_id)),
    } for d in ctx.app_db.recent_decisions(limit)], columns=DECISION_COLUMNS)




def build_portfolio_tab(ctx: UIContext) -> None:
    """The Portfolio and orders tab with its handlers wired (call inside the page's gr.Tabs)."""
    with gr.Tab("Portfolio and orders", id="portfolio") as tab:
        status = gr.Markdown(elem_id="portfolio-status", **STORED_TEXT)
        account_md = gr.Markdown(elem_id="account", **STORED_TEXT)
        positions_df = gr.Dataframe(label="Positions", interactive=False,
                                    headers=POSITION_COLUMNS)
        orders_df = gr.Dataframe(label="Orders ledger (newest first)", interactive=False,
                                 headers=ORDER_COLUMNS, wrap=True)
        decisions_df = gr.Dataframe(label="Recent order decisions", interactive=False,
                                    headers=DECISION_COLUMNS, wrap=True,
                                    datatype=["str"] * 5 + ["markdown"],
                                    column_widths=["170px", "80px", "70px", "420px", "290px",
                                                   "100px"])
        refresh_btn = gr.Button("Refresh", elem_id="refresh-portfolio")

    @guarded(5)
    def portfolio() -> tuple[Any, ...]:
        orders, decisions = orders_table(ctx), recent_decisions_table(ctx)
        try:
            account, positions = account_markdown(ctx), positions_table(ctx)
        except UIError as exc:  # the ledger is ours and still worth showing
            gr.Warning(escape_html(str(exc)), title="Broker unavailable")
            return refusal(str(exc)), gr.skip(), gr.skip(), orders, decisions
        return "", account, positions, orders, decisions

    outputs = [status, account_md, positions_df, orders_df, decisions_df]
    refresh_btn.click(portfolio, outputs=outputs, **PRIVATE)
    tab.select(portfolio, outputs=outputs, **PRIVATE)
