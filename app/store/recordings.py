"""The recordings catalog's statements (`recordings`): insert once by `recording_id` (in
the events' own transaction), pages newest first, one entry, delete, and the entries past
retention. Database errors reach the caller (`app.store.errors`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.events import EventWriter
from app.store.tables import recordings

if TYPE_CHECKING:
    from app.store.engine import Store


async def insert_new(store: Store, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (`recordings` column values) in `session`'s transaction, skipping any
    `recording_id` already stored (the same egress's results from a repeated event)."""
    if rows:
        statement = store.insert(recordings).on_conflict_do_nothing(
            index_elements=[recordings.c.recording_id]
        )
        await session.execute(statement, rows)


def event_writer(
    store: Store, entries_of: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> EventWriter:
    """An `EventWriter` inserting `entries_of(event)` for every newly stored event (its
    `webhook_events` column values), in the events' transaction (`insert_new`)."""

    async def write(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        await insert_new(store, session, [entry for row in rows for entry in entries_of(row)])

    return write


async def page(
    store: Store,
    *,
    room_name: str | None,
    session_id: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` entries (of `room_name`, of `session_id`, ended in `start <= ended_at <
    end`, when given), newest first by `(ended_at, recording_id)`, after the position
    `after` (that pair of the previous page's last entry)."""
    table = recordings
    statement = sa.select(table)
    if room_name is not None:
        statement = statement.where(table.c.room_name == room_name)
    if session_id is not None:
        statement = statement.where(table.c.session_id == session_id)
    if start is not None:
        statement = statement.where(table.c.ended_at >= start)
    if end is not None:
        statement = statement.where(table.c.ended_at < end)
    if after is not None:
        ended_at, recording_id = after
        statement = statement.where(
            sa.or_(
                table.c.ended_at < ended_at,
                sa.and_(table.c.ended_at == ended_at, table.c.recording_id < recording_id),
            )
        )
    statement = statement.order_by(table.c.ended_at.desc(), table.c.recording_id.desc())
    async with store.db_session() as session:
        return list((await session.execute(statement.limit(limit))).all())


async def get(store: Store, recording_id: str) -> Any | None:
    """The entry `recording_id`, or None."""
    statement = sa.select(recordings).where(recordings.c.recording_id == recording_id)
    async with store.db_session() as session:
        return (await session.execute(statement)).first()


async def delete(store: Store, recording_id: str) -> bool:
    """Delete the entry `recording_id`; False when no entry was there (deleted already,
    perhaps by another replica at the same moment)."""
    statement = sa.delete(recordings).where(recordings.c.recording_id == recording_id)
    async with store.db_session.begin() as session:
        result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def ended_before(store: Store, cutoff: dt.datetime, limit: int) -> list[Any]:
    """Up to `limit` entries that ended before `cutoff`, oldest first."""
    table = recordings
    statement = (
        sa.select(table)
        .where(table.c.ended_at < cutoff)
        .order_by(table.c.ended_at, table.c.recording_id)
        .limit(limit)
    )
    async with store.db_session() as session:
        return list((await session.execute(statement)).all())
