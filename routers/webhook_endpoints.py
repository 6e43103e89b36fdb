"""The app's webhook endpoints (contract: Webhook endpoints, the relay to the app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.events import webhook_endpoints as endpoints
from app.http.deps import (
    IdempotencyDep,
    RelayDep,
    SettingsDep,
    StoreDep,
    WebhooksReadCaller,
    WebhooksWriteCaller,
)
from schemas.common import Page
from schemas.problems import problems
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

router = APIRouter(prefix="/v1/webhooks/endpoints", tags=["webhook endpoints"])

EndpointId = Annotated[str, Path(description="the endpoint's id, `WE_...`", max_length=64)]

#: What an idempotent creation's stored replay leaves out (contract: Conventions, Secrets).
SHOWN_ONCE = frozenset({"signing_secret"})


@router.post(
    "",
    status_code=201,
    operation_id="create_webhook_endpoint",
    response_model=WebhookEndpointWithSecret,
    responses=problems(400, 401, 403, 409, 422, 503),
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate,
    store: StoreDep,
    settings: SettingsDep,
    _: WebhooksWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """Add an endpoint that stored events are relayed to; the answer holds its
    `signing_secret`, shown only here and on rotation. A retry with the same
    `Idempotency-Key` and body gets the endpoint without `signing_secret` (rotate to get a
    new one)."""
    rules = settings.endpoint_url_rules
    return await idempotent.run(
        lambda: endpoints.create_endpoint(store, rules, body), replay_without=SHOWN_ONCE
    )


@router.get(
    "",
    operation_id="list_webhook_endpoints",
    responses=problems(400, 401, 403, 422, 503),
)
async def list_webhook_endpoints(
    store: StoreDep, query: Annotated[EndpointListQuery, Query()], _: WebhooksReadCaller
) -> Page[WebhookEndpoint]:
    """Endpoints, newest first; follow `next_page_token` for older ones."""
    return await endpoints.list_endpoints(store, query)


@router.get(
    "/{endpoint_id}",
    operation_id="get_webhook_endpoint",
    responses=problems(401, 403, 404, 503),
)
async def get_webhook_endpoint(
    endpoint_id: EndpointId, store: StoreDep, _: WebhooksReadCaller
) -> WebhookEndpoint:
    """One endpoint (never its signing secret)."""
    return await endpoints.get_endpoint(store, endpoint_id)


@router.patch(
    "/{endpoint_id}",
    operation_id="update_webhook_endpoint",
    responses=problems(401, 403, 404, 422, 503),
)
async def update_webhook_endpoint(
    endpoint_id: EndpointId,
    body: WebhookEndpointUpdate,
    store: StoreDep,
    settings: SettingsDep,
    _: WebhooksWriteCaller,
) -> WebhookEndpoint:
    """Change the fields given; `enabled: true` re-enables an endpoint the relay disabled
    (its pending deliveries resume)."""
    return await endpoints.update_endpoint(store, settings.endpoint_url_rules, endpoint_id, body)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    operation_id="delete_webhook_endpoint",
    response_class=Response,
    responses=problems(401, 403, 404, 503),
)
async def delete_webhook_endpoint(
    endpoint_id: EndpointId, store: StoreDep, _: WebhooksWriteCaller
) -> None:
    """Delete an endpoint and its deliveries."""
    await endpoints.delete_endpoint(store, endpoint_id)


@router.post(
    "/{endpoint_id}/rotate-secret",
    operation_id="rotate_webhook_endpoint_secret",
    responses=problems(401, 403, 404, 503),
)
async def rotate_webhook_endpoint_secret(
    endpoint_id: EndpointId, store: StoreDep, _: WebhooksWriteCaller
) -> WebhookEndpointWithSecret:
    """A new signing secret (in the answer only); the old one keeps signing beside it for
    24 h (two `v1,` signatures in `webhook-signature`)."""
    return await endpoints.rotate_secret(store, endpoint_id)


@router.post(
    "/{endpoint_id}/test",
    status_code=202,
    operation_id="test_webhook_endpoint",
    response_model=WebhookDelivery,
    responses=problems(400, 401, 403, 404, 409, 503),
)
async def test_webhook_endpoint(
    endpoint_id: EndpointId,
    store: StoreDep,
    relay: RelayDep,
    _: WebhooksWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """Queue a test event (`webhook_test`) to the endpoint, delivered as any event; the
    delivery (follow it in `.../deliveries`)."""
    return await idempotent.run(
        lambda: endpoints.send_test_event(store, endpoint_id, wake=relay.wake)
    )


@router.post(
    "/{endpoint_id}/replay",
    status_code=202,
    operation_id="replay_webhook_endpoint",
    response_model=ReplayReceipt,
    responses=problems(400, 401, 403, 404, 409, 422, 503),
)
async def replay_webhook_endpoint(
    endpoint_id: EndpointId,
    body: ReplayRequest,
    store: StoreDep,
    relay: RelayDep,
    _: WebhooksWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """Deliver again (new `webhook-id`s) every stored event of the window that the
    endpoint's filters match; how many were queued."""
    return await idempotent.run(
        lambda: endpoints.replay_events(store, endpoint_id, body, wake=relay.wake)
    )


@router.get(
    "/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    responses=problems(400, 401, 403, 404, 422, 503),
)
async def list_webhook_deliveries(
    endpoint_id: EndpointId,
    store: StoreDep,
    query: Annotated[DeliveryQuery, Query()],
    _: WebhooksReadCaller,
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries, newest first: status, attempts, the last one's status
    code, error and latency, the next attempt's time."""
    return await endpoints.list_deliveries(store, endpoint_id, query)
