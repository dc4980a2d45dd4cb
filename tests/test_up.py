"""`make up`: Dagster (webserver + daemon) and the Gradio app start together on the project's
instance, both answer, the daemon heartbeats, and Ctrl-C stops every process they started.

One real `dagster dev` and one real Gradio app, on free loopback ports, with a temporary
Dagster home and data folder.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from trading_assets.health import daemon_check, webserver_answers

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every live process, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return found


def descendants(root: int) -> set[int]:
    table = processes()
    tree, frontier = set(), [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, (ppid, _, _) in table.items() if ppid == parent} - tree
        tree |= children
        frontier.extend(children)
    return tree


class Output:
    """A command's output, read line by line in the background."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc, self.text, self._lines = proc, "", queue.Queue[str]()
        stdout = proc.stdout
        threading.Thread(target=lambda: [self._lines.put(line) for line in
                                         iter(stdout.readline, "")], daemon=True).start()

    def until(self, phrase: str, timeout_s: float) -> str:
        """Everything so far, once a line holds `phrase` (or the command ended, or time ran
        out)."""
        deadline = time.monotonic() + timeout_s
        while phrase not in self.text and time.monotonic() < deadline:
            try:
                self.text += self._lines.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        return self.text


@pytest.mark.timeout(600)
def test_make_up_starts_dagster_and_the_app_and_ctrl_c_stops_every_process(
        tmp_path: Path) -> None:
    if not (ROOT / ".venv" / ".installed").exists():
        pytest.skip("make up runs from the project's .venv (make install)")
    home = tmp_path / "dagster_home"
    dagster_port, ui_port = free_port(), free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "TRADING_DATA_DIR": str(tmp_path / "data"),
           "MLFLOW_TRACKING_URI": "off", "TRADING_SIMULATED_AS_OF": "2026-11-20",
           "DAGSTER_PORT": str(dagster_port), "GRADIO_SERVER_PORT": str(ui_port)}
    for name in ("DAGSTER_WEBSERVER_URL", "GRADIO_SERVER_NAME", "GRADIO_USERNAME",
                 "GRADIO_PASSWORD"):
        env.pop(name, None)
    # `make up` in a session of its own, as a terminal runs it: Ctrl-C reaches its group.
    proc = subprocess.Popen(["make", "-s", "up"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    started: set[int] = set()
    output = Output(proc)
    try:
        out = output.until("Ctrl-C stops both", START_TIMEOUT_S)
        assert "Ctrl-C stops both" in out, out
        assert f"Dagster UI : http://localhost:{dagster_port}" in out
        assert f"Gradio app : http://localhost:{ui_port}" in out
        assert webserver_answers(f"http://127.0.0.1:{dagster_port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as page:
            assert page.status == 200 and b"Trading signals" in page.read()
        instance = dg.DagsterInstance.from_config(str(home))
        deadline = time.monotonic() + 120
        while not daemon_check(instance).up and time.monotonic() < deadline:
            time.sleep(1)
        assert daemon_check(instance).up, daemon_check(instance).detail
        started = descendants(proc.pid)
        groups = {processes()[pid][1] for pid in started if pid in processes()}
        assert len(started) >= 4  # up, dagster dev (webserver, daemon, code server), the app
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    rest = output.until("Stopped Dagster and the Gradio app.", 10)
    # make itself ends by the SIGINT once its command returned (as after Ctrl-C in a terminal).
    assert proc.returncode in (0, -signal.SIGINT), rest
    assert "Stopped Dagster and the Gradio app." in rest
    alive = {pid: info for pid, info in processes().items()
             if (pid in started or info[1] in groups) and info[2] != "Z"}
    assert alive == {}
    for port in (dagster_port, ui_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
