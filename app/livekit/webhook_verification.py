"""A LiveKit webhook request checked before anything is stored (pure: no store, no I/O):
its signature against the keyring (`verify_signature`), its content type
(`check_content_type`), and its body read as a `WebhookEvent` and the columns of its row
(`parse_event`). `app.events.webhooks` ingests what passes and reads stored events back.

How LiveKit signs a webhook (https://docs.livekit.io/home/server/webhooks/; livekit-api's
`WebhookReceiver` checks the same): the `Authorization` header carries a JWT (HS256)
issued by one of the API keys (`iss` = the key) with a `sha256` claim holding the standard
base64 of the SHA-256 of the exact body bytes. Here PyJWT checks the JWT's times (`exp`
required, 1 minute of leeway as livekit-api's `TokenVerifier`) and then its HS256
signature with the secret of the key its `iss` names (LIVEKIT_API_KEY plus
LIVEKIT_WEBHOOK_KEYS, so keys can rotate), and the body hash is compared in constant time
on the raw bytes (`WebhookReceiver` itself hashes a re-encoded str and compares with `!=`).
Every failure is `Unauthorized` (401, `webhook_signature_invalid`).

What is stored is what every read route serves back: a body with a duplicated JSON key,
an unpaired UTF-16 surrogate anywhere, or a NUL in a value that becomes a column (room
name, identity, egress or ingress id) or such a value over 512 characters (PostgreSQL
cannot index it) is refused with 400, never stored (PostgreSQL text
cannot hold a NUL, JSON responses cannot carry a lone surrogate, and a duplicated key
would be read back differently by another parser). A NUL elsewhere (e.g. in metadata)
is stored as the `\u0000` escape LiveKit sent and served back as such.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
from typing import Any

import jwt
from jwt.types import Options
from livekit.protocol.webhook import WebhookEvent

from app.auth.callers import bearer_credential
from app.core.errors import BadRequest, Unauthorized, UnsupportedMediaType
from app.livekit.access_tokens import PreparedKeyJWT, check_hs256_signature
from schemas.protojson import from_livekit_json

#: Content types LiveKit posts with (it uses the first).
ACCEPTED_CONTENT_TYPES = frozenset({"application/webhook+json", "application/json"})
#: Longest event `id` / `event` type stored.
MAX_ID_LENGTH = 255
#: Longest room name, identity, egress or ingress id stored as a column (characters; at
#: 4 bytes each still below PostgreSQL's 2704-byte limit on a B-tree index entry).
MAX_COLUMN_LENGTH = 512

SIGNATURE_INVALID = "webhook_signature_invalid"
#: Clock skew allowed on a webhook token's `exp`/`nbf` (livekit-api's `TokenVerifier` default).
WEBHOOK_LEEWAY = dt.timedelta(minutes=1)


def check_content_type(content_type: str | None) -> None:
    """Accept `application/webhook+json` and `application/json` (parameters such as
    `charset` ignored); `UnsupportedMediaType` (415) otherwise."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}, got {media_type!r}"
        )


