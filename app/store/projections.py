"""The session projections (`sessions`, `session_participants`, `session_egress`,
`session_ingress`): one upsert per fact of each stored event
(`app.store.projection_facts.facts_of`), run in the event's own transaction
(`write_projections`, an `EventWriter`), their rebuild from the stored events, their share
of the retention purge (their indexed reads: `app.store.session_reads`). Database errors
reach the caller (`app.store.errors`).

Each column merges by a commutative, idempotent rule written in SQL (`ON CONFLICT DO
UPDATE` with `CASE`), so events applied in any order, repeated, or by two replicas at once
converge on one row, with no read before the write (the rules: `app.store.projection_facts`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.facts import (
    NO_STAMP,
    EgressFact,
    IngressFact,
    ParticipantFact,
    SessionFact,
    Stamp,
)
from app.store.projection_facts import facts_of
from app.store.tables import (
    session_egress,
    session_ingress,
    session_participants,
    sessions,
    webhook_events,
)

if TYPE_CHECKING:
    from app.store.engine import Store

#: Stored events read per transaction by `rebuild` (and migration 0006).
REBUILD_BATCH = 1000

PROJECTION_TABLES = (sessions, session_participants, session_egress, session_ingress)


def dialect_insert(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The INSERT of `dialect` (`"postgresql"` or `"sqlite"`) for `table`."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


# --- merge rules as SQL ------------------------------------------------------------------


def _first(
    table: sa.Table, excluded: Any, name: str, *, earliest: bool
) -> dict[str, sa.ColumnElement[Any]]:
    """`name` and `name_real`: a real value beats a derived one; among equals the earliest
    (or latest); a value beats none."""
    current, new = table.c[name], excluded[name]
    current_real, new_real = table.c[f"{name}_real"], excluded[f"{name}_real"]
    better = new < current if earliest else new > current
    take = sa.or_(
        current.is_(None),
        sa.and_(
            new.is_not(None),
            sa.or_(
                sa.and_(new_real, sa.not_(current_real)),
                sa.and_(new_real == current_real, better),
            ),
        ),
    )
    return {
        name: sa.case((take, new), else_=current),
        f"{name}_real": sa.case((take, new_real), else_=current_real),
    }


def _latest_by_stamp(
    table: sa.Table, excluded: Any, prefix: str, values: Sequence[str], rank: str | None = None
) -> dict[str, sa.ColumnElement[Any]]:
    """`values` and the stamp columns `prefix_*` of the event greatest by
    `(rank, real, at, event)`."""
    keys = ([rank] if rank else []) + [f"{prefix}_real", f"{prefix}_at", f"{prefix}_event"]
    newer = sa.tuple_(*(excluded[k] for k in keys)) > sa.tuple_(*(table.c[k] for k in keys))
    return {
        name: sa.case((newer, excluded[name]), else_=table.c[name]) for name in [*values, *keys]
    }


def _greatest(table: sa.Table, excluded: Any, *names: str) -> dict[str, sa.ColumnElement[Any]]:
    return {
        name: sa.case((excluded[name] > table.c[name], excluded[name]), else_=table.c[name])
        for name in names
    }


def _least(table: sa.Table, excluded: Any, *names: str) -> dict[str, sa.ColumnElement[Any]]:
    return {
        name: sa.case((excluded[name] < table.c[name], excluded[name]), else_=table.c[name])
        for name in names
    }


def _any(table: sa.Table, excluded: Any, *names: str) -> dict[str, sa.ColumnElement[Any]]:
    return {name: sa.or_(table.c[name], excluded[name]) for name in names}


def _stamp_values(prefix: str, stamp: Stamp) -> dict[str, Any]:
    return {
        f"{prefix}_real": stamp.real,
        f"{prefix}_at": stamp.at,
        f"{prefix}_event": stamp.event_id,
    }


def _time_values(name: str, value: dt.datetime | None, stamp: Stamp) -> dict[str, Any]:
    return {name: value, f"{name}_real": stamp.real and value is not None}


@functools.cache  # built once per dialect: SQLAlchemy then reuses its compiled form
def _session_upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect, sessions)
    ex = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[sessions.c.session_id],
        set_={
            **_latest_by_stamp(sessions, ex, "room_name", ["room_name"]),
            **_any(sessions, ex, "anchored"),
            **_first(sessions, ex, "created_at", earliest=True),
            **_first(sessions, ex, "ended_at", earliest=False),
            **_first(sessions, ex, "first_event_at", earliest=True),
            **_first(sessions, ex, "last_active", earliest=False),
            **_least(sessions, ex, "oldest_received_at"),
        },
    )


def _session_values(fact: SessionFact) -> dict[str, Any]:
    stamp = fact.stamp
    return {
        "session_id": fact.session_id,
        "room_name": fact.room_name,
        **_stamp_values("room_name", stamp if fact.room_name else NO_STAMP),
        "anchored": fact.anchored,
        **_time_values("created_at", fact.created_at, stamp),
        **_time_values("ended_at", fact.ended_at, stamp),
        **_time_values("first_event_at", stamp.at, stamp),
        **_time_values("last_active", stamp.at, stamp),
        "oldest_received_at": fact.received_at,
    }


_SOURCE_COLUMNS = ("camera", "microphone", "screen_share", "screen_share_audio")


@functools.cache  # built once per dialect: SQLAlchemy then reuses its compiled form
def _participant_upsert(dialect: str) -> Any:
    table = session_participants
    statement = dialect_insert(dialect, table)
    ex = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.participant_sid],
        set_={
            **_greatest(table, ex, "identity", "kind"),
            **_latest_by_stamp(table, ex, "name", ["name"]),
            **_first(table, ex, "joined_at", earliest=True),
            **_first(table, ex, "left_at", earliest=False),
            **_any(table, ex, *_SOURCE_COLUMNS),
        },
    )


def _participant_values(fact: ParticipantFact) -> dict[str, Any]:
    return {
        "session_id": fact.session_id,
        "participant_sid": fact.participant_sid,
        "identity": fact.identity,
        "name": fact.name,
        **_stamp_values("name", fact.stamp if fact.name else NO_STAMP),
        "kind": fact.kind,
        **_time_values("joined_at", fact.joined_at, fact.stamp),
        **_time_values("left_at", fact.left_at, fact.stamp),
        **{source: source in fact.sources for source in _SOURCE_COLUMNS},
    }


@functools.cache  # built once per dialect: SQLAlchemy then reuses its compiled form
def _egress_upsert(dialect: str) -> Any:
    table = session_egress
    statement = dialect_insert(dialect, table)
    ex = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.egress_id],
        set_={
            **_greatest(table, ex, "room_name", "egress_type"),
            **_latest_by_stamp(table, ex, "status", ["status"], rank="status_rank"),
            **_first(table, ex, "started_at", earliest=True),
            **_first(table, ex, "ended_at", earliest=False),
            **_least(table, ex, "oldest_received_at"),
        },
    )


def _egress_values(fact: EgressFact) -> dict[str, Any]:
    return {
        "egress_id": fact.egress_id,
        "session_id": fact.session_id,
        "room_name": fact.room_name,
        "egress_type": fact.egress_type,
        "status": fact.status,
        "status_rank": fact.status_rank,
        **_stamp_values("status", fact.stamp),
        **_time_values("started_at", fact.started_at, fact.stamp),
        **_time_values("ended_at", fact.ended_at, fact.stamp),
        "oldest_received_at": fact.received_at,
    }


@functools.cache  # built once per dialect: SQLAlchemy then reuses its compiled form
def _ingress_upsert(dialect: str) -> Any:
    table = session_ingress
    statement = dialect_insert(dialect, table)
    ex = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.ingress_id, table.c.started_ns],
        set_={
            **_greatest(table, ex, "session_id", "room_name", "participant_identity"),
            **_first(table, ex, "started_at", earliest=True),
            **_first(table, ex, "ended_at", earliest=False),
            **_least(table, ex, "oldest_received_at"),
        },
    )


def _ingress_values(fact: IngressFact) -> dict[str, Any]:
    return {
        "ingress_id": fact.ingress_id,
        "started_ns": fact.started_ns,
        "session_id": fact.session_id,
        "room_name": fact.room_name,
        "participant_identity": fact.participant_identity,
        **_time_values("started_at", fact.started_at, fact.stamp),
        **_time_values("ended_at", fact.ended_at, fact.stamp),
        "oldest_received_at": fact.received_at,
    }


def projection_statements(dialect: str, rows: Iterable[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """The upserts (statement, parameters) that fold the stored events `rows`
    (`webhook_events` columns, as dicts or rows) into the projections, one per fact.
    Each is run on its own: one statement never touches a row twice. They come sorted by
    table and key (the merge is commutative, so any order gives the same rows), so that
    two transactions lock shared rows in the same order and never deadlock."""
    upserts = (
        _session_upsert(dialect),
        _participant_upsert(dialect),
        _egress_upsert(dialect),
        _ingress_upsert(dialect),
    )
    keyed: list[tuple[tuple[Any, ...], int, dict[str, Any]]] = []
    for row in rows:
        facts = facts_of(row)
        for f in facts.sessions:
            keyed.append(((0, f.session_id), 0, _session_values(f)))
        for p in facts.participants:
            keyed.append(((1, p.session_id, p.participant_sid), 1, _participant_values(p)))
        for e in facts.egress:
            keyed.append(((2, e.session_id, e.egress_id), 2, _egress_values(e)))
        for i in facts.ingress:
            keyed.append(((3, i.ingress_id, i.started_ns), 3, _ingress_values(i)))
    keyed.sort(key=lambda item: item[0])
    return [(upserts[table], values) for _, table, values in keyed]


def _statement_of(pair: tuple[Any, dict[str, Any]]) -> int:
    return id(pair[0])


async def write_projections(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The `EventWriter` of the projections: folds the events just stored into them, in
    the events' transaction, each table's upserts sent together (`executemany`: one call
    to the database per table, not per fact)."""
    dialect = session.get_bind().dialect.name
    for _, parameters in groupby(projection_statements(dialect, rows), _statement_of):
        # one executemany per table: the driver runs the statement once per row, in order
        group = list(parameters)
        await session.execute(group[0][0], [values for _, values in group])


