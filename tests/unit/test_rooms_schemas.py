"""Room and participant bodies: the contract's limits, LiveKit's field names (and its
lowerCamelCase spelling), the one bridge to LiveKit's messages, and real OpenAPI schemas."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from livekit import api
from pydantic import ValidationError

from app.main import create_app
from schemas.bridge import to_proto
from schemas.rooms import (
    CreateRoomRequest,
    DestinationRoomRequest,
    SendDataRequest,
    UpdateParticipantRequest,
    UpdateRoomRequest,
    UpdateSubscriptionsRequest,
)
from tests.conftest import make_settings

TOO_LONG_NAME = "é" * 129  # 258 bytes, 129 characters
TOO_MUCH_METADATA = "x" * (512 * 1024 + 1)


def test_create_room_takes_every_livekit_field_and_camel_case():
    body = CreateRoomRequest.model_validate(
        {
            "name": "r",
            "emptyTimeout": 60,
            "departure_timeout": 5,
            "max_participants": 3,
            "metadata": "m",
            "min_playout_delay": 100,
            "maxPlayoutDelay": 200,
            "sync_streams": True,
            "room_preset": "p",
            "agents": [{"agent_name": "a", "metadata": "x"}],
            "tags": {"team": "blue"},
        }
    )
    request = to_proto(body, api.CreateRoomRequest)
    assert (request.name, request.empty_timeout, request.max_playout_delay) == ("r", 60, 200)
    assert request.sync_streams is True
    assert [(a.agent_name, a.metadata) for a in request.agents] == [("a", "x")]
    assert dict(request.tags) == {"team": "blue"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": TOO_LONG_NAME},
        {"name": ""},
        {},
        {"name": "r", "metadata": TOO_MUCH_METADATA},
        {"name": "r", "unknown_field": 1},
    ],
)
def test_create_room_limits(body):
    with pytest.raises(ValidationError):
        CreateRoomRequest.model_validate(body)


def test_limits_count_bytes_not_characters():
    assert CreateRoomRequest.model_validate({"name": "é" * 128}).name == "é" * 128
    with pytest.raises(ValidationError):
        UpdateRoomRequest.model_validate({"metadata": TOO_MUCH_METADATA})
    with pytest.raises(ValidationError):
        DestinationRoomRequest.model_validate({"destination_room": TOO_LONG_NAME})


@pytest.mark.parametrize(
    "body",
    [
        {"name": TOO_LONG_NAME},
        {"metadata": TOO_MUCH_METADATA},
        {"attributes": {"k": "v" * (64 * 1024)}},
        {"permission": {"can_publish": "maybe"}},
        {"permission": {"not_a_grant": True}},
    ],
)
def test_participant_update_limits(body):
    with pytest.raises(ValidationError):
        UpdateParticipantRequest.model_validate(body)


def test_participant_update_reaches_livekit_by_proto_names():
    body = UpdateParticipantRequest.model_validate(
        {"attributes": {"a": "1"}, "permission": {"canPublish": False, "can_subscribe": True}}
    )
    fields = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    request = to_proto({**fields, "room": "r", "identity": "i"}, api.UpdateParticipantRequest)
    assert dict(request.attributes) == {"a": "1"}
    assert request.HasField("permission")
    assert (request.permission.can_publish, request.permission.can_subscribe) == (False, True)
    assert request.metadata == "" and request.name == ""


def test_send_data_text_and_binary_become_livekit_bytes():
    text = SendDataRequest.model_validate({"text": "grüße", "topic": "t"})
    request = to_proto(text.to_livekit("r"), api.SendDataRequest)
    assert (request.room, request.data, request.topic) == ("r", "grüße".encode(), "t")
    assert request.kind == api.DataPacket.Kind.RELIABLE

    payload = bytes(range(256))
    binary = SendDataRequest.model_validate(
        {
            "data": base64.b64encode(payload).decode(),
            "kind": "LOSSY",
            "destinationIdentities": ["a", "b"],
        }
    )
    request = to_proto(binary.to_livekit("r"), api.SendDataRequest)
    assert request.data == payload
    assert request.kind == api.DataPacket.Kind.LOSSY
    assert list(request.destination_identities) == ["a", "b"]
    assert not request.HasField("topic")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": "a", "data": "YQ=="},
        {"data": "not base64!"},
        {"data": "YQ"},  # bad padding
        {"text": "a", "kind": "KIND_RELIABLE"},
        {"text": "a", "destination_identities": [TOO_LONG_NAME]},
    ],
)
def test_send_data_refusals(body):
    with pytest.raises(ValidationError):
        SendDataRequest.model_validate(body)


def test_subscriptions_need_subscribe():
    with pytest.raises(ValidationError):
        UpdateSubscriptionsRequest.model_validate({"track_sids": ["TR_x"]})
    body = UpdateSubscriptionsRequest.model_validate(
        {"participantTracks": [{"participantSid": "PA_x", "trackSids": ["TR_x"]}], "subscribe": 1}
    )
    fields = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    request = to_proto({**fields, "room": "r", "identity": "i"}, api.UpdateSubscriptionsRequest)
    assert request.subscribe is True
    assert [(p.participant_sid, list(p.track_sids)) for p in request.participant_tracks] == [
        ("PA_x", ["TR_x"])
    ]


ROOM_OPERATIONS = {
    "create_room": ("post", "/v1/rooms", "201", "Room"),
    "list_rooms": ("get", "/v1/rooms", "200", "Page_Room_"),
    "get_room": ("get", "/v1/rooms/{room}", "200", "Room"),
    "update_room": ("patch", "/v1/rooms/{room}", "200", "Room"),
    "delete_room": ("delete", "/v1/rooms/{room}", "204", None),
    "send_data": ("post", "/v1/rooms/{room}/data", "204", None),
    "list_participants": ("get", "/v1/rooms/{room}/participants", "200", "Page_ParticipantInfo_"),
    "get_participant": (
        "get",
        "/v1/rooms/{room}/participants/{identity}",
        "200",
        "ParticipantInfo",
    ),
    "update_participant": (
        "patch",
        "/v1/rooms/{room}/participants/{identity}",
        "200",
        "ParticipantInfo",
    ),
    "remove_participant": ("delete", "/v1/rooms/{room}/participants/{identity}", "204", None),
    "mute_published_track": (
        "post",
        "/v1/rooms/{room}/participants/{identity}/tracks/{track_sid}/mute",
        "200",
        "MuteRoomTrackResponse",
    ),
    "update_subscriptions": (
        "post",
        "/v1/rooms/{room}/participants/{identity}/subscriptions",
        "204",
        None,
    ),
    "forward_participant": (
        "post",
        "/v1/rooms/{room}/participants/{identity}/forward",
        "204",
        None,
    ),
    "move_participant": ("post", "/v1/rooms/{room}/participants/{identity}/move", "204", None),
}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict:
    settings = make_settings("http://127.0.0.1:9", Path(tmp_path_factory.mktemp("openapi")))
    return create_app(settings).openapi()


@pytest.mark.parametrize("operation_id", sorted(ROOM_OPERATIONS))
def test_openapi_shows_real_schemas(openapi, operation_id):
    method, path, status, response_schema = ROOM_OPERATIONS[operation_id]
    operation = openapi["paths"][path][method]
    assert operation["operationId"] == operation_id
    success = operation["responses"][status]
    if response_schema is None:
        assert "content" not in success
    else:
        schema = success["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{response_schema}"}
        assert openapi["components"]["schemas"][response_schema]["properties"]
    if "requestBody" in operation:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    for error in ("401", "403", "422", "502", "503", "504"):
        assert "application/problem+json" in operation["responses"][error]["content"]
    if "{room}" in path:
        assert "application/problem+json" in operation["responses"]["404"]["content"]


def test_livekit_objects_in_openapi_have_their_fields(openapi):
    schemas = openapi["components"]["schemas"]
    assert {"sid", "name", "metadata", "num_participants"} <= set(schemas["Room"]["properties"])
    assert {"identity", "tracks", "permission", "attributes"} <= set(
        schemas["ParticipantInfo"]["properties"]
    )
    assert schemas["Page_Room_"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/Room"
    }
