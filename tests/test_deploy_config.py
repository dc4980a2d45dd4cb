"""The deployment files hold together without a Docker engine: docker-compose.yml, the Dockerfile,
dagster.yaml, the workspace files and .env.example agree with each other and with the code.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from resources.broker import Broker

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DAGSTER_HOME = "/opt/dagster/dagster_home"
# Services that open the Dagster instance, so they need the production dagster.yaml.
INSTANCE_SERVICES = ["migrate", "code-location", "dagster-webserver", "dagster-daemon", "ui"]
EXPECTED_SERVICES = {"postgres", "minio", "minio-init", "mlflow", "migrate", "code-location",
                     "dagster-webserver", "dagster-daemon", "ui", "ib-gateway",
                     "rabbitmq", "celery-worker-1", "celery-worker-2"}
# Optional services and the profile that starts them; everything else starts by default.
PROFILES = {"ib-gateway": ["ibkr"], "rabbitmq": ["celery"], "celery-worker-1": ["celery"],
            "celery-worker-2": ["celery"]}
# Set by the operating system or by a tool for itself, not configuration of this project.
NOT_PROJECT_SETTINGS = {"USER", "HOME", "PATH"}
# `env.get("X"`, `os.environ["X"]`, `os.getenv("X"`, `_int(env, "X"` ...: how code reads settings.
ENV_READ = re.compile(
    r"""(?:\b(?:env|environ)\s*(?:\.get\(\s*|\[\s*)|\bgetenv\(\s*|\(\s*env\s*,\s*)"([A-Z][A-Z0-9_]{2,})\""""
)
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)(:?[-?][^}]*)?\}")


def documented() -> dict[str, bool]:
    """Variables in .env.example -> whether the line is an active (uncommented) assignment."""
    names: dict[str, bool] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if match:
            names[match.group(2)] = names.get(match.group(2), False) or not match.group(1)
    return names


def compose_variables() -> dict[str, set[str]]:
    """Each ${VAR} in docker-compose.yml with its modifiers (':?' means required)."""
    found: dict[str, set[str]] = {}
    for name, modifier in COMPOSE_VAR.findall((ROOT / "docker-compose.yml").read_text()):
        found.setdefault(name, set()).add(modifier[:2])
    return found


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def command_words(service: str) -> list[str]:
    command = SERVICES[service].get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_has_the_stack_and_ib_gateway_only_under_its_profile() -> None:
    assert set(SERVICES) == EXPECTED_SERVICES
    assert SERVICES["ib-gateway"]["image"].startswith("ghcr.io/gnzsnz/ib-gateway")
    assert environment("ib-gateway")["TRADING_MODE"].endswith(":-paper}")
    assert {s: spec["profiles"] for s, spec in SERVICES.items() if spec.get("profiles")} \
        == PROFILES


