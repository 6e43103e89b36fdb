"""What must change with each stored event commits in the same transaction as the event
(`EventRepository.add_writer`): a writer sees each new event once, never a duplicate, and
a writer that fails rolls its events back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from app.store.engine import Store


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path):
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/events.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store(url)
    await store.migrate()
    yield store
    await store.aclose()


def row(event_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "id": event_id,
        "event": "room_started",
        "room_name": "room-a",
        "created_at": now,
        "received_at": now,
        "body": "{}",
    }


async def test_a_writer_sees_each_new_event_once(store: Store) -> None:
    seen: list[str] = []

    async def writer(session: Any, rows: list[dict[str, Any]]) -> None:
        seen.extend(values["id"] for values in rows)

    store.events.add_writer(writer)
    assert await store.events.insert(row("EV_writer_1"))
    assert not await store.events.insert(row("EV_writer_1"))
    assert await store.events.insert(row("EV_writer_2"))
    assert seen == ["EV_writer_1", "EV_writer_2"]


async def test_a_failing_writer_rolls_its_events_back(store: Store) -> None:
    async def writer(session: Any, rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("projection refused")

    store.events.add_writer(writer)
    with pytest.raises(RuntimeError):
        await store.events.insert(row("EV_writer_rollback"))
    assert await store.events.get("EV_writer_rollback") is None
