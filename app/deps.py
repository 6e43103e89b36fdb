"""FastAPI dependencies as `Annotated` aliases; tests replace them with
`app.dependency_overrides[...]`.

- `SettingsDep`: the app's `Settings`;
- `LiveKitDep`: the `LiveKit` gateway owned by the lifespan;
- `StoreDep`: the `Store` (database engine and sessions, see `app.store`) owned by the lifespan;
- `CallerDep`: the service key of an `Authorization: Bearer` caller (401 otherwise);
- `Scoped(scope)`: a `CallerDep` that also holds `scope` (403 naming it otherwise);
- `TokenCallerDep`: who asks `/v1/token` for a token, rate-limited per caller.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse as parse_rate
from limits.aio.strategies import MovingWindowRateLimiter

from app.auth import EndUserVerifier, Scope, ServiceKey, find_service_key, require_scope
from app.errors import RateLimited, Unauthorized
from app.livekit import LiveKit
from app.settings import Settings
from app.store import Store
from app.tokens import Caller, CallerRule, TokenPolicy, rule_for

_bearer = HTTPBearer(auto_error=False, description="A service key, or on /v1/token an end-user JWT")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_settings(request: Request) -> Settings:
    """The settings `create_app` was given."""
    settings: Settings = request.app.state.settings
    return settings


def get_livekit(request: Request) -> LiveKit:
    """The gateway the lifespan opened."""
    livekit: LiveKit = request.app.state.livekit
    return livekit


def get_store(request: Request) -> Store:
    """The store the lifespan opened and migrated."""
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveKitDep = Annotated[LiveKit, Depends(get_livekit)]
StoreDep = Annotated[Store, Depends(get_store)]


def get_caller(settings: SettingsDep, bearer: BearerDep) -> ServiceKey:
    """The configured service key the caller presented; `Unauthorized` (401) otherwise."""
    if bearer is None:
        raise Unauthorized("a service key is required: Authorization: Bearer <key>")
    key = find_service_key(bearer.credentials, settings.service_keys)
    if key is None:
        raise Unauthorized("unknown service key", code="invalid_service_key")
    return key


CallerDep = Annotated[ServiceKey, Depends(get_caller)]


class _ScopeCheck:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, key: CallerDep) -> ServiceKey:
        require_scope(key, self.scope)
        return key


def Scoped(scope: Scope) -> Any:  # noqa: N802 - reads as a type in signatures
    """`Annotated[ServiceKey, ...]` for a caller that must hold `scope`."""
    return Annotated[ServiceKey, Depends(_ScopeCheck(scope))]


# One alias per scope: a route names the scope it needs in its signature.
TokensIssueCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.TOKENS_ISSUE))]
RoomsReadCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.ROOMS_READ))]
RoomsWriteCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.ROOMS_WRITE))]
EgressWriteCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.EGRESS_WRITE))]
IngressWriteCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.INGRESS_WRITE))]
SipWriteCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.SIP_WRITE))]
DispatchWriteCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.DISPATCH_WRITE))]
WebhooksReadCaller = Annotated[ServiceKey, Depends(_ScopeCheck(Scope.WEBHOOKS_READ))]


async def get_token_caller(
    request: Request, settings: SettingsDep, bearer: BearerDep
) -> tuple[Caller, CallerRule]:
    """Who asks `/v1/token` and the rule that applies, after the caller's rate limit.

    A bearer credential is a service key (with `tokens:issue`) or an end-user JWT; none
    is an anonymous caller, known by client address. Raises 401, 403 or 429.
    """
    policy = settings.effective_token_policy
    caller = await _identify(request, settings, policy, bearer)
    rule = rule_for(policy, caller)
    await _enforce_rate_limit(request, caller, rule)
    return caller, rule


async def _identify(
    request: Request,
    settings: Settings,
    policy: TokenPolicy,
    bearer: HTTPAuthorizationCredentials | None,
) -> Caller:
    if bearer is None:
        if policy.anonymous is None:
            raise Unauthorized("a service key or an end-user token is required")
        host = request.client.host if request.client else "unknown"
        return Caller(kind="anonymous", name=host)
    key = find_service_key(bearer.credentials, settings.service_keys)
    if key is not None:
        require_scope(key, Scope.TOKENS_ISSUE)
        return Caller(kind="service_key", name=key.name)
    verifier: EndUserVerifier | None = request.app.state.end_user_verifier
    if verifier is None:
        raise Unauthorized("unknown service key, and no end-user JWTs are configured")
    claims = await verifier.verify(bearer.credentials)
    return Caller(kind="end_user", name=str(claims["sub"]), identity=str(claims["sub"]))


async def _enforce_rate_limit(request: Request, caller: Caller, rule: CallerRule) -> None:
    limiter: MovingWindowRateLimiter = request.app.state.rate_limiter
    limit = parse_rate(rule.rate_limit)
    if not await limiter.hit(limit, "token", caller.rate_key):
        stats = await limiter.get_window_stats(limit, "token", caller.rate_key)
        retry_after = int(stats.reset_time - time.time()) + 1
        raise RateLimited(f"rate limit {rule.rate_limit} exceeded", retry_after=retry_after)


TokenCallerDep = Annotated[tuple[Caller, CallerRule], Depends(get_token_caller)]
