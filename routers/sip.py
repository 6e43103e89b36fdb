"""SIP routes (contract: SIP), over LiveKit's SIP service: inbound and outbound trunks and
dispatch rules (create, list with paging, get, PATCH = LiveKit's `update` form, PUT = its
`replace` form, delete), outbound calls and transfers.

The three kinds share one route set (`add_resource_routes`). Its handlers annotate their
bodies with the kind's models, so this module's annotations are evaluated where they stand
(no `from __future__ import annotations`: FastAPI would look string annotations up among
the module's globals)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from app.http.deps import IdempotencyDep, LiveKitDep, SettingsDep, SipReadCaller, SipWriteCaller
from app.server_apis import sip
from schemas.bridge import to_json, to_page
from schemas.problems import LIVEKIT_PROBLEMS, problems
from schemas.sip import (
    CreateSIPParticipantRequest,
    DispatchRulePage,
    DispatchRuleRequest,
    DispatchRuleUpdate,
    InboundTrunkPage,
    InboundTrunkRequest,
    InboundTrunkUpdate,
    OutboundTrunkPage,
    OutboundTrunkRequest,
    OutboundTrunkUpdate,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
    SIPOutboundTrunkInfo,
    SIPParticipantInfo,
    TransferSIPParticipantRequest,
)

router = APIRouter(prefix="/v1/sip", tags=["sip"])

TrunkId = Annotated[str, Path(description="the trunk's id, `ST_...`", min_length=1, max_length=256)]
RuleId = Annotated[
    str, Path(description="the dispatch rule's id, `SDR_...`", min_length=1, max_length=256)
]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many items")]
PageToken = Annotated[
    str | None, Query(max_length=256, description="`next_page_token` of the previous page")
]
Numbers = Annotated[list[str] | None, Query(description="only trunks with one of these numbers")]
TrunkIds = Annotated[list[str] | None, Query(description="only rules for one of these trunk ids")]

ONE: dict[str, Any] = {
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 404),
}
WRITE: dict[str, Any] = {
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 400, 404),
}
CREATE: dict[str, Any] = {
    "status_code": 201,
    "response_model_exclude_unset": True,
    "responses": problems(*LIVEKIT_PROBLEMS, 400, 409, 503),
}

Filters = dict[str, list[str]] | None


def trunk_id(trunk_id: TrunkId) -> str:
    """The `{trunk_id}` path parameter."""
    return trunk_id


def rule_id(rule_id: RuleId) -> str:
    """The `{rule_id}` path parameter."""
    return rule_id


def by_numbers(numbers: Numbers = None) -> Filters:
    """The `numbers` query parameter as `List…Request` filters (None: no filter)."""
    return {"numbers": numbers} if numbers else None


def by_trunk_ids(trunk_ids: TrunkIds = None) -> Filters:
    """The `trunk_ids` query parameter as `List…Request` filters (None: no filter)."""
    return {"trunk_ids": trunk_ids} if trunk_ids else None


@dataclass(frozen=True)
class Paging:
    """One page asked for: at most `limit` items after `page_token` (a `next_page_token`)."""

    limit: int
    page_token: str | None


def paging(limit: Limit = 100, page_token: PageToken = None) -> Paging:
    """The `limit` and `page_token` query parameters."""
    return Paging(limit, page_token)


PageQuery = Annotated[Paging, Depends(paging)]


def add_resource_routes(
    path: str,
    resource: sip.Resource[Any],
    *,
    info: type[BaseModel],
    page: type[BaseModel],
    request: type[BaseModel],
    update: type[BaseModel],
    id_param: Callable[..., str],
    filters: Callable[..., Filters],
) -> None:
    """Add one kind of SIP resource's six routes to `router`, at `path` (`/inbound-trunks`)
    and `path/{id}`: create (201, `Idempotency-Key`), list (paged, filtered by `filters`'s
    query parameter), get, PATCH (LiveKit's `update` form), PUT (its `replace` form) and
    delete (204); what create, PATCH and PUT describe for LiveKit's workers is checked
    against MEDIA_URL_ALLOW (`app.server_apis.media`). `info` is the resource's response model,
    `page`
    its list's, `request` the
    body of create and PUT, `update` the body of PATCH; `id_param` is the dependency that
    reads the path's id parameter (`trunk_id`, `rule_id`). Operation ids and route names
    follow `resource.what` (`create_sip_inbound_trunk`, `list_sip_inbound_trunks`)."""
    what = resource.what
    stem = what.replace(" ", "_")
    item_path = f"{path}/{{{id_param.__name__}}}"

    @router.post(
        path,
        operation_id=f"create_sip_{stem}",
        name=f"create_{stem}",
        description=f"Create a {what}; `Idempotency-Key` makes a retry return the first response.",
        response_model=info,
        **CREATE,
    )
    async def create(
        body: request,  # type: ignore[valid-type]
        lk: LiveKitDep,
        settings: SettingsDep,
        _: SipWriteCaller,
        idempotent: IdempotencyDep,
    ) -> Response:
        allow = settings.media_url_allow_list
        return await idempotent.run(lambda: sip.create(lk, resource, body, allow))

    @router.get(
        path,
        operation_id=f"list_sip_{stem}s",
        name=f"list_{stem}s",
        description=f"{what.capitalize()}s, sorted by id, `limit` per page; "
        "`next_page_token` asks for the next.",
        response_model=page,
        **ONE,
    )
    async def list_page(
        lk: LiveKitDep,
        _: SipReadCaller,
        wanted: Annotated[Filters, Depends(filters)],
        asked: PageQuery,
    ) -> dict[str, Any]:
        items, token = await sip.list_page(
            lk, resource, limit=asked.limit, page_token=asked.page_token, filters=wanted
        )
        return to_page(items, token)

    @router.get(
        item_path,
        operation_id=f"get_sip_{stem}",
        name=f"get_{stem}",
        description=f"One {what}; 404 `{resource.not_found_code}`.",
        response_model=info,
        **ONE,
    )
    async def get(
        id_: Annotated[str, Depends(id_param)], lk: LiveKitDep, _: SipReadCaller
    ) -> dict[str, Any]:
        return to_json(await sip.get(lk, resource, id_))

    @router.patch(
        item_path,
        operation_id=f"update_sip_{stem}",
        name=f"update_{stem}",
        description="Change the fields given (LiveKit's `update` form; list fields take a "
        "`ListUpdate`).",
        response_model=info,
        **WRITE,
    )
    async def patch(
        id_: Annotated[str, Depends(id_param)],
        body: update,  # type: ignore[valid-type]
        lk: LiveKitDep,
        settings: SettingsDep,
        _: SipWriteCaller,
    ) -> dict[str, Any]:
        allow = settings.media_url_allow_list
        return to_json(await sip.update(lk, resource, id_, body, allow))

    @router.put(
        item_path,
        operation_id=f"replace_sip_{stem}",
        name=f"replace_{stem}",
        description=f"Replace the {what} with the body (LiveKit's `replace` form); what is not "
        "given\nis reset.",
        response_model=info,
        **WRITE,
    )
    async def replace(
        id_: Annotated[str, Depends(id_param)],
        body: request,  # type: ignore[valid-type]
        lk: LiveKitDep,
        settings: SettingsDep,
        _: SipWriteCaller,
    ) -> dict[str, Any]:
        allow = settings.media_url_allow_list
        return to_json(await sip.replace(lk, resource, id_, body, allow))

    @router.delete(
        item_path,
        status_code=204,
        operation_id=f"delete_sip_{stem}",
        name=f"delete_{stem}",
        description=f"Delete the {what}; 404 when there is none of this kind with that id.",
        response_class=Response,
        responses=problems(*LIVEKIT_PROBLEMS, 404),
    )
    async def delete(
        id_: Annotated[str, Depends(id_param)], lk: LiveKitDep, _: SipWriteCaller
    ) -> None:
        await sip.delete(lk, resource, id_)


add_resource_routes(
    "/inbound-trunks",
    sip.INBOUND_TRUNKS,
    info=SIPInboundTrunkInfo,
    page=InboundTrunkPage,
    request=InboundTrunkRequest,
    update=InboundTrunkUpdate,
    id_param=trunk_id,
    filters=by_numbers,
)
add_resource_routes(
    "/outbound-trunks",
    sip.OUTBOUND_TRUNKS,
    info=SIPOutboundTrunkInfo,
    page=OutboundTrunkPage,
    request=OutboundTrunkRequest,
    update=OutboundTrunkUpdate,
    id_param=trunk_id,
    filters=by_numbers,
)
add_resource_routes(
    "/dispatch-rules",
    sip.DISPATCH_RULES,
    info=SIPDispatchRuleInfo,
    page=DispatchRulePage,
    request=DispatchRuleRequest,
    update=DispatchRuleUpdate,
    id_param=rule_id,
    filters=by_trunk_ids,
)


# Calls and transfers


@router.post(
    "/participants",
    status_code=201,
    operation_id="create_sip_participant",
    response_model=SIPParticipantInfo,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 400, 404, 409, 503),
)
async def create_participant(
    body: CreateSIPParticipantRequest,
    lk: LiveKitDep,
    settings: SettingsDep,
    _: SipWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """Call `sip_call_to` and bring the callee into `room_name` as a SIP participant. With
    `wait_until_answered`, answers once the callee picked up: 502 `sip_call_failed` with
    `sip_status_code` when the phone refuses (486 busy ...), 504 `sip_call_timeout` when
    nobody answers within SIP_CALL_TIMEOUT_SECONDS (the call is hung up). A retry with the
    same `Idempotency-Key` and body gets the first response and never dials twice."""
    timeout = settings.sip_call_timeout_seconds
    return await idempotent.run(lambda: sip.create_participant(lk, body, call_timeout=timeout))


@router.post(
    "/transfers",
    status_code=204,
    operation_id="transfer_sip_participant",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def transfer_participant(
    body: TransferSIPParticipantRequest,
    lk: LiveKitDep,
    settings: SettingsDep,
    _: SipWriteCaller,
) -> None:
    """Transfer a SIP participant's call to `transfer_to` (SIP REFER). 204 once the phone
    reported success (LiveKit then hangs up); 502 `sip_call_failed` with the SIP status the
    phone reported (603 ...; the call stays up); 404 `participant_not_found`."""
    await sip.transfer_participant(lk, body, call_timeout=settings.sip_call_timeout_seconds)
