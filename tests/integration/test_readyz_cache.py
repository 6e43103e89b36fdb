"""GET /readyz is cheap for anyone: within READYZ_CACHE_SECONDS a request does no I/O, and
requests arriving during a probe share it. Counted at the real components: LiveKit's
ListRooms calls at a proxy in front of the real LiveKit server, and the store's probe
writes by an SQLAlchemy listener on the service's own engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.devserver import LocalLiveKit
from tests.components import CountingProxy, LiveService, webhook_body
from tests.conftest import serving
from tests.integration.test_webhooks_stream import post_event

pytestmark = pytest.mark.integration

LIST_ROOMS = "/twirp/livekit.RoomService/ListRooms"


@pytest.fixture
async def livekit_proxy(livekit_server: LocalLiveKit) -> AsyncIterator[CountingProxy]:
    """The real LiveKit server behind a proxy that counts the calls reaching it."""
    proxy = await CountingProxy(livekit_server.url).start()
    yield proxy
    await proxy.stop()


def probe_writes(service: LiveService) -> list[str]:
    """A list that collects every write of the store's readiness probe from now on."""
    return service.statements(
        lambda statement: statement.lstrip().upper().startswith("INSERT INTO STORE_PROBE")
    )


async def test_a_hundred_requests_in_the_window_cost_one_livekit_call_and_one_write(
    livekit_proxy, tmp_path
):
    with serving(livekit_proxy.url, tmp_path, readyz_cache_seconds=60) as service:
        writes = probe_writes(service)
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            answers = await asyncio.gather(*(http.get("/readyz") for _ in range(100)))
            assert [a.status_code for a in answers] == [200] * 100
            assert {a.json()["checks"]["livekit"] for a in answers} == {"ok"}
            assert {a.json()["checks"]["event_store"] for a in answers} == {"ok"}
            assert livekit_proxy.requests[LIST_ROOMS] == 1
            assert len(writes) == 1

            # within the window, a LiveKit gone away is not even asked: the answer stands
            await livekit_proxy.stop()
            again = await http.get("/readyz")
    assert again.status_code == 200
    assert livekit_proxy.requests[LIST_ROOMS] == 1
    assert len(writes) == 1


async def test_a_stored_webhook_proves_the_store_writable_without_a_probe_write(
    livekit_proxy, tmp_path
):
    with serving(livekit_proxy.url, tmp_path, readyz_cache_seconds=60) as service:
        writes = probe_writes(service)
        await post_event(service.url, webhook_body("EV_ready"))  # committed: writable now
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["event_store"] == "ok"
    assert writes == []


async def test_a_failure_is_seen_once_the_window_has_passed(livekit_proxy, tmp_path):
    window = 0.5
    with serving(livekit_proxy.url, tmp_path, readyz_cache_seconds=window) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            await livekit_proxy.stop()  # LiveKit unreachable from now on
            await asyncio.sleep(window * 2)
            failed = await http.get("/readyz")
    assert failed.status_code == 503, failed.text
    assert failed.json() == {
        "ready": False,
        "checks": {"livekit": "failed: livekit_unavailable", "event_store": "ok"},
    }
