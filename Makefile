# Two commands do all set-up on a fresh machine (Python 3.11+):
#   make demo   run the graph for the demo symbols on embedded defaults (no keys, no servers)
#   make test   run the test suite
# Then one runs the whole app:
#   make up     Dagster (webserver + daemon) and the Gradio app together; Ctrl-C stops both
#               (ports: DAGSTER_PORT, default 3000, and GRADIO_SERVER_PORT, default 7860)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test up dev ui bench lint install clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e ".[dev,celery]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/trading-signals demo $(if $(SYMBOLS),--symbols $(SYMBOLS))

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

up: $(STAMP)
	$(BIN)/trading-signals up

dev: $(STAMP)
	$(BIN)/trading-signals dev

ui: $(STAMP)
	$(BIN)/trading-signals ui

bench: $(STAMP)
	$(BIN)/trading-signals bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .dagster_home data test-artifacts *.egg-info
