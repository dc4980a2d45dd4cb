"""Outages end in one line: the object store and PostgreSQL going away (cut, or hanging) in the
middle of a command, through a loopback TCP proxy in front of the real servers (moto S3 driven
by the minio SDK, PostgreSQL). The command ends with its summary, names the system, the setting
that points at it and what to do, and exits 1; waits on a hanging store are bounded and paid
once per step, not once per symbol. Counts, never wall time, are asserted."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources.object_store import ObjectStore, ObjectStoreUnavailableError
from tests.conftest import run_symbols
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from tests.peers.s3_server import S3Server, new_bucket, s3_server  # noqa: F401
from tests.peers.tcp_proxy import TcpProxy
from trading_assets import cli
from trading_assets.assets.market_data import ohlcv
from trading_assets.core.keys import bars_info_key
from trading_assets.settings import build_resources

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["AAA", "BBB", "CCC"]
FAST = {"MINIO_CONNECT_TIMEOUT_S": "1", "MINIO_READ_TIMEOUT_S": "0.5", "MINIO_RETRIES": "1"}


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[TcpProxy]:  # noqa: F811
    host, port = s3_server.endpoint.rsplit(":", 1)
    with TcpProxy(host, int(port)) as proxy:
        yield proxy


def store_env(s3_server: S3Server, proxy: TcpProxy) -> dict[str, str]:  # noqa: F811
    return {**s3_server.env(new_bucket()), "MINIO_ENDPOINT": f"127.0.0.1:{proxy.port}", **FAST}


def one_line_error(text: str) -> str:
    """The only line of `text` that says "error: ...", asserting no traceback came with it."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, text
    return lines[0]


# --- the start check proves the endpoint speaks S3 --------------------------------------------


