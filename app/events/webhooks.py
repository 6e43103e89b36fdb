"""LiveKit webhooks in the event store: ingestion of a verified webhook
(`receive_webhook`; the checks before it are `app.livekit.webhook_verification`'s), the retention
purge, and reading events back (pages, one event, the rows past a position that
`app.events.streams` follows for Server-Sent Events).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from livekit.protocol.webhook import WebhookEvent

from app.core.errors import NotFound
from app.livekit.webhook_verification import (
    check_content_type,
    has_lone_surrogate,
    parse_event,
    verify_signature,
)
from app.store.cursor import Cursor
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.events import StreamPosition
from schemas.bridge import to_json
from schemas.common import Page
from schemas.credentials import STREAM_KEY_FIELDS
from schemas.protojson import from_livekit_json
from schemas.webhooks import EventQuery, StoredEvent, WebhookReceipt

log = logging.getLogger(__name__)

#: How often a follower looks for events stored by other replicas (seconds).
FOLLOW_POLL_SECONDS = 0.5
#: Rows a follower reads per query.
FOLLOW_BATCH = 100
#: The reconnection delay a stream suggests to SSE clients (milliseconds).
STREAM_RETRY_MS = 1000
#: How often the retention task deletes expired events (seconds).
RETENTION_INTERVAL_SECONDS = 3600.0


# --- ingestion ----------------------------------------------------------------------------


async def receive_webhook(
    store: Store,
    keyring: dict[str, str],
    body: bytes,
    authorization: str | None,
    content_type: str | None,
) -> WebhookReceipt:
    """Verify, parse and durably store one webhook; returns after the commit.

    A repeated event `id` (also one being stored at the same moment by another replica)
    stores nothing and answers `duplicate: true`. Raises 401 (see `verify_signature`: the
    sender is decided first, whatever the body), 415 (content type), 400 (see
    `parse_event`), 503 (the store failed: LiveKit retries).
    """
    key = verify_signature(body, authorization, keyring)
    check_content_type(content_type)
    event, columns = parse_event(body)
    with database_errors():
        stored = await store.events.insert(columns)
    # DEBUG: every event is stored and listed, and the request has its access line; at
    # INFO a second line per event costs each about 50 µs (the standard library path).
    log.debug("webhook %s %s (key %s)%s", event.event, event.id, key, "" if stored else " dup")
    return WebhookReceipt(id=event.id, event=event.event, duplicate=not stored)


async def purge_expired_events(
    store: Store, retention_days: int, *, now: dt.datetime | None = None
) -> int:
    """Delete events received more than `retention_days` days before `now`; returns how
    many. `retention_days` 0 keeps events forever (deletes nothing)."""
    if retention_days <= 0:
        return 0
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    return await store.events.delete_received_before(cutoff)


# --- reading ------------------------------------------------------------------------------


def stored_event(row: Any, withheld: frozenset[str] = STREAM_KEY_FIELDS) -> StoredEvent:
    """A `webhook_events` row as the API shows it (payload re-read from the stored body,
    with the parser that accepted it), without the `withheld` fields (full protobuf names:
    by default the ingress stream keys of `ingress_info`, which only callers that may write
    ingress see: `app.server_apis.ingress.withheld_from`). The stored body itself is what LiveKit
    sent.
    A row this version would refuse (stored by an older one) is served with a payload of its
    `id` and `event` only, and logged: one bad row never breaks a page or a stream."""
    try:
        event = from_livekit_json(json.loads(row.body), WebhookEvent)
        payload = to_json(event, withheld=withheld)
        if has_lone_surrogate(payload):
            raise ValueError("an unpaired surrogate")
    except Exception as exc:  # an unreadable legacy row: serve what the columns say
        log.warning("stored event %s is unreadable: %s", row.id, exc.__class__.__name__)
        payload = to_json(WebhookEvent(id=row.id, event=row.event))
    return StoredEvent(
        id=row.id,
        event=row.event,
        room_name=row.room_name,
        participant_identity=row.participant_identity,
        egress_id=row.egress_id,
        ingress_id=row.ingress_id,
        created_at=row.created_at,
        received_at=row.received_at,
        payload=payload,
    )


@dataclass(frozen=True)
class PageToken(Cursor):
    """The opaque cursor of the event list: the store sequence of the last row returned."""

    PREFIX: ClassVar[str] = "ev1:"
    before_seq: int


@dataclass(frozen=True)
class WindowPageToken(Cursor):
    """The cursor of the event list in a time window (`since` or `until` given): the
    `created_at` and store sequence of the last row returned."""

    PREFIX: ClassVar[str] = "ew1:"
    created_at: dt.datetime
    before_seq: int


async def list_events(
    store: Store, query: EventQuery, *, withheld: frozenset[str] = STREAM_KEY_FIELDS
) -> Page[StoredEvent]:
    """Stored events matching `query`, newest first, one page at a time, each without the
    `withheld` fields (`stored_event`). Newest by store order; within a time window
    (`since` or `until`) by `created_at`, then store order, so the window is read by index.

    Raises 400 (`invalid_page_token`), 503 (store unavailable).
    """
    by_time = query.since is not None or query.until is not None
    token_kind = WindowPageToken if by_time else PageToken
    cursor = token_kind.decode(query.page_token) if query.page_token else None
    with database_errors():
        rows = await store.events.find(
            filters=query.columns(),
            since=query.since,
            until=query.until,
            before_seq=cursor.before_seq if isinstance(cursor, PageToken) else None,
            by_time=by_time,
            before=(
                (cursor.created_at, cursor.before_seq)
                if isinstance(cursor, WindowPageToken)
                else None
            ),
            limit=query.limit + 1,
        )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = rows[-1] if more else None
    token = (
        None
        if last is None
        else WindowPageToken(last.created_at, last.seq).encode()
        if by_time
        else PageToken(last.seq).encode()
    )
    items = [stored_event(r, withheld) for r in rows]
    return Page[StoredEvent](items=items, next_page_token=token)


async def get_event(
    store: Store, event_id: str, *, withheld: frozenset[str] = STREAM_KEY_FIELDS
) -> StoredEvent:
    """The stored event with LiveKit id `event_id`, without the `withheld` fields
    (`stored_event`); `NotFound` (404, `event_not_found`)."""
    with database_errors():
        row = await store.events.get(event_id)
    if row is None:
        raise NotFound(f"no stored event has id {event_id!r}", code="event_not_found")
    return stored_event(row, withheld)


async def stream_start(store: Store, last_event_id: str | None) -> StreamPosition:
    """Where a follower starts: after `last_event_id` (an SSE `Last-Event-ID`; an id no
    longer stored replays everything retained), else from now (see
    `EventRepository.stream_position_now`). Raises 503 (`event_store_unavailable`) while
    the database is unavailable, before the stream starts."""
    with database_errors():
        if last_event_id:
            position = await store.events.position_of(last_event_id)
            return position if position is not None else StreamPosition(-1, 0)
        return await store.events.stream_position_now()


def row_position(row: Any) -> StreamPosition:
    """The follow position of a `webhook_events` row (`xid` 0 where there is none)."""
    return StreamPosition(int(row.xid or 0), int(row.seq))


async def stored_rows_past(
    store: Store, columns: dict[str, str], after: StreamPosition
) -> AsyncIterator[Any]:
    """The `webhook_events` rows matching `columns` past `after`, in follow order, read
    `FOLLOW_BATCH` at a time up to the store's high-water mark (`EventRepository.follow`);
    ends at the first read that returns fewer. Database errors (`DATABASE_ERRORS`) reach
    the caller."""
    while True:
        rows = await store.events.follow(filters=columns, after=after, limit=FOLLOW_BATCH)
        for row in rows:
            after = row_position(row)
            yield row
        if len(rows) < FOLLOW_BATCH:
            return
