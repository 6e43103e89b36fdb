"""The protobuf <-> JSON bridge: LiveKit's field names, enums as names, 64-bit ints as numbers."""

from __future__ import annotations

import pytest
from livekit.protocol import egress, models, room
from pydantic import ValidationError

from app.core.errors import InvalidInput
from schemas.bridge import model_for, to_json, to_proto


def test_int64_fields_are_json_numbers_and_enums_names():
    info = models.ParticipantInfo(
        identity="a", joined_at=1_795_000_000, state=models.ParticipantInfo.ACTIVE
    )
    data = to_json(info)
    assert data["joined_at"] == 1_795_000_000 and data["state"] == "ACTIVE"
    assert data["name"] == ""  # every field present
    assert to_json(info, with_defaults=False) == {
        "identity": "a", "joined_at": 1_795_000_000, "state": "ACTIVE"
    }  # fmt: skip


def test_int64_inside_repeated_and_map_messages():
    info = egress.EgressInfo(file_results=[egress.FileInfo(size=2**40, duration=3)])
    assert to_json(info)["file_results"][0]["size"] == 2**40


def test_requests_accept_snake_and_camel_case_and_refuse_unknown_fields():
    create_room_model = model_for(room.CreateRoomRequest)
    body = create_room_model.model_validate(
        {"name": "r", "emptyTimeout": 30, "agents": [{"agentName": "a", "metadata": "m"}]}
    )
    message = to_proto(body, room.CreateRoomRequest)
    assert (message.name, message.empty_timeout, message.agents[0].agent_name) == ("r", 30, "a")
    with pytest.raises(ValidationError):
        create_room_model.model_validate({"name": "r", "no_such_field": 1})


def test_only_fields_the_caller_set_are_sent():
    body = model_for(room.CreateRoomRequest).model_validate({"name": "r"})
    assert to_proto(body, room.CreateRoomRequest) == room.CreateRoomRequest(name="r")


def test_protobuf_refusals_are_422():
    with pytest.raises(InvalidInput):
        to_proto({"data": "not base64!"}, room.SendDataRequest)


def test_an_enum_value_newer_than_the_sdk_survives_as_its_number():
    info = models.ParticipantInfo(identity="a")
    info.state = 77  # a state a future LiveKit may send
    data = to_json(info)
    participant_model = model_for(models.ParticipantInfo)
    assert participant_model.model_validate(data).model_dump(mode="json")["state"] == 77


def test_proto_names_that_shadow_pydantic_attributes_keep_their_wire_name():
    data_track_model = model_for(models.DataTrackInfo)
    assert "schema" in data_track_model.model_json_schema()["properties"]


def test_openapi_schema_names_every_field():
    schema = model_for(models.Room).model_json_schema()
    assert {"sid", "name", "empty_timeout", "creation_time", "metadata"} <= set(
        schema["properties"]
    )


# --- oneofs -----------------------------------------------------------------------------


def test_two_members_of_one_oneof_are_a_validation_error_naming_both():
    request_model = model_for(egress.TrackEgressRequest)
    with pytest.raises(ValidationError) as caught:
        request_model.model_validate(
            {"room_name": "r", "track_id": "TR_a", "file": {"filepath": "a.ogg"},
             "websocket_url": "wss://example.test/ws"}
        )  # fmt: skip
    message = str(caught.value)
    assert "`file`" in message and "`websocket_url`" in message
    assert "exactly one of" in message


def test_nested_oneof_clash_is_refused_at_its_depth_in_camel_case_too():
    request_model = model_for(egress.RoomCompositeEgressRequest)
    with pytest.raises(ValidationError) as caught:
        request_model.model_validate(
            {"roomName": "r", "fileOutputs": [{"filepath": "a.mp4", "s3": {"bucket": "b"},
                                               "gcp": {"bucket": "b"}}]}
        )  # fmt: skip
    assert "`s3` and `gcp` are both given" in str(caught.value)
    assert caught.value.errors()[0]["loc"][:2] == ("fileOutputs", 0)


def test_one_member_of_each_oneof_is_fine_and_reaches_protobuf():
    body = model_for(egress.RoomCompositeEgressRequest).model_validate(
        {"room_name": "r", "file": {"filepath": "a.mp4"}, "preset": "H264_720P_30"}
    )
    message = to_proto(body, egress.RoomCompositeEgressRequest)
    assert message.WhichOneof("output") == "file" and message.WhichOneof("options") == "preset"


def test_to_proto_of_a_dict_names_both_members_not_protobufs_text():
    with pytest.raises(InvalidInput) as caught:
        to_proto(
            {"room_name": "r", "image_outputs": [{"s3": {"bucket": "b"}, "azure": {}}]},
            egress.ParticipantEgressRequest,
        )
    assert "`s3` and `azure` are both given" in caught.value.detail
    assert caught.value.extra["errors"][0]["loc"] == ["image_outputs", 0]


def test_proto3_optional_fields_are_not_oneof_groups():
    from livekit.protocol import ingress

    from schemas.bridge import oneof_groups

    assert oneof_groups(ingress.UpdateIngressRequest.DESCRIPTOR) == []
    body = model_for(ingress.UpdateIngressRequest).model_validate(
        {"ingress_id": "IN_a", "enabled": True, "enable_transcoding": False}
    )
    assert to_proto(body, ingress.UpdateIngressRequest).enabled is True


