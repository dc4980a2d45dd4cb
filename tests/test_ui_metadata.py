"""What the Dagster UI shows without digging: links to the charts, the MLflow run and the review
app, and kind tags that are true for the configured systems."""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources.object_store import ObjectStore
from tests.conftest import run_symbols
from trading_assets.asset_kinds import with_configured_kinds
from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal, review_link
from trading_assets.settings import ConfigError, build_resources, review_app_url


def raw_metadata(result: dg.ExecuteInProcessResult, asset: str, symbol: str) -> dict[str, Any]:
    """The metadata entries (typed MetadataValues) of one asset's materialization."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == asset and mat.partition == symbol:
            return dict(mat.metadata)
    raise AssertionError(f"no materialization of {asset} for {symbol}")


def test_charts_are_paths_a_person_can_open(instance: dg.DagsterInstance,
                                            resources: dict[str, Any]) -> None:
    result = run_symbols(instance, resources, ["TSLA"], assets=[ohlcv, indicators, charts])
    meta = raw_metadata(result, "charts", "TSLA")
    for timeframe in ("daily", "weekly"):
        link = meta[f"{timeframe}_chart"]
        assert isinstance(link, dg.PathMetadataValue)
        assert Path(link.path).read_bytes().startswith(b"\x89PNG")


def test_charts_on_minio_are_http_addresses_of_the_objects() -> None:
    store = ObjectStore(endpoint="minio:9000", bucket="trading",
                        public_endpoint="https://files.example.com")
    assert store.object_url("charts/TSLA/daily/2026-11-20.png") == \
        "https://files.example.com/trading/charts/TSLA/daily/2026-11-20.png"
    assert ObjectStore(endpoint="minio:9000").object_url("a/b.png") == \
        "http://minio:9000/trading/a/b.png"
    assert ObjectStore(root="/tmp/x").object_url("a/b.png") is None


def test_untracked_signals_say_so_and_the_review_app_is_named(
        instance: dg.DagsterInstance, resources: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADIO_PUBLIC_URL", raising=False)
    result = run_symbols(instance, resources, ["ORCL"])  # a BUY that waits for a person
    meta = raw_metadata(result, "llm_signal", "ORCL")
    assert meta["mlflow_run"].value.startswith("not tracked")
    assert meta["mlflow_run_id"].value == "not tracked"
    review = meta["review"]
    assert isinstance(review, dg.TextMetadataValue) and "GRADIO_PUBLIC_URL" in review.value


def test_a_configured_review_app_and_mlflow_ui_are_links(
        instance: dg.DagsterInstance, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_PUBLIC_URL", "https://review.example.com/")
    tracked = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}  # the local default
    tracked["MLFLOW_UI_URL"] = "http://mlflow.example:5000"
    tracked["MLFLOW_TIMEOUT_S"] = "120"  # a busy machine must not turn the link into an error
    resources = build_resources(tracked)
    result = run_symbols(instance, resources, ["ORCL"])
    meta = raw_metadata(result, "llm_signal", "ORCL")
    assert meta["review"] == dg.MetadataValue.url("https://review.example.com")
    run = meta["mlflow_run"]
    assert isinstance(run, dg.UrlMetadataValue), meta.get("mlflow_error")
    assert run.url.startswith("http://mlflow.example:5000/#/experiments/")
    assert run.url.endswith(f"/runs/{meta['mlflow_run_id'].value}")


def test_a_review_url_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "https://me:secret@review.example.com"
    with pytest.raises(ConfigError, match="GRADIO_PUBLIC_URL"):
        review_app_url({"GRADIO_PUBLIC_URL": bad})
    assert review_app_url({}) == ""
    # In a run the signal is kept and the metadata says why there is no link.
    monkeypatch.setenv("GRADIO_PUBLIC_URL", bad)
    shown = review_link("pending_review")
    assert isinstance(shown, str) and shown.startswith("review link not shown")
    assert "secret" not in shown


def kinds(assets: list[dg.AssetsDefinition]) -> dict[str, set[str]]:
    return {spec.key.to_user_string(): set(spec.kinds) for a in assets for spec in a.specs}


def test_the_loaded_definitions_tag_the_rules_analyst_not_openai() -> None:
    from trading_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    signal = graph.get(llm_signal.key).kinds
    assert "openai" not in signal and "python" in signal
    assert graph.get(dg.AssetKey("orders")).kinds == {"paper"}


def test_kinds_follow_the_configured_model_broker_tracking_and_store(tmp_path: Path) -> None:
    from trading_assets.definitions import EVALUATION_ASSETS, SYMBOL_ASSETS

    assets = [*SYMBOL_ASSETS, *EVALUATION_ASSETS]
    base = {"TRADING_DATA_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": "off"}
    plain = kinds(with_configured_kinds(assets, build_resources(base)))
    assert plain["llm_signal"] == {"python"}
    assert plain["signal_scorecard"] == {"matplotlib"}
    assert plain["orders"] == plain["portfolio"] == {"paper"}
    assert plain["ohlcv"] == {"pandas", "parquet"}

    configured = base | {"LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:9/v1",
                         "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "TRADING_BROKER": "ibkr",
                         "TRADING_DATA_SOURCE": "ibkr", "MINIO_ENDPOINT": "127.0.0.1:9"}
    real = kinds(with_configured_kinds(assets, build_resources(configured)))
    assert real["llm_signal"] == {"openai", "mlflow"}
    assert real["signal_scorecard"] == {"matplotlib", "mlflow"}
    assert real["orders"] == real["portfolio"] == {"ibkr"}
    assert real["ohlcv"] == {"pandas", "parquet", "ibkr", "minio"}


def test_model_text_in_the_signal_metadata_renders_as_text(
        instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
    """The Dagster UI renders `reasoning` as Markdown (with GFM autolinks): what the model
    wrote must come out as its own characters, with no image, link or tag in the HTML."""
    from markdown_it import MarkdownIt
    from sqlalchemy import select

    from resources.app_tables import SignalRow
    from trading_assets.assets.signals import signal_metadata

    assert run_symbols(instance, resources, ["TSLA"]).success
    app_db = resources["app_db"]
    [pending] = app_db.list_signals(symbol="TSLA")
    hostile = ("![x](http://127.0.0.1:9/leak.png) [click](https://evil.example/phish) "
               "<https://evil.example/a> https://evil.example/b www.evil.example x@evil.example "
               '<img src="http://127.0.0.1:9/raw.png">\n\n[r][1]\n\n[1]: http://127.0.0.1:9/ref')
    with app_db.session() as session:
        row = session.scalars(select(SignalRow).where(SignalRow.id == pending.id)).one()
        row.signal_json = {**row.signal_json, "reasoning": hostile,
                           "key_factors": ["[docs](https://evil.example/docs)"]}
    body = signal_metadata(app_db.get_signal(pending.id), reused=False)["reasoning"].value
    html = MarkdownIt("commonmark").render(body)
    assert "<a" not in html and "<img" not in html
    assert "![x](http://127.0.0.1:9/leak.png)" in html
    assert "[click](https://evil.example/phish)" in html
    assert "&lt;img src=&quot;http://127.0.0.1:9/raw.png&quot;&gt;" in html
    # GFM would link a bare URL, www. or an address: each has its opener escaped in the source.
    for bare in ("https://evil.example/b", "www.evil.example", "x@evil.example"):
        assert bare not in body
