"""Launch one symbol_pipeline run over a batch of symbols from its own process, as the
daemon's run launcher does.

The launching process must see TRADING_EXECUTOR=celery when it loads the definitions (the
test process already loaded them in process), and the Celery executor's result consumer is
not shared between threads, so every run gets a process:

    python -m tests.peers.celery_launch SYMBOL [SYMBOL ...]

The batch comes from runs.symbol_batches; the run goes through runs.execute_batch, as the CLI's
in-process launch does (with TRADING_EXECUTOR=celery it hands the run to the executor).
Prints {"run_id", "start", "end", "success", "failures"} as one JSON line when the run ends.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

from trading_assets.runs import execute_batch
from trading_assets.settings import build_resources


def main() -> None:
    batch = sys.argv[1:]
    with dg.DagsterInstance.get() as instance:
        result = execute_batch(instance, batch, build_resources(), "cli")
    if result.mode != "celery":
        raise SystemExit(f"expected a celery launch, got {result.mode!r}: set TRADING_EXECUTOR")
    print(json.dumps({"run_id": result.run_id, "start": batch[0], "end": batch[-1],
                      "success": result.success, "failures": result.failures}), flush=True)


if __name__ == "__main__":
    main()
