"""The analysts, with the real openai and instructor clients against a loopback OpenAI server."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from resources.analysts import analyst_from_env
from resources.llm import RulesAnalyst
from resources.llm_openai import OpenAIAnalyst
from resources.prompts import PromptError, load_prompt, parse_prompt
from tests.conftest import run_symbols
from trading_assets.bench.llm_peer import (
    OpenAIServer,
    Received,
    Reply,
    analysis_request,
    answer,
    drip,
    echo_authorization,
    http_error,
    malformed,
    no_choices,
    refusal,
    signal_fields,
)
from trading_assets.cli import main as cli_main
from trading_assets.core.pricing import (
    DEFAULT_PRICES,
    Price,
    PriceTableError,
    estimate_cost,
    parse_prices,
    price_for,
)
from trading_assets.core.secrets import redact
from trading_assets.core.signal import Action
from trading_assets.settings import ConfigError, build_resources

GPT_4O_MINI_COST = estimate_cost(DEFAULT_PRICES["gpt-4o-mini"], 1200, 300)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + secrets.token_hex(12)
    monkeypatch.setenv("LLM_API_KEY", key)
    return key


@pytest.fixture
def server(api_key: str) -> Iterator[OpenAIServer]:
    with OpenAIServer() as peer:
        yield peer


def analyst(server: OpenAIServer, **changes: Any) -> OpenAIAnalyst:
    """An OpenAI-compatible analyst on the test server, with short test bounds."""
    config: dict[str, Any] = {"base_url": server.base_url,
                              "model": "gpt-4o-mini", "timeout_s": 3.0, "max_retries": 1,
                              "http_retries": 0, "concurrency": 4}
    return OpenAIAnalyst(**(config | changes))


def analyze_one(server: OpenAIServer, **changes: Any) -> Any:
    [outcome] = analyst(server, **changes).analyze_many([analysis_request("TSLA")])
    return outcome


# --- answers -------------------------------------------------------------------------------


def test_valid_tool_call_answer_becomes_a_signal(server: OpenAIServer, api_key: str) -> None:
    server.script(answer(signal_fields("TSLA")))
    outcome = analyze_one(server)
    assert outcome.ok and outcome.error is None
    signal = outcome.signal
    assert (signal.symbol, signal.action, signal.confidence_score) == ("TSLA", Action.BUY, 84)
    assert (signal.provider, signal.model) == ("openai", "gpt-4o-mini")
    assert signal.prompt_version == outcome.prompt_version == load_prompt("signal_v2").version
    assert signal.bar_date == analysis_request().bar_date
    assert signal.r_multiple == 2.0  # (111 - 101) / (101 - 96), filled in by the schema
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (1200, 300)
    assert outcome.cost_usd == pytest.approx(GPT_4O_MINI_COST)
    assert outcome.latency_s > 0
    [received] = server.requests
    assert received.body["tools"][0]["function"]["name"] == "SignalAnswer"
    assert received.headers["authorization"] == f"Bearer {api_key}"
    transcript = outcome.transcript
    assert transcript["prompt"]["version"] == outcome.prompt_version
    assert transcript["config"]["mode"] == "tools"
    assert len(transcript["attempts"]) == 1
    assert json.loads(transcript["attempts"][0]["response"]["tool_calls"][0]["arguments"]) \
        == signal_fields("TSLA")


@pytest.mark.parametrize("mode", ["json", "json_schema", "md_json"])
def test_json_content_answers_in_each_instructor_mode(server: OpenAIServer, mode: str) -> None:
    server.script(answer(signal_fields("TSLA")))
    outcome = analyze_one(server, mode=mode)
    assert outcome.ok, outcome.error
    assert "tools" not in server.requests[0].body
    assert outcome.transcript["config"]["mode"] == mode


def test_invalid_then_valid_answer_is_reasked_and_accepted(server: OpenAIServer) -> None:
    server.script(answer(signal_fields("TSLA", confidence_level="LOW")),
                  answer(signal_fields("TSLA")))
    outcome = analyze_one(server, max_retries=2)
    assert outcome.ok
    assert len(server.requests) == 2
    reask = json.dumps(server.requests[1].body["messages"][2:])
    assert "confidence_score 84 means HIGH, but confidence_level is LOW" in reask
    attempts = outcome.transcript["attempts"]
    assert len(attempts) == 2 and "ValidationError" in attempts[0]["errors"][0]
    assert outcome.prompt_tokens == 2400  # both attempts are paid for


@pytest.mark.parametrize("broken, complaint", [
    ({"confidence_level": "LOW"}, "confidence_score 84 means HIGH"),
    ({"stop_loss": 105.0}, "for BUY the stop_loss must be below entry_price"),
    ({"action": "SELL", "trend": "DOWN"}, "for SELL the stop_loss must be above entry_price"),
    ({"entry_price": -3.0}, "entry_price: Input should be greater than 0"),
    ({"take_profit": None}, "BUY and SELL need entry_price, stop_loss and take_profit"),
    ({"symbol": "AAPL"}, "symbol must be TSLA"),
    ({"horizon_days": None}, "horizon_days: Input should be a valid integer"),
    ({"horizon_days": 0}, "horizon_days: Input should be greater than or equal to 1"),
    ({"timeframes_agree": None}, "timeframes_agree: Input should be a valid boolean"),
])
def test_always_invalid_answer_is_an_error_never_a_hold(
        server: OpenAIServer, broken: dict[str, Any], complaint: str) -> None:
    server.responder = lambda _: answer({**signal_fields("TSLA"), **broken})
    outcome = analyze_one(server, max_retries=2)
    assert outcome.signal is None and not outcome.ok
    assert len(server.requests) == 3
    assert "gave no valid signal in 3 attempt(s)" in outcome.error
    assert complaint in outcome.error
    assert outcome.transcript["outcome"]["signal"] is None


def test_malformed_json_is_reasked_then_an_error(server: OpenAIServer) -> None:
    server.responder = lambda _: malformed('{"symbol": "TSLA", "action": "BU')
    outcome = analyze_one(server, mode="json", max_retries=1)
    assert outcome.signal is None
    assert len(server.requests) == 2
    assert "gave no valid signal in 2 attempt(s)" in outcome.error


def test_truncated_answer_is_an_error(server: OpenAIServer) -> None:
    server.script(malformed('{"symbol": "TSLA", "action": "BUY", "conf', finish_reason="length"))
    outcome = analyze_one(server)
    assert outcome.signal is None
    assert "finish_reason=length" in outcome.error


def test_refusal_is_an_error_that_says_so(server: OpenAIServer) -> None:
    server.responder = lambda _: refusal("I can't help with trading decisions.")
    outcome = analyze_one(server)
    assert outcome.signal is None
    assert "refused to answer: I can't help with trading decisions." in outcome.error


# --- transport failures ---------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(server: OpenAIServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from openai._base_client import SyncAPIClient

    waits: list[float] = []
    backoff = SyncAPIClient._calculate_retry_timeout

    def recorded(self: Any, *args: Any, **kwargs: Any) -> float:
        waits.append(backoff(self, *args, **kwargs))
        return waits[-1]

    monkeypatch.setattr(SyncAPIClient, "_calculate_retry_timeout", recorded)
    server.script(http_error(429, "Rate limit reached", headers={"retry-after": "2"}),
                  answer(signal_fields("TSLA")))
    outcome = analyze_one(server, http_retries=1)
    assert outcome.ok
    assert len(server.requests) == 2
    # The client's own back-off would be under 1 s; the one wait is the server's 2 s.
    assert waits == [2.0]


def test_persistent_429_is_an_error_after_bounded_retries(server: OpenAIServer) -> None:
    server.responder = lambda _: http_error(429, "Rate limit reached",
                                            headers={"retry-after-ms": "50"})
    outcome = analyze_one(server, http_retries=2)
    assert outcome.signal is None
    assert len(server.requests) == 3
    assert "HTTP 429" in outcome.error and "Rate limit reached" in outcome.error


def test_answer_slower_than_the_timeout_is_an_error(server: OpenAIServer) -> None:
    server.responder = lambda _: answer(signal_fields("TSLA"), delay_s=3)
    outcome = analyze_one(server, timeout_s=0.5, http_retries=0)
    # The answer would have come (valid) after 3 s: the client gave up on its one request.
    assert len(server.requests) == 1 and outcome.signal is None
    assert "gave no answer within 0.5 s" in outcome.error


def test_5xx_is_retried_then_reported(server: OpenAIServer) -> None:
    server.script(http_error(503, "overloaded"), answer(signal_fields("TSLA")))
    assert analyze_one(server, http_retries=1).ok
    server.responder = lambda _: http_error(500, "model crashed")
    outcome = analyze_one(server, http_retries=1)
    assert outcome.signal is None
    assert "HTTP 500" in outcome.error and "model crashed" in outcome.error


def test_connection_refused_is_an_error_naming_the_endpoint(api_key: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = OpenAIAnalyst(base_url=f"http://127.0.0.1:{port}/v1", http_retries=0, timeout_s=2)
    [outcome] = dead.analyze_many([analysis_request()])
    assert outcome.signal is None
    assert f"127.0.0.1:{port}/v1 is not reachable" in outcome.error
    assert "LLM_BASE_URL" in outcome.error


def test_missing_api_key_for_openai_is_an_error_without_a_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    [outcome] = OpenAIAnalyst().analyze_many([analysis_request()])
    assert outcome.signal is None and "no API key" in outcome.error


# --- one run, many symbols ------------------------------------------------------------------


def _by_symbol(received: Received) -> Reply:
    """Answer each symbol for itself after 0.3 s; BAD always gets an invalid answer."""
    text = received.user_parts()[0]["text"]
    symbol = text.split("Symbol: ", 1)[1].split("\n", 1)[0]
    broken = {"confidence_level": "LOW"} if symbol == "BAD" else {}
    return answer(signal_fields(symbol, **broken), delay_s=0.3)


def test_calls_run_concurrently_up_to_the_limit_and_keep_order(server: OpenAIServer) -> None:
    def gathered(received: Received) -> Reply:
        # Hold each answer until ten calls are waiting (or 10 s pass): serial calls never
        # get there, so the count below shows how many ran at once.
        deadline = time.monotonic() + 10
        while server.max_in_flight < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        return _by_symbol(received)

    server.responder = gathered
    symbols = [f"S{i}" for i in range(19)] + ["BAD"]
    requests = [analysis_request(s, charts=False) for s in symbols]
    outcomes = analyst(server, concurrency=10, max_retries=0).analyze_many(requests)
    assert [o.symbol for o in outcomes] == symbols
    assert all(o.ok for o in outcomes[:-1])
    assert outcomes[-1].signal is None and "confidence_score" in outcomes[-1].error
    assert server.max_in_flight == 10


def test_cost_cap_refuses_further_calls_in_the_run(server: OpenAIServer) -> None:
    server.responder = _by_symbol
    capped = analyst(server, concurrency=1, max_cost_usd=GPT_4O_MINI_COST * 1.5)
    budget = capped.new_budget()
    first = capped.analyze_many([analysis_request("AAA"), analysis_request("BBB")], budget)
    assert [o.ok for o in first] == [True, True]
    [late] = capped.analyze_many([analysis_request("CCC")], budget)  # same run, same budget
    assert late.signal is None
    assert "LLM_MAX_COST_USD reached" in late.error and "not made" in late.error
    assert len(server.requests) == 2
    assert budget.spent_usd == pytest.approx(2 * GPT_4O_MINI_COST)
    # A new run starts with a new budget.
    assert capped.analyze_many([analysis_request("DDD")])[0].ok


# --- what is sent --------------------------------------------------------------------------


def test_chart_images_are_sent_only_when_vision_is_on(server: OpenAIServer) -> None:
    server.responder = lambda _: answer(signal_fields("TSLA"))
    request = analysis_request("TSLA")
    on = analyze_one(server, send_images=True)
    images = [p for p in server.requests[0].user_parts() if p["type"] == "image_url"]
    assert [p["image_url"]["url"] for p in images] == [
        "data:image/png;base64," + base64.b64encode(png).decode()
        for png in (request.daily_chart_png, request.weekly_chart_png)]
    # The transcript names the images instead of repeating them (they are artifacts).
    assert "base64," not in json.dumps(on.transcript)
    analyze_one(server, send_images=False)
    assert [p["type"] for p in server.requests[1].user_parts()] == ["text"]


def test_request_carries_the_data_the_prompt_promises(server: OpenAIServer) -> None:
    server.script(answer(signal_fields("TSLA")))
    analyze_one(server)
    text = server.requests[0].user_parts()[0]["text"]
    request = analysis_request("TSLA")
    assert "Symbol: TSLA" in text and "SIMULATED" in text
    assert "quantity=10, avg_price=98.5" in text
    assert "- rsi_14: 61.5" in text and "- rsi_14: 58" in text
    assert "- bb_upper: n/a (warm-up)" in text
    bar_lines = [line for line in text.splitlines() if line.startswith("2026-")]
    assert len(bar_lines) == len(request.last_bars) == 50
    assert bar_lines[-1].startswith(str(request.last_bars[-1]["date"]))
    system = server.requests[0].body["messages"][0]["content"]
    assert system == load_prompt("signal_v2").system


def test_api_key_never_appears_in_logs_outcomes_or_transcripts(
        server: OpenAIServer, api_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key in its error body, as some gateways do.
    server.script(http_error(401, f"Incorrect API key provided: {api_key}"),
                  answer(signal_fields("TSLA")))
    analyzer = analyst(server)
    rejected = analyzer.analyze_many([analysis_request()])[0]
    accepted = analyzer.analyze_many([analysis_request()])[0]
    assert all(r.headers["authorization"] == f"Bearer {api_key}" for r in server.requests)
    assert "refused the credentials (HTTP 401)" in rejected.error
    assert "[REDACTED]" in rejected.error
    for outcome in (rejected, accepted):
        assert api_key not in outcome.model_dump_json()
    assert accepted.ok and caplog.records  # the libraries did log at DEBUG
    assert api_key not in caplog.text
    assert api_key not in analyzer.model_dump_json()
    assert api_key not in analyst_from_env({"LLM_API_KEY": api_key}).model_dump_json()


def test_redact_scrubs_secrets_and_auth_headers(api_key: str) -> None:
    cleaned = redact({"Authorization": "Bearer x", "note": f"key={api_key}",
                      "nested": [api_key, 3]})
    assert cleaned == {"Authorization": "[REDACTED]", "note": "key=[REDACTED]",
                       "nested": ["[REDACTED]", 3]}


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("env, provider", [
    ({}, "rules"),
    ({"OPENAI_API_KEY": "sk-abcdefgh123"}, "openai"),
    ({"LLM_API_KEY": "sk-abcdefgh123"}, "openai"),
    ({"LLM_BASE_URL": "http://127.0.0.1:11434/v1"}, "openai"),  # Ollama needs no key
    ({"LLM_PROVIDER": "rules", "LLM_API_KEY": "sk-abcdefgh123"}, "rules"),
])
def test_provider_defaults_to_openai_only_when_configured(env: dict[str, str],
                                                          provider: str) -> None:
    resource = analyst_from_env(env)
    assert resource.provider == provider
    assert ("rules" in resource.label) == (provider == "rules")


def test_from_env_reads_every_setting() -> None:
    resource = analyst_from_env({
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://gpu-box:8000/v1",
        "LLM_MODEL": "qwen2.5-vl", "LLM_MODE": "md_json", "LLM_TIMEOUT_S": "12.5",
        "LLM_MAX_RETRIES": "4", "LLM_HTTP_RETRIES": "1", "LLM_CONCURRENCY": "3",
        "LLM_TEMPERATURE": "0", "LLM_SEND_IMAGES": "false", "LLM_MAX_COST_USD": "2.5",
        "LLM_PRICES": '{"qwen2.5-vl": [0.1, 0.2]}',
    })
    assert (resource.model, resource.mode, resource.timeout_s) == ("qwen2.5-vl", "md_json", 12.5)
    assert (resource.max_retries, resource.http_retries, resource.concurrency) == (4, 1, 3)
    assert (resource.temperature, resource.send_images, resource.max_cost_usd) == (0, False, 2.5)
    assert resource.label == ("openai-compatible model qwen2.5-vl at http://gpu-box:8000/v1 "
                              "(instructor mode md_json, chart images off)")
    assert OpenAIAnalyst.from_env({"LLM_TEMPERATURE": "default"}).temperature is None


@pytest.mark.parametrize("env, named", [
    ({"LLM_PROVIDER": "anthropic"}, "LLM_PROVIDER"),
    ({"LLM_MODE": "xml"}, "LLM_MODE"),
    ({"LLM_TIMEOUT_S": "soon"}, "LLM_TIMEOUT_S"),
    ({"LLM_CONCURRENCY": "0"}, "LLM_CONCURRENCY"),
    ({"LLM_SEND_IMAGES": "maybe"}, "LLM_SEND_IMAGES"),
    ({"LLM_PRICES": "{not json"}, "LLM_PRICES"),
    ({"LLM_PROMPT": "signal_v99"}, "LLM_PROMPT"),
])
def test_bad_settings_are_refused_with_the_variable_named(env: dict[str, str],
                                                          named: str) -> None:
    with pytest.raises(ValueError, match=named):
        analyst_from_env(env)


BAD_SETTINGS = [
    ({"LLM_PROVIDER": "anthropic"}, "LLM_PROVIDER"),
    ({"LLM_MODE": "xml"}, "LLM_MODE"),
    ({"LLM_TIMEOUT_S": "soon"}, "LLM_TIMEOUT_S"),
    ({"LLM_TIMEOUT_S": "0"}, "LLM_TIMEOUT_S"),
    ({"LLM_MAX_RETRIES": "-1"}, "LLM_MAX_RETRIES"),
    ({"LLM_CONCURRENCY": "0"}, "LLM_CONCURRENCY"),
    ({"LLM_SEND_IMAGES": "maybe"}, "LLM_SEND_IMAGES"),
    ({"LLM_PRICES": "{not json"}, "LLM_PRICES"),
    ({"LLM_PROMPT": "signal_v99"}, "LLM_PROMPT"),
]


@pytest.mark.parametrize("env, named", BAD_SETTINGS)
def test_bad_settings_are_configuration_errors_the_cli_reports(env: dict[str, str],
                                                               named: str) -> None:
    # The CLI and the Gradio app catch ConfigError: "configuration error: ...", exit 2.
    with pytest.raises(ConfigError, match=named):
        analyst_from_env(env)


def test_a_bad_llm_timeout_stops_build_resources_with_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LLM_TIMEOUT_S='soon' is not a number"):
        build_resources({"TRADING_DATA_DIR": str(tmp_path), "LLM_TIMEOUT_S": "soon"})


def test_base_url_from_the_process_environment_is_kept_by_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BASE_URL", " http://gpu-box:8000/v1?token=tok-123456 ")
    resource = analyst_from_env(os.environ)
    # The Dagster UI shows the variable's name; the client still gets the URL.
    assert isinstance(resource.base_url, dg.EnvVar)
    assert resource.url == "http://gpu-box:8000/v1?token=tok-123456"
    assert resource.endpoint == "http://gpu-box:8000/v1" and resource.provider == "openai"
    # A mapping other than the process environment keeps its own value.
    other = analyst_from_env({"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert other.base_url == other.url == "http://localhost:11434/v1"


def test_rules_provider_is_unchanged_and_labelled() -> None:
    resource = RulesAnalyst()
    [outcome] = resource.analyze_many([analysis_request()])
    assert outcome.ok and outcome.provider == "rules" and outcome.signal.provider == "rules"
    assert resource.label == "rules (deterministic, no language model)"


# --- prompts and prices ---------------------------------------------------------------------


def test_prompt_version_is_name_and_content_hash() -> None:
    prompt = load_prompt("signal_v1")
    assert prompt.version == f"signal_v1@{prompt.sha256[:12]}"
    text = "<!-- role: system -->\nBe brief.\n<!-- role: user -->\nSymbol: $symbol\n"
    edited = parse_prompt("signal_v1", text.replace("brief", "terse"))
    assert parse_prompt("signal_v1", text).version != edited.version
    assert parse_prompt("x", text).render_user({"symbol": "TSLA"}) == "Symbol: TSLA"
    with pytest.raises(PromptError, match=r"\$symbol"):
        parse_prompt("x", text).render_user({})
    with pytest.raises(PromptError, match="role: user"):
        parse_prompt("x", "<!-- role: system -->\nonly a system part\n")


@pytest.mark.parametrize("model, expected", [
    ("gpt-4o-mini", Price(0.15, 0.60)),
    ("gpt-4o-mini-2024-07-18", Price(0.15, 0.60)),
    ("gpt-4o-2024-08-06", Price(2.50, 10.00)),
    ("llama3.1:8b", Price(0.0, 0.0, known=False)),
])
def test_price_table_matches_models_and_snapshots(model: str, expected: Price) -> None:
    assert price_for(model) == expected


def test_price_overrides_from_the_environment() -> None:
    overrides = parse_prices('{"llama3.1:8b": [0.05, 0.1], "gpt-4o-mini": {"input": 1, '
                             '"output": 2}}')
    assert price_for("llama3.1:8b", overrides) == Price(0.05, 0.1)
    assert estimate_cost(price_for("gpt-4o-mini", overrides), 1_000_000, 500_000) == 2.0
    with pytest.raises(PriceTableError, match="LLM_PRICES"):
        parse_prices('{"m": [1]}')


# --- misbehaving servers (fault injection) --------------------------------------------------


def test_empty_choices_is_an_error_that_says_what_the_server_sent(server: OpenAIServer) -> None:
    server.responder = lambda _: no_choices()
    outcome = analyze_one(server, max_retries=1)
    assert outcome.signal is None
    assert "IndexError" not in outcome.error
    assert 'an empty "choices" list' in outcome.error
    assert outcome.transcript["attempts"][0]["response"]["choices"] == []


def test_a_dripping_server_is_cut_off_at_the_attempt_deadline(server: OpenAIServer) -> None:
    # 40 bytes 0.2 s apart take 8 s; each attempt may take 1 s in total.
    server.responder = lambda _: drip(0.2, 40)
    outcome = analyze_one(server, timeout_s=1.0, http_retries=1)
    assert outcome.signal is None
    assert "gave no answer within 1 s" in outcome.error
    assert len(server.requests) == 2  # both attempts were made, each was cut off
    deadline = time.monotonic() + 10
    while len(server.dripped) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the hang-up at its next byte
    assert len(server.dripped) == 2 and all(sent < 40 for sent in server.dripped)


def test_the_run_bound_skips_the_calls_it_leaves_no_time_for(server: OpenAIServer) -> None:
    server.responder = lambda _: drip(0.2, 40)
    requests = [analysis_request(s, charts=False) for s in ("AAA", "BBB", "CCC")]
    outcomes = analyst(server, timeout_s=1.0, http_retries=5, concurrency=1,
                       run_timeout_s=1.5).analyze_many(requests)
    assert all(o.signal is None for o in outcomes)
    assert "gave no answer" in outcomes[0].error
    for late in outcomes[1:]:
        assert "LLM_RUN_TIMEOUT_S" in late.error and "not made" in late.error
    # Only the first symbol reached the server; its retries stopped at the run's bound.
    assert {r.user_parts()[0]["text"].split("Symbol: ", 1)[1][:3] for r in server.requests} \
        == {"AAA"}
    assert len(server.requests) < 6


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_in_the_base_url_are_refused_and_never_sent(server: OpenAIServer) -> None:
    password = "url-pw-" + secrets.token_hex(6)
    url = server.base_url.replace("http://", f"http://trader:{password}@")
    server.responder = lambda _: echo_authorization()
    with pytest.raises(ConfigError, match="LLM_BASE_URL") as refused:
        analyst_from_env({"LLM_BASE_URL": url})
    assert password not in str(refused.value)
    # A resource configured some other way (Dagster UI, code) refuses at call time.
    [outcome] = analyst(server, base_url=url).analyze_many([analysis_request()])
    assert server.requests == []
    assert outcome.signal is None and "user:password" in outcome.error
    for text in (outcome.model_dump_json(), json.dumps(outcome.transcript)):
        assert password not in text and basic_auth("trader", password) not in text


def test_redact_covers_authorization_values_and_base64_forms_of_secrets(
        api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ml:ml-pass-9876@mlflow:5000")
    text = redact(
        "401: Authorization: Basic dXNlcjpzZWNyZXQ= / header 'Bearer abc.def-ghi_123' / "
        f"key in base64 {base64.b64encode(api_key.encode()).decode()} / "
        f"url pair {basic_auth('ml', 'ml-pass-9876')} / password ml-pass-9876")
    for leaked in ("dXNlcjpzZWNyZXQ=", "abc.def-ghi_123", base64.b64encode(api_key.encode())
                   .decode(), basic_auth("ml", "ml-pass-9876"), "ml-pass-9876"):
        assert leaked not in text
    assert "Authorization: [REDACTED]" in text and "Bearer [REDACTED]" in text


def test_an_echoed_authorization_header_is_redacted(server: OpenAIServer, api_key: str) -> None:
    server.responder = lambda _: echo_authorization()
    outcome = analyze_one(server)
    assert server.requests[0].headers["authorization"] == f"Bearer {api_key}"
    assert "refused the credentials (HTTP 401)" in outcome.error
    assert "Authorization: [REDACTED]" in outcome.error
    assert api_key not in outcome.model_dump_json()


def test_url_credentials_leak_nowhere_in_a_run(
        server: OpenAIServer, instance: dg.DagsterInstance, env: dict[str, str],
        data_dir: Path, api_key: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: signal error, transcript, MLflow, Dagster event log, CLI stderr."""
    password = "url-pw-" + secrets.token_hex(6)
    leaks = (password, basic_auth("trader", password))
    url = server.base_url.replace("http://", f"http://trader:{password}@")
    server.responder = lambda _: echo_authorization()
    resources = build_resources({**env, "MLFLOW_TRACKING_URI": ""})
    resources["analyst"] = analyst(server, base_url=url)
    result = run_symbols(instance, resources, ["TSLA"], raise_on_error=False)
    [row] = resources["app_db"].list_signals(symbol="TSLA")
    assert row.status == "error" and "user:password" in row.error
    events = "\n".join(str(record) for record in instance.all_logs(result.run_id))
    assert "user:password" in events
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any("transcript" in p.name for p in files)
    assert any(p.name == "signal.json" for p in files)  # the MLflow artifact
    for text in (row.error, events, *(p.read_bytes().decode(errors="replace") for p in files)):
        assert not any(leak in text for leak in leaks)
    # The CLI refuses the same setting before anything runs.
    for name, value in {**env, "LLM_BASE_URL": url, "DAGSTER_HOME": str(data_dir)}.items():
        monkeypatch.setenv(name, value)
    assert cli_main(["materialize", "--symbols", "TSLA"]) == 2
    stderr = capsys.readouterr().err
    assert "LLM_BASE_URL" in stderr and not any(leak in stderr for leak in leaks)