# --- rebuild and purge -------------------------------------------------------------------


def rebuild_sync(connection: Connection, batch: int = REBUILD_BATCH) -> int:
    """Empty the projections and fold every stored event into them again, `batch` events
    per read, on `connection` (in its transaction: migration 0006 runs it); returns how
    many events were read."""
    for table in PROJECTION_TABLES:
        connection.execute(sa.delete(table))
    dialect = connection.dialect.name
    columns = (
        webhook_events.c.seq,
        webhook_events.c.id,
        webhook_events.c.event,
        webhook_events.c.created_at,
        webhook_events.c.received_at,
        webhook_events.c.body,
    )
    last, count = 0, 0
    while True:
        query = (
            sa.select(*columns)
            .where(webhook_events.c.seq > last)
            .order_by(webhook_events.c.seq)
            .limit(batch)
        )
        rows = connection.execute(query).all()
        if not rows:
            return count
        for statement, values in projection_statements(dialect, rows):
            connection.execute(statement, values)
        last, count = rows[-1].seq, count + len(rows)


async def rebuild(store: Store) -> int:
    """`rebuild_sync` in one transaction on `store`; returns how many events were read."""
    async with store.engine.begin() as connection:
        return await connection.run_sync(rebuild_sync)


async def delete_sessions_received_before(session: AsyncSession, cutoff: dt.datetime) -> None:
    """The purge's share (in its transaction): every session with an event received before
    `cutoff` goes whole (its participants and egress too), and every egress or ingress
    interval with such an event."""
    expired = sa.select(sessions.c.session_id).where(sessions.c.oldest_received_at < cutoff)
    for table in (session_participants, session_egress, session_ingress):
        await session.execute(sa.delete(table).where(table.c.session_id.in_(expired)))
    await session.execute(sa.delete(sessions).where(sessions.c.oldest_received_at < cutoff))
    for table in (session_egress, session_ingress):
        await session.execute(sa.delete(table).where(table.c.oldest_received_at < cutoff))
