"""The indexed reads of the session projections (`app.store.projections` keeps them): a
page of sessions by creation time or room, one session's rows, its participant sessions and
egress, and the rows of a usage window (`app.events.usage`). Every read goes through an
index (`tests/unit/test_indexed_reads.py`). Database errors reach the caller
(`app.store.errors`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store.tables import (
    session_egress,
    session_ingress,
    session_participants,
    sessions,
)

if TYPE_CHECKING:
    from app.store.engine import Store


async def sessions_page(
    store: Store,
    *,
    room_name: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    active: bool | None,
    visible_since: dt.datetime | None,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` listed sessions (a `room_started` stored: `created_at` set) created in
    `start <= created_at < end`, of `room_name`, live (`active`) or ended, none of whose
    events was received before `visible_since`; newest first by `(created_at,
    session_id)`, after the position `after`. Read by the index on `(created_at,
    session_id)` (or `(room_name, created_at, session_id)`)."""
    table = sessions
    query = sa.select(table).where(table.c.anchored, table.c.created_at.is_not(None))
    if room_name is not None:
        query = query.where(table.c.room_name == room_name)
    if start is not None:
        query = query.where(table.c.created_at >= start)
    if end is not None:
        query = query.where(table.c.created_at < end)
    if active is not None:
        query = query.where(table.c.ended_at.is_(None) if active else table.c.ended_at.is_not(None))
    if visible_since is not None:
        query = query.where(table.c.oldest_received_at >= visible_since)
    if after is not None:
        created_at, session_id = after
        query = query.where(
            sa.or_(
                table.c.created_at < created_at,
                sa.and_(table.c.created_at == created_at, table.c.session_id < session_id),
            )
        )
    query = query.order_by(table.c.created_at.desc(), table.c.session_id.desc()).limit(limit)
    return await _all(store, query)


async def session_rows(store: Store, session_ids: Sequence[str]) -> list[Any]:
    """The `sessions` rows of `session_ids` (by primary key)."""
    query = sa.select(sessions).where(sessions.c.session_id.in_(sorted(set(session_ids))))
    return await _all(store, query)


async def participants_of(store: Store, session_ids: Sequence[str]) -> list[Any]:
    """The participant sessions of `session_ids` (by the primary key's prefix)."""
    table = session_participants
    query = sa.select(table).where(table.c.session_id.in_(sorted(set(session_ids))))
    return await _all(store, query)


async def egress_of(store: Store, session_ids: Sequence[str]) -> list[Any]:
    """The egress of `session_ids` (by the primary key's prefix)."""
    table = session_egress
    query = sa.select(table).where(table.c.session_id.in_(sorted(set(session_ids))))
    return await _all(store, query)


# --- usage (`app.events.usage`) ----------------------------------------------------------


async def participants_overlapping(
    store: Store, start: dt.datetime, end: dt.datetime, room_name: str | None
) -> list[Any]:
    """The participant sessions that may overlap `[start, end)`, each with its session's
    `room_name`, `created_at`, `first_event_at` and `ended_at` (a connection with no join
    or leave of its own spans its room's life): those that joined before `end` (or gave no
    join) and left at or after `start` (or not yet). Read by the indexes on `left_at` and
    `joined_at`; the caller clips each to the window."""
    p, s = session_participants, sessions
    query = (
        sa.select(
            p.c.session_id,
            p.c.participant_sid,
            p.c.identity,
            p.c.kind,
            p.c.joined_at,
            p.c.left_at,
            s.c.room_name,
            s.c.created_at,
            s.c.first_event_at,
            s.c.ended_at,
        )
        .join(s, s.c.session_id == p.c.session_id)
        .where(
            sa.or_(p.c.left_at >= start, p.c.left_at.is_(None)),
            sa.or_(p.c.joined_at < end, p.c.joined_at.is_(None)),
        )
    )
    if room_name is not None:
        query = query.where(s.c.room_name == room_name)
    return await _all(store, query)


async def sessions_overlapping(
    store: Store, start: dt.datetime, end: dt.datetime, room_name: str | None
) -> list[Any]:
    """The room sessions whose life may overlap `[start, end)`: ended at or after `start`
    (or not yet) and begun before `end`. Read by the index on `ended_at`."""
    s = sessions
    begun = sa.func.coalesce(s.c.created_at, s.c.first_event_at)
    query = sa.select(
        s.c.session_id, s.c.room_name, s.c.created_at, s.c.first_event_at, s.c.ended_at
    ).where(sa.or_(s.c.ended_at >= start, s.c.ended_at.is_(None)), begun < end)
    if room_name is not None:
        query = query.where(s.c.room_name == room_name)
    return await _all(store, query)


async def egress_overlapping(
    store: Store, start: dt.datetime, end: dt.datetime, room_name: str | None
) -> list[Any]:
    """The egress that started before `end` and ended at or after `start` (or not yet).
    Read by the indexes on `ended_at` and `started_at`."""
    e = session_egress
    query = sa.select(e).where(
        e.c.started_at < end, sa.or_(e.c.ended_at >= start, e.c.ended_at.is_(None))
    )
    if room_name is not None:
        query = query.where(e.c.room_name == room_name)
    return await _all(store, query)


async def ingress_overlapping(
    store: Store, start: dt.datetime, end: dt.datetime, room_name: str | None
) -> list[Any]:
    """The ingress intervals that started before `end` and ended at or after `start` (or
    not yet). Read by the indexes on `ended_at` and `started_at`."""
    i = session_ingress
    query = sa.select(i).where(
        i.c.started_at < end, sa.or_(i.c.ended_at >= start, i.c.ended_at.is_(None))
    )
    if room_name is not None:
        query = query.where(i.c.room_name == room_name)
    return await _all(store, query)


async def _all(store: Store, query: sa.Select[Any]) -> list[Any]:
    """Every row `query` selects, in a session of its own."""
    async with store.db_session() as session:
        return list((await session.execute(query)).all())
