"""The rules of the reconciliation with LiveKit's state (`app.events.derived_events`,
`app.events.reconcile`), on LiveKit's own protobuf messages: which rooms are asked for
participants, which events are derived and in what shape (the body a received webhook would
have, plus `derived`), their deterministic ids, what the store then says, and the lease on
SQLite."""

from __future__ import annotations

import datetime as dt
import json

from livekit.protocol.egress import EgressInfo, EgressStatus
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo, Room

from app.events.derived_events import (
    DERIVED_BY,
    LiveKitState,
    StoredEgress,
    StoredParticipant,
    StoredRoom,
    StoreView,
    derive,
    derived_id,
    egress_to_look_up,
    rooms_to_list,
)
from app.events.reconcile import read_store_view
from app.events.webhooks import get_event
from app.livekit.webhook_verification import parse_event
from app.store import leases
from app.store.engine import Store
from tests.components import post_webhooks as post
from tests.conftest import auth

NOW = dt.datetime(2026, 12, 8, 2, 0, 0, tzinfo=dt.UTC)
T0 = 1_790_000_000


def live_view() -> StoreView:
    """The store holding room RM_a live with PA_1 and PA_2 connected, and EG_1 active."""
    room = StoredRoom("RM_a", "standup", T0)
    return StoreView(
        live_rooms={"RM_a": room},
        connected={
            "RM_a": {
                "PA_1": StoredParticipant("PA_1", "alice", "Alice", T0 + 1),
                "PA_2": StoredParticipant("PA_2", "bob", "", T0 + 2),
            }
        },
        active_egress={"EG_1": StoredEgress("EG_1", "RM_a", "standup")},
        started_rooms={"RM_a"},
        seen_participants={"PA_1", "PA_2"},
        seen_egress={"EG_1"},
    )


def test_a_room_livekit_no_longer_has_ends_after_its_participants_leave():
    events = derive(live_view(), LiveKitState(rooms=[]), NOW)
    assert [e.event for e in events] == ["participant_left", "participant_left", "room_finished"]
    for event in events:
        parsed, columns = parse_event(event.body)  # the same checks as a received webhook
        data = json.loads(event.body)
        assert data["derived"] == {"by": DERIVED_BY, "observed_at": "2026-12-08T02:00:00.000Z"}
        assert parsed.id == event.id and parsed.id.startswith("EV_derived_")
        assert parsed.room.sid == "RM_a" and columns["room_name"] == "standup"
        assert parsed.created_at == int(NOW.timestamp())
    left = parse_event(events[0].body)[0].participant
    assert (left.sid, left.identity, left.name, left.joined_at) == (
        "PA_1",
        "alice",
        "Alice",
        T0 + 1,
    )
    assert left.state == ParticipantInfo.State.DISCONNECTED
    assert events[0].id == derived_id("participant_left", "RM_a", "PA_1")
    assert events[2].id == derived_id("room_finished", "RM_a")
    again = derive(live_view(), LiveKitState(rooms=[]), NOW + dt.timedelta(minutes=5))
    assert [e.id for e in again] == [e.id for e in events]  # the same facts, the same ids


def test_only_rooms_whose_participants_disagree_or_never_started_are_asked_for():
    view = live_view()
    agreeing = Room(sid="RM_a", name="standup", num_participants=2)
    assert rooms_to_list(view, [agreeing]) == []
    fewer = Room(sid="RM_a", name="standup", num_participants=1)
    unseen = Room(sid="RM_b", name="other", num_participants=0)
    assert rooms_to_list(view, [fewer, unseen]) == [fewer, unseen]


def test_what_livekit_has_and_the_store_never_saw_appears_with_livekits_times():
    room = Room(sid="RM_b", name="other", creation_time=T0 + 10, num_participants=1)
    active = ParticipantInfo.State.ACTIVE
    carol = ParticipantInfo(sid="PA_3", identity="carol", joined_at=T0 + 12, state=active)
    joining = ParticipantInfo(sid="PA_4", identity="dave", joined_at=T0 + 13)  # not yet joined
    state = LiveKitState(rooms=[room], participants={"RM_b": [carol, joining]})
    view = StoreView()
    events = derive(view, state, NOW)
    assert [e.event for e in events] == ["room_started", "participant_joined"]
    started, joined = (parse_event(e.body)[0] for e in events)
    assert started.created_at == T0 + 10 and started.room.creation_time == T0 + 10
    assert joined.created_at == T0 + 12 and joined.participant.identity == "carol"
    assert joined.room.sid == "RM_b"


def test_a_participant_gone_from_a_live_room_leaves_and_nothing_else():
    room = Room(sid="RM_a", name="standup", num_participants=1)
    bob = ParticipantInfo(sid="PA_2", identity="bob", joined_at=T0 + 2)
    state = LiveKitState(rooms=[room], participants={"RM_a": [bob]}, active_egress=[])
    view = live_view()
    view.active_egress.clear()
    events = derive(view, state, NOW)
    assert [(e.event, parse_event(e.body)[0].participant.sid) for e in events] == [
        ("participant_left", "PA_1")
    ]


