"""The token routes over HTTP (in-process, no LiveKit needed): status codes, problem+json,
headers, caller identification and limits."""

from __future__ import annotations

import json
import os
import random
import time
import uuid

import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from httpx import Response

from app.http.request_ids import new_request_id
from tests.conftest import API_KEY, API_SECRET, auth

UNUSED_LIVEKIT = "http://127.0.0.1:9"  # the token routes never call LiveKit


@pytest.fixture
async def http(app_client):
    async with app_client(UNUSED_LIVEKIT) as client:
        yield client


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_a_request_without_an_id_gets_a_fresh_uuid(http):
    ids = set()
    for given in ({}, {"X-Request-ID": ""}, {"X-Request-ID": "has space"}):
        response = await http.post("/v1/token", json={"roomName": "demo"}, headers=given)
        assert response.status_code == 201
        ids.add(uuid.UUID(response.headers["x-request-id"]))
    assert len(ids) == 3 and {i.version for i in ids} == {4}


def test_request_ids_do_not_follow_the_random_modules_seed():
    random.seed(7)
    first = new_request_id()
    random.seed(7)
    assert new_request_id() != first


def test_request_ids_differ_in_a_forked_process():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes one id and leaves at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    assert uuid.UUID(theirs).version == 4
    assert theirs != new_request_id()


