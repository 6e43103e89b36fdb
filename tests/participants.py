"""Real participants: the `livekit` realtime SDK joining rooms with tokens from the service."""

from __future__ import annotations

import array
import asyncio
import contextlib
import math
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
async def joined(
    server_url: str, token: str, *, auto_subscribe: bool = True
) -> AsyncIterator[rtc.Room]:
    """A connected `rtc.Room` for the duration of the block; disconnects afterwards.
    With `auto_subscribe=False` the participant receives only what it is subscribed to."""
    room = rtc.Room()
    await room.connect(server_url, token, rtc.RoomOptions(auto_subscribe=auto_subscribe))
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


@asynccontextmanager
async def publish_tone(
    room: rtc.Room, name: str = "tone"
) -> AsyncIterator[rtc.LocalTrackPublication]:
    """Publish a microphone track that carries a 440 Hz tone (48 kHz mono, 10 ms frames)
    for the duration of the block, so subscribers receive real audio."""
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track(name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)
    # 100 ms hold exactly 44 periods of 440 Hz, so the samples loop seamlessly
    tone = memoryview(
        array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(4800)))
    )

    async def feed() -> None:
        offset = 0
        while True:
            frame = rtc.AudioFrame.create(48000, 1, 480)
            frame.data[:] = tone[offset : offset + 480]
            offset = (offset + 480) % len(tone)
            await source.capture_frame(frame)

    feeder = asyncio.create_task(feed())
    try:
        yield publication
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


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


def recorder(room: rtc.Room, *events: str) -> list[tuple]:
    """A list that every later `events` emitted by `room` is appended to, as
    `(event, *args)`; read it with `wait_for`."""
    seen: list[tuple] = []
    for event in events:
        room.on(event, lambda *args, _event=event: seen.append((_event, *args)))
    return seen
