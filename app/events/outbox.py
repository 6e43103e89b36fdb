"""The relay's outbox (contract: Webhook endpoints): which of the app's webhook endpoints
get a stored event, and the `webhook_deliveries` rows that say so.

`outbox_writer` is an `EventWriter` (`app.store.events.EventRepository.add_writer`): in the
very transaction that stores new events (received or derived), it adds one
`webhook_deliveries` row per (event, enabled endpoint whose filters match), so an event is
never stored without its deliveries, whatever stops the process and when. The worker that
attempts them is `app.events.relay`'s.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import uuid
from collections.abc import Sequence
from typing import Any

from app.store import relay as repository


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
