"""Bodies of the SIP routes (contract: SIP).

Responses are LiveKit's own messages (`SIPInboundTrunkInfo`, `SIPOutboundTrunkInfo`,
`SIPDispatchRuleInfo`, `SIPParticipantInfo`), derived by `schemas.bridge.model_for`; trunk
passwords are write-only (`schemas.credentials.SECRET_FIELDS`): accepted here, never rendered.

Requests are LiveKit's messages with what the service checks before LiveKit sees them:

- create (`POST`) and replace (`PUT`) bodies are the resource itself (LiveKit's `…Info`,
  the `replace` form of its `Update…Request`), without the fields LiveKit assigns
  (`sip_trunk_id`, `sip_dispatch_rule_id`, `created_at`, `updated_at`: 422 when given);
- update (`PATCH`) bodies are LiveKit's `…Update` messages: only the fields given change,
  and a list field (`numbers`, `allowed_addresses`, `allowed_numbers`, `trunk_ids`) takes
  LiveKit's `ListUpdate` `{"set", "add", "remove", "clear"}`; a plain JSON list is `set`;
- phone numbers are E.164 (ITU-T E.164: `+`, a country code, at most 15 digits), transfer
  targets `sip:`/`sips:` (RFC 3261) or `tel:` (RFC 3966, a global number) URIs, allowed
  addresses IP addresses or CIDR ranges; a bad one is 422 naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar

from livekit.protocol import sip
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    Field,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from schemas.bridge import model_for
from schemas.common import Attributes, Metadata, Name, Page, RequestModel

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SIP_URI = re.compile(r"sips?:([^@\s;?]+@)?[A-Za-z0-9.\-]+(:[0-9]{1,5})?([;?]\S*)?")
_TEL_URI = re.compile(r"tel:\+[1-9][0-9\-.()]{1,30}(;\S*)?")


def _e164(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError(f"{value!r} is not an E.164 number (e.g. +15105550100)")
    return value


def _transfer_target(value: str) -> str:
    if not (_SIP_URI.fullmatch(value) or _TEL_URI.fullmatch(value)):
        raise ValueError(
            f"{value!r} is not a sip: or tel: URI (e.g. sip:+15105550100@sip.example.com, "
            "tel:+15105550100)"
        )
    return value


def _ip_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR range") from exc
    return value


#: A phone number in E.164 form: `+`, country code, subscriber number, 15 digits at most.
E164 = Annotated[str, AfterValidator(_e164)]
#: Where a transfer sends the call: a `sip:`/`sips:` or `tel:` URI.
TransferTarget = Annotated[str, AfterValidator(_transfer_target)]
#: An address a trunk accepts calls from: an IP address or a CIDR range.
IpNetwork = Annotated[str, AfterValidator(_ip_network)]
#: A LiveKit id (`ST_…`, `SDR_…`) as given in a path or list.
ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=256)]

SIPInboundTrunkInfo = model_for(sip.SIPInboundTrunkInfo)
SIPOutboundTrunkInfo = model_for(sip.SIPOutboundTrunkInfo)
SIPDispatchRuleInfo = model_for(sip.SIPDispatchRuleInfo)
SIPParticipantInfo = model_for(sip.SIPParticipantInfo)

InboundTrunkPage = Page[SIPInboundTrunkInfo]  # type: ignore[valid-type]
OutboundTrunkPage = Page[SIPOutboundTrunkInfo]  # type: ignore[valid-type]
DispatchRulePage = Page[SIPDispatchRuleInfo]  # type: ignore[valid-type]


def _field(name: str, default: Any = None, **kwargs: Any) -> Any:
    """A field that keeps the bridge's spellings: the proto name and lowerCamelCase."""
    return Field(default, validation_alias=AliasChoices(name, to_camel(name)), **kwargs)


