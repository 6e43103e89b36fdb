"""FastAPI dependencies as `Annotated` aliases; tests replace them with
`app.dependency_overrides[...]`. All are `async def` (none blocks), so FastAPI calls them
on the event loop instead of handing each to a worker thread.

- `SettingsDep`: the app's `Settings`;
- `LiveKitDep`: the `LiveKit` gateway owned by the lifespan;
- `StoreDep`: the `Store` (database engine and repositories, see `app.store`) owned by the lifespan;
- `EventFollowerDep`: the event streams' `EventFollower` (`app.events.streams`) owned by the
lifespan;
- `RecordingsBucketDep`: the recordings bucket (`app.events.recordings`), None when not
  configured;
- `CallerDep`: the service key of an `Authorization: Bearer` caller (401 otherwise);
- `RoomsReadCaller`, `RoomsWriteCaller` ... (one per scope; a LiveKit service's from its
  row in `app.livekit.services`): a `CallerDep` that also holds that scope (403 naming it
  otherwise);
- `TokenCallerDep`: who asks `/v1/token` for a token, rate-limited per caller (the
  authentication half, `authenticate_token_caller`, also runs before the body is read);
- `IdempotencyDep`: runs a create route's operation once per `Idempotency-Key`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf.message import Message as ProtoMessage
from limits import RateLimitItem
from limits import parse as parse_rate
from pydantic import BaseModel
from starlette.types import Scope as ASGIScope

from app.auth.callers import (
    EndUserVerifier,
    Scope,
    ServiceKey,
    authenticate_service_key,
    bearer_credential,
    find_service_key,
    require_scope,
)
from app.auth.policy import Caller, CallerRule, rule_for
from app.config.settings import Settings
from app.core.errors import RateLimited, Unauthorized
from app.events.recordings import RecordingsBucket
from app.events.streams import EventFollower
from app.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.http.idempotency import (
    REPLAYED_HEADER,
    IdempotencyPolicy,
    check_key,
    request_fingerprint,
    run_once,
)
from app.http.ratelimits import RateLimiter
from app.livekit.gateway import LiveKit
from app.livekit.services import DISPATCH, EGRESS, INGRESS, ROOMS, SIP, LiveKitService
from app.store.engine import Store
from schemas.bridge import to_json

_bearer = HTTPBearer(auto_error=False, description="A service key, or on /v1/token an end-user JWT")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_settings(request: Request) -> Settings:
    """The settings `create_app` was given."""
    settings: Settings = request.app.state.settings
    return settings


async def get_livekit(request: Request) -> LiveKit:
    """The gateway the lifespan opened."""
    livekit: LiveKit = request.app.state.livekit
    return livekit


async def get_store(request: Request) -> Store:
    """The store the lifespan opened and migrated."""
    store: Store = request.app.state.store
    return store


async def get_event_follower(request: Request) -> EventFollower:
    """The event follower the lifespan started (the streams' reader of the store)."""
    follower: EventFollower = request.app.state.event_follower
    return follower


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveKitDep = Annotated[LiveKit, Depends(get_livekit)]
StoreDep = Annotated[Store, Depends(get_store)]
EventFollowerDep = Annotated[EventFollower, Depends(get_event_follower)]


async def get_recordings_bucket(request: Request) -> RecordingsBucket | None:
    """The recordings bucket (`RECORDINGS_S3_*`) the lifespan built, or None when unset."""
    bucket: RecordingsBucket | None = request.app.state.recordings_bucket
    return bucket


RecordingsBucketDep = Annotated[RecordingsBucket | None, Depends(get_recordings_bucket)]


async def get_caller(request: Request, bearer: BearerDep) -> ServiceKey:
    """The configured service key the caller presented; `Unauthorized` (401) otherwise.
    Its name (never the key) is kept as `request.state.caller` for the access log.

    Every service route depends on it: it reads the settings itself (no `SettingsDep` to
    solve per request); `bearer` stays a dependency, which documents the routes' security
    scheme in OpenAPI."""
    settings: Settings = request.app.state.settings
    credential = None if bearer is None else bearer.credentials
    key = authenticate_service_key(credential, settings.service_keys)
    request.state.caller = key.name
    return key


CallerDep = Annotated[ServiceKey, Depends(get_caller)]


class ScopeCheck:
    """A dependency admitting a caller holding `scope` or one of `alternatives` (its
    `scopes`, in that order); 403 naming `scope` otherwise."""

    def __init__(self, scope: Scope, *alternatives: Scope) -> None:
        self.scopes = (scope, *alternatives)

    async def __call__(self, key: CallerDep) -> ServiceKey:
        require_scope(key, *self.scopes)
        return key


def reads(service: LiveKitService) -> ScopeCheck:
    """The check of a `service` read route: `service.read_scopes`, a 403 naming its
    `read_scope`."""
    return ScopeCheck(*service.read_scopes)


def writes(service: LiveKitService) -> ScopeCheck:
    """The check of a `service` write route: its `write_scope`."""
    return ScopeCheck(service.write_scope)


# One alias per scope: a route names the scope it needs in its signature. The LiveKit
# services' aliases come from their rows in `app.livekit.services.LIVEKIT_SERVICES` (declared here,
# one by one, so that mypy reads them as types): a read needs the service's read scope
# (`rooms:read`) or its write scope; `rooms:write` also includes `rooms:read` for every
# service (app.auth.callers.IMPLIED_SCOPES).
TokensAdminCaller = Annotated[ServiceKey, Depends(ScopeCheck(Scope.TOKENS_ADMIN))]
RoomsReadCaller = Annotated[ServiceKey, Depends(reads(ROOMS))]
RoomsWriteCaller = Annotated[ServiceKey, Depends(writes(ROOMS))]
DispatchReadCaller = Annotated[ServiceKey, Depends(reads(DISPATCH))]
DispatchWriteCaller = Annotated[ServiceKey, Depends(writes(DISPATCH))]
EgressReadCaller = Annotated[ServiceKey, Depends(reads(EGRESS))]
EgressWriteCaller = Annotated[ServiceKey, Depends(writes(EGRESS))]
IngressReadCaller = Annotated[ServiceKey, Depends(reads(INGRESS))]
IngressWriteCaller = Annotated[ServiceKey, Depends(writes(INGRESS))]
SipReadCaller = Annotated[ServiceKey, Depends(reads(SIP))]
SipWriteCaller = Annotated[ServiceKey, Depends(writes(SIP))]
WebhooksReadCaller = Annotated[ServiceKey, Depends(ScopeCheck(Scope.WEBHOOKS_READ))]
SessionsReadCaller = Annotated[ServiceKey, Depends(ScopeCheck(Scope.SESSIONS_READ))]
RecordingsReadCaller = Annotated[ServiceKey, Depends(ScopeCheck(Scope.RECORDINGS_READ))]
RecordingsWriteCaller = Annotated[ServiceKey, Depends(ScopeCheck(Scope.RECORDINGS_WRITE))]


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


class Idempotent:
    """Runs a create route's operation under its `Idempotency-Key` (see `app.http.idempotency`).

    A handler returns `await idempotent.run(lambda: some_service_call(...))`: the call's
    result (a protobuf message, a pydantic model or JSON data) is rendered with the route's
    `response_model` and `status_code`; with a key, a retry gets the stored response
    (`Idempotent-Replayed: true`) instead of a second call, and the route answers 409 as
    `app.http.idempotency.run_once` says. Without the header the call simply runs.
    """

    def __init__(
        self, request: Request, store: Store, settings: Settings, caller: str, key: str | None
    ) -> None:
        self.request = request
        self.store = store
        self.settings = settings
        self.caller = caller
        self.key = key

    async def run(self, operation: Callable[[], Awaitable[Any]]) -> Response:
        """The route's response for `operation`, run at most once per key (see class doc)."""

        async def produce() -> tuple[int, bytes]:
            return self._status(), self._render(await operation())

        if self.key is None:
            status, body = await produce()
            return Response(body, status_code=status, media_type="application/json")
        body_bytes = await self.request.body()
        target = self.request.url.path
        if self.request.url.query:
            target += f"?{self.request.url.query}"
        stored = await run_once(
            self.store,
            IdempotencyPolicy.from_settings(self.settings),
            caller=self.caller,
            key=self.key,
            fingerprint=request_fingerprint(self.request.method, target, body_bytes),
            operation=produce,
        )
        headers = {REPLAYED_HEADER: "true"} if stored.replayed else None
        return Response(
            stored.body, status_code=stored.status, headers=headers, media_type="application/json"
        )

    def _status(self) -> int:
        route = self.request.scope.get("route")
        return int(getattr(route, "status_code", None) or 200)

    def _render(self, result: Any) -> bytes:
        """`result` as the route's `response_model` would send it, as JSON bytes."""
        if isinstance(result, ProtoMessage):
            result = to_json(result)
        route = self.request.scope.get("route")
        model = getattr(route, "response_model", None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            validated = result if isinstance(result, model) else model.model_validate(result)
            return validated.model_dump_json(
                by_alias=True,
                exclude_unset=bool(getattr(route, "response_model_exclude_unset", False)),
                exclude_none=bool(getattr(route, "response_model_exclude_none", False)),
            ).encode()
        return json.dumps(jsonable_encoder(result), ensure_ascii=False).encode()


async def get_idempotent(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="Retry-safe create: the same key and body within 24 h return the "
            "first response without creating again; another body with the key is 409.",
        ),
    ] = None,
) -> Idempotent:
    """The `Idempotent` runner for this request; 400 `invalid_idempotency_key` for a key
    that is not 1 to 255 visible ASCII characters."""
    key = check_key(idempotency_key) if idempotency_key is not None else None
    return Idempotent(request, store, settings, caller.name, key)


IdempotencyDep = Annotated[Idempotent, Depends(get_idempotent)]
