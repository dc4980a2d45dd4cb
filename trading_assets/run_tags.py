"""What a run covers, written as tags when it is launched and read back by sensors and the app.

Apart from trading_assets/runs.py (which launches the symbol_pipeline job from the definitions)
so that the sensors, which are part of those definitions, can read runs without importing the
launcher: imports between the two never go in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
# Dagster's own tags on runs it launches: which sensor or schedule, or the backfill of a range.
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"
BACKFILL_TAG = "dagster/backfill"
LAUNCHER_NAMES = {"cli": "CLI", "gradio": "Gradio app", "bench": "bench", "replay": "replay"}
# How a run's status reads in the app: a queued run is queued, not running.
STATE_WORDS = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "starting",
               "STARTED": "running", "SUCCESS": "succeeded", "FAILURE": "failed",
               "CANCELING": "canceling", "CANCELED": "canceled"}
# How far back the app looks for a symbol's last run (newest runs first).
LAST_RUN_SCAN = 1000


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


def active_runs(instance: Any, all_keys: Sequence[str], analysis_only: bool = False
                ) -> dict[str, list[Any]]:
    """Unfinished runs (queued, starting, running or being canceled) by the keys they name;
    with `analysis_only`, only runs that analyse (not orders-only runs). A started run whose
    process is gone is failed with the reason and left out (trading_assets/run_monitor.py)."""
    import dagster as dg

    from trading_assets.run_monitor import end_if_dead

    statuses = [dg.DagsterRunStatus(s) for s in (*ACTIVE_STATUSES, "CANCELING")]
    by_symbol: dict[str, list[Any]] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        if analysis_only and run.asset_selection and \
                dg.AssetKey(ANALYSIS_ASSET) not in run.asset_selection:
            continue  # an orders-only run: the symbol still needs its analysis
        if end_if_dead(instance, run):
            continue
        for symbol in run_symbols(run.tags, list(all_keys)):
            by_symbol.setdefault(symbol, []).append(run)
    return by_symbol


def analysis_runs(instance: Any, all_keys: Sequence[str]) -> dict[str, list[Any]]:
    """Queued or running runs that analyse symbols (not orders-only runs), by symbol."""
    return active_runs(instance, all_keys, analysis_only=True)


def analysing_symbols(instance: Any, all_keys: Sequence[str]) -> set[str]:
    """Symbols a queued or running run is analysing already (sensors and Run now skip them)."""
    return set(analysis_runs(instance, all_keys))


def launcher_of(tags: Mapping[str, str]) -> str:
    """Who launched a run: our tag when a launcher of ours set it, else what Dagster's own tags
    say ("sensor <name>", "schedule <name>", a backfill), else "Dagster UI" (its Materialize
    and Launch run set none of ours)."""
    if tags.get(SENSOR_TAG):
        return f"sensor {tags[SENSOR_TAG]}"
    if tags.get(SCHEDULE_TAG):
        return f"schedule {tags[SCHEDULE_TAG]}"
    ours = tags.get(LAUNCHED_BY_TAG)
    if ours:
        return LAUNCHER_NAMES.get(ours, ours)
    return "Dagster UI (backfill)" if tags.get(BACKFILL_TAG) else "Dagster UI"


@dataclass(frozen=True)
class SymbolRun:
    """A symbol's newest run: which, its Dagster status, who launched it and when."""

    run_id: str
    status: str  # Dagster's run status, e.g. "QUEUED", "SUCCESS"
    launcher: str
    at: datetime  # ended, else started, else created

    @property
    def state(self) -> str:
        """"queued", "running", "succeeded", "failed", ... as the app shows it."""
        return STATE_WORDS.get(self.status, self.status.lower())


def _symbol_of(key: str) -> str:
    """The symbol a partition key stands for (a key typed as `intc` is INTC's run)."""
    from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

    try:
        return validate_symbol(key)
    except InvalidSymbolError:
        return key


def last_runs(instance: Any, symbols: Sequence[str], all_keys: Sequence[str],
              scan: int = LAST_RUN_SCAN) -> dict[str, SymbolRun]:
    """Each symbol's newest run among every run that covers it (a single key or a range),
    whatever launched it; symbols with no run among the newest `scan` runs are absent."""
    wanted, found = set(symbols), {}
    keys, cursor, seen = list(all_keys), None, 0
    while wanted - found.keys() and seen < scan:
        records = instance.get_run_records(limit=min(200, scan - seen), cursor=cursor)
        if not records:
            break
        for record in records:
            run = record.dagster_run
            covered = {_symbol_of(k) for k in run_symbols(run.tags, keys)} & wanted
            stamp = record.end_time or record.start_time
            at = (datetime.fromtimestamp(stamp, UTC) if stamp
                  else record.create_timestamp.replace(tzinfo=record.create_timestamp.tzinfo
                                                       or UTC))
            for symbol in covered - found.keys():
                found[symbol] = SymbolRun(run.run_id, run.status.value, launcher_of(run.tags),
                                          at)
        cursor, seen = records[-1].dagster_run.run_id, seen + len(records)
    return found


def last_run_text(instance: Any, app_db: Any, symbol: str, run: SymbolRun) -> str:
    """A symbol's last run as the app and the CLI show it: state, when, who launched it, the
    run, and for a failure the symbol's own error (else the run's first failed step)."""
    from trading_assets.runs import run_failures

    state = run.state
    if run.status in ("SUCCESS", "FAILURE"):
        why = app_db.failed_symbols(run.run_id).get(symbol)
        if why is None and run.status == "FAILURE":
            why = next(iter(run_failures(instance, run.run_id)), "")
        if why is not None:
            state = f"failed in {why}" if why else "failed"
    return f"{state} {run.at:%Y-%m-%d %H:%M} UTC · {run.launcher} · run {run.run_id[:8]}"


def last_run_cells(instance: Any, app_db: Any, symbols: Sequence[str], all_keys: Sequence[str]
                   ) -> dict[str, str]:
    """last_run_text of each symbol that has a run."""
    return {symbol: last_run_text(instance, app_db, symbol, run)
            for symbol, run in last_runs(instance, symbols, all_keys).items()}
