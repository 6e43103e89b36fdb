"""Reconciliation against a real LiveKit server (`app.events.reconcile`): what LiveKit's webhooks
lost while the service was down comes back as derived events (listed, streamed, in
sessions, relayed to the app's webhook endpoints); what the store never saw appears with
LiveKit's own times; and the same facts derived by two replicas on one PostgreSQL are
stored once.

Each test runs a LiveKit server of its own, so the rooms it reconciles are only its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livekit import api

from app.core.devserver import LocalLiveKit, free_port
from app.events.derived_events import DERIVED_BY, derived_id
from app.events.reconcile import reconcile
from app.livekit.gateway import LiveKit
from app.store.engine import Store
from tests.components import LiveService, sse_events
from tests.conftest import API_KEY, API_SECRET, auth, make_settings
from tests.helpers import unique
from tests.participants import fetch_token, joined, wait_for

pytestmark = pytest.mark.integration

#: The reconciliation interval of these tests (seconds).
INTERVAL = 2
#: How long LiveKit keeps an undelivered webhook queued before dropping it (its
#: `webhook.resource_url_notifier.max_age`, 30 s by default): shorter here, so that the
#: outage outlasts LiveKit's retries sooner; the webhooks are dropped by LiveKit's own code.
WEBHOOK_MAX_AGE = "2s"


@pytest.fixture
def own_livekit(request: pytest.FixtureRequest) -> Iterator[tuple[LocalLiveKit, int]]:
    """A LiveKit server of the test's own, posting its webhooks (signed with the test key)
    to `port`, where the test runs the service when it wants them delivered; with
    `@pytest.mark.parametrize("own_livekit", [False], indirect=True)` it posts none."""
    port = free_port()
    posting = getattr(request, "param", True)
    webhook = {
        "api_key": API_KEY,
        "urls": [f"http://127.0.0.1:{port}/v1/webhooks/livekit"],
        "resource_url_notifier": {"max_age": WEBHOOK_MAX_AGE},
    }
    server = LocalLiveKit(
        api_key=API_KEY,
        api_secret=API_SECRET,
        extra_config={"webhook": webhook} if posting else None,
    )
    server.start()
    yield server, port
    server.stop()


def start_service(livekit: LocalLiveKit, port: int, tmp: Path, **overrides: object) -> LiveService:
    settings = make_settings(livekit.url, tmp, reconcile_interval_seconds=INTERVAL, **overrides)
    return LiveService(port).start(settings)


async def room_events(client: httpx.AsyncClient, room_name: str) -> list[dict]:
    response = await client.get(
        "/v1/webhooks/events",
        params={"room_name": room_name, "limit": 500},
        headers=auth("events"),
    )
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))


def gave_up(livekit: LocalLiveKit, event: str, room_name: str) -> bool:
    """Whether LiveKit's log says it dropped, or failed for good to send, `event` of the
    room `room_name` (`webhook.ResourceURLNotifier`)."""
    text = livekit.process.log_path.read_text(errors="replace")
    return any(
        ("dropped webhook" in line or "failed to send webhook" in line)
        and f'"{event}"' in line
        and f'"{room_name}"' in line
        for line in text.splitlines()
    )


async def test_what_livekit_could_not_deliver_while_the_service_was_down_is_derived(
    own_livekit, tmp_path, subscriber
):
    livekit, port = own_livekit
    room_name = unique("outage")
    service = start_service(livekit, port, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            # the app's webhook endpoint: the derived events are relayed to it as well
            endpoint = await client.post(
                "/v1/webhooks/endpoints",
                json={"url": subscriber.path, "room_name_pattern": room_name},
                headers=auth("hooks"),
            )
            assert endpoint.status_code == 201, endpoint.text
            subscriber.secrets = [endpoint.json()["signing_secret"]]
            alice = await fetch_token(client, room_name, "alice")
            bob = await fetch_token(client, room_name, "bob")
            async with (
                joined(alice["server_url"], alice["participant_token"]) as alices,
                joined(bob["server_url"], bob["participant_token"]) as bobs,
            ):
                session_id = await alices.sid
                sids = {alices.local_participant.sid, bobs.local_participant.sid}

                async def both_joined() -> bool:
                    events = await room_events(client, room_name)
                    joins = {
                        e["payload"]["participant"]["sid"]
                        for e in events
                        if e["event"] == "participant_joined"
                    }
                    return joins == sids

                await wait_for(both_joined, timeout=20)
                before = await room_events(client, room_name)
                service.stop()  # the service goes down with both still connected
        # ... both leave and the room ends while nothing listens at the webhook URL
        async with api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
        await wait_for(lambda: gave_up(livekit, "room_finished", room_name), timeout=90, interval=1)
    finally:
        service.stop()

    service = start_service(livekit, port, tmp_path)  # back, on the same store
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:

            async def finished() -> bool:
                return any(
                    e["event"] == "room_finished" for e in await room_events(client, room_name)
                )

            await wait_for(finished, timeout=2 * INTERVAL + 8, interval=0.2)
            events = await room_events(client, room_name)
            derived = [e for e in events if e["derived"] is not None]
            assert [e["event"] for e in events[: len(before)]] == [e["event"] for e in before]
            assert all(e["derived"] is None for e in before)
            assert sorted(e["event"] for e in derived) == [
                "participant_left",
                "participant_left",
                "room_finished",
            ]
            assert {
                e["payload"]["participant"]["sid"]
                for e in derived
                if e["event"] == "participant_left"
            } == sids
            assert all(e["derived"]["by"] == DERIVED_BY for e in derived)
            assert all(e["payload"]["room"]["sid"] == session_id for e in derived)
            assert {e["id"] for e in derived} == {
                derived_id("room_finished", session_id),
                *(derived_id("participant_left", session_id, sid) for sid in sids),
            }

            # the stream, resumed from the last event stored before the outage
            frames = []
            headers = {**auth("events"), "Last-Event-ID": before[-1]["id"]}
            params = {"room_name": room_name}
            async with client.stream(
                "GET", "/v1/webhooks/events/stream", headers=headers, params=params
            ) as response:
                async with asyncio.timeout(30):
                    async for frame in sse_events(response):
                        if "data" in frame:
                            frames.append(json.loads(frame["data"]))
                        if len(frames) == len(derived):
                            break
            assert [(f["id"], f["derived"]["by"]) for f in frames] == [
                (e["id"], DERIVED_BY) for e in derived
            ]

            detail = await client.get(f"/v1/sessions/{session_id}", headers=auth("admin"))
            assert detail.status_code == 200, detail.text
            session = detail.json()
            assert session["end_time"] is not None
            assert {p["participant_identity"] for p in session["participants"]} == {"alice", "bob"}
            assert all(p["left_at"] is not None for p in session["participants"])
            listed = await client.get(
                "/v1/sessions", params={"room_name": room_name}, headers=auth("admin")
            )
            summary = listed.json()["items"][0]
            assert summary["ended_at"] is not None and summary["num_active_participants"] == 0
            metrics = (await client.get("/metrics")).text
            assert 'control_plane_derived_events_total{event="room_finished"}' in metrics
            assert 'control_plane_reconcile_livekit_calls_total{method="ListRooms"}' in metrics

            # relayed to the app's endpoint, signed, with the top-level "derived" object
            derived_ids = {e["id"] for e in derived}
            every_id = derived_ids | {e["id"] for e in before}
            await wait_for(lambda: every_id <= set(subscriber.event_ids()), timeout=30)
            relayed = {
                body["id"]: body
                for body in (json.loads(d.body) for d in subscriber.received if d.verified)
            }
            assert sorted(relayed[i]["event"] for i in derived_ids) == [
                "participant_left",
                "participant_left",
                "room_finished",
            ]
            assert all(relayed[i]["derived"]["by"] == DERIVED_BY for i in derived_ids)
            assert all(relayed[e["id"]].get("derived") is None for e in before)
    finally:
        service.stop()


@pytest.mark.parametrize("own_livekit", [False], indirect=True)
async def test_a_room_and_participant_the_store_never_saw_appear_with_livekits_times(
    own_livekit, tmp_path
):
    livekit, port = own_livekit  # it posts no webhooks at all
    room_name = unique("unseen")
    token = (
        api.AccessToken(API_KEY, API_SECRET)
        .with_identity("carol")
        .with_name("Carol")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    async with joined(livekit.url, token) as carols:
        session_id = await carols.sid
        async with api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk:
            (room,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room_name]))).rooms
            (carol,) = (
                await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
            ).participants
        service = start_service(livekit, port, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:

                async def both() -> bool:
                    kinds = [e["event"] for e in await room_events(client, room_name)]
                    return kinds == ["room_started", "participant_joined"]

                await wait_for(both, timeout=2 * INTERVAL + 8, interval=0.2)
                started, joined_event = await room_events(client, room_name)
                at = dt.datetime.fromisoformat
                assert at(started["created_at"]).timestamp() == room.creation_time
                assert started["payload"]["room"]["creation_time"] == room.creation_time
                assert started["payload"]["room"]["sid"] == session_id
                assert at(joined_event["created_at"]).timestamp() == carol.joined_at
                assert joined_event["payload"]["participant"]["sid"] == carol.sid
                assert joined_event["participant_identity"] == "carol"
                assert started["derived"]["by"] == joined_event["derived"]["by"] == DERIVED_BY
                listed = await client.get(
                    "/v1/sessions", params={"room_name": room_name}, headers=auth("admin")
                )
                (summary,) = listed.json()["items"]
                assert summary["session_id"] == session_id
                assert at(summary["created_at"]).timestamp() == room.creation_time_ms / 1000
                assert (summary["ended_at"], summary["num_active_participants"]) == (None, 1)
                detail = (
                    await client.get(f"/v1/sessions/{session_id}", headers=auth("admin"))
                ).json()
                (person,) = detail["participants"]
                assert (person["participant_name"], person["left_at"]) == ("Carol", None)
                assert at(person["joined_at"]).timestamp() == carol.joined_at_ms / 1000
        finally:
            service.stop()


@pytest.mark.parametrize("own_livekit", [False], indirect=True)
async def test_the_same_facts_derived_by_two_replicas_at_once_are_stored_once(
    own_livekit, postgres_url, tmp_path
):
    livekit, _ = own_livekit
    room_name = unique("twice")
    async with api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room_name, empty_timeout=300))
        (room,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room_name]))).rooms

    # two replicas deriving at the same moment, without the lease: the ids make them one
    stores = [Store(postgres_url) for _ in range(2)]
    gateways = [LiveKit(livekit.url, API_KEY, API_SECRET, 5) for _ in range(2)]
    try:
        await stores[0].migrate()
        reports = await asyncio.gather(
            *(reconcile(s, g, lease=None) for s, g in zip(stores, gateways, strict=True))
        )
        assert sum(r.stored.get("room_started", 0) for r in reports) == 1
        rows = await stores[0].events.find(filters={"room_name": room_name})
        assert [row.id for row in rows] == [derived_id("room_started", room.sid)]
    finally:
        for store, gateway in zip(stores, gateways, strict=True):
            await store.aclose()
            await gateway.aclose()

    # two services on that database, reconciling every interval: one run at a time, and the
    # room's end (deleted now) is one event too
    async with api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk:
        await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
    replicas = [
        start_service(livekit, free_port(), tmp_path / f"r{i}", database_url=postgres_url)
        for i in range(2)
    ]
    try:
        async with httpx.AsyncClient(base_url=replicas[1].url, timeout=30) as client:

            async def finished() -> bool:
                kinds = [e["event"] for e in await room_events(client, room_name)]
                return "room_finished" in kinds

            await wait_for(finished, timeout=2 * INTERVAL + 8, interval=0.2)
            await asyncio.sleep(2 * INTERVAL)  # both replicas run again meanwhile
            kinds = [e["event"] for e in await room_events(client, room_name)]
            assert kinds == ["room_started", "room_finished"]
    finally:
        for replica in replicas:
            replica.stop()
