#!/usr/bin/env bash
# Installs what the service and its tests need, idempotently:
#   - Debian packages: redis-server, postgresql (for the real-component tests);
#   - LiveKit's own binaries (server, test-server) v1.13.5 from the Go module proxy, into .tools/bin;
#   - uv, then the locked Python environment (.venv) from uv.lock, on Debian's python3.11
#     ($SERVICE_PYTHON; see the README: built with profile-guided and link-time optimization).
set -euo pipefail
cd "$(dirname "$0")/.."

LIVEKIT_VERSION=v1.13.5
UV_VERSION=0.13.9
TOOLS_BIN="$PWD/.tools/bin"
SERVICE_PYTHON="${SERVICE_PYTHON:-/usr/bin/python3.11}"
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -x "$SERVICE_PYTHON" ] || need_apt+=(python3.11)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

installed_version() { "$TOOLS_BIN/server" --version 2>/dev/null | awk '{print "v"$3}'; }
if [ ! -x "$TOOLS_BIN/test-server" ] || [ "$(installed_version)" != "$LIVEKIT_VERSION" ]; then
  step "go install livekit-server and test-server $LIVEKIT_VERSION into .tools/bin"
  GO=$(command -v go || echo /usr/local/go/bin/go)
  mkdir -p "$TOOLS_BIN"
  start=$(date +%s)
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod "$GO" install \
    "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION" \
    "github.com/livekit/livekit-server/cmd/test-server@$LIVEKIT_VERSION"
  echo "LiveKit binaries built in $(( $(date +%s) - start )) s"
fi

if [ "$(python3 -m uv --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
  step "pip install uv==$UV_VERSION"
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

step "uv sync --frozen --python $SERVICE_PYTHON"
UV_PYTHON_DOWNLOADS=never python3 -m uv sync --frozen --quiet --python "$SERVICE_PYTHON"