def verify_signature(body: bytes, authorization: str | None, keyring: dict[str, str]) -> str:
    """Check that `authorization` (a JWT, optionally after `Bearer `) was issued by a key in
    `keyring` (API key -> secret), is current (LiveKit's 1 minute of leeway), and carries
    `sha256` = base64(SHA-256(`body`)).

    Returns the API key that signed it. Raises `Unauthorized` (401,
    `webhook_signature_invalid`) for a missing header, a token `verify_with_keyring`
    rejects, or a missing, malformed or mismatched `sha256` claim.
    """
    token = bearer_credential(authorization) or (authorization or "").strip()
    if not token:
        raise _invalid("no Authorization header")
    claims = _verified_claims(token, keyring)
    sha256 = claims.get("sha256")
    if not isinstance(sha256, str) or not sha256:
        raise _invalid("the token has no sha256 claim")
    try:
        claimed = base64.b64decode(sha256, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("the token's sha256 claim is not base64") from None
    if not hmac.compare_digest(hashlib.sha256(body).digest(), claimed):
        raise _invalid("the body does not match the token's sha256 claim")
    return str(claims["iss"])


def _verified_claims(token: str, keyring: dict[str, str]) -> dict[str, Any]:
    """The claims of a webhook token that one key of `keyring` signed, current and with an
    `exp`; `Unauthorized` saying what failed otherwise.

    The first key (the main one, `Settings.keyring`) is tried in one pass: PyJWT checks the
    signature and times together, and `iss` must name that key. Any other token takes two
    passes, the second only once `iss` has named a key: times first, then the signature
    with that key's secret (this also says precisely what failed).
    """
    if keyring:
        key, secret = next(iter(keyring.items()))
        with contextlib.suppress(jwt.PyJWTError):
            signed: dict[str, Any] = _ONE_PASS.decode(
                token, secret, algorithms=["HS256"], leeway=WEBHOOK_LEEWAY
            )
            if signed.get("iss") == key:
                return signed
    try:
        claims: dict[str, Any] = jwt.decode(token, options=_TIMES_ONLY, leeway=WEBHOOK_LEEWAY)
    except jwt.ExpiredSignatureError:
        raise _invalid("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise _invalid("the token is not valid yet") from None
    except jwt.PyJWTError as exc:
        raise _invalid(f"the token is not a LiveKit JWT ({exc.__class__.__name__})") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer not in keyring:
        shown = issuer[:64] if isinstance(issuer, str) else issuer
        raise _invalid(f"the issuer {shown!r} is not a configured API key")
    try:
        check_hs256_signature(token, keyring[issuer])
    except jwt.PyJWTError:
        raise _invalid("the signature does not match the key") from None
    return claims


#: PyJWT checking a webhook token in one pass with a known key: the signature, the times
#: and `exp` are what the two passes check (`_TIMES_ONLY`, then the signature); no other
#: claim is looked at.
_ONE_PASS = PreparedKeyJWT(
    {
        "verify_aud": False,
        "verify_iat": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": ["exp"],
    }
)


#: PyJWT options for the first pass over a webhook token: times and `exp` checked, the
#: signature checked next, once the key is known from `iss`.
_TIMES_ONLY: Options = {
    "verify_signature": False,
    "verify_exp": True,
    "verify_nbf": True,
    "require": ["exp"],
}


def _invalid(detail: str) -> Unauthorized:
    return Unauthorized(f"webhook refused: {detail}", code=SIGNATURE_INVALID)


def parse_event(body: bytes) -> tuple[WebhookEvent, dict[str, Any]]:
    """The body (UTF-8 JSON) as a LiveKit `WebhookEvent` (protojson, read by
    `from_livekit_json`: unknown fields ignored, so newer LiveKit versions and unknown event
    types are accepted) and as the columns of its `webhook_events` row (`body` is the text
    exactly as received).

    Raises `BadRequest` (400, `webhook_malformed`) when the body is not a JSON object that
    protobuf accepts as a `WebhookEvent`, lacks a usable `id` or `event`, repeats a key,
    carries an unpaired surrogate, or a NUL in a column value or one over
    `MAX_COLUMN_LENGTH` (see the module doc).
    """
    try:
        text = body.decode("utf-8")
        data = _JSON.decode(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if "\\u" in text and has_lone_surrogate(data):  # only escapes can make one
            raise ValueError("a string holds an unpaired UTF-16 surrogate")
        event = from_livekit_json(data, WebhookEvent)
    except Exception as exc:  # whatever JSON or protobuf refuse is the sender's error, a 400
        raise _malformed(f"the body is not a LiveKit WebhookEvent: {str(exc)[:200]}") from None
    for name, value in (("id", event.id), ("event", event.event)):
        if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
            raise _malformed(
                f"the event has no usable {name!r} (1 to {MAX_ID_LENGTH} printable characters)"
            )
    columns = _columns(event)
    for name in _TEXT_COLUMNS:
        if "\x00" in (columns[name] or ""):
            raise _malformed(f"the event's {name} contains a NUL character")
        if len(columns[name] or "") > MAX_COLUMN_LENGTH:
            raise _malformed(f"the event's {name} is over {MAX_COLUMN_LENGTH} characters")
    return event, {**columns, "body": text}


#: Columns taken from string fields of the payload (`_columns`).
_TEXT_COLUMNS = ("room_name", "participant_identity", "egress_id", "ingress_id")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _malformed(detail: str) -> BadRequest:
    return BadRequest(detail, code="webhook_malformed")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` hook: an object, unless a key repeats (RFC 8259 §4 leaves the meaning
    of a repeated name to each parser, so it is refused: `ValueError`)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("a JSON object repeats a key")
    return data


#: The body's JSON decoder, built once (`json.loads` with a hook builds one per call).
_JSON = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys)


def has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a surrogate code point in any key or string
    (`json` joins escaped pairs, so any left is unpaired)."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def _columns(event: WebhookEvent) -> dict[str, Any]:
    received_at = dt.datetime.now(dt.UTC)
    created_at = (
        dt.datetime.fromtimestamp(event.created_at, dt.UTC)
        if 0 < event.created_at < 253402300800  # before year 10000
        else received_at
    )
    room_name = (
        event.room.name or event.egress_info.room_name or event.ingress_info.room_name or None
    )
    return {
        "id": event.id,
        "event": event.event,
        "room_name": room_name,
        "participant_identity": event.participant.identity or None,
        "egress_id": event.egress_info.egress_id or None,
        "ingress_id": event.ingress_info.ingress_id or None,
        "created_at": created_at,
        "received_at": received_at,
    }
