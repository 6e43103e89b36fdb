"""Ingress routes (contract: Ingress), over LiveKit's Ingress service.

Responses are LiveKit's `IngressInfo` as JSON with proto field names (with the `url` and
`stream_key` an encoder pushes to; the `stream_key` only for callers that may write
ingress, `app.server_apis.ingress.withheld_from`); the list is `{"items", "next_page_token"}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.http.deps import (
    IdempotencyDep,
    IngressReadCaller,
    IngressWriteCaller,
    LiveKitDep,
    SettingsDep,
)
from app.server_apis import ingress
from schemas.bridge import to_json, to_page
from schemas.common import Name
from schemas.ingress import CreateIngressRequest, IngressInfo, IngressPage, UpdateIngressBody
from schemas.problems import LIVEKIT_PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["ingress"])

IngressId = Annotated[str, Path(description="the ingress's id, `IN_...`", max_length=256)]

ONE: dict[str, Any] = {
    "response_model": IngressInfo,
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 404, 409),
}


@router.post(
    "/ingress",
    status_code=201,
    operation_id="create_ingress",
    response_model=IngressInfo,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 400, 409),
)
async def create_ingress(
    body: CreateIngressRequest,
    lk: LiveKitDep,
    settings: SettingsDep,
    _: IngressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """CreateIngress: an RTMP or WHIP endpoint (`url`, `stream_key`), or a URL_INPUT source
    pulled by the ingress worker (within MEDIA_URL_ALLOW when set, 403 otherwise). A retry
    with the same `Idempotency-Key` and body gets the first response, not a second ingress
    (replayed only to the same service key, itself holding `ingress:write`)."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: ingress.create_ingress(lk, body, allow))


@router.get(
    "/ingress",
    operation_id="list_ingress",
    response_model=IngressPage,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS),
)
async def list_ingress(
    lk: LiveKitDep,
    caller: IngressReadCaller,
    room_name: Annotated[Name | None, Query(description="only this room's")] = None,
    ingress_id: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """ListIngress, filtered; follow `next_page_token` for the next page. `stream_key` only
    for callers with `ingress:write`."""
    found = await ingress.list_ingress(lk, room_name=room_name, ingress_id=ingress_id)
    return to_page(found.items, found.next_page_token, withheld=ingress.withheld_from(caller))


@router.get("/ingress/{ingress_id}", operation_id="get_ingress", **ONE)
async def get_ingress(
    ingress_id: IngressId, lk: LiveKitDep, caller: IngressReadCaller
) -> dict[str, Any]:
    """One ingress with its `state` (`ENDPOINT_INACTIVE`, `ENDPOINT_PUBLISHING` ...); 404
    `ingress_not_found`. `stream_key` only for callers with `ingress:write`."""
    found = await ingress.get_ingress(lk, ingress_id)
    return to_json(found, withheld=ingress.withheld_from(caller))


@router.patch("/ingress/{ingress_id}", operation_id="update_ingress", **ONE)
async def update_ingress(
    ingress_id: IngressId, body: UpdateIngressBody, lk: LiveKitDep, caller: IngressWriteCaller
) -> dict[str, Any]:
    """UpdateIngress with the fields given; 409 while it is publishing."""
    updated = await ingress.update_ingress(lk, ingress_id, body)
    return to_json(updated, withheld=ingress.withheld_from(caller))


@router.delete(
    "/ingress/{ingress_id}",
    status_code=204,
    operation_id="delete_ingress",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def delete_ingress(ingress_id: IngressId, lk: LiveKitDep, _: IngressWriteCaller) -> None:
    """DeleteIngress; 404 `ingress_not_found`."""
    await ingress.delete_ingress(lk, ingress_id)
