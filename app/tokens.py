"""Minting LiveKit AccessTokens, and the policy that decides what `/v1/token` may mint.

Pure: no I/O. Tokens are built with livekit-api's `AccessToken` builder and signed by
`SignedAccessToken`, which writes the very claims `AccessToken.to_jwt` writes (same names,
same order, same omissions) and signs them with PyJWT, without livekit-api's
`dataclasses.asdict` round trip; the claim names are LiveKit's
(https://docs.livekit.io/home/get-started/authentication/).

`/v1/token` callers never choose their grants: the caller's `CallerRule` does. A body field
the rule does not allow is refused with 403 `field_not_allowed`, never dropped, and the
admin-class grants (`room_create`, `room_list`, `room_record`, `room_admin`,
`ingress_admin`, `sip`, `hidden`, `agent`, `kind`) are never set on such a token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import jwt
from google.protobuf.json_format import MessageToDict
from jwt.algorithms import HMACAlgorithm
from jwt.types import Options
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth import EndUserAuth
from app.errors import Forbidden, InvalidInput
from app.jsonbytes import compact_json
from app.media import check_media
from app.room_patterns import RoomPattern, room_allowed
from app.urlpatterns import ANY_URL, UrlAllowList
from schemas.bridge import to_proto
from schemas.tokens import (
    IssueTokenRequest,
    ParticipantTokenRequest,
    TokenIntrospection,
)

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
    `alice-bob`'s, never `alice`'s (`app.room_patterns`; a wildcard right next to
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


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and what it was minted for; `expires_at` is its `exp`, in UTC."""

    token: str
    identity: str
    name: str
    room: str
    expires_at: dt.datetime


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
    when the token creates the room) passes `app.media.check_media` against `media_allow`
    (MEDIA_URL_ALLOW; the default admits any URL): 422 for a bad scheme or a `..` path,
    403 `media_url_not_allowed`.
    """
    _refuse_disallowed_fields(request, caller, rule)
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
    room_config = _room_config(request, room, rule, media_allow)
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
    `app.media.check_media` against `media_allow` (422, 403 `media_url_not_allowed`).
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


class _HS256(HMACAlgorithm):
    """PyJWT's HS256, checking and converting each API secret once instead of per token
    (`prepare_key` refuses PEM, SSH and JWK-shaped secrets: a third of PyJWT's signing time)."""

    def prepare_key(self, key: str | bytes) -> bytes:
        return _prepared_secret(key)


@functools.lru_cache(maxsize=64)
def _prepared_secret(key: str | bytes) -> bytes:
    return HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)


_JWS = jwt.PyJWS(algorithms=["HS256"])
_JWS.unregister_algorithm("HS256")
_JWS.register_algorithm("HS256", _HS256(HMACAlgorithm.SHA256))


