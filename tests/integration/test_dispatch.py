"""Agent dispatch end to end: a real livekit-agents worker registered with the real LiveKit
server receives the jobs the service dispatches (by the dispatch routes, or by a token whose
`room_config.agents` names it), with their metadata intact."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.agents.harness import AgentWorker
from tests.conftest import API_KEY, API_SECRET, auth
from tests.helpers import unique
from tests.participants import fetch_token, joined

pytestmark = pytest.mark.integration

METADATA = json.dumps({"task": "greet", "caller": "ci", "text": "grüße ✓", "n": 7})


@pytest.fixture(scope="module")
def agent_worker(livekit_server) -> Iterator[AgentWorker]:
    """A real agent worker registered with the `livekit_server` under a unique agent name."""
    worker = AgentWorker(livekit_server.url, API_KEY, API_SECRET, unique("echo")).start()
    yield worker
    worker.stop()


async def dispatches(client, room: str, agent_name: str) -> list[dict]:
    """The room's dispatches for `agent_name`, by the list route (200 asserted)."""
    response = await client.get(f"/v1/rooms/{room}/dispatches", headers=auth("reader"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_page_token"] is None
    return [d for d in body["items"] if d["agent_name"] == agent_name]


async def test_dispatched_agent_receives_job_with_metadata(client, agent_worker):
    room = unique("dispatch-room")
    response = await client.post(
        f"/v1/rooms/{room}/dispatches",
        json={"agent_name": agent_worker.agent_name, "metadata": METADATA},
        headers=auth("admin"),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("AD_")
    assert created["room"] == room
    assert created["agent_name"] == agent_worker.agent_name
    assert created["metadata"] == METADATA

    job = await agent_worker.wait_for_job(room)
    assert job["dispatch_id"] == created["id"]
    assert job["agent_name"] == agent_worker.agent_name
    assert job["metadata"] == METADATA
    assert json.loads(job["metadata"])["text"] == "grüße ✓"

    listed = await dispatches(client, room, agent_worker.agent_name)
    assert [d["id"] for d in listed] == [created["id"]]
    assert listed[0]["metadata"] == METADATA
    one = await client.get(f"/v1/rooms/{room}/dispatches/{created['id']}", headers=auth("reader"))
    assert one.status_code == 200, one.text
    assert one.json()["id"] == created["id"]
    assert one.json()["metadata"] == METADATA
    assert len(agent_worker.jobs(room)) == 1


async def test_deleted_dispatch_leaves_the_list(client, agent_worker):
    room = unique("delete-room")
    created = await client.post(
        f"/v1/rooms/{room}/dispatches",
        json={"agent_name": agent_worker.agent_name, "metadata": "first"},
        headers=auth("admin"),
    )
    assert created.status_code == 201, created.text
    dispatch_id = created.json()["id"]
    await agent_worker.wait_for_job(room)
    assert [d["id"] for d in await dispatches(client, room, agent_worker.agent_name)] == [
        dispatch_id
    ]

    deleted = await client.delete(
        f"/v1/rooms/{room}/dispatches/{dispatch_id}", headers=auth("admin")
    )
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    assert await dispatches(client, room, agent_worker.agent_name) == []
    gone = await client.get(f"/v1/rooms/{room}/dispatches/{dispatch_id}", headers=auth("reader"))
    assert gone.status_code == 404
    assert gone.json()["code"] == "dispatch_not_found"
    again = await client.delete(f"/v1/rooms/{room}/dispatches/{dispatch_id}", headers=auth("admin"))
    assert again.status_code == 404
    assert again.json()["code"] == "dispatch_not_found"


async def test_token_room_config_dispatches_agent_on_join(client, agent_worker):
    room = unique("token-room")
    room_config = {"agents": [{"agent_name": agent_worker.agent_name, "metadata": METADATA}]}
    token = await fetch_token(client, room, "caller", room_config=room_config)

    async with joined(token["server_url"], token["participant_token"]):
        job = await agent_worker.wait_for_job(room)
        assert job["agent_name"] == agent_worker.agent_name
        assert job["metadata"] == METADATA
        listed = await dispatches(client, room, agent_worker.agent_name)
        assert [d["id"] for d in listed] == [job["dispatch_id"]]
        assert listed[0]["metadata"] == METADATA


async def test_routes_on_missing_room_are_404_room_not_found(client):
    room = unique("no-such-room")
    for path in (
        f"/v1/rooms/{room}/dispatches",
        f"/v1/rooms/{room}/dispatches/AD_missing",
    ):
        response = await client.get(path, headers=auth("reader"))
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "room_not_found"
    response = await client.delete(f"/v1/rooms/{room}/dispatches/AD_missing", headers=auth("admin"))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "room_not_found"


async def test_unknown_dispatch_in_existing_room_is_404(client):
    room = unique("known-room")
    created = await client.post(
        f"/v1/rooms/{room}/dispatches",
        json={"agent_name": "nobody-runs-this"},
        headers=auth("admin"),
    )
    assert created.status_code == 201, created.text
    response = await client.get(f"/v1/rooms/{room}/dispatches/AD_missing", headers=auth("reader"))
    assert response.status_code == 404
    assert response.json()["code"] == "dispatch_not_found"


async def test_scopes_and_validation(client):
    room = unique("scope-room")
    path = f"/v1/rooms/{room}/dispatches"
    body = {"agent_name": "x"}
    assert (await client.post(path, json=body)).status_code == 401
    forbidden = await client.post(path, json=body, headers=auth("reader"))
    assert forbidden.status_code == 403
    assert "dispatch:write" in forbidden.json()["detail"]
    denied = await client.delete(f"{path}/AD_x", headers=auth("reader"))
    assert denied.status_code == 403
    assert (await client.get(path, headers=auth("nobody"))).status_code == 403

    for invalid in ({}, {"agent_name": ""}, {"agent_name": "x", "room": "other"}):
        response = await client.post(path, json=invalid, headers=auth("admin"))
        assert response.status_code == 422, (invalid, response.text)
        assert response.json()["code"] == "validation_failed"
    too_big = {"agent_name": "x", "metadata": "m" * (512 * 1024 + 1)}
    assert (await client.post(path, json=too_big, headers=auth("admin"))).status_code == 422
