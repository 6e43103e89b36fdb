"""POST /v1/webhooks/livekit and the events API against a real store (SQLite, and a real
PostgreSQL started by the tests): forgeries are refused and leave nothing behind, a valid
event is stored once however often and however concurrently it arrives."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from app.events.webhooks import purge_expired_events
from tests.components import signed_webhook, webhook_body
from tests.conftest import API_KEY, API_SECRET, auth

pytestmark = pytest.mark.integration

#: The service does not call LiveKit on these routes; nothing listens here.
UNUSED_LIVEKIT = "http://127.0.0.1:9"
ROTATED_KEY, ROTATED_SECRET = "APIrotated", "rotated-secret-" + "r" * 32
WEBHOOK = "/v1/webhooks/livekit"
EVENTS = "/v1/webhooks/events"
JSON_WEBHOOK = "application/webhook+json"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store' / 'events.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def http(app_client, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process service on SQLite whose keyring also holds a rotated key."""
    async with app_client(
        UNUSED_LIVEKIT, livekit_webhook_keys={ROTATED_KEY: ROTATED_SECRET}
    ) as client:
        yield client


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("api_secret", API_SECRET)
    return {"Authorization": signed_webhook(body, **kwargs), "Content-Type": JSON_WEBHOOK}


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(WEBHOOK, content=body, headers=headers)


