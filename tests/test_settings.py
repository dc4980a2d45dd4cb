"""The typed settings models: every value range-checked where it is read, bad start-up
settings reported in one line naming the setting, and .env.example and the configuration
table (docs/configuration.md) generated from the models."""

import re
from pathlib import Path

import pytest

from trading_assets import cli, settings_docs
from trading_assets.core.config import (
    MODELS,
    LLMSettings,
    _shown,
    range_text,
    secret_names,
    url_names,
    variables,
)
from trading_assets.settings import ConfigError, build_resources, check_start


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PAPER_STARTING_CASH", "-1000", "PAPER_STARTING_CASH='-1000' must be above 0"),
    ("PAPER_STARTING_CASH", "nan", "PAPER_STARTING_CASH='nan' must be a finite number"),
    ("PAPER_STARTING_CASH", "inf", "must be a finite number"),
    ("TRADING_LOOKBACK_DAYS", "-5", "TRADING_LOOKBACK_DAYS='-5' must be at least 200"),
    ("TRADING_LOOKBACK_DAYS", "99999999", "at most 20000"),
    ("LLM_TIMEOUT_S", "nan", "LLM_TIMEOUT_S='nan' must be a finite number"),
    ("IBKR_PORT", "99999", "IBKR_PORT='99999' must be at least 1 and at most 65535"),
    ("PAPER_SLIPPAGE_BPS", "-1", "must be at least 0"),
    ("TRADING_SIMULATED_AS_OF", "notadate", "TRADING_SIMULATED_AS_OF='notadate' is not a date"),
    ("TRADING_CSV_TIMEOUT_S", "0", "must be above 0"),
])
def test_out_of_range_settings_are_refused_naming_the_setting(env: dict[str, str], name: str,
                                                              value: str, message: str) -> None:
    extra = {"TRADING_DATA_SOURCE": "url", "TRADING_CSV_URL": "https://x.test/{symbol}"} \
        if name == "TRADING_CSV_TIMEOUT_S" else {}
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_resources({**env, **extra, name: value})


@pytest.mark.parametrize(("name", "value"), [
    ("LLM_TIMEOUT_S", "0.05"), ("LLM_CONCURRENCY", "0"), ("LLM_RUN_TIMEOUT_S", "0.5"),
    ("LLM_MAX_RETRIES", "11"),
])
def test_the_analysts_ranges_are_the_models(name: str, value: str) -> None:
    from resources.analysts import analyst_from_env

    env = {"LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:9/v1", name: value}
    with pytest.raises(ConfigError) as refused:
        analyst_from_env(env)
    [field] = [f for f in LLMSettings.model_fields.values() if f.alias == name]
    assert str(refused.value).startswith(f"{name}={value!r} must be {range_text(field)}; unset it")


def test_every_variable_is_one_documented_field() -> None:
    names = [name for _, name, _ in variables()]
    assert len(names) == len(set(names)) and len(names) > 100
    for _, name, field in variables():
        assert name.isupper() and field.description, name
    # The documented default reads back as the default: it is valid (pydantic does not
    # validate defaults), and what .env.example shows is what the code uses.
    for model in MODELS:
        written = {field.alias: _shown(field.default) for field in model.model_fields.values()}
        assert model.from_env(written) == model(), model.__name__


def test_a_model_built_in_code_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL", "from-the-process")
    assert LLMSettings().model == "gpt-4o-mini"
    assert LLMSettings.from_env().model == "from-the-process"
    # Names are case-sensitive, as the process environment is: a lower-case key is not read.
    assert LLMSettings.from_env({"llm_model": "lower"}).model == "gpt-4o-mini"
    # Blank is the default; values are stripped; choices are case-insensitive.
    assert LLMSettings.from_env({"LLM_MODEL": "  ", "LLM_CACHE": " Strict "}).model_dump(
        include={"model", "cache"}) == {"model": "gpt-4o-mini", "cache": "strict"}


def test_secrets_are_never_printed() -> None:
    read = LLMSettings.from_env({"LLM_API_KEY": "sk-7Qz9-secret"})
    assert "sk-7Qz9-secret" not in repr(read) + str(read.model_dump())
    assert read.api_key == "sk-7Qz9-secret"


@pytest.mark.parametrize("path", sorted(settings_docs.generated(), key=str))
def test_the_committed_settings_docs_are_the_generated_ones(path: Path) -> None:
    # .env.example and docs/configuration.md's table come from the models: `python -m
    # trading_assets.settings_docs` rewrites them after a model changes.
    assert path.read_text() == settings_docs.generated()[path]


def test_the_settings_docs_check_fails_on_a_stale_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / ".env.example"
    stale.write_text("# IBKR_PORT=4001\n")
    table_doc = tmp_path / "configuration.md"
    table_doc.write_text(settings_docs.TABLE_DOC.read_text())
    monkeypatch.setattr(settings_docs, "ENV_EXAMPLE", stale)
    monkeypatch.setattr(settings_docs, "TABLE_DOC", table_doc)
    assert settings_docs.main(["--check"]) == 1
    assert settings_docs.main([]) == 0 and settings_docs.main(["--check"]) == 0
    assert "# IBKR_PORT=4002\n" in stale.read_text()


