"""Usage (`GET /v1/usage`) equals minutes computed plainly here from the connections a room
life was built from (clipped to the window, split at UTC midnights, open ones up to now),
for random lives around a midnight delivered shuffled and repeated; and the route's scope,
shapes and refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.events.usage import usage_report
from app.store.engine import Store
from schemas.usage import UsageQuery
from tests.components import post_webhooks as post
from tests.conftest import auth
from tests.unit.test_session_projections import rows_of

UNUSED_LIVEKIT = "http://127.0.0.1:9"
MIDNIGHT = dt.datetime(2026, 9, 22, tzinfo=dt.UTC)
BASE = int(MIDNIGHT.timestamp()) - 3 * 3600  # 21:00 the day before
NOW = MIDNIGHT + dt.timedelta(hours=5)
KINDS = {"STANDARD": "participant", "AGENT": "participant", "SIP": "sip", "EGRESS": None}


def when(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(BASE + seconds, dt.UTC)


@st.composite
def lives(draw: st.DrawFn) -> dict[str, Any]:
    """Rooms with their connections and egress (what the test computes from) and the
    webhooks that tell them (what the service computes from)."""
    rooms, events = [], []
    for number in range(draw(st.integers(1, 3))):
        sid, name = f"RM_{number}", f"room-{number % 2}"
        begun = draw(st.integers(0, 3600))
        ended = draw(st.one_of(st.none(), st.integers(begun + 60, begun + 6 * 3600)))
        room = {"sid": sid, "name": name, "creationTime": str(BASE + begun)}

        def add(kind: str, at: int, extra: dict[str, Any], room=room, sid=sid) -> None:
            body = {"id": f"{sid}-{len(events)}", "event": kind, "createdAt": str(BASE + at)}
            events.append({**body, "room": room, **extra})

        add("room_started", begun, {})
        connections = []
        for person in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(sorted(KINDS)))
            joined = draw(st.integers(begun, begun + 4 * 3600))
            left = draw(st.one_of(st.none(), st.integers(joined, joined + 3 * 3600)))
            if ended is not None:
                joined = min(joined, ended)
                left = min(left, ended) if left is not None else None
            info = {
                "sid": f"PA_{sid}_{person}",
                "identity": f"user-{person % 3}",
                "kind": kind,
                "joinedAt": str(BASE + joined),
            }
            add("participant_joined", joined, {"participant": info})
            if left is not None:
                add("participant_left", left, {"participant": info})
            end = when(left) if left is not None else when(ended) if ended is not None else NOW
            connections.append((sid, name, info["identity"], kind, when(joined), end))
        egress = []
        if draw(st.booleans()):
            started = draw(st.integers(begun, begun + 3600))
            stopped = draw(st.one_of(st.none(), st.integers(started, started + 4 * 3600)))
            kind = draw(st.sampled_from(["roomComposite", "track", "web"]))
            info = {
                "egressId": f"EG_{sid}",
                "roomId": sid,
                "roomName": name,
                "status": "EGRESS_ACTIVE",
                "startedAt": str((BASE + started) * 10**9),
                kind: {},
            }
            events.append(
                {
                    "id": f"{sid}-eg1",
                    "event": "egress_started",
                    "createdAt": str(BASE + started),
                    "egressInfo": info,
                }
            )
            if stopped is not None:
                done = {
                    **info,
                    "status": "EGRESS_COMPLETE",
                    "endedAt": str((BASE + stopped) * 10**9),
                }
                events.append(
                    {
                        "id": f"{sid}-eg2",
                        "event": "egress_ended",
                        "createdAt": str(BASE + stopped),
                        "egressInfo": done,
                    }
                )
            egress.append((name, kind, when(started), when(stopped) if stopped else NOW))
        if ended is not None:
            add("room_finished", ended, {})
        rooms.append(
            {
                "sid": sid,
                "name": name,
                "begun": when(begun),
                "ended": when(ended) if ended is not None else NOW,
                "connections": connections,
                "egress": egress,
            }
        )
    start = when(draw(st.integers(0, 4 * 3600)))
    end = start + dt.timedelta(seconds=draw(st.integers(60, 8 * 3600)))
    return {"rooms": rooms, "events": events, "start": start, "end": end}


def overlap(a: dt.datetime, b: dt.datetime, x: dt.datetime, y: dt.datetime) -> float:
    """Seconds of `[a, b)` within `[x, y)`."""
    return max(0.0, (min(b, y) - max(a, x)).total_seconds())


def expected_by_day(life: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The usage of each UTC day of the window, computed plainly."""
    start, end = life["start"], life["end"]
    days = {}
    day = dt.datetime.combine(start.date(), dt.time(), dt.UTC)
    while day < end:
        x, y = max(day, start), min(day + dt.timedelta(days=1), end)
        participant = sip = 0.0
        egress: dict[str, float] = {}
        sessions = 0
        intervals = []
        for room in life["rooms"]:
            if overlap(room["begun"], room["ended"], x, y) > 0:
                sessions += 1
            for _, _, _, kind, a, b in room["connections"]:
                seconds = overlap(a, b, x, y)
                if KINDS[kind] == "participant":
                    participant += seconds
                elif KINDS[kind] == "sip":
                    sip += seconds
                if KINDS[kind] and seconds > 0:
                    intervals.append((max(a, x), min(b, y)))
            for _, kind, a, b in room["egress"]:
                name = {"roomComposite": "room_composite"}.get(kind, kind)
                if overlap(a, b, x, y) > 0:
                    egress[name] = egress.get(name, 0.0) + overlap(a, b, x, y)
        peak = max((sum(1 for a, b in intervals if a <= t < b) for t, _ in intervals), default=0)
        days[day.date().isoformat()] = {
            "participant_minutes": participant / 60,
            "sip_minutes": sip / 60,
            "sessions": sessions,
            "peak_concurrent_participants": peak,
            "egress_minutes": {k: v / 60 for k, v in egress.items()},
        }
        day += dt.timedelta(days=1)
    return days


