"""The caller of `/v1/token` as a FastAPI dependency (`TokenCallerDep`): who asks for a
token (anonymous by client address, a service key, or an end user by JWT), the token
policy's rule for it, and its rate limit.

The authentication half, `authenticate_token_caller`, is decided once per request and also
runs before the body is read (`app.http.middleware`); `get_token_caller` adds the
`tokens:issue` scope of a service key (403), the policy's rule (403) and the rate limit
(429, `app.http.ratelimits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItem
from limits import parse as parse_rate
from starlette.types import Scope as ASGIScope

from app.auth.callers import (
    EndUserVerifier,
    Scope,
    ServiceKey,
    bearer_credential,
    find_service_key,
    require_scope,
)
from app.auth.policy import Caller, CallerRule, rule_for
from app.config.settings import Settings
from app.core.errors import RateLimited, Unauthorized
from app.http.ratelimits import RateLimiter


@dataclass(frozen=True, slots=True)
class TokenCall:
    """What `get_token_caller` found: the `caller`, its policy `rule` and the `settings`."""

    caller: Caller
    rule: CallerRule
    settings: Settings


async def get_token_caller(request: Request) -> TokenCall:
    """Who asks `/v1/token`, the rule that applies and the settings, after the caller's
    rate limit.

    The caller is `authenticate_token_caller`'s (401), decided once per request, before the
    body is read (`app.http.middleware`); here a service key must also hold `tokens:issue`
    (403), the policy must have a rule for the caller (403) and the rate limit must allow
    the request (429).

    The hottest route of the service: one dependency that reads the settings itself (no
    `SettingsDep`/`BearerDep` sub-dependencies to solve).
    """
    settings: Settings = request.app.state.settings
    caller, key = await authenticate_token_caller(request.scope)
    if key is not None:
        require_scope(key, Scope.TOKENS_ISSUE)
    request.state.caller = caller.rate_key
    rule = rule_for(settings.effective_token_policy, caller)
    await _enforce_rate_limit(request, caller, rule)
    return TokenCall(caller, rule, settings)


#: Where `authenticate_token_caller` keeps its answer: a key of the request's own ASGI
#: scope (not of its `state`, which a server may share between requests: it holds the
#: lifespan's state).
_TOKEN_CALLER_SCOPE_KEY = "app.token_caller"


async def authenticate_token_caller(scope: ASGIScope) -> tuple[Caller, ServiceKey | None]:
    """Who asks `/v1/token` (authentication only), from the request's `Authorization`
    header: with no bearer credential, an anonymous caller known by client address (when
    the token policy admits anonymous callers); a configured service key (the caller and
    the key, whatever its scopes); else an end user whose JWT `EndUserVerifier` verifies
    (its `sub` is the identity). Raises `Unauthorized` (401) for anything else.

    Decided once per request: the answer, a refusal too, is kept in the request's scope,
    so the check `app.http.middleware` makes before the body is read and `get_token_caller`
    after it share one verification.
    """
    known = scope.get(_TOKEN_CALLER_SCOPE_KEY)
    if known is None:
        try:
            known = await _identify(scope)
        except Unauthorized as refusal:
            known = refusal
        scope[_TOKEN_CALLER_SCOPE_KEY] = known
    if isinstance(known, Unauthorized):
        raise known
    caller_and_key: tuple[Caller, ServiceKey | None] = known
    return caller_and_key


async def _identify(scope: ASGIScope) -> tuple[Caller, ServiceKey | None]:
    app_state = scope["app"].state
    settings: Settings = app_state.settings
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    credential = bearer_credential(authorization.decode("latin-1"))
    if credential is None:
        if settings.effective_token_policy.anonymous is None:
            raise Unauthorized("a service key or an end-user token is required")
        client = scope.get("client")
        return Caller(kind="anonymous", name=client[0] if client else "unknown"), None
    key = find_service_key(credential, settings.service_keys)
    if key is not None:
        return Caller(kind="service_key", name=key.name), key
    verifier: EndUserVerifier | None = app_state.end_user_verifier
    if verifier is None:
        raise Unauthorized("unknown service key, and no end-user JWTs are configured")
    claims = await verifier.verify(credential)
    subject = str(claims["sub"])
    return Caller(kind="end_user", name=subject, identity=subject), None


async def _enforce_rate_limit(request: Request, caller: Caller, rule: CallerRule) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    verdict = await limiter.hit(_rate(rule.rate_limit), "token", caller.rate_key)
    if not verdict.allowed:
        raise RateLimited(f"rate limit {rule.rate_limit} exceeded", retry_after=verdict.retry_after)


@lru_cache(maxsize=64)
def _rate(text: str) -> RateLimitItem:
    """`text` (e.g. `10/minute`) parsed once (the policy's few rates, not per request)."""
    return parse_rate(text)


TokenCallerDep = Annotated[TokenCall, Depends(get_token_caller)]
