"""The Symbols tab: add, remove, enable and configure symbols (Dagster dynamic partitions),
start a run now, and follow the runs started here.

Validation always happens before the first write, so a refused action changes nothing.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd

from trading_assets.core.orders import SymbolSettings
from trading_assets.core.symbols import InvalidSymbolError, parse_symbols
from trading_assets.partitions import (
    SYMBOLS_PARTITION,
    SymbolBusyError,
    SymbolRefusedError,
    invalid_key_notice,
    invalid_keys,
    list_symbols,
    register_symbols,
    unregister_symbols,
)
from trading_assets.run_tags import ACTIVE_STATUSES, last_run_text, last_runs
from ui.config import UIContext, UIError
from ui.format import check_symbol, escape, run_link, when
from ui.symbol_form import FORM_FIELDS, RISK_LEVELS, form_values, parse_settings
from ui.widgets import PRIVATE, STORED_TEXT, done, guarded

log = logging.getLogger(__name__)
# The instance may store a run's creation time to the second: a run created up to this long
# before a Run now's click is still taken as that click's run.
CLOCK_SLACK = timedelta(seconds=2)

SYMBOL_COLUMNS = ["symbol", "enabled", "priority", "position size %", "risk level",
                  "max exposure %", "auto-approve", "min confidence", "last signal",
                  "last run"]


def symbol_choices(ctx: UIContext) -> list[str]:
    """The symbols (Dagster's dynamic partitions) in insertion order."""
    return list_symbols(ctx.instance)


def symbols_table(ctx: UIContext) -> pd.DataFrame:
    """One row per symbol with its settings, last signal and last run (from every run that
    covered it, whoever launched it: trading_assets.run_tags.last_run_cells)."""
    symbols = symbol_choices(ctx)
    overview = ctx.app_db.symbol_overview(symbols)
    latest = ctx.app_db.latest_signals()
    runs = last_runs(ctx.instance, symbols, ctx.instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    rows = []
    for symbol, (s, _) in overview.items():
        signal = latest.get(symbol)
        last_signal = ""
        if signal is not None:
            what = signal.action or "ERROR"
            conf = f" {signal.confidence_score}" if signal.confidence_score is not None else ""
            data = " · simulated" if signal.simulated else ""
            last_signal = f"{signal.bar_date} {what}{conf} · {signal.status}{data}"
        run, launch = runs.get(symbol), ctx.launcher.running_for(symbol)
        if launch is not None and (run is None or run.at < launch.started_at - CLOCK_SLACK):
            last_run = "starting (Run now)"  # its Dagster run is not created yet
        else:
            last_run = "never" if run is None else last_run_text(ctx.instance, ctx.app_db,
                                                                  symbol, run)
        rows.append({
            "symbol": symbol, "enabled": "yes" if s.enabled else "no", "priority": s.priority,
            "position size %": s.position_size_pct, "risk level": s.risk_level,
            "max exposure %": s.max_exposure_pct, "auto-approve": "yes" if s.auto_approve else "no",
            "min confidence": s.min_confidence, "last signal": last_signal,
            "last run": last_run[:400],
        })
    rows.sort(key=lambda r: (-int(r["priority"]), str(r["symbol"])))
    return pd.DataFrame(rows + invalid_key_rows(ctx), columns=SYMBOL_COLUMNS)


def invalid_key_rows(ctx: UIContext) -> list[dict[str, object]]:
    """Notice rows for partition keys typed in the Dagster UI that are not symbols: never an
    enabled symbol, just what the symbol_sync sensor does with them on its next tick."""
    bad = invalid_keys(ctx.instance.get_dynamic_partitions(SYMBOLS_PARTITION))
    return [{"symbol": key, "enabled": "-", "priority": 0, "last signal": "",
             "last run": f"{invalid_key_notice(key, symbol)} (symbol_sync sensor, next tick)"}
            for key, symbol in bad.items()]


def add_new_symbols(ctx: UIContext, raw: str) -> str:
    """Validate (and with IBKR configured, qualify) every symbol, then add them all, through the
    same registration as the CLI and the sensors (partitions.register_symbols)."""
    try:
        registration = register_symbols(ctx.instance, ctx.app_db, parse_symbols(raw or ""),
                                        ctx.resources)
    except (InvalidSymbolError, SymbolRefusedError) as exc:
        log.warning("Symbols not added: %s", exc)
        raise UIError(str(exc)) from exc
    return escape(registration.message())


def remove_symbol(ctx: UIContext, raw: str) -> str:
    symbol = check_symbol(raw)
    known = symbol in symbol_choices(ctx) or any(
        s.symbol == symbol for s in ctx.app_db.list_settings())
    if not known:
        raise UIError(f"{symbol} is not a symbol here; nothing to remove.")
    try:
        report = unregister_symbols(ctx.instance, ctx.app_db, ctx.broker, [symbol])
    except SymbolBusyError as exc:
        raise UIError(str(exc)) from exc
    return (f"Removed {symbol}. " + "; ".join(report.lines()[1:] or ["nothing was in flight"])
            + ". Its settings are kept for a later re-add; its signals and orders stay for the "
            "audit trail.")


def require_partition(ctx: UIContext, raw: str) -> str:
    symbol = check_symbol(raw)
    if symbol not in symbol_choices(ctx):
        raise UIError(f"{symbol} is not a symbol here; add it first.")
    return symbol


def set_enabled(ctx: UIContext, raw: str, enabled: bool) -> str:
    symbol = require_partition(ctx, raw)
    ctx.app_db.upsert_settings(replace(ctx.app_db.settings_for(symbol), enabled=enabled))
    return f"{symbol} {'enabled' if enabled else 'disabled'}."


def settings_of(ctx: UIContext, raw: str) -> SymbolSettings:
    return ctx.app_db.settings_for(require_partition(ctx, raw))


def save_settings(ctx: UIContext, raw: str, form: Mapping[str, object]) -> str:
    symbol = require_partition(ctx, raw)
    settings = parse_settings(symbol, form)
    ctx.app_db.upsert_settings(settings)
    auto = (f"auto-approves at confidence ≥ {settings.min_confidence}" if settings.auto_approve
            else "every signal waits for review")
    return (f"Saved {symbol}: {'enabled' if settings.enabled else 'disabled'}, priority "
            f"{settings.priority}, {settings.position_size_pct:g}% per position, max "
            f"{settings.max_exposure_pct:g}%, {settings.risk_level} risk, {auto}.")


def run_now(ctx: UIContext, raw: str) -> str:
    """Start the symbol's materialization in the background and say where to follow it."""
    from trading_assets.health import run_placement
    from trading_assets.runs import LAUNCHED_BY_TAG, analysis_runs, resolve_mode

    symbol = require_partition(ctx, raw)
    queued = analysis_runs(ctx.instance, symbol_choices(ctx)).get(symbol)
    if queued:  # e.g. the new_symbols sensor took it up right after "Add": never run it twice
        who = queued[0].tags.get(LAUNCHED_BY_TAG) or queued[0].tags.get("trading/trigger", "")
        raise UIError(f"{symbol} already has a Dagster run {queued[0].status.value.lower()} "
                      f"({queued[0].run_id[:8]}{', started by ' + who if who else ''}); its "
                      f"signal appears here when it ends: {ctx.dagster_run_url(queued[0].run_id)}")
    mode = resolve_mode(ctx.instance, "auto")  # the rule the launch itself applies
    launch = ctx.launcher.start([symbol], ctx.instance, ctx.resources)
    at, here = when(launch.started_at), "a separate process this app keeps for its runs"
    where = (f"Submitted a Dagster run for {symbol} to the Dagster daemon's queue at {at}: it "
             "runs in the daemon's run worker, not in this app." if mode == "daemon" else
             f"Started a Dagster run for {symbol} at {at}, "
             f"{run_placement(mode, here=here)}; stopping the app waits for it.")
    follow = (f"Follow it in the Dagster UI: {ctx.config.dagster_url}/runs." if
              ctx.dagster_ui_answers() else "The Dagster UI is not running (`make up` or "
              "`make dev` starts it), so follow it here.")
    return f"{where} {follow} This page shows its result under Runs started here when it ends."


def launches_markdown(ctx: UIContext) -> str:
    launches = ctx.launcher.recent()
    if not launches:
        return "No runs started from this page yet."
    lines = []
    for launch in launches:
        symbols = ", ".join(launch.symbols)
        if launch.running:  # its run's own state: queued in the daemon's queue, or running
            runs = last_runs(ctx.instance, launch.symbols,
                             ctx.instance.get_dynamic_partitions(SYMBOLS_PARTITION))
            since = launch.started_at - CLOCK_SLACK
            states = sorted({r.state for r in runs.values()
                             if r.at >= since and r.status in ACTIVE_STATUSES})
            lines.append(f"- {symbols}: started {when(launch.started_at)}, "
                         f"{' / '.join(states) or 'starting'}")
            continue
        links = ", ".join(run_link(r, ctx.dagster_run_url(r)) for r in launch.run_ids)
        outcome = "succeeded" if launch.success else f"FAILED: {escape(launch.error)}"
        lines.append(f"- {symbols}: {outcome} at {when(launch.finished_at)}"
                     + (f" — Dagster run {links}" if links else ""))
        lines += [f"    - {escape(symbol)}: {escape(result)}"
                  for symbol, result in launch_results(ctx, launch)]
    return "\n".join(lines)


def launch_results(ctx: UIContext, launch: Any) -> list[tuple[str, str]]:
    """Per symbol of a finished launch: its newest signal and every order decision the
    launch's runs made for any of its signals (as the CLI's summary says them)."""
    results = []
    for symbol in launch.symbols:
        newest = ctx.app_db.latest_signal(symbol)
        if newest is None:
            results.append((symbol, "no signal"))
            continue
        orders = ctx.app_db.orders_summary(symbol, newest, launch.run_ids)
        results.append((symbol, f"newest signal {newest.action or 'ERROR'} {newest.status}; "
                                f"orders: {orders}"))
    return results




# ---------------------------------------------------------------------------------- the tab


@dataclass
class SymbolsTab:
    """The Symbols tab's components; the page paints `first_outputs` on load."""

    ctx: UIContext
    c: SimpleNamespace  # the components by name

    @property
    def first_outputs(self) -> list[Any]:
        c = self.c
        return [c.status, c.table, c.pick, *c.form, c.runs]

    def first_values(self) -> list[Any]:
        """Table, picker and form of the first symbol, the runs panel; the status line is
        left alone (an action clicked before the first paint ends keeps its message)."""
        return [gr.skip(), symbols_table(self.ctx), *pick_and_form(self.ctx, None),
                launches_markdown(self.ctx)]


def pick_and_form(ctx: UIContext, value: str | None = None) -> list[Any]:
    """The symbol picker (kept on `value`, else the first symbol) and that symbol's form."""
    choices = symbol_choices(ctx)
    chosen = value if value in choices else (choices[0] if choices else None)
    settings = ctx.app_db.settings_for(chosen) if chosen else None
    return [gr.Dropdown(choices=choices, value=chosen), *form_values(settings)]


def _settings_form() -> list[Any]:
    """The settings form's components in FORM_FIELDS order."""
    with gr.Accordion("Settings of the chosen symbol", open=True):
        with gr.Row():
            fields = {"enabled": gr.Checkbox(label="Enabled", value=True),
                      "auto_approve": gr.Checkbox(label="Auto-approve"),
                      "priority": gr.Textbox(label="Priority (-1000..1000)"),
                      "position_size_pct": gr.Textbox(label="Position size % of equity"),
                      "max_exposure_pct": gr.Textbox(label="Max exposure % of equity")}
        with gr.Row():
            fields |= {"risk_level": gr.Dropdown(label="Risk level", choices=list(RISK_LEVELS),
                                                 value="medium"),
                       "min_confidence": gr.Textbox(label="Minimum confidence (0-100)"),
                       "exchange": gr.Textbox(label="Exchange", placeholder="SMART"),
                       "primary_exchange": gr.Textbox(label="Primary exchange",
                                                      placeholder="NASDAQ"),
                       "currency": gr.Textbox(label="Currency", placeholder="USD")}
    return [fields[name] for name in FORM_FIELDS]


def _layout() -> SimpleNamespace:
    """The tab's components (inside the page's gr.Tabs)."""
    c = SimpleNamespace()
    with gr.Tab("Symbols", id="symbols") as c.tab:
        c.status = gr.Markdown(elem_id="symbols-status", **STORED_TEXT)
        with gr.Row(equal_height=True):
            c.add_box = gr.Textbox(label="Add symbols", placeholder="AAPL, MSFT, BRK.B",
                                   elem_id="add-symbols", scale=4)
            c.add_btn = gr.Button("Add", variant="primary", elem_id="add-button", scale=1)
        c.table = gr.Dataframe(label="Symbols (Dagster dynamic partitions)",
                               interactive=False, elem_id="symbols-table",
                               headers=SYMBOL_COLUMNS, wrap=True,
                               # Wide enough for each header's longest word ("priority",
                               # "auto-approve", "confidence"): narrower broke them mid-word.
                               column_widths=["75px", "85px", "90px", "95px", "70px", "100px",
                                              "125px", "115px", "240px", "235px"])
        with gr.Row(equal_height=True):
            c.pick = gr.Dropdown(label="Symbol", choices=[], elem_id="symbol-pick", scale=2)
            c.run_btn = gr.Button("Run now", variant="primary", elem_id="run-now")
            c.enable_btn = gr.Button("Enable", elem_id="enable")
            c.disable_btn = gr.Button("Disable", elem_id="disable")
            c.remove_btn = gr.Button("Remove", variant="stop", elem_id="remove")
            c.refresh_btn = gr.Button("Refresh", elem_id="refresh-symbols")
        c.form = _settings_form()
        c.enabled = c.form[FORM_FIELDS.index("enabled")]
        c.save_btn = gr.Button("Save settings", elem_id="save-settings")
        gr.Markdown("#### Runs started here")
        c.runs = gr.Markdown(elem_id="runs", **STORED_TEXT)
        c.seen_version = gr.State(0)
        c.timer = gr.Timer(4)
    return c


def _wire_settings(ctx: UIContext, c: SimpleNamespace) -> None:
    """Choosing, adding, removing, enabling and saving a symbol."""
    n_form = len(c.form)

    @guarded(2 + n_form)
    def choose_symbol(symbol: str | None) -> tuple[Any, ...]:
        settings = settings_of(ctx, symbol) if symbol else None
        return ("", symbol, *form_values(settings))

    @guarded(2 + n_form)
    def choose_symbol_row(evt: gr.SelectData) -> tuple[Any, ...]:
        row = evt.row_value or []
        return (choose_symbol.__wrapped__(str(row[0])) if row  # type: ignore[attr-defined]
                else (gr.skip(),) * (2 + n_form))

    @guarded(4 + n_form)
    def add(raw: str) -> tuple[Any, ...]:
        message = add_new_symbols(ctx, raw)
        chosen = parse_symbols(raw)[-1]  # valid: add_new_symbols accepted it
        picker, *values = pick_and_form(ctx, chosen)
        return (done(message), symbols_table(ctx), picker, "", *values)

    @guarded(3 + n_form)
    def remove(symbol: str | None) -> tuple[Any, ...]:
        message = remove_symbol(ctx, symbol or "")
        return (done(message), symbols_table(ctx), *pick_and_form(ctx, None))

    def toggle(enabled: bool) -> Callable[..., Any]:
        @guarded(3)
        def handler(symbol: str | None) -> tuple[Any, ...]:
            message = set_enabled(ctx, symbol or "", enabled)
            return done(message), symbols_table(ctx), enabled

        return handler

    @guarded(2)
    def save(symbol: str | None, *values: Any) -> tuple[Any, ...]:
        message = save_settings(ctx, symbol or "", dict(zip(FORM_FIELDS, values, strict=True)))
        return done(message), symbols_table(ctx)

    add_event = dict(fn=add, inputs=[c.add_box],
                     outputs=[c.status, c.table, c.pick, c.add_box, *c.form], **PRIVATE)
    c.add_btn.click(**add_event)
    c.add_box.submit(**add_event)
    c.pick.input(choose_symbol, inputs=[c.pick], outputs=[c.status, c.pick, *c.form], **PRIVATE)
    c.table.select(choose_symbol_row, inputs=None, outputs=[c.status, c.pick, *c.form],
                   **PRIVATE)
    c.remove_btn.click(remove, inputs=[c.pick], outputs=[c.status, c.table, c.pick, *c.form],
                       **PRIVATE)
    for button, enabled in ((c.enable_btn, True), (c.disable_btn, False)):
        button.click(toggle(enabled), inputs=[c.pick], outputs=[c.status, c.table, c.enabled],
                     **PRIVATE)
    c.save_btn.click(save, inputs=[c.pick, *c.form], outputs=[c.status, c.table], **PRIVATE)


def _wire_runs(ctx: UIContext, c: SimpleNamespace) -> None:
    """Run now, refresh, and the timer that follows background runs."""

    @guarded(3)
    def run(symbol: str | None) -> tuple[Any, ...]:
        message = run_now(ctx, symbol or "")
        return done(escape(message)), symbols_table(ctx), launches_markdown(ctx)

    @guarded(3 + len(c.form))
    def refresh_symbols(symbol: str | None) -> tuple[Any, ...]:
        return ("", symbols_table(ctx), *pick_and_form(ctx, symbol))

    def tick(seen: int) -> tuple[Any, ...]:
        """Follow background runs; refresh the table only when one has ended."""
        try:
            version = ctx.launcher.version
            table = symbols_table(ctx) if version != seen else gr.skip()
            return launches_markdown(ctx), table, version
        except Exception:  # a timer has nobody to tell; the next tick tries again
            log.exception("refreshing the runs panel failed")
            return gr.skip(), gr.skip(), seen

    c.run_btn.click(run, inputs=[c.pick], outputs=[c.status, c.table, c.runs], **PRIVATE)
    refresh_outputs = [c.status, c.table, c.pick, *c.form]
    c.refresh_btn.click(refresh_symbols, inputs=[c.pick], outputs=refresh_outputs, **PRIVATE)
    c.tab.select(refresh_symbols, inputs=[c.pick], outputs=refresh_outputs, **PRIVATE)
    c.timer.tick(tick, inputs=[c.seen_version], outputs=[c.runs, c.table, c.seen_version],
                 show_progress="hidden", **PRIVATE)


def build_symbols_tab(ctx: UIContext) -> SymbolsTab:
    """The Symbols tab with its handlers wired (call inside the page's gr.Tabs)."""
    c = _layout()
    _wire_settings(ctx, c)
    _wire_runs(ctx, c)
    return SymbolsTab(ctx=ctx, c=c)
