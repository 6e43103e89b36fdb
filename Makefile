# The control plane's tasks. `make help` lists them.
.DEFAULT_GOAL := help
UV := UV_PYTHON_DOWNLOADS=never python3 -m uv run

.PHONY: help install run test test-unit lint format typecheck bench clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install everything: Debian packages, LiveKit binaries, the locked Python envs
	@scripts/install-tools.sh
	@scripts/install-agent-venv.sh

run: install ## serve on 127.0.0.1:8000 (starts a local LiveKit dev server if LIVEKIT_URL is unset)
	@mkdir -p data
	$(UV) python -m app

test: install ## run the whole test suite against real components
	$(UV) pytest

test-unit: ## run only the tests that need no network
	$(UV) pytest tests/unit

lint: ## ruff format check, ruff lint, mypy on app/
	$(UV) ruff format --check .
	$(UV) ruff check .
	$(UV) mypy

format: ## apply ruff formatting and safe fixes
	$(UV) ruff format .
	$(UV) ruff check --fix .

bench: install ## run the benchmarks in bench/ (prints ratios; never part of `make test`)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(UV) python -m bench

clean: ## remove caches and local data (keeps .tools and .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis data
