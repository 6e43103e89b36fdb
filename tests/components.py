"""Real components for the tests, each on free loopback ports: Redis, LiveKit's SDK test
server, and this service served by uvicorn in a background thread; the service as separate
processes (replicas) for the event store tests. LiveKit's dev server and PostgreSQL, which
the benchmarks start too, are in `app.core.devserver`.

In CI (`CI=true`) a missing component is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from app.__main__ import uvicorn_options
from app.config.settings import Settings
from app.core.devserver import (
    PROJECT_ROOT,
    ManagedProcess,
    find_binary,
    free_port,
    http_ok,
    port_open,
    wait_until,
)
from app.main import create_app


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
        self.process.start(lambda: port_open(self.port))
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
        self.process.start(lambda: port_open(self.port))
        return self

    def stop(self) -> None:
        self.process.stop()


class LocalSeaweedFS:
    """SeaweedFS (`.tools/bin/weed`, Apache-2.0) as an S3-compatible store on free loopback
    ports: `weed server` with a master, a volume server, a filer and the S3 gateway, one
    identity (`access_key`, `secret`) from an s3.json, telemetry off (see
    shared/notes/seaweedfs.md). `endpoint` is the S3 gateway's URL; stopped by PID."""

    def __init__(self) -> None:
        import json
        import secrets

        self.access_key = f"recordings-{secrets.token_hex(4)}"
        self.secret = f"weed-secret-{secrets.token_urlsafe(24)}"
        self.region = "us-east-1"
        workdir = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        (workdir / "data").mkdir()
        identity = {
            "name": "admin",
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret}],
        }
        (workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))  # fmt: skip
        master, volume, filer, s3 = (self._port_pair() for _ in range(4))
        self.endpoint = f"http://127.0.0.1:{s3}"
        binary = find_binary("weed", "SEAWEEDFS_BIN")
        args = [binary, "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-master.port={master}", f"-volume.port={volume}",
                "-filer", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
                f"-s3.config={workdir / 's3.json'}", "-master.telemetry=false",
                # each bucket is a collection that takes volumes of its own: room for many
                # small ones (the defaults, 8 volumes of 30 GB, fill up at the second bucket)
                "-volume.max=200", "-master.volumeSizeLimitMB=64"]  # fmt: skip
        self.process = ManagedProcess("weed", args, workdir, cwd=workdir)

    @staticmethod
    def _port_pair() -> int:
        """A free port whose gRPC twin (+10000, SeaweedFS's rule) is free too."""
        while True:
            port = free_port()
            if not port_open(port + 10000):
                return port

    def client(self) -> Any:
        """A boto3 S3 client of this store (SigV4, path-style)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )  # fmt: skip

    def _answers(self) -> bool:
        """The S3 gateway answers HTTP (anonymous requests get 403)."""
        try:
            httpx.get(self.endpoint, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    def start(self) -> LocalSeaweedFS:
        self.process.start(self._answers, timeout=120)
        return self

    def create_bucket(self, name: str, timeout: float = 60) -> None:
        """Create bucket `name`, retried while the master is still electing itself."""
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().create_bucket(Bucket=name)
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

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

    def start(self, settings: Settings, **options: Any) -> LiveService:
        """Serve an app for `settings` with the uvicorn options `python -m app` uses
        (`app.__main__.uvicorn_options`), on this port; `options` override them (e.g.
        `http="h11"` or `"httptools"` for one HTTP parser)."""
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            **{
                **uvicorn_options(settings),
                "host": "127.0.0.1",
                "port": self.port,
                "log_level": "warning",
                **options,
            },
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()), daemon=True
        )
        self._thread.start()
        if not wait_until(http_ok(f"{self.url}/healthz"), 20, interval=0.05):
            raise RuntimeError("the service did not start")
        return self

    def client(self, timeout: float = 30) -> httpx.AsyncClient:
        """An HTTP client of this service (no credentials: add `auth(...)`), `timeout` s
        per request; use it as `async with service.client() as http:`."""
        return httpx.AsyncClient(base_url=self.url, timeout=timeout)

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)

    def statements(self, matches: Callable[[str], bool]) -> list[str]:
        """A list collecting, from now on, every SQL statement the service's engine sends
        to the database for which `matches(statement)` holds."""
        sent: list[str] = []

        def collect(_conn: Any, _cursor: Any, statement: str, *_args: object) -> None:
            if matches(statement):
                sent.append(statement)

        engine = self.app.state.store.engine  # type: ignore[attr-defined]
        sa.event.listen(engine.sync_engine, "before_cursor_execute", collect)
        return sent


class CountingProxy:
    """A reverse proxy over real HTTP in front of `upstream` (e.g. LiveKit), counting the
    requests it forwards by path (`requests`); run on the test's event loop. After `stop()`
    its port refuses connections (the upstream looks unreachable)."""

    #: Headers not forwarded (hop-by-hop, or recomputed by the client).
    SKIPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: collections.Counter[str] = collections.Counter()
        self._runner: Any = None
        self._session: Any = None

    async def start(self) -> CountingProxy:
        from aiohttp import ClientSession, web

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = ClientSession()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forward(self, request: Any) -> Any:
        from aiohttp import web

        self.requests[request.path] += 1
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in self.SKIPPED_HEADERS
        }
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "application/octet-stream")
            return web.Response(
                status=answer.status, body=body, headers={"Content-Type": content_type}
            )


class LocalJWKS:
    """An identity provider's JWKS endpoint (RFC 7517) over real HTTP on a free loopback
    port, in a thread: `GET /jwks` (at `url`) answers `status` with `document` as JSON
    (200 and {"keys": []} at first) and counts the requests in `fetches`. While `gate` is
    clear each answer waits for it (set at first): a test holds a fetch open with
    `gate.clear()` and lets it finish with `gate.set()`; `requested` is set by the first
    request that arrives."""

    def __init__(self) -> None:
        import http.server

        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()
        self.requested = threading.Event()
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                import json

                jwks.fetches += 1
                jwks.requested.set()
                jwks.gate.wait(timeout=30)
                body = json.dumps(jwks.document).encode()
                self.send_response(jwks.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LocalJWKS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class Subscriber:
    """An app's webhook endpoint over real HTTP on a free loopback port, in a thread: every
    POST is verified with the `standardwebhooks` library against `secrets` (any of them)
    and recorded in `received` (`Delivery`s: headers, body, whether it verified), then
    answered as `respond(delivery)` says: `(status, headers, delay_seconds)`, 204 at once
    by default. `url` is its base URL; `path` the one to register (`/hook`)."""

    @dataclasses.dataclass
    class Delivery:
        """One POST received."""

        path: str
        headers: dict[str, str]
        body: bytes
        verified: bool

    def __init__(self, secrets: list[str] | None = None, tls: Any = None) -> None:
        """`tls`: an `ssl.SSLContext` to serve HTTPS with (`url` is then `https://localhost`);
        the server names clients asked for (SNI) are collected in `server_names`."""
        import http.server

        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.secrets: list[str] = list(secrets or [])
        self.received: list[Subscriber.Delivery] = []
        self.respond: Callable[[Subscriber.Delivery], tuple[int, dict[str, str], float]] = (
            lambda _delivery: (204, {}, 0.0)
        )
        self.release = threading.Event()  # set: any delay ends at once
        subscriber = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                for secret in subscriber.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        continue
                delivery = Subscriber.Delivery(self.path, headers, body, verified)
                subscriber.received.append(delivery)
                status, extra, delay = subscriber.respond(delivery)
                if delay:
                    subscriber.release.wait(timeout=delay)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.server_names: list[str | None] = []
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.url = f"https://localhost:{port}"
        self.path = f"{self.url}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def event_ids(self) -> list[str]:
        """The `id` of every event received, in order of arrival."""
        import json

        return [json.loads(d.body)["id"] for d in self.received]

    def webhook_ids(self) -> dict[str, set[str]]:
        """The `webhook-id`s received for each event id (one per event: stable on retries)."""
        import json

        found: dict[str, set[str]] = {}
        for delivery in self.received:
            event_id = json.loads(delivery.body)["id"]
            found.setdefault(event_id, set()).add(delivery.headers["webhook-id"])
        return found


# --- Service processes and signed webhooks (event store tests) -----------------------------


class ServiceProcess:
    """`python -m app` in a process of its own (a replica), configured by `env` only; its
    working directory is a temp dir, so no `.env` file is read. `url` is its base URL.
    With `uvicorn_factory`, uvicorn's own command line serves the app instead
    (`python -m uvicorn app.main:create_app --factory`, its options left at their defaults),
    as an operator may run it."""

    def __init__(self, env: dict[str, str], *, uvicorn_factory: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir = Path(tempfile.mkdtemp(prefix="service-"))
        env = {
            **os.environ,
            "LOG_LEVEL": "warning",
            "RECONCILE_INTERVAL_SECONDS": "0",  # unless `env` turns it on
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        args = [sys.executable, "-m", "app"]
        if uvicorn_factory:
            args = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = ManagedProcess("service", args, workdir, env=env, cwd=workdir)

    def start(self) -> ServiceProcess:
        """Spawn the process and wait until it answers /healthz (its lifespan is done)."""
        self.process.start(http_ok(f"{self.url}/healthz"))
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL the service (a crash: no shutdown of its own)."""
        self.process.kill()

    def log_tail(self) -> str:
        return self.process.log_tail()


