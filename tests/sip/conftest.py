"""Fixtures of the SIP tier: a LiveKit server with Redis whose WebRTC offers the network
namespace's address, LiveKit's SIP server attached to it, the service over real HTTP in
front of that LiveKit, and SIP phones (SIPp) started per test. Every process is stopped by
PID when its fixture ends. Run inside `scripts/in-netns.sh` (as `make test` does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from app.core.devserver import LocalLiveKit
from tests.components import LiveService, LocalRedis
from tests.conftest import API_KEY, API_SECRET, serving
from tests.sip.components import LocalSipServer, Phone, netns_address


@pytest.fixture(scope="session")
def sip_redis() -> Iterator[LocalRedis]:
    """A Redis of the SIP tier's own, so its LiveKit server does not cluster with the other
    tiers' server."""
    redis = LocalRedis().start()
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def sip_livekit(sip_redis: LocalRedis) -> Iterator[LocalLiveKit]:
    """`livekit-server --dev --node-ip 192.0.2.1` (the namespace's address) with Redis."""
    server = LocalLiveKit(
        api_key=API_KEY, api_secret=API_SECRET, redis=sip_redis.address, node_ip=netns_address()
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sip_server(sip_livekit: LocalLiveKit, sip_redis: LocalRedis) -> Iterator[LocalSipServer]:
    """LiveKit's SIP server attached to `sip_livekit` and its Redis."""
    server = LocalSipServer(
        ws_url=sip_livekit.url.replace("http://", "ws://", 1),
        api_key=API_KEY,
        api_secret=API_SECRET,
        redis=sip_redis.address,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sip_service(
    sip_server: LocalSipServer,
    sip_livekit: LocalLiveKit,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveService]:
    """The service over real HTTP in front of `sip_livekit` (its SIP server running)."""
    with serving(sip_livekit.url, tmp_path_factory.mktemp("sip-service")) as service:
        yield service


@pytest.fixture
async def sip_client(sip_service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `sip_service`; calls may ring for a while."""
    async with httpx.AsyncClient(base_url=sip_service.url, timeout=90) as http:
        yield http


@pytest.fixture
def phone() -> Iterator[Callable[..., Phone]]:
    """`phone("answer")` starts a SIPp phone playing `scenarios/answer.xml` (arguments as
    `Phone`); every phone started is stopped when the test ends."""
    started: list[Phone] = []

    def start(scenario: str, **kwargs: object) -> Phone:
        started.append(Phone(scenario, **kwargs).start())  # type: ignore[arg-type]
        return started[-1]

    yield start
    for each in started:
        each.stop()
