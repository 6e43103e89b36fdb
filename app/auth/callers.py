"""Who is calling: service keys with scopes, and end-user JWTs from the app's identity provider.

Service keys are configured in SERVICE_KEYS and compared in constant time
(`hmac.compare_digest` against every key, no early exit). End-user JWTs are verified
with a JWKS URL (fetched with httpx, read by PyJWT's `PyJWKSet`, cached, see
`EndUserVerifier`) or a shared HS256 secret; their `sub` becomes the participant identity
on `/v1/token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import time
import urllib.parse
from enum import StrEnum
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from app.core.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)


class Scope(StrEnum):
    """What a service key may do (contract: Authentication of callers)."""

    TOKENS_ISSUE = "tokens:issue"
    TOKENS_ADMIN = "tokens:admin"
    ROOMS_READ = "rooms:read"
    ROOMS_WRITE = "rooms:write"
    EGRESS_WRITE = "egress:write"
    INGRESS_WRITE = "ingress:write"
    SIP_WRITE = "sip:write"
    DISPATCH_WRITE = "dispatch:write"
    WEBHOOKS_READ = "webhooks:read"
    SESSIONS_READ = "sessions:read"
    RECORDINGS_READ = "recordings:read"
    RECORDINGS_WRITE = "recordings:write"
    ADMIN = "admin"


#: Scopes a scope includes besides itself: a write scope of a service includes reading it
#: (contract: "`rooms:write` may read rooms"). `admin` includes every scope.
IMPLIED_SCOPES: dict[Scope, frozenset[Scope]] = {
    Scope.ROOMS_WRITE: frozenset({Scope.ROOMS_READ}),
    Scope.RECORDINGS_WRITE: frozenset({Scope.RECORDINGS_READ}),
}


class ServiceKey(BaseModel):
    """One configured key: `name` (logged, never the key), `key` (a `SecretStr`: never in a
    repr, an error message or a log line), `scopes`."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str = Field(min_length=1)
    key: SecretStr = Field(min_length=1)
    scopes: frozenset[Scope] = frozenset()

    def allows(self, scope: Scope) -> bool:
        """True when this key holds `scope`, `admin`, or a scope that includes `scope`
        (`IMPLIED_SCOPES`)."""
        if scope in self.scopes or Scope.ADMIN in self.scopes:
            return True
        return any(scope in IMPLIED_SCOPES.get(held, ()) for held in self.scopes)


def find_service_key(presented: str, keys: list[ServiceKey]) -> ServiceKey | None:
    """The configured key equal to `presented`, compared in constant time against all keys."""
    found: ServiceKey | None = None
    for candidate in keys:
        if hmac.compare_digest(candidate.key.get_secret_value().encode(), presented.encode()):
            found = candidate
    return found


def authenticate_service_key(credential: str | None, keys: list[ServiceKey]) -> ServiceKey:
    """The configured service key that `credential` (an `Authorization: Bearer` credential,
    `bearer_credential`) presents. Raises `Unauthorized` (401): none presented, or
    `invalid_service_key` for one that is not configured. The one check of a service key:
    `app.http.middleware` runs it before the body is read, `app.http.deps.get_caller`
    after."""
    if credential is None:
        raise Unauthorized("a service key is required: Authorization: Bearer <key>")
    key = find_service_key(credential, keys)
    if key is None:
        raise Unauthorized("unknown service key", code="invalid_service_key")
    return key


