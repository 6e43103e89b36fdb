"""Real SIP calls: the service asks LiveKit's SIP server to call a SIPp phone (or SIPp calls
in), and the phone's own log shows what happened on the wire."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator

import pytest

from tests.agents.harness import AgentWorker
from tests.conftest import API_KEY, API_SECRET, auth
from tests.helpers import unique
from tests.participants import wait_for

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time() * 1000) % 10**9)


def number() -> str:
    """An E.164 number no other test uses."""
    return f"+1555{next(_numbers) % 10**7:07d}"


async def outbound_trunk(client, phone) -> str:
    """An outbound trunk whose calls go to `phone`; its id."""
    response = await client.post(
        "/v1/sip/outbound-trunks",
        json={"name": "to-sipp", "address": phone.address, "numbers": [number()]},
        headers=auth("admin"),
    )
    assert response.status_code == 201, response.text
    return response.json()["sip_trunk_id"]


def call_body(trunk_id: str, room: str, **extra: object) -> dict:
    return {
        "sip_trunk_id": trunk_id,
        "sip_call_to": number(),
        "room_name": room,
        "participant_identity": "callee",
        "wait_until_answered": True,
        **extra,
    }


async def participants(client, room: str) -> list[dict]:
    response = await client.get(f"/v1/rooms/{room}/participants", headers=auth("reader"))
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return response.json()["items"]


def invites(phone) -> int:
    """How many INVITEs the phone received."""
    return len(re.findall(r"message received \[\d+\] bytes :\s*\nINVITE sip:", phone.messages()))


async def test_answered_call_joins_the_room_and_delete_hangs_up(sip_client, phone):
    answering = phone("answer")
    trunk_id = await outbound_trunk(sip_client, answering)
    room = unique("sip-answer")

    response = await sip_client.post(
        "/v1/sip/participants",
        json=call_body(
            trunk_id, room, participant_name="Callee", participant_attributes={"a": "b"}
        ),
        headers=auth("admin"),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["participant_identity"] == "callee"
    assert created["room_name"] == room
    assert created["participant_id"].startswith("PA_")
    assert created["sip_call_id"]

    [callee] = [p for p in await participants(sip_client, room) if p["identity"] == "callee"]
    assert callee["kind"] == "SIP"
    assert callee["name"] == "Callee"
    assert callee["attributes"]["sip.callStatus"] == "active"
    assert callee["attributes"]["a"] == "b"
    assert invites(answering) == 1
    assert not answering.received("BYE")

    hung_up = await sip_client.delete(
        f"/v1/rooms/{room}/participants/callee", headers=auth("admin")
    )
    assert hung_up.status_code == 204, hung_up.text
    await wait_for(lambda: answering.received("BYE"), timeout=30)
    await sip_client.delete(f"/v1/rooms/{room}", headers=auth("admin"))


async def test_busy_phone_is_502_with_sip_status_486(sip_client, phone):
    busy = phone("busy")
    trunk_id = await outbound_trunk(sip_client, busy)
    room = unique("sip-busy")

    response = await sip_client.post(
        "/v1/sip/participants", json=call_body(trunk_id, room), headers=auth("admin")
    )
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "sip_call_failed"
    assert problem["sip_status_code"] == 486
    assert problem["sip_status"] == "Busy Here"
    assert "Retry-After" not in response.headers  # not LiveKit's resource_exhausted 429
    assert [p for p in await participants(sip_client, room) if p["identity"] == "callee"] == []


async def test_callee_that_never_answers_is_504_and_the_call_is_cancelled(sip_client, phone):
    ringing = phone("ring")
    trunk_id = await outbound_trunk(sip_client, ringing)
    room = unique("sip-ring")

    response = await sip_client.post(
        "/v1/sip/participants",
        json=call_body(trunk_id, room, ringing_timeout="3s"),
        headers=auth("admin"),
    )
    assert response.status_code == 504, response.text
    problem = response.json()
    assert problem["code"] == "sip_call_timeout"
    assert problem["sip_status_code"] == 408
    assert problem["sip_status"] == "Request Timeout"
    await wait_for(lambda: ringing.received("CANCEL"), timeout=30)
    assert [p for p in await participants(sip_client, room) if p["identity"] == "callee"] == []


async def test_waiting_past_the_service_deadline_is_504_and_not_left_ringing(
    app_client, sip_livekit, sip_server, phone
):
    ringing = phone("ring")
    # The caller asks for LiveKit's 30 s of ringing; the service's deadline is 5 s.
    async with app_client(sip_livekit.url, sip_call_timeout_seconds=5) as http:
        trunk_id = await outbound_trunk(http, ringing)
        room = unique("sip-deadline")
        response = await http.post(
            "/v1/sip/participants",
            json=call_body(trunk_id, room, ringing_timeout="30s"),
            headers=auth("admin"),
            timeout=60,
        )
        assert response.status_code == 504, response.text
        assert response.json()["code"] == "sip_call_timeout"
        await wait_for(lambda: ringing.received("CANCEL"), timeout=30)
        assert [p for p in await participants(http, room) if p["identity"] == "callee"] == []
    assert invites(ringing) == 1


async def test_retried_call_with_an_idempotency_key_dials_once(sip_client, phone):
    answering = phone("answer")
    trunk_id = await outbound_trunk(sip_client, answering)
    room = unique("sip-retry")
    body = call_body(trunk_id, room)
    headers = {**auth("admin"), "Idempotency-Key": f"ci-call-{room}"}

    first = await sip_client.post("/v1/sip/participants", json=body, headers=headers)
    again = await sip_client.post("/v1/sip/participants", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert invites(answering) == 1
    other = await sip_client.post(
        "/v1/sip/participants", json={**body, "participant_identity": "x"}, headers=headers
    )
    assert other.status_code == 409, other.text
    assert invites(answering) == 1
    await sip_client.delete(f"/v1/rooms/{room}", headers=auth("admin"))
    await wait_for(lambda: answering.received("BYE"), timeout=30)


async def test_transfer_accepted_by_the_phone_is_204(sip_client, phone):
    taking = phone("transfer", keys={"outcome": "200 OK"})
    trunk_id = await outbound_trunk(sip_client, taking)
    room = unique("sip-transfer")
    call = await sip_client.post(
        "/v1/sip/participants", json=call_body(trunk_id, room), headers=auth("admin")
    )
    assert call.status_code == 201, call.text

    target = "sip:+15550009999@pbx.example.com"
    response = await sip_client.post(
        "/v1/sip/transfers",
        json={"room_name": room, "participant_identity": "callee", "transfer_to": target},
        headers=auth("admin"),
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert taking.received("REFER")
    assert f"Refer-To: <{target}>" in taking.messages() or f"Refer-To: {target}" in (
        taking.messages()
    )
    await wait_for(lambda: taking.received("BYE"), timeout=30)


async def test_transfer_refused_by_the_phone_is_502_with_sip_status_603(sip_client, phone):
    refusing = phone("transfer", keys={"outcome": "603 Declined"})
    trunk_id = await outbound_trunk(sip_client, refusing)
    room = unique("sip-refused")
    call = await sip_client.post(
        "/v1/sip/participants", json=call_body(trunk_id, room), headers=auth("admin")
    )
    assert call.status_code == 201, call.text

    response = await sip_client.post(
        "/v1/sip/transfers",
        json={"room_name": room, "participant_identity": "callee", "transfer_to": "tel:+15550001"},
        headers=auth("admin"),
    )
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["code"] == "sip_call_failed"
    assert problem["sip_status_code"] == 603
    assert problem["sip_status"] == "Declined"
    # The call stays up until it is hung up.
    [callee] = [p for p in await participants(sip_client, room) if p["identity"] == "callee"]
    assert callee["attributes"]["sip.callStatus"] == "active"
    assert not refusing.received("BYE")
    await sip_client.delete(f"/v1/rooms/{room}/participants/callee", headers=auth("admin"))
    await wait_for(lambda: refusing.received("BYE"), timeout=30)


@pytest.fixture(scope="module")
def inbound_agent(sip_livekit) -> Iterator[AgentWorker]:
    """A real agent worker registered with the SIP tier's LiveKit server."""
    worker = AgentWorker(sip_livekit.url, API_KEY, API_SECRET, unique("receptionist")).start()
    yield worker
    worker.stop()


