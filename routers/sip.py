"""SIP routes (contract: SIP), over LiveKit's SIP service: inbound and outbound trunks and
dispatch rules (create, list with paging, get, PATCH = LiveKit's `update` form, PUT = its
`replace` form, delete), outbound calls and transfers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app import sip
from app.deps import IdempotencyDep, LiveKitDep, SettingsDep, SipReadCaller, SipWriteCaller
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


# Inbound trunks


@router.post(
    "/inbound-trunks",
    operation_id="create_sip_inbound_trunk",
    response_model=SIPInboundTrunkInfo,
    **CREATE,
)
async def create_inbound_trunk(
    body: InboundTrunkRequest, lk: LiveKitDep, _: SipWriteCaller, idempotent: IdempotencyDep
) -> Response:
    """Create a inbound trunk; `Idempotency-Key` makes a retry return the first response."""
    return await idempotent.run(lambda: sip.create(lk, sip.INBOUND_TRUNKS, body))


@router.get(
    "/inbound-trunks",
    operation_id="list_sip_inbound_trunks",
    response_model=InboundTrunkPage,
    **ONE,
)
async def list_inbound_trunks(
    lk: LiveKitDep,
    _: SipReadCaller,
    numbers: Numbers = None,
    limit: Limit = 100,
    page_token: PageToken = None,
) -> dict[str, Any]:
    """Inbound trunks, sorted by id, `limit` per page; `next_page_token` asks for the next."""
    filters = {"numbers": numbers} if numbers else None
    items, token = await sip.list_page(
        lk, sip.INBOUND_TRUNKS, limit=limit, page_token=page_token, filters=filters
    )
    return to_page(items, token)


@router.get(
    "/inbound-trunks/{trunk_id}",
    operation_id="get_sip_inbound_trunk",
    response_model=SIPInboundTrunkInfo,
    **ONE,
)
async def get_inbound_trunk(trunk_id: TrunkId, lk: LiveKitDep, _: SipReadCaller) -> dict[str, Any]:
    """One inbound trunk; 404 `sip_trunk_not_found`."""
    found = await sip.get(lk, sip.INBOUND_TRUNKS, trunk_id)
    return to_json(found)


@router.patch(
    "/inbound-trunks/{trunk_id}",
    operation_id="update_sip_inbound_trunk",
    response_model=SIPInboundTrunkInfo,
    **WRITE,
)
async def update_inbound_trunk(
    trunk_id: TrunkId, body: InboundTrunkUpdate, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Change the fields given (LiveKit's `update` form; list fields take a `ListUpdate`)."""
    updated = await sip.update(lk, sip.INBOUND_TRUNKS, trunk_id, body)
    return to_json(updated)


