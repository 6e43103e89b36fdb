"""Rooms and participants over LiveKit's RoomService (contract: Rooms and participants).

Every call goes through the `LiveKit` gateway, so each LiveKit failure is already the
contract's status. On top of that, a missing room is always 404 `room_not_found` and a
missing participant 404 `participant_not_found`, whatever LiveKit itself answers. What the
LiveKit server (v1.13, checked against `livekit-server --dev`) answers when they are absent:

- ListRooms(names=[room]), ListParticipants: an empty list for a missing room;
- DeleteRoom, UpdateRoomMetadata: `not_found`;
- GetParticipant, UpdateParticipant, RemoveParticipant: `not_found` "participant does not
  exist", for a missing room and for a missing participant alike;
- SendData (missing room), MutePublishedTrack, UpdateSubscriptions, ForwardParticipant,
  MoveParticipant (missing room or participant): `unavailable` "no response from servers",
  after about 3 s.

So: an empty answer or a `not_found` is resolved by asking ListRooms whether the room
exists; the calls that would wait for `unavailable` check the room (or the participant) first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from livekit import api

from app.auth.callers import Scope, ServiceKey, require_scope
from app.core.errors import InvalidInput, NotFound, UpstreamError, UpstreamUnavailable
from app.livekit.gateway import LiveKit
from app.server_apis.media import check_media
from app.server_apis.urlpatterns import UrlAllowList
from schemas.bridge import to_proto
from schemas.rooms import (
    CreateRoomRequest,
    SendDataRequest,
    UpdateParticipantRequest,
    UpdateSubscriptionsRequest,
)

T = TypeVar("T")

ROOM_NOT_FOUND = "room_not_found"
PARTICIPANT_NOT_FOUND = "participant_not_found"
TRACK_NOT_FOUND = "track_not_found"


def room_not_found(room: str) -> NotFound:
    """The 404 for a room LiveKit does not have."""
    return NotFound(f"room {room!r} does not exist", code=ROOM_NOT_FOUND)


def participant_not_found(room: str, identity: str) -> NotFound:
    """The 404 for a participant that is not in an existing room."""
    return NotFound(f"participant {identity!r} is not in room {room!r}", code=PARTICIPANT_NOT_FOUND)


# Rooms


async def create_room(
    lk: LiveKit, body: CreateRoomRequest, caller: ServiceKey, media_allow: UrlAllowList
) -> api.Room:
    """CreateRoom with every `CreateRoomRequest` field the caller gave (incl. `agents`,
    whose dispatches LiveKit creates with the room). Returns the `Room`.

    Scopes reach nested fields: `agents` also needs `dispatch:write` and `egress` also
    `egress:write` (403 `missing_scope` before LiveKit is called). The egress LiveKit
    starts with the room passes `app.server_apis.media.check_media` against `media_allow` (422, 403
    `media_url_not_allowed`), as on the egress routes: no room is created then.

    LiveKit's CreateRoom also answers for a room that already exists: it returns that room
    unchanged. An unknown `room_preset` is 422 (LiveKit `invalid_argument`), and so is a
    `node_id` LiveKit does not know (it answers Twirp `unknown` "could not find object").
    """
    if body.agents:
        require_scope(caller, Scope.DISPATCH_WRITE)
    if body.egress is not None:
        require_scope(caller, Scope.EGRESS_WRITE)
    request = to_proto(body, api.CreateRoomRequest)
    check_media(request, media_allow)
    try:
        return await lk.run(lk.room.create_room(request))
    except UpstreamError as exc:
        if request.node_id and exc.code == UpstreamError.code:
            raise InvalidInput(
                f"node_id {request.node_id!r} names no LiveKit node ({exc.detail})",
                code="node_not_found",
            ) from exc
        raise


async def list_rooms(lk: LiveKit, names: list[str] | None = None) -> list[api.Room]:
    """ListRooms: the active rooms, or only those among `names` that exist."""
    response = await lk.run(lk.room.list_rooms(api.ListRoomsRequest(names=names or [])))
    return list(response.rooms)


async def get_room(lk: LiveKit, room: str) -> api.Room:
    """ListRooms(names=[room]): the `Room`; 404 `room_not_found` when LiveKit lists none."""
    for found in await list_rooms(lk, [room]):
        if found.name == room:
            return found
    raise room_not_found(room)


async def update_room_metadata(lk: LiveKit, room: str, metadata: str) -> api.Room:
    """UpdateRoomMetadata: the updated `Room`; 404 `room_not_found`."""
    request = api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
    return await lk.run(lk.room.update_room_metadata(request), not_found_code=ROOM_NOT_FOUND)


async def delete_room(lk: LiveKit, room: str) -> None:
    """DeleteRoom: disconnects everyone and closes the room; 404 `room_not_found`."""
    request = api.DeleteRoomRequest(room=room)
    await lk.run(lk.room.delete_room(request), not_found_code=ROOM_NOT_FOUND)


async def send_data(lk: LiveKit, room: str, body: SendDataRequest) -> None:
    """SendData: `body`'s payload to the room's participants (or `destination_identities`;
    an identity not in the room is skipped by LiveKit). 404 `room_not_found`."""
    request = to_proto(body.to_livekit(room), api.SendDataRequest)
    await _in_existing(lk, room, None, lambda: lk.run(lk.room.send_data(request)))


# Participants


async def list_participants(lk: LiveKit, room: str) -> list[api.ParticipantInfo]:
    """ListParticipants: the room's participants; 404 `room_not_found`."""
    request = api.ListParticipantsRequest(room=room)
    participants = list((await lk.run(lk.room.list_participants(request))).participants)
    if not participants:
        await get_room(lk, room)
    return participants


