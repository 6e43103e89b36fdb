"""Egress routes (contract: Egress), over LiveKit's Egress service.

Responses are LiveKit's `EgressInfo` as JSON with proto field names (upload credentials
never included); the list is `{"items", "next_page_token"}` with LiveKit's page token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.http.deps import (
    EgressReadCaller,
    EgressWriteCaller,
    IdempotencyDep,
    LiveKitDep,
    RecordingsBucketDep,
    SettingsDep,
)
from app.server_apis import egress
from schemas.bridge import to_json, to_page
from schemas.common import Name
from schemas.egress import (
    EgressInfo,
    EgressPage,
    StartParticipantEgress,
    StartRoomCompositeEgress,
    StartTrackCompositeEgress,
    StartTrackEgress,
    StartWebEgress,
    UpdateLayoutBody,
    UpdateStreamBody,
)
from schemas.problems import LIVEKIT_PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["egress"])

EgressId = Annotated[str, Path(description="the egress's id, `EG_...`", max_length=256)]

#: A start route: 201 with the `EgressInfo`, Idempotency-Key, and what a start may answer.
START: dict[str, Any] = {
    "status_code": 201,
    "response_model": EgressInfo,
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 400, 404, 409),
}
#: A route on one egress: its `EgressInfo`, and 404 `egress_not_found`.
ONE: dict[str, Any] = {
    "response_model": EgressInfo,
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 404, 409),
}


@router.post("/egress/room-composite", operation_id="start_room_composite_egress", **START)
async def start_room_composite_egress(
    body: StartRoomCompositeEgress,
    lk: LiveKitDep,
    settings: SettingsDep,
    bucket: RecordingsBucketDep,
    _: EgressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """StartRoomCompositeEgress: the room's participants composed by a layout (or the page at
    `custom_base_url`) to files, streams, segments or images. A retry with the same
    `Idempotency-Key` and body gets the first response, not a second egress."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: egress.start_room_composite(lk, body, allow, bucket))


@router.post("/egress/web", operation_id="start_web_egress", **START)
async def start_web_egress(
    body: StartWebEgress,
    lk: LiveKitDep,
    settings: SettingsDep,
    bucket: RecordingsBucketDep,
    _: EgressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """StartWebEgress: the page at `url` (http(s); within MEDIA_URL_ALLOW when set, 403
    otherwise, as every URL a start body gives) recorded or streamed. Idempotent with an
    `Idempotency-Key`."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: egress.start_web(lk, body, allow, bucket))


@router.post("/egress/participant", operation_id="start_participant_egress", **START)
async def start_participant_egress(
    body: StartParticipantEgress,
    lk: LiveKitDep,
    settings: SettingsDep,
    bucket: RecordingsBucketDep,
    _: EgressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """StartParticipantEgress: a participant's camera (or screen share) and microphone.
    Idempotent with an `Idempotency-Key`."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: egress.start_participant(lk, body, allow, bucket))


@router.post("/egress/track-composite", operation_id="start_track_composite_egress", **START)
async def start_track_composite_egress(
    body: StartTrackCompositeEgress,
    lk: LiveKitDep,
    settings: SettingsDep,
    bucket: RecordingsBucketDep,
    _: EgressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """StartTrackCompositeEgress: one audio and/or one video track, muxed. Idempotent with
    an `Idempotency-Key`."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: egress.start_track_composite(lk, body, allow, bucket))


@router.post("/egress/track", operation_id="start_track_egress", **START)
async def start_track_egress(
    body: StartTrackEgress,
    lk: LiveKitDep,
    settings: SettingsDep,
    bucket: RecordingsBucketDep,
    _: EgressWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """StartTrackEgress: one track as published, to a file or a WebSocket. Idempotent with
    an `Idempotency-Key`."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: egress.start_track(lk, body, allow, bucket))


@router.get(
    "/egress",
    operation_id="list_egress",
    response_model=EgressPage,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS),
)
async def list_egress(
    lk: LiveKitDep,
    _: EgressReadCaller,
    room_name: Annotated[Name | None, Query(description="only this room's")] = None,
    active: Annotated[bool | None, Query(description="only those not ended")] = None,
    egress_id: Annotated[str | None, Query(max_length=256)] = None,
    page_token: Annotated[str | None, Query(description="a `next_page_token`")] = None,
) -> dict[str, Any]:
    """ListEgress, filtered; follow `next_page_token` for the next page."""
    found = await egress.list_egress(
        lk, room_name=room_name, egress_id=egress_id, active=active, page_token=page_token
    )
    return to_page(found.items, found.next_page_token)


@router.get("/egress/{egress_id}", operation_id="get_egress", **ONE)
async def get_egress(egress_id: EgressId, lk: LiveKitDep, _: EgressReadCaller) -> dict[str, Any]:
    """ListEgress(egress_id): its `status` (`EGRESS_STARTING` ... `EGRESS_COMPLETE`) and
    results; 404 `egress_not_found`."""
    return to_json(await egress.get_egress(lk, egress_id))


@router.patch("/egress/{egress_id}/layout", operation_id="update_egress_layout", **ONE)
async def update_layout(
    egress_id: EgressId, body: UpdateLayoutBody, lk: LiveKitDep, _: EgressWriteCaller
) -> dict[str, Any]:
    """UpdateLayout of a room composite egress."""
    return to_json(await egress.update_layout(lk, egress_id, body.layout))


@router.patch("/egress/{egress_id}/stream", operation_id="update_egress_stream", **ONE)
async def update_stream(
    egress_id: EgressId,
    body: UpdateStreamBody,
    lk: LiveKitDep,
    settings: SettingsDep,
    _: EgressWriteCaller,
) -> dict[str, Any]:
    """UpdateStream: add and remove stream output URLs of an active egress (an added URL
    within MEDIA_URL_ALLOW when set, 403 otherwise)."""
    info = await egress.update_stream(
        lk,
        egress_id,
        body.add_output_urls,
        body.remove_output_urls,
        settings.media_url_allow_list,
    )
    return to_json(info)


@router.post("/egress/{egress_id}/stop", operation_id="stop_egress", **ONE)
async def stop_egress(egress_id: EgressId, lk: LiveKitDep, _: EgressWriteCaller) -> dict[str, Any]:
    """StopEgress: the worker finishes and uploads its outputs (`EGRESS_ENDING`, then
    `EGRESS_COMPLETE`); an egress that already ended is 409."""
    return to_json(await egress.stop_egress(lk, egress_id))
