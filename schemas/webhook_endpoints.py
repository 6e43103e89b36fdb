"""Webhook endpoint models (contract: Webhook endpoints, the relay to the app): an
endpoint's body and what the API shows of it, a replay window, and deliveries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.common import RequestModel
from schemas.webhooks import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

#: Most event types one endpoint may name.
MAX_EVENT_TYPES = 64

DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(max_length=MAX_EVENT_TYPES, description="event types to deliver (empty: all)"),
    AfterValidator(_unique),
]
RoomNamePattern = Annotated[
    str,
    Field(max_length=256, description="shell pattern of room names (`fnmatch`; empty: all)"),
]
EndpointUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="https:// (http:// in development); never redirected; its host may not "
        "resolve to a loopback, private or link-local address unless WEBHOOK_ENDPOINT_ALLOW "
        "names it",
    ),
]
Description = Annotated[str, Field(max_length=1024)]


class WebhookEndpointCreate(RequestModel):
    """`POST /v1/webhooks/endpoints`."""

    url: EndpointUrl
    description: Description = ""
    event_types: EventTypes = Field(default_factory=list)
    room_name_pattern: RoomNamePattern = ""
    enabled: bool = True


class WebhookEndpointUpdate(RequestModel):
    """`PATCH /v1/webhooks/endpoints/{endpoint_id}`: the fields given change."""

    url: EndpointUrl | None = None
    description: Description | None = None
    event_types: EventTypes | None = None
    room_name_pattern: RoomNamePattern | None = None
    enabled: bool | None = None


class WebhookEndpoint(BaseModel):
    """An endpoint as the API shows it (never its signing secret). `disabled_reason` says
    why the relay disabled it (a `410 Gone`); `previous_secret_expires_at`, after a
    rotation, until when the replaced secret also signs."""

    id: str
    url: str
    description: str
    event_types: list[str]
    room_name_pattern: str
    enabled: bool
    disabled_reason: str | None = None
    previous_secret_expires_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint with its `signing_secret` (`whsec_` and base64 of 32 random bytes, the
    Standard Webhooks format): answered only by its creation and by a rotation. A replay of
    the creation (`Idempotency-Key`) answers the endpoint without it."""

    signing_secret: str | None = None


class EndpointListQuery(BaseModel):
    """`GET /v1/webhooks/endpoints`' query."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    page_token: str | None = None


class DeliveryQuery(EndpointListQuery):
    """`GET /v1/webhooks/endpoints/{endpoint_id}/deliveries`' query."""

    status: DeliveryStatus | None = None


class ReplayRequest(RequestModel):
    """`POST .../replay`: every stored event with `since <= created_at < until` (until:
    now when absent) that the endpoint's filters match is delivered again."""

    since: dt.datetime
    until: dt.datetime | None = None


class ReplayReceipt(BaseModel):
    """What a replay queued: `enqueued` deliveries."""

    enqueued: int


class WebhookDelivery(BaseModel):
    """One event's delivery to one endpoint. `id` is its `webhook-id` (the same on every
    retry); `status` `pending` (next attempt at `next_attempt_at`), `succeeded` or
    `failed`; `attempts` made so far; the last one's time, status code (null when no
    response came), error and `latency_ms`."""

    id: str
    endpoint_id: str
    event_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    created_at: dt.datetime
