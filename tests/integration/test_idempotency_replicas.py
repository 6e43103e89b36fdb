"""Idempotency keys across replicas: two `python -m app` processes sharing one PostgreSQL
database, against the real LiveKit server, dispatch once per key whichever replica a
request (or its retry) reaches."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.components import ServiceProcess, replica_pair
from tests.conftest import API_KEY, API_SECRET, auth, service_keys
from tests.helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replicas(livekit_server, postgres_server) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two service processes on one fresh PostgreSQL database."""
    env = {
        "APP_ENV": "development",
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "SERVICE_KEYS": json.dumps(service_keys()),
        "DATABASE_URL": postgres_server.create_database(f"idem_{secrets.token_hex(4)}"),
    }
    with replica_pair(env) as pair:
        yield pair


async def test_one_key_dispatches_once_across_replicas(replicas):
    room, agent = unique("replica-room"), unique("replica-agent")
    body = {"agent_name": agent, "metadata": "from CI"}
    key = str(uuid.uuid4())
    path = f"/v1/rooms/{room}/dispatches"
    sent = {**auth("admin"), "Idempotency-Key": key}
    async with (
        httpx.AsyncClient(base_url=replicas[0].url, timeout=30) as one,
        httpx.AsyncClient(base_url=replicas[1].url, timeout=30) as two,
    ):
        clients = (one, two)
        responses = await asyncio.gather(
            *(clients[i % 2].post(path, json=body, headers=sent) for i in range(20))
        )
        assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
        assert len({r.content for r in responses}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1

        for client in clients:
            retry = await client.post(path, json=body, headers=sent)
            assert retry.status_code == 201
            assert retry.headers["Idempotent-Replayed"] == "true"
            assert retry.content == responses[0].content
            changed = await client.post(path, json={**body, "metadata": "edited"}, headers=sent)
            assert changed.status_code == 409
            assert changed.json()["code"] == "idempotency_key_reused"

        listed = await one.get(path, headers=auth("reader"))
        assert listed.status_code == 200, listed.text
        ours = [d["id"] for d in listed.json()["items"] if d["agent_name"] == agent]
        assert ours == [responses[0].json()["id"]]
