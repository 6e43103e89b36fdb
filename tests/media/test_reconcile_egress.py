"""Reconciliation of egress with LiveKit's own egress worker (`app.events.reconcile`): a
store that received none of LiveKit's webhooks learns, from LiveKit's state alone, that a
track egress started and then that it completed, with LiveKit's `EgressInfo` (its file
result included), and a service in the same position lists the file in its recordings
catalog. Run one at a time (the worker's CPU admission)."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from app.events.derived_events import DERIVED_BY
from app.events.reconcile import reconcile
from app.events.webhooks import get_event
from app.livekit.gateway import LiveKit
from app.store.engine import Store
from tests.components import LiveService
from tests.conftest import API_KEY, API_SECRET, auth, make_settings
from tests.helpers import poll, unique
from tests.media.conftest import egress_getter
from tests.media.test_egress_workers import RECORD_SECONDS, _start
from tests.participants import fetch_token, joined, publish_tone

pytestmark = pytest.mark.integration

ENDED = ("EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED", "EGRESS_LIMIT_REACHED")


async def test_an_egress_no_webhook_reported_is_derived_started_then_ended(
    media_client, media_livekit, egress_worker, output_dir, tmp_path
):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}")  # LiveKit posts nothing here
    gateway = LiveKit(media_livekit.url, API_KEY, API_SECRET, 10)
    await store.migrate()
    stack = contextlib.AsyncExitStack()
    try:
        room = unique("reconcile-egress")
        token = await fetch_token(media_client, room, "alice")
        async with (
            joined(token["server_url"], token["participant_token"]) as participant,
            publish_tone(participant) as publication,
        ):
            target = output_dir / "tone.ogg"
            body = {
                "room_name": room,
                "track_id": publication.sid,
                "file": {"filepath": str(target)},
            }
            started = await _start(media_client, "track", body)
            egress_id = started["egress_id"]
            get = egress_getter(media_client, egress_id)
            await poll(get, lambda info: info["status"] == "EGRESS_ACTIVE")
            first = await reconcile(store, gateway, lease=None)
            assert first.stored.get("egress_started") == 1, first
            # and a whole service that LiveKit posts nothing to, reconciling every 2 s
            service = LiveService().start(
                make_settings(media_livekit.url, tmp_path, reconcile_interval_seconds=2)
            )
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=service.url, timeout=30)
            )
            stack.callback(service.stop)
            await poll(lambda: _events(http, egress_id), lambda kinds: "egress_started" in kinds)
            await asyncio.sleep(RECORD_SECONDS)  # media for the file, not a wait for readiness
            stopped = await media_client.post(f"/v1/egress/{egress_id}/stop", headers=auth("admin"))
            assert stopped.status_code == 200, stopped.text
            done = await poll(get, lambda info: info["status"] in ENDED)
        assert done["status"] == "EGRESS_COMPLETE", done
        second = await reconcile(store, gateway, lease=None)
        assert second.stored.get("egress_ended") == 1, second
        assert second.calls.get("ListEgress") == 2  # the active list, then this egress by id

        rows = await store.events.find(filters={"egress_id": egress_id})
        by_type = {row.event: await get_event(store, row.id) for row in rows}
        assert set(by_type) == {"egress_started", "egress_ended"}
        ended = by_type["egress_ended"]
        assert ended.derived is not None and ended.derived.by == DERIVED_BY
        info = ended.model_dump()["payload"]["egress_info"]
        assert info["status"] == "EGRESS_COMPLETE"
        assert [r["filename"] for r in info["file_results"]] == [str(target)]
        third = await reconcile(store, gateway, lease=None)  # nothing missing any more
        assert third.stored == {}

        # the service's catalog lists the file from its derived egress_ended
        async def recordings() -> list[dict]:
            answer = await http.get(
                "/v1/recordings", params={"room_name": room}, headers=auth("admin")
            )
            assert answer.status_code == 200, answer.text
            return list(answer.json()["items"])

        (recording,) = await poll(recordings, bool)
        assert (recording["egress_id"], recording["filename"]) == (egress_id, str(target))
        assert "egress_ended" in await _events(http, egress_id)
    finally:
        await stack.aclose()
        await store.aclose()
        await gateway.aclose()


async def _events(http: httpx.AsyncClient, egress_id: str) -> list[str]:
    answer = await http.get(
        "/v1/webhooks/events", params={"egress_id": egress_id}, headers=auth("admin")
    )
    assert answer.status_code == 200, answer.text
    return [event["event"] for event in answer.json()["items"] if event["derived"]]
