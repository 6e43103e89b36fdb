"""An ingress's `stream_key` lets whoever holds it publish into a room: it is shown only to
service keys that may write ingress (`ingress:write`, `admin`), on the ingress routes against
the real LiveKit server and in the stored webhook events that carry `ingress_info` (list,
one event, the event stream), while the stored event keeps what LiveKit sent."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time

import pytest

from tests.conftest import auth
from tests.integration.test_webhooks_stream import post_event, stream

pytestmark = pytest.mark.integration

#: Keys that may read ingress but not write it, and keys that may write it.
READERS = ("reader",)
WRITERS = ("ingress-writer", "admin")


async def test_ingress_routes_show_the_stream_key_only_to_ingress_writers(client):
    room = f"studio-{secrets.token_hex(3)}"
    body = {"input_type": "RTMP_INPUT", "name": "cam", "room_name": room,
            "participant_identity": "cam-1"}  # fmt: skip
    once = {"Idempotency-Key": f"ingress-{room}"}
    created = await client.post("/v1/ingress", json=body, headers=auth("ingress-writer") | once)
    assert created.status_code == 201, created.text
    ingress_id, stream_key = created.json()["ingress_id"], created.json()["stream_key"]
    assert stream_key  # (the url is empty: this LiveKit server has no ingress configured)
    try:
        # The stored response (stream key included) is replayed to its own key only, which
        # holds ingress:write; another key with the same Idempotency-Key is refused first.
        again = await client.post("/v1/ingress", json=body, headers=auth("ingress-writer") | once)
        assert again.headers["Idempotent-Replayed"] == "true" and again.json() == created.json()
        denied = await client.post("/v1/ingress", json=body, headers=auth("reader") | once)
        assert denied.status_code == 403 and stream_key not in denied.text

        for key in READERS + WRITERS:
            got = await client.get(f"/v1/ingress/{ingress_id}", headers=auth(key))
            listed = await client.get("/v1/ingress", params={"room_name": room}, headers=auth(key))
            assert got.status_code == 200 and listed.status_code == 200, got.text + listed.text
            [item] = listed.json()["items"]
            for shown in (got.json(), item):
                assert shown["ingress_id"] == ingress_id and shown["room_name"] == room
                assert shown["input_type"] == "RTMP_INPUT"  # the rest is shown to all
                if key in WRITERS:
                    assert shown["stream_key"] == stream_key, key
                else:
                    assert "stream_key" not in shown, key
            if key in READERS:
                assert stream_key not in got.text + listed.text
        updated = await client.patch(
            f"/v1/ingress/{ingress_id}", json={"name": "cam-2"}, headers=auth("ingress-writer")
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["stream_key"] == stream_key
    finally:
        deleted = await client.delete(f"/v1/ingress/{ingress_id}", headers=auth("admin"))
        assert deleted.status_code == 204, deleted.text


def ingress_event(event_id: str, stream_key: str) -> bytes:
    """An `ingress_started` webhook as LiveKit sends it (protojson, camelCase)."""
    return json.dumps(
        {
            "event": "ingress_started",
            "id": event_id,
            "createdAt": str(int(time.time())),
            "ingressInfo": {
                "ingressId": f"IN_{event_id}",
                "name": "cam",
                "streamKey": stream_key,
                "url": "rtmp://192.0.2.1/x",
                "inputType": "RTMP_INPUT",
                "roomName": "studio",
                "participantIdentity": "cam-1",
                "state": {"status": "ENDPOINT_PUBLISHING"},
            },
        }
    ).encode()


async def test_stored_ingress_events_show_the_stream_key_only_to_ingress_writers(
    client, live_service
):
    event_id, stream_key = f"EV_{secrets.token_hex(4)}", f"SK_{secrets.token_urlsafe(16)}"
    async with stream(live_service.url, ingress_id=f"IN_{event_id}") as events:
        await post_event(live_service.url, ingress_event(event_id, stream_key))
        frame = await events.next_event()  # read with `events`: webhooks:read only
    assert frame["id"] == event_id
    assert json.loads(frame["data"])["payload"]["ingress_info"]["ingress_id"] == f"IN_{event_id}"
    assert stream_key not in frame["data"]

    for key, shown in (("events", False), ("admin", True)):
        one = await client.get(f"/v1/webhooks/events/{event_id}", headers=auth(key))
        page = await client.get(
            "/v1/webhooks/events", params={"ingress_id": f"IN_{event_id}"}, headers=auth(key)
        )
        assert one.status_code == 200 and page.status_code == 200, one.text + page.text
        [item] = page.json()["items"]
        for event in (one.json(), item):
            info = event["payload"]["ingress_info"]
            assert info["ingress_id"] == f"IN_{event_id}" and info["room_name"] == "studio"
            assert (info.get("stream_key") == stream_key) is shown, key
        assert (stream_key in one.text + page.text) is shown, key

    # The store keeps what LiveKit sent: the redaction is on the way out.
    database = live_service.app.state.settings.database_url.get_secret_value().split("///", 1)[1]
    with sqlite3.connect(database) as db:
        [(body,)] = db.execute("SELECT body FROM webhook_events WHERE id = ?", (event_id,))
    assert json.loads(body)["ingressInfo"]["streamKey"] == stream_key
