"""The command line's surface: every command's help, and one-line errors for bad input.

Commands run in this process on a temporary Dagster home and data folder; a usage or
configuration error exits 2, a failure 1, and neither prints a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from trading_assets import cli
from trading_assets.core.signal import SignalStatus


@pytest.fixture
def cli_env(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> dict[str, str]:
    """The CLI's environment: the test resources and a Dagster home of its own."""
    for name, value in {**env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}.items():
        monkeypatch.setenv(name, value)
    for name in ("DAGSTER_PORT", "GRADIO_SERVER_PORT", "DAGSTER_WEBSERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    return env


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command; argparse's exits are caught like a shell."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# (arguments, extra environment, exit code, a phrase the one-line error must hold)
BAD_INPUT = [
    ([], {}, 2, "choose a command"),
    (["bogus"], {}, 2, "invalid choice: 'bogus'"),
    (["demo", "--symbols", "aa pl"], {}, 2, "'aa pl' contains spaces"),
    (["materialize"], {}, 2, "--symbols"),
    (["materialize", "--symbols", ""], {}, 2, "No symbols given"),
    (["materialize", "--symbols", "../etc"], {}, 2, "is not a valid ticker"),
    (["symbols"], {}, 2, "choose an action: add, remove or list"),
    (["symbols", "add"], {}, 2, "at least one symbol"),
    (["symbols", "add", "aa pl"], {}, 2, "'aa pl' contains spaces"),
    (["symbols", "remove", "BRK/B"], {}, 2, "is not a valid ticker"),
    (["symbols", "list", "AAPL"], {}, 2, "unrecognized arguments: AAPL"),
    (["symbols", "rename", "AAPL"], {}, 2, "invalid choice: 'rename'"),
    (["signals"], {}, 2, "choose an action: list, approve, reapprove, reject or cancel"),
    (["signals", "list", "--status", "bogus"], {}, 2, "pending_review"),
    (["signals", "list", "--symbol", "aa pl"], {}, 2, "'aa pl' contains spaces"),
    (["signals", "approve"], {}, 2, "signal_id"),
    (["signals", "approve", "no-such-id"], {}, 2, "no-such-id"),
    (["signals", "reapprove", "no-such-id"], {}, 2, "no-such-id"),
    (["signals", "reject", "no-such-id", "--note", "n" * 5000], {}, 2, "note is 5000 characters"),
    (["ui", "--port", "0"], {}, 2, "'0' is not a port number"),
    (["ui", "--port", "http"], {}, 2, "'http' is not a port number"),
    (["ui"], {"GRADIO_SERVER_PORT": "abc"}, 2, "GRADIO_SERVER_PORT"),
    (["dev", "--port", "99999"], {}, 2, "'99999' is not a port number"),
    (["dev"], {"DAGSTER_PORT": "abc"}, 2, "DAGSTER_PORT"),
    (["dev", "--workspace", "nowhere.yaml"], {}, 2, "nowhere.yaml not found"),
    (["up", "--dagster-port", "abc"], {}, 2, "'abc' is not a port number"),
    (["up", "--dagster-port", "7000", "--ui-port", "7000"], {}, 2, "7000"),
    (["up"], {"DAGSTER_PORT": "-1"}, 2, "DAGSTER_PORT"),
    (["status", "--verbose"], {}, 2, "unrecognized arguments: --verbose"),
    (["status"], {"TRADING_DATA_SOURCE": "bogus"}, 2, "TRADING_DATA_SOURCE"),
    (["replay", "--symbols", "aa pl", "--start", "2024-01-02"], {}, 2, "contains spaces"),
    (["replay", "--symbols", "AAPL", "--start", "yesterday"], {}, 2, "yesterday"),
    (["bench", "--symbols", "many"], {}, 2, "many"),
    (["materialize", "--symbols", "NOCSV"], {"TRADING_DATA_SOURCE": "csv"}, 1, "FAILED: NOCSV"),
]


@pytest.mark.parametrize(("argv", "extra", "code", "phrase"), BAD_INPUT,
                         ids=[" ".join(case[0])[:40] or "(none)" for case in BAD_INPUT])
def test_bad_input_is_one_line_and_the_right_exit_code(
        cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str], extra: dict[str, str], code: int,
        phrase: str) -> None:
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    got, _, err = run_cli(argv, capsys)
    assert got == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if code == 2:
        assert len(lines) == 1, err
    assert phrase in err, err


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) under `parser`, itself included."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subparsers(child, (*path, name))
    return found


