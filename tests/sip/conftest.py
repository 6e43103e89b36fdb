"""Fixtures of the SIP tier: a LiveKit server with Redis whose WebRTC offers the network
namespace's address, LiveKit's SIP server attached to it, the service over real HTTP in
front of that LiveKit (one `Stack`), and SIP phones (SIPp) started per test. Every process
is stopped by PID: the stack's at the end of the session, the last started first; a phone
when its test ends. Run inside `scripts/in-netns.sh` (as `make test` does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from app.core.devserver import LocalLiveKit
from tests.components import LiveService
from tests.sip.components import LocalSipServer, Phone, netns_address
from tests.stack import API_KEY, API_SECRET, Stack


@pytest.fixture(scope="session")
def sip_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The SIP tier's stack: a Redis of its own (so its LiveKit server does not cluster with
    the other tiers' server), LiveKit offering the namespace's address, the service."""
    workdir = tmp_path_factory.mktemp("sip")
    with Stack(workdir, services=("sip",), webhooks=False, node_ip=netns_address()) as stack:
        yield stack


@pytest.fixture(scope="session")
def sip_livekit(sip_stack: Stack) -> LocalLiveKit:
    """`livekit-server --dev --node-ip 192.0.2.1` (the namespace's address) with Redis."""
    return sip_stack.livekit


@pytest.fixture(scope="session")
def sip_server(sip_stack: Stack) -> LocalSipServer:
    """LiveKit's SIP server attached to `sip_livekit` and its Redis."""
    ws_url = sip_stack.livekit.url.replace("http://", "ws://", 1)
    redis = sip_stack.redis.address
    server = LocalSipServer(ws_url=ws_url, api_key=API_KEY, api_secret=API_SECRET, redis=redis)
    return sip_stack.start(server)


@pytest.fixture(scope="session")
def sip_service(sip_server: LocalSipServer, sip_stack: Stack) -> LiveService:
    """The service over real HTTP in front of `sip_livekit` (its SIP server running)."""
    return sip_stack.service()


@pytest.fixture
async def sip_client(sip_service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `sip_service`; calls may ring for a while."""
    async with sip_service.client(timeout=90) as http:
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
