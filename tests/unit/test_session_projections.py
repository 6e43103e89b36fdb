"""The session projections equal the reference fold over the raw events
(`tests/session_fold.py`): random room lives (participants joining, reconnecting, leaving,
aborting, publishing; egress starting, updating, ending; rooms finishing or not) delivered
shuffled, with repeats and with derived duplicates of some events (a derived event loses to
the real one for the same fact, in any order), on SQLite, and one example on PostgreSQL;
the rebuild (`python -m app rebuild-projections`) and migration 0005 give the same rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.events.sessions import get_session, list_sessions
from app.livekit.webhook_verification import parse_event
from app.store import projections
from app.store.engine import Store, alembic_config
from schemas.sessions import SessionQuery
from tests.session_fold import StoredSessionEvent, fold_sessions

T0 = 1_790_000_000
NOW = dt.datetime.fromtimestamp(T0 + 10_000, dt.UTC)
SOURCES = ("CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO")
EGRESS_TYPES = ("roomComposite", "web", "participant", "trackComposite", "track")


@st.composite
def room_life(draw: st.DrawFn, sid: str) -> list[dict[str, Any]]:
    """The webhooks of one room's life, in the order LiveKit would send them."""
    name = draw(st.sampled_from(["standup", "review"]))
    room = {"sid": sid, "name": name, "creationTime": str(T0)}
    events: list[dict[str, Any]] = []

    def add(kind: str, at: int, **extra: Any) -> None:
        body = {"id": f"{sid}-{len(events)}", "event": kind, "createdAt": str(T0 + at)}
        events.append({**body, "room": room, **extra})

    if draw(st.integers(0, 9)):  # now and then LiveKit's room_started never arrived
        add("room_started", 0)
    end = 0
    for person in range(draw(st.integers(0, 3))):
        at = draw(st.integers(1, 50))
        for connection in range(draw(st.integers(1, 3))):
            info = {
                "sid": f"PA_{sid}_{person}_{connection}",
                "identity": f"user-{person}",
                "name": draw(st.sampled_from(["", "Ann", "Bo"])),
                "kind": draw(st.sampled_from(["STANDARD", "SIP", "AGENT"])),
                "joinedAt": str(T0 + at),
            }
            add("participant_joined", at, participant=info)
            for _ in range(draw(st.integers(0, 2))):
                at += draw(st.integers(0, 20))
                track = {"sid": f"TR_{at}", "source": draw(st.sampled_from(SOURCES))}
                add("track_published", at, participant=info, track=track)
            at += draw(st.integers(0, 300))
            ending = draw(
                st.sampled_from(["participant_left", "participant_connection_aborted", None])
            )
            if ending:
                add(ending, at, participant=info)
            end = max(end, at)
            at += draw(st.integers(0, 30))
    for number in range(draw(st.integers(0, 2))):
        egress_id = f"EG_{sid}_{number}"
        kind = draw(st.sampled_from(EGRESS_TYPES))
        started = draw(st.integers(1, 100))
        statuses = draw(
            st.lists(
                st.sampled_from(
                    ["EGRESS_STARTING", "EGRESS_ACTIVE", "EGRESS_ENDING", "EGRESS_COMPLETE"]
                ),
                min_size=1,
                max_size=3,
            )
        )
        for step, status in enumerate(statuses):
            info: dict[str, Any] = {
                "egressId": egress_id,
                "roomId": sid,
                "roomName": name,
                "status": status,
                "startedAt": str((T0 + started) * 10**9),
                kind: {},
            }
            if status == "EGRESS_COMPLETE":
                info["endedAt"] = str((T0 + started + 60 + step) * 10**9)
            kinds = ("egress_started", "egress_updated", "egress_ended")
            kind_of_event = kinds[min(step, 2)] if status != "EGRESS_COMPLETE" else kinds[2]
            at = started + step
            events.append(
                {
                    "id": f"{sid}-eg{number}-{step}",
                    "event": kind_of_event,
                    "createdAt": str(T0 + at),
                    "egressInfo": info,
                }
            )
    if draw(st.booleans()):
        add("room_finished", end + 5)
    return events


def derived_copy(event: dict[str, Any], shift: int) -> dict[str, Any]:
    """What reconciliation might derive for the same fact: another id, later, with its own
    times and names (which must all lose to the real event's)."""
    copy = json.loads(json.dumps(event))
    copy["id"] = f"derived-{event['id']}"
    copy["createdAt"] = str(int(event["createdAt"]) + shift)
    copy["derived"] = {"by": "reconciliation", "observed_at": "2026-12-08T00:00:00Z"}
    if "participant" in copy:
        copy["participant"]["joinedAt"] = str(int(copy["participant"]["joinedAt"]) - shift)
        if copy["participant"]["name"]:  # a name only a derived event gives is kept
            copy["participant"]["name"] = "Derived"
    if "room" in copy:
        copy["room"]["name"] = "derived-room"
    if "egressInfo" in copy:
        copy["egressInfo"]["startedAt"] = str(int(copy["egressInfo"]["startedAt"]) - shift)
    return copy


