# The control plane's tasks. `make help` lists them.
.DEFAULT_GOAL := help
# The service's interpreter: Debian's python3.11 (README: "Which Python").
SERVICE_PYTHON ?= /usr/bin/python3.11
export SERVICE_PYTHON
UV := UV_PYTHON_DOWNLOADS=never UV_PYTHON=$(SERVICE_PYTHON) python3 -m uv run

.PHONY: help install install-service run test test-unit lint format typecheck bench bench-instructions clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: install-service ## install everything the tests need too: LiveKit's workers, SeaweedFS, the agent venv, Chromium and LiveKit's JS SDK
	@scripts/install-workers.sh
	@scripts/install-agent-venv.sh
	@scripts/install-browser.sh

install-service: ## install what the service needs: redis, postgresql, LiveKit's server, the locked .venv
	@scripts/install-tools.sh

run: install-service ## serve on 127.0.0.1:8000 (starts a local LiveKit dev server if LIVEKIT_URL is unset)
	@mkdir -p data
	$(UV) python -m app

test: install ## run the whole test suite against real components, in a network namespace of its own
	scripts/in-netns.sh .venv/bin/python -m pytest $(PYTEST_ARGS)

test-unit: ## run only the tests that need no network
	$(UV) pytest tests/unit

lint: ## ruff format check, ruff lint, strict mypy on app/, routers/, schemas/
	$(UV) ruff format --check .
	$(UV) ruff check .
	$(UV) mypy

format: ## apply ruff formatting and safe fixes
	$(UV) ruff format .
	$(UV) ruff check --fix .

bench: install ## run the benchmarks in bench/ (prints ratios; needs wrk and Node.js; never part of `make test`)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	$(UV) python -m bench

bench-instructions: install-service ## count instructions per token request, service beside ceiling (needs valgrind)
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null)
	$(UV) python -m bench.instructions

clean: ## remove caches and local data (keeps .tools and .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis data
