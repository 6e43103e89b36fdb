"""The recordings catalog against a real SeaweedFS (S3 API) and the service over real
HTTP: `egress_ended` webhooks (received and derived) become recordings, listed newest first
by room and session, each with a presigned link to its object; DELETE removes the object
and then the entry; RECORDINGS_RETENTION_DAYS deletes old recordings and keeps new ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from app.events.recordings import RecordingsBucket, catalog_writer, purge_expired_recordings
from app.store import recordings as recording_rows
from app.store.engine import Store
from tests.components import post_webhooks
from tests.conftest import auth, recordings_settings, serving
from tests.helpers import poll

pytestmark = pytest.mark.integration

NS = 1_000_000_000


def _ns(when: dt.datetime) -> str:
    return str(int(when.timestamp() * NS))


def egress_ended(
    egress_id: str,
    room: str,
    results: list[dict[str, Any]],
    *,
    ended: dt.datetime,
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An `egress_ended` WebhookEvent as LiveKit sends it (protojson, camelCase), with
    `fileResults` built from `results` (`key`, `location`, `size`)."""
    started = ended - dt.timedelta(seconds=5)
    files = [
        {"filename": r["key"], "location": r["location"], "size": str(r["size"]),
         "duration": str(5 * NS), "startedAt": _ns(started), "endedAt": _ns(ended)}
        for r in results
    ]  # fmt: skip
    return {
        "event": "egress_ended",
        "id": event_id or f"EV_{secrets.token_hex(6)}",
        "createdAt": str(int(time.time())),
        "egressInfo": {
            "egressId": egress_id,
            "roomId": f"RM_{room}",
            "roomName": room,
            "status": "EGRESS_COMPLETE",
            "startedAt": _ns(started),
            "endedAt": _ns(ended),
            "fileResults": files,
        },
        **extra,
    }


@pytest.fixture(scope="module")
def bucket_name() -> str:
    return f"catalog-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def catalog(test_server, seaweedfs, bucket_name, tmp_path_factory):
    """The service with its recordings bucket on SeaweedFS (no retention)."""
    settings = recordings_settings(seaweedfs, bucket_name)
    with serving(test_server.url, tmp_path_factory.mktemp("catalog"), **settings) as service:
        yield service


@pytest.fixture
async def http(catalog):
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:
        yield client


def _upload(seaweedfs, bucket: str, key: str, data: bytes) -> str:
    """Put `data` at `key`; the location LiveKit's egress reports for such an upload."""
    seaweedfs.client().put_object(Bucket=bucket, Key=key, Body=data)
    return f"https://{bucket}.{seaweedfs.endpoint}/{key}"


def _gone(seaweedfs, bucket: str, key: str) -> bool:
    try:
        seaweedfs.client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "404"
    return False


async def test_an_egress_ended_lists_its_files_once_with_a_link_to_each_object(
    http, seaweedfs, bucket_name
):
    room = f"rec-{secrets.token_hex(4)}"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first_key, second_key = f"{room}/a.ogg", f"{room}/b.ogg"
    results = [
        {"key": key, "size": len(data), "location": _upload(seaweedfs, bucket_name, key, data)}
        for key, data in ((first_key, b"first"), (second_key, b"second!"))
    ]
    earlier = egress_ended("EG_earlier", room, results[:1], ended=now - dt.timedelta(minutes=5))
    later = egress_ended("EG_later", room, results[1:], ended=now)
    # the same fact again: repeated, and derived by reconciliation under another id
    derived = {**later, "id": f"EV_derived_{secrets.token_hex(4)}",
               "derived": {"by": "reconciliation", "observed_at": now.isoformat()}}  # fmt: skip
    await post_webhooks(http, [earlier, later, later, derived])

    listed = await http.get("/v1/recordings", params={"room_name": room}, headers=auth("admin"))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [i["egress_id"] for i in items] == ["EG_later", "EG_earlier"]  # newest first
    newest = items[0]
    assert newest["recording_id"].startswith("RC_")
    assert newest | {"recording_id": "-", "started_at": "-"} == {
        "recording_id": "-", "egress_id": "EG_later", "session_id": f"RM_{room}",
        "room_name": room, "kind": "file", "location": results[1]["location"],
        "filename": second_key, "size_bytes": 7, "duration_seconds": 5.0, "started_at": "-",
        "ended_at": now.isoformat().replace("+00:00", "Z"), "status": "EGRESS_COMPLETE",
    }  # fmt: skip

    by_session = await http.get(
        "/v1/recordings", params={"session_id": f"RM_{room}", "limit": 1}, headers=auth("admin")
    )
    page = by_session.json()
    assert [i["egress_id"] for i in page["items"]] == ["EG_later"]
    rest = await http.get(
        "/v1/recordings",
        params={"session_id": f"RM_{room}", "limit": 1, "page_token": page["next_page_token"]},
        headers=auth("recordings-reader"),
    )
    assert [i["egress_id"] for i in rest.json()["items"]] == ["EG_earlier"]
    assert rest.json()["next_page_token"] is None

    one = await http.get(f"/v1/recordings/{newest['recording_id']}", headers=auth("admin"))
    assert one.status_code == 200, one.text
    link = one.json()["download_url"]
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=3600" in link
    assert seaweedfs.secret not in one.text
    async with httpx.AsyncClient() as plain:
        fetched = await plain.get(link)
    assert fetched.status_code == 200 and fetched.content == b"second!"


