"""The relay's repository (`webhook_endpoints`, `webhook_deliveries`): the endpoints'
rows, the outbox rows written in an event's transaction, and the worker's claim, release
and settlement of due deliveries. The rules they serve are `app.events.outbox`'s,
`app.events.delivery_attempts`', `app.events.relay`'s and `app.events.webhook_endpoints`'.
Database errors reach the caller (`app.store.errors`).

Claiming
    `claim_due` marks up to `limit` due `pending` deliveries of enabled endpoints as held
    by one claim id until `claimed_until`, in one statement. On PostgreSQL the candidate
    rows are locked `FOR UPDATE SKIP LOCKED`, so workers of several replicas claim
    disjoint rows without waiting for each other; a row whose claim has lapsed (its worker
    died mid-attempt) is due again. SQLite has one writer at a time and one process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.events import EventWriter
from app.store.tables import webhook_deliveries, webhook_endpoints, webhook_events

if TYPE_CHECKING:
    from app.store.engine import Store

#: `webhook_deliveries.status` values.
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"

_deliveries = webhook_deliveries
_endpoints = webhook_endpoints


# --- endpoints ----------------------------------------------------------------------------


async def insert_endpoint(store: Store, values: dict[str, Any]) -> Any:
    """Insert one `webhook_endpoints` row (`values`: its columns but `seq`); the row."""
    async with store.db_session.begin() as session:
        await session.execute(sa.insert(_endpoints).values(values))
        return (await session.execute(_one_endpoint(values["id"]))).one()


async def get_endpoint(store: Store, endpoint_id: str) -> Any:
    """The row of `endpoint_id`, or None."""
    async with store.db_session() as session:
        return (await session.execute(_one_endpoint(endpoint_id))).first()


async def list_endpoints(store: Store, *, before_seq: int | None, limit: int) -> list[Any]:
    """Up to `limit` endpoint rows below `before_seq` (all when None), newest first."""
    query = sa.select(_endpoints).order_by(_endpoints.c.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(_endpoints.c.seq < before_seq)
    async with store.db_session() as session:
        return list((await session.execute(query)).all())


async def update_endpoint(store: Store, endpoint_id: str, values: dict[str, Any]) -> Any:
    """Set `values` on the row of `endpoint_id`; the updated row, or None when there is
    none."""
    statement = sa.update(_endpoints).where(_endpoints.c.id == endpoint_id).values(values)
    async with store.db_session.begin() as session:
        await session.execute(statement)
        return (await session.execute(_one_endpoint(endpoint_id))).first()


async def delete_endpoint(store: Store, endpoint_id: str) -> bool:
    """Delete the row of `endpoint_id` and its deliveries; whether there was one."""
    async with store.db_session.begin() as session:
        await session.execute(
            sa.delete(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id)
        )
        result = await session.execute(sa.delete(_endpoints).where(_endpoints.c.id == endpoint_id))
    return bool(getattr(result, "rowcount", 0))


async def enabled_endpoints(session: AsyncSession) -> list[Any]:
    """The enabled endpoints' `id`, `event_types` and `room_name_pattern`, read in `session`
    (an event's transaction: an endpoint enabled before it commits gets its events)."""
    columns = (_endpoints.c.id, _endpoints.c.event_types, _endpoints.c.room_name_pattern)
    query = sa.select(*columns).where(_endpoints.c.enabled.is_(True))
    return list((await session.execute(query)).all())


#: What an outbox plans: from the enabled endpoints' rows and the new events' column
#: values, the `webhook_deliveries` rows to add.
OutboxPlan = Callable[[list[Any], list[dict[str, Any]]], list[dict[str, Any]]]


def outbox_writer(plan: OutboxPlan) -> EventWriter:
    """An `EventWriter` (`EventRepository.add_writer`) adding, in the events' own
    transaction, the deliveries `plan` makes of the enabled endpoints and the new events."""

    async def write(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        endpoints = await enabled_endpoints(session)
        if endpoints:
            await add_deliveries(session, plan(endpoints, rows))

    return write


def _one_endpoint(endpoint_id: str) -> sa.Select[Any]:
    return sa.select(_endpoints).where(_endpoints.c.id == endpoint_id)


# --- deliveries ---------------------------------------------------------------------------


async def add_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `webhook_deliveries` rows (their columns but `seq`) in `session`."""
    if rows:
        await session.execute(sa.insert(_deliveries), list(rows))


async def insert_deliveries(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `webhook_deliveries` rows in a transaction of their own."""
    async with store.db_session.begin() as session:
        await add_deliveries(session, rows)


async def get_delivery(store: Store, delivery_id: str) -> Any:
    """The row of `delivery_id`, or None."""
    query = sa.select(_deliveries).where(_deliveries.c.id == delivery_id)
    async with store.db_session() as session:
        return (await session.execute(query)).first()


async def list_deliveries(
    store: Store,
    endpoint_id: str,
    *,
    status: str | None,
    before_seq: int | None,
    limit: int,
) -> list[Any]:
    """Up to `limit` delivery rows of `endpoint_id` (with `status` when given) below
    `before_seq`, newest first."""
    query = sa.select(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(_deliveries.c.status == status)
    if before_seq is not None:
        query = query.where(_deliveries.c.seq < before_seq)
    query = query.order_by(_deliveries.c.seq.desc()).limit(limit)
    async with store.db_session() as session:
        return list((await session.execute(query)).all())


async def claim_due(
    store: Store,
    *,
    claim_id: str,
    now: dt.datetime,
    claimed_until: dt.datetime,
    limit: int,
    per_endpoint: int,
    skip_endpoints: Sequence[str] = (),
) -> list[Any]:
    """Claim up to `limit` due deliveries (see the module doc), oldest due first, at most
    `per_endpoint` of one endpoint and none of an endpoint in `skip_endpoints`; each
    returned with the columns `payload` (its own body, else the stored event's; None when
    the event is gone), `url`, `secret`, `previous_secret` and
    `previous_secret_expires_at` of its endpoint."""
    due = sa.and_(
        _deliveries.c.status == PENDING,
        _deliveries.c.next_attempt_at <= now,
        sa.or_(_deliveries.c.claimed_until.is_(None), _deliveries.c.claimed_until <= now),
    )
    rank = sa.func.row_number().over(
        partition_by=_deliveries.c.endpoint_id,
        order_by=(_deliveries.c.next_attempt_at, _deliveries.c.seq),
    )
    ranked = (
        sa.select(_deliveries.c.seq, rank.label("rank"))
        .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
        .where(due, _endpoints.c.enabled.is_(True))
    )
    if skip_endpoints:
        ranked = ranked.where(_deliveries.c.endpoint_id.not_in(list(skip_endpoints)))
    candidates = ranked.subquery()
    # The outer query repeats the conditions: on PostgreSQL a row another worker claimed
    # and committed meanwhile is checked again once locked, and skipped.
    chosen = (
        sa.select(_deliveries.c.seq)
        .where(
            _deliveries.c.seq.in_(
                sa.select(candidates.c.seq).where(candidates.c.rank <= per_endpoint)
            ),
            due,
        )
        .order_by(_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if store.dialect == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    claim = (
        sa.update(_deliveries)
        .where(_deliveries.c.seq.in_(chosen.scalar_subquery()))
        .values(claim_id=claim_id, claimed_until=claimed_until)
        .returning(_deliveries.c.seq)
    )
    read = (
        sa.select(
            _deliveries,
            sa.func.coalesce(_deliveries.c.body, webhook_events.c.body).label("payload"),
            _endpoints.c.url,
            _endpoints.c.secret,
            _endpoints.c.previous_secret,
            _endpoints.c.previous_secret_expires_at,
        )
        .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
        .outerjoin(webhook_events, webhook_events.c.id == _deliveries.c.event_id)
        .where(_deliveries.c.claim_id == claim_id)
        .order_by(_deliveries.c.next_attempt_at)
    )
    async with store.db_session.begin() as session:
        claimed = list((await session.execute(claim)).scalars())
        if not claimed:
            return []
        return list((await session.execute(read)).all())


async def release(store: Store, claim_id: str, delivery_ids: Sequence[str]) -> None:
    """Give back the deliveries `delivery_ids` that `claim_id` holds, unattempted: due again
    at once."""
    statement = sa.update(_deliveries).where(
        _deliveries.c.claim_id == claim_id, _deliveries.c.id.in_(list(delivery_ids))
    )
    async with store.db_session.begin() as session:
        await session.execute(statement.values(claim_id=None, claimed_until=None))


async def release_every_claim(store: Store) -> int:
    """Give back every held delivery (only for a database one process owns: SQLite, at the
    start of its worker, whose predecessor may have died mid-attempt); how many."""
    statement = (
        sa.update(_deliveries)
        .where(_deliveries.c.claim_id.is_not(None))
        .values(claim_id=None, claimed_until=None)
    )
    async with store.db_session.begin() as session:
        result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def settle(
    store: Store,
    delivery_id: str,
    claim_id: str,
    values: dict[str, Any],
    *,
    disable_endpoint: tuple[str, str, dt.datetime] | None = None,
) -> bool:
    """Record an attempt's outcome (`values`: columns) on `delivery_id`, releasing its claim,
    if `claim_id` still holds it; with `disable_endpoint` (endpoint id, reason, time), that
    endpoint is disabled in the same transaction. Whether the claim still held."""
    statement = (
        sa.update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.claim_id == claim_id)
        .values(**values, claim_id=None, claimed_until=None)
    )
    async with store.db_session.begin() as session:
        result = await session.execute(statement)
        held = bool(getattr(result, "rowcount", 0))
        if held and disable_endpoint is not None:
            endpoint_id, reason, when = disable_endpoint
            await session.execute(
                sa.update(_endpoints)
                .where(_endpoints.c.id == endpoint_id)
                .values(enabled=False, disabled_reason=reason, updated_at=when)
            )
    return held


async def delete_finished_before(store: Store, cutoff: dt.datetime) -> int:
    """Delete the deliveries that ended (`succeeded`, `failed`) and were created before
    `cutoff`; how many."""
    statement = sa.delete(_deliveries).where(
        _deliveries.c.status.in_((SUCCEEDED, FAILED)), _deliveries.c.created_at < cutoff
    )
    async with store.db_session.begin() as session:
        result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
