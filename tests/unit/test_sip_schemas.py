"""SIP request models: E.164 numbers, sip:/tel: transfer targets, IP ranges, LiveKit's
`ListUpdate`, fields LiveKit assigns; and the ringing deadline a call is given."""

from __future__ import annotations

import pytest
from livekit import api
from pydantic import ValidationError

from app.server_apis.sip import _pin_ringing
from schemas.bridge import to_proto
from schemas.sip import (
    CreateSIPParticipantRequest,
    DispatchRuleUpdate,
    InboundTrunkRequest,
    InboundTrunkUpdate,
    TransferSIPParticipantRequest,
)


@pytest.mark.parametrize("good", ["+15105550100", "+442071838750", "+49301234567890", "+12"])
def test_e164_numbers_are_accepted(good):
    assert InboundTrunkRequest.model_validate({"numbers": [good]}).numbers == [good]


@pytest.mark.parametrize(
    "bad",
    ["15105550100", "+05105550100", "+1 510 555 0100", "+1510555010012345", "+", "", "tel:+1555"],
)
def test_numbers_that_are_not_e164_are_refused_naming_the_field(bad):
    with pytest.raises(ValidationError) as caught:
        InboundTrunkRequest.model_validate({"allowed_numbers": ["+15105550100", bad]})
    [error] = caught.value.errors()
    assert error["loc"] == ("allowed_numbers", 1)
    assert "E.164" in error["msg"]


@pytest.mark.parametrize(
    "good",
    [
        "sip:+15105550100@sip.example.com",
        "sip:alice@192.0.2.10:5060;transport=tcp",
        "sips:bob@pbx.example.com",
        "sip:pbx.example.com",
        "tel:+15105550100",
        "tel:+1-510-555-0100;ext=12",
    ],
)
def test_sip_and_tel_uris_are_transfer_targets(good):
    body = {"room_name": "r", "participant_identity": "p", "transfer_to": good}
    assert TransferSIPParticipantRequest.model_validate(body).transfer_to == good


@pytest.mark.parametrize(
    "bad", ["+15105550100", "tel:5550100", "http://example.com", "sip:", "sip:a b@example.com"]
)
def test_other_transfer_targets_are_refused(bad):
    body = {"room_name": "r", "participant_identity": "p", "transfer_to": bad}
    with pytest.raises(ValidationError) as caught:
        TransferSIPParticipantRequest.model_validate(body)
    assert [e["loc"] for e in caught.value.errors()] == [("transfer_to",)]


def test_allowed_addresses_are_ip_addresses_or_ranges():
    good = ["192.0.2.1", "198.51.100.0/24", "2001:db8::/32"]
    assert InboundTrunkRequest.model_validate({"allowed_addresses": good}).allowed_addresses == good
    with pytest.raises(ValidationError):
        InboundTrunkRequest.model_validate({"allowed_addresses": ["sip.example.com"]})


def test_a_patch_list_is_livekits_list_update_and_a_plain_list_is_set():
    update = InboundTrunkUpdate.model_validate(
        {"numbers": {"add": ["+15105550101"], "remove": ["+15105550100"]}, "allowedNumbers": []}
    )
    message = to_proto(update, api.SIPInboundTrunkUpdate)
    assert list(message.numbers.add) == ["+15105550101"]
    assert list(message.numbers.remove) == ["+15105550100"]
    assert message.HasField("allowed_numbers")
    cleared = to_proto(
        DispatchRuleUpdate.model_validate({"trunk_ids": {"clear": True}}), api.SIPDispatchRuleUpdate
    )
    assert cleared.trunk_ids.clear
    with pytest.raises(ValidationError):
        InboundTrunkUpdate.model_validate({"numbers": {"add": ["5550101"]}})


@pytest.mark.parametrize("field", ["sip_trunk_id", "createdAt", "updated_at"])
def test_fields_livekit_assigns_are_refused(field):
    with pytest.raises(ValidationError) as caught:
        InboundTrunkRequest.model_validate({field: "x"})
    assert field.replace("createdAt", "created_at") in str(caught.value)


def test_a_call_needs_exactly_one_trunk():
    base = {"sip_call_to": "+15105550100", "room_name": "r"}
    with pytest.raises(ValidationError):
        CreateSIPParticipantRequest.model_validate(base)
    with pytest.raises(ValidationError):
        CreateSIPParticipantRequest.model_validate(
            {**base, "sip_trunk_id": "ST_a", "trunk": {"hostname": "sip.example.com"}}
        )
    CreateSIPParticipantRequest.model_validate({**base, "trunk": {"hostname": "sip.example.com"}})


@pytest.mark.parametrize(
    ("asked", "deadline", "rings"),
    [(None, 40, 30), ("20s", 40, 20), ("60s", 40, 38), (None, 5, 3), ("0s", 40, 1), (None, 2.5, 1)],
)
def test_a_call_rings_less_than_the_services_deadline(asked, deadline, rings):
    request = api.CreateSIPParticipantRequest(sip_call_to="+15105550100")
    if asked is not None:
        request.ringing_timeout.FromJsonString(asked)
    _pin_ringing(request, deadline)
    assert request.ringing_timeout.seconds == rings
