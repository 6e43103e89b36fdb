"""Bodies of the token routes (contract: Tokens)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeVar

from google.protobuf import json_format
from livekit.protocol.room import RoomConfiguration
from pydantic import BaseModel, Field

from schemas.bridge import model_for, to_json
from schemas.common import Attributes, Metadata, Name, RequestModel

RoomConfig = model_for(RoomConfiguration)
G = TypeVar("G", bound=BaseModel)


class ParticipantTokenRequest(RequestModel):
    """LiveKit's standard token-endpoint request; every field is optional."""

    room_name: Name | None = None
    participant_identity: Name | None = None
    participant_name: Name | None = None
    participant_metadata: Metadata | None = None
    participant_attributes: Attributes | None = None
    room_config: RoomConfig | None = None  # type: ignore[valid-type]


class ParticipantTokenResponse(BaseModel):
    """LiveKit's standard token-endpoint response, plus what the token was minted for."""

    server_url: str
    participant_token: str
    room_name: str
    participant_identity: str
    participant_name: str
    expires_at: dt.datetime


class VideoGrant(RequestModel):
    """LiveKit's video grant (`video` claim); see livekit/protocol `auth/grants.go`."""

    room_create: bool | None = None
    room_list: bool | None = None
    room_record: bool | None = None
    room_admin: bool | None = None
    room_join: bool | None = None
    room: Name | None = None
    destination_room: Name | None = None
    can_publish: bool | None = None
    can_subscribe: bool | None = None
    can_publish_data: bool | None = None
    can_publish_sources: list[str] | None = None
    can_update_own_metadata: bool | None = None
    ingress_admin: bool | None = None
    hidden: bool | None = None
    recorder: bool | None = None
    agent: bool | None = None
    can_manage_agent_session: bool | None = None
    can_subscribe_metrics: bool | None = None


class SIPGrant(RequestModel):
    """LiveKit's SIP grant (`sip` claim): `admin` manages SIP resources, `call` dials out."""

    admin: bool | None = None
    call: bool | None = None


class IssueTokenRequest(RequestModel):
    """`POST /v1/tokens`: any grant LiveKit knows, for trusted backends."""

    identity: Name | None = None
    name: Name | None = None
    metadata: Metadata | None = None
    attributes: Attributes | None = None
    kind: Literal["standard", "egress", "ingress", "sip", "agent"] | None = None
    ttl_seconds: int | None = Field(default=None, gt=0)
    video: VideoGrant | None = None
    sip: SIPGrant | None = None
    room_config: RoomConfig | None = None  # type: ignore[valid-type]
    room_preset: str | None = None


class IssueTokenResponse(BaseModel):
    """A minted token and where to use it."""

    token: str
    server_url: str
    identity: str
    expires_at: dt.datetime


class IntrospectRequest(RequestModel):
    """`POST /v1/tokens/introspect`: the token goes in the body, never in a URL."""

    token: str = Field(min_length=1)


class TokenIntrospection(BaseModel):
    """What a token says, when valid; otherwise only `valid: false` and a `reason`
    (`malformed`, `unknown_key`, `bad_signature`, `expired`, `not_yet_valid`,
    `invalid_claims`). Grants hold the claims the token carries, nothing else."""

    valid: bool
    reason: str | None = None
    identity: str | None = None
    name: str | None = None
    kind: str | None = None
    issuer: str | None = None
    not_before: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    video: VideoGrant | None = None
    sip: SIPGrant | None = None
    room_config: RoomConfig | None = None  # type: ignore[valid-type]
    metadata: str | None = None
    attributes: dict[str, str] | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> TokenIntrospection:
        """Describe verified JWT `claims` (LiveKit's camelCase) with snake_case names."""

        def timestamp(key: str) -> dt.datetime | None:
            return dt.datetime.fromtimestamp(claims[key], tz=dt.UTC) if key in claims else None

        return cls(
            valid=True,
            identity=claims.get("sub", ""),
            name=claims.get("name", ""),
            kind=claims.get("kind", ""),
            issuer=claims.get("iss"),
            not_before=timestamp("nbf"),
            expires_at=timestamp("exp"),
            video=_grant(VideoGrant, claims.get("video")),
            sip=_grant(SIPGrant, claims.get("sip")),
            room_config=_room_config(claims.get("roomConfig")),
            metadata=claims.get("metadata", ""),
            attributes=claims.get("attributes", {}),
        )


def _grant(model: type[G], claim: dict[str, Any] | None) -> G | None:
    """A camelCase grant claim as `model`, keeping only the fields the token set (claims
    this version does not know are left out)."""
    if claim is None:
        return None
    snake = {"".join(f"_{c.lower()}" if c.isupper() else c for c in k): v for k, v in claim.items()}
    return model.model_validate({k: v for k, v in snake.items() if k in model.model_fields})


def _room_config(claim: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `roomConfig` claim (protojson camelCase) with proto field names."""
    if claim is None:
        return None
    message = json_format.ParseDict(claim, RoomConfiguration(), ignore_unknown_fields=True)
    return to_json(message, with_defaults=False)
