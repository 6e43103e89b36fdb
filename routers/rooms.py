"""Room and participant routes (contract: Rooms and participants), over LiveKit's RoomService.

Responses are LiveKit's messages as JSON with proto field names, as LiveKit sends them
(a message field LiveKit left unset is absent); lists are `{"items", "next_page_token"}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.http.deps import IdempotencyDep, LiveKitDep, RoomsReadCaller, RoomsWriteCaller, SettingsDep
from app.server_apis import rooms
from routers.params import Identity, RoomName
from schemas.bridge import to_json, to_page
from schemas.common import Name
from schemas.problems import LIVEKIT_PROBLEMS, problems
from schemas.rooms import (
    CreateRoomRequest,
    DestinationRoomRequest,
    MuteRoomTrackResponse,
    MuteTrackRequest,
    ParticipantInfo,
    ParticipantPage,
    Room,
    RoomPage,
    SendDataRequest,
    UpdateParticipantRequest,
    UpdateRoomRequest,
    UpdateSubscriptionsRequest,
)

router = APIRouter(prefix="/v1", tags=["rooms"])

#: A route under /rooms/{room}: LiveKit objects as LiveKit sent them, and 404 problems.
IN_ROOM: dict[str, Any] = {
    "response_model_exclude_unset": True,
    "responses": problems(404, *LIVEKIT_PROBLEMS),
}
PARTICIPANT = "/rooms/{room}/participants/{identity}"


@router.post(
    "/rooms",
    status_code=201,
    operation_id="create_room",
    response_model=Room,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 400, 409, 503),
)
async def create_room(
    body: CreateRoomRequest,
    lk: LiveKitDep,
    settings: SettingsDep,
    caller: RoomsWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """CreateRoom with every LiveKit `CreateRoomRequest` field (incl. `agents`, which also
    needs `dispatch:write`, and `egress`, which also needs `egress:write` and whose URLs are
    checked as on the egress routes); an existing room is returned as it is. A retry with
    the same `Idempotency-Key` and body gets the first response without calling LiveKit
    again."""
    allow = settings.media_url_allow_list
    return await idempotent.run(lambda: rooms.create_room(lk, body, caller, allow))


@router.get(
    "/rooms",
    operation_id="list_rooms",
    response_model=RoomPage,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS),
)
async def list_rooms(
    lk: LiveKitDep,
    _: RoomsReadCaller,
    names: Annotated[list[Name], Query()] = [],  # noqa: B006
) -> dict[str, Any]:
    """ListRooms: the active rooms, or those among `names` that exist."""
    found = await rooms.list_rooms(lk, names)
    return to_page(found)


@router.get("/rooms/{room}", operation_id="get_room", response_model=Room, **IN_ROOM)
async def get_room(room: RoomName, lk: LiveKitDep, _: RoomsReadCaller) -> dict[str, Any]:
    """ListRooms(names=[room]); 404 `room_not_found` when absent."""
    return to_json(await rooms.get_room(lk, room))


@router.patch("/rooms/{room}", operation_id="update_room", response_model=Room, **IN_ROOM)
async def update_room(
    room: RoomName, body: UpdateRoomRequest, lk: LiveKitDep, _: RoomsWriteCaller
) -> dict[str, Any]:
    """UpdateRoomMetadata; participants receive the new metadata."""
    return to_json(await rooms.update_room_metadata(lk, room, body.metadata))


@router.delete("/rooms/{room}", status_code=204, operation_id="delete_room", **IN_ROOM)
async def delete_room(room: RoomName, lk: LiveKitDep, _: RoomsWriteCaller) -> None:
    """DeleteRoom: everyone is disconnected and the room closed."""
    await rooms.delete_room(lk, room)


@router.post("/rooms/{room}/data", status_code=204, operation_id="send_data", **IN_ROOM)
async def send_data(
    room: RoomName, body: SendDataRequest, lk: LiveKitDep, _: RoomsWriteCaller
) -> None:
    """SendData: `data` (base64) or `text` to the room, or to `destination_identities`."""
    await rooms.send_data(lk, room, body)


@router.get(
    "/rooms/{room}/participants",
    operation_id="list_participants",
    response_model=ParticipantPage,
    **IN_ROOM,
)
async def list_participants(room: RoomName, lk: LiveKitDep, _: RoomsReadCaller) -> dict[str, Any]:
    """ListParticipants; 404 `room_not_found` when the room does not exist."""
    found = await rooms.list_participants(lk, room)
    return to_page(found)


@router.get(PARTICIPANT, operation_id="get_participant", response_model=ParticipantInfo, **IN_ROOM)
async def get_participant(
    room: RoomName, identity: Identity, lk: LiveKitDep, _: RoomsReadCaller
) -> dict[str, Any]:
    """GetParticipant; 404 `room_not_found` or `participant_not_found`."""
    return to_json(await rooms.get_participant(lk, room, identity))


@router.patch(
    PARTICIPANT, operation_id="update_participant", response_model=ParticipantInfo, **IN_ROOM
)
async def update_participant(
    room: RoomName,
    identity: Identity,
    body: UpdateParticipantRequest,
    lk: LiveKitDep,
    _: RoomsWriteCaller,
) -> dict[str, Any]:
    """UpdateParticipant (`metadata`, `attributes`, `name`, `permission`)."""
    return to_json(await rooms.update_participant(lk, room, identity, body))


@router.delete(PARTICIPANT, status_code=204, operation_id="remove_participant", **IN_ROOM)
async def remove_participant(
    room: RoomName, identity: Identity, lk: LiveKitDep, _: RoomsWriteCaller
) -> None:
    """RemoveParticipant: LiveKit disconnects the participant."""
    await rooms.remove_participant(lk, room, identity)


@router.post(
    PARTICIPANT + "/tracks/{track_sid}/mute",
    operation_id="mute_published_track",
    response_model=MuteRoomTrackResponse,
    response_model_exclude_unset=True,
    responses=problems(404, 409, *LIVEKIT_PROBLEMS),
)
async def mute_published_track(
    room: RoomName,
    identity: Identity,
    track_sid: str,
    body: MuteTrackRequest,
    lk: LiveKitDep,
    _: RoomsWriteCaller,
) -> dict[str, Any]:
    """MutePublishedTrack: `{"track": TrackInfo}`; 404 `track_not_found` for an unknown
    track; unmuting is 409 unless LiveKit allows remote unmute."""
    return to_json(await rooms.mute_published_track(lk, room, identity, track_sid, body.muted))


@router.post(
    PARTICIPANT + "/subscriptions", status_code=204, operation_id="update_subscriptions", **IN_ROOM
)
async def update_subscriptions(
    room: RoomName,
    identity: Identity,
    body: UpdateSubscriptionsRequest,
    lk: LiveKitDep,
    _: RoomsWriteCaller,
) -> None:
    """UpdateSubscriptions: subscribe the participant to, or unsubscribe it from, tracks."""
    await rooms.update_subscriptions(lk, room, identity, body)


@router.post(
    PARTICIPANT + "/forward", status_code=204, operation_id="forward_participant", **IN_ROOM
)
async def forward_participant(
    room: RoomName,
    identity: Identity,
    body: DestinationRoomRequest,
    lk: LiveKitDep,
    _: RoomsWriteCaller,
) -> None:
    """ForwardParticipant (LiveKit Cloud only: 501 `feature_not_enabled` elsewhere)."""
    await rooms.forward_participant(lk, room, identity, body.destination_room)


@router.post(PARTICIPANT + "/move", status_code=204, operation_id="move_participant", **IN_ROOM)
async def move_participant(
    room: RoomName,
    identity: Identity,
    body: DestinationRoomRequest,
    lk: LiveKitDep,
    _: RoomsWriteCaller,
) -> None:
    """MoveParticipant (LiveKit Cloud only: 501 `feature_not_enabled` elsewhere)."""
    await rooms.move_participant(lk, room, identity, body.destination_room)
