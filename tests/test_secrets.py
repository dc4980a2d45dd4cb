"""The log redaction filter: scrubs the environment's secrets without rebuilding them per record."""

from __future__ import annotations

import logging

import pytest

from trading_assets.core import secrets


def test_the_log_filter_builds_the_secret_list_once_per_environment_state(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    rebuilds = []
    parse = secrets.url_credentials
    monkeypatch.setattr(secrets, "url_credentials",
                        lambda url: rebuilds.append(url) or parse(url))
    monkeypatch.setenv("LLM_API_KEY", "sk-first-key-123456")
    logger = logging.getLogger("trading_assets.test_secrets")
    logger.addFilter(secrets.RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        for i in range(100):
            logger.info("call %d with sk-first-key-123456", i)
        # A key set later (a rotated one) is still redacted: the cache follows the environment.
        monkeypatch.setenv("LLM_API_KEY", "sk-rotated-key-654321")
        logger.info("retry with sk-rotated-key-654321")
    assert "sk-first-key" not in caplog.text and "sk-rotated-key" not in caplog.text
    assert caplog.text.count("[REDACTED]") == 101
    # Each rebuild parses every URL variable once: two environment states, two rebuilds.
    assert len(rebuilds) == 2 * len(secrets.URL_VARS)