@router.put(
    "/inbound-trunks/{trunk_id}",
    operation_id="replace_sip_inbound_trunk",
    response_model=SIPInboundTrunkInfo,
    **WRITE,
)
async def replace_inbound_trunk(
    trunk_id: TrunkId, body: InboundTrunkRequest, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Replace the inbound trunk with the body (LiveKit's `replace` form); what is not given
    is reset."""
    replaced = await sip.replace(lk, sip.INBOUND_TRUNKS, trunk_id, body)
    return to_json(replaced)


@router.delete(
    "/inbound-trunks/{trunk_id}",
    status_code=204,
    operation_id="delete_sip_inbound_trunk",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def delete_inbound_trunk(trunk_id: TrunkId, lk: LiveKitDep, _: SipWriteCaller) -> None:
    """Delete the inbound trunk; 404 when there is none of this kind with that id."""
    await sip.delete(lk, sip.INBOUND_TRUNKS, trunk_id)


# Outbound trunks


@router.post(
    "/outbound-trunks",
    operation_id="create_sip_outbound_trunk",
    response_model=SIPOutboundTrunkInfo,
    **CREATE,
)
async def create_outbound_trunk(
    body: OutboundTrunkRequest, lk: LiveKitDep, _: SipWriteCaller, idempotent: IdempotencyDep
) -> Response:
    """Create a outbound trunk; `Idempotency-Key` makes a retry return the first response."""
    return await idempotent.run(lambda: sip.create(lk, sip.OUTBOUND_TRUNKS, body))


@router.get(
    "/outbound-trunks",
    operation_id="list_sip_outbound_trunks",
    response_model=OutboundTrunkPage,
    **ONE,
)
async def list_outbound_trunks(
    lk: LiveKitDep,
    _: SipReadCaller,
    numbers: Numbers = None,
    limit: Limit = 100,
    page_token: PageToken = None,
) -> dict[str, Any]:
    """Outbound trunks, sorted by id, `limit` per page; `next_page_token` asks for the next."""
    filters = {"numbers": numbers} if numbers else None
    items, token = await sip.list_page(
        lk, sip.OUTBOUND_TRUNKS, limit=limit, page_token=page_token, filters=filters
    )
    return to_page(items, token)


@router.get(
    "/outbound-trunks/{trunk_id}",
    operation_id="get_sip_outbound_trunk",
    response_model=SIPOutboundTrunkInfo,
    **ONE,
)
async def get_outbound_trunk(trunk_id: TrunkId, lk: LiveKitDep, _: SipReadCaller) -> dict[str, Any]:
    """One outbound trunk; 404 `sip_trunk_not_found`."""
    found = await sip.get(lk, sip.OUTBOUND_TRUNKS, trunk_id)
    return to_json(found)


@router.patch(
    "/outbound-trunks/{trunk_id}",
    operation_id="update_sip_outbound_trunk",
    response_model=SIPOutboundTrunkInfo,
    **WRITE,
)
async def update_outbound_trunk(
    trunk_id: TrunkId, body: OutboundTrunkUpdate, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Change the fields given (LiveKit's `update` form; list fields take a `ListUpdate`)."""
    updated = await sip.update(lk, sip.OUTBOUND_TRUNKS, trunk_id, body)
    return to_json(updated)


@router.put(
    "/outbound-trunks/{trunk_id}",
    operation_id="replace_sip_outbound_trunk",
    response_model=SIPOutboundTrunkInfo,
    **WRITE,
)
async def replace_outbound_trunk(
    trunk_id: TrunkId, body: OutboundTrunkRequest, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Replace the outbound trunk with the body (LiveKit's `replace` form); what is not given
    is reset."""
    replaced = await sip.replace(lk, sip.OUTBOUND_TRUNKS, trunk_id, body)
    return to_json(replaced)


@router.delete(
    "/outbound-trunks/{trunk_id}",
    status_code=204,
    operation_id="delete_sip_outbound_trunk",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def delete_outbound_trunk(trunk_id: TrunkId, lk: LiveKitDep, _: SipWriteCaller) -> None:
    """Delete the outbound trunk; 404 when there is none of this kind with that id."""
    await sip.delete(lk, sip.OUTBOUND_TRUNKS, trunk_id)


# Dispatch rules


@router.post(
    "/dispatch-rules",
    operation_id="create_sip_dispatch_rule",
    response_model=SIPDispatchRuleInfo,
    **CREATE,
)
async def create_dispatch_rule(
    body: DispatchRuleRequest, lk: LiveKitDep, _: SipWriteCaller, idempotent: IdempotencyDep
) -> Response:
    """Create a dispatch rule; `Idempotency-Key` makes a retry return the first response."""
    return await idempotent.run(lambda: sip.create(lk, sip.DISPATCH_RULES, body))


@router.get(
    "/dispatch-rules",
    operation_id="list_sip_dispatch_rules",
    response_model=DispatchRulePage,
    **ONE,
)
async def list_dispatch_rules(
    lk: LiveKitDep,
    _: SipReadCaller,
    trunk_ids: TrunkIds = None,
    limit: Limit = 100,
    page_token: PageToken = None,
) -> dict[str, Any]:
    """Dispatch rules, sorted by id, `limit` per page; `next_page_token` asks for the next."""
    filters = {"trunk_ids": trunk_ids} if trunk_ids else None
    items, token = await sip.list_page(
        lk, sip.DISPATCH_RULES, limit=limit, page_token=page_token, filters=filters
    )
    return to_page(items, token)


@router.get(
    "/dispatch-rules/{rule_id}",
    operation_id="get_sip_dispatch_rule",
    response_model=SIPDispatchRuleInfo,
    **ONE,
)
async def get_dispatch_rule(rule_id: RuleId, lk: LiveKitDep, _: SipReadCaller) -> dict[str, Any]:
    """One dispatch rule; 404 `sip_dispatch_rule_not_found`."""
    found = await sip.get(lk, sip.DISPATCH_RULES, rule_id)
    return to_json(found)


@router.patch(
    "/dispatch-rules/{rule_id}",
    operation_id="update_sip_dispatch_rule",
    response_model=SIPDispatchRuleInfo,
    **WRITE,
)
async def update_dispatch_rule(
    rule_id: RuleId, body: DispatchRuleUpdate, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Change the fields given (LiveKit's `update` form; list fields take a `ListUpdate`)."""
    updated = await sip.update(lk, sip.DISPATCH_RULES, rule_id, body)
    return to_json(updated)


@router.put(
    "/dispatch-rules/{rule_id}",
    operation_id="replace_sip_dispatch_rule",
    response_model=SIPDispatchRuleInfo,
    **WRITE,
)
async def replace_dispatch_rule(
    rule_id: RuleId, body: DispatchRuleRequest, lk: LiveKitDep, _: SipWriteCaller
) -> dict[str, Any]:
    """Replace the dispatch rule with the body (LiveKit's `replace` form); what is not given
    is reset."""
    replaced = await sip.replace(lk, sip.DISPATCH_RULES, rule_id, body)
    return to_json(replaced)


@router.delete(
    "/dispatch-rules/{rule_id}",
    status_code=204,
    operation_id="delete_sip_dispatch_rule",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def delete_dispatch_rule(rule_id: RuleId, lk: LiveKitDep, _: SipWriteCaller) -> None:
    """Delete the dispatch rule; 404 when there is none of this kind with that id."""
    await sip.delete(lk, sip.DISPATCH_RULES, rule_id)


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
