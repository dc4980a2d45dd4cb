"""The review app's login resists guessing: failed logins are throttled per client (a delay
that doubles after a few free tries), a short password is refused at start, and addresses the
server cannot bind are refused in one line. The throttle is tested over HTTP against the app
Gradio really serves; counts are asserted, never wall time."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml

from ui.app import build_app, launch
from ui.config import UIConfig, UIConfigError
from ui.login import FailedLogins

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "alice", "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(instance: dg.DagsterInstance, resources: dict[str, Any]
           ) -> Iterator[tuple[str, FailedLogins]]:
    # A first lockout long enough that no attempt below outlives it on a loaded machine.
    logins = FailedLogins(free_attempts=3, first_delay_s=600.0)
    config = UIConfig(server_port=free_port(), username=USER, password=PASSWORD)
    app = build_app(resources, instance, config)
    _, url, _ = launch(app, config, prevent_thread_lock=True, logins=logins)
    try:
        yield url.rstrip("/"), logins
    finally:
        app.close()


def test_wrong_passwords_lock_the_client_out_before_the_right_one_is_checked(
        served: tuple[str, FailedLogins]) -> None:
    url, logins = served
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [client.post("/login", data={"username": USER, "password": f"guess-{i}"}
                             ).status_code for i in range(30)]
        right = client.post("/login", data={"username": USER, "password": PASSWORD})
    # Three guesses are checked; every later one, and then the right password, is refused
    # without being looked at, with when to come back.
    assert codes == [400] * 3 + [429] * 27
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    assert "Too many failed logins" in right.json()["detail"]
    assert (logins.checked, logins.refused) == (3, 28)


def test_the_lockout_grows_and_a_successful_login_clears_it() -> None:
    now = [1000.0]
    logins = FailedLogins(free_attempts=2, first_delay_s=1.0, max_delay_s=8.0,
                          clock=lambda: now[0])
    waits = []
    for _ in range(7):
        assert logins.wait_s("10.0.0.7") == 0
        logins.failed("10.0.0.7")
        waits.append(logins.wait_s("10.0.0.7"))
        now[0] += waits[-1]
    assert waits == [0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    assert logins.wait_s("10.0.0.8") == 0  # another client is not held up
    logins.succeeded("10.0.0.7")
    logins.failed("10.0.0.7")
    assert logins.wait_s("10.0.0.7") == 0  # counting starts again


def test_a_short_password_is_refused_at_start_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from ui.app import main

    for name, value in {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_USERNAME": "alice",
                        "GRADIO_PASSWORD": "s3cret"}.items():
        monkeypatch.setenv(name, value)
    assert main() == 2
    err = capsys.readouterr().err
    assert err.strip() == ("trading-signals ui: GRADIO_PASSWORD is 6 characters long; use at "
                           "least 12 (a passphrase of a few words will do).")


@pytest.mark.parametrize("name", ["[::1]", "::1", "[::]"])
def test_an_ipv6_server_name_is_refused_at_start_in_one_line(
        name: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ui.app import main

    monkeypatch.setenv("GRADIO_SERVER_NAME", name)
    monkeypatch.delenv("GRADIO_USERNAME", raising=False)
    monkeypatch.delenv("GRADIO_PASSWORD", raising=False)
    assert main() == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"trading-signals ui: GRADIO_SERVER_NAME={name!r} is an IPv6 "
                           "address, which the Gradio server cannot listen on; use ")


def test_a_server_name_that_is_not_a_host_is_refused() -> None:
    with pytest.raises(UIConfigError, match="is not a host name or address"):
        UIConfig.from_env({"GRADIO_SERVER_NAME": "http://0.0.0.0/"})


def test_compose_publishes_the_app_on_loopback_unless_told_otherwise() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["ui"]["ports"] == ["${GRADIO_BIND_ADDRESS:-127.0.0.1}:7860:7860"]
    readme = (ROOT / "docs" / "production.md").read_text()
    proxy = readme[readme.index("published on 127.0.0.1 only (`GRADIO_BIND_ADDRESS`"):][:1500]
    assert "reverse proxy" in proxy and "TLS" in proxy and "127.0.0.1:7860" in proxy
