"""SIP trunks and dispatch rules against the real LiveKit server (dev mode, with Redis):
create, list with paging, get, PATCH (LiveKit's `update` form with `ListUpdate`s), PUT (its
`replace` form), delete; the server's own conflicts; write-only passwords and dispatch rule
PINs; validation before LiveKit is called."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time

import pytest
from livekit import api

from tests.conftest import API_KEY, API_SECRET, auth

pytestmark = pytest.mark.integration

PASSWORD = "trunk-password-never-shown-9f3a"
PIN = "pin-never-shown-5e81"
_numbers = itertools.count(int(time.time() * 1000) % 10**9)


def number() -> str:
    """An E.164 number no other test uses."""
    return f"+1555{next(_numbers) % 10**7:07d}"


async def create(client, path: str, body: dict, key: str = "admin") -> dict:
    response = await client.post(f"/v1/sip/{path}", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def livekit_inbound(livekit_server, trunk_id: str) -> api.SIPInboundTrunkInfo:
    """The trunk as LiveKit itself holds it (to see what the service never shows)."""
    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as lkapi:
        found = await lkapi.sip.list_inbound_trunk(
            api.ListSIPInboundTrunkRequest(trunk_ids=[trunk_id])
        )
    [trunk] = found.items
    return trunk


async def test_inbound_trunk_crud_patch_and_put(client, livekit_server):
    first, second, third = number(), number(), number()
    created = await create(
        client,
        "inbound-trunks",
        {
            "name": "office",
            "metadata": "m1",
            "numbers": [first],
            "allowedAddresses": ["192.0.2.0/24"],
            "auth_username": "office",
            "auth_password": PASSWORD,
        },
    )
    trunk_id = created["sip_trunk_id"]
    assert trunk_id.startswith("ST_")
    assert created["numbers"] == [first]
    assert created["allowed_addresses"] == ["192.0.2.0/24"]
    assert "auth_password" not in created

    got = await client.get(f"/v1/sip/inbound-trunks/{trunk_id}", headers=auth("reader"))
    assert got.status_code == 200, got.text
    assert got.json()["name"] == "office"
    assert "auth_password" not in got.json()
    assert PASSWORD not in got.text

    # PATCH: LiveKit's update form; a ListUpdate adds and removes, other fields stay.
    patched = await client.patch(
        f"/v1/sip/inbound-trunks/{trunk_id}",
        json={"name": "office-2", "numbers": {"add": [second, third], "remove": [first]}},
        headers=auth("admin"),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "office-2"
    assert sorted(body["numbers"]) == sorted([second, third])
    assert body["metadata"] == "m1"
    assert body["auth_username"] == "office"
    assert body["allowed_addresses"] == ["192.0.2.0/24"]
    assert "auth_password" not in body
    assert (await livekit_inbound(livekit_server, trunk_id)).auth_password == PASSWORD

    # `clear` empties a list; a plain list means `set`.
    cleared = await client.patch(
        f"/v1/sip/inbound-trunks/{trunk_id}",
        json={"allowed_addresses": {"clear": True}, "numbers": [first]},
        headers=auth("admin"),
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json().get("allowed_addresses", []) == []
    assert cleared.json()["numbers"] == [first]

    # PUT: LiveKit's replace form; what is not given is reset (the password too).
    replaced = await client.put(
        f"/v1/sip/inbound-trunks/{trunk_id}",
        json={"name": "replaced", "numbers": [second]},
        headers=auth("admin"),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["sip_trunk_id"] == trunk_id
    assert (body["name"], body["numbers"]) == ("replaced", [second])
    assert body.get("metadata", "") == ""
    assert body.get("auth_username", "") == ""
    assert (await livekit_inbound(livekit_server, trunk_id)).auth_password == ""

    deleted = await client.delete(f"/v1/sip/inbound-trunks/{trunk_id}", headers=auth("admin"))
    assert deleted.status_code == 204, deleted.text
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        kwargs = {"json": {"name": "x"}} if method in ("PATCH", "PUT") else {}
        gone = await client.request(
            method, f"/v1/sip/inbound-trunks/{trunk_id}", headers=auth("admin"), **kwargs
        )
        assert gone.status_code == 404, (method, gone.text)
        assert gone.json()["code"] == "sip_trunk_not_found"


async def test_outbound_trunk_crud_and_directions_stay_apart(client):
    caller_id, other = number(), number()
    created = await create(
        client,
        "outbound-trunks",
        {
            "name": "carrier",
            "address": "sip.example.com:5060",
            "transport": "SIP_TRANSPORT_TCP",
            "numbers": [caller_id],
            "auth_username": "acct",
            "auth_password": PASSWORD,
            "headers": {"X-Team": "ops"},
        },
    )
    trunk_id = created["sip_trunk_id"]
    assert created["transport"] == "SIP_TRANSPORT_TCP"
    assert created["headers"] == {"X-Team": "ops"}
    assert "auth_password" not in created

    patched = await client.patch(
        f"/v1/sip/outbound-trunks/{trunk_id}",
        json={"address": "sip2.example.com", "numbers": {"add": [other]}},
        headers=auth("admin"),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["address"] == "sip2.example.com"
    assert sorted(patched.json()["numbers"]) == sorted([caller_id, other])
    assert patched.json()["transport"] == "SIP_TRANSPORT_TCP"
    assert patched.json()["auth_username"] == "acct"

    replaced = await client.put(
        f"/v1/sip/outbound-trunks/{trunk_id}",
        json={"address": "sip3.example.com", "numbers": [other]},
        headers=auth("admin"),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["address"] == "sip3.example.com"
    assert replaced.json().get("transport", "SIP_TRANSPORT_AUTO") == "SIP_TRANSPORT_AUTO"
    assert replaced.json().get("headers", {}) == {}

    # An outbound trunk is not an inbound one: not found there, and not deleted from there.
    for method in ("GET", "DELETE"):
        wrong = await client.request(
            method, f"/v1/sip/inbound-trunks/{trunk_id}", headers=auth("admin")
        )
        assert wrong.status_code == 404, wrong.text
        assert wrong.json()["code"] == "sip_trunk_not_found"
    still = await client.get(f"/v1/sip/outbound-trunks/{trunk_id}", headers=auth("reader"))
    assert still.status_code == 200, still.text

    listed = await client.get("/v1/sip/outbound-trunks", headers=auth("reader"))
    assert listed.status_code == 200, listed.text
    assert trunk_id in [t["sip_trunk_id"] for t in listed.json()["items"]]
    assert PASSWORD not in listed.text

    assert (
        await client.delete(f"/v1/sip/outbound-trunks/{trunk_id}", headers=auth("admin"))
    ).status_code == 204
    assert (
        await client.get(f"/v1/sip/outbound-trunks/{trunk_id}", headers=auth("reader"))
    ).status_code == 404


async def test_lists_page_with_next_page_token(client):
    numbers = [number() for _ in range(5)]
    ids = sorted(
        [
            (await create(client, "inbound-trunks", {"numbers": [n]}))["sip_trunk_id"]
            for n in numbers
        ]
    )
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict = {"limit": 2, "numbers": numbers}
        if token:
            params["page_token"] = token
        page = await client.get("/v1/sip/inbound-trunks", params=params, headers=auth("reader"))
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [t["sip_trunk_id"] for t in body["items"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert seen == ids
    assert pages == 3
    whole = await client.get(
        "/v1/sip/inbound-trunks", params={"numbers": numbers}, headers=auth("reader")
    )
    assert [t["sip_trunk_id"] for t in whole.json()["items"]] == ids
    assert whole.json()["next_page_token"] is None
    for trunk_id in ids:
        await client.delete(f"/v1/sip/inbound-trunks/{trunk_id}", headers=auth("admin"))


async def test_two_inbound_trunks_with_one_number_is_livekits_422(client):
    shared = number()
    first = await create(client, "inbound-trunks", {"name": "a", "numbers": [shared]})
    response = await client.post(
        "/v1/sip/inbound-trunks", json={"name": "b", "numbers": [shared]}, headers=auth("admin")
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "invalid_argument"
    assert first["sip_trunk_id"] in problem["detail"]
    assert shared in problem["detail"]


async def test_dispatch_rule_kinds_room_config_patch_and_put(client):
    trunk = await create(client, "inbound-trunks", {"numbers": [number()]})
    other = await create(client, "inbound-trunks", {"numbers": [number()]})
    kinds = {
        "dispatch_rule_direct": {"room_name": "front-desk"},
        "dispatch_rule_individual": {"room_prefix": "call"},
        "dispatch_rule_callee": {"room_prefix": "line", "randomize": True},
    }
    rule_ids = []
    for index, (kind, fields) in enumerate(kinds.items()):
        rule = await create(
            client,
            "dispatch-rules",
            {
                "name": f"rule-{index}",
                "rule": {kind: fields},
                "trunk_ids": [trunk["sip_trunk_id"]],
                "inbound_numbers": [number()],
                "metadata": '{"team": "support"}',
                "attributes": {"queue": "support"},
                "room_config": {"agents": [{"agent_name": "receptionist", "metadata": "m"}]},
            },
        )
        assert rule["sip_dispatch_rule_id"].startswith("SDR_")
        assert list(rule["rule"]) == [kind]
        assert fields.items() <= rule["rule"][kind].items()
        [agent] = rule["room_config"]["agents"]
        assert (agent["agent_name"], agent["metadata"]) == ("receptionist", "m")
        assert rule["attributes"] == {"queue": "support"}
        rule_ids.append(rule["sip_dispatch_rule_id"])

    rule_id = rule_ids[1]
    got = await client.get(f"/v1/sip/dispatch-rules/{rule_id}", headers=auth("reader"))
    assert got.status_code == 200, got.text
    assert got.json()["rule"]["dispatch_rule_individual"]["room_prefix"] == "call"

    patched = await client.patch(
        f"/v1/sip/dispatch-rules/{rule_id}",
        json={"name": "renamed", "trunk_ids": {"add": [other["sip_trunk_id"]]}},
        headers=auth("admin"),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "renamed"
    assert sorted(body["trunk_ids"]) == sorted([trunk["sip_trunk_id"], other["sip_trunk_id"]])
    assert body["room_config"]["agents"][0]["agent_name"] == "receptionist"
    assert body["attributes"] == {"queue": "support"}

    replaced = await client.put(
        f"/v1/sip/dispatch-rules/{rule_id}",
        json={
            "rule": {"dispatch_rule_callee": {"room_prefix": "new"}},
            "trunk_ids": [other["sip_trunk_id"]],
        },
        headers=auth("admin"),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert list(body["rule"]) == ["dispatch_rule_callee"]
    assert body["rule"]["dispatch_rule_callee"]["room_prefix"] == "new"
    assert body["trunk_ids"] == [other["sip_trunk_id"]]
    assert body.get("name", "") == ""
    assert body.get("room_config", {}).get("agents", []) == []

    by_trunk = await client.get(
        "/v1/sip/dispatch-rules",
        params={"trunk_ids": [trunk["sip_trunk_id"]], "limit": 1},
        headers=auth("reader"),
    )
    assert by_trunk.status_code == 200, by_trunk.text
    assert len(by_trunk.json()["items"]) == 1
    assert by_trunk.json()["next_page_token"] is not None

    for each in rule_ids:
        response = await client.delete(f"/v1/sip/dispatch-rules/{each}", headers=auth("admin"))
        assert response.status_code == 204, response.text
    gone = await client.get(f"/v1/sip/dispatch-rules/{rule_id}", headers=auth("reader"))
    assert gone.status_code == 404
    assert gone.json()["code"] == "sip_dispatch_rule_not_found"


async def test_invalid_input_is_422_naming_the_field(client):
    cases = [
        ("inbound-trunks", {"numbers": ["5551234"]}, ["body", "numbers", 0]),
        ("inbound-trunks", {"allowed_numbers": ["+0123"]}, ["body", "allowed_numbers", 0]),
        ("inbound-trunks", {"allowed_addresses": ["not-an-ip"]}, ["body", "allowed_addresses", 0]),
        ("outbound-trunks", {"numbers": [number()]}, ["body", "address"]),
        ("dispatch-rules", {"trunk_ids": ["ST_x"]}, ["body", "rule"]),
        ("dispatch-rules", {"rule": {}}, ["body", "rule"]),
        (
            "participants",
            {"sip_trunk_id": "ST_x", "sip_call_to": "15551234567", "room_name": "r"},
            ["body", "sip_call_to"],
        ),
        (
            "participants",
            {
                "sip_trunk_id": "ST_x",
                "sip_call_to": number(),
                "sip_number": "abc",
                "room_name": "r",
            },
            ["body", "sip_number"],
        ),
        (
            "transfers",
            {"room_name": "r", "participant_identity": "p", "transfer_to": "+15551234567"},
            ["body", "transfer_to"],
        ),
        (
            "transfers",
            {"room_name": "r", "participant_identity": "p", "transfer_to": "http://x.example"},
            ["body", "transfer_to"],
        ),
    ]
    for path, body, loc in cases:
        response = await client.post(f"/v1/sip/{path}", json=body, headers=auth("admin"))
        assert response.status_code == 422, (path, body, response.text)
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert [e["loc"] for e in problem["errors"]] == [loc], (path, problem)

    # Fields LiveKit assigns, and two rule kinds at once, are refused with their names.
    response = await client.post(
        "/v1/sip/inbound-trunks", json={"sip_trunk_id": "ST_mine"}, headers=auth("admin")
    )
    assert response.status_code == 422
    assert "sip_trunk_id" in response.json()["errors"][0]["msg"]
    response = await client.post(
        "/v1/sip/dispatch-rules",
        json={"rule": {"dispatch_rule_direct": {"room_name": "a"}, "dispatch_rule_callee": {}}},
        headers=auth("admin"),
    )
    assert response.status_code == 422
    message = response.json()["errors"][0]["msg"]
    assert "`dispatch_rule_direct` and `dispatch_rule_callee` are both given" in message
    response = await client.post(
        "/v1/sip/participants",
        json={"sip_call_to": number(), "room_name": "r"},
        headers=auth("admin"),
    )
    assert response.status_code == 422
    assert "sip_trunk_id" in response.json()["errors"][0]["msg"]


async def test_call_through_a_missing_trunk_is_404(client):
    inbound = await create(client, "inbound-trunks", {"numbers": [number()]})
    for trunk_id in ("ST_doesnotexist", inbound["sip_trunk_id"]):
        response = await client.post(
            "/v1/sip/participants",
            json={"sip_trunk_id": trunk_id, "sip_call_to": number(), "room_name": "nowhere"},
            headers=auth("admin"),
        )
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "sip_trunk_not_found"


async def test_transfer_of_a_missing_participant_is_404(client):
    response = await client.post(
        "/v1/sip/transfers",
        json={
            "room_name": "no-room",
            "participant_identity": "nobody",
            "transfer_to": "tel:+15550100",
        },
        headers=auth("admin"),
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "participant_not_found"


async def test_scopes(client):
    body = {"numbers": [number()]}
    assert (await client.post("/v1/sip/inbound-trunks", json=body)).status_code == 401
    denied = await client.post("/v1/sip/inbound-trunks", json=body, headers=auth("reader"))
    assert denied.status_code == 403
    assert "sip:write" in denied.json()["detail"]
    assert (await client.get("/v1/sip/dispatch-rules", headers=auth("nobody"))).status_code == 403
    assert (await client.get("/v1/sip/dispatch-rules", headers=auth("reader"))).status_code == 200
    for path in ("participants", "transfers"):
        response = await client.post(f"/v1/sip/{path}", json={}, headers=auth("reader"))
        assert response.status_code == 403, path


async def test_password_never_in_a_replay_the_store_or_a_log(client, live_service, caplog):
    body = {"numbers": [number()], "auth_username": "u", "auth_password": PASSWORD}
    headers = {**auth("admin"), "Idempotency-Key": f"trunk-{number()}"}
    with caplog.at_level(logging.DEBUG):
        first = await client.post("/v1/sip/inbound-trunks", json=body, headers=headers)
        again = await client.post("/v1/sip/inbound-trunks", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert "auth_password" not in first.json()
    assert PASSWORD not in first.text + again.text

    database = live_service.app.state.settings.database_url.get_secret_value().split("///", 1)[1]
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT response_body FROM idempotency_keys").fetchall()
    assert any(first.json()["sip_trunk_id"] in row[0] for row in stored)
    assert not any(PASSWORD in row[0] for row in stored)
    assert not [r for r in caplog.records if PASSWORD in r.getMessage()]


async def test_dispatch_rule_pin_is_write_only(client, live_service, livekit_server, caplog):
    """A dispatch rule's `pin` reaches LiveKit and is never shown: not to a `rooms:read` key,
    not to the `sip:write` key that set it, not in a stored replay, not in a log line."""
    trunk = await create(client, "inbound-trunks", {"numbers": [number()]})
    body = {
        "name": "vault",
        "rule": {"dispatch_rule_direct": {"room_name": "vault", "pin": PIN}},
        "trunk_ids": [trunk["sip_trunk_id"]],
    }
    headers = {**auth("sip-writer"), "Idempotency-Key": f"rule-{number()}"}
    with caplog.at_level(logging.DEBUG):
        created = await client.post("/v1/sip/dispatch-rules", json=body, headers=headers)
        again = await client.post("/v1/sip/dispatch-rules", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == created.json()
    rule_id = created.json()["sip_dispatch_rule_id"]
    assert created.json()["rule"]["dispatch_rule_direct"]["room_name"] == "vault"
    assert "pin" not in created.json()["rule"]["dispatch_rule_direct"]

    async with api.LiveKitAPI(livekit_server.url, API_KEY, API_SECRET) as lkapi:
        found = await lkapi.sip.list_dispatch_rule(
            api.ListSIPDispatchRuleRequest(dispatch_rule_ids=[rule_id])
        )
    assert found.items[0].rule.dispatch_rule_direct.pin == PIN  # LiveKit has it

    for key in ("reader", "sip-writer"):
        got = await client.get(f"/v1/sip/dispatch-rules/{rule_id}", headers=auth(key))
        assert got.status_code == 200, got.text
        assert got.json()["rule"]["dispatch_rule_direct"]["room_name"] == "vault"
        assert "pin" not in got.json()["rule"]["dispatch_rule_direct"], key
        listed = await client.get(
            "/v1/sip/dispatch-rules",
            params={"trunk_ids": [trunk["sip_trunk_id"]]},
            headers=auth(key),
        )
        assert listed.status_code == 200, listed.text
        assert rule_id in [r["sip_dispatch_rule_id"] for r in listed.json()["items"]]
        assert PIN not in got.text + listed.text, key
    patched = await client.patch(
        f"/v1/sip/dispatch-rules/{rule_id}", json={"name": "vault-2"}, headers=auth("sip-writer")
    )
    assert patched.status_code == 200, patched.text
    assert PIN not in patched.text and "pin" not in patched.json()["rule"]["dispatch_rule_direct"]

    database = live_service.app.state.settings.database_url.get_secret_value().split("///", 1)[1]
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT response_body FROM idempotency_keys").fetchall()
    assert any(rule_id in row[0] for row in stored)
    assert not any(PIN in row[0] for row in stored)
    assert not [r for r in caplog.records if PIN in r.getMessage()]
