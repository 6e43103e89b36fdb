"""The webhook events repository (`webhook_events`): insert once by LiveKit's event id
(group commit), pages by filters and time, one event, the follow order of event streams,
and the retention purge. Database errors reach the caller (`app.store.errors`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.errors import DATABASE_ERRORS, is_unavailable
from app.store.projections import delete_sessions_received_before
from app.store.tables import webhook_events

if TYPE_CHECKING:
    from app.store.engine import Store

#: On PostgreSQL, the oldest transaction id still running as this statement's snapshot was
#: taken: every transaction below it has committed or aborted.
SNAPSHOT_XMIN_SQL = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"

#: Most webhook events committed in one transaction (see `EventRepository.insert`).
EVENT_BATCH_LIMIT = 200

#: What must change in the same transaction as new events (a projection, an outbox): called
#: with the open session and the column values of the rows this transaction stored (each
#: event id once, in insert order); an exception rolls the whole batch back.
EventWriter = Callable[[AsyncSession, list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class StreamPosition:
    """Where an event follower stands: past every row at or before `(xid, seq)` in follow
    order (`xid` is 0 on SQLite and for rows older than revision 0004)."""

    xid: int
    seq: int


class EventRepository:
    """The statements on `webhook_events`, over one `Store` (`store.events`: one per
    process, since it batches this process's inserts and wakes its followers)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = asyncio.Event()
        self._pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._writers: list[EventWriter] = []

    def add_writer(self, writer: EventWriter) -> None:
        """Run `writer` in every transaction that stores events, after their insert (see
        `EventWriter`): what it writes commits with the events or not at all."""
        self._writers.append(writer)

    async def insert(self, values: dict[str, Any]) -> bool:
        """Commit one `webhook_events` row unless its `id` is already stored; returns after
        the commit.

        Returns True when this call stored it, False for a duplicate (including one written
        at the same moment by another request or replica). Rows that arrive while a commit
        is under way are committed together in the next transaction (group commit: one
        disk flush for many events); each caller still returns only once its own row is
        durable, and gets the batch's error if that commit fails. No lock beyond the rows'
        own: on PostgreSQL each row's `xid` column defaults to the writing transaction's
        id, which is what lets `follow` never skip a row that commits late.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not future.get_loop():
            self._writer = asyncio.create_task(self._write_pending())
        return await asyncio.shield(future)

    async def _write_pending(self) -> None:
        """Commit the waiting rows, `EVENT_BATCH_LIMIT` per transaction, until none wait.
        A batch that fails is retried row by row, so one bad row fails only its caller."""
        while self._pending:
            batch = self._pending[:EVENT_BATCH_LIMIT]
            del self._pending[:EVENT_BATCH_LIMIT]
            try:
                stored = await self._commit([values for values, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or is_unavailable(exc):
                    for _, future in batch:
                        _settle(future, exc)
                else:  # a row the database refuses fails only its own caller
                    await self._commit_one_by_one(batch)
                continue
            seen: set[str] = set()
            for values, future in batch:  # a repeated id in one batch is stored once
                _settle(future, values["id"] in stored and values["id"] not in seen)
                seen.add(values["id"])
            if stored:
                self._notify()

    async def _commit_one_by_one(
        self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]
    ) -> None:
        for values, future in batch:
            try:
                stored = await self._commit([values])
            except Exception as exc:
                _settle(future, exc)
            else:
                _settle(future, bool(stored))
                if stored:
                    self._notify()

    async def _commit(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert `rows` (`webhook_events` column values) in one transaction, skipping ids
        already stored; returns the ids this transaction stored. Anything else that must
        change with each stored event belongs in this transaction: the writers added with
        `add_writer` run in it. The outcome counts as a readiness probe
        (`Store.record_write`)."""
        statement = (
            self.store.insert(webhook_events)
            .on_conflict_do_nothing(index_elements=[webhook_events.c.id])
            .returning(webhook_events.c.id)
        )
        try:
            async with self.store.db_session.begin() as session:
                result = await session.execute(statement, rows)
                stored = {row.id for row in result}
                if stored and self._writers:
                    new_rows = _first_of_each(rows, stored)
                    for writer in self._writers:
                        await writer(session, new_rows)
        except DATABASE_ERRORS as exc:
            self.store.record_write(exc)
            raise
        self.store.record_write()  # committed: the store is writable (see `Store.readiness`)
        return stored

    async def find(
        self,
        *,
        filters: dict[str, str],
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before_seq: int | None = None,
        after_seq: int | None = None,
        newest_first: bool = True,
        by_time: bool = False,
        before: tuple[dt.datetime, int] | None = None,
        limit: int = 50,
    ) -> list[sa.Row[Any]]:
        """Rows of `webhook_events` matching every filter (column name -> exact value),
        `since <= created_at < until`, `after_seq < seq < before_seq`; ordered by `seq`.

        `by_time`: newest first by `(created_at, seq)` instead, below the position `before`
        (`(created_at, seq)` of the previous page's last row), read by the index on
        `(created_at, seq)`: a time window is then read by index whatever its place in the
        store (ordered by `seq`, a window far from the newest rows walks every newer row)."""
        query = sa.select(webhook_events)
        for column, value in filters.items():
            query = query.where(webhook_events.c[column] == value)
        if since is not None:
            query = query.where(webhook_events.c.created_at >= since)
        if until is not None:
            query = query.where(webhook_events.c.created_at < until)
        if before_seq is not None:
            query = query.where(webhook_events.c.seq < before_seq)
        if after_seq is not None:
            query = query.where(webhook_events.c.seq > after_seq)
        created_at, seq = webhook_events.c.created_at, webhook_events.c.seq
        if by_time:
            if before is not None:
                query = query.where(
                    sa.or_(
                        created_at < before[0], sa.and_(created_at == before[0], seq < before[1])
                    )
                )
            order = [created_at.desc(), seq.desc()]
        else:
            order = [seq.desc() if newest_first else seq.asc()]
        async with self.store.db_session() as session:
            result = await session.execute(query.order_by(*order).limit(limit))
            return list(result.all())

    async def get(self, event_id: str) -> sa.Row[Any] | None:
        """The row whose LiveKit event id is `event_id`, or None."""
        query = sa.select(webhook_events).where(webhook_events.c.id == event_id)
        async with self.store.db_session() as session:
            return (await session.execute(query)).first()

    async def last_seq(self) -> int:
        """The highest `seq` stored so far (0 when empty)."""
        async with self.store.db_session() as session:
            value = await session.scalar(sa.select(sa.func.max(webhook_events.c.seq)))
            return int(value or 0)

    async def stream_position_now(self) -> StreamPosition:
        """The follow position from which every event committed from now on is delivered.

        SQLite (one writer at a time: `seq` order is commit order): the highest `seq`.
        PostgreSQL: just below the oldest running transaction, so rows of transactions
        still in flight are delivered when they commit (rows committed by younger
        transactions meanwhile may be delivered too: a follower may see a few events from
        just before it started, never miss one)."""
        if self.store.dialect != "postgresql":
            return StreamPosition(0, await self.last_seq())
        async with self.store.db_session() as session:
            xmin = await session.scalar(sa.select(sa.text(SNAPSHOT_XMIN_SQL)))
            return StreamPosition(int(xmin), 0)

    async def position_of(self, event_id: str) -> StreamPosition | None:
        """The follow position of the stored event `event_id`, or None."""
        columns = (sa.func.coalesce(webhook_events.c.xid, 0), webhook_events.c.seq)
        query = sa.select(*columns).where(webhook_events.c.id == event_id)
        async with self.store.db_session() as session:
            row = (await session.execute(query)).first()
        return StreamPosition(int(row[0]), int(row[1])) if row is not None else None

    async def follow(
        self, *, filters: dict[str, str], after: StreamPosition, limit: int
    ) -> list[sa.Row[Any]]:
        """Up to `limit` rows matching `filters` past `after`, in follow order, never past
        the high-water mark: a follower that moves its position to the last row returned
        never skips a row committed later.

        SQLite commits one writer at a time, so `seq` order is commit order. PostgreSQL
        hands out `seq` before commit, so a later `seq` can commit first: there rows go in
        `(xid, seq)` order and only those whose `xid` is below the snapshot's `xmin` (the
        oldest transaction still running) are returned; every transaction below `xmin` has
        finished, and every later one has a higher `xid`. A long-running transaction
        anywhere in the cluster therefore holds followers back until it ends.
        """
        query = sa.select(webhook_events)
        for column, value in filters.items():
            query = query.where(webhook_events.c[column] == value)
        if self.store.dialect == "postgresql":
            xid, seq = webhook_events.c.xid, webhook_events.c.seq
            query = query.where(
                sa.tuple_(xid, seq) > sa.tuple_(sa.literal(after.xid), sa.literal(after.seq)),
                xid < sa.text(SNAPSHOT_XMIN_SQL),
            ).order_by(xid, seq)
        else:
            query = query.where(webhook_events.c.seq > after.seq).order_by(webhook_events.c.seq)
        async with self.store.db_session() as session:
            return list((await session.execute(query.limit(limit))).all())

    async def delete_received_before(self, cutoff: dt.datetime) -> int:
        """Delete events received before `cutoff`; returns how many were deleted. In the
        same transaction, the sessions with such an event leave the projections whole
        (`app.store.projections.delete_sessions_received_before`)."""
        statement = sa.delete(webhook_events).where(webhook_events.c.received_at < cutoff)
        async with self.store.db_session.begin() as session:
            await delete_sessions_received_before(session, cutoff)
            result = await session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0)

    def changed(self) -> asyncio.Event:
        """An event set at the next row this process stores (a wake-up for followers; rows
        stored by other replicas are found by polling)."""
        return self._changed

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    """Resolve a waiting `EventRepository.insert` (unless its caller has gone)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _first_of_each(rows: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """The rows whose `id` is in `ids`, the first of each id only, in order."""
    seen: set[str] = set()
    first: list[dict[str, Any]] = []
    for values in rows:
        if values["id"] in ids and values["id"] not in seen:
            seen.add(values["id"])
            first.append(values)
    return first
