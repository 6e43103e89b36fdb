"""Sessions from a real room's life: LiveKit's own webhooks (two participants joining and
leaving, one reconnecting) give the expected session and participant timeline, and the
same events delivered again shuffled and repeated, to another store, give the same result;
`GET /v1/usage` agrees with the session's timeline."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets

import pytest
from livekit import api

from tests.components import post_webhooks
from tests.conftest import API_KEY, API_SECRET, auth
from tests.participants import fetch_token, joined, publish_audio, wait_for

pytestmark = pytest.mark.integration

when = dt.datetime.fromisoformat

UNUSED_LIVEKIT = "http://127.0.0.1:9"


async def test_a_real_rooms_life_gives_its_session(client, livekit_server, app_client):
    room_name = f"sessions-{secrets.token_hex(4)}"
    alice = await fetch_token(client, room_name, "alice", participant_name="Alice")
    bob = await fetch_token(client, room_name, "bob")
    async with joined(alice["server_url"], alice["participant_token"]) as first:
        await publish_audio(first)
        session_id = await first.sid
        first_sid = first.local_participant.sid
        async with joined(bob["server_url"], bob["participant_token"]) as bobs:
            bob_sid = bobs.local_participant.sid
            await first.disconnect()  # alice drops ...
            again = await fetch_token(client, room_name, "alice", participant_name="Alice")
            async with joined(again["server_url"], again["participant_token"]) as second:
                second_sid = second.local_participant.sid  # ... and comes back
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as livekit:
        await livekit.room.delete_room(api.DeleteRoomRequest(room=room_name))

    async def ended() -> bool:
        response = await client.get(
            "/v1/sessions", params={"room_name": room_name}, headers=auth("admin")
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        return (
            bool(items)
            and items[0]["ended_at"] is not None
            and (
                items[0]["num_participants"],
                items[0]["num_active_participants"],
            )
            == (2, 0)
        )

    await wait_for(ended, timeout=60, interval=0.5)
    details = await client.get(f"/v1/sessions/{session_id}", headers=auth("admin"))
    assert details.status_code == 200, details.text
    session = details.json()
    assert (session["session_id"], session["room_name"]) == (session_id, room_name)
    assert session["num_participants"] == 2 and session["end_time"] is not None
    people = {p["participant_identity"]: p for p in session["participants"]}
    assert set(people) == {"alice", "bob"}
    alice_sessions = people["alice"]["sessions"]
    assert [s["participant_sid"] for s in alice_sessions] == [first_sid, second_sid]
    assert all(s["left_at"] is not None for s in alice_sessions)
    assert when(alice_sessions[0]["left_at"]) <= when(alice_sessions[1]["joined_at"])
    assert people["alice"]["joined_at"] == alice_sessions[0]["joined_at"]
    assert people["alice"]["left_at"] == alice_sessions[1]["left_at"]
    assert people["alice"]["participant_name"] == "Alice"
    assert people["alice"]["published_sources"]["microphone"] is True
    assert [s["participant_sid"] for s in people["bob"]["sessions"]] == [bob_sid]
    assert people["bob"]["published_sources"] == dict.fromkeys(
        ("camera", "microphone", "screen_share", "screen_share_audio"), False
    )
    assert session["egress"] == []
    listed = await client.get(
        "/v1/sessions", params={"room_name": room_name}, headers=auth("admin")
    )
    summary = listed.json()["items"][0]
    assert summary["num_participants"] == 2 and summary["num_active_participants"] == 0
    assert summary["egress"] == "never"

    # usage over the session's life agrees with its timeline
    start = when(session["start_time"]) - dt.timedelta(minutes=1)
    window = {
        "start": start.isoformat(),
        "end": (when(session["end_time"]) + dt.timedelta(minutes=1)).isoformat(),
        "room_name": room_name,
    }
    usage = {}
    for group_by in ("room", "identity", "day"):
        response = await client.get(
            "/v1/usage", params={**window, "group_by": group_by}, headers=auth("admin")
        )
        assert response.status_code == 200, response.text
        usage[group_by] = {item["key"]: item for item in response.json()["items"]}
    total = sum(p["duration_seconds"] for p in session["participants"]) / 60
    room_usage = usage["room"][room_name]
    assert room_usage["participant_minutes"] == pytest.approx(total, abs=2e-3)
    assert room_usage["sessions"] == 1 and room_usage["sip_minutes"] == 0
    assert room_usage["egress_minutes"] == {} and room_usage["ingress_minutes"] == 0
    connections = [
        (when(c["joined_at"]), when(c["left_at"]))
        for p in session["participants"]
        for c in p["sessions"]
    ]
    assert room_usage["peak_concurrent_participants"] == max(
        sum(1 for a, b in connections if a <= t < b) for t, _ in connections
    )
    for person in session["participants"]:
        # LiveKit stamps a leave in whole seconds: a connection may last no time at all
        nothing = {"participant_minutes": 0.0, "sessions": 0}
        mine = usage["identity"].get(person["participant_identity"], nothing)
        assert mine["participant_minutes"] == pytest.approx(
            person["duration_seconds"] / 60, abs=2e-3
        )
        assert mine["sessions"] == (1 if person["duration_seconds"] else 0)
    assert sum(d["participant_minutes"] for d in usage["day"].values()) == pytest.approx(
        total, abs=4e-3
    )

    # the same webhooks again, shuffled and repeated, into another store
    events = await client.get(
        "/v1/webhooks/events", params={"room_name": room_name, "limit": 500}, headers=auth("admin")
    )
    payloads = [event["payload"] for event in events.json()["items"]]
    assert {"room_started", "participant_left", "room_finished"} <= {p["event"] for p in payloads}
    rng = random.Random(7)
    delivery = payloads + rng.sample(payloads, k=len(payloads) // 2)
    rng.shuffle(delivery)
    async with app_client(UNUSED_LIVEKIT) as other:
        await post_webhooks(other, [json.loads(json.dumps(p)) for p in delivery])
        replayed = await other.get(f"/v1/sessions/{session_id}", headers=auth("admin"))
        relisted = await other.get("/v1/sessions", headers=auth("admin"))
    assert replayed.json() == session
    assert relisted.json()["items"] == [summary]
