"""The event stream never skips an event that commits out of order, on a real PostgreSQL.

Writers take no database-wide lock, so `seq` (handed out at insert) is not commit order: a
transaction can insert first and commit last. Followers read only up to the high-water
mark of the snapshot (`EventRepository.follow`): these tests hold a transaction open across
another one's commit and check that nothing is delivered past it, then that everything
is delivered once it commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.events.streams import EventFollower
from app.events.webhooks import stream_start
from app.store.engine import Store
from app.store.tables import webhook_events
from schemas.webhooks import EventFilters

pytestmark = pytest.mark.integration

#: Bounds every wait for the follower, so a broken stream fails instead of hanging.
WAIT_SECONDS = 30


def row(event_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "id": event_id,
        "event": "room_started",
        "room_name": "r",
        "participant_identity": None,
        "egress_id": None,
        "ingress_id": None,
        "created_at": now,
        "received_at": now,
        "body": json.dumps({"id": event_id, "event": "room_started"}),
    }


def insert(store: Store, event_id: str) -> sa.Insert:
    return store.insert(webhook_events).values(**row(event_id))


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:
    opened = Store(postgres_url)
    await opened.migrate()
    yield opened
    await opened.aclose()


async def follow_ids(store: Store, after: Any) -> tuple[list[str], Any]:
    rows = await store.events.follow(filters={}, after=after, limit=100)
    if rows:
        after = type(after)(int(rows[-1].xid), int(rows[-1].seq))
    return [r.id for r in rows], after


async def test_a_row_that_commits_late_holds_back_later_rows_until_it_commits(store):
    start = await stream_start(store, None)
    async with store.db_session() as slow:
        await slow.begin()
        await slow.execute(insert(store, "EV_first"))  # takes seq 1, stays uncommitted
        assert await store.events.insert(row("EV_second")) is True  # seq 2, committed
        seen, position = await follow_ids(store, start)
        assert seen == []  # EV_second is past the high-water mark while EV_first is in flight
        await slow.commit()
    seen, position = await follow_ids(store, position)
    assert seen == ["EV_first", "EV_second"]
    assert (await follow_ids(store, position))[0] == []


async def test_a_transaction_with_the_older_id_that_inserts_last_is_not_skipped(store):
    start = await stream_start(store, None)
    async with store.db_session() as slow:
        await slow.begin()
        await slow.execute(sa.text("SELECT pg_current_xact_id()"))  # the older xid, no row yet
        assert await store.events.insert(row("EV_early_commit")) is True
        seen, position = await follow_ids(store, start)
        assert seen == []
        await slow.execute(insert(store, "EV_late_insert"))  # a higher seq, the older xid
        await slow.commit()
    seen, _ = await follow_ids(store, position)
    assert sorted(seen) == ["EV_early_commit", "EV_late_insert"]


async def test_the_stream_delivers_every_event_of_interleaved_commits(store):
    """Many writers commit in an order unrelated to their `seq`; the event streams (two
    streams on the process's one follower) deliver each exactly once."""
    follower = EventFollower(store, max_streams_per_key=5, poll_seconds=0.05)
    follower.start()
    start = await stream_start(store, None)
    seen: tuple[list[str], list[str]] = ([], [])

    async def collect(ids: list[str]) -> None:
        async for event in follower.stream(EventFilters(), start):
            ids.append(event.id)

    streams = [asyncio.create_task(collect(ids)) for ids in seen]
    expected = {f"EV_{i}" for i in range(16)}
    held = []
    try:
        for i in range(0, 16, 2):  # every even event is inserted, then held open
            session = store.db_session()
            await session.begin()
            await session.execute(insert(store, f"EV_{i}"))
            held.append(session)
            assert await store.events.insert(row(f"EV_{i + 1}")) is True
        await asyncio.sleep(0.3)  # the follower polls meanwhile; it must not pass EV_0
        assert seen == ([], [])
        for session in reversed(held):  # commit in reverse order of seq
            await session.commit()
            await session.close()
        held = []
        async with asyncio.timeout(WAIT_SECONDS):
            while min(len(ids) for ids in seen) < len(expected):
                await asyncio.sleep(0.05)
        for ids in seen:
            assert sorted(ids) == sorted(expected)
    finally:
        for session in held:
            await session.close()
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await follower.aclose()