def test_an_egress_that_ended_is_reported_with_livekits_egress_info():
    view = live_view()
    assert egress_to_look_up(view, []) == ["EG_1"]
    assert egress_to_look_up(view, [EgressInfo(egress_id="EG_1")]) == []
    ended_ns = (T0 + 30) * 1_000_000_000
    complete = EgressInfo(
        egress_id="EG_1",
        room_id="RM_a",
        room_name="standup",
        status=EgressStatus.EGRESS_COMPLETE,
        ended_at=ended_ns,
    )
    room = Room(sid="RM_a", name="standup", num_participants=2)
    state = LiveKitState(rooms=[room], active_egress=[], looked_up_egress={"EG_1": complete})
    (event,) = derive(view, state, NOW)
    parsed, columns = parse_event(event.body)
    assert (event.event, parsed.egress_info, parsed.created_at) == (
        "egress_ended",
        complete,
        T0 + 30,
    )
    assert columns["egress_id"] == "EG_1"
    ending = EgressInfo(egress_id="EG_1", status=EgressStatus.EGRESS_ENDING)
    state.looked_up_egress = {"EG_1": ending}
    assert derive(view, state, NOW) == []  # still going: LiveKit reports its end
    state.looked_up_egress = {"EG_1": None}
    (forgotten,) = derive(view, state, NOW)
    info = parse_event(forgotten.body)[0].egress_info
    assert (info.egress_id, info.room_id, info.status) == (
        "EG_1",
        "RM_a",
        EgressStatus.EGRESS_ABORTED,
    )


def test_an_active_egress_the_store_never_saw_is_started():
    active = EgressInfo(
        egress_id="EG_9",
        room_id="RM_a",
        status=EgressStatus.EGRESS_ACTIVE,
        started_at=(T0 + 5) * 1_000_000_000,
    )
    room = Room(sid="RM_a", name="standup", num_participants=2)
    state = LiveKitState(rooms=[room], active_egress=[active])
    view = live_view()
    view.active_egress.clear()
    (event,) = derive(view, state, NOW)
    assert (event.event, parse_event(event.body)[0].created_at) == ("egress_started", T0 + 5)


