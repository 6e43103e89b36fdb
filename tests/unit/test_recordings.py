"""The recordings catalog's pure rules: rows from `egress_ended` events, which outputs get
the default upload target, which locations are objects of the configured bucket."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from livekit import api
from pydantic import SecretStr

from app.events.recordings import RecordingsBucket, entries_of, recording_id, with_default_upload

NS = 1_000_000_000


@pytest.fixture
def bucket() -> RecordingsBucket:
    return RecordingsBucket(
        endpoint="http://127.0.0.1:9000",
        bucket="recordings",
        region="us-east-1",
        access_key="AKIATEST",
        secret=SecretStr("store-secret"),
        link_seconds=600,
    )


def test_outputs_without_an_upload_get_the_bucket_and_the_others_keep_theirs(bucket):
    request = api.TrackCompositeEgressRequest(
        room_name="r",
        file_outputs=[
            api.EncodedFileOutput(filepath="a.ogg"),
            api.EncodedFileOutput(filepath="b.ogg", gcp=api.GCPUpload(bucket="theirs")),
        ],
        segment_outputs=[api.SegmentedFileOutput(filename_prefix="seg")],
        image_outputs=[api.ImageOutput(filename_prefix="img")],
        stream_outputs=[api.StreamOutput(urls=["rtmp://example.com/live"])],
    )
    with_default_upload(request, bucket)
    given = request.file_outputs[0].s3
    assert (given.bucket, given.endpoint, given.region, given.force_path_style) == (
        "recordings", "http://127.0.0.1:9000", "us-east-1", True,
    )  # fmt: skip
    assert given.access_key == "AKIATEST" and given.secret == "store-secret"
    assert request.file_outputs[1].WhichOneof("output") == "gcp"
    assert request.file_outputs[1].gcp.bucket == "theirs"
    assert request.segment_outputs[0].s3.bucket == "recordings"
    assert request.image_outputs[0].s3.bucket == "recordings"
    assert request.file_outputs[0].filepath == "a.ogg"


def test_a_track_egress_file_gets_the_bucket_and_nothing_changes_without_one(bucket):
    request = api.TrackEgressRequest(room_name="r", track_id="TR_1", file=api.DirectFileOutput())
    untouched = api.TrackEgressRequest()
    untouched.CopyFrom(request)
    with_default_upload(untouched, None)
    assert not untouched.file.HasField("s3")
    with_default_upload(request, bucket)
    assert request.file.s3.bucket == "recordings"
    websocket = api.TrackEgressRequest(room_name="r", track_id="TR_1", websocket_url="wss://x")
    with_default_upload(websocket, bucket)
    assert websocket.WhichOneof("output") == "websocket_url"


def _event(body: dict, event: str = "egress_ended") -> dict:
    return {"event": event, "body": json.dumps(body), "created_at": dt.datetime.now(dt.UTC)}


def test_every_result_of_an_egress_ended_is_one_entry_with_a_stable_id():
    ended = 1_765_000_000 * NS
    body = {
        "event": "egress_ended",
        "id": "EV_1",
        "derived": {"by": "reconciliation", "observed_at": "2026-12-08T00:00:00Z"},
        "egressInfo": {
            "egressId": "EG_1", "roomId": "RM_1", "roomName": "room", "status": "EGRESS_COMPLETE",
            "endedAt": str(ended),
            "fileResults": [
                {"filename": "a.ogg", "location": "https://b.s3/a.ogg", "size": "10",
                 "duration": str(3 * NS), "endedAt": str(ended)},
                {"filename": "b.ogg", "size": "0"},
            ],
            "segmentResults": [{"playlistName": "p.m3u8", "playlistLocation": "https://b/p.m3u8",
                                "size": "7", "duration": str(NS)}],
            "imageResults": [{"filenamePrefix": "img", "imageCount": "4"}],
        },
    }  # fmt: skip
    rows = entries_of(_event(body))
    assert [(r["kind"], r["filename"]) for r in rows] == [
        ("file", "a.ogg"), ("file", "b.ogg"), ("segments", "p.m3u8"), ("image", "img"),
    ]  # fmt: skip
    first = rows[0]
    assert first["recording_id"] == recording_id("EG_1", "file", 0)
    assert first["session_id"] == "RM_1" and first["room_name"] == "room"
    assert first["size_bytes"] == 10 and first["duration_seconds"] == 3.0
    assert first["ended_at"] == dt.datetime.fromtimestamp(ended / NS, dt.UTC)
    assert first["status"] == "EGRESS_COMPLETE"
    assert len({r["recording_id"] for r in rows}) == 4
    assert [r["recording_id"] for r in entries_of(_event(body))] == [
        r["recording_id"] for r in rows
    ]


def test_other_events_and_unreadable_bodies_give_no_entries():
    assert entries_of(_event({"event": "room_started"}, event="room_started")) == []
    assert entries_of({"event": "egress_ended", "body": "{", "created_at": None}) == []
    assert entries_of(_event({"event": "egress_ended", "egressInfo": {"status": 7.5}})) == []


def test_only_locations_in_the_configured_bucket_are_its_objects(bucket):
    key = "room/a.ogg"
    assert bucket.object_key(f"https://recordings.http://127.0.0.1:9000/{key}", key) == key
    assert bucket.object_key(f"https://recordings.127.0.0.1:9000/{key}", key) == key
    assert bucket.object_key(f"http://127.0.0.1:9000/recordings/{key}", key) == key
    assert bucket.object_key(f"https://other.http://127.0.0.1:9000/{key}", key) is None
    assert bucket.object_key("", "/tmp/a.ogg") is None
    link = bucket.download_url(key)
    assert link.startswith(f"http://127.0.0.1:9000/recordings/{key}?")
    assert "X-Amz-Expires=600" in link and "store-secret" not in link
