"""Tokens from the service are accepted by the real LiveKit server, and their grants hold."""

from __future__ import annotations

import pytest
from livekit import rtc

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