async def test_token_endpoint_contract(http):
    response = await http.post(
        "/v1/token",
        json={"roomName": "demo", "participantIdentity": "alice", "participantName": "Alice"},
        headers={"X-Request-ID": "req-123"},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"] == "req-123"
    body = response.json()
    assert body["server_url"] == "ws://127.0.0.1:9"
    assert (body["room_name"], body["participant_identity"], body["participant_name"]) == (
        "demo", "alice", "Alice",
    )  # fmt: skip
    claims = jwt.decode(body["participant_token"], API_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["video"]["room"] == "demo"


async def test_token_endpoint_without_body(http):
    response = await http.post("/v1/token")
    assert response.status_code == 201, response.text
    assert response.json()["room_name"].startswith("room-")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"participant_identity": "é" * 129}, ["body", "participant_identity"]),
        ({"participant_name": "x" * 257}, ["body", "participant_name"]),
        ({"room_name": "r" * 257}, ["body", "room_name"]),
        ({"participant_metadata": "m" * (512 * 1024 + 1)}, ["body", "participant_metadata"]),
        ({"participant_attributes": {"k": "v" * (64 * 1024)}}, ["body", "participant_attributes"]),
        ({"unknown_field": 1}, ["body", "unknown_field"]),
        ({"room_config": {"agents": "nope"}}, ["body", "room_config", "agents"]),
    ],
)
async def test_oversize_and_invalid_fields_are_422(http, body, loc):
    problem = assert_problem(await http.post("/v1/token", json=body), 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [loc]


async def test_exact_limits_are_accepted(http):
    body = {"participant_identity": "é" * 128, "room_name": "r" * 256}
    assert (await http.post("/v1/token", json=body)).status_code == 201


async def test_malformed_json_is_400(http):
    response = await http.post(
        "/v1/token", content=b'{"room_name":', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


async def test_unknown_route_is_a_problem(http):
    assert_problem(await http.get("/v1/nothing-here"), 404, "not_found")


async def test_service_key_401_and_403(http):
    response = await http.post("/v1/tokens", json={"identity": "x"})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    response = await http.post(
        "/v1/tokens", json={"identity": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert_problem(response, 401, "invalid_service_key")
    response = await http.post("/v1/tokens", json={"identity": "x"}, headers=auth("reader"))
    problem = assert_problem(response, 403, "missing_scope")
    assert "tokens:admin" in problem["detail"]
    response = await http.post(
        "/v1/tokens", json={"identity": "x", "ttl_seconds": 60}, headers=auth("minter")
    )
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    assert response.json()["identity"] == "x"
    response = await http.post("/v1/tokens", json={"identity": "x"}, headers=auth("admin"))
    assert response.status_code == 201


async def test_full_token_ttl_over_cap_is_422(http):
    response = await http.post("/v1/tokens", json={"ttl_seconds": 10**6}, headers=auth("minter"))
    assert_problem(response, 422, "validation_failed")


async def test_introspect_round_trip(http):
    minted = await http.post(
        "/v1/tokens",
        json={"identity": "svc", "video": {"room": "r", "room_join": True, "room_admin": True}},
        headers=auth("minter"),
    )
    token = minted.json()["token"]
    response = await http.post(
        "/v1/tokens/introspect", json={"token": token}, headers=auth("minter")
    )
    body = response.json()
    assert body["valid"] is True and body["identity"] == "svc" and body["issuer"] == API_KEY
    # unset publish/subscribe/data grants are written as LiveKit's defaults (true)
    assert body["video"] == {
        "room": "r", "room_join": True, "room_admin": True,
        "can_publish": True, "can_subscribe": True, "can_publish_data": True,
    }  # fmt: skip
    assert body["sip"] is None and body["room_config"] is None

    minted = await http.post("/v1/token", json={"roomConfig": {"agents": [{"agentName": "a1"}]}})
    token = minted.json()["participant_token"]
    response = await http.post(
        "/v1/tokens/introspect", json={"token": token}, headers=auth("minter")
    )
    assert response.json()["room_config"] == {"agents": [{"agent_name": "a1"}]}

    forged = jwt.encode({"iss": API_KEY, "sub": "svc", "exp": 9999999999}, "wrong" * 8)
    response = await http.post(
        "/v1/tokens/introspect", json={"token": forged}, headers=auth("minter")
    )
    assert response.json() == {
        "valid": False,
        "reason": "bad_signature",
    }


async def test_policy_forbidden_field_is_403(app_client):
    policy = {"anonymous": {"allow_metadata": False}}
    async with app_client(UNUSED_LIVEKIT, token_policy=policy) as http:
        response = await http.post("/v1/token", json={"participant_metadata": "x"})
        problem = assert_problem(response, 403, "field_not_allowed")
        assert problem["field"] == "participant_metadata"


async def test_no_anonymous_rule_means_401(app_client):
    async with app_client(UNUSED_LIVEKIT, token_policy={"service_keys": {}}) as http:
        assert_problem(await http.post("/v1/token"), 401, "unauthorized")
        ok = await http.post("/v1/token", headers=auth("issuer"))
        assert ok.status_code == 201
        assert_problem(await http.post("/v1/token", headers=auth("reader")), 403, "missing_scope")


async def test_rate_limit_per_caller(app_client):
    policy = {"anonymous": {"rate_limit": "2/minute"}}
    async with app_client(UNUSED_LIVEKIT, token_policy=policy) as http:
        for _ in range(2):
            assert (await http.post("/v1/token")).status_code == 201
        response = await http.post("/v1/token")
        assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_end_user_hs256(app_client):
    secret = "h" * 40
    policy = {
        "end_users": {
            "hs256_secret": secret,
            "issuer": "https://idp.example",
            "rule": {"rooms": ["*"]},
        }
    }
    async with app_client(UNUSED_LIVEKIT, token_policy=policy) as http:
        user = jwt.encode(
            {"sub": "user-7", "iss": "https://idp.example", "exp": int(time.time()) + 60}, secret
        )
        response = await http.post(
            "/v1/token", json={"room_name": "r"}, headers={"Authorization": f"Bearer {user}"}
        )
        assert response.status_code == 201, response.text
        assert response.json()["participant_identity"] == "user-7"
        response = await http.post(
            "/v1/token",
            json={"participant_identity": "admin"},
            headers={"Authorization": f"Bearer {user}"},
        )
        assert_problem(response, 403, "field_not_allowed")
        wrong = jwt.encode({"sub": "x", "iss": "https://idp.example", "exp": 9999999999}, "z" * 40)
        response = await http.post("/v1/token", headers={"Authorization": f"Bearer {wrong}"})
        assert_problem(response, 401, "invalid_user_token")


async def test_end_user_jwks(app_client):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    policy = {
        "end_users": {
            "jwks_url": "https://idp.example/.well-known/jwks.json",
            "rule": {"rooms": ["*"]},
        }
    }
    with respx.mock(assert_all_called=True) as idp:
        route = idp.get("https://idp.example/.well-known/jwks.json").mock(Response(200, json=jwks))
        async with app_client(UNUSED_LIVEKIT, token_policy=policy) as http:
            user = jwt.encode(
                {"sub": "rsa-user", "exp": int(time.time()) + 60},
                private,
                algorithm="RS256",
                headers={"kid": "k1"},
            )
            for _ in range(2):
                response = await http.post("/v1/token", headers={"Authorization": f"Bearer {user}"})
                assert response.status_code == 201, response.text
                assert response.json()["participant_identity"] == "rsa-user"
            assert route.call_count == 1  # the key set is cached


async def test_metrics_count_requests_by_route_template(http):
    await http.post("/v1/token", json={"room_name": "metrics-room"})
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert any(
        line.startswith("control_plane_http_requests_total{")
        and 'route="/v1/token"' in line
        and 'status="201"' in line
        for line in lines
    )
    assert "metrics-room" not in response.text  # names never become label values


async def test_an_unknown_method_is_counted_as_other_not_by_its_name(http):
    response = await http.request("BREW-COFFEE-42", "/v1/token")
    assert response.status_code == 405
    text = (await http.get("/metrics")).text
    assert "BREW-COFFEE-42" not in text
    assert any(
        line.startswith("control_plane_http_requests_total{")
        and 'method="other"' in line
        and 'status="405"' in line
        for line in text.splitlines()
    )
