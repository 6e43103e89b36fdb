"""Recordings end to end: a real participant publishes a 440 Hz tone, a track egress that
names no upload target lands in the default bucket (SeaweedFS, RECORDINGS_S3_*), the
catalog lists it with its size, its presigned link serves Opus at 440 Hz, the console in
Chromium plays it and deletes it (the object is gone), and the store's secret is in no
response, replay or log line."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.browser.conftest import browser  # noqa: F401 - the Chromium fixture
from tests.browser.test_console import sign_in
from tests.conftest import auth
from tests.helpers import poll
from tests.media.conftest import egress_getter, ffprobe, tone_power
from tests.participants import fetch_token, joined, publish_tone

pytestmark = pytest.mark.integration

#: How long the egress records: media for the file, not a wait for readiness.
RECORD_SECONDS = 3


@pytest.fixture
async def recordings_client(recordings_service):
    async with httpx.AsyncClient(base_url=recordings_service.url, timeout=60) as http:
        yield http


def _status(*names: str):
    return lambda info: info["status"] in names


async def test_a_track_egress_without_upload_is_catalogued_played_and_deleted(
    recordings_client,
    egress_worker,
    seaweedfs,
    browser,  # noqa: F811
    recordings_service,
    caplog,
    tmp_path,
):
    caplog.set_level(logging.DEBUG)
    http = recordings_client
    room = f"catalog-{secrets.token_hex(4)}"
    key = f"{room}/tone.ogg"
    body = {"room_name": room, "file": {"filepath": key}}
    headers = {**auth("admin"), "Idempotency-Key": f"rec-{room}"}
    token = await fetch_token(http, room, "erin")
    async with (
        joined(token["server_url"], token["participant_token"]) as participant,
        publish_tone(participant) as publication,
    ):
        body["track_id"] = publication.sid
        first = await http.post("/v1/egress/track", json=body, headers=headers)
        replay = await http.post("/v1/egress/track", json=body, headers=headers)
        assert first.status_code == replay.status_code == 201, first.text
        assert replay.headers["idempotent-replayed"] == "true"
        s3 = first.json()["track"]["file"]["s3"]  # the default target, without its secret
        assert s3["bucket"] == "recordings" and s3["endpoint"] == seaweedfs.endpoint
        assert "secret" not in s3
        egress_id = first.json()["egress_id"]
        get = egress_getter(http, egress_id)
        await poll(get, _status("EGRESS_ACTIVE"))
        await asyncio.sleep(RECORD_SECONDS)
        stopped = await http.post(f"/v1/egress/{egress_id}/stop", headers=auth("admin"))
        assert stopped.status_code == 200, stopped.text
        done = await poll(get, _status("EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED"))
    assert done["status"] == "EGRESS_COMPLETE", done
    [result] = done["file_results"]
    assert result["filename"] == key and result["size"] > 0
    head = seaweedfs.client().head_object(Bucket="recordings", Key=key)
    assert head["ContentLength"] == result["size"]

    async def listed() -> httpx.Response:
        return await http.get("/v1/recordings", params={"room_name": room}, headers=auth("admin"))

    page = await poll(listed, lambda r: r.status_code == 200 and r.json()["items"])
    [item] = page.json()["items"]
    assert item["egress_id"] == egress_id and item["kind"] == "file"
    assert item["size_bytes"] == result["size"] and item["filename"] == key
    assert item["session_id"].startswith("RM_") and item["status"] == "EGRESS_COMPLETE"
    assert item["duration_seconds"] > 1

    one = await http.get(f"/v1/recordings/{item['recording_id']}", headers=auth("admin"))
    assert one.status_code == 200, one.text
    async with httpx.AsyncClient(timeout=30) as plain:
        fetched = await plain.get(one.json()["download_url"])
    assert fetched.status_code == 200, fetched.text
    path = Path(tmp_path) / "downloaded.ogg"
    path.write_bytes(fetched.content)
    [stream] = ffprobe(path)["streams"]
    assert stream["codec_name"] == "opus"
    powers = tone_power(path, [220, 330, 440, 550, 660, 880, 1000])
    assert max(powers, key=powers.__getitem__) == 440, powers
    assert all(powers[440] > 10 * p for f, p in powers.items() if f != 440), powers

    # the console plays it in the browser's own <audio> element, then deletes it
    context, console = await sign_in(browser, recordings_service.url, "admin")
    try:
        await console.click("#tabs button[data-tab=recordings]")
        await console.fill("#recordings-filter input[name=room_name]", room)
        await console.click("#recordings-filter button[type=submit]")
        row = console.locator(f"tr[data-recording='{item['recording_id']}']")
        await row.locator("button[data-action=play]").click()
        await console.wait_for_function(
            "() => { const a = document.querySelector('#recording-player audio');"
            " return a && a.currentTime > 0.5; }",
            timeout=30_000,
        )
        console.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.locator("button[data-action=delete]").click()
        await console.wait_for_selector(
            f"tr[data-recording='{item['recording_id']}']", state="detached"
        )
        assert not console.csp_violations, console.csp_violations
    finally:
        await context.close()

    with pytest.raises(ClientError) as missing:
        seaweedfs.client().head_object(Bucket="recordings", Key=key)
    assert missing.value.response["Error"]["Code"] == "404"
    gone = await http.get(f"/v1/recordings/{item['recording_id']}", headers=auth("admin"))
    assert gone.status_code == 404

    events = await http.get(
        "/v1/webhooks/events", params={"egress_id": egress_id}, headers=auth("admin")
    )
    texts = [first.text, replay.text, stopped.text, page.text, one.text, events.text, caplog.text]
    for event in events.json()["items"]:
        single = await http.get(f"/v1/webhooks/events/{event['id']}", headers=auth("admin"))
        texts.append(single.text)
    assert "egress_ended" in events.text
    assert not [t for t in texts if seaweedfs.secret in t]
