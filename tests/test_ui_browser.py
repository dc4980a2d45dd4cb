"""End to end: the Gradio app on loopback, driven by a real headless Chromium through Playwright.

Uses Debian's /usr/bin/chromium (Playwright never downloads a browser here). Without it the test
is skipped with a loud reason, except on CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.conftest import on_bars_evening, run_symbols
from trading_assets.partitions import list_symbols
from ui.app import build_app, launch
from ui.config import UIConfig

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
USER, PASSWORD = "alice", "correct-horse"

pytestmark = pytest.mark.browser


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = (f"{CHROMIUM} is missing: the browser test of the Gradio app did NOT run. "
              "Install it with: apt-get install -y chromium chromium-driver")
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(f"!!! SKIPPED: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(instance: dg.DagsterInstance, env: dict[str, str],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """The app with a login on a free loopback port, over a graph run that left a signal, on
    the evening of its bars' last day (Approve checks how old a signal is)."""
    require_chromium()
    from trading_assets.settings import build_resources

    on_bars_evening(monkeypatch)
    resources = build_resources({**env, "MLFLOW_TRACKING_URI": "off"})
    run_symbols(instance, resources, ["ORCL"])  # real bars, charts and a pending BUY
    with serving(resources, instance, UIConfig(server_port=free_port(), username=USER,
                                               password=PASSWORD)) as served_app:
        yield served_app


@contextmanager
def serving(resources: dict[str, Any], instance: Any, config: UIConfig
            ) -> Iterator[tuple[str, Any]]:
    """The app on `config`'s port in this process: (its URL, the app), closed afterwards."""
    app = build_app(resources, instance, config)
    _, url, _ = launch(app, config, prevent_thread_lock=True)
    try:
        yield url.rstrip("/"), app
    finally:
        app.close()


@contextmanager
def chromium_tab(height: int = 1000, timeout_ms: int = 20_000) -> Iterator[Any]:
    """A tab of headless Chromium (Debian's, through Playwright), closed afterwards."""
    from playwright.sync_api import expect, sync_playwright

    # A loaded CI machine (2 cores, the app and Chromium beside the tests) can take more than
    # expect's default 5 s to repaint a table: wait as long as any other page action.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": height})
            tab.set_default_timeout(timeout_ms)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def page() -> Iterator[Any]:
    """A headless Chromium tab (the app it opens is the test's own fixture)."""
    require_chromium()
    with chromium_tab() as tab:
        yield tab


def log_in(page: Any, url: str) -> None:
    """Open the app and pass the login Gradio puts in front of it (GRADIO_USERNAME's user)."""
    page.goto(url)
    page.get_by_label("username").fill(USER)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()


def dismiss_toasts(page: Any) -> None:
    """Close Gradio's toasts so they do not cover the screenshots."""
    from playwright.sync_api import expect

    for button in page.get_by_test_id("toast-close").all():
        button.click()
    expect(page.get_by_test_id("toast-body")).to_have_count(0)


def test_symbols_and_signal_review_in_a_real_browser(served: tuple[str, Any], page: Any) -> None:
    from playwright.sync_api import expect

    url, app = served
    ctx = app.ui_context
    log_in(page, url)
    expect(page.get_by_role("heading", name="Trading signals")).to_be_visible()

    # Add a symbol: it becomes a Dagster partition at once (after the first paint, which
    # would repaint the table as it was).
    expect(page.locator("#symbols-table")).to_contain_text("ORCL")
    symbols_status = page.locator("#symbols-status")
    page.get_by_label("Add symbols").fill("nvda")
    page.locator("#add-button").click()
    expect(symbols_status).to_contain_text("NVDA: added. With simulated data")
    assert list_symbols(ctx.instance) == ["ORCL", "NVDA"]
    expect(page.locator("#symbols-table")).to_contain_text("NVDA")

    # An invalid symbol is refused with its reason, and nothing changes.
    page.get_by_label("Add symbols").fill("BRK/B")
    page.locator("#add-button").click()
    expect(symbols_status).to_contain_text("Not done:")
    expect(symbols_status).to_contain_text("is not a valid ticker")
    expect(page.get_by_test_id("toast-body")).to_contain_text("is not a valid ticker")
    assert list_symbols(ctx.instance) == ["ORCL", "NVDA"]
    dismiss_toasts(page)

    # The review queue shows the graph's pending signal with both charts, flagged as simulated.
    [pending] = ctx.app_db.list_signals(status="pending_review")
    page.get_by_role("tab", name="Signal review").click()
    detail = page.locator("#signal-detail")
    expect(detail).to_contain_text("Status: pending_review")
    # One SIMULATED notice on the view: the page's banner (the signal's own stays hidden).
    expect(page.locator(".simulated-banner")).to_have_count(1)
    # The signal's levels drawn on its daily chart, from the stored bars.
    expect(page.locator("#levels-chart img")).to_be_visible()
    page.wait_for_function("document.querySelector('#levels-chart img').naturalWidth > 100")
    page.get_by_text("Charts the analyst saw").click()
    for chart in ("#daily-chart img", "#weekly-chart img"):  # served from the store's bytes
        expect(page.locator(chart)).to_be_visible()
        page.wait_for_function(f"document.querySelector('{chart}').naturalWidth > 100")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-review.png"), full_page=True)

    # Approve it with a note: the status changes on the page and in the database.
    page.get_by_label("Note (stored with the decision)").fill("levels look sane")
    page.locator("#approve").click()
    # Feedback right under the buttons; the decided signal stays chosen, Approve now off.
    expect(page.locator("#review-feedback")).to_contain_text("is now approved by alice")
    expect(detail).to_contain_text("Status: approved")
    expect(page.get_by_role("combobox", name="Signal")).to_have_value(
        re.compile(r"^ORCL BUY 73 · approved"))
    expect(page.locator("#approve")).to_be_disabled()
    expect(detail).to_contain_text("approved by alice")
    page.screenshot(path=str(ARTIFACTS / "ui-review-approved.png"), full_page=True)
    assert ctx.app_db.get_signal(pending.id).status == "approved"
    [review] = ctx.app_db.reviews_for(pending.id)
    assert (review.reviewer, review.note) == (USER, "levels look sane")

    # The history lists the decision with who made it.
    page.get_by_role("tab", name="History").click()
    history = page.locator("#history-table")
    expect(history).to_contain_text("approved")
    expect(history).to_contain_text(USER)


