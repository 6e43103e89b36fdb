"""LiveKit AccessTokens as JWTs: signing them fast, and verifying them against a keyring.

`SignedAccessToken` is livekit-api's `AccessToken` builder whose `sign()` writes the very
claims `AccessToken.to_jwt` writes (same names, same order, same omissions) and signs them
with PyJWT, without livekit-api's `dataclasses.asdict` round trip; the claim names are
LiveKit's (https://docs.livekit.io/home/get-started/authentication/). HS256 secrets are
prepared once per process (`PreparedKeyJWT`, `check_hs256_signature`, used for webhooks
and the gateway too). `verify_with_keyring` and `introspect` check a token LiveKit would
accept. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
from typing import Any

import jwt
from google.protobuf.json_format import MessageToDict
from jwt.algorithms import HMACAlgorithm
from jwt.types import Options
from livekit import api

from app.core.jsonbytes import compact_json
from schemas.tokens import TokenIntrospection


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
    by `app.core.jsonbytes.compact_json` (livekit-api's bytes for printable ASCII, UTF-8 where
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
