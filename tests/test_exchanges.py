"""Recorded model answers (LLM_CACHE): the real openai + instructor clients against the loopback
OpenAI-compatible server, counting the requests it receives."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import delete, select

from resources.app_db import AppDatabase, SignalRow
from resources.app_tables import ExchangeRow
from resources.exchanges import ExchangeStore
from resources.llm_openai import OpenAIAnalyst
from resources.object_store import ObjectStore
from tests.conftest import metadata_for, run_symbols
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from trading_assets import cli
from trading_assets.bench.llm_peer import (
    OpenAIServer,
    Received,
    Reply,
    analysis_request,
    answer,
    signal_fields,
)
from trading_assets.core.bars import simulate_bars
from trading_assets.core.keys import transcript_key
from trading_assets.core.pricing import DEFAULT_PRICES, estimate_cost
from trading_assets.core.replay import replay_dates
from trading_assets.replay import History, ReplayReport, build_arms, run_replay
from trading_assets.settings import build_resources

AS_OF = date(2026, 11, 20)
GPT_4O_MINI_COST = estimate_cost(DEFAULT_PRICES["gpt-4o-mini"], 1200, 300)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.setenv("LLM_API_KEY", "sk-test-" + secrets.token_hex(12))
    with OpenAIServer() as peer:
        yield peer


def asked_symbol(received: Received) -> str:
    return received.user_parts()[0]["text"].split("Symbol: ", 1)[1].split("\n", 1)[0]


def varying(server: OpenAIServer) -> Callable[[Received], Reply]:
    """A valid answer for the asked symbol that is different every time (the call's number
    is in the reasoning): two signals can only be identical if one came from the store."""
    counter = itertools.count(1)

    def reply(received: Received) -> Reply:
        n = next(counter)
        return answer(signal_fields(asked_symbol(received), reasoning=f"answer number {n}"))

    return reply


def model_env(env: dict[str, str], server: OpenAIServer, **more: str) -> dict[str, str]:
    return {**env, "LLM_PROVIDER": "openai", "LLM_BASE_URL": server.base_url,
            "LLM_MODEL": "gpt-4o-mini", "LLM_TIMEOUT_S": "10", "LLM_HTTP_RETRIES": "0",
            "LLM_MAX_RETRIES": "0", **more}


def replay(env: dict[str, str], symbols: tuple[str, ...] = ("TSLA", "NVDA"),
           images: str = "on") -> tuple[ReplayReport, list[dict[str, Any]]]:
    """A model replay (charts rendered and sent) over a few dates per symbol; the report and
    every stored replay signal, oldest first."""
    resources = build_resources(env)
    histories = [History(s, simulate_bars(s, AS_OF, 300), "simulated", True) for s in symbols]
    dates = {h.symbol: replay_dates(h.frame, date(2026, 9, 1), AS_OF, every=20)
             for h in histories}
    report = run_replay(histories, dates, build_arms(env, "openai", images, False),
                        resources["app_db"], resources["store"])
    rows = [r for s in symbols for r in resources["app_db"].signals_to_score(s)]
    return report, [signal_view(r) for r in rows]


def signal_view(row: SignalRow) -> dict[str, Any]:
    """A stored signal as a comparison sees it (generated_at is when the row was made)."""
    signal = {k: v for k, v in (row.signal_json or {}).items() if k != "generated_at"}
    return {"symbol": row.symbol, "bar_date": row.bar_date, "status": row.status,
            "error": row.error, "signal": signal}


# --- replays ---------------------------------------------------------------------------------


def test_a_replay_run_twice_asks_the_model_once_per_date(server: OpenAIServer,
                                                         env: dict[str, str]) -> None:
    server.responder = varying(server)
    env = model_env(env, server)
    first, signals = replay(env)
    asked = len(server.requests)
    assert asked == len(signals) >= 4
    assert (first.exchanges.from_model, first.exchanges.from_store) == (asked, 0)
    assert first.exchanges.spent_usd == pytest.approx(asked * GPT_4O_MINI_COST)
    second, again = replay(env)
    assert len(server.requests) == asked  # the second run made no model request
    assert again == signals
    assert (second.exchanges.from_model, second.exchanges.spent_usd) == (0, 0.0)
    # One object per answer; no chart bytes (they are digests) and no key in them.
    recorded = list((Path(env["TRADING_DATA_DIR"]) / "store" / "exchanges").rglob("*.json"))
    assert len(recorded) == asked
    for path in recorded:
        text = path.read_text()
        assert "base64," not in text and os.environ["LLM_API_KEY"] not in text
        assert json.loads(text)["request"]["images"]  # the two charts' digests


def test_answers_a_crashed_replay_received_are_not_paid_for_again(
        server: OpenAIServer, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The model answered every date of the batch, then the process died before the signals
    were stored: the rerun takes every answer from the store."""
    import trading_assets.replay as replay_module

    server.responder = varying(server)
    env = model_env(env, server)
    record = replay_module._record

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the application database went away")

    monkeypatch.setattr(replay_module, "_record", crash)
    with pytest.raises(RuntimeError, match="went away"):
        replay(env)
    paid = len(server.requests)
    assert paid >= 4
    monkeypatch.setattr(replay_module, "_record", record)
    report, signals = replay(env)
    assert len(server.requests) == paid
    assert (report.exchanges.from_store, report.exchanges.from_model) == (paid, 0)
    assert report.exchanges.saved_usd == pytest.approx(paid * GPT_4O_MINI_COST)
    assert {s["status"] for s in signals} == {"replay"}
    reasons = sorted(s["signal"]["reasoning"] for s in signals)
    assert reasons == sorted(f"answer number {n}" for n in range(1, paid + 1))


