"""Imported by every symbol_pipeline Celery worker (`-i trading_assets.celery_worker`).

A worker process outlives the step it runs, and an IBKR connection lives as long as its
thread: without this, a worker keeps its gateway session open after an `ibkr`-pool step, the
next such step lands on another worker, and the gateway sees two sessions (and a second
client id) although the pool lets one step at a time use it. Closing the connection when a
task ends makes the pool mean what it says across workers: one gateway session at a time.
"""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun


@task_postrun.connect(weak=False)
def release_ibkr_connections(**_kwargs: Any) -> None:
    """Close the IBKR connections the finished step opened in this worker thread."""
    from resources.ibkr import disconnect_all

    disconnect_all()