class _NotFound(BaseHTTPRequestHandler):
    """A web server that answers every request with an HTML 404 (not an S3 API)."""

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self) -> None:
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _answer


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_minio_endpoint_that_answers_http_but_not_s3_is_refused_at_start(
        env: dict[str, str], web_server: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name, value in {**env, "MINIO_ENDPOINT": web_server, "MINIO_ACCESS_KEY": "a",
                        "MINIO_SECRET_KEY": "b"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["symbols", "list"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"configuration error: MINIO_ENDPOINT='{web_server}' answers HTTP "
                          "but not as S3 (HTTP 404, text/html)")


def test_the_start_check_passes_a_real_s3_endpoint_and_creates_the_bucket(
        env: dict[str, str], s3_server: S3Server) -> None:  # noqa: F811
    from trading_assets.settings import check_start

    bucket = new_bucket()
    check_start({**env, **s3_server.env(bucket)})
    assert s3_server.client().bucket_exists(bucket)


# --- a hanging store: bounded waits, paid once per step -------------------------------------


def test_a_hanging_store_fails_an_operation_after_its_configured_tries(
        env: dict[str, str], s3_server: S3Server, s3_proxy: TcpProxy) -> None:  # noqa: F811
    store = build_resources({**env, **store_env(s3_server, s3_proxy)})["store"]
    assert (store.connect_timeout_s, store.read_timeout_s, store.retries) == (1.0, 0.5, 1)
    s3_proxy.hang()
    with pytest.raises(ObjectStoreUnavailableError) as raised:
        store.read_json(bars_info_key("AAA"))
    assert s3_proxy.hung == 2  # the request and its one retry, then the one-line reason
    message = str(raised.value)
    assert "did not answer" in message and "within 0.5 s, 2 tries" in message
    assert "MINIO_READ_TIMEOUT_S" in message and "MINIO_ENDPOINT" in message


def test_a_step_stops_at_a_hanging_store_instead_of_waiting_once_per_symbol(
        instance: dg.DagsterInstance, env: dict[str, str], s3_server: S3Server,  # noqa: F811
        s3_proxy: TcpProxy) -> None:
    from trading_assets.runs import run_failures

    resources = build_resources({**env, **store_env(s3_server, s3_proxy)})
    s3_proxy.hang()
    result = run_symbols(instance, resources, SYMBOLS, assets=[ohlcv], raise_on_error=False)
    assert not result.success
    assert s3_proxy.hung == 2  # one operation's tries, not three symbols' worth
    [why] = run_failures(instance, result.run_id)
    assert why.startswith("ohlcv: MinIO at 127.0.0.1:") and "MINIO_READ_TIMEOUT_S" in why
    assert "\n" not in why


def test_the_cli_summary_survives_a_store_that_hangs_mid_command(
        env: dict[str, str], s3_server: S3Server, s3_proxy: TcpProxy,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from trading_assets import settings

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name, value in {**env, **store_env(s3_server, s3_proxy)}.items():
        monkeypatch.setenv(name, value)
    checked = settings.check_start

    def start_then_hang(*args: Any, **kwargs: Any) -> dict[str, Any]:
        resources = checked(*args, **kwargs)  # the store answered the start check ...
        s3_proxy.hang()  # ... and stops answering as the run begins
        return resources

    monkeypatch.setattr(settings, "check_start", start_then_hang)
    code = cli.main(["materialize", "--symbols", ",".join(SYMBOLS), "--in-process"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    # The table is printed, every symbol FAILED with the store's one line ...
    rows = [line for line in out.splitlines() if line.startswith(tuple(SYMBOLS))]
    assert len(rows) == 3, out
    assert all("FAILED" in row and "ohlcv: MinIO at" in row and "MINIO_READ_TIMEOUT_S" in row
               for row in rows), out
    # ... and the hang was waited for once: by the run's step (the summary reads nothing more).
    assert s3_proxy.hung == 2


# --- the store cut after the bars were written --------------------------------------------------


def test_bars_cut_off_from_their_summary_are_never_read_with_the_old_one(
        instance: dg.DagsterInstance, env: dict[str, str], s3_server: S3Server,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    store_vars = {**s3_server.env(new_bucket()), **FAST}
    before = build_resources({**env, **store_vars, "TRADING_SIMULATED_AS_OF": "2026-11-20"})
    assert run_symbols(instance, before, ["AAA"], assets=[ohlcv]).success
    later = build_resources({**env, **store_vars, "TRADING_SIMULATED_AS_OF": "2026-12-04"})
    store = later["store"]
    put = ObjectStore.put_bytes

    def cut_before_the_summary(self: ObjectStore, key: str, data: bytes,
                               content_type: str = "application/octet-stream") -> str:
        if key == bars_info_key("AAA"):  # the bars went in; the connection dies now
            raise ObjectStoreUnavailableError(f"MinIO at {self.endpoint} not reachable "
                                              "(ProtocolError). Start MinIO or check "
                                              "MINIO_ENDPOINT.")
        return put(self, key, data, content_type)

    monkeypatch.setattr(ObjectStore, "put_bytes", cut_before_the_summary)
    assert not run_symbols(instance, later, ["AAA"], assets=[ohlcv], raise_on_error=False).success
    monkeypatch.setattr(ObjectStore, "put_bytes", put)
    info = store.read_json(bars_info_key("AAA"))
    bars = store.read_bars("AAA")
    # What a reader finds is the summary and the bars it describes: both still the 11-20 pair.
    assert info["last_date"] == "2026-11-20"
    assert str(bars["date"].iloc[-1].date()) == info["last_date"]
    assert bars["close"].iloc[-1] == pytest.approx(info["last_close"])
    # The next good run writes the new pair, and only one version of the bars is kept.
    assert run_symbols(instance, later, ["AAA"], assets=[ohlcv]).success
    info = store.read_json(bars_info_key("AAA"))
    assert info["last_date"] == "2026-12-04"
    assert str(store.read_bars("AAA")["date"].iloc[-1].date()) == "2026-12-04"
    # The cut run stored the same bars under the same version: nothing is left over.
    names = {o.object_name for o in s3_server.client().list_objects(
        store.bucket, "bars/AAA/", recursive=True)}
    assert names == {info["bars_key"], bars_info_key("AAA")}


# --- PostgreSQL going away in the middle of a command --------------------------------------


def test_the_cli_summary_survives_the_application_database_going_away_mid_run(
        postgres_server: PostgresServer, tmp_path: Path) -> None:  # noqa: F811
    from trading_assets.bench.common import bench_env

    database = postgres_server.create_database("outage")
    with TcpProxy(database.host or "127.0.0.1", database.port or 5432) as proxy:
        url = database.set(host="127.0.0.1", port=proxy.port)
        env = {**bench_env(tmp_path),
               "APP_DATABASE_URL": url.render_as_string(hide_password=False),
               "PYTHONPATH": str(ROOT)}
        symbols = [f"S{i:02d}" for i in range(8)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "trading_assets.cli", "materialize", "--symbols",
             ",".join(symbols), "--in-process"], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        info = tmp_path / "data" / "store" / "bars" / symbols[-1] / "daily.json"
        deadline = time.monotonic() + 240
        while not info.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.cut()  # ohlcv has stored the bars; PostgreSQL goes away for the rest
        out, err = proc.communicate(timeout=300)
    assert info.exists(), out + err
    assert proc.returncode == 1, out + err
    assert "Traceback" not in out + err, out + err
    rows = [line for line in out.splitlines() if line.startswith(tuple(symbols))]
    assert len(rows) == len(symbols), out
    assert all("FAILED" in row and "APP_DATABASE_URL" in row for row in rows), out
    assert "not reachable" in out and "run again" in out
    assert os.environ.get("APP_DATABASE_URL") is None  # the test never leaked its setting


def test_a_command_that_meets_the_database_gone_prints_one_line_and_exits_1(
        postgres_server: PostgresServer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from trading_assets import settings

    database = postgres_server.create_database("gone")
    with TcpProxy(database.host or "127.0.0.1", database.port or 5432) as proxy:
        url = database.set(host="127.0.0.1", port=proxy.port)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("APP_DATABASE_URL", url.render_as_string(hide_password=False))
        checked = settings.check_start

        def start_then_cut(*args: Any, **kwargs: Any) -> dict[str, Any]:
            resources = checked(*args, **kwargs)
            proxy.cut()
            return resources

        monkeypatch.setattr(settings, "check_start", start_then_cut)
        code = cli.main(["signals", "list"])
    err = capsys.readouterr().err
    assert code == 1
    line = one_line_error(err)
    assert line.startswith("error: APP_DATABASE_URL: Application database postgresql://")
    assert "not reachable" in line and "Start the database server" in line
