"""Shared fixtures: real LiveKit (dev mode, with Redis), the service over real HTTP, and
in-process clients with their own settings.

Service keys available to every test (see `KEYS`): `admin` (all scopes), `reader`
(`rooms:read`), `issuer` (`tokens:issue`), `events` (`webhooks:read`), `nobody` (none),
`minter` (`tokens:admin`), `room-writer` (`rooms:write`), `sip-writer` (`sip:write`),
`ingress-writer` (`ingress:write`), `recordings-reader` (`recordings:read`).
Use `auth("reader")` for the header.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager

from app.config.settings import Settings
from app.core.devserver import LocalLiveKit, LocalPostgres
from app.core.logs import configure_logging
from app.main import create_app
from tests.components import LiveService, LocalJWKS, LocalRedis, LocalSeaweedFS, LocalTestServer

API_KEY = "APItestkey"
API_SECRET = secrets.token_urlsafe(32)
IN_CI = os.environ.get("CI") == "true"

KEYS: dict[str, tuple[str, list[str]]] = {
    "admin": (secrets.token_urlsafe(32), ["admin"]),
    "reader": (secrets.token_urlsafe(32), ["rooms:read"]),
    "issuer": (secrets.token_urlsafe(32), ["tokens:issue"]),
    "events": (secrets.token_urlsafe(32), ["webhooks:read"]),
    "nobody": (secrets.token_urlsafe(32), []),
    "minter": (secrets.token_urlsafe(32), ["tokens:admin"]),
    "room-writer": (secrets.token_urlsafe(32), ["rooms:write"]),
    "sip-writer": (secrets.token_urlsafe(32), ["sip:write"]),
    "ingress-writer": (secrets.token_urlsafe(32), ["ingress:write"]),
    "recordings-reader": (secrets.token_urlsafe(32), ["recordings:read"]),
}


def auth(name: str) -> dict[str, str]:
    """The Authorization header for the test service key `name`."""
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


def service_keys() -> list[dict[str, Any]]:
    return [{"name": n, "key": k, "scopes": s} for n, (k, s) in KEYS.items()]


def make_settings(livekit_url: str, tmp_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app against `livekit_url`; `overrides` are Settings fields."""
    values: dict[str, Any] = {
        "app_env": "development",
        "livekit_url": livekit_url,
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
        "service_keys": service_keys(),
        "database_url": f"sqlite+aiosqlite:///{tmp_dir / 'events.db'}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def serving(
    livekit_url: str, tmp_dir: Path, *, port: int | None = None, **overrides: Any
) -> Iterator[LiveService]:
    """`with serving(livekit_url, tmp_dir, **overrides) as service:` the service over real
    HTTP (`LiveService`, on `port` or a free one) for `make_settings(livekit_url, tmp_dir,
    **overrides)`, stopped when the block ends."""
    service = LiveService(port).start(make_settings(livekit_url, tmp_dir, **overrides))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A real Redis for LiveKit (SIP, ingress and egress APIs need one)."""
    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_server() -> Iterator[LocalTestServer]:
    """LiveKit's SDK test server (programmable with the `X-Lk-Mock` header), accepting the
    API calls this service signs with `API_KEY`/`API_SECRET`."""
    server = LocalTestServer(API_SECRET).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_service_port() -> int:
    from app.core.devserver import free_port

    return free_port()


@pytest.fixture(scope="session")
def livekit_server(redis_server: LocalRedis, live_service_port: int) -> Iterator[LocalLiveKit]:
    """`livekit-server --dev` with Redis, posting webhooks to the live service."""
    server = LocalLiveKit(
        api_key=API_KEY,
        api_secret=API_SECRET,
        redis=redis_server.address,
        webhook_urls=[f"http://127.0.0.1:{live_service_port}/v1/webhooks/livekit"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_service(
    livekit_server: LocalLiveKit, live_service_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """The service over real HTTP, against the real LiveKit server."""
    with serving(
        livekit_server.url, tmp_path_factory.mktemp("live"), port=live_service_port
    ) as service:
        yield service


@pytest.fixture
async def client(live_service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the live service."""
    async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as http:
        yield http


@pytest.fixture
def app_client(
    tmp_path: Path,
) -> Callable[..., Any]:
    """`async with app_client(livekit_url, **settings) as http:` an in-process client for an
    app with its own settings (policy, keys ...), lifespan included."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def open_client(livekit_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(livekit_url, tmp_path, **overrides))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                http.app = app  # type: ignore[attr-defined]  # for dependency_overrides
                yield http

    return open_client


@pytest.fixture
def local_jwks() -> Iterator[LocalJWKS]:
    """An identity provider's JWKS endpoint over real HTTP (`LocalJWKS`), for one test."""
    server = LocalJWKS().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A real PostgreSQL cluster (Debian's postgresql 15) for the whole session."""
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[LocalSeaweedFS]:
    """SeaweedFS's S3 gateway on free loopback ports: the recordings store."""
    server = LocalSeaweedFS().start()
    yield server
    server.stop()


def recordings_settings(store: LocalSeaweedFS, bucket: str, **more: Any) -> dict[str, Any]:
    """Settings fields that point the recordings catalog (and the default egress upload)
    at `bucket` of `store` (created here), plus `more`."""
    store.create_bucket(bucket)
    return {
        "recordings_s3_endpoint": store.endpoint,
        "recordings_s3_bucket": bucket,
        "recordings_s3_region": store.region,
        "recordings_s3_access_key": store.access_key,
        "recordings_s3_secret": store.secret,
        **more,
    }


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> str:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database(f"test_{secrets.token_hex(6)}")


class CountingStream(io.BytesIO):
    """A binary stream that counts its writes (each one a system call on a real file)."""

    writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


@contextmanager
def log_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, log_format: str
) -> Iterator[CountingStream]:
    """Logging configured as `python -m app` configures it (LOG_FORMAT `log_format`, INFO),
    with the process's stderr over the `CountingStream` yielded; the logging set-up is
    restored afterwards."""
    stream = CountingStream()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(stream, write_through=True))
    root, uvicorn_access = logging.getLogger(), logging.getLogger("uvicorn.access")
    handlers, level, disabled = root.handlers[:], root.level, uvicorn_access.disabled
    try:
        configure_logging(make_settings("http://127.0.0.1:9", tmp_path, log_format=log_format))
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
        uvicorn_access.disabled = disabled


@pytest.fixture
def json_log_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CountingStream]:
    """The JSON lines logged during the test (`log_output`, as in production)."""
    with log_output(monkeypatch, tmp_path, "json") as stream:
        yield stream


@pytest.fixture
def text_log_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CountingStream]:
    """The text lines logged during the test (`log_output`, as in development)."""
    with log_output(monkeypatch, tmp_path, "text") as stream:
        yield stream
