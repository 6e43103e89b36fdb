"""Token routes (contract: Tokens)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import APIRouter, Body, Request, Response
from pydantic import TypeAdapter

from app.auth.tokens import mint_participant_token, mint_token
from app.http.deps import (
    SettingsDep,
    TokenCall,
    TokenCallerDep,
    TokensAdminCaller,
    get_token_caller,
)
from app.livekit.access_tokens import introspect
from routers.direct import dependency, direct_route, read_json_body
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
#: `POST /v1/token`, served directly (`routers.direct`): `app.main` puts it on the app's
#: own router, before every included one.
direct_router = APIRouter(prefix="/v1", tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store"}

_PARTICIPANT_TOKEN_BODY: TypeAdapter[ParticipantTokenRequest | None] = TypeAdapter(
    ParticipantTokenRequest | None
)


class ParticipantTokenArguments(TypedDict):
    """`issue_participant_token`'s parameters (`routers.direct.check_arguments`)."""

    call: TokenCall
    body: ParticipantTokenRequest | None


async def participant_token_arguments(request: Request) -> ParticipantTokenArguments:
    """`issue_participant_token`'s arguments, resolved as FastAPI would (see
    `routers.direct`): the body read as FastAPI reads it (400 for a body that is not JSON),
    then the caller (`get_token_caller`: 403, 429); a JSON body that is invalid is refused
    after the caller (422), as FastAPI orders them. A caller that is not authenticated is
    refused (401) before the body is read, by `app.http.middleware` on either way."""
    body, invalid = await read_json_body(request, _PARTICIPANT_TOKEN_BODY)
    call = await dependency(request, get_token_caller)
    if invalid is not None:
        raise invalid
    return {"call": call, "body": body}


async def issue_participant_token(
    call: TokenCallerDep,
    body: Annotated[ParticipantTokenRequest | None, Body()] = None,
) -> Response:
    """LiveKit's standard token endpoint: a join token, as far as the token policy allows.
    The reply is never to be cached (`Cache-Control: no-store`)."""
    # Served directly (`routers.direct`: every join fetches a token); the reply is built as
    # a `ParticipantTokenResponse` and sent as its JSON bytes.
    settings = call.settings
    issued = mint_participant_token(
        body or ParticipantTokenRequest(),
        call.caller,
        call.rule,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
        media_allow=settings.media_url_allow_list,
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


direct_router.add_api_route(
    "/token",
    issue_participant_token,
    methods=["POST"],
    status_code=201,
    operation_id="issue_participant_token",
    response_model=ParticipantTokenResponse,
    responses=problems(400, 401, 403, 422, 429),
    # The bearer credential is optional here: the token policy may admit anonymous callers.
    openapi_extra={"security": [{}]},
    route_class_override=direct_route(participant_token_arguments),
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
        media_allow=settings.media_url_allow_list,
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
