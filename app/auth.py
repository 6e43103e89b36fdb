"""Who is calling: service keys with scopes, and end-user JWTs from the app's identity provider.

Service keys are configured in SERVICE_KEYS and compared in constant time
(`hmac.compare_digest` against every key, no early exit). End-user JWTs are verified
with a JWKS URL (fetched with httpx, cached) or a shared HS256 secret; their `sub`
becomes the participant identity on `/v1/token`.
"""

from __future__ import annotations

import hmac
import time
from enum import StrEnum
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.errors import Forbidden, Unauthorized, UpstreamUnavailable


class Scope(StrEnum):
    """What a service key may do (contract: Authentication of callers)."""

    TOKENS_ISSUE = "tokens:issue"
    ROOMS_READ = "rooms:read"
    ROOMS_WRITE = "rooms:write"
    EGRESS_WRITE = "egress:write"
    INGRESS_WRITE = "ingress:write"
    SIP_WRITE = "sip:write"
    DISPATCH_WRITE = "dispatch:write"
    WEBHOOKS_READ = "webhooks:read"
    SESSIONS_READ = "sessions:read"
    ADMIN = "admin"


class ServiceKey(BaseModel):
    """One configured key: `name` (logged, never the key), `key`, `scopes`."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    key: str = Field(min_length=1, repr=False)
    scopes: frozenset[Scope] = frozenset()

    def allows(self, scope: Scope) -> bool:
        """True when this key holds `scope` or `admin`."""
        return scope in self.scopes or Scope.ADMIN in self.scopes


def find_service_key(presented: str, keys: list[ServiceKey]) -> ServiceKey | None:
    """The configured key equal to `presented`, compared in constant time against all keys."""
    found: ServiceKey | None = None
    for candidate in keys:
        if hmac.compare_digest(candidate.key.encode(), presented.encode()):
            found = candidate
    return found


def require_scope(key: ServiceKey, scope: Scope) -> None:
    """Raise `Forbidden` (403, code `missing_scope`) naming `scope` when `key` lacks it."""
    if not key.allows(scope):
        raise Forbidden(
            f"service key {key.name!r} lacks the scope {scope.value!r}", code="missing_scope"
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
    """How end-user JWTs are verified: a JWKS URL or an HS256 secret, plus iss/aud checks."""

    model_config = ConfigDict(extra="forbid")

    jwks_url: str | None = None
    hs256_secret: str | None = Field(default=None, repr=False)
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = ["RS256", "ES256", "EdDSA"]
    jwks_cache_seconds: int = 300

    @model_validator(mode="after")
    def _one_source(self) -> EndUserAuth:
        if bool(self.jwks_url) == bool(self.hs256_secret):
            raise ValueError("end_users needs exactly one of jwks_url or hs256_secret")
        return self


class EndUserVerifier:
    """Verifies end-user JWTs (RFC 7519) and returns their claims.

    With `jwks_url` the key set (RFC 7517) is fetched over HTTP, cached for
    `jwks_cache_seconds`, and fetched again at most once per minute for an unknown `kid`.
    """

    def __init__(self, config: EndUserAuth, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._jwks: jwt.PyJWKSet | None = None
        self._fetched_at = 0.0

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; raises `Unauthorized` (code `invalid_user_token`) otherwise.

        `sub` is required. Raises `UpstreamUnavailable` when the JWKS cannot be fetched.
        """
        try:
            key, algorithms = await self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=algorithms,
                issuer=self.config.issuer,
                audience=self.config.audience,
                options={"require": ["exp", "sub"], "verify_aud": bool(self.config.audience)},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"end-user token refused: {exc}", code="invalid_user_token") from exc
        return claims

    async def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if self.config.hs256_secret:
            return self.config.hs256_secret, ["HS256"]
        kid = jwt.get_unverified_header(token).get("kid")
        jwks = await self._key_set(refresh=False)
        if kid not in {k.key_id for k in jwks.keys} and time.monotonic() - self._fetched_at > 60:
            jwks = await self._key_set(refresh=True)
        for jwk in jwks.keys:
            if jwk.key_id == kid or (kid is None and len(jwks.keys) == 1):
                return jwk.key, self.config.algorithms
        raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the JWKS")

    async def _key_set(self, *, refresh: bool) -> jwt.PyJWKSet:
        stale = time.monotonic() - self._fetched_at > self.config.jwks_cache_seconds
        if self._jwks is None or stale or refresh:
            assert self.config.jwks_url
            try:
                response = await self._http.get(self.config.jwks_url)
                response.raise_for_status()
                self._jwks = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                raise UpstreamUnavailable(
                    f"cannot fetch the JWKS from {self.config.jwks_url}: {exc}",
                    code="jwks_unavailable",
                ) from exc
            self._fetched_at = time.monotonic()
        return self._jwks
