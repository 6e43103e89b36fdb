"""The relay of stored events to the app's webhook endpoints (contract: Webhook
endpoints): the outbox written with each event, and the delivery worker.

Outbox
    `outbox_writer` is an `EventWriter` (`app.store.events.EventRepository.add_writer`):
    in the very transaction that stores new events (received or derived), it adds one
    `webhook_deliveries` row per (event, enabled endpoint whose filters match), so an event
    is never stored without its deliveries, whatever stops the process and when.

Delivery (Standard Webhooks, https://www.standardwebhooks.com/)
    `Relay` claims due deliveries (`app.store.relay.claim_due`: a claim lasts
    `RelayPolicy.lease_seconds`, longer than an attempt may, so a delivery is attempted by
    one worker at a time while it lives; the claim of a worker that died lapses and the
    delivery is attempted again) and POSTs each event's JSON with `webhook-id` (the
    delivery's id, the same on every retry), `webhook-timestamp` and `webhook-signature`,
    signed with the `standardwebhooks` library by the endpoint's secret and, for 24 h after
    a rotation, the previous one too (two `v1,` signatures). The host is resolved and its
    addresses checked at every attempt (`app.events.endpoint_urls`), then the checked address is
    the one connected to; redirects are not followed.

    Outcomes: a `2xx` within `RelayPolicy.timeout_seconds` (15 s) is success; `410 Gone`
    disables the endpoint (its pending deliveries wait until it is enabled again); any
    other outcome is retried after `RETRY_SCHEDULE_SECONDS` (5 s, 5 min, 30 min, 2 h, 5 h,
    10 h, 10 h), and no sooner than a `429`/`503`'s `Retry-After` says; past the schedule
    the delivery is `failed`. Order is not guaranteed.

    No head-of-line blocking: at most `RelayPolicy.concurrency` attempts run at once, at
    most `RelayPolicy.per_endpoint` of them to one endpoint; the worker claims nothing for
    an endpoint whose slots are full, so a slow or dead endpoint holds only its own slots.
    The worker wakes when this process stores events (`EventRepository.changed`), when a
    test or replay is queued (`Relay.wake`), when an attempt ends, and every
    `RelayPolicy.poll_seconds` (events stored by other replicas, retries falling due).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import fnmatch
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from app.core import metrics
from app.core.errors import InvalidInput
from app.events.endpoint_urls import AddressRefused, EndpointUrlRules
from app.store import relay as repository
from app.store.engine import Store
from app.store.errors import DATABASE_ERRORS

log = logging.getLogger(__name__)

#: Delays (seconds) before the 2nd, 3rd ... 8th attempts; after the 8th fails: `failed`.
RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: The statuses whose `Retry-After` is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: `last_error` is cut to this many characters.
MAX_ERROR_LENGTH = 300

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, UTC."""
    return dt.datetime.now(dt.UTC)


def new_delivery_id() -> str:
    """A delivery's id, its `webhook-id` (`msg_` and 32 hex digits)."""
    return f"msg_{uuid.uuid4().hex}"


# --- which endpoints get an event ---------------------------------------------------------


def matches(
    event_types: Sequence[str], room_name_pattern: str, event: str, room: str | None
) -> bool:
    """Whether an endpoint with these filters gets an `event` of `room`: its type among
    `event_types` (empty: any), its room name matching the shell pattern
    `room_name_pattern` (`fnmatch.fnmatchcase`; empty: any, an event of no room included)."""
    if event_types and event not in event_types:
        return False
    if room_name_pattern:
        return room is not None and fnmatch.fnmatchcase(room, room_name_pattern)
    return True


