"""A real PostgreSQL stopped and started under the running service (over real HTTP): the
webhook route answers 503 `event_store_unavailable` within 5 s (LiveKit retries), the read
routes 503, an open event stream ends cleanly, and once PostgreSQL is back everything
works again without a restart, with the housekeeping tasks still running."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

import app.main
from app.core.devserver import LocalPostgres
from app.core.errors import UpstreamUnavailable
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.tables import webhook_events
from tests.components import LiveService, signed_webhook, sse_events, webhook_body
from tests.conftest import API_KEY, API_SECRET, auth, make_settings

UNUSED_LIVEKIT = "http://127.0.0.1:9"
#: The contract's bound on a webhook answer while the database is down (LiveKit retries).
OUTAGE_ANSWER_SECONDS = 5
DEADLINE_SECONDS = 60


@pytest.fixture
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster of this test's own, which it stops and starts."""
    server = LocalPostgres().start()
    yield server
    server.stop()


async def post_webhook(http: httpx.AsyncClient, event_id: str, **kwargs) -> httpx.Response:
    body = webhook_body(event_id)
    return await http.post(
        "/v1/webhooks/livekit",
        content=body,
        headers={
            "Authorization": signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET),
            "content-type": "application/webhook+json",
        },
        **kwargs,
    )


async def until(probe, what: str):
    """Poll `probe()` until it returns something truthy (generous deadline)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if result := await probe():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}")


async def test_postgres_stopped_and_started(postgres, tmp_path, monkeypatch):
    monkeypatch.setattr(app.main, "PURGE_INTERVAL_SECONDS", 0.2)
    monkeypatch.setattr(app.main, "RETENTION_INTERVAL_SECONDS", 0.2)
    url = postgres.create_database("outage")
    settings = make_settings(UNUSED_LIVEKIT, tmp_path, database_url=url, webhook_retention_days=1)
    service = LiveService().start(settings)
    housekeeping = service.app.state.housekeeping
    assert len(housekeeping) == 2
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            assert (await post_webhook(http, "EV_1")).status_code == 200

            async with http.stream(
                "GET", "/v1/webhooks/events/stream", headers=auth("events")
            ) as stream:
                assert stream.status_code == 200
                frames = sse_events(stream)
                assert "retry" in await anext(frames)  # the stream's start is fixed
                assert (await post_webhook(http, "EV_2")).status_code == 200
                assert (await anext(frames))["id"] == "EV_2"

                postgres.pause()

                # the webhook answers 503 within the bound, so LiveKit retries it
                refused = await post_webhook(http, "EV_3", timeout=OUTAGE_ANSWER_SECONDS)
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["code"] == "event_store_unavailable"
                assert "retry-after" in refused.headers
                assert "postgres" not in refused.text.lower()
                # the open stream ends cleanly (no error frame, the body completes)
                async with asyncio.timeout(DEADLINE_SECONDS):
                    rest = [frame async for frame in frames]
                assert rest == []

            listed = await http.get("/v1/webhooks/events", headers=auth("events"))
            assert listed.status_code == 503 and listed.json()["code"] == "event_store_unavailable"
            one = await http.get("/v1/webhooks/events/EV_1", headers=auth("events"))
            assert one.status_code == 503
            reopened = await http.get("/v1/webhooks/events/stream", headers=auth("events"))
            assert reopened.status_code == 503
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["event_store"].startswith("failed")
            await asyncio.sleep(1)  # several housekeeping runs fail meanwhile
            assert not any(task.done() for task in housekeeping)

            postgres.resume()

            # healed without a restart: the retried webhook is stored, reads work
            async def stored() -> bool:
                return (await post_webhook(http, "EV_3")).status_code == 200

            await until(stored, "the webhook is stored again")
            listed = await http.get("/v1/webhooks/events", headers=auth("events"))
            assert [e["id"] for e in listed.json()["items"]] == ["EV_3", "EV_2", "EV_1"]
            async with http.stream(
                "GET",
                "/v1/webhooks/events/stream",
                headers={**auth("events"), "Last-Event-ID": "EV_2"},
            ) as stream:
                frames = sse_events(stream)
                assert "retry" in await anext(frames)
                assert (await anext(frames))["id"] == "EV_3"
            assert (await http.get("/readyz")).json()["checks"]["event_store"] == "ok"

            # the housekeeping tasks survived the outage and still work: an event received
            # long ago is deleted by the retention task
            # (not read back through the API first: the retention task, which runs often
            # here, may already have deleted it; insert_old_event checks the row was written)
            await insert_old_event(url, "EV_OLD")

            async def purged() -> bool:
                response = await http.get("/v1/webhooks/events/EV_OLD", headers=auth("events"))
                return response.status_code == 404

            await until(purged, "the retention task deletes the old event")
            assert not any(task.done() for task in housekeeping)
    finally:
        service.stop()


async def insert_old_event(url: str, event_id: str) -> None:
    """Store an event received 3 days ago, straight into the table."""
    store = Store(url)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    body = json.dumps({"event": "room_started", "id": event_id, "room": {"name": "old"}})
    try:
        async with store.db_session.begin() as session:
            inserted = await session.execute(
                sa.insert(webhook_events).values(
                    id=event_id,
                    event="room_started",
                    room_name="old",
                    created_at=long_ago,
                    received_at=long_ago,
                    body=body,
                )
            )
            assert inserted.rowcount == 1
    finally:
        await store.aclose()


async def test_a_database_that_never_answers_is_503_after_the_connect_timeout():
    """A PostgreSQL address that accepts TCP connections and then says nothing (a hung
    server, a black-holed proxy): connecting gives up after the connect timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        store = Store(
            f"postgresql+asyncpg://postgres@127.0.0.1:{port}/db", connect_timeout_seconds=1
        )
        try:
            async with asyncio.timeout(DEADLINE_SECONDS):  # a hang fails here, not in CI's limit
                with pytest.raises(UpstreamUnavailable) as caught, database_errors():
                    await store.events.last_seq()
        finally:
            await store.aclose()
    assert caught.value.code == "event_store_unavailable"


async def test_a_statement_past_the_command_timeout_is_503(postgres_url):
    store = Store(postgres_url, command_timeout_seconds=1)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            with pytest.raises(UpstreamUnavailable), database_errors():
                async with store.db_session() as session:
                    await session.execute(sa.text("SELECT pg_sleep(30)"))
            with database_errors():  # the pool still serves afterwards
                async with store.db_session() as session:
                    assert (await session.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await store.aclose()
