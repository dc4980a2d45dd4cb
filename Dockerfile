# syntax=docker/dockerfile:1
# One image for every Python service in docker-compose.yml (code location, webserver, daemon,
# Gradio app, MLflow server, migrations) and for Dagster's Docker/Kubernetes run launchers.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    TRADING_DATA_DIR=/opt/dagster/data

RUN useradd --create-home --uid 1000 dagster

WORKDIR /opt/dagster/app

# The same install as the README: `pip install .` (the runtime dependencies, no dev extra).
COPY pyproject.toml README.md ./
COPY trading_assets ./trading_assets
COPY resources ./resources
COPY ui ./ui
RUN --mount=type=cache,target=/root/.cache/pip pip install ".[celery]"

COPY workspace.yaml ./
COPY deploy ./deploy
# The production instance (docker-compose also mounts it, so an edit needs no rebuild).
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml
# Named volumes start as copies of these folders, so they are owned by the runtime user.
RUN mkdir -p ${DAGSTER_HOME}/storage ${TRADING_DATA_DIR} \
    && chown -R dagster:dagster ${DAGSTER_HOME} ${TRADING_DATA_DIR}

USER dagster
EXPOSE 3000 4000 5000 7860

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "trading_assets.definitions", "--location-name", "trading_assets"]
