"""The protobuf <-> JSON bridge: LiveKit's field names, enums as names, 64-bit ints as numbers."""

from __future__ import annotations

import pytest
from livekit.protocol import egress, models, room
from pydantic import ValidationError

from app.errors import InvalidInput
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
