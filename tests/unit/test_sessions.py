"""Session analytics from signed webhooks posted to the service in-process: the expected
timeline, order and repeat independence, paging and filters, scopes, and retention."""

from __future__ import annotations

import datetime as dt
import json
import random

from app.events.sessions import get_session, list_sessions
from app.events.webhooks import purge_expired_events
from app.livekit.webhook_verification import parse_event
from app.store.engine import Store
from schemas.sessions import SessionQuery
from tests.components import post_webhooks as post
from tests.conftest import auth

UNUSED_LIVEKIT = "http://127.0.0.1:9"
T0 = 1_790_000_000  # seconds since the epoch


def at(offset: int) -> str:
    return dt.datetime.fromtimestamp(T0 + offset, dt.UTC).isoformat().replace("+00:00", "Z")


def event(event_id: str, kind: str, offset: int, room_sid: str, room: str, **extra) -> dict:
    return {
        "id": event_id,
        "event": kind,
        "createdAt": str(T0 + offset),
        "room": {"sid": room_sid, "name": room, "creationTime": str(T0)},
        **extra,
    }


def participant(sid: str, identity: str, joined: int, name: str = "") -> dict:
    return {
        "participant": {
            "sid": sid,
            "identity": identity,
            "name": name,
            "joinedAt": str(T0 + joined),
        }
    }


def egress(event_id: str, kind: str, offset: int, room_sid: str, room: str, status: str) -> dict:
    info = {"egressId": "EG_1", "roomId": room_sid, "roomName": room, "status": status}
    info["startedAt"] = str((T0 + 12) * 10**9)
    if status == "EGRESS_COMPLETE":
        info["endedAt"] = str((T0 + 50) * 10**9)
    return {"id": event_id, "event": kind, "createdAt": str(T0 + offset), "egressInfo": info}


def life(room_sid: str = "RM_life", room: str = "standup", ended: bool = True) -> list[dict]:
    """alice joins, publishes a microphone and a camera, drops, reconnects and leaves; bob
    joins and leaves; an egress records part of it; the room finishes."""

    def ev(number: int, kind: str, offset: int, **extra) -> dict:
        return event(f"{room_sid}-{number}", kind, offset, room_sid, room, **extra)

    def eg(number: int, kind: str, offset: int, status: str) -> dict:
        return egress(f"{room_sid}-{number}", kind, offset, room_sid, room, status)

    alice1 = participant("PA_a1", "alice", 1, "Alice")
    alice2 = participant("PA_a2", "alice", 22, "Alice B.")
    bob = participant("PA_b1", "bob", 5)
    events = [
        ev(1, "room_started", 0),
        ev(2, "participant_joined", 1, **alice1),
        ev(3, "participant_joined", 5, **bob),
        ev(4, "track_published", 6, **alice1, track={"sid": "TR_1", "source": "MICROPHONE"}),
        eg(5, "egress_started", 12, "EGRESS_STARTING"),
        eg(6, "egress_updated", 13, "EGRESS_ACTIVE"),
        ev(7, "participant_connection_aborted", 20, **alice1),
        ev(8, "participant_joined", 22, **alice2),
        ev(9, "track_published", 23, **alice2, track={"sid": "TR_2", "source": "CAMERA"}),
        ev(10, "participant_left", 30, **bob),
    ]
    if ended:
        events += [
            eg(11, "egress_ended", 50, "EGRESS_COMPLETE"),
            ev(12, "participant_left", 60, **alice2),
            ev(13, "room_finished", 70),
        ]
    return events


async def test_a_rooms_life_gives_its_session_and_participant_timeline(app_client):
    async with app_client(UNUSED_LIVEKIT) as http:
        await post(http, life())
        listed = await http.get("/v1/sessions", headers=auth("admin"))
        assert listed.status_code == 200, listed.text
        details = await http.get("/v1/sessions/RM_life", headers=auth("admin"))
    assert listed.json() == {
        "items": [
            {
                "session_id": "RM_life",
                "room_name": "standup",
                "created_at": at(0),
                "ended_at": at(70),
                "last_active": at(70),
                "num_participants": 2,
                "num_active_participants": 0,
                "egress": "ended",
            }
        ],
        "next_page_token": None,
    }
    assert details.status_code == 200, details.text
    assert details.json() == {
        "session_id": "RM_life",
        "room_name": "standup",
        "start_time": at(0),
        "end_time": at(70),
        "num_participants": 2,
        "participants": [
            {
                "participant_identity": "alice",
                "participant_name": "Alice B.",
                "joined_at": at(1),
                "left_at": at(60),
                "duration_seconds": 19 + 38,
                "published_sources": {
                    "camera": True,
                    "microphone": True,
                    "screen_share": False,
                    "screen_share_audio": False,
                },
                "sessions": [
                    {"participant_sid": "PA_a1", "joined_at": at(1), "left_at": at(20)},
                    {"participant_sid": "PA_a2", "joined_at": at(22), "left_at": at(60)},
                ],
            },
            {
                "participant_identity": "bob",
                "participant_name": "",
                "joined_at": at(5),
                "left_at": at(30),
                "duration_seconds": 25,
                "published_sources": {
                    "camera": False,
                    "microphone": False,
                    "screen_share": False,
                    "screen_share_audio": False,
                },
                "sessions": [{"participant_sid": "PA_b1", "joined_at": at(5), "left_at": at(30)}],
            },
        ],
        "egress": [
            {
                "egress_id": "EG_1",
                "status": "EGRESS_COMPLETE",
                "started_at": at(12),
                "ended_at": at(50),
            }
        ],
    }


