"""Sessions on every replica: two `python -m app` processes sharing one PostgreSQL database
receive a room's webhooks split between them, shuffled, concurrently and repeated, and both
answer the same sessions as one replica that got them in order."""

from __future__ import annotations

import asyncio
import json
import random
import secrets

import httpx
import pytest

from tests.components import post_webhooks, replica_pair
from tests.conftest import API_KEY, API_SECRET, auth, service_keys
from tests.unit.test_sessions import life

pytestmark = pytest.mark.integration


async def test_both_replicas_answer_the_same_sessions(livekit_server, postgres_server, app_client):
    events = life() + life("RM_second", "standup")
    async with app_client("http://127.0.0.1:9") as reference:
        await post_webhooks(reference, events)
        expected = (await reference.get("/v1/sessions", headers=auth("admin"))).json()
        details = (await reference.get("/v1/sessions/RM_life", headers=auth("admin"))).json()

    env = {
        "APP_ENV": "development",
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "SERVICE_KEYS": json.dumps(service_keys()),
        "DATABASE_URL": postgres_server.create_database(f"sessions_{secrets.token_hex(4)}"),
    }
    rng = random.Random(11)
    delivery = events + rng.sample(events, k=len(events))  # every event twice at most
    rng.shuffle(delivery)
    with replica_pair(env) as replicas:
        async with (
            httpx.AsyncClient(base_url=replicas[0].url, timeout=30) as one,
            httpx.AsyncClient(base_url=replicas[1].url, timeout=30) as two,
        ):
            await asyncio.gather(
                post_webhooks(one, delivery[::2]), post_webhooks(two, delivery[1::2])
            )
            for client in (one, two):
                listed = await client.get("/v1/sessions", headers=auth("admin"))
                assert listed.json() == expected
                one_session = await client.get("/v1/sessions/RM_life", headers=auth("admin"))
                assert one_session.json() == details