async def stored(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(EVENTS, params={"limit": 500, **params}, headers=auth("events"))
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _forgeries(body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    flipped = bytearray(body)
    flipped[-3] ^= 0x01
    good = signed(body)
    return {
        "flipped body byte": signed(bytes(flipped)),
        "wrong secret": signed(body, api_secret="wrong-secret-" + "w" * 32),
        "unknown iss": signed(body, api_key="APIunknown"),
        "expired token": signed(body, ttl_seconds=-600),
        "no sha256 claim": {
            **good,
            "Authorization": jwt.encode({"iss": API_KEY, "exp": now + 300}, API_SECRET),
        },
        "bad base64": signed(body, sha256="%%%not-base64%%%"),
        "alg none": {
            **good,
            "Authorization": jwt.encode(
                {"iss": API_KEY, "exp": now + 300, "sha256": _digest(body)}, None, "none"
            ),
        },
        "missing header": {"Content-Type": JSON_WEBHOOK},
    }


@pytest.mark.parametrize("forgery", list(_forgeries(webhook_body("EV_any"))))
async def test_forgeries_are_401_and_nothing_is_stored(http, forgery):
    body = webhook_body(f"EV_forged_{forgery.replace(' ', '_')}")
    headers = _forgeries(body)[forgery]  # "flipped body byte": it signs a body one bit off
    response = await post(http, body, headers)
    assert response.status_code == 401, response.text
    problem = response.json()
    assert problem["code"] == "webhook_signature_invalid"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored(http) == []


async def test_a_valid_event_is_stored_with_or_without_bearer_and_by_any_key(http):
    first, second, third = (webhook_body(f"EV_ok{i}") for i in range(3))
    assert (await post(http, first, signed(first))).status_code == 200
    bearer = signed(second)
    bearer["Authorization"] = f"Bearer {bearer['Authorization']}"
    assert (await post(http, second, bearer)).status_code == 200
    rotated = signed(third, api_key=ROTATED_KEY, api_secret=ROTATED_SECRET)
    response = await post(http, third, rotated)
    assert response.status_code == 200
    assert response.json() == {"id": "EV_ok2", "event": "room_started", "duplicate": False}
    assert [e["id"] for e in await stored(http)] == ["EV_ok2", "EV_ok1", "EV_ok0"]


async def test_both_content_types_are_accepted_and_others_are_415(http):
    body = webhook_body("EV_json")
    assert (await post(http, body, {**signed(body), "Content-Type": "application/json"})).is_success
    other = webhook_body("EV_text")
    response = await post(http, other, {**signed(other), "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert [e["id"] for e in await stored(http)] == ["EV_json"]


async def test_a_body_over_1_mib_is_413_and_nothing_is_stored(http):
    padding = "x" * (1024 * 1024)
    body = webhook_body("EV_big", room="big", **{"padding": padding})
    response = await post(http, body, signed(body))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the bytes are counted
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await http.post(WEBHOOK, content=chunks(), headers=signed(body))
    assert response.status_code == 413
    assert await stored(http) == []


async def test_an_unparseable_body_with_a_valid_signature_is_400(http):
    for body in (b"not json", b"[]", b'{"event": "room_started"}', b'{"id": 1, "event": 2}'):
        response = await post(http, body, signed(body))
        assert response.status_code == 400, body
        assert response.json()["code"] == "webhook_malformed"
    assert await stored(http) == []


async def test_an_unknown_event_type_is_stored_with_its_unknown_fields_kept(http):
    body = json.dumps(
        {"event": "something_new", "id": "EV_new", "createdAt": "1700000000", "newField": 1}
    ).encode()
    response = await post(http, body, signed(body))
    assert response.status_code == 200
    event = (await http.get(f"{EVENTS}/EV_new", headers=auth("events"))).json()
    assert event["event"] == "something_new"
    assert event["created_at"] == "2023-11-14T22:13:20Z"
    store = http.app.state.store  # the exact body is what was stored
    assert (await store.events.get("EV_new")).body == body.decode()


async def test_the_same_event_100_times_20_at_once_is_stored_once(app_client, database_url):
    async with app_client(UNUSED_LIVEKIT, database_url=database_url) as client:
        body = webhook_body("EV_dup", "participant_joined", participant={"identity": "dup"})
        headers = signed(body)
        concurrent = await asyncio.gather(*(post(client, body, headers) for _ in range(20)))
        sequential = [await post(client, body, headers) for _ in range(80)]
        responses = concurrent + sequential
        assert [r.status_code for r in responses] == [200] * 100
        assert sum(not r.json()["duplicate"] for r in responses) == 1
        events = await stored(client)
        assert [e["id"] for e in events] == ["EV_dup"]
        assert events[0]["participant_identity"] == "dup"


async def _seed(client: httpx.AsyncClient) -> list[str]:
    """Seven events of several kinds, oldest first; returns their ids."""
    bodies = [
        webhook_body("EV_1", "room_started", room="alpha", createdAt="1700000000"),
        webhook_body(
            "EV_2", "participant_joined", room="alpha", participant={"identity": "ann"},
            createdAt="1700000100",
        ),
        webhook_body(
            "EV_3", "track_published", room="alpha", participant={"identity": "ann"},
            track={"sid": "TR_1"}, createdAt="1700000200",
        ),
        webhook_body("EV_4", "room_started", room="beta", createdAt="1700000300"),
        json.dumps(
            {"event": "egress_started", "id": "EV_5", "createdAt": "1700000400",
             "egressInfo": {"egressId": "EG_1", "roomName": "beta"}}
        ).encode(),
        json.dumps(
            {"event": "ingress_started", "id": "EV_6", "createdAt": "1700000500",
             "ingressInfo": {"ingressId": "IN_1", "roomName": "gamma"}}
        ).encode(),
        webhook_body("EV_7", "room_finished", room="alpha", createdAt="1700000600"),
    ]  # fmt: skip
    for body in bodies:
        assert (await post(client, body, signed(body))).status_code == 200
    return [f"EV_{i}" for i in range(1, 8)]


async def test_events_are_listed_newest_first_filtered_and_paged(app_client, database_url):
    async with app_client(UNUSED_LIVEKIT, database_url=database_url) as client:
        ids = await _seed(client)

        def listed(events: list[dict[str, Any]]) -> list[str]:
            return [e["id"] for e in events]

        assert listed(await stored(client)) == ids[::-1]
        assert listed(await stored(client, room_name="alpha")) == ["EV_7", "EV_3", "EV_2", "EV_1"]
        assert listed(await stored(client, event="room_started")) == ["EV_4", "EV_1"]
        assert listed(await stored(client, participant_identity="ann")) == ["EV_3", "EV_2"]
        assert listed(await stored(client, egress_id="EG_1")) == ["EV_5"]
        assert listed(await stored(client, ingress_id="IN_1")) == ["EV_6"]
        assert listed(await stored(client, room_name="beta", event="egress_started")) == ["EV_5"]
        window = {"since": "2023-11-14T22:15:00Z", "until": "2023-11-14T22:20:00+00:00"}
        assert listed(await stored(client, **window)) == ["EV_4", "EV_3", "EV_2"]
        assert listed(await stored(client, since="2023-11-14T22:21:00")) == ["EV_7", "EV_6"]

        pages, token = [], None
        while True:
            params = {"limit": 3, **({"page_token": token} if token else {})}
            response = await client.get(EVENTS, params=params, headers=auth("events"))
            assert response.status_code == 200
            page = response.json()
            pages.append(listed(page["items"]))
            token = page["next_page_token"]
            if token is None:
                break
        assert pages == [["EV_7", "EV_6", "EV_5"], ["EV_4", "EV_3", "EV_2"], ["EV_1"]]

        paged = await client.get(
            EVENTS, params={"room_name": "alpha", "limit": 2}, headers=auth("events")
        )
        rest = await client.get(
            EVENTS,
            params={"room_name": "alpha", "page_token": paged.json()["next_page_token"]},
            headers=auth("events"),
        )
        assert listed(rest.json()["items"]) == ["EV_2", "EV_1"]
        assert rest.json()["next_page_token"] is None


async def test_the_events_api_checks_scope_and_input(http):
    assert (await http.get(EVENTS)).status_code == 401
    assert (await http.get(EVENTS, headers=auth("reader"))).status_code == 403
    assert (await http.get(f"{EVENTS}/EV_x", headers=auth("reader"))).status_code == 403
    assert (await http.get(f"{EVENTS}/stream", headers=auth("reader"))).status_code == 403
    bad_token = await http.get(EVENTS, params={"page_token": "nope"}, headers=auth("events"))
    assert bad_token.status_code == 400
    assert bad_token.json()["code"] == "invalid_page_token"
    for params in ({"limit": 0}, {"limit": 501}, {"since": "yesterday"}, {"colour": "red"}):
        response = await http.get(EVENTS, params=params, headers=auth("events"))
        assert response.status_code == 422, params


async def test_one_event_has_its_full_payload_and_a_missing_one_is_404(http):
    body = webhook_body(
        "EV_full",
        "track_published",
        room="delta",
        participant={"sid": "PA_1", "identity": "bob", "joinedAt": "1700000000"},
        track={"sid": "TR_9", "type": "AUDIO", "source": "MICROPHONE"},
    )
    assert (await post(http, body, signed(body))).status_code == 200
    response = await http.get(f"{EVENTS}/EV_full", headers=auth("events"))
    assert response.status_code == 200
    event = response.json()
    assert (event["id"], event["event"], event["room_name"]) == (
        "EV_full",
        "track_published",
        "delta",
    )
    assert event["participant_identity"] == "bob"
    payload = event["payload"]
    assert payload["room"]["name"] == "delta"
    assert payload["participant"]["joined_at"] == 1700000000
    assert payload["track"]["sid"] == "TR_9"
    assert payload["track"]["source"] == "MICROPHONE"
    missing = await http.get(f"{EVENTS}/EV_nope", headers=auth("events"))
    assert missing.status_code == 404
    assert missing.json()["code"] == "event_not_found"


async def test_retention_deletes_only_events_older_than_the_setting(http):
    for event_id in ("EV_r1", "EV_r2"):
        body = webhook_body(event_id)
        assert (await post(http, body, signed(body))).status_code == 200
    store = http.app.state.store
    now = dt.datetime.now(dt.UTC)
    assert await purge_expired_events(store, 30, now=now) == 0
    assert await purge_expired_events(store, 0, now=now + dt.timedelta(days=400)) == 0
    assert await purge_expired_events(store, 30, now=now + dt.timedelta(days=31)) == 2
    assert await stored(http) == []


async def test_readyz_checks_that_the_store_is_writable(app_client, livekit_server, database_url):
    # each request probes (no cached result), so the second one shows the pool reopened
    async with app_client(
        livekit_server.url, database_url=database_url, readyz_cache_seconds=0
    ) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["event_store"] == "ok"
        await client.app.state.store.engine.dispose()  # pools reopen: still writable
        assert (await client.get("/readyz")).json()["checks"]["event_store"] == "ok"


async def test_readyz_is_503_when_the_store_cannot_be_written(
    app_client, livekit_server, postgres_url
):
    async with app_client(livekit_server.url, database_url=postgres_url) as client:
        store = client.app.state.store
        database = store.url.database
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
        await store.engine.dispose()  # new connections are read-only
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {
            "livekit": "ok",
            "event_store": "failed: DBAPIError",
        }


async def test_a_body_over_1_mib_is_413_over_real_http(client):
    """The live service (uvicorn) answers 413 without reading the whole body."""
    body = webhook_body("EV_big_http", padding="x" * (2 * 1024 * 1024))
    response = await post(client, body, signed(body))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await client.post(WEBHOOK, content=chunks(), headers=signed(body))
    assert response.status_code == 413
    missing = await client.get(f"{EVENTS}/EV_big_http", headers=auth("events"))
    assert missing.status_code == 404


#: A trigger that makes every insert into `webhook_events` fail, per dialect.
REFUSE_INSERTS = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON webhook_events "
        "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by a test trigger'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON webhook_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


async def test_a_failed_insert_is_logged_without_the_body(
    app_client, database_url, json_log_output
):
    """The webhook body is a parameter of the INSERT: the database's error is logged (with
    its traceback) without it, and LiveKit gets a 503 to retry."""
    async with app_client(UNUSED_LIVEKIT, database_url=database_url) as client:
        store = client.app.state.store
        async with store.engine.begin() as connection:
            for statement in REFUSE_INSERTS[store.dialect]:
                await connection.exec_driver_sql(statement)
        marker = f"body-text-{time.time_ns()}"
        body = webhook_body("EV_refused", metadata=marker)
        response = await post(client, body, signed(body))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "event_store_unavailable"
    lines = [json.loads(line) for line in json_log_output.getvalue().splitlines()]
    [failure] = [line for line in lines if line["event"].startswith("event store failure")]
    assert "refused by a test trigger" in failure["exception"]  # the database's own text
    assert "INSERT INTO webhook_events" in failure["exception"]
    assert "parameters hidden" in failure["exception"]
    assert marker not in json_log_output.getvalue().decode()