def expected_by_identity(life: dict[str, Any]) -> dict[str, float]:
    minutes: dict[str, float] = {}
    for room in life["rooms"]:
        for _, _, identity, kind, a, b in room["connections"]:
            seconds = overlap(a, b, life["start"], life["end"])
            if KINDS[kind] == "participant" and seconds > 0:
                minutes[identity] = minutes.get(identity, 0.0) + seconds / 60
    return minutes


def expected_by_room(life: dict[str, Any]) -> dict[str, float]:
    minutes: dict[str, float] = {}
    for room in life["rooms"]:
        for _, name, _, kind, a, b in room["connections"]:
            seconds = overlap(a, b, life["start"], life["end"])
            if KINDS[kind] == "participant" and seconds > 0:
                minutes[name] = minutes.get(name, 0.0) + seconds / 60
    return minutes


async def _check(url: str, life: dict[str, Any]) -> None:
    store = Store(url)
    try:
        delivery = life["events"] + life["events"][::2]
        random.Random(len(delivery)).shuffle(delivery)
        for row in rows_of(delivery):
            await store.events.insert(row)

        async def report(group_by: str) -> dict[str, Any]:
            query = UsageQuery(start=life["start"], end=life["end"], group_by=group_by)
            found = await usage_report(store, query, now=NOW)
            return {item.key: item for item in found.items}

        by_day = await report("day")
        for day, want in expected_by_day(life).items():
            got = by_day.pop(day)
            assert got.participant_minutes == pytest.approx(want["participant_minutes"], abs=2e-3)
            assert got.sip_minutes == pytest.approx(want["sip_minutes"], abs=2e-3)
            assert got.sessions == want["sessions"], day
            assert got.peak_concurrent_participants == want["peak_concurrent_participants"]
            assert got.egress_minutes == pytest.approx(want["egress_minutes"], abs=2e-3)
            assert got.ingress_minutes == 0
        assert by_day == {}
        by_identity = await report("identity")
        for identity, minutes in expected_by_identity(life).items():
            assert by_identity[identity].participant_minutes == pytest.approx(minutes, abs=2e-3)
        by_room = await report("room")
        rooms = expected_by_room(life)
        for name, minutes in rooms.items():
            assert by_room[name].participant_minutes == pytest.approx(minutes, abs=2e-3)
        assert all(item.participant_minutes == 0 for k, item in by_room.items() if k not in rooms)
        identities = expected_by_identity(life)
        assert all(
            i.participant_minutes == 0 for k, i in by_identity.items() if k not in identities
        )
    finally:
        await store.aclose()


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lives())
def test_usage_equals_the_minutes_computed_plainly(tmp_path_factory, life) -> None:
    # each example on a store of its own: usage reads every room of the window
    path = tmp_path_factory.mktemp("usage") / f"{uuid.uuid4().hex}.db"

    async def run() -> None:
        store = Store(f"sqlite+aiosqlite:///{path}")
        await store.migrate()
        await store.aclose()
        await _check(f"sqlite+aiosqlite:///{path}", life)

    asyncio.run(run())