def test_every_option_of_every_command_has_help() -> None:
    missing = [(" ".join(path), action.dest)
               for path, parser in _subparsers(cli.build_parser())
               for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


@pytest.mark.parametrize("path", [("symbols", "add"), ("symbols", "remove"), ("symbols", "list"),
                                  ("signals", "list"), ("signals", "approve"),
                                  ("signals", "reject"), ("signals", "reapprove"),
                                  ("ui",), ("dev",), ("up",), ("status",)])
def test_each_subcommand_has_its_own_help(path: tuple[str, ...],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([*path, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: trading-signals {' '.join(path)}"), out


def test_the_help_lists_every_command_the_statuses_and_the_actions(
        capsys: pytest.CaptureFixture[str]) -> None:
    _, top, _ = run_cli(["--help"], capsys)
    for command in ("demo", "materialize", "symbols", "signals", "reapprove", "status", "up",
                    "ui", "dev", "replay", "bench"):
        assert command in top, command
    _, listing, _ = run_cli(["signals", "list", "--help"], capsys)
    for status in SignalStatus:
        assert status.value in listing, status
    _, symbols, _ = run_cli(["symbols", "--help"], capsys)
    assert all(action in symbols for action in ("add", "remove", "list"))
    _, dev, _ = run_cli(["dev", "--help"], capsys)
    assert "DAGSTER_PORT" in dev
    _, ui, _ = run_cli(["ui", "--help"], capsys)
    assert "--host" in ui and "--port" in ui and "GRADIO_SERVER_PORT" in ui


def test_make_demo_points_at_make_up(cli_env: dict[str, str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["demo", "--symbols", "TSLA", "--in-process"], capsys)
    assert code == 0, err
    assert "make up" in out.strip().splitlines()[-1]


# --- trading-signals status ------------------------------------------------------------------


def beat(age_s: float = 0.0) -> None:
    """Daemon heartbeats on the CLI's instance, as `dagster dev` writes them."""
    import time

    from dagster._daemon.types import DaemonHeartbeat

    from trading_assets.runs import get_instance

    for daemon in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"):
        get_instance().add_daemon_heartbeat(DaemonHeartbeat(time.time() - age_s, daemon, "d",
                                                            []))


def status_lines(out: str) -> dict[str, str]:
    return {line[:13].strip(): line[14:] for line in out.splitlines() if line.strip()}


def test_status_names_every_part_and_fails_while_the_daemon_is_down(
        cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["status"], capsys)
    lines = status_lines(out)
    assert list(lines) == ["daemon", "webserver", "instance", "app database", "object store",
                           "broker", "market data", "LLM endpoint"]
    assert code == 1 and err.strip() == "Down: daemon."
    assert lines["daemon"].startswith("down  not running (no heartbeat on this instance)")
    assert "approved signals do not become orders" in lines["daemon"]
    assert "make up" in lines["daemon"]
    assert lines["webserver"].startswith("down  nothing answers at http://localhost:3000")
    assert all(lines[p].startswith("up") for p in ("instance", "app database", "object store",
                                                   "broker", "market data"))
    assert lines["LLM endpoint"].startswith("off   rules analyst")

    beat(age_s=120)  # a daemon that stopped two minutes ago
    code, out, _ = run_cli(["status"], capsys)
    assert code == 1 and "last heartbeat 120 s ago" in status_lines(out)["daemon"]
    beat()
    code, out, _ = run_cli(["status"], capsys)
    assert code == 0, out  # the Dagster UI is a view: not needed
    assert status_lines(out)["daemon"].startswith("up    running")


def test_status_fails_naming_each_configured_system_that_is_down(
        cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    beat()
    for name, value in {"LLM_BASE_URL": "http://127.0.0.1:1/v1", "LLM_MODEL": "m",
                        "APP_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/trading"}.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(["status"], capsys)
    lines = status_lines(out)
    assert code == 1 and err.strip() == "Down: app database, LLM endpoint."
    assert lines["app database"].startswith("down  postgresql://u:***@127.0.0.1:1/trading: ")
    assert lines["LLM endpoint"].startswith("down  http://127.0.0.1:1/v1: nothing answers")
    assert "secret" not in out + err

    # A model server that answers (the loopback OpenAI-compatible peer), and no sensors: then
    # no daemon is needed either.
    from trading_assets.bench.llm_peer import OpenAIServer
    from trading_assets.runs import get_instance

    monkeypatch.setenv("TRADING_AUTOMATION_RUNNING", "false")
    monkeypatch.delenv("APP_DATABASE_URL")
    get_instance().wipe_daemon_heartbeats()
    with OpenAIServer() as server:
        monkeypatch.setenv("LLM_BASE_URL", server.base_url)
        code, out, _ = run_cli(["status"], capsys)
    assert code == 0, out
    lines = status_lines(out)
    assert lines["daemon"].startswith("down") and lines["LLM endpoint"].startswith("up")


def test_approving_from_the_cli_says_whether_the_daemon_will_place_the_order(
        cli_env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import on_bars_evening, stored_buy
    from trading_assets.core.keys import bars_info_key
    from trading_assets.settings import build_resources

    on_bars_evening(monkeypatch)  # Approve checks the signal's age against the clock
    resources = build_resources(cli_env)

    def pending_buy(symbol: str) -> Any:
        resources["store"].write_json(bars_info_key(symbol),
                                      {"last_date": "2026-11-20", "last_close": 100.0})
        return stored_buy(resources["app_db"], symbol, 100.0, SignalStatus.PENDING_REVIEW)

    rows = [pending_buy(symbol) for symbol in ("AA", "BB")]
    code, out, err = run_cli(["signals", "approve", rows[0].id], capsys)
    assert code == 0 and "its order waits for the Dagster daemon, which is not running" in out, err
    beat()
    code, out, err = run_cli(["signals", "approve", rows[1].id], capsys)
    assert code == 0 and "the approved_signals sensor places it" in out, err
