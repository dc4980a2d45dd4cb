"""What a run covers, written as tags when it is launched and read back by sensors and the app.

Apart from trading_assets/runs.py (which launches the symbol_pipeline job from the definitions)
so that the sensors, which are part of those definitions, can read runs without importing the
launcher: imports between the two never go in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LAUNCHED_BY_TAG = "trading/launched_by"
LAUNCHERS = ("cli", "gradio", "sensor", "schedule", "bench", "replay")
PARTITION_TAG = "dagster/partition"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The chunk runs of one launch share this tag's value; the embedded instance runs them one
# after another (runs.home_config), so a big launch does not start all its runs at once.
LAUNCH_TAG = "trading/launch"
# Unfinished runs: still waiting for the daemon, or running.
WAITING_STATUSES = ("QUEUED", "NOT_STARTED")
RUNNING_STATUSES = ("STARTING", "STARTED")
ACTIVE_STATUSES = WAITING_STATUSES + RUNNING_STATUSES
ANALYSIS_ASSET = "llm_signal"


def run_tags(batch: Sequence[str], launched_by: str) -> dict[str, str]:
    """Tags of a run over `batch`: the partition for one symbol, the range for several."""
    if launched_by not in LAUNCHERS:
        raise ValueError(f"launched_by={launched_by!r}: use one of {', '.join(LAUNCHERS)}.")
    tags = {LAUNCHED_BY_TAG: launched_by, "trading/symbol_count": str(len(batch))}
    if len(batch) == 1:
        return {**tags, PARTITION_TAG: batch[0]}
    return {**tags, RANGE_START: batch[0], RANGE_END: batch[-1]}


def launch_tags(batches: int, launch_id: str) -> dict[str, str]:
    """The tag tying together the runs of one launch, when it made more than one run."""
    return {LAUNCH_TAG: launch_id} if batches > 1 else {}


def run_symbols(tags: Mapping[str, str], all_keys: Sequence[str]) -> list[str]:
    """The symbols a run covered, from its partition tag or its partition range tags."""
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START), tags.get(RANGE_END)
    if not start or not end:
        return []
    if start in all_keys and end in all_keys:
        i, j = all_keys.index(start), all_keys.index(end)
        return list(all_keys[i:j + 1])
    # A bound deleted since the run: name the bounds rather than guess what lay between them.
    return list(dict.fromkeys([start, end]))


def analysis_runs(instance: Any, all_keys: Sequence[str]) -> dict[str, list[Any]]:
    """Queued or running runs that analyse symbols (not orders-only runs), by symbol; a
    started run whose process is gone is failed with the reason and left out."""
    import dagster as dg

    from trading_assets.run_monitor import end_if_dead

    statuses = [dg.DagsterRunStatus(s) for s in ACTIVE_STATUSES]
    by_symbol: dict[str, list[Any]] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        if run.asset_selection and dg.AssetKey(ANALYSIS_ASSET) not in run.asset_selection:
            continue  # an orders-only run: the symbol still needs its analysis
        if end_if_dead(instance, run):
            continue
        for symbol in run_symbols(run.tags, list(all_keys)):
            by_symbol.setdefault(symbol, []).append(run)
    return by_symbol


def analysing_symbols(instance: Any, all_keys: Sequence[str]) -> set[str]:
    """Symbols a queued or running run is analysing already (sensors and Run now skip them)."""
    return set(analysis_runs(instance, all_keys))
