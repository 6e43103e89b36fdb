"""The token policy: what each kind of caller may mint on `/v1/token` (TOKEN_POLICY).

`/v1/token` callers never choose their grants: the caller's `CallerRule` does. A body field
the rule does not allow is refused with 403 `field_not_allowed`, never dropped, and the
admin-class grants (`room_create`, `room_list`, `room_record`, `room_admin`,
`ingress_admin`, `sip`, `hidden`, `agent`, `kind`) are never set on such a token (the
grants are written by `app.auth.tokens`). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from livekit import api
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.callers import EndUserAuth
from app.auth.room_patterns import RoomPattern
from app.core.errors import Forbidden, InvalidInput
from app.server_apis.media import check_media
from app.server_apis.urlpatterns import UrlAllowList
from schemas.bridge import to_proto
from schemas.tokens import ParticipantTokenRequest

DEFAULT_TTL_SECONDS = 600
DEFAULT_MAX_TTL_SECONDS = 6 * 3600


class TrackSource(StrEnum):
    """LiveKit track sources a participant may publish (`canPublishSources`)."""

    CAMERA = "camera"
    MICROPHONE = "microphone"
    SCREEN_SHARE = "screen_share"
    SCREEN_SHARE_AUDIO = "screen_share_audio"


class CallerRule(BaseModel):
    """What one kind of caller may mint on `/v1/token`.

    `rooms` are shell-style patterns (`fnmatch`) where `{identity}` stands for exactly the
    participant identity: a room name is read once against a pattern, `{identity}` taking
    the longest part it can, so under `user-{identity}-*` the room `user-alice-bob-x` is
    `alice-bob`'s, never `alice`'s (`app.auth.room_patterns`; a wildcard right next to
    `{identity}` is refused); `agents` are agent names that may be dispatched (`*` = any);
    `ttl_seconds` is the token lifetime; `rate_limit` is a `limits` expression per caller
    (e.g. `"30/minute"`). `allow_room_config` lets the caller set `room_config` fields other
    than `agents`; `room_config.egress` (recording: it costs and it publishes the room's
    media elsewhere) also needs `allow_room_egress`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rooms: list[RoomPattern] = ["*"]
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_publish_sources: list[TrackSource] | None = None
    can_update_own_metadata: bool = False
    agents: list[str] = []
    allow_identity: bool = True
    allow_name: bool = True
    allow_metadata: bool = False
    allow_attributes: bool = False
    allow_room_config: bool = False
    allow_room_egress: bool = False
    ttl_seconds: int = Field(default=DEFAULT_TTL_SECONDS, gt=0)
    rate_limit: str = "60/minute"


class EndUserRule(CallerRule):
    """The rule for end users: like `CallerRule`, but `rooms` must be written out (no `*`
    default: an identity provider's users get only the rooms the operator names, e.g.
    `["user-{identity}-*"]`), and the identity is the token's `sub`."""

    rooms: list[RoomPattern] = Field(min_length=1)
    allow_identity: bool = False


class EndUserPolicy(EndUserAuth):
    """End-user JWT verification plus the rule for such callers (required: see
    `EndUserRule`)."""

    rule: EndUserRule


