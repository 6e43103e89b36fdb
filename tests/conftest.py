"""Shared fixtures: the integration tier's `Stack` (Redis, real LiveKit in dev mode posting
webhooks to the service over real HTTP) and its clients, in-process clients with their own
settings, and the other real components a test may ask for.

Service keys, `auth(name)` and `make_settings` are `tests.stack`'s, named here too.
"""

from __future__ import annotations

import functools
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

from app.core.devserver import LocalLiveKit, LocalPostgres
from app.core.logs import configure_logging
from tests.components import (
    LiveService,
    LocalJWKS,
    LocalRedis,
    LocalSeaweedFS,
    LocalTestServer,
    Subscriber,
)
from tests.stack import API_KEY as API_KEY
from tests.stack import API_SECRET as API_SECRET
from tests.stack import KEYS as KEYS
from tests.stack import Stack, asgi_client, make_settings
from tests.stack import auth as auth
from tests.stack import service_keys as service_keys
from tests.stack import serving as serving

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The integration tier's stack: Redis, LiveKit posting webhooks to the live service."""
    with Stack(tmp_path_factory.mktemp("live"), services=("live",)) as stack:
        yield stack


@pytest.fixture(scope="session")
def redis_server(live_stack: Stack) -> LocalRedis:
    """A real Redis for LiveKit (SIP, ingress and egress APIs need one)."""
    return live_stack.redis


@pytest.fixture(scope="session")
def livekit_server(live_stack: Stack) -> LocalLiveKit:
    """`livekit-server --dev` with Redis, posting webhooks to the live service."""
    return live_stack.livekit


@pytest.fixture(scope="session")
def live_service(live_stack: Stack) -> LiveService:
    """The service over real HTTP, against the real LiveKit server."""
    return live_stack.service()


@pytest.fixture
async def client(live_service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the live service."""
    async with live_service.client() as http:
        yield http


@pytest.fixture
def app_client(tmp_path: Path) -> Callable[..., Any]:
    """`async with app_client(livekit_url, **settings) as http:` an in-process client for an
    app with its own settings (policy, keys ...), lifespan included (`asgi_client`)."""
    return functools.partial(asgi_client, tmp_dir=tmp_path)


@pytest.fixture(scope="session")
def test_server() -> Iterator[LocalTestServer]:
    """LiveKit's SDK test server (programmable with the `X-Lk-Mock` header), accepting the
    API calls this service signs with `API_KEY`/`API_SECRET`."""
    server = LocalTestServer(API_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    """An app's webhook endpoint on loopback (`Subscriber`), for one test."""
    server = Subscriber().start()
    yield server
    server.stop()


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
