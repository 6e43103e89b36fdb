"""The browser tier: Debian's Chromium driven headless by Playwright for Python (never
Playwright's own browser download), LiveKit's JS SDK from tests/browser/node_modules, and a
static server for pages on a second loopback origin.

Both are installed by `make install` (scripts/install-browser.sh). In CI (`CI=true`) a
missing one fails the tests; elsewhere they are skipped with the command that installs them.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from app.core.devserver import free_port
from tests.conftest import IN_CI

HERE = Path(__file__).resolve().parent
SDK = HERE / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def _require(present: bool, what: str) -> None:
    if present:
        return
    message = f"{what} is missing: run `make install` (scripts/install-browser.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    """Debian's chromium (`$CHROMIUM` overrides)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
    _require(bool(path), "chromium")
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session, with fake camera and microphone."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def page_origin() -> Iterator[str]:
    """`http://localhost:<port>`: tests/browser served statically (pages and the JS SDK), an
    origin other than the service's `http://127.0.0.1:<port>`."""
    _require(SDK.is_file(), "LiveKit's JS SDK (tests/browser/node_modules)")
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(HERE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