def test_strict_with_an_empty_store_makes_every_signal_an_error_and_no_request(
        server: OpenAIServer, env: dict[str, str]) -> None:
    server.responder = varying(server)
    report, signals = replay(model_env(env, server, LLM_CACHE="strict"))
    assert server.requests == []
    assert signals and {s["status"] for s in signals} == {"error"}
    for stored in signals:
        assert stored["error"].startswith("LLM_CACHE=strict: no answer is recorded for "
                                          f"{stored['symbol']} {stored['bar_date']}")
    assert (report.exchanges.refused, report.exchanges.from_model) == (len(signals), 0)


def test_the_replay_command_says_where_answers_came_from_and_warns_about_training(
        server: OpenAIServer, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    server.responder = varying(server)
    for name, value in {**model_env(env, server), "LLM_TRAINING_CUTOFF": "2026-10-01",
                        "DAGSTER_HOME": str(tmp_path / "dagster_home")}.items():
        monkeypatch.setenv(name, value)
    command = ["replay", "--symbols", "TSLA", "--start", "2026-09-01", "--every", "10",
               "--provider", "openai", "--images", "off", "--no-scorecard"]
    assert cli.main(command) == 0
    first = capsys.readouterr()
    dates = len(server.requests)
    assert dates >= 4
    assert f"Model answers: {dates} from the model (${dates * GPT_4O_MINI_COST:.4f}), " \
           "0 from the recorded store" in first.out
    assert "replay date(s)" in first.err and "training cutoff of gpt-4o-mini (2026-10-01)" \
        in first.err
    assert cli.main(command) == 0
    second = capsys.readouterr()
    assert len(server.requests) == dates
    assert "Model answers: 0 from the model ($0.0000)" in second.out
    assert f"{dates} signal(s) already stored by an earlier replay were kept" in second.out


# --- the four modes -------------------------------------------------------------------------


def analyst(server: OpenAIServer, **changes: Any) -> OpenAIAnalyst:
    config: dict[str, Any] = {"base_url": server.base_url, "model": "gpt-4o-mini",
                              "timeout_s": 10.0, "max_retries": 0, "http_retries": 0}
    return OpenAIAnalyst(**(config | changes))


def exchanges_of(resources: dict[str, Any], mode: str) -> ExchangeStore:
    return ExchangeStore(resources["store"], resources["app_db"], mode)


@pytest.mark.parametrize("mode, requests, cached, recorded_after", [
    ("off", 2, [False, False], 1),
    ("record", 1, [True, False], 2),
    ("replay", 1, [True, False], 1),
    ("strict", 0, [True, None], 1),
])
def test_each_cache_mode_reads_calls_and_records_as_documented(
        server: OpenAIServer, resources: dict[str, Any], mode: str, requests: int,
        cached: list[bool | None], recorded_after: int) -> None:
    server.responder = varying(server)
    [first] = analyst(server).analyze_many([analysis_request("TSLA")],
                                           exchanges=exchanges_of(resources, "record"))
    assert first.ok and not first.cached and len(server.requests) == 1
    server.requests.clear()
    store = exchanges_of(resources, mode)
    outcomes = analyst(server, cache=mode).analyze_many(
        [analysis_request("TSLA"), analysis_request("NVDA")], exchanges=store)
    assert len(server.requests) == requests
    assert [o.cached if o.ok else None for o in outcomes] == cached
    assert store.count() == recorded_after
    hit = outcomes[0]
    if hit.cached:
        assert hit.signal.model_dump(exclude={"generated_at"}) == \
            first.signal.model_dump(exclude={"generated_at"})
        assert (hit.cost_usd, hit.prompt_tokens) == (0.0, 0)
        assert hit.original_cost_usd == pytest.approx(GPT_4O_MINI_COST)
        assert hit.request_key == first.request_key and hit.transcript["cache"]["hit"]
    if mode == "strict":
        assert "LLM_CACHE=strict: no answer is recorded for NVDA" in outcomes[1].error


def test_a_changed_image_prompt_or_parameter_is_a_miss_that_strict_names(
        server: OpenAIServer, resources: dict[str, Any]) -> None:
    server.responder = varying(server)
    request = analysis_request("TSLA")
    other_chart = request.model_copy(update={"daily_chart_png": b"\x89PNG another chart"})
    record = exchanges_of(resources, "record")
    for model_analyst, asked in [(analyst(server), request),
                                 (analyst(server), request),  # the same: from the store
                                 (analyst(server), other_chart),
                                 (analyst(server, prompt="signal_v1"), request),
                                 (analyst(server, temperature=0.0), request),
                                 (analyst(server, send_images=False), request)]:
        [outcome] = model_analyst.analyze_many([asked], exchanges=record)
        assert outcome.ok
    assert len(server.requests) == 5 and record.count() == 5
    assert (record.tally.from_model, record.tally.from_store) == (5, 1)

    strict = exchanges_of(resources, "strict")
    third_chart = request.model_copy(update={"weekly_chart_png": b"\x89PNG a third chart"})
    cases = [(analyst(server), third_chart, "differs in: chart images."),
             (analyst(server, temperature=0.7), request, "differs in: parameters."),
             (analyst(server, model="gpt-4o"), request,
              "differs in: model (gpt-4o-mini recorded, gpt-4o now)."),
             (analyst(server, mode="json"), request, "differs in: parameters.")]
    for model_analyst, asked, named in cases:
        [outcome] = model_analyst.analyze_many([asked], exchanges=strict)
        assert outcome.signal is None and named in outcome.error
        assert f"nearest of the 5 recorded request(s) for TSLA {request.bar_date}" \
            in outcome.error
    assert len(server.requests) == 5  # strict never called the model


@pytest.mark.parametrize("mode", ["tools", "json", "json_schema", "md_json"])
def test_every_instructor_mode_finds_the_answer_it_recorded(
        server: OpenAIServer, resources: dict[str, Any], mode: str) -> None:
    """instructor adds its own instructions to the JSON modes' messages: the digest is of the
    messages this code built, so each mode finds its own answer again."""
    server.responder = varying(server)
    store = exchanges_of(resources, "record")
    for _ in range(2):
        [outcome] = analyst(server, mode=mode).analyze_many([analysis_request()],
                                                            exchanges=store)
        assert outcome.ok, outcome.error
    assert (len(server.requests), store.tally.from_store) == (1, 1)


def test_strict_needs_no_api_key_for_recorded_answers(server: OpenAIServer,
                                                      resources: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    server.responder = varying(server)
    [recorded] = analyst(server).analyze_many([analysis_request()],
                                              exchanges=exchanges_of(resources, "record"))
    monkeypatch.delenv("LLM_API_KEY")
    [again] = OpenAIAnalyst(model="gpt-4o-mini", max_retries=0).analyze_many(
        [analysis_request()], exchanges=exchanges_of(resources, "strict"))
    assert again.ok and again.cached and again.signal.reasoning == recorded.signal.reasoning


def test_mlflow_tags_a_recorded_answer_and_keeps_its_original_cost(
        server: OpenAIServer, resources: dict[str, Any]) -> None:
    from resources.tracking import build_run_record

    server.responder = varying(server)
    request = analysis_request("TSLA")
    model = analyst(server, cache="record")
    [fresh] = model.analyze_many([request], exchanges=exchanges_of(resources, "record"))
    [hit] = model.analyze_many([request], exchanges=exchanges_of(resources, "record"))
    records = [build_run_record(signal_id=f"s{i}", status="pending_review", outcome=outcome,
                                request=request, data_source="simulated", dagster_run_id="r")
               for i, outcome in enumerate((fresh, hit))]
    assert [r.tags["cached"] for r in records] == ["false", "true"]
    assert [r.params["llm_cache"] for r in records] == ["record", "record"]
    assert records[1].params["request_key"] == fresh.request_key == hit.request_key
    assert records[1].params["training_cutoff"] == "2023-10-01"
    assert records[0].metrics["cost_usd"] == pytest.approx(GPT_4O_MINI_COST)
    assert records[1].metrics["cost_usd"] == 0.0
    assert records[1].metrics["original_cost_usd"] == pytest.approx(GPT_4O_MINI_COST)
    assert records[1].metrics["horizon_days"] == 20
    recorded = json.loads(records[1].artifacts["transcript.json"])
    assert recorded["cache"]["hit"] and recorded["recorded_transcript"]["attempts"]


# --- two runs at once --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    return pg.create_database(f"exchanges_{request.node.name[-12:]}").render_as_string(
        hide_password=False)


def test_two_runs_recording_the_same_request_keep_one_answer(
        server: OpenAIServer, database_url: str, tmp_path: Path) -> None:
    both_asked = threading.Barrier(2, timeout=20)
    scores = iter([84, 70])

    def held(received: Received) -> Reply:
        both_asked.wait()  # each run has missed the store and called the model
        score = next(scores)
        level = "HIGH" if score >= 80 else "MEDIUM"
        return answer(signal_fields("TSLA", confidence_score=score, confidence_level=level))

    server.responder = held
    object_store = ObjectStore(root=str(tmp_path / "store"))
    runs = [ExchangeStore(object_store, AppDatabase(url=database_url), "record")
            for _ in range(2)]
    outcomes: list[Any] = [None, None]

    def run(index: int) -> None:
        [outcomes[index]] = analyst(server).analyze_many([analysis_request("TSLA")],
                                                         exchanges=runs[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(server.requests) == 2 and all(o is not None and o.ok for o in outcomes)
    with AppDatabase(url=database_url).session() as session:
        rows = session.scalars(select(ExchangeRow)).all()
    assert len(rows) == 1
    assert len(list((tmp_path / "store" / "exchanges").rglob("*.json"))) == 1
    stored = object_store.read_json(rows[0].object_key)
    # Both runs hold the one recorded answer; the loser says so and still paid for its call.
    assert {o.signal.confidence_score for o in outcomes} == \
        {stored["answer"]["confidence_score"]}
    winner, loser = sorted(outcomes, key=lambda o: o.cached)
    assert (winner.cached, loser.cached) == (False, True)
    assert loser.cost_usd == pytest.approx(GPT_4O_MINI_COST)
    assert loser.original_cost_usd == pytest.approx(GPT_4O_MINI_COST)
    assert "concurrent run" in loser.transcript["cache"]["recorded"]


# --- live signals ---------------------------------------------------------------------------


def test_a_live_signal_from_the_store_is_marked_cached_with_its_original_cost(
        server: OpenAIServer, instance: dg.DagsterInstance, env: dict[str, str],
        data_dir: Path) -> None:
    server.responder = varying(server)
    resources = build_resources(env)
    resources["analyst"] = analyst(server, cache="record")
    assert run_symbols(instance, resources, ["TSLA"]).success
    app_db = resources["app_db"]
    [fresh] = app_db.list_signals(symbol="TSLA")
    assert not fresh.cached and fresh.cost_usd == pytest.approx(GPT_4O_MINI_COST)
    assert len(server.requests) == 1 and fresh.request_key
    with app_db.session() as session:  # the signal is made again for the same bar
        session.execute(delete(SignalRow).where(SignalRow.id == fresh.id))

    result = run_symbols(instance, resources, ["TSLA"])
    assert len(server.requests) == 1
    [again] = app_db.list_signals(symbol="TSLA")
    assert (again.cached, again.cost_usd) == (True, 0.0)
    assert again.original_cost_usd == pytest.approx(GPT_4O_MINI_COST)
    assert again.request_key == fresh.request_key
    assert again.signal_json["reasoning"] == fresh.signal_json["reasoning"]
    assert again.training_cutoff == date(2023, 10, 1)  # gpt-4o-mini's published cutoff
    metadata = metadata_for(result, "llm_signal", "TSLA")
    assert metadata["cached_answer"] is True and metadata["cost_usd"] == 0.0
    assert metadata["original_cost_usd"] == pytest.approx(GPT_4O_MINI_COST)
    transcript = json.loads((data_dir / "store" / transcript_key("TSLA", again.id))
                            .read_text())
    assert transcript["cache"]["hit"] and transcript["config"]["cache"] == "record"


def test_live_signals_call_the_model_unless_llm_cache_says_otherwise(
        server: OpenAIServer, instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    server.responder = varying(server)
    resources = build_resources(env)
    resources["analyst"] = analyst(server)
    assert run_symbols(instance, resources, ["TSLA"]).success
    with resources["app_db"].session() as session:
        assert session.scalars(select(ExchangeRow)).all() == []  # off: nothing recorded
        session.execute(delete(SignalRow))
    assert run_symbols(instance, resources, ["TSLA"]).success
    assert len(server.requests) == 2


def test_an_unknown_cache_mode_is_a_configuration_error() -> None:
    from trading_assets.settings import ConfigError

    with pytest.raises(ConfigError, match="LLM_CACHE='sometimes' is unknown"):
        build_resources({"LLM_CACHE": "sometimes"})
    assert OpenAIAnalyst.from_env({"LLM_CACHE": " Strict "}).cache_mode("off") == "strict"
    assert OpenAIAnalyst.from_env({}).cache_mode("record") == "record"

