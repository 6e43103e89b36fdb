"""GET /v1/webhooks/events/stream: Server-Sent Events of stored events, resumable with
Last-Event-ID; across two service processes (replicas) sharing one real PostgreSQL, and on
one service over SQLite."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.core.devserver import LocalLiveKit, LocalPostgres
from tests.components import (
    LiveService,
    ServiceProcess,
    replica_pair,
    signed_webhook,
    sse_events,
    webhook_body,
)
from tests.conftest import API_KEY, API_SECRET, auth, service_keys, serving

pytestmark = pytest.mark.integration

STREAM = "/v1/webhooks/events/stream"
#: Bounds every wait for a frame, so a broken stream fails instead of hanging.
FRAME_WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def replicas(
    postgres_server: LocalPostgres, livekit_server: LocalLiveKit
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two `python -m app` processes on one fresh PostgreSQL database, started together
    (both run the migrations at once)."""
    database_url = postgres_server.create_database(f"replicas_{secrets.token_hex(4)}")
    env = {
        "APP_ENV": "development",
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "LIVEKIT_WEBHOOK_KEYS": "",
        "SERVICE_KEYS": json.dumps(service_keys()),
        "DATABASE_URL": database_url,
    }
    with replica_pair(env) as pair:
        yield pair


@pytest.fixture(scope="module")
def sqlite_service(livekit_server: LocalLiveKit, tmp_path_factory) -> Iterator[LiveService]:
    with serving(livekit_server.url, tmp_path_factory.mktemp("stream")) as service:
        yield service


async def post_event(base_url: str, body: bytes) -> dict[str, Any]:
    headers = {
        "Authorization": signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET),
        "Content-Type": "application/webhook+json",
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post("/v1/webhooks/livekit", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


class Stream:
    """An open event stream: `await next_event()` returns the next event frame."""

    def __init__(self, frames: AsyncIterator[dict[str, str]]) -> None:
        self._frames = frames

    async def next_frame(self) -> dict[str, str]:
        async with asyncio.timeout(FRAME_WAIT_SECONDS):
            return await anext(self._frames)

    async def next_event(self) -> dict[str, str]:
        while "data" not in (frame := await self.next_frame()):
            pass
        return frame

    async def events(self, count: int) -> list[dict[str, str]]:
        return [await self.next_event() for _ in range(count)]


@asynccontextmanager
async def stream(
    base_url: str, last_event_id: str | None = None, **params: str
) -> AsyncIterator[Stream]:
    """Open the stream and wait for its first frame (`retry:`): from then on, every event
    stored is delivered."""
    headers = auth("events")
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as client,
        client.stream("GET", STREAM, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        opened = Stream(sse_events(response))
        assert (await opened.next_frame()) == {"retry": "1000"}
        yield opened


def _ids(frames: list[dict[str, str]]) -> list[str]:
    return [frame["id"] for frame in frames]


async def test_an_event_posted_to_one_replica_appears_on_the_others_stream(replicas):
    first, second = replicas
    room = f"room-{secrets.token_hex(3)}"
    async with stream(second.url) as events:
        await post_event(first.url, webhook_body("EV_cross_1", "room_started", room=room))
        frame = await events.next_event()
    assert frame["event"] == "room_started"
    assert frame["id"] == "EV_cross_1"
    data = json.loads(frame["data"])
    assert (data["id"], data["room_name"]) == ("EV_cross_1", room)
    assert data["payload"]["room"]["name"] == room


async def test_a_resumed_stream_misses_nothing(replicas):
    first, second = replicas
    tag = secrets.token_hex(3)
    async with stream(second.url) as events:
        await post_event(first.url, webhook_body(f"EV_{tag}_0", room=tag))
        last_seen = (await events.next_event())["id"]
    assert last_seen == f"EV_{tag}_0"

    # While nobody listens, both replicas store events, some of them at the same moment.
    missed = [f"EV_{tag}_{i}" for i in range(1, 13)]
    for batch in (missed[:4], missed[4:]):
        await asyncio.gather(
            *(
                post_event(replicas[i % 2].url, webhook_body(event_id, room=tag))
                for i, event_id in enumerate(batch)
            )
        )

    async with stream(second.url, last_event_id=last_seen, room_name=tag) as events:
        replayed = await events.events(len(missed))
        await post_event(first.url, webhook_body(f"EV_{tag}_live", room=tag))
        live = await events.next_event()
    assert sorted(_ids(replayed)) == sorted(missed)
    async with httpx.AsyncClient(base_url=first.url) as client:
        listed = await client.get(
            "/v1/webhooks/events", params={"room_name": tag}, headers=auth("events")
        )
    store_order = [e["id"] for e in reversed(listed.json()["items"])]
    # Without a database-wide write lock, events stored at the same moment by two replicas
    # take `seq` (the list's order) in one order and may commit in another: the stream
    # follows commits, so within each concurrent batch the two orders may differ.
    assert store_order[0] == last_seen and store_order[-1] == f"EV_{tag}_live"
    assert sorted(store_order[1:-1]) == sorted(_ids(replayed))
    # the second batch was posted after the first had committed: it follows it
    assert set(_ids(replayed)[:4]) == set(missed[:4])
    assert set(_ids(replayed)[4:]) == set(missed[4:])
    assert live["id"] == f"EV_{tag}_live"


async def test_the_same_event_posted_to_both_replicas_at_once_is_stored_once(replicas):
    body = webhook_body(f"EV_twice_{secrets.token_hex(3)}")
    receipts = await asyncio.gather(*(post_event(replicas[i % 2].url, body) for i in range(20)))
    assert sum(not r["duplicate"] for r in receipts) == 1


async def test_stream_on_sqlite_delivers_filters_and_resumes(sqlite_service):
    url = sqlite_service.url
    async with stream(url, event="room_finished") as finished:
        await post_event(url, webhook_body("EV_s1", "room_started"))
        await post_event(url, webhook_body("EV_s2", "room_finished"))
        assert _ids([await finished.next_event()]) == ["EV_s2"]
    await post_event(url, webhook_body("EV_s3", "participant_joined"))
    async with stream(url, last_event_id="EV_s1") as resumed:
        assert _ids(await resumed.events(2)) == ["EV_s2", "EV_s3"]
    async with stream(url, last_event_id="EV_unknown") as everything:
        assert _ids(await everything.events(3)) == ["EV_s1", "EV_s2", "EV_s3"]


async def test_stream_is_not_taken_for_an_event_id(sqlite_service):
    async with httpx.AsyncClient(base_url=sqlite_service.url) as client:
        response = await client.get(STREAM)
        assert response.status_code == 401
        response = await client.get(STREAM, headers=auth("reader"))
        assert response.status_code == 403
