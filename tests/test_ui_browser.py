"""End to end: the Gradio app on loopback, driven by a real headless Chromium through Playwright.

Uses Debian's /usr/bin/chromium (Playwright never downloads a browser here). Without it the test
is skipped with a loud reason, except on CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.conftest import run_symbols
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
    from datetime import UTC, datetime

    from trading_assets.core import clock
    from trading_assets.settings import build_resources

    monkeypatch.setattr(clock, "utc_now", lambda: datetime(2026, 11, 20, 22, 0, tzinfo=UTC))
    resources = build_resources({**env, "MLFLOW_TRACKING_URI": "off"})
    run_symbols(instance, resources, ["ORCL"])  # real bars, charts and a pending BUY
    config = UIConfig(server_port=free_port(), username=USER, password=PASSWORD)
    app = build_app(resources, instance, config)
    _, url, _ = launch(app, config, prevent_thread_lock=True)
    try:
        yield url.rstrip("/"), app
    finally:
        app.close()


@pytest.fixture
def page(served: tuple[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(20_000)
            yield tab
        finally:
            browser.close()


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
    page.goto(url)

    # The login Gradio puts in front of the app, with the user from GRADIO_USERNAME.
    page.get_by_label("username").fill(USER)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("heading", name="Trading signals")).to_be_visible()

    # Add a symbol: it becomes a Dagster partition at once.
    symbols_status = page.locator("#symbols-status")
    page.get_by_label("Add symbols").fill("nvda")
    page.locator("#add-button").click()
    expect(symbols_status).to_contain_text("Added NVDA as Dagster partitions.")
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
    expect(page.locator("#signal-simulated")).to_contain_text("SIMULATED DATA")
    for chart in ("#daily-chart img", "#weekly-chart img"):  # served from the store's bytes
        expect(page.locator(chart)).to_be_visible()
        page.wait_for_function(f"document.querySelector('{chart}').naturalWidth > 100")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-review.png"), full_page=True)

    # Approve it with a note: the status changes on the page and in the database.
    page.get_by_label("Note (stored with the decision)").fill("levels look sane")
    page.locator("#approve").click()
    expect(page.locator("#review-status")).to_contain_text("is now approved by alice")
    expect(detail).to_contain_text("Status: approved")
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

    page.goto(url)
    page.get_by_label("username").fill(USER)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#symbols-table")).to_contain_text("ORCL")  # the page is not blank
    page.get_by_role("tab", name="Signal review").click()
    detail = page.locator("#signal-detail")
    expect(detail).to_contain_text("Status: pending_review")
    expect(detail).to_contain_text("The daily chart could not be shown: image file is truncated")
    for chart in ("#daily-chart img", "#weekly-chart img"):  # a placeholder and the real one
        expect(page.locator(chart)).to_be_visible()
    page.wait_for_function("document.querySelector('#weekly-chart img').naturalWidth > 100")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-review-corrupt-chart.png"), full_page=True)
