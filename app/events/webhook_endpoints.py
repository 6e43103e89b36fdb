"""The app's webhook endpoints (contract: Webhook endpoints): create, read, change, delete,
rotate the signing secret, queue a test event or a replay, list deliveries. The delivery
itself is `app.events.relay`'s (the outbox's rows `app.events.outbox`'s); the statements
are `app.store.relay`'s.

Secrets
    A signing secret is `whsec_` and the base64 of `SECRET_BYTES` random bytes (Standard
    Webhooks). It is answered by the creation and by a rotation only (`EndpointCreated`),
    never by a read, a list or a replay of an idempotent creation, and never logged. A
    rotation keeps the replaced secret signing beside the new one for
    `PREVIOUS_SECRET_SECONDS` (24 h), so the app can roll its verifier over.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from app.core.errors import BadRequest, Conflict, NotFound
from app.events.endpoint_urls import EndpointUrlRules
from app.events.outbox import delivery_row, matches, utc_now
from app.store import relay as repository
from app.store.cursor import Cursor
from app.store.engine import Store
from app.store.errors import database_errors
from schemas.common import Page
from schemas.webhook_endpoints import (
    DeliveryQuery,
    EndpointListQuery,
    ReplayReceipt,
    ReplayRequest,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

#: Random bytes of a signing secret (Standard Webhooks asks for 24 to 64).
SECRET_BYTES = 32
#: Seconds a replaced secret keeps signing after a rotation.
PREVIOUS_SECRET_SECONDS = 24 * 3600
#: Stored events read per statement by a replay.
REPLAY_BATCH = 500
#: The `event` of a test delivery.
TEST_EVENT = "webhook_test"


def new_secret() -> str:
    """A fresh signing secret, `whsec_<base64>`."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_endpoint_id() -> str:
    """An endpoint id: `WE_` and 12 random URL-safe characters (LiveKit's style of ids)."""
    return "WE_" + secrets.token_urlsafe(9)


@dataclass(frozen=True)
class EndpointPageToken(Cursor):
    """The endpoint list's cursor: the `seq` of the last endpoint returned."""

    PREFIX: ClassVar[str] = "we1:"
    before_seq: int


@dataclass(frozen=True)
class DeliveryPageToken(Cursor):
    """The delivery list's cursor: the `seq` of the last delivery returned."""

    PREFIX: ClassVar[str] = "wd1:"
    before_seq: int


def endpoint_view(row: Any) -> WebhookEndpoint:
    """A `webhook_endpoints` row as the API shows it, without its secrets."""
    return WebhookEndpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=json.loads(row.event_types),
        room_name_pattern=row.room_name_pattern,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _with_secret(row: Any) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**endpoint_view(row).model_dump(), signing_secret=row.secret)


def delivery_view(row: Any) -> WebhookDelivery:
    """A `webhook_deliveries` row as the API shows it."""
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
    )


async def create_endpoint(
    store: Store, rules: EndpointUrlRules, body: WebhookEndpointCreate
) -> WebhookEndpointWithSecret:
    """Store a new endpoint with a fresh secret; the endpoint with its `signing_secret`.
    Raises 422 (`invalid_webhook_endpoint_url`, `webhook_endpoint_address_refused`: see
    `EndpointUrlRules.check`), 503."""
    await rules.check(body.url)
    now = utc_now()
    values = {
        "id": new_endpoint_id(),
        "url": body.url,
        "description": body.description,
        "event_types": json.dumps(body.event_types),
        "room_name_pattern": body.room_name_pattern,
        "enabled": body.enabled,
        "disabled_reason": None,
        "secret": new_secret(),
        "previous_secret": None,
        "previous_secret_expires_at": None,
        "created_at": now,
        "updated_at": now,
    }
    with database_errors():
        row = await repository.insert_endpoint(store, values)
    return _with_secret(row)


async def list_endpoints(store: Store, query: EndpointListQuery) -> Page[WebhookEndpoint]:
    """Endpoints, newest first, a page at a time; 400 `invalid_page_token`, 503."""
    before = EndpointPageToken.decode(query.page_token).before_seq if query.page_token else None
    with database_errors():
        rows = await repository.list_endpoints(store, before_seq=before, limit=query.limit + 1)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    token = EndpointPageToken(rows[-1].seq).encode() if more else None
    return Page[WebhookEndpoint](items=[endpoint_view(r) for r in rows], next_page_token=token)


async def _row(store: Store, endpoint_id: str) -> Any:
    with database_errors():
        row = await repository.get_endpoint(store, endpoint_id)
    if row is None:
        raise NotFound(
            f"no webhook endpoint has id {endpoint_id!r}", code="webhook_endpoint_not_found"
        )
    return row