@contextlib.contextmanager
def replica_pair(env: dict[str, str]) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two service processes with the same `env` (e.g. one PostgreSQL `DATABASE_URL`),
    started side by side and stopped afterwards."""
    pair = (ServiceProcess(env), ServiceProcess(env))
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServiceProcess.start, pair))
        yield pair
    finally:
        for process in pair:
            process.stop()


def signed_webhook(
    body: bytes,
    *,
    api_key: str,
    api_secret: str,
    sha256: str | None = None,
    ttl_seconds: int = 300,
) -> str:
    """A LiveKit webhook Authorization value: a JWT from livekit-api's `AccessToken` with
    `sha256` = base64(SHA-256(body)) unless given."""
    import base64
    import datetime as dt
    import hashlib

    from livekit import api  # the SDK signs here, as LiveKit's own servers do

    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(api_key, api_secret).with_ttl(dt.timedelta(seconds=ttl_seconds))
    return token.with_sha256(digest if sha256 is None else sha256).to_jwt()


async def post_webhooks(http: httpx.AsyncClient, events: list[dict[str, object]]) -> None:
    """POST each LiveKit WebhookEvent (JSON data) to `/v1/webhooks/livekit`, signed with the
    test API key as LiveKit signs them; asserts each is answered 200."""
    import json

    from tests.stack import API_KEY, API_SECRET

    for event in events:
        body = json.dumps(event).encode()
        headers = {
            "Authorization": signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET),
            "Content-Type": "application/webhook+json",
        }
        response = await http.post("/v1/webhooks/livekit", content=body, headers=headers)
        assert response.status_code == 200, response.text


def webhook_body(
    event_id: str, event: str = "room_started", room: str = "room-a", **extra: object
) -> bytes:
    """A LiveKit WebhookEvent body as LiveKit sends it (protojson, camelCase)."""
    import json

    data: dict[str, object] = {
        "event": event,
        "id": event_id,
        "createdAt": str(int(time.time())),
        "room": {"sid": f"RM_{event_id}", "name": room},
        **extra,
    }
    return json.dumps(data).encode()


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The Server-Sent Events of a streaming `response`, each frame as a dict of its fields
    ("event", "id", "data", "retry"); comments such as keep-alives are skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
