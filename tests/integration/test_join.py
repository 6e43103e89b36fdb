"""Tokens from the service are accepted by the real LiveKit server, and their grants hold."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import time_machine
from livekit import rtc
from livekit.rtc.participant import PublishTrackError

from tests.conftest import auth
from tests.participants import fetch_token, joined, publish_audio

pytestmark = pytest.mark.integration


async def test_participant_joins_with_token_from_token_endpoint(client, livekit_server):
    body = await fetch_token(client, "join-room", "alice")
    assert body["server_url"].startswith("ws://127.0.0.1:")
    async with joined(body["server_url"], body["participant_token"]) as room:
        assert room.connection_state == rtc.ConnectionState.CONN_CONNECTED
        assert room.local_participant.identity == "alice"
        assert room.name == "join-room"
        publication = await publish_audio(room)
        assert publication.sid.startswith("TR_")


async def test_non_ascii_text_in_a_token_reaches_the_server_as_written(client, livekit_server):
    # the claims are UTF-8 JSON (app.core.jsonbytes.compact_json), not \\u escapes
    room_name, identity, name = "salle-é-🎙", "zoë-🙂", "Zoë Ünal"
    body = await fetch_token(client, room_name, identity, participant_name=name)
    async with joined(body["server_url"], body["participant_token"]) as room:
        assert room.connection_state == rtc.ConnectionState.CONN_CONNECTED
        assert room.name == room_name
        assert room.local_participant.identity == identity
        assert room.local_participant.name == name


async def test_subscribe_only_policy_cannot_publish(app_client, client, livekit_server):
    policy = {"anonymous": {"can_publish": False, "can_publish_data": False}}
    async with app_client(livekit_server.url, token_policy=policy) as http:
        body = await fetch_token(http, "subscribe-only-room", "viewer")
    watcher = await fetch_token(client, "subscribe-only-room", "watcher")
    async with (
        joined(body["server_url"], body["participant_token"]) as room,
        joined(watcher["server_url"], watcher["participant_token"]) as watching,
    ):
        assert room.local_participant.permissions.can_publish is False
        with pytest.raises(PublishTrackError):
            await asyncio.wait_for(publish_audio(room), timeout=30)
        assert not room.local_participant.track_publications
        assert not watching.remote_participants["viewer"].track_publications
        assert not room.local_participant.track_publications


async def test_expired_token_is_refused_by_the_server(app_client, livekit_server):
    async with app_client(livekit_server.url) as http:
        # mint as if it were two hours ago: the 10 minute token expired long since
        with time_machine.travel(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), tick=True):
            response = await http.post(
                "/v1/tokens",
                json={"identity": "late", "video": {"room": "expired-room", "room_join": True}},
                headers=auth("minter"),
            )
    assert response.status_code == 201
    token = response.json()
    assert dt.datetime.fromisoformat(token["expires_at"]) < dt.datetime.now(dt.UTC)
    room = rtc.Room()
    with pytest.raises(rtc.ConnectError):
        await room.connect(token["server_url"], token["token"])
