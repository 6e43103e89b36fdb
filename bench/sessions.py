"""What listing 1,000 sessions costs when sessions are recomputed from the stored events on
every read (`app.events.sessions`), side by side in one run with two baselines on the same SQLite
store: reading the same sessions' raw events through the event list, and reading 1,000
rows of a projection table (what a projection updated with each event insert would cost to
read). Run: `.venv/bin/python -m bench.sessions [sessions]` (no LiveKit needed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.events.sessions import get_session, list_sessions
from app.events.webhooks import list_events
from app.livekit.webhook_verification import parse_event
from app.store.engine import Store
from app.store.tables import webhook_events
from schemas.sessions import SessionQuery
from schemas.webhooks import EventQuery

T0 = 1_790_000_000


# fmt: off
def room_life(index: int) -> list[dict[str, Any]]:
    """One session: 3 participants (one reconnects), 4 tracks, an egress: 14 events."""
    sid, room = f"RM_{index:06d}", f"room-{index % 97}"
    start = T0 + index * 60

    # rooms and participants carry what LiveKit v1.13 sends along (codecs, permissions,
    # tracks, versions), which a session does not read
    codecs = [{"mime": m} for m in ("audio/opus", "audio/red", "video/VP8", "video/H264")]
    version = {"unixMicro": str(start * 10**6), "ticks": 3}
    track = {"sid": "TR_x", "type": "AUDIO", "name": "mic", "mimeType": "audio/red",
             "mid": "0", "stream": "camera", "version": version, "audioFeatures": ["TF_STEREO"],
             "codecs": [{"mimeType": "audio/red", "mid": "0", "cid": "c1", "layers": []}]}

    def ev(n: int, kind: str, offset: int, **extra: Any) -> dict[str, Any]:
        base = {"id": f"{sid}-{n}", "event": kind, "createdAt": str(start + offset)}
        info = {"sid": sid, "name": room, "creationTime": str(start), "emptyTimeout": 300,
                "departureTimeout": 20, "enabledCodecs": codecs, "version": version,
                "creationTimeMs": str(start * 1000), "numParticipants": 2}
        return {**base, "room": info, **extra}

    def who(psid: str, identity: str, joined: int) -> dict[str, Any]:
        info = {"sid": psid, "identity": identity, "name": identity.title(), "state": "ACTIVE",
                "permission": {"canSubscribe": True, "canPublish": True, "canPublishData": True},
                "version": 4, "isPublisher": True, "tracks": [track], "region": "local",
                "joinedAtMs": str((start + joined) * 1000)}
        return {"participant": {**info, "joinedAt": str(start + joined)}}

    egress = {"egressId": f"EG_{index}", "roomId": sid, "roomName": room}
    return [
        ev(1, "room_started", 0),
        ev(2, "participant_joined", 1, **who("PA_1", "alice", 1)),
        ev(3, "participant_joined", 2, **who("PA_2", "bob", 2)),
        ev(4, "participant_joined", 3, **who("PA_3", "carol", 3)),
        ev(5, "track_published", 4, **who("PA_1", "alice", 1), track={"source": "MICROPHONE"}),
        ev(6, "track_published", 4, **who("PA_2", "bob", 2), track={"source": "CAMERA"}),
        ev(7, "participant_connection_aborted", 10, **who("PA_1", "alice", 1)),
        ev(8, "participant_joined", 12, **who("PA_4", "alice", 12)),
        ev(9, "track_published", 13, **who("PA_4", "alice", 12), track={"source": "MICROPHONE"}),
        {"id": f"{sid}-10", "event": "egress_started", "createdAt": str(start + 14),
         "egressInfo": {**egress, "status": "EGRESS_ACTIVE"}},
        ev(11, "participant_left", 30, **who("PA_2", "bob", 2)),
        ev(12, "participant_left", 40, **who("PA_3", "carol", 3)),
        {"id": f"{sid}-13", "event": "egress_ended", "createdAt": str(start + 45),
         "egressInfo": {**egress, "status": "EGRESS_COMPLETE"}},
        ev(14, "room_finished", 50),
    ]
# fmt: on


projection = sa.Table(
    "bench_session_projection",
    sa.MetaData(),
    sa.Column("session_id", sa.String(), primary_key=True),
    sa.Column("room_name", sa.String()),
    sa.Column("created_at", sa.DateTime()),
    sa.Column("ended_at", sa.DateTime()),
    sa.Column("last_active", sa.DateTime()),
    sa.Column("num_participants", sa.Integer()),
    sa.Column("num_active_participants", sa.Integer()),
    sa.Column("egress", sa.String()),
    sa.Index("ix_bench_projection_created", "created_at"),
)


async def fill(store: Store, sessions: int) -> int:
    rows = []
    for index in range(sessions):
        for event in room_life(index):
            rows.append(parse_event(json.dumps(event).encode())[1])
    async with store.db_session.begin() as session:
        await session.execute(sa.insert(webhook_events), rows)
        await session.run_sync(lambda s: projection.create(s.connection()))
        when = dt.datetime(2026, 1, 1)
        await session.execute(
            sa.insert(projection),
            [
                {
                    "session_id": f"RM_{i:06d}",
                    "room_name": f"room-{i % 97}",
                    "created_at": when + dt.timedelta(minutes=i),
                    "ended_at": when,
                    "last_active": when,
                    "num_participants": 3,
                    "num_active_participants": 0,
                    "egress": "ended",
                }
                for i in range(sessions)
            ],
        )
    return len(rows)


async def timed(repeat: int, job: Callable[[], Awaitable[Any]]) -> float:
    """The median wall time of `job` in milliseconds over `repeat` runs (after one warm-up)."""
    await job()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await job()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def main(sessions: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    store = Store(f"sqlite+aiosqlite:///{workdir / 'events.db'}")
    await store.migrate()
    events = await fill(store, sessions)

    async def all_sessions(page_size: int) -> int:
        token, seen = None, 0
        while True:
            query = SessionQuery(limit=page_size, page_token=token)
            page = await list_sessions(store, query, retention_days=0)
            seen += len(page.items)
            token = page.next_page_token
            if token is None:
                return seen

    async def all_events() -> int:
        token, seen = None, 0
        while True:
            page = await list_events(store, EventQuery(limit=500, page_token=token))
            seen += len(page.items)
            token = page.next_page_token
            if token is None:
                return seen

    async def projection_rows() -> int:
        statement = sa.select(projection).order_by(projection.c.created_at.desc())
        async with store.db_session() as session:
            return len((await session.execute(statement)).all())

    assert await all_sessions(200) == sessions
    figures = {
        f"list all {sessions} sessions, pages of 200 (recomputed from events)": await timed(
            5, lambda: all_sessions(200)
        ),
        "one page of 50 sessions (the default page)": await timed(
            10, lambda: list_sessions(store, SessionQuery(), retention_days=0)
        ),
        "one session's details": await timed(
            20, lambda: get_session(store, "RM_000500", retention_days=0)
        ),
        f"baseline: list all {events} raw events, pages of 500": await timed(5, all_events),
        f"baseline: read {sessions} projection rows": await timed(5, projection_rows),
    }
    reference = figures[f"list all {sessions} sessions, pages of 200 (recomputed from events)"]
    print(f"{sessions} sessions, {events} events, SQLite (WAL), one process, median ms")
    print("| read | ms | vs recomputed list |")
    print("| --- | --- | --- |")
    for name, ms in figures.items():
        print(f"| {name} | {ms:.1f} | {ms / reference:.2f} |")
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
