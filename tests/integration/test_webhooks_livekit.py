"""Real webhooks: the LiveKit server posts a room's life to the live service, which verifies
and stores each event once, in order."""

from __future__ import annotations

import secrets

import pytest
from livekit import api

from tests.conftest import API_KEY, API_SECRET, auth
from tests.participants import fetch_token, joined, publish_audio, wait_for

pytestmark = pytest.mark.integration

LIFE = [
    "room_started",
    "participant_joined",
    "track_published",
    "participant_left",
    "room_finished",
]


async def test_a_rooms_life_arrives_from_livekit_once_and_in_order(client, livekit_server):
    room_name = f"webhooks-{secrets.token_hex(4)}"

    async def types() -> list[str]:
        response = await client.get(
            "/v1/webhooks/events", params={"room_name": room_name}, headers=auth("events")
        )
        assert response.status_code == 200, response.text
        return [event["event"] for event in reversed(response.json()["items"])]

    token = await fetch_token(client, room_name, "alice")
    async with joined(token["server_url"], token["participant_token"]) as room:
        await publish_audio(room)
        await wait_for(lambda: _has(types, "track_published"), timeout=20)
    await wait_for(lambda: _has(types, "participant_left"), timeout=20)
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as livekit:
        await livekit.room.delete_room(api.DeleteRoomRequest(room=room_name))
    await wait_for(lambda: _has(types, "room_finished"), timeout=20)

    response = await client.get(
        "/v1/webhooks/events", params={"room_name": room_name}, headers=auth("events")
    )
    events = list(reversed(response.json()["items"]))
    assert [e["event"] for e in events if e["event"] in LIFE] == LIFE
    assert len({e["id"] for e in events}) == len(events)
    joined_event = next(e for e in events if e["event"] == "participant_joined")
    assert joined_event["participant_identity"] == "alice"
    assert joined_event["payload"]["room"]["name"] == room_name
    published = next(e for e in events if e["event"] == "track_published")
    assert published["payload"]["track"]["source"] == "MICROPHONE"
    assert all(e["room_name"] == room_name for e in events)


async def _has(types, event_type: str) -> bool:
    return event_type in await types()