async def test_inbound_call_individual_rule_makes_a_room_with_the_rules_agent(
    sip_client, sip_server, phone, inbound_agent
):
    called, caller = number(), number()
    trunk = await sip_client.post(
        "/v1/sip/inbound-trunks",
        json={"name": "reception", "numbers": [called], "allowed_addresses": ["127.0.0.1/32"]},
        headers=auth("admin"),
    )
    assert trunk.status_code == 201, trunk.text
    prefix = unique("call").replace("-", "")
    rule = await sip_client.post(
        "/v1/sip/dispatch-rules",
        json={
            "rule": {"dispatch_rule_individual": {"room_prefix": prefix}},
            "trunk_ids": [trunk.json()["sip_trunk_id"]],
            "attributes": {"line": "reception"},
            "room_config": {
                "agents": [{"agent_name": inbound_agent.agent_name, "metadata": "inbound"}]
            },
        },
        headers=auth("admin"),
    )
    assert rule.status_code == 201, rule.text

    phone("call_in", dial=sip_server.address, service=called, keys={"caller": caller})

    async def call_room() -> str | None:
        rooms = await sip_client.get("/v1/rooms", headers=auth("reader"))
        assert rooms.status_code == 200, rooms.text
        names = [r["name"] for r in rooms.json()["items"] if r["name"].startswith(f"{prefix}_")]
        return names[0] if names else None

    await wait_for(call_room, timeout=60)
    room = await call_room()
    assert room is not None
    assert room.startswith(f"{prefix}_{caller}_")

    job = await inbound_agent.wait_for_job(room, timeout=60)
    assert job["agent_name"] == inbound_agent.agent_name
    assert job["metadata"] == "inbound"
    [sip_caller] = [p for p in await participants(sip_client, room) if p["kind"] == "SIP"]
    assert sip_caller["attributes"]["sip.phoneNumber"] == caller
    assert sip_caller["attributes"]["line"] == "reception"
    await sip_client.delete(f"/v1/rooms/{room}", headers=auth("admin"))
