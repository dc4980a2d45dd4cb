"""The object store: a local folder, or MinIO through the real minio SDK (a moto S3 on loopback)."""

from __future__ import annotations

import os
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from resources import object_store
from resources.object_store import (
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailableError,
)
from tests.peers.s3_server import S3Server, new_bucket, s3_server  # noqa: F401
from trading_assets.core.config import plain
from trading_assets.core.keys import (
    InvalidKeyError,
    bars_key,
    chart_key,
    indicators_key,
    portfolio_key,
    transcript_key,
)
from trading_assets.core.symbols import InvalidSymbolError
from trading_assets.settings import build_resources

# Keys that name no valid symbol where a symbol belongs, or that could leave the store.
BAD_KEYS = [
    "bars/../secrets/daily.parquet",
    "/etc/passwd",
    "bars/tsla/daily.parquet",           # lower case: not how a validated symbol looks
    "charts/TS LA/2026-11-20/daily.png",
    "charts/TSLA..X/2026-11-20/daily.png",
    "portfolio/-TSLA.json",
    "transcripts/../../x.json",
    "bars/.hidden/daily.parquet",
    "http://169.254.169.254/latest/meta-data",
    "bars//daily.parquet",
]


@pytest.fixture
def local_store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(root=str(tmp_path / "store"))


@pytest.fixture
def minio_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                tmp_path: Path) -> ObjectStore:
    """Built the way the code location builds it: from MINIO_* variables, secrets as EnvVar."""
    env = s3_server.env(new_bucket())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = build_resources({"TRADING_DATA_DIR": str(tmp_path / "data"), **env})["store"]
    assert isinstance(store.access_key, dg.EnvVar)  # never the value itself in the config
    return store


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    return request.getfixturevalue(f"{request.param}_store")


def test_bytes_frames_and_json_round_trip(store: ObjectStore) -> None:
    frame = pd.DataFrame({"date": pd.date_range("2026-01-01", periods=3), "close": [1.0, 2.0, 3.0]})
    store.write_frame(bars_key("BRK.B"), frame)
    store.write_json(portfolio_key("BRK.B"), {"cash": 10.5})
    key = store.put_bytes(chart_key("TSLA", "daily", pd.Timestamp("2026-11-20").date()),
                          b"\x89PNG", "image/png")

    pd.testing.assert_frame_equal(store.read_frame(bars_key("BRK.B")), frame)
    assert store.read_json(portfolio_key("BRK.B")) == {"cash": 10.5}
    assert store.get_bytes(key) == b"\x89PNG"
    assert store.exists(key) and not store.exists(bars_key("NVDA"))


def test_a_missing_object_is_not_found(store: ObjectStore) -> None:
    # FileNotFoundError is what the CLI and the checks catch for "upstream has not run".
    with pytest.raises(ObjectNotFoundError, match="bars/NVDA/daily.parquet"):
        store.get_bytes(bars_key("NVDA"))
    assert issubclass(ObjectNotFoundError, FileNotFoundError)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_without_a_valid_symbol_are_refused_before_any_io(store: ObjectStore,
                                                               key: str) -> None:
    for attempt in (lambda: store.put_bytes(key, b"x"), lambda: store.get_bytes(key),
                    lambda: store.exists(key), lambda: store.location(key),
                    lambda: store.presigned_url(key)):
        with pytest.raises(InvalidKeyError):
            attempt()
    if store.is_local:
        assert not Path(store.root).exists()  # nothing was written anywhere
    else:
        assert store._clients == {}  # not even a connection was made


@pytest.mark.parametrize("symbol", ["../etc", "TSLA/..", "tsla x", "", "A" * 13, "BRK..B"])
def test_key_builders_refuse_invalid_symbols(symbol: str) -> None:
    with pytest.raises(InvalidSymbolError):
        bars_key(symbol)
    with pytest.raises(InvalidSymbolError):
        transcript_key(symbol, "abc123")


def test_new_folders_keep_working_without_a_symbol_segment(store: ObjectStore) -> None:
    store.write_json("scorecard/summary.json", {"ok": True})
    assert store.read_json("scorecard/summary.json") == {"ok": True}


