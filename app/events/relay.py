"""The relay of stored events to the app's webhook endpoints (contract: Webhook
endpoints): the delivery worker.

The outbox (`app.events.outbox`) writes a `webhook_deliveries` row with each event; one
attempt of a delivery and its outcome are `app.events.delivery_attempts`'s.

`Relay` claims due deliveries (`app.store.relay.claim_due`: a claim lasts
`RelayPolicy.lease_seconds`, longer than an attempt may, so a delivery is attempted by one
worker at a time while it lives; the claim of a worker that died lapses and the delivery is
attempted again), attempts each within `RelayPolicy.timeout_seconds` (15 s), and records
its outcome, retried after `RelayPolicy.schedule`. Order is not guaranteed.

No head-of-line blocking: at most `RelayPolicy.concurrency` attempts run at once, at most
`RelayPolicy.per_endpoint` of them to one endpoint; the worker claims nothing for an
endpoint whose slots are full, so a slow or dead endpoint holds only its own slots. The
worker wakes when this process stores events (`EventRepository.changed`), when a test or
replay is queued (`Relay.wake`), when an attempt ends, and every `RelayPolicy.poll_seconds`
(events stored by other replicas, retries falling due).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx

from app.core import metrics
from app.events.delivery_attempts import (
    RETRY_SCHEDULE_SECONDS,
    Outcome,
    attempt,
    next_state,
    signing_secrets,
)
from app.events.endpoint_urls import EndpointUrlRules
from app.events.outbox import utc_now
from app.store import relay as repository
from app.store.engine import Store
from app.store.errors import DATABASE_ERRORS

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class RelayPolicy:
    """How the worker delivers: `schedule` (seconds before each retry), `timeout_seconds`
    an attempt may take (resolution, connection, response), `lease_seconds` a claim lasts
    (more than an attempt may take), `poll_seconds` between looks for due deliveries,
    `concurrency` attempts at once, `per_endpoint` of them to one endpoint."""

    schedule: tuple[float, ...] = RETRY_SCHEDULE_SECONDS
    timeout_seconds: float = 15.0
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    concurrency: int = 32
    per_endpoint: int = 4


async def purge_finished_deliveries(
    store: Store, retention_days: int, *, now: dt.datetime | None = None
) -> int:
    """Delete the deliveries that ended more than `retention_days` days after they were
    queued before `now` (the events' own retention, WEBHOOK_RETENTION_DAYS); how many. 0
    keeps them forever."""
    if retention_days <= 0:
        return 0
    cutoff = (now or utc_now()) - dt.timedelta(days=retention_days)
    return await repository.delete_finished_before(store, cutoff)


# --- the worker ---------------------------------------------------------------------------


@dataclass
class _Slots:
    """Attempts under way: in all, and per endpoint."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    per_endpoint: dict[str, int] = field(default_factory=dict)


class Relay:
    """The delivery worker of one process (the lifespan owns it: `start`, `aclose`).

    `http` is the service's shared client, `rules` the endpoint URL rules, `policy` the
    timings and bounds, `clock` the time (tests move it)."""

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        rules: EndpointUrlRules,
        policy: RelayPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.http = http
        self.rules = rules
        self.policy = policy or RelayPolicy()
        self.clock = clock
        self._wake = asyncio.Event()
        self._slots = _Slots()
        self._claims: dict[str, str] = {}  # delivery id -> claim id, while attempted
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker loop."""
        self._task = asyncio.create_task(self._run(), name="webhook-relay")

    @property
    def running(self) -> bool:
        """Whether the worker loop runs (started, not stopped: it outlives database
        outages and unexpected errors, logging them)."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look for due deliveries now (a test or a replay was queued)."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the loop and the attempts under way; their deliveries are given back (due
        again at once), best effort."""
        tasks = [t for t in (self._task, *self._slots.tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for delivery_id, claim_id in list(self._claims.items()):
            try:
                await repository.release(self.store, claim_id, [delivery_id])
            except DATABASE_ERRORS:
                break

    async def _run(self) -> None:
        if self.store.dialect == "sqlite":
            # One process owns an SQLite database: a claim left is its predecessor's.
            try:
                await repository.release_every_claim(self.store)
            except DATABASE_ERRORS as exc:
                log.warning("relay: could not release old claims: %s", exc.__class__.__name__)
        failing = False  # an outage is logged when it starts and when it ends, not per poll
        while True:
            changed = self.store.events.changed()
            self._wake.clear()
            try:
                full = await self._start_due()
            except DATABASE_ERRORS as exc:
                if not failing:
                    log.warning("relay: claiming failed: %s", exc.__class__.__name__)
                failing, full = True, False
            except Exception:  # a bug must not stop every delivery of the process
                log.exception("relay: claiming failed unexpectedly")
                full = False
            else:
                if failing:
                    log.warning("relay: claiming works again")
                failing = False
            if full:
                continue  # as many as could start did: perhaps more are due
            waits = [
                asyncio.ensure_future(changed.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            try:
                await asyncio.wait(
                    waits, timeout=self.policy.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _start_due(self) -> bool:
        """Claim and start what the free slots allow; True when every free slot was filled
        (more may be due)."""
        slots, policy = self._slots, self.policy
        free = policy.concurrency - len(slots.tasks)
        if free <= 0:
            return False
        busy = [e for e, n in slots.per_endpoint.items() if n >= policy.per_endpoint]
        now = self.clock()
        claim_id = str(uuid.uuid4())
        rows = await repository.claim_due(
            self.store,
            claim_id=claim_id,
            now=now,
            claimed_until=now + dt.timedelta(seconds=policy.lease_seconds),
            limit=free,
            per_endpoint=policy.per_endpoint,
            skip_endpoints=busy,
        )
        surplus: list[str] = []
        for row in rows:
            if slots.per_endpoint.get(row.endpoint_id, 0) >= policy.per_endpoint:
                surplus.append(row.id)
                continue
            slots.per_endpoint[row.endpoint_id] = slots.per_endpoint.get(row.endpoint_id, 0) + 1
            self._claims[row.id] = claim_id
            task = asyncio.create_task(self._deliver(row, claim_id))
            slots.tasks.add(task)
            task.add_done_callback(partial(self._finished, endpoint_id=row.endpoint_id))
        if surplus:
            await repository.release(self.store, claim_id, surplus)
        return len(rows) == free and not surplus

    def _finished(self, task: asyncio.Task[None], *, endpoint_id: str) -> None:
        self._slots.tasks.discard(task)
        left = self._slots.per_endpoint.get(endpoint_id, 1) - 1
        if left > 0:
            self._slots.per_endpoint[endpoint_id] = left
        else:
            self._slots.per_endpoint.pop(endpoint_id, None)
        self._wake.set()

    async def _deliver(self, row: Any, claim_id: str) -> None:
        """One attempt of the claimed delivery `row`, and its outcome recorded."""
        now = self.clock()
        attempts = int(row.attempts) + 1
        if row.payload is None:
            outcome = Outcome(None, "the event is no longer stored", None, 0.0)
            values = next_state(outcome, attempts, now, ()) | {"status": repository.FAILED}
        else:
            outcome = await attempt(
                self.http,
                self.rules,
                url=row.url,
                delivery_id=row.id,
                payload=row.payload,
                secrets=signing_secrets(row, now),
                now=now,
                timeout_seconds=self.policy.timeout_seconds,
            )
            values = next_state(outcome, attempts, self.clock(), self.policy.schedule)
        disable = None
        if outcome.gone:
            disable = (row.endpoint_id, "the endpoint answered 410 Gone", self.clock())
        try:
            held = await repository.settle(
                self.store, row.id, claim_id, values, disable_endpoint=disable
            )
        except DATABASE_ERRORS as exc:
            # The claim lapses and the delivery is attempted again: at least once.
            log.warning("relay: could not record delivery %s: %s", row.id, exc.__class__.__name__)
            return
        finally:
            self._claims.pop(row.id, None)
        result = _result_label(values.get("status"), outcome)
        metrics.observe_delivery(result, outcome.seconds)
        if outcome.gone:
            log.warning("relay: endpoint %s answered 410 Gone: disabled", row.endpoint_id)
        elif not outcome.succeeded:
            log.info(
                "relay: delivery %s to endpoint %s, attempt %d: %s",
                row.id,
                row.endpoint_id,
                attempts,
                outcome.error,
            )
        if not held:
            log.warning("relay: delivery %s was claimed again before its outcome", row.id)


def _result_label(status: str | None, outcome: Outcome) -> str:
    """The `outcome` label of the deliveries metric."""
    if outcome.succeeded:
        return "succeeded"
    if outcome.gone:
        return "endpoint_gone"
    return "failed" if status == repository.FAILED else "retried"
