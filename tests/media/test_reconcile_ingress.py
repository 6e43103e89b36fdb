"""Reconciliation of ingress with LiveKit's own ingress worker (`app.events.reconcile`): a
store that received none of LiveKit's webhooks learns, from LiveKit's state alone, that an
RTMP ingress started publishing and then that the publication ended, keyed by LiveKit's
`state.started_at`. Run one at a time."""

from __future__ import annotations

import asyncio

import pytest

from app.events.derived_events import DERIVED_BY, derived_id
from app.events.reconcile import reconcile
from app.events.webhooks import get_event
from app.livekit.gateway import LiveKit
from app.store.engine import Store
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import poll, unique
from tests.media.test_ingress_workers import _create, _ingress_getter, ffmpeg_push

pytestmark = pytest.mark.integration


async def test_an_ingress_publication_no_webhook_reported_is_derived_started_then_ended(
    media_client, media_livekit, ingress_worker, tmp_path
):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")  # LiveKit posts nothing here
    gateway = LiveKit(media_livekit.url, API_KEY, API_SECRET, 10)
    await store.migrate()
    try:
        room = unique("reconcile-ingress")
        created = await _create(
            media_client,
            {"input_type": "RTMP_INPUT", "name": "camera", "room_name": room,
             "participant_identity": "camera"},
        )  # fmt: skip
        ingress_id = created["ingress_id"]
        get = _ingress_getter(media_client, ingress_id)
        push_url = f"{created['url']}/{created['stream_key']}"
        publishing = None
        # Under load the worker may refuse a push (ffmpeg exits): push again, up to 10 times.
        for _attempt in range(10):
            await poll(lambda: asyncio.to_thread(ingress_worker.available), bool, timeout=120)
            with ffmpeg_push(push_url) as ffmpeg:
                state = await poll(
                    get,
                    lambda i: i["state"]["status"] == "ENDPOINT_PUBLISHING" or not ffmpeg.running(),
                    timeout=60,
                )
                if state["state"]["status"] != "ENDPOINT_PUBLISHING":
                    continue
                first = await reconcile(store, gateway, lease=None)
                if "ingress_started" not in first.stored and not ffmpeg.running():
                    continue  # the push was cut before LiveKit was asked: push again
                assert first.stored.get("ingress_started") == 1, (first, ffmpeg.log_tail())
                publishing = state
                break
        assert publishing is not None, "the ingress never published"
        await poll(get, lambda i: i["state"]["status"] == "ENDPOINT_INACTIVE")
        second = await reconcile(store, gateway, lease=None)
        assert second.stored.get("ingress_ended") == 1, second

        started_ns = str(publishing["state"]["started_at"])
        started = await get_event(store, derived_id("ingress_started", ingress_id, started_ns))
        ended = await get_event(store, derived_id("ingress_ended", ingress_id, started_ns))
        for event in (started, ended):
            assert event.derived is not None and event.derived.by == DERIVED_BY
            assert event.ingress_id == ingress_id and event.room_name == room
        state = ended.model_dump()["payload"]["ingress_info"]["state"]
        assert state["status"] == "ENDPOINT_INACTIVE" and str(state["started_at"]) == started_ns
        third = await reconcile(store, gateway, lease=None)  # nothing missing any more
        assert third.stored == {}
    finally:
        await store.aclose()
        await gateway.aclose()