def test_a_truncated_chart_file_does_not_blank_the_page(served: tuple[str, Any],
                                                        page: Any) -> None:
    from playwright.sync_api import expect

    url, app = served
    ctx = app.ui_context
    [pending] = ctx.app_db.list_signals(status="pending_review")
    key = pending.chart_keys["daily"]
    data = ctx.store.get_bytes(key)
    ctx.store.put_bytes(key, data[: len(data) // 2], "image/png")  # "image file is truncated"

    log_in(page, url)
    expect(page.locator("#symbols-table")).to_contain_text("ORCL")  # the page is not blank
    page.get_by_role("tab", name="Signal review").click()
    detail = page.locator("#signal-detail")
    expect(detail).to_contain_text("Status: pending_review")
    expect(detail).to_contain_text("The daily chart could not be shown: image file is truncated")
    page.get_by_text("Charts the analyst saw").click()
    for chart in ("#daily-chart img", "#weekly-chart img"):  # a placeholder and the real one
        expect(page.locator(chart)).to_be_visible()
    page.wait_for_function("document.querySelector('#weekly-chart img').naturalWidth > 100")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-review-corrupt-chart.png"), full_page=True)


class _Listener:
    """A loopback HTTP server that counts every request: a leak shows up as a count."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_text(port: int) -> tuple[str, list[str]]:
    """Reasoning and key factors as a hostile model could write them."""
    here = f"http://127.0.0.1:{port}"
    reasoning = (f"Breakout confirmed ![x]({here}/leak.png) on volume. Details: "
                 "[click](https://evil.example/phish), <https://evil.example/auto>, "
                 f"{here}/bare and www.evil.example or ops@evil.example.\n\n"
                 f'<img src="{here}/raw.png"> <a href="{here}/html">html link</a> '
                 f"[ref][1] $$\\href{{{here}/tex}}{{tex}}$$\n\n[1]: {here}/ref")
    factors = [f"![chart]({here}/factor.png)", "[docs](https://evil.example/docs)",
               f'<img src=x onerror="fetch(\'{here}/xss\')">']
    return reasoning, factors


def test_model_text_with_images_and_links_stays_text_in_a_real_browser(
        served: tuple[str, Any], page: Any) -> None:
    from playwright.sync_api import expect
    from sqlalchemy import select

    from resources.app_tables import SignalRow

    url, app = served
    ctx = app.ui_context
    listener = _Listener()
    try:
        reasoning, factors = hostile_text(listener.port)
        [pending] = ctx.app_db.list_signals(status="pending_review")
        with ctx.app_db.session() as session:
            row = session.scalars(select(SignalRow).where(SignalRow.id == pending.id)).one()
            row.signal_json = {**row.signal_json, "reasoning": reasoning, "key_factors": factors}
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))

        log_in(page, url)
        page.get_by_role("tab", name="Signal review").click()
        detail = page.locator("#signal-detail")
        expect(detail).to_contain_text("Breakout confirmed")
        page.wait_for_function("document.querySelector('#levels-chart img').naturalWidth > 100")
        page.wait_for_timeout(1500)  # room for any fetch the page would start (none may)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-review-untrusted-text.png"), full_page=True)
        text = detail.inner_text()
        hrefs = page.eval_on_selector_all("#signal-detail a", "els => els.map(e => e.href)")
        sources = page.eval_on_selector_all("#signal-detail img", "els => els.map(e => e.src)")
    finally:
        listener.close()
    # Nothing in it is live: no request left the page, no anchor or image points anywhere ...
    assert listener.hits == []
    assert not [u for u in requested if "evil.example" in u or f":{listener.port}" in u]
    assert [h for h in hrefs if "evil.example" in h or f":{listener.port}" in h] == []
    assert sources == []
    assert all("/runs/" in h for h in hrefs), hrefs  # only the Dagster run's own link
    # ... and the text reads as the model wrote it.
    for written in (f"![x](http://127.0.0.1:{listener.port}/leak.png)",
                    "[click](https://evil.example/phish)", '<img src="http://127.0.0.1:',
                    "[docs](https://evil.example/docs)"):
        assert written in text, text


@pytest.fixture
def trading_day(instance: dg.DagsterInstance, env: dict[str, str],
                monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """The app over a day with a HOLD (TSLA), a BUY waiting (ORCL), a BUY whose entry is 1,000x
    the close (crafted as a model could send it), and a filled paper order with its trade."""
    require_chromium()
    from datetime import date

    from trading_assets.core.signal import AnalysisOutcome, SignalStatus, TradingSignal
    from trading_assets.settings import build_resources

    on_bars_evening(monkeypatch)
    resources = build_resources({**env, "MLFLOW_TRACKING_URI": "off",
                                 "TRADING_ORDER_TYPE": "mkt"})
    run_symbols(instance, resources, ["TSLA", "ORCL"])
    app_db = resources["app_db"]
    [orcl] = app_db.list_signals(symbol="ORCL")
    close = float(orcl.reference_close())
    absurd = TradingSignal(
        symbol="ORCL", action="BUY", confidence_level="HIGH", confidence_score=90,
        reasoning="A breakout.", key_factors=["daily: volume"], trend="UP",
        entry_price=round(close * 1000, 2), stop_loss=round(close * 999, 2),
        take_profit=round(close * 1001, 2))
    refused = app_db.record_signal(
        outcome=AnalysisOutcome(symbol="ORCL", signal=absurd, provider="openai",
                                model="gpt-crafted", prompt_version="p"),
        bar_date=date(2026, 11, 20), status=SignalStatus.PENDING_REVIEW,
        data_source="simulated", simulated=True, last_bars=orcl.last_bars,
        indicators=orcl.indicators, chart_keys=orcl.chart_keys)
    # Approve ORCL's rules BUY and let the orders and portfolio steps fill it (market order).
    app_db.review_signal(orcl.id, SignalStatus.APPROVED, reviewer=USER)
    from trading_assets.assets.trading import orders, portfolio

    run_symbols(instance, resources, ["ORCL"], assets=[orders, portfolio])
    config = UIConfig(server_port=free_port(), username=USER, password=PASSWORD)
    with serving(resources, instance, config) as (url, app):
        app.refused_id = refused.id
        yield url, app


def test_the_traders_loop_in_a_real_browser(trading_day: tuple[str, Any], page: Any) -> None:
    from playwright.sync_api import expect

    url, app = trading_day
    ctx = app.ui_context
    log_in(page, url)
    page.get_by_role("tab", name="Signal review").click()

    # Only what a person can act on waits: TSLA's HOLD is no_action, not in the queue.
    queue = page.locator("#queue-table")
    expect(queue).to_contain_text("ORCL")
    expect(queue).not_to_contain_text("TSLA")
    assert [r.status for r in ctx.app_db.list_signals(symbol="TSLA")] == ["no_action"]

    # The crafted BUY: its levels on the chart, and Approve refused with the number and limit.
    page.get_by_role("combobox", name="Signal").click()
    page.get_by_role("option", name=re.compile(app.refused_id[:8])).click()
    detail = page.locator("#signal-detail")
    expect(detail).to_contain_text("confidence 90")
    page.wait_for_function("document.querySelector('#levels-chart img').naturalWidth > 100")
    page.locator("#approve").click()
    feedback = page.locator("#review-feedback")
    expect(feedback).to_contain_text("Not approved: entry")
    expect(feedback).to_contain_text("99900.0% from the last close")
    expect(feedback).to_contain_text("TRADING_MAX_ENTRY_DEVIATION_PCT")
    assert ctx.app_db.get_signal(app.refused_id).status == "pending_review"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-review-levels-refused.png"), full_page=True)

    # The portfolio: the equity curve, the filled trade, P&L per symbol.
    dismiss_toasts(page)
    page.get_by_role("tab", name="Portfolio and orders").click()
    page.wait_for_function("document.querySelector('#equity-plot img') &&"
                           " document.querySelector('#equity-plot img').naturalWidth > 100")
    expect(page.locator("#trades-table")).to_contain_text("ORCL")
    expect(page.locator("#pnl-table")).to_contain_text("ORCL")
    page.screenshot(path=str(ARTIFACTS / "ui-portfolio-equity.png"), full_page=True)
