"""Rooms and participants against the real LiveKit dev server, with real participants that
joined with tokens from this service: what the routes change is observed by the
participants themselves (their rtc events and local state), and every missing room or
participant is a 404 problem."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from livekit import api, rtc

from tests.conftest import API_KEY, API_SECRET, auth
from tests.helpers import assert_problem, unique
from tests.participants import (
    fetch_token,
    joined,
    publish_audio,
    publish_tone,
    recorder,
    wait_for,
)

pytestmark = pytest.mark.integration

ADMIN = auth("admin")
READER = auth("reader")


@asynccontextmanager
async def participants(
    client, room: str, *identities: str, auto_subscribe: bool = True
) -> AsyncIterator[list[rtc.Room]]:
    """`identities` joined to `room`, in order, with tokens from `POST /v1/token` (a later
    one sees the earlier ones as soon as it is connected)."""
    async with AsyncExitStack() as stack:
        rooms = []
        for identity in identities:
            body = await fetch_token(client, room, identity)
            rooms.append(
                await stack.enter_async_context(
                    joined(
                        body["server_url"],
                        body["participant_token"],
                        auto_subscribe=auto_subscribe,
                    )
                )
            )
        yield rooms


# Rooms


async def test_create_room_passes_every_field_to_livekit(client, livekit_server):
    room = unique("created")
    agent = unique("agent")
    response = await client.post(
        "/v1/rooms",
        json={
            "name": room,
            "emptyTimeout": 120,  # LiveKit's lowerCamelCase is accepted too
            "departure_timeout": 15,
            "max_participants": 1,
            "metadata": "created by the control plane",
            "agents": [{"agent_name": agent, "metadata": json.dumps({"greet": True})}],
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["sid"].startswith("RM_")
    assert (created["name"], created["empty_timeout"], created["max_participants"]) == (
        room,
        120,
        1,
    )
    assert created["metadata"] == "created by the control plane"

    # the server has the room, with its configuration ...
    listed = (await client.get(f"/v1/rooms/{room}", headers=READER)).json()
    assert (listed["sid"], listed["departure_timeout"]) == (created["sid"], 15)
    # ... and the agent dispatch the request asked for, as LiveKit itself reports it
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as lkapi:
        dispatches = await lkapi.agent_dispatch.list_dispatch(room)
    assert [(d.agent_name, json.loads(d.metadata)) for d in dispatches] == [
        (agent, {"greet": True})
    ]

    # a participant joining sees the room's metadata; the room holds one participant only
    async with participants(client, room, "first") as (first,):
        assert first.metadata == "created by the control plane"
        assert first.name == room
        second = await fetch_token(client, room, "second")
        with pytest.raises(rtc.ConnectError):
            async with joined(second["server_url"], second["participant_token"]):
                pass


async def test_create_room_is_idempotent_with_a_key(client):
    room = unique("idempotent")
    headers = {**ADMIN, "Idempotency-Key": unique("key")}
    first = await client.post("/v1/rooms", json={"name": room}, headers=headers)
    assert first.status_code == 201, first.text
    assert (await client.delete(f"/v1/rooms/{room}", headers=ADMIN)).status_code == 204

    # the retry gets the first response, and LiveKit is not asked again: the room stays gone
    again = await client.post("/v1/rooms", json={"name": room}, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_problem(await client.get(f"/v1/rooms/{room}", headers=READER), 404, "room_not_found")

    other = await client.post("/v1/rooms", json={"name": unique("other")}, headers=headers)
    assert_problem(other, 409, "idempotency_key_reused")


async def test_create_room_refusals(client):
    long_name = "é" * 129  # 258 bytes
    for body in (
        {"name": long_name},
        {"name": unique("meta"), "metadata": "x" * (512 * 1024 + 1)},
        {"name": ""},
        {"name": unique("typo"), "empty_timeot": 1},
        {"name": unique("range"), "max_participants": -1},
    ):
        response = await client.post("/v1/rooms", json=body, headers=ADMIN)
        assert_problem(response, 422, "validation_failed")
    # a preset LiveKit does not know: LiveKit's invalid_argument
    response = await client.post(
        "/v1/rooms", json={"name": unique("preset"), "room_preset": "nope"}, headers=ADMIN
    )
    assert_problem(response, 422, "invalid_argument")
    # a node LiveKit does not know: LiveKit's `unknown` "could not find object"
    response = await client.post(
        "/v1/rooms", json={"name": unique("node"), "node_id": "ND_nowhere"}, headers=ADMIN
    )
    problem = assert_problem(response, 422, "node_not_found")
    assert "ND_nowhere" in problem["detail"]


async def test_list_and_get_see_rooms_and_their_participants(client):
    room, other = unique("listed"), unique("listed-other")
    async with (
        participants(client, room, "alice", "bob") as (alice, _bob),
        participants(client, other, "carol") as (carol,),
    ):
        publication = await publish_audio(alice)

        response = await client.get(
            "/v1/rooms", params={"names": [room, other, unique("absent")]}, headers=READER
        )
        assert response.status_code == 200, response.text
        assert response.json()["next_page_token"] is None
        listed = {r["name"]: r for r in response.json()["items"]}
        assert set(listed) == {room, other}  # the absent name is simply not listed
        assert listed[room]["sid"] == await alice.sid
        assert listed[other]["sid"] == await carol.sid

        everything = await client.get("/v1/rooms", headers=READER)
        assert {room, other} <= {r["name"] for r in everything.json()["items"]}

        got = await client.get(f"/v1/rooms/{room}", headers=READER)
        assert got.status_code == 200, got.text
        assert (got.json()["name"], got.json()["sid"]) == (room, await alice.sid)

        people = await client.get(f"/v1/rooms/{room}/participants", headers=READER)
        assert people.status_code == 200, people.text
        assert people.json()["next_page_token"] is None
        assert sorted(p["identity"] for p in people.json()["items"]) == ["alice", "bob"]

        one = await client.get(f"/v1/rooms/{room}/participants/alice", headers=READER)
        assert one.status_code == 200, one.text
        info = one.json()
        assert (info["identity"], info["sid"], info["state"]) == (
            "alice",
            alice.local_participant.sid,
            "ACTIVE",
        )
        assert [t["sid"] for t in info["tracks"]] == [publication.sid]
        assert info["tracks"][0]["source"] == "MICROPHONE"
        assert isinstance(info["joined_at"], int)


async def test_room_metadata_update_reaches_participants(client):
    room = unique("room-meta")
    async with participants(client, room, "watcher") as (watcher,):
        events = recorder(watcher, "room_metadata_changed")
        metadata = json.dumps({"topic": "standup", "note": "grüße ✓"})
        response = await client.patch(
            f"/v1/rooms/{room}", json={"metadata": metadata}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == room
        assert response.json()["metadata"] == metadata
        await wait_for(lambda: watcher.metadata == metadata)
        assert events and events[-1][2] == metadata  # (event, old, new)

        too_big = await client.patch(
            f"/v1/rooms/{room}", json={"metadata": "x" * (512 * 1024 + 1)}, headers=ADMIN
        )
        assert_problem(too_big, 422, "validation_failed")


async def test_delete_room_disconnects_everyone(client):
    room = unique("deleted")
    async with participants(client, room, "alice") as (alice,):
        events = recorder(alice, "disconnected")
        response = await client.delete(f"/v1/rooms/{room}", headers=ADMIN)
        assert response.status_code == 204, response.text
        assert response.content == b""
        await wait_for(lambda: events)
        assert events[0][1] == rtc.DisconnectReason.ROOM_DELETED
        assert_problem(await client.get(f"/v1/rooms/{room}", headers=READER), 404, "room_not_found")


# Participants


async def test_participant_update_is_observed_by_the_participant(client):
    room = unique("participant-update")
    async with participants(client, room, "alice", "bob") as (alice, bob):
        seen_by_alice = recorder(
            alice,
            "participant_metadata_changed",
            "participant_attributes_changed",
            "participant_name_changed",
            "participant_permissions_changed",
        )
        seen_by_bob = recorder(bob, "participant_metadata_changed")
        response = await client.patch(
            f"/v1/rooms/{room}/participants/alice",
            json={
                "metadata": '{"role": "host"}',
                "attributes": {"seat": "1", "lang": "de"},
                "name": "Alice Host",
                "permission": {
                    "can_subscribe": True,
                    "can_publish": False,
                    "can_publish_data": True,
                },
            },
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        info = response.json()
        assert info["identity"] == "alice"
        assert (info["metadata"], info["name"]) == ('{"role": "host"}', "Alice Host")
        assert info["attributes"] == {"seat": "1", "lang": "de"}
        assert info["permission"]["can_publish"] is False
        assert info["permission"]["can_subscribe"] is True

        me = alice.local_participant
        await wait_for(
            lambda: (
                me.metadata == '{"role": "host"}'
                and me.attributes == {"seat": "1", "lang": "de"}
                and me.name == "Alice Host"
                and me.permissions.can_publish is False
            )
        )
        assert me.permissions.can_subscribe and me.permissions.can_publish_data
        expected = {
            "participant_metadata_changed",
            "participant_attributes_changed",
            "participant_name_changed",
            "participant_permissions_changed",
        }
        await wait_for(lambda: expected <= {event[0] for event in seen_by_alice})
        assert all(me in event[1:] for event in seen_by_alice)  # all about alice herself
        # the other participant sees it too
        await wait_for(lambda: bob.remote_participants["alice"].metadata == '{"role": "host"}')
        assert seen_by_bob

        # attributes merge; an empty value deletes the key (LiveKit's rule)
        response = await client.patch(
            f"/v1/rooms/{room}/participants/alice",
            json={"attributes": {"lang": "", "mood": "ok"}},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        await wait_for(lambda: me.attributes == {"seat": "1", "mood": "ok"})
        assert me.metadata == '{"role": "host"}'  # untouched: not in the body


async def test_participant_update_limits(client):
    room = unique("participant-limits")
    path = f"/v1/rooms/{room}/participants/alice"
    for body in (
        {"metadata": "x" * (512 * 1024 + 1)},
        {"attributes": {"k": "v" * (64 * 1024)}},
        {"name": "n" * 257},
        {"permission": {"can_fly": True}},
    ):
        response = await client.patch(path, json=body, headers=ADMIN)
        assert_problem(response, 422, "validation_failed")


async def test_removed_participant_is_disconnected(client):
    room = unique("removed")
    async with participants(client, room, "stays", "goes") as (stays, goes):
        reasons = recorder(goes, "disconnected")
        response = await client.delete(f"/v1/rooms/{room}/participants/goes", headers=ADMIN)
        assert response.status_code == 204, response.text
        await wait_for(lambda: reasons)
        assert reasons[0][1] == rtc.DisconnectReason.PARTICIPANT_REMOVED
        assert goes.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
        assert stays.connection_state == rtc.ConnectionState.CONN_CONNECTED
        people = await client.get(f"/v1/rooms/{room}/participants", headers=READER)
        assert [p["identity"] for p in people.json()["items"]] == ["stays"]
        assert_problem(
            await client.get(f"/v1/rooms/{room}/participants/goes", headers=READER),
            404,
            "participant_not_found",
        )


async def test_muted_track_is_reported_muted(client):
    room = unique("muted")
    async with participants(client, room, "speaker", "listener") as (speaker, listener):
        publication = await publish_audio(speaker)
        await wait_for(lambda: publication.sid in _remote_tracks(listener, "speaker"))
        muted_events = recorder(speaker, "track_muted")
        path = f"/v1/rooms/{room}/participants/speaker/tracks/{publication.sid}/mute"
        response = await client.post(path, json={"muted": True}, headers=ADMIN)
        assert response.status_code == 200, response.text
        track = response.json()["track"]
        assert (track["sid"], track["muted"], track["source"]) == (
            publication.sid,
            True,
            "MICROPHONE",
        )
        # the publisher's own publication is muted, and the other participant sees it
        await wait_for(lambda: publication.muted)
        assert any(e[2].sid == publication.sid for e in muted_events)
        await wait_for(lambda: _remote_tracks(listener, "speaker")[publication.sid].muted)
        info = (await client.get(f"/v1/rooms/{room}/participants/speaker", headers=READER)).json()
        assert info["tracks"][0]["muted"] is True

        # LiveKit refuses a remote unmute unless room.enable_remote_unmute is set
        unmute = await client.post(path, json={"muted": False}, headers=ADMIN)
        assert_problem(unmute, 409, "failed_precondition")

        unknown = f"/v1/rooms/{room}/participants/speaker/tracks/TR_unknown/mute"
        response = await client.post(unknown, json={"muted": True}, headers=ADMIN)
        assert_problem(response, 404, "track_not_found")


def _remote_tracks(room: rtc.Room, identity: str) -> dict[str, rtc.RemoteTrackPublication]:
    participant = room.remote_participants.get(identity)
    return dict(participant.track_publications) if participant else {}


async def test_data_reaches_participants(client):
    room = unique("data")
    async with participants(client, room, "bob", "carol") as (bob, carol):
        bob_got = recorder(bob, "data_received")
        carol_got = recorder(carol, "data_received")
        path = f"/v1/rooms/{room}/data"

        # text, to everyone, with a topic
        response = await client.post(path, json={"text": "hello ✓", "topic": "chat"}, headers=ADMIN)
        assert response.status_code == 204, response.text
        await wait_for(lambda: bob_got and carol_got)
        for received in (bob_got[0][1], carol_got[0][1]):
            assert received.data == "hello ✓".encode()
            assert received.topic == "chat"
            assert received.kind == rtc.DataPacketKind.KIND_RELIABLE
            assert received.participant is None  # sent by the server

        # binary, to bob only; then a marker to everyone on the same (ordered) channel
        payload = bytes(range(256))
        response = await client.post(
            path,
            json={
                "data": base64.b64encode(payload).decode(),
                "destination_identities": ["bob"],
                "topic": "blob",
            },
            headers=ADMIN,
        )
        assert response.status_code == 204, response.text
        response = await client.post(path, json={"text": "marker"}, headers=ADMIN)
        assert response.status_code == 204, response.text
        await wait_for(lambda: len(bob_got) == 3 and len(carol_got) == 2)
        assert (bob_got[1][1].data, bob_got[1][1].topic) == (payload, "blob")
        assert bob_got[2][1].data == b"marker"
        assert [e[1].data for e in carol_got] == ["hello ✓".encode(), b"marker"]

        # LOSSY delivery
        response = await client.post(
            path,
            json={"data": base64.b64encode(b"\x00lossy").decode(), "kind": "LOSSY"},
            headers=ADMIN,
        )
        assert response.status_code == 204, response.text
        await wait_for(lambda: any(e[1].data == b"\x00lossy" for e in bob_got))
        lossy = next(e[1] for e in bob_got if e[1].data == b"\x00lossy")
        assert lossy.kind == rtc.DataPacketKind.KIND_LOSSY

        for body in (
            {},
            {"text": "a", "data": "YQ=="},
            {"data": "not base64!"},
            {"text": "a", "kind": "SOMETIMES"},
        ):
            assert_problem(
                await client.post(path, json=body, headers=ADMIN), 422, "validation_failed"
            )


async def test_subscriptions_change_what_the_participant_receives(client):
    room = unique("subscriptions")
    async with (
        participants(client, room, "speaker") as (speaker,),
        publish_tone(speaker) as publication,
        participants(client, room, "viewer", auto_subscribe=False) as (viewer,),
    ):
        events = recorder(viewer, "track_subscribed", "track_unsubscribed")
        await wait_for(lambda: publication.sid in _remote_tracks(viewer, "speaker"))
        remote = _remote_tracks(viewer, "speaker")[publication.sid]
        assert not remote.subscribed and remote.track is None
        path = f"/v1/rooms/{room}/participants/viewer/subscriptions"

        # subscribed by the service: the viewer gets the track and its audio
        response = await client.post(
            path, json={"track_sids": [publication.sid], "subscribe": True}, headers=ADMIN
        )
        assert response.status_code == 204, response.text
        await wait_for(lambda: remote.track is not None)
        frames = [0]
        stream = rtc.AudioStream(remote.track)

        async def count_frames() -> None:
            async for _ in stream:
                frames[0] += 1

        counter = asyncio.create_task(count_frames())
        try:
            await wait_for(lambda: frames[0] > 0)
            assert await _inbound_packets(remote.track) > 0

            # unsubscribed: the viewer's receiver for the track is gone
            response = await client.post(
                path, json={"track_sids": [publication.sid], "subscribe": False}, headers=ADMIN
            )
            assert response.status_code == 204, response.text
            await wait_for(lambda: _no_inbound(remote.track))
            received = frames[0]

            # subscribed again, by participant sid and track sids: the audio flows again
            tracks = [
                {"participant_sid": speaker.local_participant.sid, "track_sids": [publication.sid]}
            ]
            response = await client.post(
                path, json={"participant_tracks": tracks, "subscribe": True}, headers=ADMIN
            )
            assert response.status_code == 204, response.text
            await wait_for(lambda: frames[0] > received)
            assert [e[0] for e in events].count("track_subscribed") == 2
        finally:
            counter.cancel()
            await stream.aclose()


async def _inbound_packets(track: rtc.Track) -> int:
    """Packets the participant received for `track` (its inbound-rtp stats), 0 if none."""
    stats = await track.get_stats()
    return sum(s.inbound_rtp.received.packets_received for s in stats if s.HasField("inbound_rtp"))


async def _no_inbound(track: rtc.Track) -> bool:
    stats = await track.get_stats()
    return not any(s.HasField("inbound_rtp") for s in stats)


async def test_forward_and_move_are_refused_by_a_self_hosted_server(client):
    room, destination = unique("forward-from"), unique("forward-to")
    async with participants(client, room, "alice") as (alice,):
        for action in ("forward", "move"):
            response = await client.post(
                f"/v1/rooms/{room}/participants/alice/{action}",
                json={"destination_room": destination},
                headers=ADMIN,
            )
            assert_problem(response, 501, "feature_not_enabled")
            assert "LiveKit Cloud" in response.json()["detail"]
            # the same room is LiveKit's invalid_argument
            response = await client.post(
                f"/v1/rooms/{room}/participants/alice/{action}",
                json={"destination_room": room},
                headers=ADMIN,
            )
            assert_problem(response, 422, "invalid_argument")
            response = await client.post(
                f"/v1/rooms/{room}/participants/alice/{action}", json={}, headers=ADMIN
            )
            assert_problem(response, 422, "validation_failed")
        # nothing happened to the participant
        assert alice.connection_state == rtc.ConnectionState.CONN_CONNECTED
        assert alice.name == room
        people = await client.get(f"/v1/rooms/{room}/participants", headers=READER)
        assert [p["identity"] for p in people.json()["items"]] == ["alice"]


# Missing rooms and participants, on every route

ROOM_ROUTES = [
    ("GET", "/v1/rooms/{room}", None),
    ("PATCH", "/v1/rooms/{room}", {"metadata": "m"}),
    ("DELETE", "/v1/rooms/{room}", None),
    ("POST", "/v1/rooms/{room}/data", {"text": "hi"}),
    ("GET", "/v1/rooms/{room}/participants", None),
]
PARTICIPANT_ROUTES = [
    ("GET", "/v1/rooms/{room}/participants/{identity}", None),
    ("PATCH", "/v1/rooms/{room}/participants/{identity}", {"metadata": "m"}),
    ("DELETE", "/v1/rooms/{room}/participants/{identity}", None),
    ("POST", "/v1/rooms/{room}/participants/{identity}/tracks/TR_x/mute", {"muted": True}),
    (
        "POST",
        "/v1/rooms/{room}/participants/{identity}/subscriptions",
        {"track_sids": ["TR_x"], "subscribe": True},
    ),
    ("POST", "/v1/rooms/{room}/participants/{identity}/forward", {"destination_room": "x"}),
    ("POST", "/v1/rooms/{room}/participants/{identity}/move", {"destination_room": "x"}),
]


async def test_unknown_room_is_404_on_every_route(client):
    room = unique("never-created")
    for method, template, body in ROOM_ROUTES + PARTICIPANT_ROUTES:
        path = template.format(room=room, identity="nobody")
        response = await client.request(method, path, json=body, headers=ADMIN)
        assert response.status_code == 404, (method, path, response.text)
        assert_problem(response, 404, "room_not_found")
        assert response.json()["request_id"]


async def test_unknown_participant_is_404_on_every_route(client):
    room = unique("has-someone")
    async with participants(client, room, "present") as (present,):
        await publish_audio(present)
        for method, template, body in PARTICIPANT_ROUTES:
            path = template.format(room=room, identity="absent")
            response = await client.request(method, path, json=body, headers=ADMIN)
            assert response.status_code == 404, (method, path, response.text)
            assert_problem(response, 404, "participant_not_found")
        # and the same in a room created empty, with nobody in it
        empty = unique("empty")
        assert (await client.post("/v1/rooms", json={"name": empty}, headers=ADMIN)).is_success
        people = await client.get(f"/v1/rooms/{empty}/participants", headers=READER)
        assert people.status_code == 200 and people.json()["items"] == []
        for method, template, body in PARTICIPANT_ROUTES:
            path = template.format(room=empty, identity="absent")
            response = await client.request(method, path, json=body, headers=ADMIN)
            assert_problem(response, 404, "participant_not_found")
        assert present.connection_state == rtc.ConnectionState.CONN_CONNECTED


async def test_names_over_256_bytes_are_refused_in_paths(client):
    long = "r" * 257
    paths = [(m, t.format(room=long, identity="x"), b) for m, t, b in ROOM_ROUTES]
    paths += [(m, t.format(room=long, identity="x"), b) for m, t, b in PARTICIPANT_ROUTES]
    paths += [(m, t.format(room="x", identity=long), b) for m, t, b in PARTICIPANT_ROUTES]
    for method, path, body in paths:
        response = await client.request(method, path, json=body, headers=ADMIN)
        assert_problem(response, 422, "validation_failed")


# Scopes


async def test_reader_can_list_but_not_change(client):
    room = unique("scoped")
    async with participants(client, room, "alice"):
        assert (await client.get("/v1/rooms", headers=READER)).status_code == 200
        assert (await client.get(f"/v1/rooms/{room}", headers=READER)).status_code == 200
        assert (
            await client.get(f"/v1/rooms/{room}/participants", headers=READER)
        ).status_code == 200
        writes = [
            ("POST", "/v1/rooms", {"name": unique("reader-made")}),
            *[(m, t, b) for m, t, b in ROOM_ROUTES + PARTICIPANT_ROUTES if m != "GET"],
        ]
        for method, template, body in writes:
            path = template.format(room=room, identity="alice")
            response = await client.request(method, path, json=body, headers=READER)
            assert_problem(response, 403, "missing_scope")
            assert "rooms:write" in response.json()["detail"]
        # nothing was changed: the room and alice are still there
        assert (await client.get(f"/v1/rooms/{room}/participants/alice", headers=READER)).is_success

    for headers, status in ((auth("nobody"), 403), ({}, 401)):
        response = await client.get("/v1/rooms", headers=headers)
        assert response.status_code == status
        if status == 403:
            assert "rooms:read" in response.json()["detail"]
        else:
            assert response.headers["www-authenticate"] == "Bearer"
