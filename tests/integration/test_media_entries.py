"""Egress descriptions that enter beside the egress routes pass the same check (contract:
Conventions): `room_config.egress` on `POST /v1/token` and `POST /v1/tokens`, `egress` on
`POST /v1/rooms`, a SIP dispatch rule's `room_config.egress` (create and replace). Each URL
outside MEDIA_URL_ALLOW is 403 `media_url_not_allowed`, each bad scheme or climbing path
422 naming the field, and LiveKit (the real server, with Redis) never gets the request: no
token, no room, no rule, no change."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from livekit import api

from tests.conftest import API_KEY, API_SECRET, auth
from tests.integration.test_sip_crud import create, number

pytestmark = pytest.mark.integration

NOWHERE = "http://127.0.0.1:9"
ALLOW = "https://*.example.com/*,rtmps://live.example.com"
FILE = {"filepath": "rec/{room_name}.mp4"}
EGRESS_POLICY = {"service_keys": {"allow_room_config": True, "allow_room_egress": True}}


def composite(**fields: Any) -> dict[str, Any]:
    """A `RoomEgress` recording the room with `fields` on its `RoomCompositeEgressRequest`."""
    return {"room": {"file_outputs": [FILE], **fields}}


#: (egress description, status, code, the field the problem names)
REFUSED = [
    (composite(custom_base_url="http://169.254.169.254/latest/meta-data/"), 403,
     "media_url_not_allowed", "egress.room.custom_base_url"),
    (composite(custom_base_url="https://a.example.com@169.254.169.254/"), 403,
     "media_url_not_allowed", "egress.room.custom_base_url"),
    ({"room": {"file_outputs": [{"filepath": "../../etc/cron.d/job"}]}}, 422,
     "validation_failed", "egress.room.file_outputs[0].filepath"),
    (composite(webhooks=[{"url": "http://10.0.0.1:8080/hook"}]), 403, "media_url_not_allowed",
     "egress.room.webhooks[0].url"),
    ({"room": {"stream_outputs": [{"urls": ["rtmp://192.168.1.20/live/key"]}]}}, 403,
     "media_url_not_allowed", "egress.room.stream_outputs[0].urls[0]"),
    ({"tracks": {"filepath": "t/{track_id}", "s3": {"bucket": "b",
                                                  "endpoint": "http://127.0.0.1:9000"}}},
     403, "media_url_not_allowed", "egress.tracks.s3.endpoint"),
    (composite(custom_base_url="file:///etc/passwd"), 422, "validation_failed",
     "egress.room.custom_base_url"),
]  # fmt: skip
IDS = ["metadata", "userinfo", "path", "webhook", "rtmp", "s3-endpoint", "scheme"]


def assert_refused(response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert f"`{field}`" in problem["detail"]
    if status == 403:
        assert problem["field"] == field
    else:
        assert problem["errors"][0]["loc"][-1] == field.rpartition(".")[2]


# POST /v1/token, POST /v1/tokens


@pytest.mark.parametrize(("egress", "status", "code", "field"), REFUSED, ids=IDS)
async def test_token_room_config_egress_is_checked(app_client, egress, status, code, field):
    body = {"room_name": "standup", "room_config": {"egress": egress}}
    async with app_client(NOWHERE, token_policy=EGRESS_POLICY, media_url_allow=ALLOW) as http:
        response = await http.post("/v1/token", json=body, headers=auth("issuer"))
        minted = await http.post(
            "/v1/tokens",
            json={"identity": "a", "video": {"room_join": True, "room": "standup"},
                  "room_config": {"egress": egress}},
            headers=auth("minter"),
        )  # fmt: skip
    assert_refused(response, status, code, f"room_config.{field}")
    assert "participant_token" not in response.text
    assert_refused(minted, status, code, f"room_config.{field}")


async def test_token_room_config_egress_within_the_allow_list_is_minted(app_client):
    egress = composite(
        custom_base_url="https://layouts.example.com/grid",
        webhooks=[{"url": "https://hooks.example.com/egress"}],
        stream_outputs=[{"urls": ["rtmps://live.example.com/app/key"]}],
    )
    body = {"room_name": "standup", "room_config": {"egress": egress}}
    async with app_client(NOWHERE, token_policy=EGRESS_POLICY, media_url_allow=ALLOW) as http:
        response = await http.post("/v1/token", json=body, headers=auth("issuer"))
    assert response.status_code == 201, response.text
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(response.json()["participant_token"])
    room = claims.room_config.egress.room
    assert room.custom_base_url == "https://layouts.example.com/grid"


async def test_token_paths_are_checked_without_an_allow_list(app_client):
    body = {"room_config": {"egress": {"tracks": {"filepath": "a/../../b"}}}}
    async with app_client(NOWHERE, token_policy=EGRESS_POLICY) as http:
        response = await http.post("/v1/token", json=body, headers=auth("issuer"))
    assert_refused(response, 422, "validation_failed", "room_config.egress.tracks.filepath")


# POST /v1/rooms


@pytest.mark.parametrize(("egress", "status", "code", "field"), REFUSED, ids=IDS)
async def test_create_room_egress_is_checked_and_no_room_is_created(
    app_client, livekit_server, egress, status, code, field
):
    name = f"media-{uuid.uuid4().hex[:10]}"
    async with app_client(livekit_server.url, media_url_allow=ALLOW) as http:
        response = await http.post(
            "/v1/rooms", json={"name": name, "egress": egress}, headers=auth("admin")
        )
        after = await http.get(f"/v1/rooms/{name}", headers=auth("reader"))
    assert_refused(response, status, code, field)
    assert after.status_code == 404, after.text
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as lkapi:
        listed = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[name]))
    assert list(listed.rooms) == []


# SIP dispatch rules


async def livekit_rules(livekit_server, trunk_id: str) -> list[api.SIPDispatchRuleInfo]:
    """The dispatch rules LiveKit itself holds for `trunk_id`."""
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as lkapi:
        found = await lkapi.sip.list_dispatch_rule(
            api.ListSIPDispatchRuleRequest(trunk_ids=[trunk_id])
        )
    return [rule for rule in found.items if trunk_id in rule.trunk_ids]


@pytest.mark.parametrize(("egress", "status", "code", "field"), REFUSED, ids=IDS)
async def test_dispatch_rule_room_config_egress_is_checked_on_create_and_replace(
    app_client, livekit_server, egress, status, code, field
):
    async with app_client(livekit_server.url, media_url_allow=ALLOW) as http:
        trunk = await create(http, "inbound-trunks", {"name": "media", "numbers": [number()]})
        trunk_id = trunk["sip_trunk_id"]
        rule = {
            "rule": {"dispatch_rule_individual": {"room_prefix": "call"}},
            "trunk_ids": [trunk_id],
            "inbound_numbers": [number()],
        }
        with_egress = {**rule, "room_config": {"egress": egress}}
        refused = await http.post("/v1/sip/dispatch-rules", json=with_egress, headers=auth("admin"))
        assert_refused(refused, status, code, f"room_config.{field}")
        assert await livekit_rules(livekit_server, trunk_id) == []

        created = await create(http, "dispatch-rules", {**rule, "name": "plain"})
        rule_id = created["sip_dispatch_rule_id"]
        replaced = await http.put(
            f"/v1/sip/dispatch-rules/{rule_id}", json=with_egress, headers=auth("admin")
        )
        assert_refused(replaced, status, code, f"room_config.{field}")
        [held] = await livekit_rules(livekit_server, trunk_id)
        assert held.name == "plain"
        assert not held.room_config.HasField("egress")

        for path in (f"dispatch-rules/{rule_id}", f"inbound-trunks/{trunk_id}"):
            deleted = await http.delete(f"/v1/sip/{path}", headers=auth("admin"))
            assert deleted.status_code == 204, deleted.text
