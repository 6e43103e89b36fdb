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

The rows live in the service's database (table `idempotency_keys`, alembic revision 0002;
its statements in `app.store.idempotency`), so every replica sees every key. Database
failures are 503 `event_store_unavailable`. This module has no HTTP types:
`app.http.deps.IdempotencyDep` applies it to a route.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.config.settings import Settings
from app.core.errors import BadRequest, Conflict, UpstreamUnavailable
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.idempotency import COMPLETED, IdempotencyKeys, delete_expired_keys
from app.store.tables import IDEMPOTENCY_KEY_MAX_LENGTH

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = IDEMPOTENCY_KEY_MAX_LENGTH

#: How often the lifespan deletes expired keys (seconds); a claim also deletes its own
#: key's expired row first, so this only keeps the table small.
PURGE_INTERVAL_SECONDS = 600.0


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
    keys = IdempotencyKeys(store, caller, key)
    deadline = time.monotonic() + policy.wait_seconds
    pause = 0.02
    with database_errors():
        while True:
            claim_id = await keys.claim(fingerprint, policy.ttl_seconds)
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
            claim_id = await keys.take_over_stale(row.claim_id, policy.lease_seconds)
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
        await asyncio.shield(_release(keys, claim_id))
        raise
    try:
        with database_errors():
            await keys.complete(claim_id, status, body)
    except UpstreamUnavailable:
        # The operation happened: answer it; a retry waits for the lease, then runs again.
        log.error("could not store the response for an idempotency key of %s", caller)
    return StoredResponse(status, body)


async def _release(keys: IdempotencyKeys, claim_id: str) -> None:
    """Release the key this request claimed, so that a retry runs the operation; a
    database failure is logged (the claim then lapses after the lease)."""
    try:
        with database_errors():
            await keys.release(claim_id)
    except UpstreamUnavailable:
        log.error("could not release an idempotency key of %s", keys.caller)


async def purge_expired(store: Store) -> int:
    """Delete every expired key; returns how many. Raises `UpstreamUnavailable` (503)."""
    with database_errors():
        return await delete_expired_keys(store)