async def test_shuffled_and_repeated_events_give_the_same_sessions(app_client, tmp_path):
    events = life() + life("RM_other", "standup", ended=False)

    async def sessions_of(delivery: list[dict]) -> tuple[dict, dict, dict]:
        async with app_client(UNUSED_LIVEKIT, database_url=_fresh_db(tmp_path)) as http:
            await post(http, delivery)
            listed = (await http.get("/v1/sessions", headers=auth("admin"))).json()
            one = (await http.get("/v1/sessions/RM_life", headers=auth("admin"))).json()
            other = (await http.get("/v1/sessions/RM_other", headers=auth("admin"))).json()
        for session in (other, *listed["items"]):  # an open connection counts up to now
            for p in session.get("participants", []):
                p.pop("duration_seconds")
        return listed, one, other

    expected = await sessions_of(events)
    assert [s["session_id"] for s in expected[0]["items"]] == ["RM_other", "RM_life"]
    assert expected[2]["end_time"] is None
    alice = expected[2]["participants"][0]
    assert alice["left_at"] is None and alice["sessions"][1]["left_at"] is None
    for seed in range(3):
        rng = random.Random(seed)
        delivery = events + rng.sample(events, k=len(events) // 2)  # repeats
        rng.shuffle(delivery)
        assert await sessions_of(delivery) == expected, f"seed {seed}"


def _fresh_db(tmp_path) -> str:
    path = tmp_path / f"events-{random.getrandbits(32):08x}.db"
    return f"sqlite+aiosqlite:///{path}"


async def test_sessions_are_paged_newest_first_and_filtered(app_client):
    async with app_client(UNUSED_LIVEKIT) as http:
        for index in range(5):
            room = "a" if index % 2 else "b"
            start = event(f"s{index}", "room_started", 0, f"RM_{index}", room)
            start["createdAt"] = str(T0 + index * 100)
            start["room"]["creationTime"] = str(T0 + index * 100)
            finished = {**event(f"f{index}", "room_finished", index * 100 + 5, f"RM_{index}", room)}
            await post(http, [start] + ([finished] if index < 2 else []))
        seen: list[str] = []
        token = None
        while True:
            params = {"limit": 2, **({"page_token": token} if token else {})}
            page = (await http.get("/v1/sessions", params=params, headers=auth("admin"))).json()
            seen += [s["session_id"] for s in page["items"]]
            token = page["next_page_token"]
            if token is None:
                break
        assert seen == ["RM_4", "RM_3", "RM_2", "RM_1", "RM_0"]

        async def ids(**params) -> list[str]:
            response = await http.get("/v1/sessions", params=params, headers=auth("admin"))
            assert response.status_code == 200, response.text
            return [s["session_id"] for s in response.json()["items"]]

        assert await ids(room_name="a") == ["RM_3", "RM_1"]
        assert await ids(active="true") == ["RM_4", "RM_3", "RM_2"]
        assert await ids(active="false") == ["RM_1", "RM_0"]
        assert await ids(active="true", limit=1) == ["RM_4"]
        assert await ids(start=at(100), end=at(300)) == ["RM_2", "RM_1"]


async def test_scopes_unknown_sessions_and_bad_tokens(app_client):
    async with app_client(UNUSED_LIVEKIT) as http:
        await post(http, life())
        assert (await http.get("/v1/sessions")).status_code == 401
        forbidden = await http.get("/v1/sessions", headers=auth("reader"))
        assert forbidden.status_code == 403 and "sessions:read" in forbidden.json()["detail"]
        assert (await http.get("/v1/sessions/RM_life", headers=auth("events"))).status_code == 403
        missing = await http.get("/v1/sessions/RM_%25", headers=auth("admin"))
        assert missing.status_code == 404 and missing.json()["code"] == "session_not_found"
        bad = await http.get("/v1/sessions", params={"page_token": "nope"}, headers=auth("admin"))
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_page_token"


async def test_a_session_whose_events_are_purged_disappears_whole(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}")
    await store.migrate()
    now = dt.datetime.now(dt.UTC)
    try:
        for index, item in enumerate(life()):
            _, columns = parse_event(json.dumps(item).encode())
            # the first five events arrived 31 days ago, the rest a day later
            columns["received_at"] = now - dt.timedelta(days=31 if index < 5 else 30, hours=-1)
            await store.events.insert(columns)
        query = SessionQuery()
        assert [s.session_id for s in (await list_sessions(store, query, retention_days=0)).items]
        assert (await list_sessions(store, query, retention_days=30, now=now)).items == []
        await purge_expired_events(store, 30, now=now)  # deletes room_started and four more
        for days in (0, 30):
            assert (await list_sessions(store, query, retention_days=days, now=now)).items == []
            try:
                await get_session(store, "RM_life", retention_days=days, now=now)
            except Exception as exc:
                assert getattr(exc, "status", None) == 404
            else:
                raise AssertionError("a purged session was found")
    finally:
        await store.aclose()
