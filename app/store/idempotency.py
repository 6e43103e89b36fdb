"""The idempotency keys repository (`idempotency_keys`): the statements on one
(caller, key) row, each in its own short transaction, and the purge of expired keys.
The rules they serve are `app.http.idempotency`'s. Database errors reach the caller
(`app.store.errors`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store.tables import idempotency_keys

if TYPE_CHECKING:
    from app.store.engine import Store

#: A row's `state`: its operation is running (`claim_id` says which request runs it) ...
IN_PROGRESS = "in_progress"
#: ... or succeeded, and the row holds the response to replay.
COMPLETED = "completed"


class IdempotencyKeys:
    """The statements on the row of (`caller`, `key`)."""

    def __init__(self, store: Store, caller: str, key: str) -> None:
        self.store = store
        self.caller = caller
        self.key = key
        table = idempotency_keys
        self.this_row = sa.and_(table.c.caller == caller, table.c.key == key)

    async def claim(self, fingerprint: str, ttl_seconds: float) -> str | None:
        """INSERT the row as `in_progress` for the request `fingerprint`, expiring in
        `ttl_seconds`, unless it exists; the new claim id, else None.

        An expired row is deleted first, in the same transaction."""
        now = _now()
        claim_id = str(uuid.uuid4())
        expired = sa.delete(idempotency_keys).where(
            self.this_row, idempotency_keys.c.expires_at <= now
        )
        insert = (
            self.store.insert(idempotency_keys)
            .values(
                caller=self.caller,
                key=self.key,
                request_hash=fingerprint,
                state=IN_PROGRESS,
                claim_id=claim_id,
                claimed_at=now,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=ttl_seconds),
            )
            .on_conflict_do_nothing(
                index_elements=[idempotency_keys.c.caller, idempotency_keys.c.key]
            )
            .returning(idempotency_keys.c.claim_id)
        )
        async with self.store.db_session.begin() as session:
            await session.execute(expired)
            won = (await session.execute(insert)).scalar_one_or_none()
        return claim_id if won == claim_id else None

    async def read(self) -> Any:
        """The row (attributes named as the columns), or None."""
        async with self.store.db_session() as session:
            return (await session.execute(sa.select(idempotency_keys).where(self.this_row))).first()

    async def take_over_stale(self, seen_claim: str, lease_seconds: float) -> str | None:
        """Re-claim an `in_progress` row whose claim `seen_claim` is older than
        `lease_seconds`; the new claim id, else None."""
        now = _now()
        claim_id = str(uuid.uuid4())
        statement = (
            sa.update(idempotency_keys)
            .where(
                self.this_row,
                idempotency_keys.c.state == IN_PROGRESS,
                idempotency_keys.c.claim_id == seen_claim,
                idempotency_keys.c.claimed_at <= now - dt.timedelta(seconds=lease_seconds),
            )
            .values(claim_id=claim_id, claimed_at=now)
        )
        return claim_id if await self._changed(statement) else None

    async def complete(self, claim_id: str, status: int, body: bytes) -> None:
        """Store the response on the row this request claimed."""
        statement = (
            sa.update(idempotency_keys)
            .where(self.this_row, idempotency_keys.c.claim_id == claim_id)
            .values(state=COMPLETED, status_code=status, response_body=body.decode())
        )
        await self._changed(statement)

    async def release(self, claim_id: str) -> None:
        """Delete the row this request claimed, so that a retry runs the operation."""
        statement = sa.delete(idempotency_keys).where(
            self.this_row,
            idempotency_keys.c.claim_id == claim_id,
            idempotency_keys.c.state == IN_PROGRESS,
        )
        await self._changed(statement)

    async def _changed(self, statement: sa.Executable) -> bool:
        async with self.store.db_session.begin() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))


async def delete_expired_keys(store: Store) -> int:
    """Delete every expired key; returns how many."""
    statement = sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= _now())
    async with store.db_session.begin() as session:
        result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
