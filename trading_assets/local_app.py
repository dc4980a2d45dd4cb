"""`trading-signals up` (`make up`): the whole local app in one command.

Starts `dagster dev` (webserver + daemon) and the Gradio app on the project's instance, each in
a process group of its own with its output in a log file under DAGSTER_HOME/up-logs, prints both
URLs once both answer, and on Ctrl-C or SIGTERM stops both groups (every child they started:
code server, run workers) before it returns. If either app ends by itself, the other is stopped
too and the command exits 1 naming it, with the last lines of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trading_assets.health import webserver_answers

STARTUP_TIMEOUT_S = 300.0
STOP_GRACE_S = 20.0
LOG_TAIL_LINES = 15


def create_storage(instance: Any) -> None:
    """Create the instance's SQLite files (runs, event log, schedules) in this one process.

    Started together on a new home, `dagster dev`'s processes and the Gradio app race to create
    the same files and fail ("table ... already exists", "alembic_version has more than one
    head"); once they exist every process opens them as they are."""
    instance.get_runs_count()
    instance.get_dynamic_partitions("symbols")
    instance.all_instigator_state()


def gradio_port(chosen: int | None, env: Mapping[str, str] | None = None) -> int:
    """--ui-port, else GRADIO_SERVER_PORT (core/config.py UISettings)."""
    from trading_assets.core.config import UISettings

    return chosen or UISettings.from_env(env).server_port


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when an HTTP server answers `url` with 200 (the Gradio app's page)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


@dataclass
class Child:
    """One app started by `up`: its name, URL, command line, log file and process."""

    name: str
    url: str
    command: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            # Its own session and process group: stopping it reaches every process it started.
            self.process = subprocess.Popen(self.command, cwd=cwd, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    @property
    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:  # the whole group is gone already
            pass

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to whatever is left after STOP_GRACE_S."""
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        # Children that outlived their parent (a run worker, the code server) go too.
        self.signal_group(signal.SIGKILL)
        self.process.wait()

    def tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])


@dataclass
class LocalApp:
    """Dagster (webserver + daemon) and the Gradio app, started and stopped together."""

    host: str
    dagster_port: int
    ui_port: int
    workspace: Path
    home: Path
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        from trading_assets.runs import dagster_env

        env = dagster_env(dict(os.environ, DAGSTER_HOME=str(self.home)))
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host
        dagster_url = f"http://{host}:{self.dagster_port}"
        bin_dir = Path(sys.executable).parent
        logs = self.home / "up-logs"  # not logs/: Dagster's telemetry empties that folder
        self.children = [
            Child("Dagster UI (webserver + daemon)", dagster_url,
                  [str(bin_dir / "dagster"), "dev", "-w", str(self.workspace), "-h", self.host,
                   "-p", str(self.dagster_port)], logs / "dagster-dev.log", env),
            Child("Gradio app", f"http://{host}:{self.ui_port}",
                  [str(bin_dir / "trading-signals"), "ui", "--host", self.host, "--port",
                   str(self.ui_port)], logs / "gradio.log",
                  # The app links to the Dagster UI this command starts, unless told otherwise.
                  {**env, "DAGSTER_WEBSERVER_URL": env.get("DAGSTER_WEBSERVER_URL")
                   or dagster_url}),
        ]

    def ready(self) -> bool:
        dagster, gradio = self.children
        return webserver_answers(dagster.url) and answers(gradio.url)

    def request_stop(self, signum: int = 0, frame: object = None) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start both, say where they are, wait for Ctrl-C / SIGTERM or an app's end; 0 on a
        requested stop, 1 when an app ended (or never answered) by itself."""
        previous = {sig: signal.signal(sig, self.request_stop)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        started = time.monotonic()
        try:
            print(f"Starting Dagster and the Gradio app on instance {self.home} (logs in "
                  f"{self.home / 'up-logs'}) ...", flush=True)
            for child in self.children:
                child.start(self.workspace.parent)
            failed = self._wait(lambda: self.ready(), STARTUP_TIMEOUT_S, "to answer")
            if failed is None and not self._stop.is_set():
                dagster, gradio = self.children
                print(f"Dagster UI : {dagster.url}\nGradio app : {gradio.url}\n"
                      f"Both up in {time.monotonic() - started:.1f} s. Ctrl-C stops both.",
                      flush=True)
                failed = self._wait(lambda: False, None, "")
            return 0 if failed is None else 1
        finally:
            for child in self.children:
                child.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            print("Stopped Dagster and the Gradio app.", flush=True)

    def _wait(self, done: object, timeout_s: float | None, what: str) -> str | None:
        """Until `done()` (None), a requested stop (None), an app's end or the timeout (what
        went wrong, also printed)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop.is_set():
            for child in self.children:
                code = child.exited
                if code is not None:
                    message = (f"up: the {child.name} ended by itself (exit {code}); stopping "
                               f"the rest. Last lines of {child.log}:\n{child.tail()}")
                    print(message, file=sys.stderr, flush=True)
                    return message
            if done():  # type: ignore[operator]
                return None
            if deadline is not None and time.monotonic() > deadline:
                message = (f"up: not both answering after {timeout_s:g} s {what}; see "
                           f"{self.home / 'up-logs'}")
                print(message, file=sys.stderr, flush=True)
                return message
            self._stop.wait(0.5)
        return None
