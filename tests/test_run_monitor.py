"""A run's process that died is noticed: the health check run monitoring asks, the instance
configs that turn it on, the launchers' waits and the analysis claims (a claim belongs to a
live run). The same paths against a real `dagster dev` are in test_dead_runs.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from trading_assets import runs
from trading_assets.run_monitor import WORKER_TAG, MonitoredRunLauncher, run_alive, worker_gone

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 11, 20)


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def started_run(instance: dg.DagsterInstance, symbol: str, pid: int) -> str:
    """A STARTED run of `symbol` executed by process `pid` on this machine."""
    run_id = str(uuid.uuid4())
    remote, python = runs._job_origins()
    instance.add_run(dg.DagsterRun(
        job_name=runs.JOB_NAME, run_id=run_id, status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": symbol, WORKER_TAG: f"{socket.gethostname()}:{pid}"},
        remote_job_origin=remote, job_code_origin=python))
    return run_id


def test_every_instance_config_runs_monitoring_with_the_health_checking_launcher(
        home: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    embedded, _ = dagster_instance_config(str(home))
    production = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    for config in (embedded, production):
        assert config["run_launcher"] == {"module": "trading_assets.run_monitor",
                                          "class": "MonitoredRunLauncher"}
        monitoring = config["run_monitoring"]
        assert monitoring["enabled"] and monitoring["max_resume_run_attempts"] == 0
        assert 60 <= monitoring["start_timeout_seconds"] <= 300
        assert 60 <= monitoring["cancel_timeout_seconds"] <= 300
        assert monitoring["poll_interval_seconds"] <= 30
        assert monitoring["free_slots_after_run_end_seconds"] > 0
    instance = runs.get_instance()  # the embedded home `make dev` and the CLI open
    assert instance.run_monitoring_enabled
    assert isinstance(instance.run_launcher, MonitoredRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


def test_the_health_check_fails_a_run_whose_process_died_and_says_why(home: Path) -> None:
    instance = runs.get_instance()
    launcher = instance.run_launcher
    alive = started_run(instance, "ACME", os.getpid())
    dead = started_run(instance, "BETA", dead_pid())

    assert launcher.check_run_worker_health(instance.get_run_by_id(alive)).status.value \
        == "RUNNING"
    result = launcher.check_run_worker_health(instance.get_run_by_id(dead))
    assert result.status.value == "FAILED"
    assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    [why] = runs.run_failures(instance, dead)
    assert why.startswith(f"run: Run {dead[:8]} failed: its process (pid ")
    assert "is gone" in why and "run its symbols again" in why


def test_a_worker_on_another_machine_or_without_a_record_counts_as_alive(home: Path) -> None:
    instance = runs.get_instance()
    remote = started_run(instance, "ACME", dead_pid())
    instance.add_run_tags(remote, {WORKER_TAG: f"another-host:{dead_pid()}"})
    assert worker_gone(instance, instance.get_run_by_id(remote)) == ""
    unknown = started_run(instance, "BETA", 1)
    instance.add_run_tags(unknown, {WORKER_TAG: ""})
    assert worker_gone(instance, instance.get_run_by_id(unknown)) == ""


def test_a_wait_for_a_started_run_whose_process_died_ends_at_once_with_the_reason(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon heartbeats (it restarted) and the run stays STARTED: the CLI waited forever.
    from dagster._daemon.types import DaemonHeartbeat

    instance = runs.get_instance()
    instance.add_dynamic_partitions("symbols", ["ACME"])
    instance.add_daemon_heartbeat(DaemonHeartbeat(runs.time.time(), "QUEUED_RUN_COORDINATOR",
                                                  "test", None))
    dead = started_run(instance, "ACME", dead_pid())
    [outcome] = runs.wait_for_runs(instance, [dead], timeout_s=30, poll_s=0.05)
    assert outcome.status == "FAILURE" and not outcome.success
    [why] = outcome.failures
    assert "is gone" in why and "run its symbols again" in why


def test_an_analysis_claim_of_a_run_that_ended_or_died_is_taken_over_at_once(
        home: Path, resources: dict[str, Any]) -> None:
    instance = runs.get_instance()
    app_db = resources["app_db"]
    living = started_run(instance, "AAA", os.getpid())
    died = started_run(instance, "BBB", dead_pid())
    keys = {"AAA": [("AAA", DAY)], "BBB": [("BBB", DAY)], "CCC": [("CCC", DAY)]}
    assert app_db.claim_analyses(keys["AAA"], "rules", living, 900.0) == [True]
    assert app_db.claim_analyses(keys["BBB"], "rules", died, 900.0) == [True]
    assert app_db.claim_analyses(keys["CCC"], "rules", "no-such-run", 900.0) == [True]
    assert (run_alive(instance, living), run_alive(instance, died),
            run_alive(instance, "no-such-run")) == (True, False, False)

    from trading_assets.assets.signals import AnalysisClaims
    from trading_assets.core.signal import AnalysisRequest

    def request(symbol: str) -> AnalysisRequest:
        return AnalysisRequest(symbol=symbol, bar_date=DAY, data_source="simulated",
                               simulated=True, daily_summary={}, weekly_summary={},
                               last_bars=[], position={})

    claims = AnalysisClaims(app_db, "rules", "new-run",
                            alive=lambda run_id: run_alive(instance, run_id))
    mine, held = claims.take([request(s) for s in ("AAA", "BBB", "CCC")])
    # The live run keeps its lease; the dead run's and the unknown run's are this run's now.
    assert [r.symbol for r in mine] == ["BBB", "CCC"] and [r.symbol for r in held] == ["AAA"]
    assert instance.get_run_by_id(died).status == dg.DagsterRunStatus.FAILURE
    ready, waiting = claims.settled(held, ("rules", "rules", "v1"))
    assert (ready, [r.symbol for r in waiting]) == ([], ["AAA"])
    instance.report_run_failed(instance.get_run_by_id(living))
    ready, waiting = claims.settled(held, ("rules", "rules", "v1"))
    assert ([r.symbol for r in ready], waiting) == (["AAA"], [])


def test_run_now_and_the_sensors_no_longer_see_a_dead_run_as_analysing(home: Path) -> None:
    instance = runs.get_instance()
    instance.add_dynamic_partitions("symbols", ["ACME", "BETA"])
    started_run(instance, "ACME", os.getpid())
    dead = started_run(instance, "BETA", dead_pid())
    assert runs.analysing_symbols(instance, ["ACME", "BETA"]) == {"ACME"}
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE


def test_runs_executed_in_this_process_name_it_as_their_worker(
        home: Path, resources: dict[str, Any]) -> None:
    instance = runs.get_instance()
    [one] = runs.launch_symbols(["ACME"], instance=instance, resources=resources,
                                mode="in-process")
    tag = instance.get_run_by_id(one.run_id).tags[WORKER_TAG]
    assert tag == f"{socket.gethostname()}:{os.getpid()}"
