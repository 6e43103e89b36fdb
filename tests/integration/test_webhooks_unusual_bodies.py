"""Signed webhook bodies with a duplicated JSON key, a NUL character or a lone surrogate,
on SQLite and a real PostgreSQL: each is refused with 400 or stored in a form that the
event list, the event itself and the stream all serve; one bad row already in the store
never breaks a page or a stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.events.streams import EventFollower
from app.store.engine import Store
from app.store.events import StreamPosition
from schemas.webhooks import EventFilters
from tests.components import signed_webhook
from tests.conftest import API_KEY, API_SECRET, auth

pytestmark = pytest.mark.integration

UNUSED_LIVEKIT = "http://127.0.0.1:9"
WEBHOOK = "/v1/webhooks/livekit"
EVENTS = "/v1/webhooks/events"
#: Bounds every wait for the stream, so a broken stream fails instead of hanging.
WAIT_SECONDS = 30

#: Bodies as raw JSON text: the escapes are LiveKit-style protojson, not Python's.
REFUSED = {
    "duplicated key in a nested object": (
        b'{"event":"room_started","id":"EV_dupkey","room":{"name":"a","name":"b"}}'
    ),
    "duplicated id": b'{"event":"room_started","id":"EV_dup_a","id":"EV_dup_b"}',
    "NUL in the room name": (
        b'{"event":"room_started","id":"EV_nulroom","room":{"name":"a\\u0000b"}}'
    ),
    "NUL in the identity": (
        b'{"event":"participant_joined","id":"EV_nulid",'
        b'"room":{"name":"r"},"participant":{"identity":"\\u0000"}}'
    ),
    "lone surrogate in metadata": (
        b'{"event":"room_started","id":"EV_surr_meta","room":{"name":"r","metadata":"\\ud800"}}'
    ),
    "lone low surrogate in the room name": (
        b'{"event":"room_started","id":"EV_surr_room","room":{"name":"x\\udc00"}}'
    ),
    "room name PostgreSQL cannot index": (
        b'{"event":"room_started","id":"EV_longroom","room":{"name":"'
        + secrets.token_hex(1500).encode()
        + b'"}}'
    ),
    "lone surrogate in an unknown field's key": (
        b'{"event":"room_started","id":"EV_surr_key","room":{"name":"r"},"\\ud801":1}'
    ),
}
NUL_IN_METADATA = (
    b'{"event":"room_started","id":"EV_nul_meta","room":{"name":"nul-room","metadata":"x\\u0000y"}}'
)
PAIRED_SURROGATES = (
    b'{"event":"room_started","id":"EV_emoji","room":{"name":"r","metadata":"\\ud83d\\ude00"}}'
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store' / 'events.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def client(app_client, database_url) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(UNUSED_LIVEKIT, database_url=database_url) as opened:
        yield opened


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {
        "Authorization": signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET),
        "Content-Type": "application/webhook+json",
    }
    return await client.post(WEBHOOK, content=body, headers=headers)


async def listed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(EVENTS, params={"limit": 500}, headers=auth("events"))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def streamed(store: Store, until_id: str) -> list[dict[str, Any]]:
    """Every event the stream's generator delivers from the start up to `until_id`."""
    events: list[dict[str, Any]] = []
    follower = EventFollower(store, max_streams_per_key=1, poll_seconds=0.05)
    follower.start()
    stream = follower.stream(EventFilters(), StreamPosition(-1, 0))
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            async for event in stream:
                events.append(event.model_dump(mode="json"))
                if event.id == until_id:
                    break
    finally:
        await stream.aclose()
        await follower.aclose()
    return events


@pytest.mark.parametrize("case", list(REFUSED))
async def test_an_unservable_body_is_400_and_nothing_is_stored(client, case):
    response = await post(client, REFUSED[case])
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "webhook_malformed"
    assert await listed(client) == []