def require_scope(key: ServiceKey, scope: Scope, *alternatives: Scope) -> None:
    """Raise `Forbidden` (403, code `missing_scope`, member `scope`) naming `scope` when `key`
    holds neither it nor any of `alternatives` (e.g. a service's write scope, which includes
    reading that service)."""
    if not any(key.allows(s) for s in (scope, *alternatives)):
        raise Forbidden(
            f"service key {key.name!r} lacks the scope {scope.value!r}",
            code="missing_scope",
            extra={"scope": scope.value},
        )


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <x>` header (RFC 6750 §2.1), else None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


class EndUserAuth(BaseModel):
    """How end-user JWTs are verified: a JWKS URL or an HS256 secret, plus iss/aud checks.

    `algorithms` are those a JWKS key may verify (public-key ones only: a JWKS is public);
    with `hs256_secret` the algorithm is HS256.

    `issuer` and `audience` are what a token's `iss` and `aud` must be; production refuses
    to start without them (`app.config.settings`). A token that carries an `aud` is refused when it
    is not `audience`, also when no audience is configured (fail closed).
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    jwks_url: str | None = None
    hs256_secret: SecretStr | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = ["RS256", "ES256", "EdDSA"]
    jwks_cache_seconds: int = 300

    @model_validator(mode="after")
    def _one_source(self) -> EndUserAuth:
        if bool(self.jwks_url) == bool(self.hs256_secret):
            raise ValueError("end_users needs exactly one of jwks_url or hs256_secret")
        symmetric = [a for a in self.algorithms if a.upper().startswith("HS") or a == "none"]
        if self.jwks_url and symmetric:
            # a JWKS is public: a symmetric key in it would let anyone sign end-user tokens
            raise ValueError(
                "end_users.algorithms must be public-key algorithms (RS, PS, ES, EdDSA)"
            )
        return self


#: After a failed fetch of the JWKS, for how long callers are refused at once, without
#: another fetch (seconds): an identity provider that is down is not asked once per request.
JWKS_RETRY_SECONDS = 5.0
#: How soon after the last fetch the JWKS may be fetched again for a `kid` it lacks (seconds):
#: a key the identity provider has just added is found, a made-up `kid` costs no fetch.
UNKNOWN_KID_REFETCH_SECONDS = 60.0


class EndUserVerifier:
    """Verifies end-user JWTs (RFC 7519) and returns their claims.

    With `jwks_url` the key set (RFC 7517) is fetched with the service's httpx client and
    read by PyJWT (`PyJWKSet`): each `PyJWK` knows its algorithm (the JWK's `alg`, else the
    one its `kty`/`crv` implies), and PyJWT refuses a token whose header `alg` is not that
    algorithm, or not one of `algorithms` (so no ES256 token checked with an RSA key, no
    `none`, no HS256 token "signed" with a public key). The set is cached for
    `jwks_cache_seconds`; it is fetched again for an unknown `kid` at most once per
    `UNKNOWN_KID_REFETCH_SECONDS`. Fetches are single-flight (concurrent requests share the
    one in progress), and after a failed one callers are refused for `JWKS_RETRY_SECONDS`
    without another. The fetch's failure, with the URL (no userinfo, query or fragment), is
    logged; the caller only learns that the token cannot be verified.
    """

    def __init__(self, config: EndUserAuth, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._keys: jwt.PyJWKSet | None = None
        self._fetched_at = -math.inf  # time.monotonic() of the last successful fetch
        self._failed_at = -math.inf  # time.monotonic() of the last failed fetch
        self._fetch: asyncio.Task[jwt.PyJWKSet] | None = None  # the fetch in progress

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; raises `Unauthorized` (401, code `invalid_user_token`)
        otherwise, also when the JWKS cannot be fetched (the token cannot be verified).

        `exp` and `sub` are required, and `iss`/`aud` when an issuer/audience is configured;
        an `aud` other than ours is refused whether or not one is configured (PyJWT refuses
        a token with an `aud` when no audience is expected, RFC 7519 §4.1.3).
        """
        required = ["exp", "sub"]
        required += ["iss"] if self.config.issuer else []
        required += ["aud"] if self.config.audience else []
        try:
            key: jwt.PyJWK | str
            if self.config.hs256_secret:
                key, algorithms = self.config.hs256_secret.get_secret_value(), ["HS256"]
            else:
                key, algorithms = await self._signing_key(token), self.config.algorithms
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=algorithms,
                issuer=self.config.issuer,
                audience=self.config.audience,
                options={"require": required, "verify_aud": True, "verify_iss": True},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"end-user token refused: {exc}", code="invalid_user_token") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized(
                "end-user token refused: sub is not a string", code="invalid_user_token"
            )
        return claims

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        """The JWK the token's `kid` names (the only key of a one-key set when it names
        none); `jwt.PyJWTError` otherwise."""
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("the token's kid is not a string")
        key = _find_key(await self._key_set(), kid)
        if key is None and time.monotonic() - self._fetched_at >= UNKNOWN_KID_REFETCH_SECONDS:
            with contextlib.suppress(jwt.PyJWKClientConnectionError):  # still an unknown kid
                key = _find_key(await self._key_set(refetch=True), kid)
        if key is None:
            shown = kid[:64] if kid else kid
            raise jwt.InvalidKeyError(f"no signing key with kid {shown!r} in the JWKS")
        return key

    async def _key_set(self, *, refetch: bool = False) -> jwt.PyJWKSet:
        """The cached key set, fetched first when there is none, it is older than
        `jwks_cache_seconds`, or `refetch`; joins a fetch in progress. Raises
        `jwt.PyJWKClientConnectionError` when the fetch fails, or failed less than
        `JWKS_RETRY_SECONDS` ago."""
        now = time.monotonic()
        fresh = now - self._fetched_at < self.config.jwks_cache_seconds
        if self._keys is not None and fresh and not refetch:
            return self._keys
        if self._fetch is None:
            if now - self._failed_at < JWKS_RETRY_SECONDS:
                raise jwt.PyJWKClientConnectionError(_KEYS_UNAVAILABLE)
            self._fetch = asyncio.create_task(self._fetch_key_set(), name="jwks-fetch")
            self._fetch.add_done_callback(self._fetched)
        # shielded: a request that goes away does not cancel the fetch the others wait for
        return await asyncio.shield(self._fetch)

    async def _fetch_key_set(self) -> jwt.PyJWKSet:
        url = self.config.jwks_url
        assert url
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict):
                raise ValueError("the JWKS is not a JSON object")
            keys = jwt.PyJWKSet.from_dict(document)
        except Exception as exc:  # whatever the URL answers, the keys are unavailable
            self._failed_at = time.monotonic()
            log.warning(
                "cannot fetch the end users' JWKS from %s: %s%s",
                shown_url(url),
                exc.__class__.__name__,
                f" {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else "",
            )
            raise jwt.PyJWKClientConnectionError(_KEYS_UNAVAILABLE) from None
        self._keys, self._fetched_at = keys, time.monotonic()
        return keys

    def _fetched(self, task: asyncio.Task[jwt.PyJWKSet]) -> None:
        self._fetch = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters have it, no "never retrieved" warning


_KEYS_UNAVAILABLE = "the identity provider's signing keys cannot be fetched now"


def _find_key(keys: jwt.PyJWKSet, kid: str | None) -> jwt.PyJWK | None:
    """The signing key (`use` absent or `sig`, RFC 7517 §4.2) of `keys` with `kid`, or the
    only signing key when `kid` is None."""
    signing = [k for k in keys.keys if k.public_key_use in (None, "sig")]
    if kid is None:
        return signing[0] if len(signing) == 1 else None
    return next((k for k in signing if k.key_id == kid), None)


def shown_url(url: str) -> str:
    """`url` without userinfo, query and fragment (where secrets may sit), for a log line."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: nothing of it is shown
        return "<a URL that cannot be parsed>"
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
