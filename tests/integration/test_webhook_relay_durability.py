"""The relay survives what a process and a fleet do: a service SIGKILLed in the middle of
deliveries (as a real `python -m app`), and in a burst of 1,000 events, delivers every event
at least once after its restart, and never logs a signing secret; two workers sharing one
PostgreSQL database split 1,000 events and never send one attempt twice while both live."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.events.endpoint_urls import AddressAllowList, EndpointUrlRules
from app.events.outbox import outbox_writer
from app.events.relay import Relay, RelayPolicy
from app.events.webhook_endpoints import create_endpoint
from app.store.engine import Store
from schemas.webhook_endpoints import WebhookEndpointCreate
from tests.components import ServiceProcess, Subscriber, post_webhooks, webhook_body
from tests.conftest import API_KEY, API_SECRET, auth, service_keys
from tests.participants import wait_for

pytestmark = pytest.mark.integration

LOOPBACK_RULES = EndpointUrlRules(https_only=False, allow=AddressAllowList.parse(["127.0.0.1"]))


def event(event_id: str) -> dict[str, object]:
    return json.loads(webhook_body(event_id))


def service_env(tmp_path: Path) -> dict[str, str]:
    """A service on an SQLite database in `tmp_path`, no LiveKit, relaying to loopback."""
    return {
        "LIVEKIT_URL": "http://127.0.0.1:9",
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "SERVICE_KEYS": json.dumps(service_keys()),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'events.db'}",
        "WEBHOOK_ENDPOINT_ALLOW": "127.0.0.1",
        "LOG_LEVEL": "debug",
    }


async def test_a_service_killed_mid_delivery_delivers_every_event_after_its_restart(
    tmp_path: Path, subscriber: Subscriber
):
    subscriber.respond = lambda _d: (204, {}, 60.0)  # slow: attempts are under way at the kill
    env = service_env(tmp_path)
    ids = [f"EV_kill_{n}" for n in range(20)]
    first = ServiceProcess(env).start()
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            created = await http.post(
                "/v1/webhooks/endpoints", json={"url": subscriber.path}, headers=auth("hooks")
            )
            assert created.status_code == 201, created.text
            secret = created.json()["signing_secret"]
            subscriber.secrets = [secret]
            await post_webhooks(http, [event(i) for i in ids])
            await wait_for(lambda: len(subscriber.received) >= 1, timeout=20)
        first.kill()
    finally:
        first.stop()
    in_flight = set(subscriber.event_ids())
    assert in_flight and len(in_flight) < len(ids)  # killed mid-delivery
    subscriber.respond = lambda _d: (204, {}, 0.0)
    subscriber.release.set()  # the hanging requests end; their sender is gone

    second = ServiceProcess(env).start()
    try:
        await wait_for(lambda: set(ids) <= set(subscriber.event_ids()), timeout=30)
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            endpoint = await http.get("/v1/webhooks/endpoints", headers=auth("events"))
            assert secret not in endpoint.text
    finally:
        second.stop()
    assert all(d.verified for d in subscriber.received)
    # at least once: the attempts cut off by the kill were made again, with the same id
    webhook_ids = subscriber.webhook_ids()
    for event_id in in_flight:
        assert len(webhook_ids[event_id]) == 1
    for process in (first, second):
        output = Path(process.process.log_path).read_text()
        assert output and secret not in output
        assert secret.removeprefix("whsec_") not in output


async def test_a_service_killed_in_a_burst_of_1000_events_delivers_every_one_after_its_restart(
    tmp_path: Path, subscriber: Subscriber
):
    """SIGKILL while 1,000 signed LiveKit webhooks are being posted and relayed; the posts
    the killed service never answered are posted again to its successor (as LiveKit retries
    them); every event then reaches the subscriber, verified, some perhaps twice (at least
    once): the duplicates are counted, none is lost."""
    subscriber.respond = lambda _d: (204, {}, 0.02)  # deliveries are under way at the kill
    env = service_env(tmp_path)
    ids = [f"EV_burst_{n}" for n in range(1000)]
    answered: set[str] = set()
    first = ServiceProcess(env).start()
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            created = await http.post(
                "/v1/webhooks/endpoints", json={"url": subscriber.path}, headers=auth("hooks")
            )
            assert created.status_code == 201, created.text
            subscriber.secrets = [created.json()["signing_secret"]]
            queue = list(ids)

            async def post_until_killed() -> None:
                while queue:
                    event_id = queue.pop(0)
                    try:
                        await post_webhooks(http, [event(event_id)])
                    except httpx.TransportError:
                        return  # the service is gone; this event was perhaps stored
                    answered.add(event_id)

            posters = [asyncio.create_task(post_until_killed()) for _ in range(4)]
            await wait_for(lambda: len(answered) >= 300 and len(subscriber.received) >= 10, 60)
            first.kill()
            await asyncio.gather(*posters)
    finally:
        first.stop()
    at_kill = len(subscriber.received)
    assert len(answered) < len(ids) and at_kill < len(ids)  # killed mid-burst, mid-delivery

    second = ServiceProcess(env).start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            await post_webhooks(http, [event(i) for i in ids if i not in answered])
        await wait_for(lambda: set(ids) <= set(subscriber.event_ids()), timeout=120)
        await asyncio.sleep(1)  # let any attempt still under way arrive, to be counted
    finally:
        second.stop()
    assert all(d.verified for d in subscriber.received)
    received = Counter(subscriber.event_ids())
    duplicates = sum(received.values()) - len(received)
    print(
        f"burst: {len(answered)} posts answered before the kill, {at_kill} deliveries "
        f"received before it; {sum(received.values())} in all, {duplicates} duplicates"
    )
    assert set(received) == set(ids), f"lost: {sorted(set(ids) - set(received))[:10]}"
    # a duplicate is the same delivery again (same webhook-id), cut off by the kill
    webhook_ids = subscriber.webhook_ids()
    assert all(len(webhook_ids[i]) == 1 for i in ids), f"{duplicates} duplicates"


async def test_two_workers_on_postgresql_share_the_work_and_never_send_an_attempt_twice(
    postgres_url: str, subscriber: Subscriber
):
    subscriber.respond = lambda _d: (204, {}, 0.05)
    stores = [Store(postgres_url), Store(postgres_url)]
    await stores[0].migrate()
    stores[0].events.add_writer(outbox_writer)
    sent: list[Counter[str]] = [Counter(), Counter()]
    clients = []
    for counter in sent:

        async def count(request: httpx.Request, counter: Counter[str] = counter) -> None:
            counter[request.headers["webhook-id"]] += 1

        clients.append(httpx.AsyncClient(event_hooks={"request": [count]}))
    policy = RelayPolicy(poll_seconds=0.05, per_endpoint=3)
    relays = [Relay(s, c, LOOPBACK_RULES, policy) for s, c in zip(stores, clients, strict=True)]
    try:
        created = await create_endpoint(
            stores[0], LOOPBACK_RULES, WebhookEndpointCreate(url=subscriber.path)
        )
        subscriber.secrets = [created.signing_secret or ""]
        for relay in relays:
            relay.start()
        ids = [f"EV_pg_{secrets.token_hex(4)}" for _ in range(1000)]
        for event_id in ids:
            body = webhook_body(event_id)
            stored = await stores[0].events.insert(
                {
                    "id": event_id,
                    "event": "room_started",
                    "room_name": "room-a",
                    "participant_identity": None,
                    "egress_id": None,
                    "ingress_id": None,
                    "created_at": dt.datetime.now(dt.UTC),
                    "received_at": dt.datetime.now(dt.UTC),
                    "body": body.decode(),
                }
            )
            assert stored
        await wait_for(lambda: len(subscriber.received) >= len(ids), timeout=180)
        await asyncio.sleep(0.5)  # anything sent twice would have arrived by now
        assert sorted(subscriber.event_ids()) == sorted(ids)
        assert all(d.verified for d in subscriber.received)
        together = sent[0] + sent[1]
        assert set(together.values()) == {1}  # no attempt sent twice
        assert len(together) == len(ids)
        assert sent[0] and sent[1]  # both workers took part
        print(f"two workers: {len(sent[0])} and {len(sent[1])} of {len(ids)} deliveries")
    finally:
        for relay in relays:
            await relay.aclose()
        for client in clients:
            await client.aclose()
        for store in stores:
            await store.aclose()