class _AssignedByLiveKit(BaseModel):
    """Refuses, with a 422 naming them, the fields LiveKit assigns (`ASSIGNED`)."""

    ASSIGNED: ClassVar[tuple[str, ...]] = ("created_at", "updated_at")

    @model_validator(mode="before")
    @classmethod
    def _refuse_assigned(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [f for f in cls.ASSIGNED if f in data or to_camel(f) in data]
            if given:
                raise ValueError(f"{', '.join(given)} is assigned by LiveKit, not given")
        return data


def _list_update(item: Any, what: str, name: str) -> Any:
    """LiveKit's `ListUpdate` of `item`s as model `name`: `set` (replace), `add`, `remove`,
    `clear` (empty the list)."""
    items = list[item] | None
    return create_model(
        name,
        __base__=RequestModel,
        __doc__=(
            f"LiveKit `ListUpdate` of {what}: `set` replaces the list, `add` and `remove` edit "
            "it, `clear` empties it. A plain JSON list means `set`."
        ),
        set=(items, Field(default=None, description=f"the new {what}")),
        add=(items, Field(default=None, description=f"{what} to add")),
        remove=(items, Field(default=None, description=f"{what} to remove")),
        clear=(bool | None, Field(default=None, description=f"remove every one of the {what}")),
    )


NumbersUpdate: Any = _list_update(E164, "numbers", "NumbersListUpdate")
AddressesUpdate: Any = _list_update(IpNetwork, "addresses", "AddressesListUpdate")
TrunkIdsUpdate: Any = _list_update(ResourceId, "trunk ids", "TrunkIdsListUpdate")


class _ListShorthand(BaseModel):
    """A plain JSON list given for a `ListUpdate` field (`LIST_FIELDS`) means `set`."""

    LIST_FIELDS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _plain_list_is_set(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for name in cls.LIST_FIELDS:
                for key in (name, to_camel(name)):
                    if isinstance(data.get(key), list):
                        data[key] = {"set": data[key]}
        return data


# Inbound trunks


_InboundTrunkFields = model_for(sip.SIPInboundTrunkInfo, name="SIPInboundTrunkFields")


class InboundTrunkRequest(_AssignedByLiveKit, _InboundTrunkFields):  # type: ignore[misc,valid-type]
    """An inbound trunk as created (`POST`) or replacing one (`PUT`): LiveKit's
    `SIPInboundTrunkInfo` without the fields LiveKit assigns. `numbers` are the E.164
    numbers it answers, `allowed_numbers` the callers it accepts, `allowed_addresses` the
    IP addresses or CIDR ranges calls may come from; `auth_password` is write-only."""

    ASSIGNED = ("sip_trunk_id", "created_at", "updated_at")

    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    numbers: list[E164] | None = _field("numbers")
    allowed_numbers: list[E164] | None = _field("allowed_numbers")
    allowed_addresses: list[IpNetwork] | None = _field("allowed_addresses")


_InboundTrunkUpdateFields = model_for(sip.SIPInboundTrunkUpdate, name="SIPInboundTrunkUpdateFields")


class InboundTrunkUpdate(_ListShorthand, _InboundTrunkUpdateFields):  # type: ignore[misc,valid-type]
    """`PATCH`: LiveKit's `SIPInboundTrunkUpdate`; only the fields given change, list fields
    take a `ListUpdate` (or a plain list, meaning `set`)."""

    LIST_FIELDS = ("numbers", "allowed_numbers", "allowed_addresses")

    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    numbers: NumbersUpdate | None = _field("numbers")
    allowed_numbers: NumbersUpdate | None = _field("allowed_numbers")
    allowed_addresses: AddressesUpdate | None = _field("allowed_addresses")


# Outbound trunks


_OutboundTrunkFields = model_for(sip.SIPOutboundTrunkInfo, name="SIPOutboundTrunkFields")


class OutboundTrunkRequest(_AssignedByLiveKit, _OutboundTrunkFields):  # type: ignore[misc,valid-type]
    """An outbound trunk as created (`POST`) or replacing one (`PUT`): LiveKit's
    `SIPOutboundTrunkInfo` without the fields LiveKit assigns. `address` is where calls go
    (`host[:port]` of the SIP provider), `numbers` the E.164 numbers calls come from;
    `auth_password` is write-only."""

    ASSIGNED = ("sip_trunk_id", "created_at", "updated_at")

    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    address: str = _field("address", ..., min_length=1, description="the provider's host[:port]")
    numbers: list[E164] | None = _field("numbers")


_OutboundTrunkUpdateFields = model_for(
    sip.SIPOutboundTrunkUpdate, name="SIPOutboundTrunkUpdateFields"
)


class OutboundTrunkUpdate(_ListShorthand, _OutboundTrunkUpdateFields):  # type: ignore[misc,valid-type]
    """`PATCH`: LiveKit's `SIPOutboundTrunkUpdate`; only the fields given change, `numbers`
    takes a `ListUpdate` (or a plain list, meaning `set`)."""

    LIST_FIELDS = ("numbers",)

    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    address: str | None = _field("address", min_length=1)
    numbers: NumbersUpdate | None = _field("numbers")


# Dispatch rules

SIPDispatchRule = model_for(sip.SIPDispatchRule)


_DispatchRuleFields = model_for(sip.SIPDispatchRuleInfo, name="SIPDispatchRuleFields")


class DispatchRuleRequest(_AssignedByLiveKit, _DispatchRuleFields):  # type: ignore[misc,valid-type]
    """A dispatch rule as created (`POST`) or replacing one (`PUT`): LiveKit's
    `SIPDispatchRuleInfo` without the fields LiveKit assigns. `rule` is exactly one kind:
    `dispatch_rule_direct` (every call into `room_name`), `dispatch_rule_individual` (a
    room per caller, `<room_prefix>_<caller>_<random>`) or `dispatch_rule_callee` (a room
    per number called). `room_config.agents` dispatches agents into the call's room;
    `attributes` and `metadata` go to the SIP participant."""

    ASSIGNED = ("sip_dispatch_rule_id", "created_at", "updated_at")

    rule: SIPDispatchRule = _field("rule", ...)  # type: ignore[valid-type]
    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    attributes: Attributes | None = _field("attributes")
    trunk_ids: list[ResourceId] | None = _field("trunk_ids")
    inbound_numbers: list[E164] | None = _field("inbound_numbers")
    numbers: list[E164] | None = _field("numbers")

    @field_validator("rule")
    @classmethod
    def _one_kind(cls, value: Any) -> Any:
        if not value.model_dump(exclude_none=True):
            raise ValueError(
                "give one of `dispatch_rule_direct`, `dispatch_rule_individual`, "
                "`dispatch_rule_callee`"
            )
        return value


_DispatchRuleUpdateFields = model_for(sip.SIPDispatchRuleUpdate, name="SIPDispatchRuleUpdateFields")


class DispatchRuleUpdate(_ListShorthand, _DispatchRuleUpdateFields):  # type: ignore[misc,valid-type]
    """`PATCH`: LiveKit's `SIPDispatchRuleUpdate`; only the fields given change, `trunk_ids`
    takes a `ListUpdate` (or a plain list, meaning `set`). `room_config` is changed by `PUT`
    (LiveKit's update form has no such field)."""

    LIST_FIELDS = ("trunk_ids",)

    name: Name | None = _field("name")
    metadata: Metadata | None = _field("metadata")
    attributes: Attributes | None = _field("attributes")
    trunk_ids: TrunkIdsUpdate | None = _field("trunk_ids")


# Calls and transfers


_CreateSIPParticipantFields = model_for(
    sip.CreateSIPParticipantRequest, name="CreateSIPParticipantFields"
)


class CreateSIPParticipantRequest(_CreateSIPParticipantFields):  # type: ignore[misc,valid-type]
    """`POST /v1/sip/participants` (CreateSIPParticipant): dial `sip_call_to` (E.164)
    through the outbound trunk `sip_trunk_id` (or the inline `trunk`) and bring the callee
    into `room_name` as participant `participant_identity` (default `sip_<sip_call_to>`).

    With `wait_until_answered` the response comes once the callee answers; the call rings
    for `ringing_timeout` (protobuf duration, e.g. `"20s"`; LiveKit's default 30 s), at most
    the service's SIP_CALL_TIMEOUT_SECONDS, and is hung up when nobody answers by then."""

    sip_trunk_id: ResourceId | None = _field("sip_trunk_id")
    sip_call_to: E164 = _field("sip_call_to", ..., description="the E.164 number to call")
    sip_number: E164 | None = _field("sip_number", description="the E.164 number calling")
    room_name: Name = _field("room_name", ..., min_length=1)
    participant_identity: Name | None = _field("participant_identity", min_length=1)
    participant_name: Name | None = _field("participant_name")
    participant_metadata: Metadata | None = _field("participant_metadata")
    participant_attributes: Attributes | None = _field("participant_attributes")

    @model_validator(mode="after")
    def _one_trunk(self) -> CreateSIPParticipantRequest:
        if (self.sip_trunk_id is None) == (getattr(self, "trunk", None) is None):
            raise ValueError("give exactly one of `sip_trunk_id` and `trunk`")
        return self


_TransferSIPParticipantFields = model_for(
    sip.TransferSIPParticipantRequest, name="TransferSIPParticipantFields"
)


class TransferSIPParticipantRequest(_TransferSIPParticipantFields):  # type: ignore[misc,valid-type]
    """`POST /v1/sip/transfers` (TransferSIPParticipant): a blind transfer (SIP REFER) of
    the SIP participant `participant_identity` in `room_name` to `transfer_to`, a `sip:` or
    `tel:` URI. The callee's phone decides; once it reports success LiveKit hangs up."""

    room_name: Name = _field("room_name", ..., min_length=1)
    participant_identity: Name = _field("participant_identity", ..., min_length=1)
    transfer_to: TransferTarget = _field("transfer_to", ..., description="a sip: or tel: URI")
