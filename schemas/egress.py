"""Bodies of the egress routes (contract: Egress).

Start bodies are LiveKit's own request messages (`RoomCompositeEgressRequest`,
`WebEgressRequest`, `ParticipantEgressRequest`, `TrackCompositeEgressRequest`,
`TrackEgressRequest`: every output kind and upload backend), derived by
`schemas.bridge.model_for`, with what LiveKit would only discover in its worker checked
first (422 naming the field): an output is required (`file`/`stream`/`segments` or
`file_outputs`, `stream_outputs`, `segment_outputs`, `image_outputs`; a track egress needs
`file` or `websocket_url`). URLs (their schemes and MEDIA_URL_ALLOW) and file paths are
checked by `app.server_apis.media.check_media` on the LiveKit request, as they are wherever an
egress
description enters (`room_config`, `POST /v1/rooms`).

Responses are LiveKit's `EgressInfo`, with upload credentials removed by the bridge.
"""

from __future__ import annotations

from typing import Any

from livekit.protocol import egress
from pydantic import AliasChoices, Field, model_validator

from schemas.bridge import ProtoModel, model_for
from schemas.common import Name, Page, RequestModel

EgressInfo = model_for(egress.EgressInfo)
EgressPage = Page[EgressInfo]  # type: ignore[valid-type]

#: Output fields of the start requests: one of them must be given.
_OUTPUTS = (
    "file",
    "stream",
    "segments",
    "websocket_url",
    "file_outputs",
    "stream_outputs",
    "segment_outputs",
    "image_outputs",
)


def _require_output(model: ProtoModel) -> None:
    if not any(getattr(model, name, None) for name in _OUTPUTS):
        outputs = [name for name in _OUTPUTS if name in type(model).model_fields]
        raise ValueError(
            "an output is required: give one of " + ", ".join(f"`{o}`" for o in outputs)
        )


def _required(proto_name: str, json_name: str, **constraints: Any) -> Any:
    """A field a start body must give, spelled snake_case or lowerCamelCase like the rest."""
    return Field(validation_alias=AliasChoices(proto_name, json_name), **constraints)


class _StartRules(ProtoModel):
    """The check every start body gets at validation (see module doc)."""

    @model_validator(mode="after")
    def _an_output(self) -> _StartRules:
        _require_output(self)
        return self


_RoomComposite: Any = model_for(
    egress.RoomCompositeEgressRequest, name="StartRoomCompositeEgressFields"
)
_Web: Any = model_for(egress.WebEgressRequest, name="StartWebEgressFields")
_Participant: Any = model_for(egress.ParticipantEgressRequest, name="StartParticipantEgressFields")
_TrackComposite: Any = model_for(
    egress.TrackCompositeEgressRequest, name="StartTrackCompositeEgressFields"
)
_Track: Any = model_for(egress.TrackEgressRequest, name="StartTrackEgressFields")


class StartRoomCompositeEgress(_RoomComposite, _StartRules):  # type: ignore[misc]
    """`POST /v1/egress/room-composite`: LiveKit `RoomCompositeEgressRequest` (every field);
    `room_name` required. LiveKit's default layouts need the egress template build;
    `custom_base_url` (http(s)) names a page of your own."""

    room_name: Name = _required("room_name", "roomName", min_length=1)


class StartWebEgress(_Web, _StartRules):  # type: ignore[misc]
    """`POST /v1/egress/web`: LiveKit `WebEgressRequest`; `url` (http(s)) is the page the
    egress worker's browser records. With MEDIA_URL_ALLOW set it must match a pattern."""

    url: str = _required("url", "url", min_length=1, description="http(s):// page to record")


class StartParticipantEgress(_Participant, _StartRules):  # type: ignore[misc]
    """`POST /v1/egress/participant`: LiveKit `ParticipantEgressRequest`; the participant's
    camera (or `screen_share`) and microphone."""

    room_name: Name = _required("room_name", "roomName", min_length=1)
    identity: Name = _required("identity", "identity", min_length=1)


class StartTrackCompositeEgress(_TrackComposite, _StartRules):  # type: ignore[misc]
    """`POST /v1/egress/track-composite`: LiveKit `TrackCompositeEgressRequest`; one audio
    and/or one video track, muxed."""

    room_name: Name = _required("room_name", "roomName", min_length=1)

    @model_validator(mode="after")
    def _a_track(self) -> StartTrackCompositeEgress:
        if not (self.audio_track_id or self.video_track_id):
            raise ValueError("give `audio_track_id`, `video_track_id` or both")
        return self


class StartTrackEgress(_Track, _StartRules):  # type: ignore[misc]
    """`POST /v1/egress/track`: LiveKit `TrackEgressRequest`; one track without transcoding,
    to a file (`.ogg` for Opus, `.webm`/`.mp4` for video) or a `websocket_url`."""

    room_name: Name = _required("room_name", "roomName", min_length=1)
    track_id: str = _required("track_id", "trackId", min_length=1)


class UpdateLayoutBody(RequestModel):
    """`PATCH /v1/egress/{egress_id}/layout` (UpdateLayout): a room composite's new layout
    (`grid`, `speaker`, `single-speaker`, or one its template knows)."""

    layout: str = Field(min_length=1)


class UpdateStreamBody(RequestModel):
    """`PATCH /v1/egress/{egress_id}/stream` (UpdateStream): stream URLs to add (rtmp://,
    rtmps:// or srt://, checked by `app.server_apis.media.check_media`) and to remove; at least one
    of
    the two lists is non-empty."""

    add_output_urls: list[str] = Field(default_factory=list)
    remove_output_urls: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _urls(self) -> UpdateStreamBody:
        if not (self.add_output_urls or self.remove_output_urls):
            raise ValueError("give `add_output_urls`, `remove_output_urls` or both")
        return self