async def get_endpoint(store: Store, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint; 404 `webhook_endpoint_not_found`, 503."""
    return endpoint_view(await _row(store, endpoint_id))


async def update_endpoint(
    store: Store, rules: EndpointUrlRules, endpoint_id: str, body: WebhookEndpointUpdate
) -> WebhookEndpoint:
    """Change the fields given in `body`; enabling clears `disabled_reason`. 404, 422 (a
    new `url`, as at creation), 503."""
    await _row(store, endpoint_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        await rules.check(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = json.dumps(changes["event_types"])
    if changes.get("enabled"):
        changes["disabled_reason"] = None
    changes["updated_at"] = utc_now()
    with database_errors():
        row = await repository.update_endpoint(store, endpoint_id, changes)
    if row is None:
        raise NotFound(
            f"no webhook endpoint has id {endpoint_id!r}", code="webhook_endpoint_not_found"
        )
    return endpoint_view(row)


async def delete_endpoint(store: Store, endpoint_id: str) -> None:
    """Delete an endpoint and its deliveries (pending ones are not sent); 404, 503."""
    with database_errors():
        deleted = await repository.delete_endpoint(store, endpoint_id)
    if not deleted:
        raise NotFound(
            f"no webhook endpoint has id {endpoint_id!r}", code="webhook_endpoint_not_found"
        )


async def rotate_secret(store: Store, endpoint_id: str) -> WebhookEndpointWithSecret:
    """Give the endpoint a fresh secret; the replaced one keeps signing beside it for
    `PREVIOUS_SECRET_SECONDS`. The endpoint with its new `signing_secret`; 404, 503."""
    row = await _row(store, endpoint_id)
    now = utc_now()
    changes = {
        "secret": new_secret(),
        "previous_secret": row.secret,
        "previous_secret_expires_at": now + dt.timedelta(seconds=PREVIOUS_SECRET_SECONDS),
        "updated_at": now,
    }
    with database_errors():
        updated = await repository.update_endpoint(store, endpoint_id, changes)
    return _with_secret(updated)


def probe_event_body(event_id: str, now: dt.datetime) -> str:
    """The JSON of a test event, shaped as LiveKit's `WebhookEvent` (protojson)."""
    return json.dumps({"event": TEST_EVENT, "id": event_id, "createdAt": str(int(now.timestamp()))})


async def send_test_event(
    store: Store, endpoint_id: str, wake: Callable[[], None] | None = None
) -> WebhookDelivery:
    """Queue a test event (`event: webhook_test`) to the endpoint, delivered as any other
    (signed, retried), whatever its filters; the delivery. `wake` tells the relay it is
    queued. 404, 409
    `webhook_endpoint_disabled`, 503."""
    row = await _row(store, endpoint_id)
    if not row.enabled:
        raise Conflict(
            f"webhook endpoint {endpoint_id!r} is disabled; enable it first",
            code="webhook_endpoint_disabled",
        )
    now = utc_now()
    event_id = f"EV_test_{uuid.uuid4().hex[:12]}"
    delivery = delivery_row(endpoint_id, event_id, TEST_EVENT, now, probe_event_body(event_id, now))
    with database_errors():
        await repository.insert_deliveries(store, [delivery])
        stored = await repository.get_delivery(store, delivery["id"])
    if wake is not None:
        wake()
    return delivery_view(stored)


async def replay_events(
    store: Store,
    endpoint_id: str,
    body: ReplayRequest,
    wake: Callable[[], None] | None = None,
) -> ReplayReceipt:
    """Queue a new delivery (a new `webhook-id`) of every stored event with
    `since <= created_at < until` that the endpoint's filters match; how many (`wake`
    tells the relay when any were queued). 400
    `invalid_replay_window` (until not after since), 404, 409 `webhook_endpoint_disabled`,
    503."""
    row = await _row(store, endpoint_id)
    if not row.enabled:
        raise Conflict(
            f"webhook endpoint {endpoint_id!r} is disabled; enable it first",
            code="webhook_endpoint_disabled",
        )
    until = body.until or utc_now()
    since = body.since if body.since.tzinfo else body.since.replace(tzinfo=dt.UTC)
    until = until if until.tzinfo else until.replace(tzinfo=dt.UTC)
    if until <= since:
        raise BadRequest("until must be after since", code="invalid_replay_window")
    types = json.loads(row.event_types)
    after = 0
    enqueued = 0
    with database_errors():
        while True:
            events = await store.events.find(
                filters={},
                since=since,
                until=until,
                after_seq=after,
                newest_first=False,
                limit=REPLAY_BATCH,
            )
            now = utc_now()
            deliveries = [
                delivery_row(endpoint_id, e.id, e.event, now)
                for e in events
                if matches(types, row.room_name_pattern, e.event, e.room_name)
            ]
            await repository.insert_deliveries(store, deliveries)
            enqueued += len(deliveries)
            if len(events) < REPLAY_BATCH:
                break
            after = events[-1].seq
    if enqueued and wake is not None:
        wake()
    return ReplayReceipt(enqueued=enqueued)


async def list_deliveries(
    store: Store, endpoint_id: str, query: DeliveryQuery
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries, newest first, with `status` when given; 400
    `invalid_page_token`, 404, 503."""
    await _row(store, endpoint_id)
    before = DeliveryPageToken.decode(query.page_token).before_seq if query.page_token else None
    with database_errors():
        rows = await repository.list_deliveries(
            store, endpoint_id, status=query.status, before_seq=before, limit=query.limit + 1
        )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    token = DeliveryPageToken(rows[-1].seq).encode() if more else None
    return Page[WebhookDelivery](items=[delivery_view(r) for r in rows], next_page_token=token)