def bad_start_settings(tmp_path: Path) -> list[tuple[str, str, str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return [
        ("APP_DATABASE_URL", "notaurl", "APP_DATABASE_URL is not a database URL"),
        ("APP_DATABASE_URL", "postgresql://postgres:pw@127.0.0.1:1/trading",
         "APP_DATABASE_URL: Application database postgresql://postgres:***@127.0.0.1:1/trading "
         "not reachable ("),
        ("MINIO_ENDPOINT", "127.0.0.1:1", "MINIO_ENDPOINT='127.0.0.1:1': nothing answers there"),
        ("TRADING_DATA_DIR", str(blocker / "data"), "is not a folder this user can write"),
        ("TRADING_SIMULATED_AS_OF", "notadate", "TRADING_SIMULATED_AS_OF='notadate' is not a"),
        ("PAPER_STARTING_CASH", "-1000", "PAPER_STARTING_CASH='-1000' must be above 0"),
    ]


def test_check_start_names_the_setting_of_each_unreachable_system(
        env: dict[str, str], tmp_path: Path) -> None:
    for name, value, message in bad_start_settings(tmp_path):
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            check_start({**env, name: value})
        assert "pw" not in str(info.value)
    resources = check_start(env)  # the embedded defaults start
    assert (Path(env["TRADING_DATA_DIR"]) / "app.db").exists()
    assert set(resources) >= {"market_data", "store", "app_db"}


@pytest.mark.parametrize("entry", ["cli", "ui"])
def test_cli_and_gradio_start_report_bad_settings_in_one_line(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], entry: str) -> None:
    from ui import app

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name, value, message in bad_start_settings(tmp_path):
        for key, val in {**env, name: value}.items():
            monkeypatch.setenv(key, val)
        code = cli.main(["symbols", "list"]) if entry == "cli" else app.main()
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        monkeypatch.delenv(name)


SECRET_SETTINGS = sorted(secret_names())
URL_SETTINGS = sorted(url_names())


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_every_secret_setting_is_redacted(name: str) -> None:
    from trading_assets.core.secrets import redact, secret_values

    token = f"tok-{name.lower()}-7Qz9"
    assert redact(f"echo {token}.", secret_values({name: token})) == "echo [REDACTED]."
    # A URL value keeps its host readable and loses its password.
    url = f"postgresql://someone:{token}@db.example:5432/x"
    cleaned = redact(f"at {url}", secret_values({name: url}))
    assert token not in cleaned and "db.example:5432" in cleaned


@pytest.mark.parametrize("name", URL_SETTINGS)
def test_the_password_in_every_url_setting_is_redacted(name: str) -> None:
    from trading_assets.core.secrets import redact, secret_values

    url = "https://someone:pw-7Qz9x7Qz9@host.example/path"
    assert "pw-7Qz9x7Qz9" not in redact(f"at {url}", secret_values({name: url}))


@pytest.mark.parametrize(("spec", "bad_part"), [
    ("date=Data,close", "'close'"),          # no =
    ("dat=Data", "'dat'"),                   # not a column of ours
    ("close=", "'close='"),                  # no header of theirs
    ("close=A,close=B", "'close=B'"),        # mapped twice
])
@pytest.mark.parametrize("source", ["csv", "url"])
def test_a_bad_csv_column_mapping_is_refused_at_start(env: dict[str, str], spec: str,
                                                      bad_part: str, source: str) -> None:
    bad = {**env, "TRADING_DATA_SOURCE": source, "TRADING_CSV_URL": "https://x.test/{symbol}",
           "TRADING_CSV_COLUMNS": spec}
    with pytest.raises(ConfigError) as refused:
        check_start(bad)
    message = str(refused.value)
    assert message.startswith("TRADING_CSV_COLUMNS") and bad_part in message, message
    assert "date=Data,close=Zamkniecie" in message and "\n" not in message, message


def test_the_cli_reports_a_bad_csv_column_mapping_in_one_line_and_exits_2(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for key, value in {**env, "TRADING_DATA_SOURCE": "csv",
                       "TRADING_CSV_COLUMNS": "Date:Data"}.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["symbols", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("configuration error: TRADING_CSV_COLUMNS") and "'Date:Data'" in err
    assert len(err.splitlines()) == 1, err


def test_a_good_csv_column_mapping_starts(env: dict[str, str]) -> None:
    resources = check_start({**env, "TRADING_DATA_SOURCE": "csv",
                             "TRADING_CSV_COLUMNS": " Date = Data , close=Zamkniecie "})
    assert resources["market_data"].source == "csv"


@pytest.mark.parametrize(("name", "value"), [("TRADING_QUEUE_WAIT_S", "abc"),
                                             ("TRADING_QUEUE_WAIT_S", "-5"),
                                             ("TRADING_MAX_SYMBOLS_PER_RUN", "0")])
def test_the_launch_settings_are_refused_at_start_not_after_runs_are_queued(
        env: dict[str, str], name: str, value: str) -> None:
    # The queue wait was read only once the runs were submitted: a bad value crashed the
    # command after queueing them.
    with pytest.raises(ConfigError) as refused:
        check_start({**env, name: value})
    assert str(refused.value).startswith(f"{name}={value!r}")
