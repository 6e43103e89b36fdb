"""SIP over LiveKit's SIP service (contract: SIP): inbound and outbound trunks, dispatch
rules, outbound calls and transfers.

Every call goes through the `LiveKit` gateway, so each LiveKit failure is already the
contract's status (a call that fails with a SIP status: 502 `sip_call_failed`, one nobody
answers: 504 `sip_call_timeout`, see `app.core.errors`). What the LiveKit server (v1.13.5 with
Redis, livekit-sip v1.8.0) does, and what is added here:

- List calls sort by id and honour `Pagination.after_id` but not `limit`, so a page is cut
  here: the page token is the last id of a full page (`next_page_token`), asked for as
  `after_id`.
- There is no Get call: one resource is a List filtered by its id; none is 404
  (`sip_trunk_not_found`, `sip_dispatch_rule_not_found`). An inbound trunk's id on the
  outbound routes (and the other way round) is not found either.
- DeleteSIPTrunk answers success for an id that does not exist, and deletes a trunk of
  either direction: the trunk is looked up (in the route's direction) first.
- Update takes LiveKit's `Update…Request` whole (`update` with `ListUpdate`s, or
  `replace`), see `LiveKit.update_sip`.
- Conflicts LiveKit checks itself (two inbound trunks with one number, two dispatch rules
  for one trunk and number) are Twirp `invalid_argument`: 422 with LiveKit's explanation.
- A call placed with `wait_until_answered` rings at most `call_timeout` seconds
  (SIP_CALL_TIMEOUT_SECONDS): LiveKit's `ringing_timeout` is pinned below it, so LiveKit
  itself CANCELs the INVITE when nobody answers; should LiveKit not answer by the deadline,
  the participant is removed (the call hung up) and the answer is 504.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from livekit import api

from app.core.errors import AppError, NotFound, UpstreamTimeout
from app.livekit.gateway import LiveKit
from app.server_apis.media import check_media
from app.server_apis.rooms import PARTICIPANT_NOT_FOUND
from app.server_apis.urlpatterns import UrlAllowList
from schemas.bridge import to_proto

log = logging.getLogger(__name__)

Info = TypeVar("Info", bound=Message)

SIP_TRUNK_NOT_FOUND = "sip_trunk_not_found"
SIP_DISPATCH_RULE_NOT_FOUND = "sip_dispatch_rule_not_found"
SIP_CALL_TIMEOUT = "sip_call_timeout"

#: LiveKit's ringing timeout when a call does not set one (livekit-api `_dial_timeout`).
DEFAULT_RINGING_SECONDS = 30
#: How much sooner than the service's deadline LiveKit is told to stop ringing, so its own
#: CANCEL (and its answer) arrive before the deadline.
RINGING_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class Resource(Generic[Info]):
    """How one kind of SIP resource maps onto LiveKit's calls.

    `info` is its message (`SIPInboundTrunkInfo` ...), `id_field` the id's field on it,
    `create`/`list`/`delete` build the SDK call from a message, a `List…Request` or an id,
    `update_method`, `update_request` and `update_type` name LiveKit's Update call, its
    request and its `update` form.
    """

    what: str
    not_found_code: str
    info: type[Info]
    id_field: str
    create: Callable[[LiveKit, Info], Awaitable[Info]]
    list_request: type[Message]
    ids_filter: str
    list: Callable[[LiveKit, Any], Awaitable[Any]]
    update_method: str
    update_request: type[Message]
    update_type: type[Message]
    delete: Callable[[LiveKit, str], Awaitable[Message]]

    def id_of(self, item: Info) -> str:
        """The resource's id (`ST_…`, `SDR_…`)."""
        return str(getattr(item, self.id_field))


INBOUND_TRUNKS: Resource[api.SIPInboundTrunkInfo] = Resource(
    what="inbound trunk",
    not_found_code=SIP_TRUNK_NOT_FOUND,
    info=api.SIPInboundTrunkInfo,
    id_field="sip_trunk_id",
    create=lambda lk, info: lk.sip.create_inbound_trunk(
        api.CreateSIPInboundTrunkRequest(trunk=info)
    ),
    list_request=api.ListSIPInboundTrunkRequest,
    ids_filter="trunk_ids",
    list=lambda lk, request: lk.sip.list_inbound_trunk(request),
    update_method="UpdateSIPInboundTrunk",
    update_request=api.UpdateSIPInboundTrunkRequest,
    update_type=api.SIPInboundTrunkUpdate,
    delete=lambda lk, id_: lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=id_)),
)

