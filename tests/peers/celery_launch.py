"""Launch one symbol_pipeline run over a batch of symbols from its own process, as the
daemon's run launcher does.

The launching process must see TRADING_EXECUTOR=celery when it loads the definitions (the
test process already loaded them in process), and the Celery executor's result consumer is
not shared between threads, so every run gets a process:

    python -m tests.peers.celery_launch SYMBOL [SYMBOL ...]

The batch comes from runs.symbol_batches and the tags from runs.run_tags, as for any run.
Prints {"run_id", "start", "end", "success", "failures"} as one JSON line when the run ends.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

from trading_assets.executors import execute_pipeline
from trading_assets.runs import run_tags


def main() -> None:
    batch = sys.argv[1:]
    with dg.DagsterInstance.get() as instance:
        result = execute_pipeline(instance, run_tags(batch, "cli"))
    failures = [f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
                for event in result.all_events if event.is_step_failure]
    print(json.dumps({"run_id": result.run_id, "start": batch[0], "end": batch[-1],
                      "success": result.success, "failures": failures}), flush=True)


if __name__ == "__main__":
    main()
