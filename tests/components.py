"""Real components for the tests, each on free loopback ports: Redis, LiveKit's SDK test
server, and this service served by uvicorn in a background thread.

In CI (`CI=true`) a missing component is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from app.devserver import ManagedProcess, find_binary, free_port, http_ok
from app.main import create_app
from app.settings import Settings


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalRedis:
    """`redis-server` with no persistence; `address` is host:port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server not found: run `make tools`")
        workdir = Path(tempfile.mkdtemp(prefix="redis-"))
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = ManagedProcess("redis", args, workdir)

    def start(self) -> LocalRedis:
        self.process.start(lambda: _port_open(self.port))
        return self

    def stop(self) -> None:
        self.process.stop()


class LocalTestServer:
    """LiveKit's SDK test server (`test-server`): a programmable mock of the server APIs,
    driven per request by the `X-Lk-Mock` header. `url` is its primary region."""

    def __init__(self, api_secret: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        binary = find_binary("test-server", "LIVEKIT_TEST_SERVER_BIN")
        args = [
            binary,
            "--ports",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--api-secret",
            api_secret,
        ]
        self.process = ManagedProcess(
            "test-server", args, Path(tempfile.mkdtemp(prefix="lk-test-"))
        )

    def start(self) -> LocalTestServer:
        self.process.start(lambda: _port_open(self.port))
        return self

    def stop(self) -> None:
        self.process.stop()


class LiveService:
    """This service in a uvicorn server on a background thread, reachable over real HTTP
    (LiveKit posts webhooks to it). `port` is fixed before start so LiveKit can be told."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, settings: Settings) -> LiveService:
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        probe = http_ok(f"{self.url}/healthz")
        while not probe():
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
