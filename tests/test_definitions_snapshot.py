"""The shape of the code location, pinned: a structural change shows up as a reviewable diff.

Asset keys, their deps, groups, pools and partitioning; checks; schedules; sensors; jobs and
their executors. Kind tags are left out: they follow the configured providers on purpose.
After an intended change, regenerate the snapshot and commit it with the change:

    UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """A JSON-able picture of the definitions' structure, sorted so it diffs cleanly."""
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        policy = node.backfill_policy
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "pools": sorted(node.pools or []),
            "partitions": getattr(node.partitions_def, "name", None),
            "backfill": policy.policy_type.value if policy else None,
        }
    checks = {
        f"{spec.asset_key.to_user_string()}:{spec.name}": {"blocking": spec.blocking}
        for checks_def in defs.asset_checks or [] for spec in checks_def.check_specs
    }
    schedules = {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone,
                          "job": s.job_name}
                 for s in sorted(repo.schedule_defs, key=lambda s: s.name)}
    sensors = {s.name: {"type": s.sensor_type.value, "interval_s": s.minimum_interval_seconds}
               for s in sorted(repo.sensor_defs, key=lambda s: s.name)}
    jobs = {job.name: {"executor": job.executor_def.name}
            for job in sorted(repo.get_all_jobs(), key=lambda j: j.name)}
    return {"assets": assets, "checks": checks, "schedules": schedules, "sensors": sensors,
            "jobs": jobs}


def test_the_definitions_match_the_snapshot() -> None:
    from trading_assets.definitions import defs

    current = json.dumps(describe(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), current.splitlines(True),
                                        "snapshot", "definitions"))
    assert current == expected, ("The code location's structure changed; if intended, run "
                                 "UPDATE_SNAPSHOT=1 pytest tests/test_definitions_snapshot.py "
                                 "and commit the snapshot.\n" + diff)