OUTBOUND_TRUNKS: Resource[api.SIPOutboundTrunkInfo] = Resource(
    what="outbound trunk",
    not_found_code=SIP_TRUNK_NOT_FOUND,
    info=api.SIPOutboundTrunkInfo,
    id_field="sip_trunk_id",
    create=lambda lk, info: lk.sip.create_outbound_trunk(
        api.CreateSIPOutboundTrunkRequest(trunk=info)
    ),
    list_request=api.ListSIPOutboundTrunkRequest,
    ids_filter="trunk_ids",
    list=lambda lk, request: lk.sip.list_outbound_trunk(request),
    update_method="UpdateSIPOutboundTrunk",
    update_request=api.UpdateSIPOutboundTrunkRequest,
    update_type=api.SIPOutboundTrunkUpdate,
    delete=lambda lk, id_: lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=id_)),
)

DISPATCH_RULES: Resource[api.SIPDispatchRuleInfo] = Resource(
    what="dispatch rule",
    not_found_code=SIP_DISPATCH_RULE_NOT_FOUND,
    info=api.SIPDispatchRuleInfo,
    id_field="sip_dispatch_rule_id",
    create=lambda lk, info: lk.sip.create_dispatch_rule(
        api.CreateSIPDispatchRuleRequest(dispatch_rule=info)
    ),
    list_request=api.ListSIPDispatchRuleRequest,
    ids_filter="dispatch_rule_ids",
    list=lambda lk, request: lk.sip.list_dispatch_rule(request),
    update_method="UpdateSIPDispatchRule",
    update_request=api.UpdateSIPDispatchRuleRequest,
    update_type=api.SIPDispatchRuleUpdate,
    delete=lambda lk, id_: lk.sip.delete_dispatch_rule(
        api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=id_)
    ),
)


# Trunks and dispatch rules


async def create(
    lk: LiveKit, resource: Resource[Info], fields: Any, media_allow: UrlAllowList
) -> Info:
    """Create…: `fields` (a validated model or a dict of `resource.info` proto fields)
    becomes the new resource, returned with its id. 422 for what LiveKit refuses; what it
    describes for LiveKit's workers (a dispatch rule's `room_config.egress`) passes
    `app.server_apis.media.check_media` against `media_allow` first (422, 403
    `media_url_not_allowed`)."""
    info = to_proto(fields, resource.info)
    check_media(info, media_allow)
    created = await lk.run(resource.create(lk, info))
    log.info("created SIP %s %s", resource.what, resource.id_of(created))
    return created


async def list_page(
    lk: LiveKit,
    resource: Resource[Info],
    *,
    limit: int,
    page_token: str | None = None,
    filters: dict[str, list[str]] | None = None,
) -> tuple[list[Info], str | None]:
    """List…: up to `limit` resources after the one whose id is `page_token`, sorted by id,
    and the next page's token (None on the last page). `filters` are the `List…Request`'s
    list fields (`numbers`, `trunk_ids`)."""
    request = resource.list_request(
        page=api.Pagination(after_id=page_token or "", limit=limit + 1), **(filters or {})
    )
    items: list[Info] = list((await lk.run(resource.list(lk, request))).items)
    items.sort(key=resource.id_of)
    page = items[:limit]
    return page, resource.id_of(page[-1]) if len(items) > limit else None


async def get(lk: LiveKit, resource: Resource[Info], resource_id: str) -> Info:
    """List…(ids=[resource_id]): that resource; 404 `resource.not_found_code` when LiveKit
    has none of this kind with that id."""
    request = resource.list_request(**{resource.ids_filter: [resource_id]})
    items: list[Info] = list((await lk.run(resource.list(lk, request))).items)
    found = [item for item in items if resource.id_of(item) == resource_id]
    if not found:
        raise NotFound(
            f"there is no SIP {resource.what} {resource_id!r}", code=resource.not_found_code
        )
    return found[0]


async def update(
    lk: LiveKit, resource: Resource[Info], resource_id: str, fields: Any, media_allow: UrlAllowList
) -> Info:
    """Update…Request `update`: only the fields in `fields` (a validated model of LiveKit's
    `…Update`, `resource.update_type`) change; list fields follow LiveKit's `ListUpdate`.
    Returns the resource as it is now; 404 when absent; checked as `create` checks."""
    change = to_proto(fields, resource.update_type)
    check_media(change, media_allow)
    return await _update(lk, resource, resource_id, update=change)


async def replace(
    lk: LiveKit, resource: Resource[Info], resource_id: str, fields: Any, media_allow: UrlAllowList
) -> Info:
    """Update…Request `replace`: the resource becomes `fields` (what is not given is reset),
    keeping its id. Returns it; 404 when absent; checked as `create` checks."""
    info = to_proto(fields, resource.info)
    check_media(info, media_allow)
    return await _update(lk, resource, resource_id, replace=info)


