"""Launch one symbol_pipeline range run from its own process, as the daemon's run launcher does.

The launching process must see TRADING_EXECUTOR=celery when it loads the definitions (the
test process already loaded them in process), and the Celery executor's result consumer is
not shared between threads, so every run gets a process:

    python -m tests.peers.celery_launch START END

Prints {"run_id", "start", "end", "success", "failures"} as one JSON line when the run ends.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

from trading_assets.executors import execute_pipeline


def main() -> None:
    start, end = sys.argv[1:3]
    with dg.DagsterInstance.get() as instance:
        result = execute_pipeline(instance, {"dagster/asset_partition_range_start": start,
                                             "dagster/asset_partition_range_end": end})
    failures = [f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
                for event in result.all_events if event.is_step_failure]
    print(json.dumps({"run_id": result.run_id, "start": start, "end": end,
                      "success": result.success, "failures": failures}), flush=True)


if __name__ == "__main__":
    main()
