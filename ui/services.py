"""What the Gradio app does, without Gradio: symbols, signal review, portfolio and orders.

Every function takes a `UIContext` (the resources, the Dagster instance, the page's settings and
the background run launcher) so tests call them directly on test resources. A refusal is a
`UIError` whose message a trader can act on; the app shows it in the page, never a stack trace.
Validation always happens before the first write, so a refused action changes nothing.
"""

from __future__ import annotations

import getpass as getpass  # re-exported: the tests patch sv.getpass.getuser
import html
import ipaddress
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from resources.llm import public_url
from trading_assets.core.errors import error_text
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.review import REVIEW_DECISIONS
from trading_assets.core.review import reviewer_name as reviewer_name  # re-exported for the page
from trading_assets.core.scorecard import rate_text
from trading_assets.core.signal import SignalStatus
from trading_assets.core.symbols import InvalidSymbolError, parse_symbols, validate_symbol
from trading_assets.partitions import (
    SYMBOLS_PARTITION,
    invalid_key_notice,
    invalid_keys,
    list_symbols,
    register_symbols,
    unregister_symbols,
)

log = logging.getLogger(__name__)

RISK_LEVELS = ("low", "medium", "high")
STATUS_CHOICES = tuple(s.value for s in SignalStatus if s is not SignalStatus.REPLAY)
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXCHANGE_RE = re.compile(r"^[A-Z0-9.]{1,16}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class UIError(Exception):
    """An action refused with a reason the person at the page can act on; nothing was written."""


class UIConfigError(ValueError):
    """A GRADIO_*, DAGSTER_WEBSERVER_URL or MLFLOW_UI_URL value the app cannot start with."""


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class UIConfig:
    """Where the app listens, who may log in, and where the Dagster and MLflow UIs are."""

    server_name: str = "127.0.0.1"
    server_port: int = 7860
    username: str = ""
    password: str = field(default="", repr=False)  # never in a log line or a traceback
    dagster_url: str = "http://localhost:3000"
    mlflow_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UIConfig:
        """Read GRADIO_SERVER_*, GRADIO_USERNAME/PASSWORD, DAGSTER_WEBSERVER_URL, MLFLOW_UI_URL."""
        raw_port = env.get("GRADIO_SERVER_PORT", "").strip()
        try:
            port = int(raw_port) if raw_port else 7860
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise UIConfigError(f"GRADIO_SERVER_PORT={raw_port!r} is not a port number (1-65535).")
        return cls(
            server_name=env.get("GRADIO_SERVER_NAME", "").strip() or "127.0.0.1",
            server_port=port,
            username=env.get("GRADIO_USERNAME", ""),
            password=env.get("GRADIO_PASSWORD", ""),
            dagster_url=_base_url(env, "DAGSTER_WEBSERVER_URL", "http://localhost:3000"),
            mlflow_url=_base_url(env, "MLFLOW_UI_URL", ""),
        )

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    @property
    def is_local(self) -> bool:
        return is_loopback(self.server_name)

    def check_listen(self) -> None:
        """Refuse a half-set login, and any address beyond this machine without a login."""
        if bool(self.username) != bool(self.password):
            missing = "GRADIO_PASSWORD" if self.username else "GRADIO_USERNAME"
            raise UIConfigError(f"{missing} is not set: set both GRADIO_USERNAME and "
                                "GRADIO_PASSWORD, or neither.")
        if not self.is_local and self.auth is None:
            raise UIConfigError(
                f"Refusing to listen on {self.server_name!r} without a login: anyone on the "
                "network could approve signals. Set GRADIO_USERNAME and GRADIO_PASSWORD, or "
                "GRADIO_SERVER_NAME=127.0.0.1 to stay on this machine."
            )


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip().rstrip("/") or default
    if value and not re.match(r"^https?://[^\s\"'<>]+$", value):
        raise UIConfigError(f"{name}={value!r} is not an http(s) URL, e.g. http://localhost:3000.")
    return value


def is_loopback(server_name: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    name = server_name.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


# ------------------------------------------------------------------------- background runs


@dataclass
class Launch:
    """One "Run now": the symbols, when it started and ended, its Dagster runs or its error."""

    symbols: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    run_ids: list[str] = field(default_factory=list)
    success: bool | None = None
    error: str = ""

    @property
    def running(self) -> bool:
        return self.finished_at is None


def _default_materialize(symbols: list[str], instance: Any, resources: dict[str, Any]) -> Any:
    """The symbol pipeline through the runs layer: the daemon's queue (pools, limits) when a
    daemon runs, else in this process; either way a `symbol_pipeline` run tagged gradio."""
    from trading_assets.runs import launch_symbols

    return launch_symbols(symbols, instance=instance, resources=resources, launched_by="gradio")


class RunLauncher:
    """Materializes symbols in background threads so a click never blocks the page."""

    def __init__(self, materialize: Callable[[list[str], Any, dict[str, Any]], Any] | None = None
                 ) -> None:
        self._materialize = materialize or _default_materialize
        self._lock = threading.Lock()
        self._launches: list[Launch] = []
        self._threads: list[threading.Thread] = []
        self.version = 0  # bumped when a launch ends, so the page knows to refresh its tables

    def start(self, symbols: list[str], instance: Any, resources: dict[str, Any]) -> Launch:
        with self._lock:
            busy = [s for s in symbols for launch in self._launches
                    if launch.running and s in launch.symbols]
            if busy:
                raise UIError(f"{', '.join(busy)} already has a run in progress; wait for it "
                              "to finish.")
            launch = Launch(symbols=list(symbols), started_at=datetime.now(UTC))
            self._launches.append(launch)
            # Not a daemon: stopping the app waits for the run instead of leaving it
            # half-written and marked STARTED in Dagster forever.
            thread = threading.Thread(target=self._run, args=(launch, instance, resources),
                                      name=f"run-now-{'-'.join(symbols)}"[:60])
            self._threads.append(thread)
        thread.start()
        return launch

    def _run(self, launch: Launch, instance: Any, resources: dict[str, Any]) -> None:
        try:
            results = self._materialize(launch.symbols, instance, resources) or []
            run_ids = [r.run_id for r in results]
            success = all(r.success for r in results)
            failures = [f for r in results for f in getattr(r, "failures", [])]
            error = "" if success else (failures[0].splitlines()[0][:200] if failures
                                        else "a step failed; see the run in Dagster")
        except Exception as exc:  # the thread has no caller: the error goes to the page
            log.exception("Run now failed for %s", launch.symbols)
            run_ids, success, error = [], False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            launch.run_ids, launch.success, launch.error = run_ids, success, error
            launch.finished_at = datetime.now(UTC)
            self.version += 1

    def running_for(self, symbol: str) -> Launch | None:
        with self._lock:
            return next((x for x in reversed(self._launches)
                         if x.running and symbol in x.symbols), None)

    def recent(self, limit: int = 8) -> list[Launch]:
        with self._lock:
            return [replace(x) for x in reversed(self._launches[-limit:])]

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every launch (tests); True when none is still running."""
        for thread in list(self._threads):
            thread.join(timeout)
        return not any(x.running for x in self._launches)


@dataclass
class UIContext:
    """Everything the app's functions need; tests build one on test resources and instance."""

    resources: dict[str, Any]
    instance: Any
    config: UIConfig = field(default_factory=UIConfig)
    launcher: RunLauncher = field(default_factory=RunLauncher)

    @property
    def app_db(self) -> Any:
        return self.resources["app_db"]

    @property
    def store(self) -> Any:
        return self.resources["store"]

    @property
    def broker(self) -> Any:
        return self.resources["broker"]

    @property
    def ibkr_configured(self) -> bool:
        """TRADING_DATA_SOURCE=ibkr or TRADING_BROKER=ibkr: new symbols are checked with IBKR."""
        return self.resources["market_data"].source == "ibkr" or self.broker.kind == "ibkr"

    def dagster_run_url(self, run_id: str) -> str:
        return f"{self.config.dagster_url}/runs/{run_id}"

    @property
    def mlflow_url(self) -> str:
        """MLFLOW_UI_URL, else the tracking resource's UI address when it is an http(s) server;
        without the user:password a tracking URI may carry, since it ends up in the page."""
        tracking_ui = str(getattr(self.resources.get("tracking"), "ui_url", "") or "")
        fallback = tracking_ui.rstrip("/") if re.match(r"^https?://[^\s\"'<>]+$", tracking_ui) \
            else ""
        return public_url(self.config.mlflow_url or fallback)

    def mlflow_run_url(self, run_id: str) -> str:
        # MLflow's UI resolves the experiment itself from a direct run link.
        return f"{self.mlflow_url}/#/runs/{run_id}" if self.mlflow_url else ""


# ---------------------------------------------------------------------------- text helpers


def escape(text: object) -> str:
    """Text from the database or a model, safe inside Markdown and HTML messages."""
    return html.escape(str(text), quote=True)


def _cell(text: object) -> str:
    """One Markdown table cell: escaped, on one line, pipes kept literal."""
    return escape(text).replace("|", "\\|").replace("\n", " ")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite hands back naive datetimes that were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: object, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(value)
    if not math.isfinite(value):
        return "–"
    if abs(value) >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _run_link(run_id: str, url: str) -> str:
    """A Markdown link to a run, or the bare id when no UI address is known."""
    if not run_id:
        return ""
    if not _RUN_ID_RE.match(run_id):
        return _cell(run_id)
    return f"[{run_id[:8]}]({url})" if url else f"`{run_id}`"


# ----------------------------------------------------------------------------------- symbols


SYMBOL_COLUMNS = ["symbol", "enabled", "priority", "position size %", "risk level",
                  "max exposure %", "auto-approve", "min confidence", "last signal",
                  "last run"]


def _check_symbol(raw: object) -> str:
    try:
        return validate_symbol(raw.strip() if isinstance(raw, str) and raw.strip() else raw)
    except InvalidSymbolError as exc:
        raise UIError(str(exc)) from exc


def symbol_choices(ctx: UIContext) -> list[str]:
    """The symbols (Dagster's dynamic partitions) in insertion order."""
    return list_symbols(ctx.instance)


def symbols_table(ctx: UIContext) -> pd.DataFrame:
    """One row per symbol with its settings, last signal and last run."""
    overview = ctx.app_db.symbol_overview(symbol_choices(ctx))
    latest = ctx.app_db.latest_signals()
    rows = []
    for symbol, (s, (status, at, error)) in overview.items():
        signal = latest.get(symbol)
        last_signal = ""
        if signal is not None:
            what = signal.action or "ERROR"
            conf = f" {signal.confidence_score}" if signal.confidence_score is not None else ""
            data = " SIMULATED" if signal.simulated else ""
            last_signal = f"{signal.bar_date} {what}{conf} · {signal.status}{data}"
        running = ctx.launcher.running_for(symbol)
        if running is not None:
            last_run = f"running (started {_when(running.started_at)})"
        else:
            last_run = f"{status} {_when(at)}".strip() if status else "never"
            if error:
                last_run += f": {error[:120]}"
        rows.append({
            "symbol": symbol, "enabled": "yes" if s.enabled else "no", "priority": s.priority,
            "position size %": s.position_size_pct, "risk level": s.risk_level,
            "max exposure %": s.max_exposure_pct, "auto-approve": "yes" if s.auto_approve else "no",
            "min confidence": s.min_confidence, "last signal": last_signal, "last run": last_run,
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
    """Validate (and with IBKR configured, qualify) every symbol, then add them all."""
    try:
        symbols = parse_symbols(raw or "")
    except InvalidSymbolError as exc:
        raise UIError(str(exc)) from exc
    contracts: dict[str, dict[str, object]] = {}
    if ctx.ibkr_configured:
        for symbol in symbols:  # every contract checked before anything is written
            contracts[symbol] = qualify_with_ibkr(ctx, symbol)
    new = register_symbols(ctx.instance, ctx.app_db, symbols)
    for symbol, contract in contracts.items():
        settings = ctx.app_db.settings_for(symbol)
        if contract and not settings.primary_exchange:
            ctx.app_db.upsert_settings(replace(
                settings,
                primary_exchange=str(contract.get("primaryExchange") or "")[:16],
                currency=str(contract.get("currency") or settings.currency)[:8],
            ))
    known = [s for s in symbols if s not in new]
    parts = []
    if new:
        parts.append(f"Added {', '.join(new)} as Dagster partitions.")
    if known:
        parts.append(f"Already there: {', '.join(known)}.")
    if contracts:
        parts.append("IBKR contracts: " + "; ".join(
            f"{s} {escape(c.get('longName') or '')} on {escape(c.get('primaryExchange') or '?')}"
            f" (conId {escape(c.get('conId'))})" for s, c in contracts.items()))
    return " ".join(parts)


def qualify_with_ibkr(ctx: UIContext, symbol: str) -> dict[str, object]:
    """Ask IBKR for the symbol's contract; its refusal becomes the reason shown on the page."""
    settings = ctx.app_db.settings_for(symbol)
    ibkr = ctx.resources["market_data"].ibkr
    try:
        return dict(ibkr.qualify(symbol, settings))
    except Exception as exc:  # IBKRError subclasses carry the actionable text
        log.warning("IBKR could not qualify %s: %s", symbol, exc)
        raise UIError(f"IBKR could not confirm {symbol}, so it was not added: "
                      f"{exc}") from exc


def remove_symbol(ctx: UIContext, raw: str) -> str:
    symbol = _check_symbol(raw)
    removed, forgotten = unregister_symbols(ctx.instance, ctx.app_db, [symbol])
    if not removed and not forgotten:
        raise UIError(f"{symbol} is not a symbol here; nothing to remove.")
    return (f"Removed {symbol} from the Dagster partitions and its settings. Its signals and "
            "orders stay for the audit trail.")


def _require_partition(ctx: UIContext, raw: str) -> str:
    symbol = _check_symbol(raw)
    if symbol not in symbol_choices(ctx):
        raise UIError(f"{symbol} is not a symbol here; add it first.")
    return symbol


def set_enabled(ctx: UIContext, raw: str, enabled: bool) -> str:
    symbol = _require_partition(ctx, raw)
    ctx.app_db.upsert_settings(replace(ctx.app_db.settings_for(symbol), enabled=enabled))
    return f"{symbol} {'enabled' if enabled else 'disabled'}."


def settings_of(ctx: UIContext, raw: str) -> SymbolSettings:
    return ctx.app_db.settings_for(_require_partition(ctx, raw))


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _parse_number(label: str, value: object, *, whole: bool, low: float, high: float,
                  low_open: bool = False) -> float:
    text = _text(value)
    if text == "":
        raise UIError(f"{label} is empty; enter a number.")
    try:
        number = float(text)
    except ValueError:
        raise UIError(f"{label} {text!r} is not a number.") from None
    if not math.isfinite(number):
        raise UIError(f"{label} {text!r} is not a finite number.")
    if whole and number != int(number):
        raise UIError(f"{label} {text!r} must be a whole number.")
    if number < low or number > high or (low_open and number == low):
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        raise UIError(f"{label} {text!r} is out of range: it must be {lower} and at most "
                      f"{high:g}.")
    return number


def _parse_flag(label: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise UIError(f"{label} {text!r} is not yes or no.")


def parse_settings(symbol: str, form: Mapping[str, object]) -> SymbolSettings:
    """Turn the settings form into SymbolSettings, or refuse with the first field that is wrong."""
    symbol = _check_symbol(symbol)
    risk = _text(form.get("risk_level")).lower()
    if risk not in RISK_LEVELS:
        raise UIError(f"Risk level {risk!r} is not one of {', '.join(RISK_LEVELS)}.")
    size = _parse_number("Position size %", form.get("position_size_pct"), whole=False,
                         low=0, high=100, low_open=True)
    exposure = _parse_number("Max exposure %", form.get("max_exposure_pct"), whole=False,
                             low=0, high=100, low_open=True)
    if size > exposure:
        raise UIError(f"Position size {size:g}% is larger than the max exposure {exposure:g}%: "
                      "one order could never be placed.")
    exchange = _text(form.get("exchange")).upper() or "SMART"
    primary = _text(form.get("primary_exchange")).upper()
    currency = _text(form.get("currency")).upper() or "USD"
    for label, value in (("Exchange", exchange), ("Primary exchange", primary)):
        if value and not _EXCHANGE_RE.match(value):
            raise UIError(f"{label} {value!r} is not an exchange code such as SMART or NASDAQ.")
    if not _CURRENCY_RE.match(currency):
        raise UIError(f"Currency {currency!r} is not a three-letter code such as USD.")
    return SymbolSettings(
        symbol=symbol,
        enabled=_parse_flag("Enabled", form.get("enabled")),
        priority=int(_parse_number("Priority", form.get("priority"), whole=True,
                                   low=-1000, high=1000)),
        position_size_pct=size,
        risk_level=risk,
        max_exposure_pct=exposure,
        auto_approve=_parse_flag("Auto-approve", form.get("auto_approve")),
        min_confidence=int(_parse_number("Minimum confidence", form.get("min_confidence"),
                                         whole=True, low=0, high=100)),
        exchange=exchange,
        primary_exchange=primary,
        currency=currency,
    )


def save_settings(ctx: UIContext, raw: str, form: Mapping[str, object]) -> str:
    symbol = _require_partition(ctx, raw)
    settings = parse_settings(symbol, form)
    ctx.app_db.upsert_settings(settings)
    auto = (f"auto-approves at confidence ≥ {settings.min_confidence}" if settings.auto_approve
            else "every signal waits for review")
    return (f"Saved {symbol}: {'enabled' if settings.enabled else 'disabled'}, priority "
            f"{settings.priority}, {settings.position_size_pct:g}% per position, max "
            f"{settings.max_exposure_pct:g}%, {settings.risk_level} risk, {auto}.")


def run_now(ctx: UIContext, raw: str) -> str:
    """Start the symbol's materialization in the background and say where to follow it."""
    from trading_assets.runs import LAUNCHED_BY_TAG, analysis_runs

    symbol = _require_partition(ctx, raw)
    queued = analysis_runs(ctx.instance, symbol_choices(ctx)).get(symbol)
    if queued:  # e.g. the new_symbols sensor took it up right after "Add": never run it twice
        who = queued[0].tags.get(LAUNCHED_BY_TAG) or queued[0].tags.get("trading/trigger", "")
        raise UIError(f"{symbol} already has a Dagster run {queued[0].status.value.lower()} "
                      f"({queued[0].run_id[:8]}{', started by ' + who if who else ''}); its "
                      f"signal appears here when it ends: {ctx.dagster_run_url(queued[0].run_id)}")
    launch = ctx.launcher.start([symbol], ctx.instance, ctx.resources)
    return (f"Started a Dagster run for {symbol} at {_when(launch.started_at)}. Follow it in "
            f"the Dagster UI: {ctx.config.dagster_url}/runs — this page shows its result "
            "under Runs started here when it ends.")


def launches_markdown(ctx: UIContext) -> str:
    launches = ctx.launcher.recent()
    if not launches:
        return "No runs started from this page yet."
    lines = []
    for launch in launches:
        symbols = ", ".join(launch.symbols)
        if launch.running:
            lines.append(f"- {symbols}: running since {_when(launch.started_at)} — "
                         f"[Dagster runs]({ctx.config.dagster_url}/runs)")
            continue
        links = ", ".join(_run_link(r, ctx.dagster_run_url(r)) for r in launch.run_ids)
        outcome = "succeeded" if launch.success else f"FAILED: {escape(launch.error)}"
        lines.append(f"- {symbols}: {outcome} at {_when(launch.finished_at)}"
                     + (f" — Dagster run {links}" if links else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ signal review


QUEUE_COLUMNS = ["created", "symbol", "bar date", "action", "confidence", "data", "analyst",
                 "signal id"]


def pending_signals(ctx: UIContext) -> list[Any]:
    """Signals waiting for a human, newest first."""
    return ctx.app_db.list_signals(status=SignalStatus.PENDING_REVIEW.value)


def _data_label(row: Any) -> str:
    return f"SIMULATED ({row.data_source})" if row.simulated else row.data_source


def queue_table(rows: Sequence[Any]) -> pd.DataFrame:
    return pd.DataFrame([{
        "created": _when(r.created_at), "symbol": r.symbol, "bar date": str(r.bar_date),
        "action": r.action or "ERROR", "confidence": r.confidence_score,
        "data": _data_label(r), "analyst": f"{r.provider}/{r.model}", "signal id": r.id,
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
    "Do not trade on it; set TRADING_DATA_SOURCE to csv or ibkr for real data."
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
             f"{_num(row.confidence_score, 0)} ({escape(row.confidence_level or '–')})",
             f"**Status: {escape(row.status)}** · bar date {row.bar_date} · trend "
             f"{escape(signal.get('trend', '–'))} · signal id `{escape(row.id)}`", ""]
    if row.simulated:
        lines += [f"**⚠ {SIMULATED_BANNER}**", ""]
    if row.error:
        lines += [f"**Analyst error:** {escape(row.error)}", ""]
    if signal.get("reasoning"):
        lines += [f"**Reasoning.** {escape(signal['reasoning'])}", ""]
    factors = signal.get("key_factors") or []
    if factors:
        lines += ["**Key factors**", *[f"- {escape(f)}" for f in factors], ""]
    lines += ["**Levels**", "",
              "| entry | stop | target | R multiple | support | resistance | size % |",
              "|---|---|---|---|---|---|---|",
              "| " + " | ".join(_num(signal.get(k)) for k in (
                  "entry_price", "stop_loss", "take_profit", "r_multiple", "support",
                  "resistance", "position_size_pct")) + " |", ""]
    tokens = f"{row.prompt_tokens}+{row.completion_tokens} tokens"
    dagster_link = _run_link(row.dagster_run_id, ctx.dagster_run_url(row.dagster_run_id))
    lines += [f"**Analyst:** {escape(row.provider)} / {escape(row.model)} · prompt "
              f"{escape(row.prompt_version or '–')} · {tokens} · cost ${row.cost_usd:.4f} · "
              f"{row.latency_s:.2f} s", "",
              f"**Data source:** {escape(_data_label(row))}", "",
              f"**Dagster run:** {dagster_link or '–'} · **MLflow run:** "
              f"{_mlflow_cell(ctx, row.mlflow_run_id)}", ""]
    reviews = ctx.app_db.reviews_for(row.id)
    if reviews:
        lines.append("**Reviews**")
        lines += [f"- {escape(r.decision)} by {escape(r.reviewer)} at {_when(r.decided_at)}"
                  + (f": {escape(r.note)}" if r.note else "") for r in reviews]
    charts: dict[str, bytes | None] = {}
    for timeframe in ("daily", "weekly"):
        key = (row.chart_keys or {}).get(timeframe)
        charts[timeframe] = None
        if not key:
            lines.append(f"\n_No {timeframe} chart was recorded for this signal._")
            continue
        try:
            charts[timeframe] = ctx.store.get_bytes(key)
        except Exception as exc:  # a missing or unreadable object is shown, not raised
            lines.append(f"\n_The {timeframe} chart could not be read: {escape(exc)}_")
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
    lines += [f"| {label} | {_num(daily.get(key))} | {_num(weekly.get(key))} |"
              for key, label in _INDICATOR_ROWS if key in daily or key in weekly]
    return "\n".join(lines)


def _mlflow_cell(ctx: UIContext, run_id: str) -> str:
    if not run_id:
        return "not logged"
    return _run_link(run_id, ctx.mlflow_run_url(run_id))


def review(ctx: UIContext, signal_id: str, decision: str, note: str, reviewer: str) -> str:
    """Approve or reject a pending signal, recording who, when and why."""
    if not signal_id:
        raise UIError("Choose a signal from the queue first.")
    chosen = REVIEW_DECISIONS.get(decision)
    if chosen is None:
        raise UIError(f"Unknown decision {decision!r}; approve or reject.")
    try:  # the database refuses an over-long note or reviewer name, and a settled signal
        row = ctx.app_db.review_signal(signal_id, chosen, reviewer=reviewer,
                                       note=(note or "").strip())
    except (KeyError, ValueError) as exc:
        raise UIError(error_text(exc)) from exc
    follow = (" The approved-signals sensor (or Run now) places its order." if
              chosen is SignalStatus.APPROVED else "")
    return (f"{row.symbol} {row.action} signal {row.id[:8]} is now **{row.status}** by "
            f"{escape(reviewer)} at {_when(datetime.now(UTC))}.{follow}")


HISTORY_COLUMNS = ["created", "symbol", "bar date", "action", "confidence", "status",
                   "reviewed by", "reviewed at", "note", "data", "analyst", "Dagster run",
                   "MLflow run", "signal id"]
HISTORY_DATATYPES = ["str"] * 11 + ["markdown", "markdown", "str"]


def parse_day(label: str, raw: object) -> date | None:
    text = _text(raw)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UIError(f"{label} {text!r} is not a date; use YYYY-MM-DD.") from None


def history_table(ctx: UIContext, symbol: str = "", status: str = "", since: str = "",
                  until: str = "") -> pd.DataFrame:
    """Signals newest first, with their last review and links to their Dagster and MLflow runs."""
    wanted = _check_symbol(symbol) if _text(symbol) else None
    status = _text(status)
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
            "created": _when(r.created_at), "symbol": r.symbol, "bar date": str(r.bar_date),
            "action": r.action or "ERROR", "confidence": r.confidence_score, "status": r.status,
            "reviewed by": rv.reviewer if rv else "", "reviewed at": _when(rv.decided_at)
            if rv else "", "note": rv.note if rv else (r.error[:200] if r.error else ""),
            "data": _data_label(r), "analyst": f"{r.provider}/{r.model}",
            "Dagster run": _run_link(r.dagster_run_id, ctx.dagster_run_url(r.dagster_run_id)),
            "MLflow run": _mlflow_cell(ctx, r.mlflow_run_id), "signal id": r.id,
        })
    return pd.DataFrame(records, columns=HISTORY_COLUMNS)


# --------------------------------------------------------------------- portfolio and orders


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
            f"\n| {_money(account.cash)} | {_money(account.equity)} | "
            f"{_money(account.buying_power)} | {_money(account.realized_pnl)} | "
            f"{_money(account.unrealized_pnl)} | {escape(account.currency)} |")


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
                 "signal id", "error"]


def orders_table(ctx: UIContext) -> pd.DataFrame:
    """The orders ledger (one order per signal at most), newest first."""
    return pd.DataFrame([{
        "created": _when(o.created_at), "symbol": o.symbol, "action": o.action,
        "quantity": o.quantity, "type": o.order_type, "status": o.status, "filled": o.filled,
        "avg fill": o.avg_fill_price, "commission": o.commission, "limit": o.limit_price,
        "stop": o.stop_loss, "target": o.take_profit, "broker": o.broker,
        "broker id": o.broker_order_id, "signal id": o.signal_id, "error": o.error[:200],
    } for o in ctx.app_db.list_orders()], columns=ORDER_COLUMNS)


DECISION_COLUMNS = ["decided", "symbol", "placed", "reason", "signal id", "Dagster run"]


def decisions_table(ctx: UIContext, limit: int = 50) -> pd.DataFrame:
    """What the orders asset decided lately, including every 'no order' and why."""
    return pd.DataFrame([{
        "decided": _when(d.decided_at), "symbol": d.symbol, "placed": "yes" if d.placed else "no",
        "reason": d.reason, "signal id": d.signal_id,
        "Dagster run": _run_link(d.dagster_run_id, ctx.dagster_run_url(d.dagster_run_id)),
    } for d in ctx.app_db.recent_decisions(limit)], columns=DECISION_COLUMNS)


def header_markdown(ctx: UIContext) -> str:
    """Which data, analyst and broker this page is working with; simulated parts say so."""
    market, analyst = ctx.resources["market_data"], ctx.resources["analyst"]
    return (f"**Market data:** {escape(market.describe())} · **Analyst:** "
            f"{escape(analyst.label)} · **Broker:** {escape(ctx.broker.label)} · "
            f"[Dagster UI]({ctx.config.dagster_url})")


# --------------------------------------------------------------------------------- scorecard


SCORECARD_HORIZONS = (1, 5, 20)
# The tables the Scorecard tab shows, in order, with their titles.
SCORECARD_TABLES = {
    "summary": "Summary (rates are fractions: 0.53 = 53%)",
    "by_action": "Hit rate by action, against its base rate on the same dates",
    "by_confidence": "Hit rate by stated confidence level",
    "by_analyst": "Hit rate by analyst set-up (provider, model, prompt version, variant)",
    "calibration": "Calibration: stated confidence bucket vs realised hit rate",
    "returns": "Forward returns by action vs buy-and-hold on the same dates",
    "trades": "BUY/SELL: stop or target first, R multiple, adverse excursion",
    "ab": "A/B: hit-rate difference on the dates both set-ups called (Newcombe 95%)",
}
SIMULATED_SCORECARD = ("SIMULATED DATA behind this scorecard: outcomes scored on generated "
                       "bars say nothing about any market.")
SCORECARD_README = "README.md, section “Reading the scorecard”"
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
    text = _text(raw) if isinstance(raw, str) else raw
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
    from trading_assets.assets.scorecard import read_outcomes
    from trading_assets.core.scorecard import render_scorecard_plots, scorecard_tables

    horizon = parse_horizon(horizon)
    outcomes = read_outcomes(ctx.store, symbol_choices(ctx))
    if outcomes.empty:
        return ScorecardView(horizon=horizon, markdown=NO_OUTCOMES)
    tables = scorecard_tables(outcomes, horizon)
    simulated_count = int(outcomes["simulated"].fillna(False).astype(bool).sum())
    plots = render_scorecard_plots(tables, horizon, simulated=simulated_count > 0)
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    return ScorecardView(horizon=horizon, simulated=simulated_count > 0,
                         markdown=_scorecard_note(summary, horizon, simulated_count),
                         tables={name: _display(tables[name]) for name in SCORECARD_TABLES},
                         plots=plots)


def _scorecard_note(summary: Mapping[str, Any], horizon: int, simulated: int) -> str:
    signals, scored = int(summary["signals"]), int(summary["scored"])
    bars = f"{horizon} bar" + ("s" if horizon != 1 else "")
    pending, no_bars = int(summary["pending"]), int(summary["no_bars"])
    lines = []
    if simulated:
        lines += [f"**⚠ SIMULATED DATA: {simulated} of {signals} signals were scored on "
                  "generated bars, not market prices. Their hit rates measure the analyst "
                  "against a random walk, not any market: do not read them as a track "
                  "record.**", ""]
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
