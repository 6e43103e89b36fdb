"""LiveKit's real webhooks relayed: the LiveKit server posts a room's life to the live
service, which stores each event and relays it, signed, to the app's endpoint (a subscriber
on loopback verifying with the `standardwebhooks` library), as LiveKit sent it."""

from __future__ import annotations

import json
import secrets

import pytest
from livekit import api

from tests.conftest import API_KEY, API_SECRET, auth
from tests.participants import fetch_token, joined, wait_for

pytestmark = pytest.mark.integration


async def test_a_rooms_life_from_livekit_reaches_the_apps_endpoint(
    client, livekit_server, subscriber
):
    room_name = f"relay-{secrets.token_hex(4)}"
    created = await client.post(
        "/v1/webhooks/endpoints",
        json={"url": subscriber.path, "room_name_pattern": room_name},
        headers=auth("hooks"),
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    subscriber.secrets = [created.json()["signing_secret"]]
    try:

        def relayed() -> list[str]:
            return [json.loads(d.body)["event"] for d in subscriber.received]

        token = await fetch_token(client, room_name, "alice")
        async with joined(token["server_url"], token["participant_token"]):
            await wait_for(lambda: "participant_joined" in relayed(), timeout=20)
        async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as livekit:
            await livekit.room.delete_room(api.DeleteRoomRequest(room=room_name))
        await wait_for(lambda: "room_finished" in relayed(), timeout=20)

        assert {"room_started", "participant_joined", "room_finished"} <= set(relayed())
        assert all(d.verified for d in subscriber.received)
        bodies = [json.loads(d.body) for d in subscriber.received]
        assert all(b["room"]["name"] == room_name for b in bodies)
        stored = await client.get(
            "/v1/webhooks/events", params={"room_name": room_name}, headers=auth("events")
        )
        assert {e["id"] for e in stored.json()["items"]} >= {b["id"] for b in bodies}
        # the body is the event as LiveKit sent it (protojson)
        joined_event = next(b for b in bodies if b["event"] == "participant_joined")
        assert joined_event["participant"]["identity"] == "alice"
        assert len({d.headers["webhook-id"] for d in subscriber.received}) == len(bodies)
    finally:
        await client.delete(f"/v1/webhooks/endpoints/{endpoint_id}", headers=auth("hooks"))