async def test_delete_removes_the_object_then_the_entry(http, seaweedfs, bucket_name):
    room = f"del-{secrets.token_hex(4)}"
    key = f"{room}/tone.ogg"
    location = _upload(seaweedfs, bucket_name, key, b"tone")
    await post_webhooks(
        http,
        [egress_ended("EG_del", room, [{"key": key, "size": 4, "location": location}],
                      ended=dt.datetime.now(dt.UTC))],
    )  # fmt: skip
    [item] = (
        await http.get("/v1/recordings", params={"room_name": room}, headers=auth("admin"))
    ).json()["items"]
    path = f"/v1/recordings/{item['recording_id']}"

    refused = await http.delete(path, headers=auth("recordings-reader"))
    assert refused.status_code == 403 and "recordings:write" in refused.json()["detail"]
    deleted = await http.delete(path, headers=auth("admin"))
    assert deleted.status_code == 204, deleted.text
    assert _gone(seaweedfs, bucket_name, key)
    assert (await http.get(path, headers=auth("admin"))).status_code == 404
    again = await http.delete(path, headers=auth("admin"))
    assert again.status_code == 404 and again.json()["code"] == "recording_not_found"


async def test_an_object_already_gone_is_deleted_without_error(http, seaweedfs, bucket_name):
    room = f"gone-{secrets.token_hex(4)}"
    key = f"{room}/x.ogg"
    location = _upload(seaweedfs, bucket_name, key, b"x")
    seaweedfs.client().delete_object(Bucket=bucket_name, Key=key)
    await post_webhooks(
        http,
        [egress_ended("EG_gone", room, [{"key": key, "size": 1, "location": location}],
                      ended=dt.datetime.now(dt.UTC))],
    )  # fmt: skip
    [item] = (
        await http.get("/v1/recordings", params={"room_name": room}, headers=auth("admin"))
    ).json()["items"]
    deleted = await http.delete(f"/v1/recordings/{item['recording_id']}", headers=auth("admin"))
    assert deleted.status_code == 204, deleted.text


async def test_a_file_outside_the_bucket_has_no_link(http):
    room = f"local-{secrets.token_hex(4)}"
    await post_webhooks(
        http,
        [egress_ended("EG_local", room, [{"key": "/tmp/out/a.ogg", "size": 3, "location": ""}],
                      ended=dt.datetime.now(dt.UTC))],
    )  # fmt: skip
    [item] = (
        await http.get("/v1/recordings", params={"room_name": room}, headers=auth("admin"))
    ).json()["items"]
    one = await http.get(f"/v1/recordings/{item['recording_id']}", headers=auth("admin"))
    assert one.json()["download_url"] is None and one.json()["filename"] == "/tmp/out/a.ogg"


async def test_recordings_need_their_scope(http):
    listed = await http.get("/v1/recordings", headers=auth("reader"))
    assert listed.status_code == 403 and "recordings:read" in listed.json()["detail"]
    assert (await http.get("/v1/recordings")).status_code == 401
    bad = await http.get("/v1/recordings", params={"page_token": "nope"}, headers=auth("admin"))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_page_token"


