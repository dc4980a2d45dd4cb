"""The log redaction filter: scrubs the environment's secrets without rebuilding them per record."""

from __future__ import annotations

import logging

import pytest

from trading_assets.core import secrets


def test_the_log_filter_builds_the_secret_list_once_per_environment_state(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    secrets._secrets_of.cache_clear()
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
    # Two environment states, two builds of the list (not one per record).
    assert secrets._secrets_of.cache_info().misses == 2
