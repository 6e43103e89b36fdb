"""Egress with LiveKit's own egress worker: a real participant publishes a 440 Hz tone,
the service starts egresses through its REST routes, and the files the worker writes are
read back with ffprobe/ffmpeg. Run one at a time (the worker's CPU admission)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.helpers import poll
from tests.media.conftest import egress_getter, ffprobe, tone_power
from tests.participants import fetch_token, joined, publish_tone

pytestmark = pytest.mark.integration

#: How long each egress records before it is stopped: media for the file, not a wait for
#: readiness (every state change below is polled).
RECORD_SECONDS = 3


def _status(*names: str) -> Any:
    return lambda info: info["status"] in names


async def _start(http: httpx.AsyncClient, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(f"/v1/egress/{kind}", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["egress_id"].startswith("EG_")
    assert info["status"] in ("EGRESS_STARTING", "EGRESS_ACTIVE")
    return info


async def _record_and_stop(http: httpx.AsyncClient, egress_id: str) -> dict[str, Any]:
    """Wait for EGRESS_ACTIVE, record, stop, and wait for EGRESS_COMPLETE; its EgressInfo."""
    get = egress_getter(http, egress_id)
    await poll(get, _status("EGRESS_ACTIVE"))
    await asyncio.sleep(RECORD_SECONDS)
    stopped = await http.post(f"/v1/egress/{egress_id}/stop", headers=auth("admin"))
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] in ("EGRESS_ENDING", "EGRESS_COMPLETE")
    done = await poll(get, _status("EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED"))
    assert done["status"] == "EGRESS_COMPLETE", done
    return dict(done)


async def _events(http: httpx.AsyncClient, egress_id: str) -> list[str]:
    response = await http.get(
        "/v1/webhooks/events", params={"egress_id": egress_id}, headers=auth("events")
    )
    assert response.status_code == 200, response.text
    return [event["event"] for event in response.json()["items"]]


async def test_track_egress_writes_the_published_tone_as_ogg_opus(
    media_client, egress_worker, output_dir
):
    room = f"tone-{secrets.token_hex(4)}"
    token = await fetch_token(media_client, room, "alice")
    async with (
        joined(token["server_url"], token["participant_token"]) as participant,
        publish_tone(participant) as publication,
    ):
        target = output_dir / "tone.ogg"
        started = await _start(
            media_client,
            "track",
            {"room_name": room, "track_id": publication.sid, "file": {"filepath": str(target)}},
        )
        done = await _record_and_stop(media_client, started["egress_id"])

    [result] = done["file_results"]
    assert result["filename"] == str(target) and result["size"] > 0
    assert done["room_name"] == room
    probe = ffprobe(target)
    [stream] = probe["streams"]
    assert stream["codec_name"] == "opus" and stream["sample_rate"] == "48000"
    powers = tone_power(target, [220, 330, 440, 550, 660, 880, 1000])
    strongest = max(powers, key=powers.__getitem__)
    assert strongest == 440, powers
    assert all(powers[440] > 10 * p for f, p in powers.items() if f != 440), powers

    async def ended() -> list[str]:
        return await _events(media_client, started["egress_id"])

    events = await poll(ended, lambda types: "egress_ended" in types)
    assert "egress_started" in events

    again = await media_client.post(
        f"/v1/egress/{started['egress_id']}/stop", headers=auth("admin")
    )
    assert again.status_code in (404, 409), again.text  # an ended egress cannot stop again
    assert again.headers["content-type"] == "application/problem+json"


async def test_participant_egress_to_mp4_with_opus_audio_completes(
    media_client, egress_worker, output_dir
):
    room = f"participant-{secrets.token_hex(4)}"
    token = await fetch_token(media_client, room, "bob")
    async with (
        joined(token["server_url"], token["participant_token"]) as participant,
        publish_tone(participant),
    ):
        target = output_dir / "bob.mp4"
        started = await _start(
            media_client,
            "participant",
            {
                "room_name": room,
                "identity": "bob",
                "advanced": {"audio_codec": "OPUS"},
                "file_outputs": [{"file_type": "MP4", "filepath": str(target)}],
            },
        )
        done = await _record_and_stop(media_client, started["egress_id"])

    assert done["file_results"][0]["size"] > 0
    probe = ffprobe(target)
    assert "mp4" in probe["format"]["format_name"]
    assert [s["codec_name"] for s in probe["streams"] if s["codec_type"] == "audio"] == ["opus"]


async def test_web_egress_of_a_served_page_writes_a_frame_that_is_not_blank(
    media_client, egress_worker, output_dir, web_page
):
    target = output_dir / "page.mp4"
    started = await _start(
        media_client,
        "web",
        {
            "url": web_page,
            "video_only": True,
            "preset": "H264_720P_30",
            "file_outputs": [{"file_type": "MP4", "filepath": str(target)}],
        },
    )
    done = await _record_and_stop(media_client, started["egress_id"])

    assert done["file_results"][0]["size"] > 0
    video = [s for s in ffprobe(target)["streams"] if s["codec_type"] == "video"]
    assert video and video[0]["codec_name"] == "h264"
    frame = subprocess.run(
        ["ffmpeg", "-v", "error", "-sseof", "-1", "-i", str(target), "-frames:v", "1",
         "-vf", "scale=64:36", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    pixels = [frame[i : i + 3] for i in range(0, len(frame), 3)]
    assert len(pixels) == 64 * 36
    red = [p for p in pixels if p[0] > 150 and p[1] < 90 and p[2] < 90]
    white = [p for p in pixels if min(p) > 180]
    assert len(red) > len(pixels) // 2, "the page's red background is not in the frame"
    assert white, "the page's white text is not in the frame"


async def test_an_aac_output_fails_clearly_and_the_next_egress_works(
    media_client, egress_worker, output_dir
):
    """Debian's GStreamer has no faac: an MP4 with LiveKit's default (AAC) audio fails in
    the worker, which then exits; the fixture restarts it and a track egress completes."""
    room = f"aac-{secrets.token_hex(4)}"
    token = await fetch_token(media_client, room, "carol")
    async with (
        joined(token["server_url"], token["participant_token"]) as participant,
        publish_tone(participant) as publication,
    ):
        response = await media_client.post(
            "/v1/egress/participant",
            json={
                "room_name": room,
                "identity": "carol",
                "file_outputs": [{"file_type": "MP4", "filepath": str(output_dir / "aac.mp4")}],
            },
            headers=auth("admin"),
        )
        # LiveKit accepts it (201); the worker's pipeline then fails and the egress ends
        # EGRESS_FAILED with GStreamer's reason, which GET shows.
        assert response.status_code == 201, response.text
        failed = await poll(
            egress_getter(media_client, response.json()["egress_id"]),
            _status("EGRESS_FAILED", "EGRESS_ABORTED", "EGRESS_COMPLETE"),
        )
        assert failed["status"] == "EGRESS_FAILED", failed
        assert failed["error"] == "could not create element: faac", failed

        egress_worker.ensure_running()
        target = output_dir / "after-aac.ogg"
        started = await _start(
            media_client,
            "track",
            {"room_name": room, "track_id": publication.sid, "file": {"filepath": str(target)}},
        )
        done = await _record_and_stop(media_client, started["egress_id"])
    assert done["file_results"][0]["size"] > 0
    assert ffprobe(target)["streams"][0]["codec_name"] == "opus"


async def test_an_s3_secret_reaches_no_response_replay_event_or_log_line(
    media_client, egress_worker, output_dir, caplog
):
    """LiveKit's EgressInfo (start, list, get, stop, and the egress webhooks) carries the S3
    credentials of the request back; the service shows them nowhere. The upload goes to a
    port nothing listens on, so the egress ends EGRESS_FAILED after it is stopped."""
    import logging

    from app.core.devserver import free_port

    secret, session_token = f"s3-secret-{secrets.token_hex(8)}", f"tok-{secrets.token_hex(8)}"
    caplog.set_level(logging.DEBUG)
    room = f"s3-{secrets.token_hex(4)}"
    token = await fetch_token(media_client, room, "dave")
    body = {"room_name": room, "file": {"filepath": "dave/tone.ogg", "s3": {
        "access_key": "AKIAEXAMPLE", "secret": secret, "session_token": session_token,
        "bucket": "recordings", "region": "us-east-1", "force_path_style": True,
        "endpoint": f"http://127.0.0.1:{free_port()}"}}}  # fmt: skip
    headers = {**auth("admin"), "Idempotency-Key": f"s3-{room}"}
    async with (
        joined(token["server_url"], token["participant_token"]) as participant,
        publish_tone(participant) as publication,
    ):
        body["track_id"] = publication.sid
        first = await media_client.post("/v1/egress/track", json=body, headers=headers)
        replay = await media_client.post("/v1/egress/track", json=body, headers=headers)
        assert first.status_code == replay.status_code == 201, first.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
        egress_id = first.json()["egress_id"]
        get = egress_getter(media_client, egress_id)
        await poll(get, _status("EGRESS_ACTIVE"))
        await asyncio.sleep(RECORD_SECONDS)
        stopped = await media_client.post(f"/v1/egress/{egress_id}/stop", headers=auth("admin"))
    ended = await poll(get, _status("EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED"))
    assert ended["status"] == "EGRESS_FAILED" and "S3 upload failed" in ended["error"], ended
    s3 = ended["track"]["file"]["s3"]
    assert "secret" not in s3 and "session_token" not in s3 and s3["bucket"] == "recordings"

    async def events() -> httpx.Response:
        return await media_client.get(
            "/v1/webhooks/events", params={"egress_id": egress_id}, headers=auth("events")
        )

    logged = await poll(events, lambda r: "egress_ended" in r.text)
    listed = await media_client.get(
        "/v1/egress", params={"room_name": room}, headers=auth("reader")
    )
    texts = [first.text, replay.text, stopped.text, listed.text, logged.text, caplog.text]
    for event in logged.json()["items"]:
        one = await media_client.get(f"/v1/webhooks/events/{event['id']}", headers=auth("events"))
        texts.append(one.text)
    assert egress_id in listed.text and "egress_started" in logged.text
    leaks = [t for t in texts if secret in t or session_token in t]
    assert not leaks
