"""The event streams of a process share one reader of the store (`app.events.streams`): N open
streams cost one database read per interval, not N; each gets every new event it asks for,
a slow one neither blocks the others nor loses an event (late commits: test_stream_commit_order);
and a service key holds at most STREAM_MAX_PER_KEY open streams (429 beyond)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.events.streams import EventFollower
from app.events.webhooks import stream_start
from app.store.engine import Store
from schemas.webhooks import EventFilters
from tests.components import LiveService, webhook_body
from tests.conftest import auth, serving
from tests.integration.test_store_outage import until
from tests.integration.test_stream_commit_order import WAIT_SECONDS, row
from tests.integration.test_webhooks_stream import STREAM, post_event, stream

pytestmark = pytest.mark.integration


def event_reads(service: LiveService) -> list[str]:
    """A list collecting every read of `webhook_events` the service's engine sends from
    now on."""

    def is_event_read(statement: str) -> bool:
        text = statement.lstrip().upper()
        return text.startswith("SELECT") and "WEBHOOK_EVENTS" in text

    return service.statements(is_event_read)


async def test_open_streams_get_every_event_and_share_one_read_per_interval(
    livekit_server, tmp_path
):
    with serving(livekit_server.url, tmp_path, stream_max_per_key=10) as service:
        url = service.url
        async with contextlib.AsyncExitStack() as opened:
            everything = [await opened.enter_async_context(stream(url)) for _ in range(6)]
            room_b = [
                await opened.enter_async_context(stream(url, room_name="b")) for _ in range(2)
            ]
            sent = [("EV_f1", "a"), ("EV_f2", "b"), ("EV_f3", "a"), ("EV_f4", "b")]
            for event_id, room in sent:
                await post_event(url, webhook_body(event_id, room=room))
            for events in everything:
                assert [f["id"] for f in await events.events(4)] == [
                    "EV_f1",
                    "EV_f2",
                    "EV_f3",
                    "EV_f4",
                ]
            for events in room_b:
                assert [f["id"] for f in await events.events(2)] == ["EV_f2", "EV_f4"]

            # every stream is now served by the follower alone: count the reads
            follower: EventFollower = service.app.state.event_follower  # type: ignore[union-attr]
            reads = event_reads(service)
            polls_before, started = follower.polls, time.monotonic()
            await asyncio.sleep(8 * follower.poll_seconds)
            polls, elapsed = follower.polls - polls_before, time.monotonic() - started
            read_count = len(reads)
    assert polls >= 1
    assert read_count <= polls + 1  # the follower's reads (one may end after the count)
    assert polls <= elapsed / follower.poll_seconds + 1  # one per interval, not one per stream


async def test_a_key_holds_at_most_its_streams_and_gets_one_back_when_a_stream_closes(
    livekit_server, tmp_path
):
    with serving(livekit_server.url, tmp_path, stream_max_per_key=2) as service:
        url = service.url
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as http,
            stream(url),
            contextlib.AsyncExitStack() as second,
        ):
            await second.enter_async_context(stream(url))
            refused = await http.get(STREAM, headers=auth("events"))
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "too_many_streams"
            assert int(refused.headers["retry-after"]) >= 1
            # the cap is per service key: another key still opens one
            async with http.stream("GET", STREAM, headers=auth("admin")) as other:
                assert other.status_code == 200
            await second.aclose()  # one of the two streams closes

            async def opens() -> bool:
                async with http.stream("GET", STREAM, headers=auth("events")) as again:
                    return again.status_code == 200

            assert await until(opens, "the closed stream's place is free again")


async def test_a_slow_stream_blocks_no_one_and_misses_nothing(tmp_path: Path):
    sqlite = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await sqlite.migrate()
    follower = EventFollower(sqlite, max_streams_per_key=5, poll_seconds=0.05, queue_rows=4)
    follower.start()
    fast_seen: list[str] = []
    start = await stream_start(sqlite, None)
    slow = follower.stream(EventFilters(), start)
    fast = asyncio.create_task(collect(follower.stream(EventFilters(), start), fast_seen))
    try:
        first = asyncio.create_task(anext(slow))
        await sqlite.events.insert(row("EV_0"))
        assert (await asyncio.wait_for(first, WAIT_SECONDS)).id == "EV_0"
        # the slow stream reads nothing more while 20 events arrive: 4 fit its queue
        expected = [f"EV_{i}" for i in range(21)]
        for event_id in expected[1:]:
            await sqlite.events.insert(row(event_id))
        await wait_for_count(fast_seen, len(expected))
        assert fast_seen == expected  # the fast stream was never held back
        assert follower.subscribers == 1  # the slow one left the fan-out when its queue filled
        rest = [(await asyncio.wait_for(anext(slow), WAIT_SECONDS)).id for _ in expected[1:]]
        assert rest == expected[1:]  # read back from the store past its queue, in order
        await sqlite.events.insert(row("EV_live"))
        assert (await asyncio.wait_for(anext(slow), WAIT_SECONDS)).id == "EV_live"
        assert follower.subscribers == 2  # caught up: fed by the follower again
    finally:
        fast.cancel()
        await slow.aclose()
        await follower.aclose()
        await sqlite.aclose()


async def collect(events: AsyncIterator, ids: list[str]) -> None:
    async for event in events:
        ids.append(event.id)


async def wait_for_count(ids: list[str], count: int) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while len(ids) < count:
            await asyncio.sleep(0.02)