async def _update(lk: LiveKit, resource: Resource[Info], resource_id: str, **action: Any) -> Info:
    await get(lk, resource, resource_id)  # this kind, this id: 404 otherwise
    request = resource.update_request(**{resource.id_field: resource_id}, **action)
    call = lk.update_sip(resource.update_method, request, resource.info)
    return await lk.run(call, not_found_code=resource.not_found_code)


async def delete(lk: LiveKit, resource: Resource[Info], resource_id: str) -> None:
    """Delete…: 404 when there is no such resource of this kind (LiveKit's DeleteSIPTrunk
    would answer success, and delete a trunk of the other direction)."""
    await get(lk, resource, resource_id)
    await lk.run(resource.delete(lk, resource_id), not_found_code=resource.not_found_code)
    log.info("deleted SIP %s %s", resource.what, resource_id)


# Calls and transfers


async def create_participant(
    lk: LiveKit, fields: Any, *, call_timeout: float
) -> api.SIPParticipantInfo:
    """CreateSIPParticipant: dial `sip_call_to` through the outbound trunk and bring the
    callee into `room_name`. `fields` are LiveKit `CreateSIPParticipantRequest` fields;
    `participant_identity` defaults to `sip_<sip_call_to>`.

    With `wait_until_answered`, returns once the callee answered, ringing at most
    `call_timeout` seconds (see module doc). Raises 404 `sip_trunk_not_found` for a trunk
    LiveKit does not know, 502 `sip_call_failed` (with `sip_status_code`, `sip_status`) when
    the callee refuses, 504 `sip_call_timeout` when nobody answers in time (the call is
    then hung up), and the gateway's other errors.
    """
    request = to_proto(fields, api.CreateSIPParticipantRequest)
    if not request.participant_identity:
        request.participant_identity = f"sip_{request.sip_call_to}"
    if not request.wait_until_answered:
        return await lk.run(
            lk.sip.create_sip_participant(request), not_found_code=SIP_TRUNK_NOT_FOUND
        )
    _pin_ringing(request, call_timeout)
    log.info("calling %s for room %s", request.sip_call_to, request.room_name)
    try:
        return await lk.run(
            lk.sip.create_sip_participant(request),
            not_found_code=SIP_TRUNK_NOT_FOUND,
            timeout_seconds=call_timeout,
        )
    except UpstreamTimeout as exc:
        if exc.code == SIP_CALL_TIMEOUT:
            raise  # LiveKit gave up ringing and CANCELled the call itself
        outcome = await _hang_up(lk, request.room_name, request.participant_identity)
        raise UpstreamTimeout(
            f"the call to {request.sip_call_to} was not answered within {call_timeout:g} s; "
            + outcome,
            code=SIP_CALL_TIMEOUT,
        ) from exc


async def transfer_participant(lk: LiveKit, fields: Any, *, call_timeout: float) -> None:
    """TransferSIPParticipant: a blind transfer (SIP REFER, RFC 3515) of the SIP participant
    `participant_identity` in `room_name` to `transfer_to`. Returns once the phone reported
    the transfer's success (LiveKit then hangs up); 404 `participant_not_found`, 502
    `sip_call_failed` with the SIP status the phone reported (e.g. 603 Declined: the call
    stays up), 504 past `call_timeout` seconds."""
    request = to_proto(fields, api.TransferSIPParticipantRequest)
    _pin_ringing(request, call_timeout)
    await lk.run(
        lk.sip.transfer_sip_participant(request),
        not_found_code=PARTICIPANT_NOT_FOUND,
        timeout_seconds=call_timeout,
    )


def _pin_ringing(
    request: api.CreateSIPParticipantRequest | api.TransferSIPParticipantRequest,
    call_timeout: float,
) -> None:
    """Set `ringing_timeout` to what the caller asked (LiveKit's 30 s by default), at most
    `call_timeout` minus a margin, so LiveKit stops ringing before the service's deadline."""
    asked = (
        request.ringing_timeout.seconds
        if request.HasField("ringing_timeout")
        else DEFAULT_RINGING_SECONDS
    )
    ceiling = max(1, int(call_timeout - RINGING_MARGIN_SECONDS))
    request.ringing_timeout.seconds = max(1, min(asked, ceiling))
    request.ringing_timeout.nanos = 0


async def _hang_up(lk: LiveKit, room: str, identity: str) -> str:
    """Remove the SIP participant, which ends its call (CANCEL while ringing, BYE once
    answered). Returns what happened, for the problem's detail; a failure is logged."""
    participant = api.RoomParticipantIdentity(room=room, identity=identity)
    try:
        await lk.run(lk.room.remove_participant(participant))
    except AppError as exc:
        if exc.status == NotFound.status:
            return "it is no longer in the room"
        log.warning("could not hang up %s in room %s: %s", identity, room, exc.detail)
        return f"hanging it up failed ({exc.detail})"
    log.info("hung up %s in room %s after the call deadline", identity, room)
    return "it was hung up"
