"""Egress over LiveKit's Egress service (contract: Egress): recordings, streams, segments
and images of rooms, web pages, participants and tracks, by LiveKit's egress workers.

Every call goes through the `LiveKit` gateway (`lk.run(..., not_found_code=...)`), so each
LiveKit failure is already the contract's status. What LiveKit (server v1.13.5 with Redis,
egress v1.8.6) answers, measured:

| call | missing room / egress | no egress worker |
|---|---|---|
| Start* (room-based) | `not_found` "requested room does not exist" | `unavailable` after ~23 s |
| StartWebEgress | - | `unavailable` "no response from servers" after ~23 s |
| ListEgress(egress_id) | `not_found` "egress does not exist" | answers |
| StopEgress | `not_found` after ~3 s (so it is looked up first) | answers |
| UpdateLayout, UpdateStream | `not_found` | answers |

So a start with no worker answers at the service's deadline (LIVEKIT_TIMEOUT_SECONDS,
504 `livekit_timeout`) with a detail saying no egress worker took it, not after LiveKit's
own wait. The `EgressInfo` LiveKit returns echoes the request, upload credentials included:
the bridge's `to_json` drops them (`schemas.credentials.SECRET_FIELDS`). Every request's URLs
and paths pass `app.server_apis.media.check_media` (MEDIA_URL_ALLOW) before LiveKit sees them;
then, with a recordings `bucket` (RECORDINGS_S3_*), every file, segment and image output that
names no upload target gets the bucket's `S3Upload`
(`app.events.recordings_bucket.with_default_upload`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from livekit import api
from pydantic import BaseModel

from app.core.errors import UpstreamTimeout
from app.events.recordings_bucket import RecordingsBucket, with_default_upload
from app.livekit.gateway import LiveKit, one_with_id
from app.server_apis.media import check_media
from app.server_apis.rooms import ROOM_NOT_FOUND
from app.server_apis.urlpatterns import UrlAllowList
from schemas.bridge import to_proto
from schemas.egress import (
    StartParticipantEgress,
    StartRoomCompositeEgress,
    StartTrackCompositeEgress,
    StartTrackEgress,
    StartWebEgress,
)

EGRESS_NOT_FOUND = "egress_not_found"

T = TypeVar("T")
M = TypeVar("M", bound=Message)


async def _start(lk: LiveKit, call: Callable[[], Awaitable[T]], not_found_code: str) -> T:
    """Run one start call; a timeout says that no egress worker took the request."""
    try:
        return await lk.run(call(), not_found_code=not_found_code)
    except UpstreamTimeout as exc:
        raise UpstreamTimeout(
            f"no egress worker accepted the request within {lk.timeout_seconds:g} s "
            "(is an egress worker connected to LiveKit's Redis?)"
        ) from exc


def _start_request(
    body: BaseModel, message: type[M], media_allow: UrlAllowList, bucket: RecordingsBucket | None
) -> M:
    """`body` as LiveKit's start request `message`: converted (`schemas.bridge.to_proto`),
    what it gives LiveKit's worker checked (`check_media`: 422, 403 `media_url_not_allowed`),
    then the recordings bucket's upload put into every output that names none
    (`with_default_upload`), so the bucket's own endpoint is never checked as the caller's."""
    request = to_proto(body, message)
    check_media(request, media_allow)
    with_default_upload(request, bucket)
    return request


async def start_room_composite(
    lk: LiveKit,
    body: StartRoomCompositeEgress,
    media_allow: UrlAllowList,
    bucket: RecordingsBucket | None = None,
) -> api.EgressInfo:
    """StartRoomCompositeEgress: the room mixed by the egress worker's browser (LiveKit's
    layout template, or `custom_base_url`). Returns the `EgressInfo` (`EGRESS_STARTING`).
    404 `room_not_found`; 422 / 403 `media_url_not_allowed` from `check_media`."""
    request = _start_request(body, api.RoomCompositeEgressRequest, media_allow, bucket)
    return await _start(lk, lambda: lk.egress.start_room_composite_egress(request), ROOM_NOT_FOUND)


async def start_web(
    lk: LiveKit,
    body: StartWebEgress,
    media_allow: UrlAllowList,
    bucket: RecordingsBucket | None = None,
) -> api.EgressInfo:
    """StartWebEgress: the page at `url` recorded by the egress worker's browser. Returns
    `EgressInfo`; 422 / 403 `media_url_not_allowed` from `check_media`."""
    request = _start_request(body, api.WebEgressRequest, media_allow, bucket)
    return await _start(lk, lambda: lk.egress.start_web_egress(request), EGRESS_NOT_FOUND)


async def start_participant(
    lk: LiveKit,
    body: StartParticipantEgress,
    media_allow: UrlAllowList,
    bucket: RecordingsBucket | None = None,
) -> api.EgressInfo:
    """StartParticipantEgress: one participant's camera (or screen share) and microphone.
    Returns the `EgressInfo`; 404 `room_not_found`; 422 / 403 from `check_media`."""
    request = _start_request(body, api.ParticipantEgressRequest, media_allow, bucket)
    return await _start(lk, lambda: lk.egress.start_participant_egress(request), ROOM_NOT_FOUND)


async def start_track_composite(
    lk: LiveKit,
    body: StartTrackCompositeEgress,
    media_allow: UrlAllowList,
    bucket: RecordingsBucket | None = None,
) -> api.EgressInfo:
    """StartTrackCompositeEgress: one audio and/or one video track, muxed. Returns the
    `EgressInfo`; 404 `room_not_found`; 422 / 403 from `check_media`."""
    request = _start_request(body, api.TrackCompositeEgressRequest, media_allow, bucket)
    return await _start(lk, lambda: lk.egress.start_track_composite_egress(request), ROOM_NOT_FOUND)


async def start_track(
    lk: LiveKit,
    body: StartTrackEgress,
    media_allow: UrlAllowList,
    bucket: RecordingsBucket | None = None,
) -> api.EgressInfo:
    """StartTrackEgress: one track as published (no transcoding) to a file or a WebSocket.
    Returns the `EgressInfo`; 404 `room_not_found`; 422 / 403 from `check_media`."""
    request = _start_request(body, api.TrackEgressRequest, media_allow, bucket)
    return await _start(lk, lambda: lk.egress.start_track_egress(request), ROOM_NOT_FOUND)


async def list_egress(
    lk: LiveKit,
    *,
    room_name: str | None = None,
    egress_id: str | None = None,
    active: bool | None = None,
    page_token: str | None = None,
) -> api.ListEgressResponse:
    """ListEgress: egresses, newest first as LiveKit keeps them, filtered by `room_name`,
    `egress_id`, `active` (only those not ended); `page_token` is a previous response's
    `next_page_token`. An `egress_id` LiveKit does not know lists nothing."""
    request = api.ListEgressRequest(
        room_name=room_name or "",
        egress_id=egress_id or "",
        active=bool(active),
        page_token=api.TokenPagination(token=page_token or ""),
    )
    return await lk.run_list(
        lk.egress.list_egress(request),
        not_found_code=EGRESS_NOT_FOUND,
        by_id=bool(egress_id),
        empty=api.ListEgressResponse(),
    )


async def get_egress(lk: LiveKit, egress_id: str) -> api.EgressInfo:
    """ListEgress(egress_id): the `EgressInfo`; 404 `egress_not_found`."""
    request = api.ListEgressRequest(egress_id=egress_id)
    found = await lk.run(lk.egress.list_egress(request), not_found_code=EGRESS_NOT_FOUND)
    return one_with_id(found.items, "egress_id", egress_id, what="egress", code=EGRESS_NOT_FOUND)


async def update_layout(lk: LiveKit, egress_id: str, layout: str) -> api.EgressInfo:
    """UpdateLayout of a room composite egress: the `EgressInfo`; 404 `egress_not_found`."""
    request = api.UpdateLayoutRequest(egress_id=egress_id, layout=layout)
    return await lk.run(lk.egress.update_layout(request), not_found_code=EGRESS_NOT_FOUND)


async def update_stream(
    lk: LiveKit,
    egress_id: str,
    add_output_urls: list[str],
    remove_output_urls: list[str],
    media_allow: UrlAllowList,
) -> api.EgressInfo:
    """UpdateStream: add and remove stream outputs of an active egress: the `EgressInfo`;
    404 `egress_not_found`; 422 / 403 for an added URL, from `check_media`."""
    request = api.UpdateStreamRequest(
        egress_id=egress_id,
        add_output_urls=add_output_urls,
        remove_output_urls=remove_output_urls,
    )
    check_media(request, media_allow)
    return await lk.run(lk.egress.update_stream(request), not_found_code=EGRESS_NOT_FOUND)


async def stop_egress(lk: LiveKit, egress_id: str) -> api.EgressInfo:
    """StopEgress: the worker finishes its outputs; the `EgressInfo` (`EGRESS_ENDING`).
    404 `egress_not_found`; an egress that already ended is 409 `failed_precondition`.

    The egress is looked up first: LiveKit answers StopEgress for an unknown id only after
    ~3 s, ListEgress at once."""
    await get_egress(lk, egress_id)
    request = api.StopEgressRequest(egress_id=egress_id)
    return await lk.run(lk.egress.stop_egress(request), not_found_code=EGRESS_NOT_FOUND)