async def test_a_nul_in_metadata_and_paired_surrogates_are_served_back_by_every_route(client):
    for body in (NUL_IN_METADATA, PAIRED_SURROGATES):
        response = await post(client, body)
        assert response.status_code == 200, response.text
    expected = {"EV_nul_meta": "x\x00y", "EV_emoji": "\U0001f600"}
    page = {e["id"]: e["payload"]["room"]["metadata"] for e in await listed(client)}
    assert page == expected
    for event_id, metadata in expected.items():
        one = await client.get(f"{EVENTS}/{event_id}", headers=auth("events"))
        assert one.status_code == 200, one.text
        assert one.json()["payload"]["room"]["metadata"] == metadata
    filtered = await client.get(EVENTS, params={"room_name": "nul-room"}, headers=auth("events"))
    assert [e["id"] for e in filtered.json()["items"]] == ["EV_nul_meta"]
    stream = await streamed(client.app.state.store, "EV_emoji")
    assert {e["id"]: e["payload"]["room"]["metadata"] for e in stream} == expected


async def test_one_bad_row_never_breaks_a_page_or_the_stream(client):
    """A row stored by an older version that this one would refuse (a duplicated key, a
    payload protobuf rejects, a lone surrogate) is served with its id and event type."""
    store: Store = client.app.state.store
    now = dt.datetime.now(dt.UTC)
    bad_bodies = {
        "EV_legacy_dup": '{"event":"room_started","id":"EV_legacy_dup","id":"EV_legacy_dup"}',
        "EV_legacy_type": '{"event":"room_started","id":"EV_legacy_type","room":{"name":5}}',
        "EV_legacy_surr": (
            '{"event":"room_started","id":"EV_legacy_surr","room":{"metadata":"\\udfff"}}'
        ),
        "EV_legacy_text": "not json",
    }
    for event_id, body in bad_bodies.items():
        row = {
            "id": event_id,
            "event": "room_started",
            "room_name": None,
            "participant_identity": None,
            "egress_id": None,
            "ingress_id": None,
            "created_at": now,
            "received_at": now,
            "body": body,
        }
        assert await store.events.insert(row) is True
    good = b'{"event":"room_finished","id":"EV_after","room":{"name":"r"}}'
    assert (await post(client, good)).status_code == 200
    page = await listed(client)
    assert [e["id"] for e in page] == ["EV_after", *reversed(bad_bodies)]
    for event in page[1:]:
        assert event["payload"]["id"] == event["id"]
        assert event["payload"]["event"] == "room_started"
    for event_id in bad_bodies:
        one = await client.get(f"{EVENTS}/{event_id}", headers=auth("events"))
        assert one.status_code == 200, one.text
    stream = await streamed(store, "EV_after")
    assert [e["id"] for e in stream] == [*bad_bodies, "EV_after"]


async def test_a_row_the_database_refuses_fails_only_its_own_request(client, database_url):
    """Rows posted together are committed together; when the database refuses one of them
    (here a row written past the parser: an id PostgreSQL cannot index, a NULL where the
    column forbids it on SQLite), only that caller fails and the others are stored."""
    store: Store = client.app.state.store
    now = dt.datetime.now(dt.UTC)

    def row(event_id: str) -> dict[str, Any]:
        return {
            "id": event_id, "event": "room_started", "room_name": "r",
            "participant_identity": None, "egress_id": None, "ingress_id": None,
            "created_at": now, "received_at": now, "body": "{}",
        }  # fmt: skip

    bad = row(secrets.token_hex(3000))  # no B-tree index entry holds 6000 random bytes
    if database_url.startswith("sqlite"):
        bad["event"] = None  # NOT NULL
    good = [row(f"EV_batch_{i}") for i in range(8)]
    outcomes = await asyncio.gather(
        *(store.events.insert(values) for values in [*good[:4], bad, *good[4:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[4], Exception)
    assert outcomes[:4] + outcomes[5:] == [True] * 8
    assert sorted(e["id"] for e in await listed(client)) == sorted(r["id"] for r in good)