def test_the_celery_profile_is_rabbitmq_and_two_workers_of_the_app_image() -> None:
    from trading_assets.executors import worker_command

    assert SERVICES["rabbitmq"]["image"].startswith("rabbitmq:")
    workers = [s for s in SERVICES if s.startswith("celery-worker-")]
    assert len(workers) == 2
    names = []
    for service in workers:
        spec = SERVICES[service]
        assert spec["image"] == SERVICES["code-location"]["image"]  # the same image
        words = command_words(service)
        assert words[:4] == ["python", "-m", "trading_assets.executors", "worker"]
        names.append(words[words.index("--name") + 1])
        assert spec["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        # The healthcheck pings exactly this worker, on the broker the workers use.
        assert f"-d {names[-1]}@$$HOSTNAME" in spec["healthcheck"]["test"][1]
        assert "$$TRADING_CELERY_BROKER_URL" in spec["healthcheck"]["test"][1]
    assert len(set(names)) == 2
    # Launcher (code location) and workers read one broker URL, pointing at this broker.
    for service in ["code-location", *workers]:
        env = environment(service)
        assert "@rabbitmq:5672" in env["TRADING_CELERY_BROKER_URL"]
        assert env["TRADING_EXECUTOR"] == "${TRADING_EXECUTOR:-in_process}"
    rabbit = environment("rabbitmq")
    assert env["TRADING_CELERY_BROKER_URL"] == (
        f"pyamqp://{rabbit['RABBITMQ_DEFAULT_USER']}:{rabbit['RABBITMQ_DEFAULT_PASS']}"
        "@rabbitmq:5672//")
    # The command the services run exists and is what the tests start.
    assert worker_command("worker-1", Path("c.yaml"))[:4] == [
        "dagster-celery", "worker", "start", "-A"]


def test_the_two_celery_workers_are_one_block_differing_only_in_their_name() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert text.count("<<: *celery-worker\n") == 2, "both workers merge the x-celery-worker block"

    def without_name(service: str) -> dict[str, Any]:
        spec = dict(SERVICES[service])
        name = service.removeprefix("celery-")
        command = [w.replace(name, "NAME") for w in command_words(service)]
        health = {**spec["healthcheck"],
                  "test": [w.replace(name, "NAME") for w in spec["healthcheck"]["test"]]}
        return {**spec, "command": command, "healthcheck": health}

    assert without_name("celery-worker-1") == without_name("celery-worker-2")
    assert command_words("celery-worker-1")[-1] == "worker-1"


@pytest.mark.parametrize("service", sorted(EXPECTED_SERVICES))
def test_every_long_running_service_has_a_healthcheck(service: str) -> None:
    spec = SERVICES[service]
    if spec.get("restart") == "no":  # one-shot jobs: others wait for them to complete
        return
    test = spec.get("healthcheck", {}).get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{service} has no healthcheck"


def test_dependencies_exist_and_wait_for_the_right_condition() -> None:
    for service, spec in SERVICES.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{service} depends on unknown {dependency}"
            target = SERVICES[dependency]
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{service} waits for {dependency}'s health"
            elif condition["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is not a one-shot job"
            optional = target.get("profiles")
            assert not optional or optional == spec.get("profiles"), \
                f"{service} needs optional {dependency}"


def test_volumes_networks_and_mounted_files_exist() -> None:
    declared_volumes = set(COMPOSE.get("volumes") or {})
    declared_networks = set(COMPOSE.get("networks") or {}) | {"default"}
    for service, spec in SERVICES.items():
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{service} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{service} uses undeclared volume {source}"
        networks = spec.get("networks") or []
        assert set(networks) <= declared_networks, f"{service} uses an undeclared network"


def test_every_compose_variable_is_documented_and_required_ones_are_listed() -> None:
    docs = documented()
    variables = compose_variables()
    assert sorted(set(variables) - set(docs)) == [], "document these in .env.example"
    required = {name for name, modifiers in variables.items() if ":?" in modifiers}
    assert required >= {"POSTGRES_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
                        "MINIO_ROOT_PASSWORD", "GRADIO_USERNAME", "GRADIO_PASSWORD"}
    # A user copying .env.example sees every required value as a line to fill in.
    assert sorted(n for n in required if not docs[n]) == []


def test_the_production_dagster_yaml_is_the_instance_of_every_dagster_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"DAGSTER_HOME={DAGSTER_HOME}" in dockerfile
    assert re.search(r"^COPY dagster\.yaml \$\{DAGSTER_HOME\}/dagster\.yaml$", dockerfile, re.M)
    for service in INSTANCE_SERVICES:
        spec = SERVICES[service]
        assert f"./dagster.yaml:{DAGSTER_HOME}/dagster.yaml:ro" in spec["volumes"], service
        env = environment(service)
        assert env["DAGSTER_HOME"] == DAGSTER_HOME
        for name in ("HOST", "PORT", "USER", "PASSWORD", "DB"):
            assert env.get(f"DAGSTER_POSTGRES_{name}"), f"{service} lacks DAGSTER_POSTGRES_{name}"
        assert env["APP_DATABASE_URL"].startswith("postgresql://")
        assert env["MINIO_ENDPOINT"] == "minio:9000"


def test_code_location_webserver_and_daemon_agree_on_the_grpc_server() -> None:
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code = command_words("code-location")
    assert code[:3] == ["dagster", "code-server", "start"]
    assert grpc["host"] == "code-location"
    assert str(grpc["port"]) == code[code.index("-p") + 1]
    assert code[code.index("-m") + 1] == "trading_assets.definitions"
    for service in ("dagster-webserver", "dagster-daemon"):
        words = command_words(service)
        assert words[words.index("-w") + 1] == "deploy/workspace.docker.yaml"
    assert "dagster instance migrate" in " ".join(command_words("migrate"))
    assert "python -m resources.migrations upgrade" in " ".join(command_words("migrate"))


def test_healthcheck_and_service_commands_exist() -> None:
    # The installed commands the compose services run (not Dagster's private click groups).
    bin_dir = Path(sys.executable).parent
    for command in (["dagster", "api", "grpc-health-check"], ["dagster", "code-server", "start"],
                    ["dagster-daemon", "liveness-check"]):
        done = subprocess.run([str(bin_dir / command[0]), *command[1:], "--help"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr[-500:])
    from trading_assets.cli import build_parser

    assert build_parser().parse_args(["ui"]).command == "ui"


def test_the_gradio_app_listens_on_all_interfaces_only_with_a_login() -> None:
    env = environment("ui")
    assert command_words("ui") == ["trading-signals", "ui"]
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    assert env["GRADIO_USERNAME"].startswith("${GRADIO_USERNAME:?")
    assert env["GRADIO_PASSWORD"].startswith("${GRADIO_PASSWORD:?")
    # Published on this machine only unless GRADIO_BIND_ADDRESS opens it (test_ui_login.py).
    assert SERVICES["ui"]["ports"] == ["${GRADIO_BIND_ADDRESS:-127.0.0.1}:7860:7860"]


def test_mlflow_keeps_runs_in_postgres_and_artifacts_in_minio() -> None:
    command = " ".join(command_words("mlflow"))
    assert "--backend-store-uri" in command and "postgresql" in command
    assert "--artifacts-destination" in command and "s3://" in command
    assert environment("mlflow")["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert environment("code-location")["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


# --- Dockerfile -----------------------------------------------------------------------------------


def test_the_dockerfile_installs_the_project_like_the_readme() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"^RUN .*pip install ([^\n]+)", dockerfile, re.M)
    # The project with the celery extra, so the same image serves the celery workers.
    assert installs == ['".[celery]"'], "the image installs the project with `pip install .`"
    assert (ROOT / "README.md").exists(), "pyproject's readme and the Dockerfile need README.md"
    assert re.search(r"pip install \.(\s|$|`)", (ROOT / "docs" / "production.md").read_text()), \
        "docs/production.md should show the same `pip install .` the image uses"


def test_the_dockerfile_copies_every_package_and_file_it_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [word for line in re.findall(r"^COPY (.+)$", dockerfile, re.M)
               for word in line.split()[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    assert packages <= set(sources), "the image must contain every package pyproject installs"
    assert {"deploy", "workspace.yaml"} <= set(sources)
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not set(sources) & set(ignored)


# --- dagster.yaml and workspaces ------------------------------------------------------------------


@pytest.fixture
def production_instance_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The root dagster.yaml validated by Dagster's own schema, with its variables set."""
    from dagster._core.instance.config import dagster_instance_config

    for name, value in {"HOST": "db", "PORT": "5432", "USER": "u", "PASSWORD": "p",
                        "DB": "dagster"}.items():
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{name}", value)
    config, _ = dagster_instance_config(str(ROOT))
    return config


def test_dagster_yaml_is_postgres_with_a_run_queue_pools_and_retries(
        production_instance_config: dict[str, Any]) -> None:
    raw = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    db = raw["storage"]["postgres"]["postgres_db"]
    for field, name in (("hostname", "HOST"), ("port", "PORT"), ("username", "USER"),
                        ("password", "PASSWORD"), ("db_name", "DB")):
        assert db[field] == {"env": f"DAGSTER_POSTGRES_{name}"}
    assert db["scheme"] == "postgresql+psycopg2"
    config = production_instance_config
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1
    assert config["telemetry"]["enabled"] is False


def test_the_pools_the_assets_declare_are_the_ones_dagster_yaml_describes() -> None:
    from trading_assets.definitions import defs

    pools = {asset.op.pool for asset in defs.assets or []
             if isinstance(asset, dg.AssetsDefinition) and asset.op.pool}
    assert pools == {"ibkr", "llm"}
    text = (ROOT / "dagster.yaml").read_text()
    assert all(f'"{pool}"' in text for pool in pools)


def test_the_embedded_default_never_reads_the_production_dagster_yaml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trading_assets.runs import ensure_dagster_home

    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    monkeypatch.chdir(tmp_path)  # a checkout with the production file at its root
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in ("HOST", "PORT", "USER", "PASSWORD", "DB"):
        monkeypatch.delenv(f"DAGSTER_POSTGRES_{name}", raising=False)
    home = ensure_dagster_home()
    assert home == tmp_path / ".dagster_home"
    assert "postgres" not in (home / "dagster.yaml").read_text()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"


def test_workspace_yaml_loads_the_definitions_module_as_the_code_location() -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert module["module_name"] == pyproject["module_name"] == "trading_assets.definitions"
    docker = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())
    assert module["location_name"] == docker["load_from"][0]["grpc_server"]["location_name"] \
        == pyproject["code_location_name"]


# --- .env.example and docs ------------------------------------------------------------------------


def variables_read() -> set[str]:
    """Every environment variable the code and dagster.yaml read: the settings models'
    (trading_assets/core/config.py) and any other read found by call shape."""
    from trading_assets.core.config import variables

    read = {name for _, name, _ in variables()}
    for folder in ("trading_assets", "resources", "ui"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(ENV_READ.findall(path.read_text()))
    read |= set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", (ROOT / "dagster.yaml").read_text()))
    return read


def test_the_scan_sees_the_variables_the_models_read() -> None:
    assert {"LLM_TIMEOUT_S", "LLM_SEND_IMAGES", "MLFLOW_TIMEOUT_S", "IBKR_PORT",
            "TRADING_AUTOMATION_RUNNING", "LLM_BASE_URL", "OPENAI_BASE_URL",
            "PAPER_BROKER_DATABASE_URL", "MLFLOW_TRACKING_URI"} <= variables_read()


def test_every_variable_the_project_reads_is_in_env_example() -> None:
    read = variables_read()
    read |= {"LLM_API_KEY", "OPENAI_API_KEY"}  # read through a tuple in resources/llm.py
    missing = sorted(read - set(documented()) - NOT_PROJECT_SETTINGS)
    assert missing == [], f"document these in .env.example: {missing}"


def test_the_deployment_guide_covers_running_and_scaling_the_stack() -> None:
    guide = "".join((ROOT / "docs" / page).read_text() for page in ("production.md",
                                                                   "scale-out.md"))
    assert "## Run the full stack" in guide and "# Scale out" in guide
    for launcher in ("DockerRunLauncher", "K8sRunLauncher"):
        assert launcher in guide


# --- secrets in resource config ------------------------------------------------------------------

# Variables whose value may carry a password, as docker-compose builds them. APP_DATABASE_URL
# joins once AppDatabase resolves an EnvVar url (see trading_assets/settings.py).
URL_SECRETS = {
    "APP_DATABASE_URL": "postgresql://trading:{pw}@postgres:5432/trading",
    "PAPER_BROKER_DATABASE_URL": "postgresql://trading:{pw}@postgres:5432/paper_broker",
    # user:password@ in LLM_BASE_URL is refused (tests/test_llm.py); a gateway token in the
    # query is not, and must stay out of the UI as well.
    "LLM_BASE_URL": "http://llm-gateway:8000/v1?token={pw}",
    "MLFLOW_TRACKING_URI": "postgresql://mlflow:{pw}@postgres:5432/mlflow?sslmode=disable",
    "MINIO_SECRET_KEY": "{pw}",
}


def test_the_dagster_ui_never_shows_a_password_set_in_a_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.remote_representation.external_data import (
        RepositorySnap,
        ResourceConfigEnvVarSnap,
    )

    from trading_assets.definitions import EVALUATION_ASSETS, SYMBOL_ASSETS, SYMBOL_CHECKS
    from trading_assets.settings import build_resources

    password = "pw-" + "x7Qz9" * 3
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
    for name, template in URL_SECRETS.items():
        monkeypatch.setenv(name, template.format(pw=password))
    # Built as definitions.py builds them: from the process environment.
    resources = build_resources()
    defs = dg.Definitions(assets=[*SYMBOL_ASSETS, *EVALUATION_ASSETS],
                          asset_checks=SYMBOL_CHECKS, resources=resources)
    # What the code location sends the webserver, resource config included.
    snapshot = RepositorySnap.from_def(defs.get_repository_def())
    shown = {resource.name: resource.configured_values for resource in snapshot.resources}
    assert shown["broker"]["paper_database_url"] == \
        ResourceConfigEnvVarSnap(name="PAPER_BROKER_DATABASE_URL")
    assert shown["app_db"]["url"] == ResourceConfigEnvVarSnap(name="APP_DATABASE_URL")
    assert password not in dg.serialize_value(snapshot)
    # ... while the resources, used directly (CLI, Gradio), still see the real values.
    assert password in resources["analyst"].url and password in resources["tracking"].uri
    assert password not in resources["analyst"].label + resources["tracking"].label


def test_a_referenced_database_url_works_inside_and_outside_a_dagster_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trading_assets.settings import build_resources

    paper_db = tmp_path / "paper.db"
    monkeypatch.setenv("PAPER_BROKER_DATABASE_URL", f"sqlite:///{paper_db}")
    broker = build_resources({**os.environ, "TRADING_DATA_DIR": str(tmp_path / "data")})["broker"]
    assert isinstance(broker.paper_database_url, dg.EnvVar)
    assert broker.account().cash == broker.starting_cash  # the CLI's way: resolved at use
    assert paper_db.exists()

    seen: list[str] = []

    @dg.asset
    def uses_the_broker(broker: Broker) -> None:
        seen.append(broker.paper_database_url)
        broker.account()

    assert dg.materialize([uses_the_broker], resources={"broker": broker}).success
    assert seen == [f"sqlite:///{paper_db}"]  # Dagster resolved the reference for the run


def test_the_dagster_ui_never_shows_an_api_key_in_the_csv_url_template(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.remote_representation.external_data import RepositorySnap

    from trading_assets.definitions import EVALUATION_ASSETS, SYMBOL_ASSETS, SYMBOL_CHECKS
    from trading_assets.settings import build_resources

    key = "csv-provider-key-7f3a91"
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADING_DATA_SOURCE", "url")
    monkeypatch.setenv("TRADING_CSV_URL", f"https://eod.example/{{symbol}}.csv?apikey={key}")
    defs = dg.Definitions(assets=[*SYMBOL_ASSETS, *EVALUATION_ASSETS],
                          asset_checks=SYMBOL_CHECKS, resources=build_resources())
    snapshot = RepositorySnap.from_def(defs.get_repository_def())
    assert key not in dg.serialize_value(snapshot)
