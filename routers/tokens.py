"""Token routes (contract: Tokens)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from app.deps import SettingsDep, TokenCall, TokenCallerDep, TokensAdminCaller, get_token_caller
from app.tokens import introspect, mint_participant_token, mint_token
from routers.bodies import read_json_body
from schemas.problems import problems
from schemas.tokens import (
    IntrospectRequest,
    IssueTokenRequest,
    IssueTokenResponse,
    ParticipantTokenRequest,
    ParticipantTokenResponse,
    TokenIntrospection,
)

router = APIRouter(prefix="/v1", tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store"}

_PARTICIPANT_TOKEN_BODY: TypeAdapter[ParticipantTokenRequest | None] = TypeAdapter(
    ParticipantTokenRequest | None
)


class ParticipantTokenRoute(APIRoute):
    """The route of `POST /v1/token`, the hottest of the service (every join fetches a token).

    FastAPI documents it from `issue_participant_token`'s signature like any route, but
    serves it without its per-request machinery (dependency solving, its body handling),
    which costs more than the endpoint itself: the handler reads the body as FastAPI does
    (`routers.bodies.read_json_body`: 400 for a body that is not JSON, the same 422
    errors), resolves `TokenCallerDep` by calling `get_token_caller` (or its override in
    `app.dependency_overrides`), then calls the endpoint. A body that is JSON but invalid
    is refused after the caller, as FastAPI orders them: 401, 403 and 429 come first.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            body, invalid = await read_json_body(request, _PARTICIPANT_TOKEN_BODY)
            resolve = request.app.dependency_overrides.get(get_token_caller, get_token_caller)
            call: TokenCall = await resolve(request)
            if invalid is not None:
                raise invalid
            response: Response = await endpoint(call, body)
            return response

        return handle


async def issue_participant_token(
    call: TokenCallerDep,
    body: Annotated[ParticipantTokenRequest | None, Body()] = None,
) -> Response:
    """LiveKit's standard token endpoint: a join token, as far as the token policy allows.

    Served by `ParticipantTokenRoute`. The reply is built as a `ParticipantTokenResponse`
    and sent as its JSON bytes (FastAPI would validate the same model a second time).
    """
    settings = call.settings
    issued = mint_participant_token(
        body or ParticipantTokenRequest(),
        call.caller,
        call.rule,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
    )
    reply = ParticipantTokenResponse(
        server_url=settings.server_url,
        participant_token=issued.token,
        room_name=issued.room,
        participant_identity=issued.identity,
        participant_name=issued.name,
        expires_at=issued.expires_at,
    )
    return Response(
        reply.model_dump_json(), status_code=201, headers=NO_STORE, media_type="application/json"
    )


router.add_api_route(
    "/token",
    issue_participant_token,
    methods=["POST"],
    status_code=201,
    operation_id="issue_participant_token",
    response_model=ParticipantTokenResponse,
    responses=problems(400, 401, 403, 422, 429),
    # The bearer credential is optional here: the token policy may admit anonymous callers.
    openapi_extra={"security": [{}]},
    route_class_override=ParticipantTokenRoute,
)


@router.post(
    "/tokens",
    status_code=201,
    operation_id="issue_token",
    responses=problems(400, 401, 403, 422),
)
async def issue_token(
    body: IssueTokenRequest,
    response: Response,
    settings: SettingsDep,
    _: TokensAdminCaller,
) -> IssueTokenResponse:
    """Any grant LiveKit knows, for trusted backends (scope `tokens:admin`)."""
    issued = mint_token(
        body,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
        max_ttl_seconds=settings.effective_token_policy.max_ttl_seconds,
    )
    response.headers.update(NO_STORE)
    return IssueTokenResponse(
        token=issued.token,
        server_url=settings.server_url,
        identity=issued.identity,
        expires_at=issued.expires_at,
    )


@router.post(
    "/tokens/introspect",
    operation_id="introspect_token",
    response_model_exclude_unset=True,
    responses=problems(400, 401, 403, 422),
)
async def introspect_token(
    body: IntrospectRequest, settings: SettingsDep, _: TokensAdminCaller
) -> TokenIntrospection:
    """Verify a token against the keyring and say what it grants (scope `tokens:admin`)."""
    return introspect(body.token, settings.keyring)
