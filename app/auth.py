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
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from app.errors import Forbidden, Unauthorized, UpstreamUnavailable


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
    ADMIN = "admin"


#: Scopes a scope includes besides itself: a write scope of a service includes reading it
#: (contract: "`rooms:write` may read rooms"). `admin` includes every scope.
IMPLIED_SCOPES: dict[Scope, frozenset[Scope]] = {
    Scope.ROOMS_WRITE: frozenset({Scope.ROOMS_READ}),
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

    `issuer` and `audience` are what a token's `iss` and `aud` must be; production refuses
    to start without them (`app.settings`). A token that carries an `aud` is refused when it
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

        `exp` and `sub` are required, and `iss`/`aud` when an issuer/audience is configured;
        an `aud` other than ours is refused whether or not one is configured (PyJWT refuses
        a token with an `aud` when no audience is expected, RFC 7519 §4.1.3).
        Raises `UpstreamUnavailable` when the JWKS cannot be fetched.
        """
        required = ["exp", "sub"]
        required += ["iss"] if self.config.issuer else []
        required += ["aud"] if self.config.audience else []
        try:
            key, algorithms = await self._key_for(token)
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

    async def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if self.config.hs256_secret:
            return self.config.hs256_secret.get_secret_value(), ["HS256"]
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
