"""Bodies of the ingress routes (contract: Ingress).

The create body is LiveKit's `CreateIngressRequest` (derived by `schemas.bridge.model_for`)
with `input_type` required and its `url` checked before LiveKit sees it: a `URL_INPUT`
needs a source (pulled by the ingress worker: `http(s)://` or `srt://`, checked with every
other URL by `app.server_apis.media.check_media`), the other input types take none (LiveKit gives
them
their URL). The update body is LiveKit's
`UpdateIngressRequest` without `ingress_id`, which the path names. Responses are LiveKit's
`IngressInfo` (its `url` and `stream_key` are what an encoder needs, so they are shown; the
`stream_key` only to callers that may write ingress: `app.server_apis.ingress.withheld_from`).
"""

from __future__ import annotations

from typing import Any

from livekit.protocol import ingress
from pydantic import AliasChoices, Field, model_validator

from schemas.bridge import model_for
from schemas.common import Metadata, Name, Page, RequestModel

IngressInfo = model_for(ingress.IngressInfo)
IngressPage = Page[IngressInfo]  # type: ignore[valid-type]
IngressAudioOptions: Any = model_for(ingress.IngressAudioOptions)
IngressVideoOptions: Any = model_for(ingress.IngressVideoOptions)

_Create: Any = model_for(ingress.CreateIngressRequest, name="CreateIngressFields")
#: LiveKit `IngressInput` by name (`RTMP_INPUT`, `WHIP_INPUT`, `URL_INPUT`).
IngressInput: Any = _Create.model_fields["input_type"].annotation


class CreateIngressRequest(_Create):  # type: ignore[misc]
    """`POST /v1/ingress` (CreateIngress): LiveKit `CreateIngressRequest`, every field;
    `input_type` is required; `url` only for `URL_INPUT`, as http(s):// or srt://. With
    MEDIA_URL_ALLOW set, a `URL_INPUT` source must match one of its patterns."""

    input_type: IngressInput = Field(
        validation_alias=AliasChoices("input_type", "inputType"),
        description="`RTMP_INPUT`, `WHIP_INPUT` or `URL_INPUT`",
    )
    name: Name | None = None
    room_name: Name | None = Field(
        default=None, validation_alias=AliasChoices("room_name", "roomName")
    )
    participant_identity: Name | None = Field(
        default=None, validation_alias=AliasChoices("participant_identity", "participantIdentity")
    )
    participant_name: Name | None = Field(
        default=None, validation_alias=AliasChoices("participant_name", "participantName")
    )
    participant_metadata: Metadata | None = Field(
        default=None, validation_alias=AliasChoices("participant_metadata", "participantMetadata")
    )

    @model_validator(mode="after")
    def _url_for_url_input(self) -> CreateIngressRequest:
        kind = getattr(self.input_type, "value", self.input_type)
        if kind == "URL_INPUT":
            if not self.url:
                raise ValueError("`url` is required for URL_INPUT")
        elif self.url:
            raise ValueError(
                f"`url` is only for URL_INPUT; {kind} ingress gets its URL from LiveKit"
            )
        return self


class UpdateIngressBody(RequestModel):
    """`PATCH /v1/ingress/{ingress_id}` (UpdateIngress): the fields given change, the others
    keep their values (LiveKit's rules). An active ingress cannot be updated (LiveKit
    answers 409 `failed_precondition`)."""

    name: Name | None = None
    room_name: Name | None = None
    participant_identity: Name | None = None
    participant_name: Name | None = None
    participant_metadata: Metadata | None = None
    bypass_transcoding: bool | None = None
    enable_transcoding: bool | None = None
    audio: IngressAudioOptions | None = None
    video: IngressVideoOptions | None = None
    enabled: bool | None = None

    def to_livekit(self, ingress_id: str) -> dict[str, Any]:
        """LiveKit `UpdateIngressRequest` fields (proto names) for `ingress_id`."""
        fields = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return {**fields, "ingress_id": ingress_id}
