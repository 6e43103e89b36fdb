"""`Idempotency-Key` on POST /v1/rooms/{room}/dispatches against the real LiveKit server:
what LiveKit ends up holding is counted with the list route."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.conftest import auth
from tests.helpers import unique

pytestmark = pytest.mark.integration


def headers(key: str, caller: str = "admin") -> dict[str, str]:
    return {**auth(caller), "Idempotency-Key": key}


async def create(client, room: str, body: dict, key: str | None = None, caller: str = "admin"):
    sent = headers(key, caller) if key else auth(caller)
    return await client.post(f"/v1/rooms/{room}/dispatches", json=body, headers=sent)


async def dispatch_ids(client, room: str, agent_name: str) -> list[str]:
    response = await client.get(f"/v1/rooms/{room}/dispatches", headers=auth("reader"))
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["items"] if d["agent_name"] == agent_name]


async def test_retry_with_same_key_returns_first_response_and_dispatches_once(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    body = {"agent_name": agent, "metadata": json.dumps({"build": 42})}
    key = str(uuid.uuid4())

    first = await create(client, room, body, key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    retry = await create(client, room, body, key)
    assert retry.status_code == 201, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert retry.headers["content-type"] == "application/json"

    # the same JSON document, formatted differently, is the same request
    reformatted = json.dumps(body, indent=2, sort_keys=True)
    again = await client.post(
        f"/v1/rooms/{room}/dispatches",
        content=reformatted,
        headers={**headers(key), "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.content == first.content

    assert await dispatch_ids(client, room, agent) == [first.json()["id"]]


async def test_same_key_with_changed_body_is_409(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    key = str(uuid.uuid4())
    first = await create(client, room, {"agent_name": agent, "metadata": "v1"}, key)
    assert first.status_code == 201, first.text

    changed = await create(client, room, {"agent_name": agent, "metadata": "v2"}, key)
    assert changed.status_code == 409, changed.text
    problem = changed.json()
    assert problem["code"] == "idempotency_key_reused"
    assert changed.headers["content-type"] == "application/problem+json"
    other_room = await create(client, unique("idem-other"), {"agent_name": agent}, key)
    assert other_room.status_code == 409
    assert other_room.json()["code"] == "idempotency_key_reused"

    assert await dispatch_ids(client, room, agent) == [first.json()["id"]]


async def test_twenty_concurrent_requests_with_one_key_dispatch_once(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    body = {"agent_name": agent, "metadata": "concurrent"}
    key = str(uuid.uuid4())

    responses = await asyncio.gather(*(create(client, room, body, key) for _ in range(20)))

    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert await dispatch_ids(client, room, agent) == [responses[0].json()["id"]]


async def test_without_key_every_request_dispatches(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    body = {"agent_name": agent}
    first, second = [await create(client, room, body) for _ in range(2)]
    assert (first.status_code, second.status_code) == (201, 201)
    assert sorted(await dispatch_ids(client, room, agent)) == sorted(
        [first.json()["id"], second.json()["id"]]
    )


async def test_invalid_key_is_400_and_dispatches_nothing(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    for bad in ("x" * 256, "two words"):
        response = await create(client, room, {"agent_name": agent}, bad)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_idempotency_key"
    rooms = await client.get(f"/v1/rooms/{room}/dispatches", headers=auth("reader"))
    assert rooms.status_code == 404  # nothing reached LiveKit, not even the room


async def test_refused_request_does_not_use_up_the_key(client):
    room, agent = unique("idem-room"), unique("idem-agent")
    key = str(uuid.uuid4())
    refused = await create(client, room, {"agent_name": agent}, key, caller="reader")
    assert refused.status_code == 403
    invalid = await create(client, room, {"agent_name": ""}, key)
    assert invalid.status_code == 422
    accepted = await create(client, room, {"agent_name": agent}, key)
    assert accepted.status_code == 201, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    assert await dispatch_ids(client, room, agent) == [accepted.json()["id"]]