def test_a_connection_across_midnight_is_split_at_it() -> None:
    from app.events.usage import day_pieces

    pieces = list(
        day_pieces(MIDNIGHT - dt.timedelta(minutes=10), MIDNIGHT + dt.timedelta(minutes=5))
    )
    assert [(day, (b - a).total_seconds()) for day, a, b in pieces] == [
        ("2026-09-21", 600.0),
        ("2026-09-22", 300.0),
    ]


def _ingress(event_id: str, kind: str, at: int, **state: Any) -> dict[str, Any]:
    info = {
        "ingressId": "IN_1",
        "roomName": "broadcast",
        "participantIdentity": "encoder",
        "state": {"roomId": "RM_b", **state},
    }
    return {"id": event_id, "event": kind, "createdAt": str(BASE + at), "ingressInfo": info}


async def test_the_usage_route(app_client) -> None:
    started = str((BASE + 600) * 10**9)
    events = [
        _ingress("in1", "ingress_started", 600, status="ENDPOINT_PUBLISHING", startedAt=started),
        _ingress(
            "in2",
            "ingress_ended",
            4200,
            status="ENDPOINT_INACTIVE",
            startedAt=started,
            endedAt=str((BASE + 4200) * 10**9),
        ),
    ]
    async with app_client(UNUSED_LIVEKIT) as http:
        await post(http, events + events[:1])
        window = {"start": when(0).isoformat(), "end": when(6 * 3600).isoformat()}
        response = await http.get(
            "/v1/usage", params={**window, "group_by": "room"}, headers=auth("admin")
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "items": [
                {
                    "key": "broadcast",
                    "participant_minutes": 0.0,
                    "sessions": 0,
                    "peak_concurrent_participants": 0,
                    "egress_minutes": {},
                    "ingress_minutes": 60.0,
                    "sip_minutes": 0.0,
                }
            ],
            "start": window["start"].replace("+00:00", "Z"),
            "end": window["end"].replace("+00:00", "Z"),
        }
        by_day = (await http.get("/v1/usage", params=window, headers=auth("admin"))).json()
        assert [(i["key"], i["ingress_minutes"]) for i in by_day["items"]] == [
            ("2026-09-21", 60.0),
            ("2026-09-22", 0.0),
        ]
        assert (await http.get("/v1/usage", params=window)).status_code == 401
        forbidden = await http.get("/v1/usage", params=window, headers=auth("reader"))
        assert forbidden.status_code == 403 and "sessions:read" in forbidden.json()["detail"]
        backwards = {"start": window["end"], "end": window["start"]}
        refused = await http.get("/v1/usage", params=backwards, headers=auth("admin"))
        assert refused.status_code == 422, refused.text
        unknown = await http.get(
            "/v1/usage", params={**window, "group_by": "week"}, headers=auth("admin")
        )
        assert unknown.status_code == 422
        missing = await http.get(
            "/v1/usage", params={"start": window["start"]}, headers=auth("admin")
        )
        assert missing.status_code == 422