# --- local folder -----------------------------------------------------------------------------


def test_local_location_is_the_file_path(local_store: ObjectStore, tmp_path: Path) -> None:
    assert local_store.location(bars_key("TSLA")) == str(
        (tmp_path / "store" / "bars" / "TSLA" / "daily.parquet").resolve())
    assert local_store.presigned_url(bars_key("TSLA")) is None  # the UI reads get_bytes


def test_a_failed_local_write_keeps_the_previous_object(local_store: ObjectStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key = portfolio_key("TSLA")
    local_store.write_json(key, {"version": 1})

    def disk_full(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(object_store.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        local_store.write_json(key, {"version": 2})
    monkeypatch.undo()
    assert local_store.read_json(key) == {"version": 1}
    assert [p.name for p in Path(local_store.location(key)).parent.iterdir()] == ["TSLA.json"]


# --- MinIO --------------------------------------------------------------------------------------


def test_minio_creates_its_bucket_and_stores_under_s3_locations(
        minio_store: ObjectStore, s3_server: S3Server) -> None:  # noqa: F811
    client = s3_server.client()
    assert not client.bucket_exists(minio_store.bucket)
    key = minio_store.write_json(portfolio_key("TSLA"), {"cash": 1})
    assert client.bucket_exists(minio_store.bucket)
    assert minio_store.location(key) == f"s3://{minio_store.bucket}/portfolio/TSLA.json"
    # Written through the S3 API, readable by any S3 client: not a local file in disguise.
    assert client.get_object(minio_store.bucket, key).read() == b'{\n  "cash": 1\n}'
    assert not Path(minio_store.root).exists()


def test_minio_uses_one_client_per_resource_instance(minio_store: ObjectStore) -> None:
    minio_store.put_bytes("bars/TSLA/daily.json", b"{}")
    first = minio_store._client()
    minio_store.get_bytes("bars/TSLA/daily.json")
    assert minio_store._client() is first
    assert list(minio_store._clients) == ["internal"]


def test_secrets_resolve_outside_a_dagster_run(minio_store: ObjectStore) -> None:
    # The CLI and the Gradio app call the store directly, where EnvVar fields are unresolved.
    assert minio_store.access_key == "MINIO_ACCESS_KEY"  # the reference, not the value
    minio_store.put_bytes("bars/TSLA/daily.json", b"{}")
    assert minio_store._client()._provider.retrieve().access_key == os.environ["MINIO_ACCESS_KEY"]


def test_presigned_urls_fetch_the_object_and_only_existing_ones(minio_store: ObjectStore) -> None:
    key = minio_store.put_bytes(chart_key("NVDA", "weekly", pd.Timestamp("2026-11-20").date()),
                                b"\x89PNG weekly", "image/png")
    url = minio_store.presigned_url(key, expires=timedelta(minutes=5))
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=5) as response:  # what a browser would do
        assert response.read() == b"\x89PNG weekly"
    with pytest.raises(ObjectNotFoundError):
        minio_store.presigned_url(chart_key("NVDA", "daily", pd.Timestamp("2026-11-20").date()))
    with pytest.raises(ValueError, match="7 days"):
        minio_store.presigned_url(key, expires=timedelta(days=8))


def test_presigned_urls_use_the_public_endpoint(minio_store: ObjectStore) -> None:
    key = minio_store.put_bytes("charts/TSLA/2026-11-20/daily.png", b"png", "image/png")
    public = minio_store.model_copy(update={"public_endpoint": "https://files.example.com"})
    url = public.presigned_url(key)
    assert url is not None
    assert url.startswith(f"https://files.example.com/{minio_store.bucket}/charts/TSLA/")


def test_an_unreachable_minio_says_where_and_what_to_check() -> None:
    store = ObjectStore(endpoint="127.0.0.1:1", access_key="a", secret_key="b", bucket="charts")
    with pytest.raises(ObjectStoreUnavailableError) as raised:
        store.get_bytes(bars_key("TSLA"))
    message = str(raised.value)
    assert "MinIO at 127.0.0.1:1 not reachable" in message and "MINIO_ENDPOINT" in message


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9/path", "127.0.0.1:9"])
def test_bad_minio_settings_are_explained(endpoint: str) -> None:
    store = ObjectStore(endpoint=endpoint, bucket="x")  # too short for a bucket name
    with pytest.raises(ObjectStoreError, match="MINIO_"):
        store.put_bytes(bars_key("TSLA"), b"")


def test_an_endpoint_with_a_scheme_sets_tls(s3_server: S3Server) -> None:  # noqa: F811
    store = ObjectStore(endpoint=f"http://{s3_server.endpoint}", access_key="a", secret_key="b",
                        bucket=new_bucket(), secure=True)
    assert store.label == f"MinIO http://{s3_server.endpoint} bucket {store.bucket}"
    store.put_bytes(bars_key("TSLA"), b"ok")
    assert store.get_bytes(bars_key("TSLA")) == b"ok"


def test_secrets_are_referenced_only_when_the_process_environment_holds_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIO_SECRET_KEY", "from-the-process")
    env = {"TRADING_DATA_DIR": str(tmp_path), "MINIO_ENDPOINT": "127.0.0.1:1"}
    store = build_resources({**env, "MINIO_SECRET_KEY": "from-the-process"})["store"]
    assert isinstance(store.secret_key, dg.EnvVar)
    assert plain(store.secret_key) == "from-the-process"
    # A mapping that differs from the process environment: the reference would resolve to
    # another value, so the mapping's own value is used.
    store = build_resources({**env, "MINIO_SECRET_KEY": "from-a-mapping"})["store"]
    assert not isinstance(store.secret_key, dg.EnvVar)
    assert plain(store.secret_key) == "from-a-mapping"
    assert plain("a plain value") == "a plain value"
    monkeypatch.delenv("MINIO_SECRET_KEY")
    assert plain(dg.EnvVar("MINIO_SECRET_KEY")) == ""  # unset: no key, not the name


# --- a run's frames in memory -------------------------------------------------------------------


def _run_store(store: ObjectStore) -> ObjectStore:
    """The store as a Dagster run's steps get it (its setup hook has run)."""
    store.setup_for_execution(dg.build_init_resource_context())
    return store


def test_a_runs_frames_read_back_exactly_as_parquet_gives_them(local_store: ObjectStore) -> None:
    from datetime import date

    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.indicators import indicator_frames

    bars = simulate_bars("ACME", date(2026, 11, 20))
    frames = {bars_key("ACME"): bars, **{indicators_key("ACME", t): f for t, f in
                                         indicator_frames(bars).items()}}
    plain_store = ObjectStore(root=local_store.root)  # outside a run: always the store
    run_store = _run_store(local_store)
    for key, frame in frames.items():
        run_store.write_frame(key, frame)
        from_memory, from_parquet = run_store.read_frame(key), plain_store.read_frame(key)
        pd.testing.assert_frame_equal(from_memory, from_parquet, check_exact=True)
        from_memory.iloc[0, 0] = None  # a caller changing its copy changes nothing stored
        pd.testing.assert_frame_equal(run_store.read_frame(key), from_parquet, check_exact=True)


def test_a_run_reads_its_own_frames_from_memory_and_a_failed_write_is_not_remembered(
        local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key = bars_key("ACME")
    first = pd.DataFrame({"close": [1.0, 2.0]})
    run_store = _run_store(local_store)
    run_store.write_frame(key, first)
    decoded: list[int] = []
    read_parquet = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: decoded.append(1) or
                        read_parquet(*a, **k))
    for _ in range(4):  # checks, indicators, charts, llm_signal
        run_store.read_frame(key)
    assert decoded == []

    def disk_full(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(object_store.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        run_store.write_frame(key, pd.DataFrame({"close": [9.0]}))
    pd.testing.assert_frame_equal(run_store.read_frame(key), first)  # the stored one
    run_store.teardown_after_execution(dg.build_init_resource_context())
    monkeypatch.undo()
    ObjectStore(root=local_store.root).read_frame(key)  # outside a run: from the store
