#!/usr/bin/env bash
# Installs the venv of the test agent worker (tests/agents/echo_worker.py) into
# .tools/agent-venv from tests/agents/uv.lock, idempotently. It is separate from .venv because
# livekit-agents pins its own `livekit` and OpenTelemetry versions, which clash with the
# service's pins. The dispatch tests find it at .tools/agent-venv (or $AGENT_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."

printf '\n==> uv sync --frozen (test agent worker, .tools/agent-venv)\n'
UV_PROJECT_ENVIRONMENT="$PWD/.tools/agent-venv" UV_PYTHON_DOWNLOADS=never \
  python3 -m uv sync --frozen --quiet --project tests/agents