async def test_derived_events_stored_read_back_as_the_store_view_and_marked(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.migrate()
    try:
        room = Room(sid="RM_b", name="other", creation_time=T0, num_participants=1)
        carol = ParticipantInfo(
            sid="PA_3",
            identity="carol",
            name="Carol",
            joined_at=T0 + 1,
            state=ParticipantInfo.State.ACTIVE,
        )
        state = LiveKitState(rooms=[room], participants={"RM_b": [carol]})
        for event in derive(StoreView(), state, NOW) * 2:  # twice: stored once
            await store.events.insert(parse_event(event.body)[1])
        view = await read_store_view(store, state)
        assert view.started_rooms == {"RM_b"} and view.seen_participants == {"PA_3"}
        assert view.connected["RM_b"]["PA_3"] == StoredParticipant("PA_3", "carol", "Carol", T0 + 1)
        assert derive(view, state, NOW) == []  # nothing is missing any more
        stored = await get_event(store, derived_id("participant_joined", "RM_b", "PA_3"))
        assert stored.derived is not None and stored.derived.by == DERIVED_BY
        assert stored.derived.observed_at == NOW
        assert len(await store.events.find(filters={})) == 2
        gone = LiveKitState(rooms=[])
        for event in derive(view, gone, NOW):
            await store.events.insert(parse_event(event.body)[1])
        after = await read_store_view(store, gone)
        assert after.live_rooms == {} and after.connected == {}
    finally:
        await store.aclose()


async def test_a_lease_has_one_holder_until_it_expires(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.migrate()
    try:
        assert await leases.take(store, "job", "a", now=NOW, seconds=30)
        assert not await leases.take(
            store, "job", "b", now=NOW + dt.timedelta(seconds=10), seconds=30
        )
        assert await leases.take(store, "job", "a", now=NOW + dt.timedelta(seconds=20), seconds=30)
        later = NOW + dt.timedelta(seconds=49)
        assert not await leases.take(store, "job", "b", now=later, seconds=30)
        assert await leases.take(store, "job", "b", now=NOW + dt.timedelta(seconds=50), seconds=30)
        assert await leases.take(store, "other", "a", now=NOW, seconds=30)  # one per name
    finally:
        await store.aclose()


def ingress(status: IngressState.Status.ValueType, started: int, **state: int) -> IngressInfo:
    return IngressInfo(
        ingress_id="IN_1",
        room_name="standup",
        state=IngressState(status=status, started_at=started * 1_000_000_000, **state),
    )


def test_an_ingress_publication_is_started_and_ended_as_livekit_has_it():
    publishing = ingress(IngressState.Status.ENDPOINT_PUBLISHING, T0 + 40)
    (started,) = derive(StoreView(), LiveKitState(rooms=[], ingress=[publishing]), NOW)
    parsed, columns = parse_event(started.body)
    assert (started.event, parsed.created_at, columns["ingress_id"]) == (
        "ingress_started",
        T0 + 40,
        "IN_1",
    )
    key = ("IN_1", (T0 + 40) * 1_000_000_000)
    view = StoreView(active_ingress={key: publishing}, seen_ingress={key})
    assert derive(view, LiveKitState(rooms=[], ingress=[publishing]), NOW) == []
    buffering = ingress(IngressState.Status.ENDPOINT_BUFFERING, T0 + 40)
    assert derive(view, LiveKitState(rooms=[], ingress=[buffering]), NOW) == []
    done = ingress(IngressState.Status.ENDPOINT_COMPLETE, T0 + 40, ended_at=(T0 + 90) * 10**9)
    (ended,) = derive(view, LiveKitState(rooms=[], ingress=[done]), NOW)
    assert (ended.event, parse_event(ended.body)[0].ingress_info) == ("ingress_ended", done)
    assert parse_event(ended.body)[0].created_at == T0 + 90
    (deleted,) = derive(view, LiveKitState(rooms=[], ingress=[]), NOW)  # LiveKit forgot it
    info = parse_event(deleted.body)[0].ingress_info
    assert info.state.status == IngressState.Status.ENDPOINT_INACTIVE
    assert info.state.started_at == key[1] and deleted.id == ended.id  # one fact, one id
    again = ingress(IngressState.Status.ENDPOINT_PUBLISHING, T0 + 100)  # a new publication
    events = derive(view, LiveKitState(rooms=[], ingress=[again]), NOW)
    assert sorted(e.event for e in events) == ["ingress_ended", "ingress_started"]
    assert derive(view, LiveKitState(rooms=[], ingress=None), NOW) == []  # not asked


async def test_stored_ingress_publications_read_back_as_the_store_view(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.migrate()
    try:
        publishing = ingress(IngressState.Status.ENDPOINT_PUBLISHING, T0 + 40)
        state = LiveKitState(rooms=[], ingress=[publishing])
        (started,) = derive(StoreView(), state, NOW)
        await store.events.insert(parse_event(started.body)[1])
        view = await read_store_view(store, state)
        key = ("IN_1", (T0 + 40) * 1_000_000_000)
        assert view.seen_ingress == {key} and set(view.active_ingress) == {key}
        assert view.active_ingress[key].room_name == "standup"
        gone = LiveKitState(rooms=[], ingress=[])
        (ended,) = derive(view, gone, NOW)
        await store.events.insert(parse_event(ended.body)[1])
        after = await read_store_view(store, state)  # seen: of the ingresses LiveKit lists
        assert after.active_ingress == {} and after.seen_ingress == {key}
    finally:
        await store.aclose()


async def test_a_real_event_arriving_after_the_derived_one_wins_in_sessions(app_client):
    room = {"sid": "RM_p", "name": "precedence", "creationTime": str(T0)}
    alice = {"sid": "PA_p", "identity": "alice", "joinedAt": str(T0 + 1)}

    def real(event_id: str, kind: str, offset: int, **extra: object) -> dict:
        return {"id": event_id, "event": kind, "createdAt": str(T0 + offset), "room": room, **extra}

    async with app_client("http://127.0.0.1:9") as http:
        store = http.app.state.store
        await post(
            http,
            [
                real("EV_1", "room_started", 0),
                real("EV_2", "participant_joined", 1, participant=alice),
            ],
        )
        # LiveKit no longer has the room: both ends are derived, observed ten minutes on
        observed = dt.datetime.fromtimestamp(T0 + 600, dt.UTC)
        gone = LiveKitState(rooms=[])
        for event in derive(await read_store_view(store, gone), gone, observed):
            await store.events.insert(parse_event(event.body)[1])

        async def session() -> dict:
            response = await http.get("/v1/sessions/RM_p", headers=auth("admin"))
            assert response.status_code == 200, response.text
            return response.json()

        at = dt.datetime.fromisoformat
        derived = await session()
        assert at(derived["end_time"]).timestamp() == T0 + 600
        assert at(derived["participants"][0]["left_at"]).timestamp() == T0 + 600
        # LiveKit's own events for the same facts arrive after all (an earlier time): they win
        await post(
            http,
            [
                real("EV_3", "participant_left", 30, participant=alice),
                real("EV_4", "room_finished", 40),
            ],
        )
        final = await session()
        assert at(final["end_time"]).timestamp() == T0 + 40
        assert at(final["participants"][0]["left_at"]).timestamp() == T0 + 30