def delivery_row(
    endpoint_id: str, event_id: str, event: str, now: dt.datetime, body: str | None = None
) -> dict[str, Any]:
    """A new `webhook_deliveries` row, due at `now`."""
    return {
        "id": new_delivery_id(),
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event": event,
        "body": body,
        "status": repository.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def plan_deliveries(endpoints: list[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outbox's rule: a delivery row per (new event in `rows`, enabled endpoint among
    `endpoints` whose filters match it), due now."""
    now = utc_now()
    filters = [(e.id, json.loads(e.event_types), e.room_name_pattern) for e in endpoints]
    return [
        delivery_row(endpoint_id, row["id"], row["event"], now)
        for row in rows
        for endpoint_id, types, pattern in filters
        if matches(types, pattern, row["event"], row.get("room_name"))
    ]


#: The relay's `EventWriter`: `plan_deliveries` in every event's transaction.
outbox_writer = repository.outbox_writer(plan_deliveries)


# --- attempts -----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the response's `status_code` (None when there was no
    response), `error` (what went wrong, for `last_error`), `retry_after` (seconds a
    `429`/`503` asked for), `seconds` it took."""

    status_code: int | None
    error: str | None
    retry_after: float | None
    seconds: float

    @property
    def succeeded(self) -> bool:
        """A 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the endpoint asks to be disabled."""
        return self.status_code == 410


def signature_header(
    delivery_id: str,
    timestamp: dt.datetime,
    payload: str,
    secrets: Sequence[str],
) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret (`whsec_...`), space
    separated, made by `standardwebhooks`' `Webhook.sign`."""
    return " ".join(Webhook(secret).sign(delivery_id, timestamp, payload) for secret in secrets)


def signing_secrets(row: Any, now: dt.datetime) -> list[str]:
    """The secrets that sign a delivery of an endpoint `row`: its secret, and its previous
    one until `previous_secret_expires_at`."""
    found = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        found.append(row.previous_secret)
    return found


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """`Retry-After` (RFC 9110 §10.2.3: delay seconds or an HTTP date) as seconds from
    `now`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def next_state(
    outcome: Outcome, attempts: int, now: dt.datetime, schedule: Sequence[float]
) -> dict[str, Any]:
    """The delivery's columns after its `attempts`-th attempt ended with `outcome` (see the
    module doc for the rules)."""
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "latency_ms": round(outcome.seconds * 1000, 3),
    }
    if outcome.succeeded:
        return values | {"status": repository.SUCCEEDED, "next_attempt_at": None}
    if outcome.gone or attempts > len(schedule):
        return values | {"status": repository.FAILED, "next_attempt_at": None}
    delay = schedule[attempts - 1]
    if outcome.retry_after is not None and outcome.status_code in RETRY_AFTER_STATUSES:
        delay = max(delay, outcome.retry_after)
    return values | {"next_attempt_at": now + dt.timedelta(seconds=delay)}


async def attempt(
    http: httpx.AsyncClient,
    rules: EndpointUrlRules,
    *,
    url: str,
    delivery_id: str,
    payload: str,
    secrets: Sequence[str],
    now: dt.datetime,
    timeout_seconds: float,
) -> Outcome:
    """POST `payload` (the event's JSON) to `url` once, signed (`signature_header`), to the
    address checked at this attempt (`EndpointUrlRules.resolve`), within
    `timeout_seconds` in all; never raises for what the endpoint or the network does."""
    started = time.perf_counter()
    error: str | None = None
    response: httpx.Response | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            endpoint = rules.parse(url)
            resolved = await rules.resolve(endpoint, timeout_seconds)
            headers = {
                "Host": endpoint.host_header,
                "Content-Type": "application/json",
                "User-Agent": "livekit-control-plane-relay",
                "webhook-id": delivery_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature_header(delivery_id, now, payload, secrets),
            }
            extensions: dict[str, Any] = {}
            if endpoint.scheme == "https":
                # TLS to the checked address names the URL's host (SNI, and the name the
                # certificate is verified against). The client pools connections by address:
                # one verified for this name is closed after the response, never reused for
                # another name at the same address.
                extensions["sni_hostname"] = endpoint.host
                headers["Connection"] = "close"
            response = await http.post(
                resolved.url,
                content=payload.encode(),
                headers=headers,
                timeout=timeout_seconds,
                follow_redirects=False,
                extensions=extensions,
            )
    except TimeoutError:
        error = f"no response within {timeout_seconds:g} s"
    except (AddressRefused, InvalidInput) as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    except Exception as exc:  # anything else fails this attempt only; it is retried
        log.exception("relay: attempt of delivery %s failed unexpectedly", delivery_id)
        error = f"unexpected error ({exc.__class__.__name__})"
    seconds = time.perf_counter() - started
    if response is None:
        return Outcome(None, (error or "no response")[:MAX_ERROR_LENGTH], None, seconds)
    code = response.status_code
    failure = None if 200 <= code < 300 else f"HTTP {code}"
    retry_after = retry_after_seconds(response.headers.get("retry-after"), utc_now())
    return Outcome(code, failure, retry_after, seconds)


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
