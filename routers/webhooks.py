"""Webhook routes (contract: Webhooks): LiveKit's POSTs in, stored events out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypedDict

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.config.settings import Settings
from app.events.streams import EventFollower
from app.events.webhooks import (
    STREAM_RETRY_MS,
    get_event,
    list_events,
    receive_webhook,
    stream_start,
)
from app.http.deps import (
    EventFollowerDep,
    SettingsDep,
    StoreDep,
    WebhooksReadCaller,
    get_settings,
    get_store,
)
from app.server_apis.ingress import withheld_from
from app.store.engine import Store
from app.store.events import StreamPosition
from routers.direct import dependency, direct_route
from schemas.common import Page
from schemas.problems import problems
from schemas.webhooks import EventFilters, EventQuery, StoredEvent, WebhookReceipt

router = APIRouter(prefix="/v1", tags=["webhooks"])
#: LiveKit's webhook route, served directly (`routers.direct`): `app.main` puts it on the
#: app's own router, before every included one.
direct_router = APIRouter(prefix="/v1", tags=["webhooks"])


async def request_body(request: Request) -> bytes:
    """The request body, whole: `app.http.middleware.BodyLimitMiddleware` answers 413 for one
    over `MAX_BODY_BYTES` (1 MiB: on its Content-Length, or as a chunked body arrives)."""
    return await request.body()


async def stream_position(
    store: StoreDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamPosition:
    """Where an event stream starts (`app.events.webhooks.stream_start`), fixed before the response
    starts, so that an unavailable store is a 503 rather than a stream that breaks."""
    return await stream_start(store, last_event_id)


async def stream_slot(
    caller: WebhooksReadCaller, follower: EventFollowerDep
) -> AsyncIterator[EventFollower]:
    """The event follower, with one of the caller's open streams held until the response
    ends (`EventFollower.open_stream`: 429 `too_many_streams` beyond STREAM_MAX_PER_KEY)."""
    with follower.open_stream(caller.name):
        yield follower


_WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "description": "A LiveKit WebhookEvent, signed in the Authorization header.",
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}
            for media in ("application/webhook+json", "application/json")
        },
    }
}


class LiveKitWebhookArguments(TypedDict):
    """`receive_livekit_webhook`'s parameters (`routers.direct.check_arguments`)."""

    settings: Settings
    store: Store
    body: bytes
    authorization: str | None
    content_type: str | None


async def livekit_webhook_arguments(request: Request) -> LiveKitWebhookArguments:
    """`receive_livekit_webhook`'s arguments, resolved as FastAPI would (see
    `routers.direct`: LiveKit sends bursts of webhooks): the settings, the store, the body
    (over 1 MiB: 413, `request_body`) and the two headers."""
    return {
        "settings": await dependency(request, get_settings),
        "store": await dependency(request, get_store),
        "body": await dependency(request, request_body),
        "authorization": request.headers.get("authorization"),
        "content_type": request.headers.get("content-type"),
    }


async def receive_livekit_webhook(
    settings: SettingsDep,
    store: StoreDep,
    body: Annotated[bytes, Depends(request_body)],
    authorization: Annotated[str | None, Header(description="the signed JWT")] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> WebhookReceipt:
    """Verify a LiveKit webhook against the keyring and store it once, durably."""
    return await receive_webhook(store, settings.keyring, body, authorization, content_type)


direct_router.add_api_route(
    "/webhooks/livekit",
    receive_livekit_webhook,
    methods=["POST"],
    operation_id="receive_livekit_webhook",
    responses=problems(400, 401, 413, 415, 503),
    openapi_extra=_WEBHOOK_BODY,
    route_class_override=direct_route(livekit_webhook_arguments),
)


@router.get(
    "/webhooks/events",
    operation_id="list_webhook_events",
    responses=problems(400, 401, 403, 422, 503),
)
async def list_webhook_events(
    store: StoreDep,
    query: Annotated[EventQuery, Query()],
    caller: WebhooksReadCaller,
) -> Page[StoredEvent]:
    """Stored events, newest first, filtered; follow `next_page_token` for older ones. An
    ingress's `stream_key` only for callers with `ingress:write`."""
    return await list_events(store, query, withheld=withheld_from(caller))


@router.get(
    "/webhooks/events/stream",
    operation_id="stream_webhook_events",
    response_class=EventSourceResponse,
    responses=problems(401, 403, 422, 429, 503),
)
async def stream_webhook_events(
    caller: WebhooksReadCaller,
    follower: Annotated[EventFollower, Depends(stream_slot)],
    filters: Annotated[EventFilters, Query()],
    after: Annotated[StreamPosition, Depends(stream_position)],
) -> AsyncIterator[ServerSentEvent]:
    """New events as Server-Sent Events (`event: <type>`, `id: <event id>`, `data`: the
    stored event), after a first `retry:` frame once the stream's start is fixed; reconnect
    with `Last-Event-ID` to resume without a gap. While the event store is unavailable the
    request is 503, and an open stream ends (the client reconnects). A service key holds
    at most STREAM_MAX_PER_KEY open streams per replica: 429 `too_many_streams` beyond."""
    yield ServerSentEvent(retry=STREAM_RETRY_MS, comment="following")
    async for event in follower.stream(filters, after, withheld_from(caller)):
        yield ServerSentEvent(event=event.event, id=event.id, data=event)


@router.get(
    "/webhooks/events/{event_id}",
    operation_id="get_webhook_event",
    responses=problems(401, 403, 404, 503),
)
async def get_webhook_event(
    event_id: str, store: StoreDep, caller: WebhooksReadCaller
) -> StoredEvent:
    """One stored event with its full LiveKit payload (an ingress's `stream_key` only for
    callers with `ingress:write`)."""
    return await get_event(store, event_id, withheld=withheld_from(caller))
