"""Idempotent creates: the `Idempotency-Key` header of the contract's create routes.

Rules (contract: Conventions; the header is the one of the IETF draft
draft-ietf-httpapi-idempotency-key-header):

- the same key with the same request (method, path and body) within
  `Settings.idempotency_ttl_seconds` (24 h) of the first one gets the first response, status
  and body, without the operation (the LiveKit call) running again; the replay carries
  `Idempotent-Replayed: true`;
- the same key with a different request is 409 `idempotency_key_reused`;
- two requests with one key at the same moment run the operation once: the first to INSERT
  the key's row (state `in_progress`) runs it, the others poll the row for its stored
  response for up to `wait_seconds`, then answer 409 `idempotency_key_in_progress`;
- keys belong to the caller (the service key's name): two callers never share one;
- only a successful response is stored. When the operation fails (LiveKit refused it,
  timed out, was unreachable ...), the key is released, so a retry runs it again;
- a claim older than `lease_seconds` (its replica died mid-request) is taken over by the
  next request with that key.

The rows live in the service's database (`app.store`, table `idempotency_keys`, alembic
revision 0002), so every replica sees every key. Database failures are 503
`event_store_unavailable`. This module has no HTTP types: `app.deps.IdempotencyDep` applies
it to a route.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.errors import BadRequest, Conflict, UpstreamUnavailable
from app.settings import Settings
from app.store import Store, UTCDateTime, database_errors, metadata

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
IN_PROGRESS = "in_progress"
COMPLETED = "completed"

#: How often the lifespan deletes expired keys (seconds); a claim also deletes its own
#: key's expired row first, so this only keeps the table small.
PURGE_INTERVAL_SECONDS = 600.0

#: One row per (caller, key): the request it was first used for and, once the operation
#: succeeded, the response to replay. `claim_id` identifies the request running it now.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("caller", sa.String(), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claim_id", sa.String(36), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("response_body", sa.Text(), nullable=True),
)


@dataclass(frozen=True)
class IdempotencyPolicy:
    """Timings, in seconds: `ttl_seconds` a key is remembered from its first use,
    `wait_seconds` a concurrent request waits for the first one's response, `lease_seconds`
    after which an unfinished claim is presumed dead and taken over, `poll_seconds` the
    longest pause between two looks at a claimed key."""

    ttl_seconds: float
    wait_seconds: float
    lease_seconds: float
    poll_seconds: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> IdempotencyPolicy:
        """TTL from IDEMPOTENCY_TTL_SECONDS; waiting bounded by the LiveKit deadline
        (LIVEKIT_TIMEOUT_SECONDS): 3 deadlines to wait, 6 (at least 30 s) before a takeover,
        and never before a SIP call could have stopped ringing (SIP_CALL_TIMEOUT_SECONDS),
        so a retry never dials twice."""
        deadline = settings.livekit_timeout_seconds
        return cls(
            ttl_seconds=settings.idempotency_ttl_seconds,
            wait_seconds=3 * deadline,
            lease_seconds=max(30.0, 6 * deadline, settings.sip_call_timeout_seconds + deadline),
        )


@dataclass(frozen=True)
class StoredResponse:
    """A response to send: `status`, `body` (JSON bytes), and whether it is a replay."""

    status: int
    body: bytes
    replayed: bool = False


def check_key(key: str) -> str:
    """`key` when it is 1 to 255 visible ASCII characters; 400 `invalid_idempotency_key`."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise BadRequest(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


