"""`app.http.idempotency` against a real database (SQLite files, migrated by alembic): one run
per key, replays, reuse with another request, concurrency, release on failure, expiry and
takeover of a dead claim."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.errors import BadRequest, Conflict, UpstreamUnavailable
from app.http.idempotency import (
    IdempotencyPolicy,
    StoredResponse,
    check_key,
    purge_expired,
    request_fingerprint,
    run_once,
)
from app.store.engine import Store
from app.store.idempotency import IdempotencyKeys
from app.store.tables import idempotency_keys

POLICY = IdempotencyPolicy(ttl_seconds=3600, wait_seconds=10, lease_seconds=60)


async def open_store(path: Path) -> Store:
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.migrate()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(tmp_path / "keys.db")
    yield store
    await store.aclose()


class Operation:
    """A stand-in for a LiveKit create: counts its runs, can block or fail."""

    def __init__(self, status: int = 201, fail: Exception | None = None) -> None:
        self.runs = 0
        self.status = status
        self.fail = fail
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self) -> tuple[int, bytes]:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.status, json.dumps({"id": f"AD_{self.runs}", "note": "grüße"}).encode()


async def once(
    store: Store,
    op: Operation,
    *,
    key: str = "k1",
    fingerprint: str = "f1",
    caller: str = "ci",
    policy: IdempotencyPolicy = POLICY,
) -> StoredResponse:
    return await run_once(
        store, policy, caller=caller, key=key, fingerprint=fingerprint, operation=op
    )


async def rows(store: Store) -> list:
    async with store.db_session() as session:
        return list((await session.execute(idempotency_keys.select())).all())


def test_fingerprint_ignores_json_formatting_only():
    body = json.dumps({"agent_name": "a", "metadata": "m"}).encode()
    same = b'{ "metadata": "m",\n  "agent_name": "a" }'
    path = "/v1/rooms/r/dispatches"
    assert request_fingerprint("POST", path, body) == request_fingerprint("post", path, same)
    different = [
        ("POST", path, json.dumps({"agent_name": "a", "metadata": "n"}).encode()),
        ("POST", "/v1/rooms/other/dispatches", body),
        ("PUT", path, body),
        ("POST", path, b"not json"),
    ]
    fingerprints = {request_fingerprint(*request) for request in different}
    assert request_fingerprint("POST", path, body) not in fingerprints
    assert len(fingerprints) == len(different)


@pytest.mark.parametrize("key", ["a", "0b5c3a1e-8e2f-4f3c-9d7a-2c1b0e9f8a7d", "x" * 255, "~!#$"])
def test_valid_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\t", "ünïcode"])
def test_invalid_keys_are_400(key):
    with pytest.raises(BadRequest) as raised:
        check_key(key)
    assert raised.value.code == "invalid_idempotency_key"


async def test_retry_replays_the_first_response_without_running_again(store):
    op = Operation()
    first = await once(store, op)
    second = await once(store, op)
    assert op.runs == 1
    assert (first.status, first.replayed) == (201, False)
    assert (second.status, second.body, second.replayed) == (201, first.body, True)
    [row] = await rows(store)
    assert (row.state, row.status_code) == ("completed", 201)


async def test_same_key_with_another_request_is_409_reused(store):
    op = Operation()
    await once(store, op)
    with pytest.raises(Conflict) as raised:
        await once(store, op, fingerprint="f2")
    assert raised.value.code == "idempotency_key_reused"
    assert op.runs == 1


async def test_keys_belong_to_their_caller(store):
    op = Operation()
    mine = await once(store, op, caller="ci")
    theirs = await once(store, op, caller="other", fingerprint="f2")
    assert op.runs == 2
    assert not mine.replayed and not theirs.replayed


async def test_concurrent_requests_with_one_key_run_once(store):
    op = Operation()
    op.release.clear()
    pending = [asyncio.create_task(once(store, op)) for _ in range(20)]
    await op.started.wait()
    op.release.set()
    results = await asyncio.gather(*pending)
    assert op.runs == 1
    assert {r.body for r in results} == {results[0].body}
    assert sum(not r.replayed for r in results) == 1


async def test_replicas_sharing_one_database_run_once(tmp_path):
    replicas = [await open_store(tmp_path / "shared.db") for _ in range(2)]
    op = Operation()
    op.release.clear()
    pending = [asyncio.create_task(once(replicas[i % 2], op)) for i in range(20)]
    await op.started.wait()
    op.release.set()
    results = await asyncio.gather(*pending)
    assert op.runs == 1
    assert {r.body for r in results} == {results[0].body}
    for replica in replicas:
        await replica.aclose()


async def test_failed_operation_releases_the_key(store):
    failing = Operation(fail=UpstreamUnavailable("LiveKit is down"))
    with pytest.raises(UpstreamUnavailable):
        await once(store, failing)
    assert await rows(store) == []
    op = Operation()
    result = await once(store, op)
    assert (op.runs, result.replayed) == (1, False)


async def test_waiting_past_the_bound_is_409_in_progress(store):
    op = Operation()
    op.release.clear()
    first = asyncio.create_task(once(store, op))
    await op.started.wait()
    impatient = IdempotencyPolicy(ttl_seconds=3600, wait_seconds=0.2, lease_seconds=60)
    with pytest.raises(Conflict) as raised:
        await once(store, op, policy=impatient)
    assert raised.value.code == "idempotency_key_in_progress"
    assert raised.value.headers["Retry-After"] == "1"
    op.release.set()
    assert not (await first).replayed
    assert op.runs == 1
    assert (await once(store, op)).replayed


async def test_expired_key_runs_again(store):
    op = Operation()
    short = IdempotencyPolicy(ttl_seconds=1e-6, wait_seconds=10, lease_seconds=60)
    await once(store, op, policy=short)
    again = await once(store, op, fingerprint="another request is fine once expired")
    assert (op.runs, again.replayed) == (2, False)
    assert await purge_expired(store) == 0  # the second run's row has a one-hour TTL
    await once(store, op, key="k2", policy=short)
    assert await purge_expired(store) == 1


async def test_dead_claim_is_taken_over_after_the_lease(store):
    dead = await IdempotencyKeys(store, "ci", "k1").claim(
        "f1", POLICY.ttl_seconds
    )  # a replica died mid-request
    assert dead is not None
    op = Operation()
    impatient = IdempotencyPolicy(ttl_seconds=3600, wait_seconds=0.2, lease_seconds=60)
    with pytest.raises(Conflict):
        await once(store, op, policy=impatient)
    expired_lease = IdempotencyPolicy(ttl_seconds=3600, wait_seconds=10, lease_seconds=1e-6)
    result = await once(store, op, policy=expired_lease)
    assert (op.runs, result.replayed) == (1, False)
    # the dead request cannot overwrite what the new claim stored
    await IdempotencyKeys(store, "ci", "k1").complete(dead, 500, b"{}")
    [row] = await rows(store)
    assert (row.state, row.status_code) == ("completed", 201)


async def test_database_failure_is_503(tmp_path):
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}")
    with pytest.raises(UpstreamUnavailable) as raised:
        await once(store, Operation())
    assert raised.value.code == "event_store_unavailable"
    await store.aclose()
