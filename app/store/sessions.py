"""The queries session analytics (`app.events.sessions`) runs on `webhook_events`: the anchor
rows of a page (one event type, newest first by `(created_at, id)`, after a cursor), the
events of a set of rooms, and the anchor rows whose body contains a text. Each returns
the columns a session is folded from (`COLUMNS`). Database errors reach the caller
(`app.store.errors`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store.tables import webhook_events

if TYPE_CHECKING:
    from app.store.engine import Store

#: The columns of every row returned here.
COLUMNS = (
    webhook_events.c.id,
    webhook_events.c.event,
    webhook_events.c.room_name,
    webhook_events.c.created_at,
    webhook_events.c.received_at,
    webhook_events.c.body,
)


async def anchors_page(
    store: Store,
    event: str,
    *,
    room_name: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` rows of type `event` (of `room_name` when given) created in
    `start <= created_at < end`, newest first by `(created_at, id)`, after the position
    `after` (`(created_at, id)` of the previous page's last row). Read by the index on
    `(event, created_at)`."""
    table = webhook_events
    statement = sa.select(*COLUMNS).where(table.c.event == event)
    if room_name is not None:
        statement = statement.where(table.c.room_name == room_name)
    if start is not None:
        statement = statement.where(table.c.created_at >= start)
    if end is not None:
        statement = statement.where(table.c.created_at < end)
    if after is not None:
        created_at, event_id = after
        statement = statement.where(
            sa.or_(
                table.c.created_at < created_at,
                sa.and_(table.c.created_at == created_at, table.c.id < event_id),
            )
        )
    statement = statement.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    async with store.db_session() as session:
        return list((await session.execute(statement)).all())


async def events_of_rooms(
    store: Store, room_names: Iterable[str], events: Iterable[str], since: dt.datetime
) -> list[Any]:
    """The rows of the rooms `room_names` whose type is one of `events`, created at or
    after `since` (read by the index on `(room_name, seq)`), in no particular order."""
    table = webhook_events
    statement = sa.select(*COLUMNS).where(
        table.c.room_name.in_(sorted(room_names)),
        table.c.event.in_(tuple(events)),
        table.c.created_at >= since,
    )
    async with store.db_session() as session:
        return list((await session.execute(statement)).all())


async def events_containing(store: Store, event: str, text: str) -> list[Any]:
    """The rows of type `event` whose stored body contains `text` verbatim."""
    table = webhook_events
    statement = sa.select(*COLUMNS).where(
        table.c.event == event,
        table.c.body.like(f"%{_like_literal(text)}%", escape="\\"),
    )
    async with store.db_session() as session:
        return list((await session.execute(statement)).all())


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
