"""Ingress with LiveKit's own ingress worker: an RTMP ingress created through the service,
pushed to by ffmpeg, publishes a participant with audio and video into the room; WHIP
create returns its URL; update and delete round-trip. Run one at a time."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.devserver import ManagedProcess
from tests.conftest import auth
from tests.helpers import poll

pytestmark = pytest.mark.integration


async def _create(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/v1/ingress", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["ingress_id"].startswith("IN_")
    return dict(info)


def _ingress_getter(http: httpx.AsyncClient, ingress_id: str) -> Any:
    async def fetch() -> dict[str, Any]:
        response = await http.get(f"/v1/ingress/{ingress_id}", headers=auth("reader"))
        assert response.status_code == 200, response.text
        return response.json()

    return fetch


@contextmanager
def ffmpeg_push(url: str) -> Iterator[ManagedProcess]:
    """ffmpeg pushing a 440 Hz tone and a test pattern (H.264 + AAC in FLV) to `url` in real
    time, for the duration of the block; stopped by PID."""
    binary = shutil.which("ffmpeg")
    assert binary, "ffmpeg not found: run `make install`"
    args = [binary, "-hide_banner", "-loglevel", "warning", "-re",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url]  # fmt: skip
    process = ManagedProcess("ffmpeg", args, Path(tempfile.mkdtemp(prefix="ffmpeg-")))
    process.start(lambda: True)
    try:
        yield process
    finally:
        process.stop()


async def test_rtmp_ingress_publishes_a_participant_with_audio_and_video(
    media_client, ingress_worker
):
    room = f"ingress-{secrets.token_hex(4)}"
    created = await _create(
        media_client,
        {"input_type": "RTMP_INPUT", "name": "camera", "room_name": room,
         "participant_identity": "camera", "participant_name": "Camera"},
    )  # fmt: skip
    assert created["url"].startswith("rtmp://") and created["stream_key"]
    assert created["input_type"] == "RTMP_INPUT"
    get = _ingress_getter(media_client, created["ingress_id"])

    async def camera_tracks() -> list[str]:
        response = await media_client.get(f"/v1/rooms/{room}/participants", headers=auth("reader"))
        if response.status_code == 404:  # the room appears with the ingress participant
            return []
        assert response.status_code == 200, response.text
        return sorted(
            track["type"]
            for participant in response.json()["items"]
            if participant["identity"] == "camera"
            for track in participant.get("tracks", [])
        )

    push_url = f"{created['url']}/{created['stream_key']}"
    # Under load the worker may refuse a push (`server capacity exceeded`, ffmpeg exits);
    # an RTMP encoder reconnects, and so does this one, up to 10 times.
    for _attempt in range(10):
        await poll(lambda: asyncio.to_thread(ingress_worker.available), bool, timeout=120)
        with ffmpeg_push(push_url) as ffmpeg:
            types = await poll(
                camera_tracks,
                lambda types: types == ["AUDIO", "VIDEO"] or not ffmpeg.running(),
                timeout=60,
            )
            if types != ["AUDIO", "VIDEO"]:
                continue  # refused: push again
            publishing = await poll(
                get, lambda i: i["state"]["status"] == "ENDPOINT_PUBLISHING", timeout=30
            )
            assert publishing["room_name"] == room
            break
    else:
        raise AssertionError(f"the ingress never published: {ffmpeg.log_tail()}")

    inactive = await poll(get, lambda i: i["state"]["status"] == "ENDPOINT_INACTIVE")
    assert inactive["ingress_id"] == created["ingress_id"]
    await poll(camera_tracks, lambda types: types == [])

    async def events() -> list[str]:
        response = await media_client.get(
            "/v1/webhooks/events",
            params={"ingress_id": created["ingress_id"]},
            headers=auth("events"),
        )
        assert response.status_code == 200, response.text
        return [event["event"] for event in response.json()["items"]]

    await poll(events, lambda types: {"ingress_started", "ingress_ended"} <= set(types))
    # LiveKit's events carry the stream key; a key without ingress:write never sees it.
    for key, shown in (("events", False), ("admin", True)):
        stored = await media_client.get(
            "/v1/webhooks/events", params={"ingress_id": created["ingress_id"]}, headers=auth(key)
        )
        assert (created["stream_key"] in stored.text) is shown, key

    listed = await media_client.get(
        "/v1/ingress", params={"room_name": room}, headers=auth("reader")
    )
    assert [i["ingress_id"] for i in listed.json()["items"]] == [created["ingress_id"]]

    updated = await media_client.patch(
        f"/v1/ingress/{created['ingress_id']}",
        json={"name": "camera-2", "participant_name": "Camera 2"},
        headers=auth("admin"),
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["participant_name"]) == ("camera-2", "Camera 2")
    assert (await get())["name"] == "camera-2"

    deleted = await media_client.delete(
        f"/v1/ingress/{created['ingress_id']}", headers=auth("admin")
    )
    assert deleted.status_code == 204, deleted.text
    gone = await media_client.get(f"/v1/ingress/{created['ingress_id']}", headers=auth("reader"))
    assert gone.status_code == 404 and gone.json()["code"] == "ingress_not_found"
    again = await media_client.delete(f"/v1/ingress/{created['ingress_id']}", headers=auth("admin"))
    assert again.status_code == 404 and again.json()["code"] == "ingress_not_found"


async def test_whip_ingress_create_returns_its_url(media_client, ingress_worker, media_livekit):
    room = f"whip-{secrets.token_hex(4)}"
    created = await _create(
        media_client,
        {"input_type": "WHIP_INPUT", "room_name": room, "participant_identity": "browser"},
    )
    assert created["input_type"] == "WHIP_INPUT"
    assert created["url"] == f"http://{media_livekit.node_ip}:{media_livekit.whip_port}/w"
    assert created["stream_key"]
    assert created["state"]["status"] == "ENDPOINT_INACTIVE"
    deleted = await media_client.delete(
        f"/v1/ingress/{created['ingress_id']}", headers=auth("admin")
    )
    assert deleted.status_code == 204, deleted.text
