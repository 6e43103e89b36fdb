"""Minting LiveKit AccessTokens: `/v1/token` under the caller's rule (`app.auth.policy`), and
`/v1/tokens` with exactly the grants asked.

Pure: no I/O. Tokens are built with livekit-api's `AccessToken` builder and signed by
`app.livekit.access_tokens.SignedAccessToken`; the claim names are LiveKit's
(https://docs.livekit.io/home/get-started/authentication/).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from livekit import api

from app.auth.policy import (
    DEFAULT_TTL_SECONDS,
    Caller,
    CallerRule,
    checked_room_config,
    refuse_disallowed_fields,
)
from app.auth.room_patterns import room_allowed
from app.core.errors import Forbidden, InvalidInput
from app.livekit.access_tokens import SignedAccessToken
from app.server_apis.media import check_media
from app.server_apis.urlpatterns import ANY_URL, UrlAllowList
from schemas.bridge import to_proto
from schemas.tokens import IssueTokenRequest, ParticipantTokenRequest


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and what it was minted for; `expires_at` is its `exp`, in UTC."""

    token: str
    identity: str
    name: str
    room: str
    expires_at: dt.datetime


def mint_participant_token(
    request: ParticipantTokenRequest,
    caller: Caller,
    rule: CallerRule,
    *,
    api_key: str,
    api_secret: str,
    media_allow: UrlAllowList = ANY_URL,
) -> IssuedToken:
    """Mint a room-join token for `request`, as far as `rule` allows.

    Raises `Forbidden` (`field_not_allowed`, `room_not_allowed`, `agent_not_allowed`)
    for anything the rule does not allow, and `InvalidInput` for a room_config whose
    `name` differs from the room. The egress a `room_config` describes (LiveKit starts it
    when the token creates the room) passes `app.server_apis.media.check_media` against
    `media_allow`
    (MEDIA_URL_ALLOW; the default admits any URL): 422 for a bad scheme or a `..` path,
    403 `media_url_not_allowed`.
    """
    refuse_disallowed_fields(request, caller, rule)
    identity = caller.identity or request.participant_identity or _random_name("user")
    room = request.room_name or _default_room(rule, identity)
    if not room_allowed(room, identity, rule.rooms):
        raise Forbidden(f"room {room!r} is not allowed for this caller", code="room_not_allowed")
    token = SignedAccessToken(api_key, api_secret)
    token.with_identity(identity).with_ttl(dt.timedelta(seconds=rule.ttl_seconds)).with_grants(
        _join_grants(room, rule)
    )
    _with_participant(
        token,
        request.participant_name,
        request.participant_metadata,
        request.participant_attributes,
    )
    room_config = checked_room_config(request, room, rule, media_allow)
    if room_config is not None:
        token.with_room_config(room_config)
    return _issued(token, identity, request.participant_name or "", room)


def mint_token(
    request: IssueTokenRequest,
    *,
    api_key: str,
    api_secret: str,
    max_ttl_seconds: int,
    media_allow: UrlAllowList = ANY_URL,
) -> IssuedToken:
    """Mint a token with exactly the grants in `request` (trusted `/v1/tokens` callers).

    Raises `InvalidInput` for a TTL above `max_ttl_seconds`, or a room-join grant without
    an identity and a room (LiveKit refuses such tokens); a `room_config` passes
    `app.server_apis.media.check_media` against `media_allow` (422, 403 `media_url_not_allowed`).
    """
    ttl = request.ttl_seconds or DEFAULT_TTL_SECONDS
    if ttl > max_ttl_seconds:
        raise InvalidInput(
            f"ttl_seconds {ttl} is above the maximum {max_ttl_seconds}",
            extra={"errors": [{"loc": ["body", "ttl_seconds"], "msg": "above the maximum"}]},
        )
    video = request.video
    if video and video.room_join and not (request.identity and video.room):
        raise InvalidInput("a room_join grant needs both identity and video.room")
    token = SignedAccessToken(api_key, api_secret)
    token.with_ttl(dt.timedelta(seconds=ttl)).with_identity(request.identity or "")
    if video:
        token.with_grants(api.VideoGrants(**video.model_dump(exclude_unset=True)))
    if request.sip:
        token.with_sip_grants(api.SIPGrants(**request.sip.model_dump(exclude_unset=True)))
    _with_participant(token, request.name, request.metadata, request.attributes)
    if request.kind:
        token.with_kind(request.kind)
    if request.room_preset:
        token.with_room_preset(request.room_preset)
    if request.room_config:
        room_config = to_proto(request.room_config, api.RoomConfiguration)
        check_media(room_config, media_allow, at="room_config")
        token.with_room_config(room_config)
    room = video.room if video and video.room else ""
    return _issued(token, request.identity or "", request.name or "", room)


def _with_participant(
    token: api.AccessToken,
    name: str | None,
    metadata: str | None,
    attributes: dict[str, str] | None,
) -> None:
    """Set the participant's name, metadata and attributes claims, those that are given."""
    if name:
        token.with_name(name)
    if metadata:
        token.with_metadata(metadata)
    if attributes:
        token.with_attributes(attributes)


def _join_grants(room: str, rule: CallerRule) -> api.VideoGrants:
    sources = [s.value for s in rule.can_publish_sources] if rule.can_publish_sources else None
    return api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=rule.can_publish,
        can_subscribe=rule.can_subscribe,
        can_publish_data=rule.can_publish_data,
        can_publish_sources=sources if rule.can_publish else None,
        can_update_own_metadata=rule.can_update_own_metadata or None,
    )


def _default_room(rule: CallerRule, identity: str) -> str:
    """A room the rule allows, for a body that names none: the first pattern made concrete
    (each `*` a random hex string, each `?` an `x`, then `{identity}` filled in); `*` alone
    gives `room-<random>`. Patterns with `[...]` classes are passed over."""
    for pattern in rule.rooms:
        if pattern == "*":
            break
        if "[" not in pattern:
            concrete = pattern.replace("*", secrets.token_hex(4)).replace("?", "x")
            return concrete.replace("{identity}", identity)
    return _random_name("room")


def _random_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def _issued(token: SignedAccessToken, identity: str, name: str, room: str) -> IssuedToken:
    jwt_text, exp = token.sign()
    expires_at = dt.datetime.fromtimestamp(exp, tz=dt.UTC)
    return IssuedToken(
        token=jwt_text, identity=identity, name=name, room=room, expires_at=expires_at
    )
