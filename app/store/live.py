"""What the projections say is live, and what they have seen, read for the reconciliation
with LiveKit (`app.events.reconcile`): `live` reads the room sessions with no end, their
participant sessions with no leave, the egresses with no terminal status and the ingress
intervals with no end (each through an index: on the end column, on `status_rank` for
egress); `seen` reads, for the keys LiveKit answered, which the store already knows (by
primary key, or `webhook_events`' index on `egress_id`). Database errors reach the caller
(`app.store.errors`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store.projection_facts import TERMINAL_RANK
from app.store.tables import (
    session_egress,
    session_ingress,
    session_participants,
    sessions,
    webhook_events,
)

if TYPE_CHECKING:
    from app.store.engine import Store

#: Keys per `IN (...)` list (SQLite's default limit on bound parameters is 32766).
KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class LiveRows:
    """The rows `live` read: `rooms` (`session_id, room_name, created_at`), `participants`
    (`session_id, participant_sid, identity, name, joined_at`), `egress` (`egress_id,
    session_id, room_name`), `ingress` (`ingress_id, started_ns, session_id, room_name,
    participant_identity`)."""

    rooms: list[Any]
    participants: list[Any]
    egress: list[Any]
    ingress: list[Any]


@dataclass(frozen=True)
class SeenKeys:
    """Of the keys asked, those the store knows: room sessions with a `room_started`
    (`started_rooms`), participant sids of those rooms (`participants`), egress ids named by
    any stored event (`egress`), ingress intervals `(ingress_id, started_ns)` (`ingress`)."""

    started_rooms: set[str]
    participants: set[str]
    egress: set[str]
    ingress: set[tuple[str, int]]


async def live(store: Store) -> LiveRows:
    """What the projections hold live (`LiveRows`)."""
    s, p, e, i = sessions.c, session_participants.c, session_egress.c, session_ingress.c
    statements = (
        sa.select(s.session_id, s.room_name, s.created_at).where(s.ended_at.is_(None)),
        sa.select(p.session_id, p.participant_sid, p.identity, p.name, p.joined_at)
        .join(sessions, s.session_id == p.session_id)
        .where(p.left_at.is_(None), s.ended_at.is_(None)),
        sa.select(e.egress_id, e.session_id, e.room_name).where(e.status_rank < TERMINAL_RANK),
        sa.select(i.ingress_id, i.started_ns, i.session_id, i.room_name, i.participant_identity)
        .where(i.ended_at.is_(None)),
    )  # fmt: skip
    async with store.db_session() as session:
        rows = [list((await session.execute(statement)).all()) for statement in statements]
    return LiveRows(*rows)


async def seen(
    store: Store,
    *,
    room_sids: Collection[str],
    egress_ids: Collection[str],
    ingress_ids: Collection[str],
) -> SeenKeys:
    """Which of the given keys the store knows (`SeenKeys`); egress ids are looked up in
    the events themselves (`webhook_events.egress_id`), so that an egress without a room
    counts too."""
    s, p = sessions.c, session_participants.c
    found = SeenKeys(set(), set(), set(), set())
    async with store.db_session() as session:
        for chunk in _chunks(room_sids):
            query = sa.select(s.session_id).where(s.session_id.in_(chunk), s.anchored)
            found.started_rooms.update((await session.scalars(query)).all())
            query = sa.select(p.participant_sid).where(p.session_id.in_(chunk))
            found.participants.update((await session.scalars(query)).all())
        for chunk in _chunks(egress_ids):
            column = webhook_events.c.egress_id
            query = sa.select(column).where(column.in_(chunk)).distinct()
            found.egress.update((await session.scalars(query)).all())
        for chunk in _chunks(ingress_ids):
            i = session_ingress.c
            query = sa.select(i.ingress_id, i.started_ns).where(i.ingress_id.in_(chunk))
            found.ingress.update(
                (r.ingress_id, int(r.started_ns)) for r in await session.execute(query)
            )
    return found


def _chunks(keys: Iterable[str]) -> Iterable[list[str]]:
    keys = sorted(set(keys))
    for start in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[start : start + KEYS_PER_QUERY]