def rows_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`webhook_events` columns of each event (as the webhook route stores them)."""
    rows = []
    for event in events:
        _, columns = parse_event(json.dumps(event).encode())
        rows.append(columns)
    return rows


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the raw events of one or two rooms, what is delivered: those shuffled, some twice,
    some with derived duplicates)."""
    raw: list[dict[str, Any]] = []
    for room in range(draw(st.integers(1, 2))):
        raw += draw(room_life(f"RM_{room}"))
    rng = random.Random(draw(st.integers(0, 2**32)))
    repeats = rng.sample(raw, k=len(raw) // 3)
    derived = [derived_copy(e, rng.randint(1, 90)) for e in rng.sample(raw, k=len(raw) // 3)]
    delivery = raw + repeats + derived + derived[: len(derived) // 2]
    rng.shuffle(delivery)
    return raw, delivery


async def check_equal(store: Store, raw: list[dict[str, Any]], delivery: list[dict[str, Any]]):
    """Store `delivery`, then compare every session of `raw` with the fold."""
    for row in rows_of(delivery):
        await store.events.insert(row)
    oracle = fold_sessions(_stored(row) for row in rows_of(raw))
    for session_id, fold in oracle.items():
        if not fold.anchored:
            with pytest.raises(Exception) as missing:
                await get_session(store, session_id, retention_days=0, now=NOW)
            assert getattr(missing.value, "status", None) == 404
            continue
        details = await get_session(store, session_id, retention_days=0, now=NOW)
        assert details == fold.details(NOW)
        summary = fold.summary(NOW)
        listed = await list_sessions(
            store,
            SessionQuery(room_name=summary.room_name, limit=200),
            retention_days=0,
            now=NOW,
        )
        assert [s for s in listed.items if s.session_id == session_id] == [summary]


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _stored(values: dict[str, Any]) -> StoredSessionEvent:
    return StoredSessionEvent.from_row(_Row(values))


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("projections") / "events.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def migrate() -> None:
        store = Store(url)
        await store.migrate()
        await store.aclose()

    asyncio.run(migrate())
    return url


async def _run_checks(url: str, raw: list[dict[str, Any]], delivery: list[dict[str, Any]]):
    store = Store(url)
    try:
        await check_equal(store, raw, delivery)
    finally:
        await store.aclose()


# No shrinking: each example is a store's worth of events, and the failure is printed whole.
@settings(
    max_examples=60,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(deliveries())
def test_projections_equal_the_fold_over_raw_events(sqlite_url: str, case) -> None:
    # every example's rooms are new to the store (hypothesis repeats its draws)
    raw, delivery = json.loads(json.dumps(case).replace("RM_", f"RM{uuid.uuid4().hex}_"))
    asyncio.run(_run_checks(sqlite_url, raw, delivery))


@pytest.mark.integration
async def test_the_same_on_postgresql(postgres_url: str) -> None:
    from tests.unit.test_sessions import life

    raw = life() + life("RM_open", "standup", ended=False)
    rng = random.Random(5)
    delivery = raw + rng.sample(raw, k=6) + [derived_copy(e, 30) for e in rng.sample(raw, k=8)]
    rng.shuffle(delivery)
    store = Store(postgres_url)
    await store.migrate()
    try:
        await check_equal(store, raw, delivery)
        # two replicas writing at once converge on the same rows
        again = [derived_copy(e, 7) | {"id": f"again-{e['id']}"} for e in raw]
        again += [e | {"id": f"repeat-{e['id']}"} for e in raw]
        other = Store(postgres_url)
        try:
            await asyncio.gather(
                *(
                    s.events.insert(r)
                    for s, r in zip([store, other] * len(again), rows_of(again), strict=False)
                )
            )
        finally:
            await other.aclose()
        await check_equal(store, raw, [])
    finally:
        await store.aclose()


async def test_rebuild_gives_the_same_rows(tmp_path) -> None:
    from tests.unit.test_sessions import life

    raw = life() + life("RM_open", "standup", ended=False)
    delivery = raw + [derived_copy(e, 9) for e in raw[::3]]
    random.Random(3).shuffle(delivery)
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'rebuild.db'}")
    await store.migrate()
    try:
        for row in rows_of(delivery):
            await store.events.insert(row)
        before = await _all_rows(store)
        assert before["sessions"] and before["session_participants"]
        assert await projections.rebuild(store) == len(delivery)
        assert await _all_rows(store) == before
        # migration 0005 builds them for a store that had events before it
        async with store.engine.begin() as connection:
            await connection.run_sync(_downgrade_to_before_0005)
        await store.migrate()
        assert await _all_rows(store) == before
    finally:
        await store.aclose()


def _downgrade_to_before_0005(connection: Any) -> None:
    command.downgrade(alembic_config(connection), "0007")


async def _all_rows(store: Store) -> dict[str, list[Any]]:
    found = {}
    async with store.db_session() as session:
        for table in projections.PROJECTION_TABLES:
            rows = (await session.execute(sa.select(table))).all()
            found[table.name] = sorted(tuple(row) for row in rows)
    return found
