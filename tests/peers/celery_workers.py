"""Real `dagster-celery worker` processes on loopback RabbitMQ for the celery tests.

The harness is the bench's (trading_assets.bench.celery.CeleryWorkers): each test session gets
its own queue and worker names, so parallel sessions on one broker never take each other's
steps; workers are started the documented way (`python -m trading_assets.executors worker`),
and are killed, and their queue deleted, at the end. This module adds the test broker and its
check: without a broker the tests skip loudly; with CI=true they fail.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from tests.peers.postgres import in_ci
from trading_assets.bench.celery import CeleryWorkers, Worker

BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL") or "pyamqp://guest:guest@127.0.0.1:5672//"


def broker_unavailable(reason: str) -> None:
    message = (f"\n{'!' * 78}\nRABBITMQ NOT AVAILABLE at 127.0.0.1:5672 ({reason}).\nThe celery "
               "tests did NOT run. Start it (`rabbitmq-server -detached`); with CI=true this is "
               f"a failure.\n{'!' * 78}")
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def check_broker(url: str = BROKER_URL) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure to connect means: no usable broker
        broker_unavailable(str(exc) or type(exc).__name__)


def celery_env(base: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment and `base`, plus what selects the celery executor on the
    test broker: the whole environment of launchers and workers."""
    return {**os.environ, **base, "TRADING_EXECUTOR": "celery",
            "TRADING_CELERY_BROKER_URL": BROKER_URL}


__all__ = ["BROKER_URL", "CeleryWorkers", "Worker", "celery_env", "check_broker"]
