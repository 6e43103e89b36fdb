"""Real participants: the `livekit` realtime SDK joining rooms with tokens from the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from livekit import rtc


async def fetch_token(client: httpx.AsyncClient, room: str, identity: str, **body: object) -> dict:
    """POST /v1/token and return the JSON body (asserting 201)."""
    response = await client.post(
        "/v1/token", json={"room_name": room, "participant_identity": identity, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


@asynccontextmanager
async def joined(server_url: str, token: str) -> AsyncIterator[rtc.Room]:
    """A connected `rtc.Room` for the duration of the block; disconnects afterwards."""
    room = rtc.Room()
    await room.connect(server_url, token, rtc.RoomOptions(auto_subscribe=True))
    try:
        yield room
    finally:
        await room.disconnect()


async def publish_audio(room: rtc.Room, name: str = "mic") -> rtc.LocalTrackPublication:
    """Publish a silent microphone track (48 kHz mono) and return its publication."""
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track(name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    return await room.local_participant.publish_track(track, options)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1) -> None:
    """Poll `predicate()` (sync or async) until true; AssertionError after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