def test_openapi_says_exactly_one_of_for_each_group_and_member():
    schema = model_for(egress.WebEgressRequest).model_json_schema()
    assert "oneof `output`: exactly one of `file`, `stream`, `segments`" in schema["description"]
    assert "oneof `options`: exactly one of `preset`, `advanced`" in schema["description"]
    member = schema["properties"]["stream"]
    assert member["x-oneof"] == "output"
    assert "exactly one of" in member["description"]
    upload = schema["$defs"]["EncodedFileOutput"]
    assert "oneof `output`: exactly one of `s3`, `gcp`, `azure`, `aliOSS`" in upload["description"]


# --- redaction ----------------------------------------------------------------------------

S3 = {"access_key": "AKIA-visible", "secret": "s3-secret-value", "session_token": "tok-value",
      "bucket": "b", "proxy": {"url": "http://proxy", "password": "proxy-pass"}}  # fmt: skip


def _egress_info_with_every_upload() -> egress.EgressInfo:
    request = to_proto(
        {
            "room_name": "r",
            "file_outputs": [{"filepath": "a.mp4", "s3": S3}],
            "segment_outputs": [{"gcp": {"credentials": "gcp-json-key", "bucket": "b"}}],
            "image_outputs": [
                {"azure": {"account_name": "acct", "account_key": "azure-key"}},
                {"aliOSS": {"access_key": "ali", "secret": "ali-secret"}},
            ],
        },
        egress.RoomCompositeEgressRequest,
    )
    return egress.EgressInfo(egress_id="EG_a", room_composite=request)


SECRETS = ("s3-secret-value", "tok-value", "proxy-pass", "gcp-json-key", "azure-key", "ali-secret")


def test_to_json_never_renders_a_credential_at_any_depth():
    text = str(to_json(_egress_info_with_every_upload()))
    assert not [s for s in SECRETS if s in text]
    assert "AKIA-visible" in text and "acct" in text  # identifiers are not credentials
    assert "secret" not in to_json(_egress_info_with_every_upload(), with_defaults=False)[
        "room_composite"]["file_outputs"][0]["s3"]  # fmt: skip


def test_redacted_copy_is_what_a_log_line_may_show_and_the_original_is_untouched():
    from schemas.credentials import redacted

    info = _egress_info_with_every_upload()
    assert not [s for s in SECRETS if s in str(redacted(info))]
    assert info.room_composite.file_outputs[0].s3.secret == "s3-secret-value"


def test_sip_passwords_and_turn_password_are_redacted():
    from livekit.protocol import sip

    trunk = sip.SIPOutboundTrunkInfo(sip_trunk_id="ST_a", auth_username="u", auth_password="pw")
    assert "auth_password" not in to_json(trunk) and to_json(trunk)["auth_username"] == "u"
    assert "turn_password" not in to_json(models.Room(name="r", turn_password="turn"))


def test_dispatch_rule_pins_are_write_only_at_every_kind():
    from livekit.protocol import sip

    rule = sip.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_a",
        rule=sip.SIPDispatchRule(
            dispatch_rule_individual=sip.SIPDispatchRuleIndividual(room_prefix="c", pin="4321")
        ),
    )
    shown = to_json(rule)["rule"]["dispatch_rule_individual"]
    assert shown["room_prefix"] == "c" and "pin" not in shown
    schema = model_for(sip.SIPDispatchRuleDirect).model_json_schema()
    assert schema["properties"]["pin"]["writeOnly"] is True


def test_withheld_fields_are_left_out_at_any_depth_of_an_item_or_a_page():
    from livekit.protocol import ingress, webhook

    from schemas.bridge import to_page
    from schemas.credentials import STREAM_KEY_FIELDS

    info = ingress.IngressInfo(ingress_id="IN_a", stream_key="sk-value", url="rtmp://h/x")
    event = webhook.WebhookEvent(id="EV_a", event="ingress_started", ingress_info=info)
    assert to_json(info)["stream_key"] == "sk-value"  # shown unless withheld
    assert to_json(event)["ingress_info"]["stream_key"] == "sk-value"
    for shown in (
        to_json(info, withheld=STREAM_KEY_FIELDS),
        to_json(event, withheld=STREAM_KEY_FIELDS)["ingress_info"],
        to_page([info], withheld=STREAM_KEY_FIELDS)["items"][0],
    ):
        assert "stream_key" not in shown and shown["url"] == "rtmp://h/x"


def test_secret_fields_are_write_only_in_openapi():
    schema = model_for(egress.S3Upload).model_json_schema()
    assert schema["properties"]["secret"]["writeOnly"] is True
    assert "writeOnly" not in schema["properties"]["access_key"]


def test_every_secret_field_names_a_real_field():
    from google.protobuf import descriptor_pool

    from schemas.credentials import SECRET_FIELDS, STREAM_KEY_FIELDS

    pool = descriptor_pool.Default()
    for full_name in SECRET_FIELDS | STREAM_KEY_FIELDS:
        assert pool.FindFieldByName(full_name).full_name == full_name


# --- pages --------------------------------------------------------------------------------


def test_to_page_carries_livekits_token_and_null_on_the_last_page():
    from schemas.bridge import to_page

    items = [egress.EgressInfo(egress_id="EG_a")]
    assert to_page(items, "next-1")["next_page_token"] == "next-1"
    page = to_page(items, "")
    assert page["next_page_token"] is None and page["items"][0]["egress_id"] == "EG_a"