async def test_retention_deletes_old_recordings_object_and_entry_and_keeps_new_ones(
    test_server, seaweedfs, tmp_path
):
    bucket = f"retention-{secrets.token_hex(4)}"
    settings = recordings_settings(seaweedfs, bucket)
    room = f"ret-{secrets.token_hex(4)}"
    now = dt.datetime.now(dt.UTC)
    old_location = _upload(seaweedfs, bucket, f"{room}/old.ogg", b"old")
    new_location = _upload(seaweedfs, bucket, f"{room}/new.ogg", b"new")
    events = [
        egress_ended("EG_old", room, [{"key": f"{room}/old.ogg", "size": 3,
                     "location": old_location}], ended=now - dt.timedelta(days=40)),
        egress_ended("EG_new", room, [{"key": f"{room}/new.ogg", "size": 3,
                     "location": new_location}], ended=now - dt.timedelta(days=2)),
    ]  # fmt: skip
    with serving(test_server.url, tmp_path, **settings) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            await post_webhooks(http, events)
            listed = await http.get(
                "/v1/recordings", params={"room_name": room}, headers=auth("admin")
            )
            assert [i["egress_id"] for i in listed.json()["items"]] == ["EG_new", "EG_old"]
    # the same database, now with 30 days' retention: the purge runs at start-up
    with serving(test_server.url, tmp_path, **settings, recordings_retention_days=30) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:

            async def kept() -> list[str]:
                listed = await http.get(
                    "/v1/recordings", params={"room_name": room}, headers=auth("admin")
                )
                return [item["egress_id"] for item in listed.json()["items"]]

            await poll(kept, lambda egress_ids: egress_ids == ["EG_new"], timeout=30)
    assert _gone(seaweedfs, bucket, f"{room}/old.ogg")
    assert not _gone(seaweedfs, bucket, f"{room}/new.ogg")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/events.db"
    return request.getfixturevalue("postgres_url")


async def test_two_replicas_purging_at_once_delete_each_old_recording_once(database_url, seaweedfs):
    """Retention on two replicas (two `Store`s on one database) at the same moment: every
    old recording's object and entry go, counted once; a delete the other replica made
    first is not an error; the new recording stays."""
    name = f"replicas-{secrets.token_hex(4)}"
    recordings_settings(seaweedfs, name)
    bucket = RecordingsBucket(
        endpoint=seaweedfs.endpoint, bucket=name, region=seaweedfs.region,
        access_key=seaweedfs.access_key, secret=SecretStr(seaweedfs.secret), link_seconds=60,
    )  # fmt: skip
    replicas = [Store(database_url), Store(database_url)]
    await replicas[0].migrate()
    replicas[0].events.add_writer(catalog_writer(replicas[0]))
    now = dt.datetime.now(dt.UTC)
    ages = {f"EG_old_{i}": 40 + i for i in range(6)} | {"EG_new": 1}
    try:
        for egress_id, days in ages.items():
            key = f"{egress_id}.ogg"
            location = _upload(seaweedfs, name, key, b"ogg")
            result = {"key": key, "size": 3, "location": location}
            ended = now - dt.timedelta(days=days)
            event = egress_ended(egress_id, "replicas", [result], ended=ended)
            stored = await replicas[0].events.insert(
                {"id": event["id"], "event": "egress_ended", "room_name": "replicas",
                 "egress_id": egress_id, "created_at": now, "received_at": now,
                 "body": json.dumps(event)}
            )  # fmt: skip
            assert stored
        deleted = await asyncio.gather(
            *(purge_expired_recordings(store, bucket, 30) for store in replicas)
        )
        assert sum(deleted) == 6
        left = await recording_rows.ended_before(replicas[1], now, 100)
        assert [row.egress_id for row in left] == ["EG_new"]
    finally:
        for store in replicas:
            await store.aclose()
    assert all(_gone(seaweedfs, name, f"EG_old_{i}.ogg") for i in range(6))
    assert not _gone(seaweedfs, name, "EG_new.ogg")
