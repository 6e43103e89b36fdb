"""Webhook models (contract: Webhooks): the LiveKit `WebhookEvent`, the receipt LiveKit gets,
and stored events as the events API returns them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from livekit.protocol.webhook import WebhookEvent
from pydantic import BaseModel, ConfigDict, Field

from schemas.bridge import model_for

#: LiveKit `livekit.WebhookEvent` (https://docs.livekit.io/home/server/webhooks/).
WebhookEventModel = model_for(WebhookEvent)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


class WebhookReceipt(BaseModel):
    """What `POST /v1/webhooks/livekit` answers: the event `id` and `event` type, and
    `duplicate`: true when that id was already stored (nothing was written)."""

    id: str
    event: str
    duplicate: bool


class DerivedMarker(BaseModel):
    """The `derived` member of an event the service appended itself (contract: Webhooks,
    "Derived events"): `by` what (`reconciliation`), `observed_at` when what it reports was
    observed in LiveKit's state."""

    by: str
    observed_at: dt.datetime


class StoredEvent(BaseModel):
    """One stored LiveKit webhook event.

    `id` and `event` are LiveKit's; `room_name`, `participant_identity`, `egress_id`,
    `ingress_id` are taken from the payload (null when it has none); `created_at` is
    LiveKit's event time (the receive time when LiveKit sent none), `received_at` when this
    service stored it (both UTC); `payload` is the whole `WebhookEvent`; `derived` is set on
    an event the service derived from LiveKit's state instead of receiving it.
    """

    id: str
    event: str
    room_name: str | None = None
    participant_identity: str | None = None
    egress_id: str | None = None
    ingress_id: str | None = None
    created_at: dt.datetime
    received_at: dt.datetime
    payload: WebhookEventModel  # type: ignore[valid-type]
    derived: DerivedMarker | None = None


class EventFilters(BaseModel):
    """Exact-match filters shared by the event list and the event stream."""

    model_config = ConfigDict(extra="forbid")

    event: str | None = Field(default=None, description="event type, e.g. `room_started`")
    room_name: str | None = None
    participant_identity: str | None = None
    egress_id: str | None = None
    ingress_id: str | None = None

    def columns(self) -> dict[str, str]:
        """The filters that were given, as column name -> value."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class EventQuery(EventFilters):
    """`GET /v1/webhooks/events` query: filters, the `created_at` window
    (`since` inclusive, `until` exclusive; a time without zone is UTC), and paging."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    page_token: str | None = Field(default=None, description="`next_page_token` of a page")

    def columns(self) -> dict[str, str]:
        """The exact-match filters only."""
        return EventFilters.model_validate(
            self.model_dump(include=set(EventFilters.model_fields))
        ).columns()
