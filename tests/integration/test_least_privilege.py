"""Least privilege, against the real LiveKit server: `tokens:admin` for full minting and
introspection, scopes reaching nested fields of `POST /v1/rooms`, a write scope reading its
own service, `room_config.egress` only under `allow_room_egress`, end-user JWTs failing
closed on `aud`, and `X-Forwarded-For` believed only from FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import ValidationError

from tests.components import ServiceProcess
from tests.conftest import API_KEY, API_SECRET, auth, make_settings
from tests.helpers import assert_problem

UNUSED_LIVEKIT = "http://127.0.0.1:9"


# --- tokens:issue versus tokens:admin -------------------------------------------------------


async def test_tokens_issue_cannot_mint_admin_grants_nor_introspect(app_client):
    admin_grants = {
        "identity": "x",
        "video": {"room": "r", "room_join": True, "room_admin": True, "room_record": True},
    }
    async with app_client(
        UNUSED_LIVEKIT, token_policy={"service_keys": {"can_publish": False}}
    ) as http:
        refused = await http.post("/v1/tokens", json=admin_grants, headers=auth("issuer"))
        assert assert_problem(refused, 403, "missing_scope")["scope"] == "tokens:admin"
        minted = await http.post("/v1/tokens", json=admin_grants, headers=auth("minter"))
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        refused = await http.post(
            "/v1/tokens/introspect", json={"token": token}, headers=auth("issuer")
        )
        assert_problem(refused, 403, "missing_scope")
        seen = await http.post(
            "/v1/tokens/introspect", json={"token": token}, headers=auth("minter")
        )
        assert seen.json()["video"]["room_admin"] is True
        # tokens:issue still serves /v1/token, under the service_keys rule only
        issued = await http.post("/v1/token", json={"room_name": "r"}, headers=auth("issuer"))
        assert issued.status_code == 201, issued.text
        claims = jwt.decode(issued.json()["participant_token"], options={"verify_signature": False})
        assert claims["video"].get("canPublish") is False
        assert not {"roomAdmin", "roomRecord"} & claims["video"].keys()


# --- scopes reach nested fields; a write scope reads its service --------------------------


async def test_create_room_with_agents_or_egress_needs_their_scopes(app_client, livekit_server):
    name = f"nested-{secrets.token_hex(3)}"
    with_agents = {"name": name, "agents": [{"agent_name": "helper"}]}
    with_egress = {
        "name": name,
        "egress": {"room": {"file_outputs": [{"filepath": "/tmp/x.mp4"}]}},
    }
    async with app_client(livekit_server.url) as http:
        refused = await http.post("/v1/rooms", json=with_agents, headers=auth("room-writer"))
        assert assert_problem(refused, 403, "missing_scope")["scope"] == "dispatch:write"
        refused = await http.post("/v1/rooms", json=with_egress, headers=auth("room-writer"))
        assert assert_problem(refused, 403, "missing_scope")["scope"] == "egress:write"
        rooms = await http.get("/v1/rooms", params={"names": name}, headers=auth("admin"))
        assert rooms.json()["items"] == []  # nothing was created by the refused calls
        plain = await http.post("/v1/rooms", json={"name": name}, headers=auth("room-writer"))
        assert plain.status_code == 201, plain.text
        with_agents["name"] = f"{name}-a"
        allowed = await http.post("/v1/rooms", json=with_agents, headers=auth("admin"))
        assert allowed.status_code == 201, allowed.text
        await http.delete(f"/v1/rooms/{name}", headers=auth("admin"))
        await http.delete(f"/v1/rooms/{name}-a", headers=auth("admin"))


async def test_rooms_write_includes_reading_rooms(app_client, livekit_server):
    name = f"readable-{secrets.token_hex(3)}"
    async with app_client(livekit_server.url) as http:
        created = await http.post("/v1/rooms", json={"name": name}, headers=auth("room-writer"))
        assert created.status_code == 201, created.text
        listed = await http.get("/v1/rooms", params={"names": name}, headers=auth("room-writer"))
        assert listed.status_code == 200, listed.text
        assert [r["name"] for r in listed.json()["items"]] == [name]
        one = await http.get(f"/v1/rooms/{name}", headers=auth("room-writer"))
        assert one.status_code == 200
        dispatches = await http.get(f"/v1/rooms/{name}/dispatches", headers=auth("room-writer"))
        assert dispatches.status_code == 200  # reading dispatches is rooms:read
        events = await http.get("/v1/webhooks/events", headers=auth("room-writer"))
        assert_problem(events, 403, "missing_scope")
        await http.delete(f"/v1/rooms/{name}", headers=auth("room-writer"))


# --- /v1/token: recording only where the rule allows it -------------------------------------

EGRESS_CONFIG = {"egress": {"room": {"file_outputs": [{"filepath": "/tmp/rec.mp4"}]}}}


@pytest.mark.parametrize("allow_room_config", [False, True])
async def test_room_config_egress_needs_allow_room_egress(app_client, allow_room_config):
    rule = {"allow_room_config": allow_room_config}
    async with app_client(UNUSED_LIVEKIT, token_policy={"anonymous": rule}) as http:
        refused = await http.post("/v1/token", json={"room_config": EGRESS_CONFIG})
        assert assert_problem(refused, 403, "field_not_allowed")["field"] == "room_config.egress"
    rule = {"allow_room_config": True, "allow_room_egress": True}
    async with app_client(UNUSED_LIVEKIT, token_policy={"anonymous": rule}) as http:
        minted = await http.post("/v1/token", json={"room_config": EGRESS_CONFIG})
        assert minted.status_code == 201, minted.text
        claims = jwt.decode(minted.json()["participant_token"], options={"verify_signature": False})
        assert claims["roomConfig"]["egress"]["room"]["fileOutputs"][0]["filepath"]


# --- end-user JWTs fail closed --------------------------------------------------------------

USER_SECRET = "u" * 40


def user_token(**claims: object) -> dict[str, str]:
    payload = {"sub": "user-1", "exp": int(time.time()) + 60, **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, USER_SECRET)}"}


@pytest.mark.parametrize("audience", [None, "control-plane"], ids=["no-audience", "audience"])
async def test_an_end_user_token_for_another_audience_is_refused(app_client, audience):
    end_users = {"hs256_secret": USER_SECRET, "rule": {"rooms": ["*"]}}
    if audience:
        end_users |= {"audience": audience, "issuer": "https://idp.example"}
    async with app_client(UNUSED_LIVEKIT, token_policy={"end_users": end_users}) as http:
        other = user_token(aud="another-service", iss="https://idp.example")
        assert_problem(await http.post("/v1/token", headers=other), 401, "invalid_user_token")
        if audience:
            ours = user_token(aud=audience, iss="https://idp.example")
            assert (await http.post("/v1/token", headers=ours)).status_code == 201
            missing = user_token(iss="https://idp.example")
            assert_problem(await http.post("/v1/token", headers=missing), 401, "invalid_user_token")
            wrong_iss = user_token(aud=audience, iss="https://evil.example")
            assert_problem(
                await http.post("/v1/token", headers=wrong_iss), 401, "invalid_user_token"
            )


async def test_end_users_get_no_room_unless_the_rule_names_some(app_client):
    end_users = {"hs256_secret": USER_SECRET, "rule": {"rooms": ["user-{identity}-*"]}}
    async with app_client(UNUSED_LIVEKIT, token_policy={"end_users": end_users}) as http:
        refused = await http.post("/v1/token", json={"room_name": "lobby"}, headers=user_token())
        assert_problem(refused, 403, "room_not_allowed")
        minted = await http.post("/v1/token", headers=user_token())
        assert minted.json()["room_name"].startswith("user-user-1-")
    for rule in ({}, {"rule": {}}, {"rule": {"rooms": []}}):
        with pytest.raises(ValidationError, match=r"end_users\.rule"):
            make_settings(
                UNUSED_LIVEKIT,
                Path("/nonexistent"),
                token_policy={"end_users": {"hs256_secret": USER_SECRET, **rule}},
            )


# --- X-Forwarded-For ------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"], ids=["default", "proxy-trusted"])
def test_x_forwarded_for_picks_the_bucket_only_from_trusted_proxies(trusted):
    env = {
        "LIVEKIT_URL": UNUSED_LIVEKIT,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "TOKEN_POLICY": '{"anonymous": {"rate_limit": "2/minute"}}',
        "FORWARDED_ALLOW_IPS": trusted,
    }
    service = ServiceProcess(env).start()
    try:
        statuses = [
            httpx.post(
                f"{service.url}/v1/token", headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(4)
        ]
    finally:
        service.stop()
    if trusted:
        assert statuses == [201] * 4  # each forwarded client has its own bucket
    else:
        assert statuses == [201, 201, 429, 429]  # one bucket: the connection's address
