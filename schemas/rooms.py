"""Bodies of the room and participant routes (contract: Rooms and participants).

Responses are LiveKit's own messages (`Room`, `ParticipantInfo`, `MuteRoomTrackResponse`),
derived by `schemas.bridge.model_for`. Requests are LiveKit's request messages without the
fields the path already names (`room`, `identity`, `track_sid`), with the contract's limits
(`schemas.common`: names 256 bytes, metadata 512 KiB, attributes 64 KiB) applied before
LiveKit sees them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from livekit.protocol import models, room
from pydantic import Field, field_validator, model_validator

from schemas.bridge import model_for
from schemas.common import Attributes, Metadata, Name, Page, RequestModel

Room = model_for(models.Room)
ParticipantInfo = model_for(models.ParticipantInfo)
ParticipantPermission = model_for(models.ParticipantPermission)
ParticipantTracks = model_for(models.ParticipantTracks)
MuteRoomTrackResponse = model_for(room.MuteRoomTrackResponse)

RoomPage = Page[Room]  # type: ignore[valid-type]
ParticipantPage = Page[ParticipantInfo]  # type: ignore[valid-type]


class CreateRoomRequest(model_for(room.CreateRoomRequest, name="CreateRoomFields")):  # type: ignore[misc]
    """LiveKit `CreateRoomRequest`, every field (`agents`, `egress`, `room_preset` ...);
    `name` is required and at most 256 bytes, `metadata` at most 512 KiB."""

    name: Name = Field(min_length=1)
    metadata: Metadata | None = None


class UpdateRoomRequest(RequestModel):
    """`PATCH /v1/rooms/{room}`: the room's new metadata (UpdateRoomMetadata)."""

    metadata: Metadata


class SendDataRequest(RequestModel):
    """`POST /v1/rooms/{room}/data` (SendData): exactly one of `data` (base64) or `text`
    (sent as its UTF-8 bytes); `kind` `RELIABLE` (default) or `LOSSY`; to every participant
    unless `destination_identities` names some; `topic` is optional."""

    data: str | None = Field(default=None, description="the payload, standard base64")
    text: str | None = Field(default=None, description="the payload as text, sent as UTF-8")
    kind: Literal["RELIABLE", "LOSSY"] = "RELIABLE"
    destination_identities: list[Name] = Field(default_factory=list)
    topic: str | None = None

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("data is not valid base64") from exc
        return value

    @model_validator(mode="after")
    def _one_payload(self) -> SendDataRequest:
        if (self.data is None) == (self.text is None):
            raise ValueError("give exactly one of `data` (base64) or `text`")
        return self

    def to_livekit(self, room_name: str) -> dict[str, Any]:
        """LiveKit `SendDataRequest` fields (proto names) for `room_name`, `data` as base64."""
        data = self.data if self.text is None else base64.b64encode(self.text.encode()).decode()
        fields: dict[str, Any] = {
            "room": room_name,
            "data": data,
            "kind": self.kind,
            "destination_identities": self.destination_identities,
        }
        if self.topic is not None:
            fields["topic"] = self.topic
        return fields


class UpdateParticipantRequest(RequestModel):
    """`PATCH /v1/rooms/{room}/participants/{identity}` (UpdateParticipant). Only the fields
    given change; `permission`, when given, replaces all of the participant's permissions;
    an attribute set to `""` is deleted (LiveKit's rules)."""

    metadata: Metadata | None = None
    attributes: Attributes | None = None
    name: Name | None = None
    permission: ParticipantPermission | None = None  # type: ignore[valid-type]


class MuteTrackRequest(RequestModel):
    """`POST .../tracks/{track_sid}/mute` (MutePublishedTrack). Unmuting needs LiveKit's
    `room.enable_remote_unmute`; without it LiveKit refuses (409 `failed_precondition`)."""

    muted: bool


class UpdateSubscriptionsRequest(RequestModel):
    """`POST .../participants/{identity}/subscriptions` (UpdateSubscriptions): subscribe the
    participant to (or unsubscribe it from) `track_sids` and/or `participant_tracks`."""

    track_sids: list[str] = Field(default_factory=list)
    subscribe: bool
    participant_tracks: list[ParticipantTracks] = Field(default_factory=list)  # type: ignore[valid-type]


class DestinationRoomRequest(RequestModel):
    """`POST .../forward` and `POST .../move`: the room to forward or move the participant to."""

    destination_room: Name = Field(min_length=1)