async def get_participant(lk: LiveKit, room: str, identity: str) -> api.ParticipantInfo:
    """GetParticipant: the `ParticipantInfo`; 404 `room_not_found` / `participant_not_found`."""
    request = api.RoomParticipantIdentity(room=room, identity=identity)
    return await _or_which_404(lk, room, identity, lambda: lk.run(lk.room.get_participant(request)))


async def update_participant(
    lk: LiveKit, room: str, identity: str, body: UpdateParticipantRequest
) -> api.ParticipantInfo:
    """UpdateParticipant with the fields given (`metadata`, `attributes`, `name`,
    `permission`): the updated `ParticipantInfo`. 404 `room_not_found` /
    `participant_not_found`."""
    fields = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    request = to_proto({**fields, "room": room, "identity": identity}, api.UpdateParticipantRequest)
    return await _or_which_404(
        lk, room, identity, lambda: lk.run(lk.room.update_participant(request))
    )


async def remove_participant(lk: LiveKit, room: str, identity: str) -> None:
    """RemoveParticipant: LiveKit disconnects the participant. 404 `room_not_found` /
    `participant_not_found`."""
    request = api.RoomParticipantIdentity(room=room, identity=identity)
    await _or_which_404(lk, room, identity, lambda: lk.run(lk.room.remove_participant(request)))


async def mute_published_track(
    lk: LiveKit, room: str, identity: str, track_sid: str, muted: bool
) -> api.MuteRoomTrackResponse:
    """MutePublishedTrack: `{"track": TrackInfo}` as LiveKit confirms it. 404
    `room_not_found` / `participant_not_found`, and `track_not_found` when the participant
    publishes no such track (LiveKit itself answers an empty response then). Unmuting is
    409 unless LiveKit runs with `room.enable_remote_unmute`."""
    request = api.MuteRoomTrackRequest(
        room=room, identity=identity, track_sid=track_sid, muted=muted
    )
    response = await _in_existing(
        lk, room, identity, lambda: lk.run(lk.room.mute_published_track(request))
    )
    if not response.HasField("track"):
        raise NotFound(
            f"participant {identity!r} publishes no track {track_sid!r}", code=TRACK_NOT_FOUND
        )
    return response


async def update_subscriptions(
    lk: LiveKit, room: str, identity: str, body: UpdateSubscriptionsRequest
) -> None:
    """UpdateSubscriptions: subscribe the participant to (or unsubscribe it from) tracks.
    404 `room_not_found` / `participant_not_found`; unknown track sids are ignored by
    LiveKit."""
    fields = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    request = to_proto(
        {**fields, "room": room, "identity": identity}, api.UpdateSubscriptionsRequest
    )
    await _in_existing(lk, room, identity, lambda: lk.run(lk.room.update_subscriptions(request)))


async def forward_participant(lk: LiveKit, room: str, identity: str, destination_room: str) -> None:
    """ForwardParticipant: the participant and its tracks also appear in `destination_room`.

    LiveKit documents it as LiveKit Cloud / Private Cloud only; a self-hosted server answers
    Twirp `unknown` "not implemented", which is 501 `feature_not_enabled` (`app.core.errors`). 404
    `room_not_found` / `participant_not_found`; 422 when `destination_room` is `room`.
    """
    request = api.ForwardParticipantRequest(
        room=room, identity=identity, destination_room=destination_room
    )
    await _in_existing(lk, room, identity, lambda: lk.run(lk.room.forward_participant(request)))


async def move_participant(lk: LiveKit, room: str, identity: str, destination_room: str) -> None:
    """MoveParticipant: the participant leaves `room` for `destination_room`.

    LiveKit Cloud / Private Cloud only, as `forward_participant` (501 elsewhere). 404
    `room_not_found` / `participant_not_found`; 422 when `destination_room` is `room`.
    """
    request = api.MoveParticipantRequest(
        room=room, identity=identity, destination_room=destination_room
    )
    await _in_existing(lk, room, identity, lambda: lk.run(lk.room.move_participant(request)))


# Helpers


async def _which_404(lk: LiveKit, room: str, identity: str) -> NotFound:
    """`participant_not_found`, after `get_room` raised `room_not_found` if that is the case."""
    await get_room(lk, room)
    return participant_not_found(room, identity)


async def _or_which_404(
    lk: LiveKit, room: str, identity: str, call: Callable[[], Awaitable[T]]
) -> T:
    """`call()`; a LiveKit `not_found` (which it says for a missing room too) becomes
    whichever of the two 404s is true."""
    try:
        return await call()
    except NotFound:
        raise await _which_404(lk, room, identity) from None


async def _in_existing(
    lk: LiveKit, room: str, identity: str | None, call: Callable[[], Awaitable[T]]
) -> T:
    """`call()` on a room (and participant, when `identity` is given) checked to exist
    first: LiveKit answers these calls for a missing one only with `unavailable` after about
    3 s. When `unavailable` comes anyway, they are checked again, since they may have gone
    meanwhile: 404 then, else the 503 stands."""

    async def require() -> None:
        if identity is None:
            await get_room(lk, room)
        else:
            await get_participant(lk, room, identity)

    await require()
    try:
        return await call()
    except UpstreamUnavailable:
        await require()
        raise