def request_fingerprint(method: str, target: str, body: bytes) -> str:
    """SHA-256 (hex) of the method, the target (path and query) and the body. A JSON body is
    canonicalised first (keys sorted, no insignificant whitespace), so re-serialising the
    same document does not count as a different request."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), target.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def run_once(
    store: Store,
    policy: IdempotencyPolicy,
    *,
    caller: str,
    key: str,
    fingerprint: str,
    operation: Callable[[], Awaitable[tuple[int, bytes]]],
) -> StoredResponse:
    """Run `operation` (returning status and JSON body) at most once for (`caller`, `key`).

    Returns the operation's response, or the stored one (`replayed=True`) when the key was
    used before with the same `fingerprint` (see `request_fingerprint`). Raises `Conflict`
    409 `idempotency_key_reused` for another fingerprint, 409 `idempotency_key_in_progress`
    when another request with the key is still running after `policy.wait_seconds`,
    `UpstreamUnavailable` 503 when the database fails, and whatever `operation` raises (the
    key is then released).
    """
    keys = _Keys(store, caller, key)
    deadline = time.monotonic() + policy.wait_seconds
    pause = 0.02
    while True:
        claim_id = await keys.claim(fingerprint, policy)
        if claim_id is not None:
            break
        row = await keys.read()
        if row is None:
            continue  # released or purged meanwhile: claim again
        if row.request_hash != fingerprint:
            raise Conflict(
                f"{HEADER} {key!r} was used for a different request; use a new key",
                code="idempotency_key_reused",
            )
        if row.state == COMPLETED:
            return StoredResponse(row.status_code, row.response_body.encode(), replayed=True)
        claim_id = await keys.take_over_stale(row.claim_id, policy)
        if claim_id is not None:
            log.warning("idempotency key of %s taken over from a stale claim", caller)
            break
        if time.monotonic() >= deadline:
            raise Conflict(
                f"a request with {HEADER} {key!r} is still in progress; retry later",
                code="idempotency_key_in_progress",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, policy.poll_seconds)

    try:
        status, body = await operation()
    except BaseException:
        await asyncio.shield(keys.release(claim_id))
        raise
    try:
        await keys.complete(claim_id, status, body)
    except UpstreamUnavailable:
        # The operation happened: answer it; a retry waits for the lease, then runs again.
        log.error("could not store the response for an idempotency key of %s", caller)
    return StoredResponse(status, body)


async def purge_expired(store: Store) -> int:
    """Delete every expired key; returns how many. Raises `UpstreamUnavailable` (503)."""
    statement = sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= _now())
    with database_errors():
        async with store.sessions.begin() as session:
            result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


class _Keys:
    """The statements on one (caller, key) row; each runs in its own short transaction."""

    def __init__(self, store: Store, caller: str, key: str) -> None:
        self.store = store
        self.caller = caller
        self.key = key
        table = idempotency_keys
        self.this_row = sa.and_(table.c.caller == caller, table.c.key == key)

    async def claim(self, fingerprint: str, policy: IdempotencyPolicy) -> str | None:
        """INSERT the row as `in_progress` unless it exists; the new claim id, else None.

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
                expires_at=now + dt.timedelta(seconds=policy.ttl_seconds),
            )
            .on_conflict_do_nothing(
                index_elements=[idempotency_keys.c.caller, idempotency_keys.c.key]
            )
            .returning(idempotency_keys.c.claim_id)
        )
        with database_errors():
            async with self.store.sessions.begin() as session:
                await session.execute(expired)
                won = (await session.execute(insert)).scalar_one_or_none()
        return claim_id if won == claim_id else None

    async def read(self) -> Any:
        """The row (attributes named as the columns), or None."""
        with database_errors():
            async with self.store.sessions() as session:
                return (
                    await session.execute(sa.select(idempotency_keys).where(self.this_row))
                ).first()

    async def take_over_stale(self, seen_claim: str, policy: IdempotencyPolicy) -> str | None:
        """Re-claim an `in_progress` row whose claim `seen_claim` is older than the lease."""
        now = _now()
        claim_id = str(uuid.uuid4())
        statement = (
            sa.update(idempotency_keys)
            .where(
                self.this_row,
                idempotency_keys.c.state == IN_PROGRESS,
                idempotency_keys.c.claim_id == seen_claim,
                idempotency_keys.c.claimed_at <= now - dt.timedelta(seconds=policy.lease_seconds),
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
        try:
            await self._changed(statement)
        except UpstreamUnavailable:
            log.error("could not release an idempotency key of %s", self.caller)

    async def _changed(self, statement: sa.Executable) -> bool:
        with database_errors():
            async with self.store.sessions.begin() as session:
                result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
