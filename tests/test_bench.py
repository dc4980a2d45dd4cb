"""`trading-signals bench` works end to end and reports every figure; timings are not judged."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trading_assets.bench import parse_sizes, table_rows

STAGES = {"ohlcv", "indicators", "chart_inputs", "charts", "chart_store_previews",
          "rules_signal", "orders", "portfolio", "total"}
E2E = {"symbols", "wall_s", "symbols_per_minute", "dagster_runs", "symbols_completed",
       "peak_rss_mb", "peak_tree_rss_mb", "peak_rss_source", "events", "event_log_bytes",
       "event_log_bytes_per_symbol", "failures"}
LLM = {"calls", "delay_s", "concurrency", "wall_s", "sequential_s", "speedup", "ok",
       "max_in_flight"}


@pytest.mark.timeout(1200)
def test_bench_with_small_sizes_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "trading_assets.cli", "bench", "--symbols", "3",
         "--stage-runs", "1", "--llm-calls", "5", "--skip", "live", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())

    assert set(report) >= {"machine", "settings", "targets", "stages", "e2e", "llm", "demo",
                           "table", "reference"}
    assert set(report["stages"]["median_s"]) == STAGES
    assert all(isinstance(v, float) for v in report["stages"]["median_s"].values())
    assert report["stages"]["definitions_import_s"] is not None
    # The default configuration (MLflow on, a local store) first, MLflow off beside it.
    assert [e2e["mlflow"] for e2e in report["e2e"]] == ["on", "off"]
    for e2e in report["e2e"]:
        assert E2E <= set(e2e)
        assert (e2e["symbols"], e2e["symbols_completed"], e2e["dagster_runs"]) == (3, 3, 1)
    # The same daily chart drawn by both renderers in this run, both times and the ratio.
    charts = report["stages"]["charts_vs_mplfinance"]
    assert charts["project_s"] > 0 and charts["mplfinance_s"] > 0
    assert abs(charts["ratio"] - charts["mplfinance_s"] / charts["project_s"]) < 0.1
    assert all(size > 10_000 for size in charts["png_bytes"].values())
    assert "mplfinance / project" in run.stdout
    assert "load average" in run.stdout and len(report["machine"]["load_avg_start"]) == 3
    assert LLM <= set(report["llm"]) and report["llm"]["ok"] == 5
    assert report["demo"]["exit_code"] == 0
    # The table carries a target and a verdict beside each targeted figure, as printed.
    targeted = [row for row in report["table"] if row["target"] is not None]
    assert targeted and all(row["passed"] in (True, False) for row in targeted)
    assert "charts: render both" in run.stdout
    assert "PASS" in run.stdout or "FAIL" in run.stdout
    # Nothing was left in the working directory: every benchmark used its own temporary folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


@pytest.mark.parametrize("raw", ["", "ten", "10,0", "-5"])
def test_sizes_must_be_positive_counts(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sizes(raw)


def test_targets_apply_at_their_stated_scale() -> None:
    def e2e(n: int, wall: float) -> dict[str, object]:
        return {"symbols": n, "wall_s": wall, "symbols_per_minute": n / wall * 60,
                "symbols_completed": n, "dagster_runs": 1, "peak_rss_mb": 300.0,
                "peak_tree_rss_mb": 600.0, "event_log_bytes_per_symbol": 150_000}

    report = {"stages": {"skipped": "--skip"}, "llm": {"skipped": "--skip"},
              "demo": {"skipped": "--skip"}, "e2e": [e2e(10, 9.0), e2e(500, 320.0)]}
    rows = {(row["section"], row["name"]): row for row in table_rows(report)}
    small, large = "end to end, 10 symbols (Dagster, in-process, MLflow on)", \
        "end to end, 500 symbols (Dagster, in-process, MLflow on)"
    assert rows[(small, "wall time")]["target"] is None
    assert rows[(large, "wall time")]["passed"] is False  # 320 s > 100 s
    assert rows[(large, "Dagster runs")]["passed"] is True


def test_charts_drawn_by_worker_processes_match_and_fail_alone() -> None:
    from datetime import date

    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.charts import ChartJob, render_charts
    from trading_assets.core.indicators import compute_indicators, resample_weekly

    jobs = []
    for symbol in ("AAA", "BBB", "CCC"):
        bars = simulate_bars(symbol, date(2026, 11, 20))
        jobs.append(ChartJob(symbol, {"daily": compute_indicators(bars),
                                      "weekly": compute_indicators(resample_weekly(bars))},
                             simulated=True))
    broken = ChartJob("BAD", {"daily": jobs[0].frames["daily"].drop(columns=["rsi_14"])}, True)
    jobs.insert(1, broken)

    here = list(render_charts(jobs, workers=0))
    there = list(render_charts(jobs, workers=2))

    assert [job.symbol for job, _ in there] == ["AAA", "BAD", "BBB", "CCC"]
    for (_, local), (job, remote) in zip(here, there, strict=True):
        if job is broken:
            assert isinstance(local, KeyError) and "rsi_14" in str(remote)
        else:
            assert {t: i.png for t, i in remote.items()} == {t: i.png for t, i in local.items()}


def test_each_target_is_judged_by_the_sign_printed_beside_it() -> None:
    def report(exit_code: int, runs: int) -> dict[str, object]:
        e2e = {"symbols": 10, "wall_s": 9.0, "symbols_per_minute": 66.7, "symbols_completed": 10,
               "dagster_runs": runs, "peak_rss_mb": 300.0, "peak_tree_rss_mb": 600.0,
               "event_log_bytes_per_symbol": 150_000}
        return {"stages": {"skipped": "--skip"}, "llm": {"skipped": "--skip"}, "e2e": [e2e],
                "demo": {"wall_s": 30.0, "exit_code": exit_code}}

    ok = {row["name"]: row for row in table_rows(report(0, 10))}
    bad = {row["name"]: row for row in table_rows(report(1, 11))}
    assert [ok[n]["target_op"] for n in ("exit code", "Dagster runs", "symbols completed",
                                         "peak memory, Dagster process (ru_maxrss)")] == \
        ["==", "<=", ">=", "<"]
    assert ok["exit code"]["passed"] is True and bad["exit code"]["passed"] is False
    assert ok["Dagster runs"]["passed"] is True and bad["Dagster runs"]["passed"] is False
    assert ok["symbols completed"]["passed"] is True
    assert ok["wall time"]["target_op"] is None and ok["wall time"]["passed"] is None


@pytest.mark.timeout(900)
def test_bench_live_section_runs_the_daemon_paths_of_make_dev(tmp_path: Path) -> None:
    # A real `dagster dev` (webserver, daemon, code server, run workers) on the instance
    # `make dev` sets up: the UI's launch, the CLI's queued launch, the sensor, and a batch.
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "trading_assets.cli", "bench", "--symbols", "3",
         "--skip", "stages", "--skip", "e2e", "--skip", "llm", "--skip", "demo",
         "--json", str(out)],
        capture_output=True, text=True, timeout=800, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    live = json.loads(out.read_text())["live"]
    assert live["ui_run"]["status"] == live["runs_layer"]["status"] == "SUCCESS"
    assert live["add_to_signal"]["status"] in {"pending_review", "auto_approved", "no_action"}
    assert [live[k]["runs"] for k in ("ui_run", "runs_layer", "add_to_signal")] == [1, 1, 1]
    many = live["many"]
    assert (many["symbols"], many["symbols_completed"], many["runs_succeeded"]) == (3, 3, 1)
    assert many["peak_tree_rss_mb"] > 0 and many["most_runs_at_once"] == 1
    assert "via the daemon queue" in run.stdout


@pytest.mark.timeout(240)
def test_a_dagster_dev_that_dies_is_noticed_at_once_and_its_log_kept(tmp_path: Path) -> None:
    # A bad instance config makes `dagster dev` exit while starting: the wait must end on the
    # exit (not the start-up timeout) and leave the log where it survives the temporary folder.
    from trading_assets.bench.common import bench_env
    from trading_assets.bench.live import KEPT_LOGS, DagsterDev, DagsterDevError

    env = bench_env(tmp_path)
    dev = DagsterDev(env, tmp_path / "dagster-dev.log")
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text("run_launcher: [not, a, mapping]\n")
    with pytest.raises(DagsterDevError) as raised:
        dev.start(timeout_s=3600)
    message = str(raised.value)
    assert "dagster dev exited with code" in message and "before it was ready" in message
    kept = Path(message.split("its log is kept at ", 1)[1].split(". Last lines:", 1)[0])
    try:
        assert kept.parent == KEPT_LOGS and kept.exists()
        # The tail printed is the end of the kept log: what went wrong, without opening it.
        assert message.rsplit("Last lines:\n", 1)[1].splitlines()[-1] in kept.read_text()
        assert "run_launcher" in kept.read_text()
    finally:
        kept.unlink(missing_ok=True)


def test_the_celery_bench_runs_on_embedded_defaults_and_the_users_broker(tmp_path: Path) -> None:
    from trading_assets.bench.celery import celery_bench_env

    user = {"PATH": "/usr/bin", "LLM_API_KEY": "sk-user", "LLM_BASE_URL": "https://llm.example",
            "IBKR_HOST": "gateway.example", "TRADING_DATA_SOURCE": "ibkr",
            "TRADING_CELERY_BROKER_URL": "pyamqp://bench:pw@broker.example:5672//"}
    env = celery_bench_env(tmp_path, {"app": "postgresql:///app", "paper": "postgresql:///p"},
                           base=user)
    assert not [name for name in env if name.startswith(("LLM_", "IBKR_"))]
    assert "TRADING_DATA_SOURCE" not in env and env["PATH"] == "/usr/bin"
    assert env["TRADING_CELERY_BROKER_URL"] == "pyamqp://bench:pw@broker.example:5672//"
    assert (env["TRADING_EXECUTOR"], env["APP_DATABASE_URL"], env["PAPER_BROKER_DATABASE_URL"]) \
        == ("celery", "postgresql:///app", "postgresql:///p")
    assert env["DAGSTER_HOME"].startswith(str(tmp_path))


@pytest.mark.celery
def test_the_bench_worker_harness_starts_consumes_and_cleans_up(tmp_path: Path) -> None:
    """The one harness of the bench and the celery tests, on the test broker."""
    from tests.peers.celery_workers import CeleryWorkers, celery_env, check_broker
    from trading_assets.bench.common import bench_env

    check_broker()
    env = celery_env(bench_env(tmp_path))
    Path(env["DAGSTER_HOME"]).mkdir()  # the worker opens the (embedded) instance
    workers = CeleryWorkers(env, tmp_path / "logs")
    try:
        worker = workers.start("h1")
        workers.wait_ready(1)
        assert (workers.consumers(), workers.depth()) == (1, 0)
        assert worker.hostname.startswith(f"h1-{workers.queue}@")
    finally:
        workers.stop_all()
    assert worker.process.returncode is not None
    assert (workers.consumers(), workers.depth()) == (0, 0)  # the queue is gone