class PreparedKeyJWT(jwt.PyJWT):
    """PyJWT's `PyJWT` with `options` (claims checked as `jwt.decode` checks them), whose
    signatures are checked by this module's HS256, which prepares each secret once per
    process instead of per token (`_HS256`: PyJWT's `prepare_key` tries the secret as PEM,
    SSH, DER and JWK each time, about a quarter of a webhook token's check). PyJWT builds
    its own `PyJWS` in `__init__` and takes no other, so it is replaced after."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._jws = _JWS


#: livekit-api's `Claims` fields, in its order, with their JWT names (`snake_to_lower_camel`).
_CLAIM_NAMES = {
    f.name: api.access_token.snake_to_lower_camel(f.name)
    for f in dataclasses.fields(api.access_token.Claims)
}
#: The grant dataclasses' fields with their JWT names.
_GRANT_NAMES: dict[type[Any], dict[str, str]] = {
    cls: {f.name: api.access_token.snake_to_lower_camel(f.name) for f in dataclasses.fields(cls)}
    for cls in (
        api.VideoGrants,
        api.SIPGrants,
        api.access_token.InferenceGrants,
        api.access_token.ObservabilityGrants,
        api.access_token.AgentGrants,
        api.access_token.AgentEndpointGrants,
        api.access_token.AgentThreadGrants,
    )
}


class SignedAccessToken(api.AccessToken):
    """livekit-api's `AccessToken` builder (every `with_*` method), signed faster.

    `sign()` returns the JWT and its `exp` (Unix seconds): the claims are exactly those
    `AccessToken.to_jwt()` writes for the same builder calls (fields that are None or ""
    left out, camelCase names, `roomConfig` as protobuf JSON, then `sub`, `iss`, `nbf`,
    `exp` = `nbf` + TTL), built directly instead of through `dataclasses.asdict`, written
    by `app.jsonbytes.compact_json` (livekit-api's bytes for printable ASCII, UTF-8 where
    it writes `\\uXXXX` escapes) and signed HS256 by PyJWT's JWS encoder. Raises
    `ValueError` for a room-join grant without identity or room, as `to_jwt` does. Proven
    claim for claim against `AccessToken` by tests/unit/test_token_signing.py.
    """

    def sign(self) -> tuple[str, int]:
        """The signed JWT and its `exp` claim (seconds since the epoch, UTC)."""
        video = self.claims.video
        if video and video.room_join and (not self.identity or not video.room):
            raise ValueError("identity and room must be set when joining a room")
        claims: dict[str, Any] = {}
        # A dataclass instance's __dict__ holds its fields in their order: one pass over
        # it reads them without a getattr per field.
        for field, value in vars(self.claims).items():
            if value is None or value == "":
                continue
            if field == "room_config":
                value = MessageToDict(value)
            elif type(value) in _GRANT_NAMES:
                value = _grant_claim(value)
            elif isinstance(value, dict):
                value = dict(value)
            claims[_CLAIM_NAMES[field]] = value
        now = time.time()
        not_before = int(now)
        expires = int(now + self.ttl.total_seconds())
        claims["sub"] = self.identity
        claims["iss"] = self.api_key
        claims["nbf"] = not_before
        claims["exp"] = expires
        payload = compact_json(claims)
        return _JWS.encode(payload, self.api_secret, algorithm="HS256"), expires

    def to_jwt(self) -> str:
        """The signed JWT (see `sign`)."""
        return self.sign()[0]


def check_hs256_signature(token: str, secret: str) -> None:
    """Check that `token` is a JWS signed HS256 with `secret` (PyJWT, the secret prepared
    once per process). Claims are not looked at. Raises `jwt.PyJWTError`
    (`InvalidSignatureError`, `InvalidAlgorithmError`, `DecodeError`)."""
    _JWS.decode_complete(token, secret, algorithms=["HS256"])


def _grant_claim(grant: Any) -> dict[str, Any]:
    """A grant dataclass as livekit-api writes it: camelCase, None and "" left out."""
    names = _GRANT_NAMES[type(grant)]
    return {
        names[field]: list(value) if isinstance(value, list) else value
        for field, value in vars(grant).items()
        if value is not None and value != ""
    }


class TokenRejected(Exception):
    """A LiveKit JWT failed `verify_with_keyring`; `reason` is one stable word:
    `malformed`, `unknown_key`, `bad_signature`, `expired`, `not_yet_valid`,
    `invalid_claims`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def verify_with_keyring(
    token: str, keyring: dict[str, str], *, leeway: dt.timedelta = dt.timedelta(0)
) -> dict[str, Any]:
    """The claims of `token` (a LiveKit JWT, HS256) once livekit-api's `TokenVerifier` has
    checked it with the secret of the key its `iss` names in `keyring` (API key -> secret),
    allowing `leeway` of clock skew on `exp`/`nbf`.

    Raises `TokenRejected` with the reason; never anything else for a bad token.
    """
    try:
        unverified: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRejected("malformed", "the token is not a JWT") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or issuer not in keyring:
        shown = issuer[:64] if isinstance(issuer, str) else issuer
        raise TokenRejected("unknown_key", f"the issuer {shown!r} is not a configured API key")
    try:
        api.TokenVerifier(issuer, keyring[issuer], leeway=leeway).verify(token)
    except jwt.ExpiredSignatureError:
        raise TokenRejected("expired", "the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected("not_yet_valid", "the token is not valid yet") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("bad_signature", "the signature does not match the key") from None
    except Exception as exc:  # livekit-api also fails on odd claim shapes: still a refusal
        raise TokenRejected(
            "invalid_claims", f"unacceptable claims ({exc.__class__.__name__})"
        ) from None
    return unverified


def introspect(token: str, keyring: dict[str, str]) -> TokenIntrospection:
    """Verify `token` against `keyring` (API key -> secret, no clock leeway) and describe it.

    Never raises for a bad token: `valid` is False and `reason` says why (see
    `TokenRejected`); a validly signed token whose claims cannot be described (a grant or
    attributes of the wrong type, an `exp` past year 9999 ...) is `invalid_claims`.
    """
    try:
        claims = verify_with_keyring(token, keyring)
    except TokenRejected as rejected:
        return TokenIntrospection(valid=False, reason=rejected.reason)
    try:
        return TokenIntrospection.from_claims(claims)
    except Exception:  # whatever shape a signed token's claims have, it is not a 500
        return TokenIntrospection(valid=False, reason="invalid_claims")


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


def _refuse_disallowed_fields(
    request: ParticipantTokenRequest, caller: Caller, rule: CallerRule
) -> None:
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


def _room_config(
    request: ParticipantTokenRequest, room: str, rule: CallerRule, media_allow: UrlAllowList
) -> api.RoomConfiguration | None:
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
