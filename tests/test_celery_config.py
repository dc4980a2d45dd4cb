"""Executor choice and the Celery settings shared by executor and workers (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from trading_assets.definitions import defs
from trading_assets.executors import (
    celery_config,
    executor_kind,
    pipeline_executor,
    worker_command,
    write_worker_config,
)
from trading_assets.settings import ConfigError


def test_the_symbol_pipeline_runs_in_process_unless_celery_is_asked_for() -> None:
    assert executor_kind({}) == "in_process"
    assert pipeline_executor({}) is dg.in_process_executor
    assert defs.resolve_job_def("symbol_pipeline").executor_def is dg.in_process_executor


def test_an_unknown_executor_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError,
                       match=r"TRADING_EXECUTOR='k8s'.*in_process, multiprocess, celery"):
        executor_kind({"TRADING_EXECUTOR": "k8s"})


def test_celery_executor_defaults_to_the_local_rabbitmq_and_late_acknowledgement() -> None:
    executor = pipeline_executor({"TRADING_EXECUTOR": "celery"})
    assert executor.name == "celery"
    config = celery_config({})
    assert config["broker"] == "pyamqp://guest@127.0.0.1:5672//"
    assert config["backend"] == "rpc://"
    assert config["config_source"] == {
        "task_default_queue": "dagster", "task_acks_late": True,
        "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1}
    assert celery_config({"DAGSTER_CELERY_BROKER_HOST": "rabbitmq"})["broker"] == \
        "pyamqp://guest@rabbitmq:5672//"


def test_a_broker_url_from_the_environment_reaches_the_executor_by_name_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = "pyamqp://trading:s3cret@rabbitmq:5672//"
    monkeypatch.setenv("TRADING_CELERY_BROKER_URL", url)
    assert celery_config()["broker"] == {"env": "TRADING_CELERY_BROKER_URL"}
    # The worker needs the value itself: dagster-celery writes it into the worker settings.
    assert celery_config(for_worker=True)["broker"] == url


def test_the_worker_config_is_valid_for_dagster_celery_and_matches_the_executor(
        tmp_path: Path) -> None:
    from dagster_celery.cli import get_validated_config

    env = {"TRADING_CELERY_QUEUE": "q1", "TRADING_CELERY_BROKER_URL": "pyamqp://u:p@h:5672//"}
    path = write_worker_config(tmp_path / "celery.yaml", env)
    validated = get_validated_config(str(path))
    assert validated["broker"] == "pyamqp://u:p@h:5672//"
    assert validated["config_source"] == celery_config(env)["config_source"]
    command = worker_command("w1", path, env)
    assert command[command.index("-q") + 1] == "q1"
    assert command[command.index("-i") + 1] == "trading_assets.celery_worker"
    assert command[-2:] == ["-P", "solo"]  # a killed worker takes its step with it


def test_a_worker_refuses_a_broker_url_with_an_empty_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets import executors

    started: list[list[str]] = []
    monkeypatch.setattr(executors.os, "execvp", lambda _file, argv: started.append(argv))
    monkeypatch.setenv("PATH", executors.os.environ["PATH"])  # main() puts the venv in front
    # What docker-compose's celery profile passes when RABBITMQ_PASSWORD is left empty.
    monkeypatch.setenv("TRADING_CELERY_BROKER_URL", "pyamqp://trading:@rabbitmq:5672//")
    with pytest.raises(SystemExit) as exit_info:
        executors.main(["worker", "--name", "worker-1"])
    assert exit_info.value.code == 2 and started == []
    assert "empty password" in capsys.readouterr().err
    # A password, or no user at all (RabbitMQ's guest default), starts the worker.
    for url in ("pyamqp://trading:s3cret@rabbitmq:5672//", "pyamqp://guest@127.0.0.1:5672//"):
        monkeypatch.setenv("TRADING_CELERY_BROKER_URL", url)
        executors.main(["worker", "--name", "worker-1"])
    assert len(started) == 2