class TokenPolicy(BaseModel):
    """TOKEN_POLICY: a rule per kind of caller, and the TTL cap for every token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anonymous: CallerRule | None = None
    service_keys: CallerRule | None = None
    end_users: EndUserPolicy | None = None
    max_ttl_seconds: int = Field(default=DEFAULT_MAX_TTL_SECONDS, gt=0)

    @model_validator(mode="after")
    def _ttl_within_cap(self) -> TokenPolicy:
        for name in ("anonymous", "service_keys"):
            rule = getattr(self, name)
            if rule is not None and rule.ttl_seconds > self.max_ttl_seconds:
                raise ValueError(f"{name}.ttl_seconds is above max_ttl_seconds")
        if self.end_users and self.end_users.rule.ttl_seconds > self.max_ttl_seconds:
            raise ValueError("end_users.rule.ttl_seconds is above max_ttl_seconds")
        return self


def default_development_policy() -> TokenPolicy:
    """Development default: anonymous callers may join any room to publish, subscribe and
    send data, and dispatch any agent; so may service keys."""
    rule = CallerRule(agents=["*"])
    return TokenPolicy(anonymous=rule, service_keys=rule)


@dataclass(frozen=True)
class Caller:
    """Who asked for a token: `kind`, a stable `name` (key name, user `sub`, client address)
    and, for end users, the `identity` the token must carry."""

    kind: Literal["anonymous", "service_key", "end_user"]
    name: str
    identity: str | None = None

    @property
    def rate_key(self) -> str:
        """The key a rate limit counts under."""
        return f"{self.kind}:{self.name}"


def rule_for(policy: TokenPolicy, caller: Caller) -> CallerRule:
    """The policy's rule for `caller`; raises `Forbidden` when that kind of caller has none."""
    rule = {
        "anonymous": policy.anonymous,
        "service_key": policy.service_keys,
        "end_user": policy.end_users.rule if policy.end_users else None,
    }[caller.kind]
    if rule is None:
        raise Forbidden(
            f"the token policy allows no {caller.kind.replace('_', ' ')} callers",
            code="caller_not_allowed",
        )
    return rule


def refuse_disallowed_fields(
    request: ParticipantTokenRequest, caller: Caller, rule: CallerRule
) -> None:
    """Refuse a `/v1/token` body that sets a participant field `rule` does not allow:
    raises `Forbidden` (403 `field_not_allowed`, `field` naming it). An end user may give
    no identity but their own (`caller.identity`, the token's `sub`)."""
    checks = {
        "participant_name": rule.allow_name,
        "participant_metadata": rule.allow_metadata,
        "participant_attributes": rule.allow_attributes,
    }
    identity = request.participant_identity
    if caller.identity is not None:  # an end user's identity is their `sub`, nothing else
        checks["participant_identity"] = not identity or identity == caller.identity
    else:
        checks["participant_identity"] = rule.allow_identity
    for field, allowed in checks.items():
        if getattr(request, field) and not allowed:
            raise Forbidden(
                f"the token policy does not let this caller set {field}",
                code="field_not_allowed",
                extra={"field": field},
            )


def checked_room_config(
    request: ParticipantTokenRequest, room: str, rule: CallerRule, media_allow: UrlAllowList
) -> api.RoomConfiguration | None:
    """The `room_config` of a `/v1/token` body as LiveKit's `RoomConfiguration`, once `rule`
    allows it (None when the body has none, or sets nothing).

    Raises `Forbidden`: `field_not_allowed` for a field other than `agents` without
    `allow_room_config`, or `egress` without `allow_room_egress`; `agent_not_allowed` for
    an agent not in `rule.agents`. Raises `InvalidInput` when its `name` is not `room`; its
    egress passes `app.server_apis.media.check_media` against `media_allow` (422, 403
    `media_url_not_allowed`).
    """
    config = request.room_config
    if config is None:
        return None
    set_fields = config.model_fields_set - {"agents"}
    refused = sorted(set_fields) if not rule.allow_room_config else []
    if "egress" in set_fields and config.egress is not None and not rule.allow_room_egress:
        refused = ["egress"]
    if refused:
        field = f"room_config.{refused[0]}"
        raise Forbidden(
            f"the token policy does not let this caller set {field}",
            code="field_not_allowed",
            extra={"field": field},
        )
    for dispatch in config.agents or []:
        name = dispatch.agent_name or ""
        if "*" not in rule.agents and name not in rule.agents:
            raise Forbidden(f"agent {name!r} may not be dispatched", code="agent_not_allowed")
    message = to_proto(config, api.RoomConfiguration)
    if message.name and message.name != room:
        raise InvalidInput("room_config.name must equal room_name when both are given")
    check_media(message, media_allow, at="room_config")
    return message if message.ByteSize() else None
