#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need, idempotently:
#   - Debian's chromium (driven by Playwright for Python from .venv with executable_path;
#     Playwright's own browser download is never used);
#   - Node.js and npm (Debian), then LiveKit's JS SDK `livekit-client` at the version pinned in
#     tests/browser/package-lock.json, with `npm ci` into tests/browser/node_modules (git-ignored).
#     npm runs again only when the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  printf '\n==> apt-get install %s\n' "${need_apt[*]}"
  for attempt in 1 2 3 4 5; do  # the apt lock may be held for a moment
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null && break
    [ "$attempt" = 5 ] && exit 1
    sleep 10
  done
fi

lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.lock-sha256
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  printf '\n==> npm ci (tests/browser: livekit-client)\n'
  (cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
