"""Ingress over LiveKit's Ingress service (contract: Ingress): RTMP and WHIP endpoints an
encoder pushes to, and URL sources the ingress worker pulls, each publishing into a room.

Every call goes through the `LiveKit` gateway. What LiveKit (server v1.13.5 with Redis,
ingress v1.5.0) answers, measured: CreateIngress needs no worker (it only stores the
ingress and returns its `url` and `stream_key`); ListIngress(ingress_id) of an unknown or
deleted id is `not_found` (not an empty list); DeleteIngress of a WHIP ingress whose client
has gone may be `not_found` too.

An ingress's `stream_key` lets whoever holds it publish into the room: it is shown only to
callers that may write ingress (contract: Conventions). `withheld_from(caller)` says what to
leave out of what a caller reads (`IngressInfo` from these routes, and the `ingress_info`
of stored webhook events).
"""

from __future__ import annotations

from livekit import api

from app.auth.callers import Scope, ServiceKey
from app.livekit.gateway import LiveKit, one_with_id
from app.server_apis.media import check_media
from app.server_apis.urlpatterns import UrlAllowList
from schemas.bridge import to_proto
from schemas.credentials import STREAM_KEY_FIELDS
from schemas.ingress import CreateIngressRequest, UpdateIngressBody

INGRESS_NOT_FOUND = "ingress_not_found"


def withheld_from(caller: ServiceKey) -> frozenset[str]:
    """The fields (full protobuf names, for `schemas.bridge.to_json(..., withheld=)`) that
    `caller` may not read: the ingress stream keys (`STREAM_KEY_FIELDS`) unless it holds
    `ingress:write` (or `admin`); none otherwise."""
    return frozenset() if caller.allows(Scope.INGRESS_WRITE) else STREAM_KEY_FIELDS


async def create_ingress(
    lk: LiveKit, body: CreateIngressRequest, media_allow: UrlAllowList
) -> api.IngressInfo:
    """CreateIngress: the `IngressInfo` with the `url` and `stream_key` to push to (RTMP,
    WHIP), or the ingress pulling `url` (URL_INPUT; 422 / 403 `media_url_not_allowed` from
    `app.server_apis.media.check_media`)."""
    request = to_proto(body, api.CreateIngressRequest)
    check_media(request, media_allow)
    return await lk.run(lk.ingress.create_ingress(request), not_found_code=INGRESS_NOT_FOUND)


async def list_ingress(
    lk: LiveKit, *, room_name: str | None = None, ingress_id: str | None = None
) -> api.ListIngressResponse:
    """ListIngress, filtered by `room_name` and `ingress_id`; an unknown `ingress_id` lists
    nothing."""
    request = api.ListIngressRequest(room_name=room_name or "", ingress_id=ingress_id or "")
    return await lk.run_list(
        lk.ingress.list_ingress(request),
        not_found_code=INGRESS_NOT_FOUND,
        by_id=bool(ingress_id),
        empty=api.ListIngressResponse(),
    )


async def get_ingress(lk: LiveKit, ingress_id: str) -> api.IngressInfo:
    """ListIngress(ingress_id): the `IngressInfo` with its `state`; 404 `ingress_not_found`."""
    request = api.ListIngressRequest(ingress_id=ingress_id)
    found = await lk.run(lk.ingress.list_ingress(request), not_found_code=INGRESS_NOT_FOUND)
    return one_with_id(
        found.items, "ingress_id", ingress_id, what="ingress", code=INGRESS_NOT_FOUND
    )


async def update_ingress(lk: LiveKit, ingress_id: str, body: UpdateIngressBody) -> api.IngressInfo:
    """UpdateIngress with the fields given: the updated `IngressInfo`; 404
    `ingress_not_found`; an ingress that is publishing is 409 (LiveKit refuses)."""
    request = to_proto(body.to_livekit(ingress_id), api.UpdateIngressRequest)
    return await lk.run(lk.ingress.update_ingress(request), not_found_code=INGRESS_NOT_FOUND)


async def delete_ingress(lk: LiveKit, ingress_id: str) -> None:
    """DeleteIngress: the endpoint stops accepting pushes; 404 `ingress_not_found`."""
    request = api.DeleteIngressRequest(ingress_id=ingress_id)
    await lk.run(lk.ingress.delete_ingress(request), not_found_code=INGRESS_NOT_FOUND)
