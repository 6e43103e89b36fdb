"""The relay to the app's webhook endpoints (contract: Webhook endpoints), against real
subscribers on loopback (`tests.components.Subscriber`) that verify every delivery with the
`standardwebhooks` library: the endpoints API, signed deliveries of stored events, filters,
rotation, tests and replays, the retry schedule (shortened through the relay's policy),
410, and that a dead endpoint never holds up a live one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import secrets
import time
from typing import Any

import httpx
import pytest

from app.events.endpoint_urls import AddressAllowList, EndpointUrlRules
from app.events.relay import RelayPolicy, purge_finished_deliveries
from tests.components import Subscriber, free_port, post_webhooks
from tests.conftest import auth
from tests.participants import wait_for

pytestmark = pytest.mark.integration

UNUSED_LIVEKIT = "http://127.0.0.1:9"
FAST = RelayPolicy(schedule=(0.05, 0.05, 0.05), poll_seconds=0.05, per_endpoint=2)


def event(event_id: str, kind: str = "room_started", room: str = "room-a") -> dict[str, Any]:
    return {
        "event": kind,
        "id": event_id,
        "createdAt": str(int(dt.datetime.now(dt.UTC).timestamp())),
        "room": {"sid": f"RM_{event_id}", "name": room},
    }


async def create(http: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    response = await http.post(
        "/v1/webhooks/endpoints", json={"url": url, **fields}, headers=auth("hooks")
    )
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(http: httpx.AsyncClient, endpoint_id: str, **params: Any) -> list[dict]:
    response = await http.get(
        f"/v1/webhooks/endpoints/{endpoint_id}/deliveries", params=params, headers=auth("events")
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def fast(http: httpx.AsyncClient, policy: RelayPolicy = FAST) -> None:
    """Shorten the in-process app's relay timings (the schedule is a parameter)."""
    http.app.state.relay.policy = policy  # type: ignore[attr-defined]


# --- the endpoints API --------------------------------------------------------------------


async def test_an_endpoint_is_created_read_changed_and_deleted_and_its_secret_shown_once(
    app_client, subscriber
):
    async with app_client(UNUSED_LIVEKIT) as http:
        created = await create(http, subscriber.path, description="app", event_types=["a", "a"])
        secret = created["signing_secret"]
        assert secret.startswith("whsec_") and len(secret) >= len("whsec_") + 32
        assert created["event_types"] == ["a"] and created["enabled"] is True
        endpoint_id = created["id"]

        one = await http.get(f"/v1/webhooks/endpoints/{endpoint_id}", headers=auth("events"))
        listed = await http.get("/v1/webhooks/endpoints", headers=auth("events"))
        assert one.status_code == 200 and listed.status_code == 200
        assert "signing_secret" not in one.json()
        assert [e["id"] for e in listed.json()["items"]] == [endpoint_id]
        assert listed.json()["next_page_token"] is None
        assert secret not in one.text + listed.text

        changed = await http.patch(
            f"/v1/webhooks/endpoints/{endpoint_id}",
            json={"enabled": False, "roomNamePattern": "lobby-*"},
            headers=auth("hooks"),
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["enabled"] is False
        assert changed.json()["room_name_pattern"] == "lobby-*"
        assert changed.json()["description"] == "app"

        rotated = await http.post(
            f"/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", headers=auth("hooks")
        )
        assert rotated.status_code == 200
        assert rotated.json()["signing_secret"] not in (None, secret)
        assert rotated.json()["previous_secret_expires_at"]

        gone = await http.delete(f"/v1/webhooks/endpoints/{endpoint_id}", headers=auth("hooks"))
        assert gone.status_code == 204
        missing = await http.get(f"/v1/webhooks/endpoints/{endpoint_id}", headers=auth("events"))
        assert missing.status_code == 404
        assert missing.json()["code"] == "webhook_endpoint_not_found"


async def test_reading_needs_webhooks_read_and_changing_webhooks_write(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        body = {"url": subscriber.path}
        refused = await http.post("/v1/webhooks/endpoints", json=body, headers=auth("events"))
        assert refused.status_code == 403 and "webhooks:write" in refused.json()["detail"]
        nobody = await http.get("/v1/webhooks/endpoints", headers=auth("reader"))
        assert nobody.status_code == 403
        anonymous = await http.get("/v1/webhooks/endpoints")
        assert anonymous.status_code == 401
        # a write scope includes reading
        assert (await http.get("/v1/webhooks/endpoints", headers=auth("hooks"))).status_code == 200


async def test_an_idempotent_creation_is_replayed_without_the_secret(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        headers = auth("hooks") | {"Idempotency-Key": secrets.token_hex(8)}
        body = {"url": subscriber.path}
        first = await http.post("/v1/webhooks/endpoints", json=body, headers=headers)
        again = await http.post("/v1/webhooks/endpoints", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert first.json()["signing_secret"].startswith("whsec_")
        assert "signing_secret" not in again.json()
        assert first.json()["signing_secret"] not in again.text
        listed = await http.get("/v1/webhooks/endpoints", headers=auth("events"))
        assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://127.0.0.1/hook", "invalid_webhook_endpoint_url"),
        ("http://user:pw@127.0.0.1/hook", "invalid_webhook_endpoint_url"),
        ("http://10.1.2.3/hook", "webhook_endpoint_address_refused"),
        ("http://169.254.169.254/latest", "webhook_endpoint_address_refused"),
        ("http://[::1]/hook", "webhook_endpoint_address_refused"),
        ("http://localhost.localdomain.invalid/hook", "webhook_endpoint_address_refused"),
    ],
)
async def test_urls_that_are_not_allowed_are_refused(app_client, url, code):
    async with app_client(UNUSED_LIVEKIT) as http:
        response = await http.post(
            "/v1/webhooks/endpoints", json={"url": url}, headers=auth("hooks")
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code


async def test_loopback_is_refused_unless_webhook_endpoint_allow_names_it(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT, webhook_endpoint_allow=[]) as http:
        response = await http.post(
            "/v1/webhooks/endpoints", json={"url": subscriber.path}, headers=auth("hooks")
        )
        assert response.status_code == 422
        assert response.json()["code"] == "webhook_endpoint_address_refused"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://10.0.0.1/hook", "webhook_endpoint_address_refused"),
        ("https://127.0.0.1/hook", "webhook_endpoint_address_refused"),
        ("https://localhost/hook", "webhook_endpoint_address_refused"),  # resolves to loopback
        ("http://10.0.0.1/hook", "invalid_webhook_endpoint_url"),  # and https only
    ],
)
async def test_in_production_a_private_address_is_refused_at_creation(app_client, url, code):
    production = {"app_env": "production", "rate_limit_storage_url": "memory://"}
    async with app_client(UNUSED_LIVEKIT, webhook_endpoint_allow=[], **production) as http:
        response = await http.post(
            "/v1/webhooks/endpoints", json={"url": url}, headers=auth("hooks")
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code
        listed = await http.get("/v1/webhooks/endpoints", headers=auth("events"))
        assert listed.json()["items"] == []


async def test_a_change_is_checked_as_a_creation_and_a_disabled_endpoint_takes_no_test(
    app_client, subscriber
):
    async with app_client(UNUSED_LIVEKIT) as http:
        created = await create(http, subscriber.path, enabled=False)
        endpoint = f"/v1/webhooks/endpoints/{created['id']}"
        refused = await http.patch(
            endpoint, json={"url": "http://10.0.0.1/hook"}, headers=auth("hooks")
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "webhook_endpoint_address_refused"
        tested = await http.post(f"{endpoint}/test", headers=auth("hooks"))
        assert tested.status_code == 409 and tested.json()["code"] == "webhook_endpoint_disabled"
        missing = await http.post("/v1/webhooks/endpoints/WE_nope/test", headers=auth("hooks"))
        assert missing.status_code == 404
        bad_token = await http.get(
            f"{endpoint}/deliveries", params={"page_token": "x"}, headers=auth("events")
        )
        assert bad_token.status_code == 400 and bad_token.json()["code"] == "invalid_page_token"


# --- delivery -----------------------------------------------------------------------------


async def test_every_stored_event_is_delivered_signed_with_a_stable_webhook_id(
    app_client, subscriber
):
    async with app_client(UNUSED_LIVEKIT) as http:
        created = await create(http, subscriber.path)
        subscriber.secrets = [created["signing_secret"]]
        ids = [f"EV_{secrets.token_hex(6)}" for _ in range(5)]
        await post_webhooks(http, [event(i) for i in ids])
        await wait_for(lambda: len(subscriber.received) >= 5, timeout=60)
        assert sorted(subscriber.event_ids()) == sorted(ids)
        assert all(d.verified for d in subscriber.received)
        first = subscriber.received[0]
        assert first.headers["content-type"] == "application/json"
        assert json.loads(first.body)["room"]["name"] == "room-a"

        async def all_succeeded() -> bool:
            items = await deliveries(http, created["id"], status="succeeded")
            return len(items) == 5

        await wait_for(all_succeeded, timeout=60)
        items = await deliveries(http, created["id"])
        assert {d["id"] for d in items} == {d.headers["webhook-id"] for d in subscriber.received}
        assert all(d["attempts"] == 1 and d["last_status_code"] == 204 for d in items)
        assert all(d["latency_ms"] is not None and d["next_attempt_at"] is None for d in items)


async def test_filters_choose_the_events_an_endpoint_gets(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        await create(http, subscriber.path, event_types=["room_finished"])
        await create(http, f"{subscriber.url}/lobby", room_name_pattern="lobby-*")
        await post_webhooks(
            http,
            [
                event("EV_started_lobby", "room_started", "lobby-1"),
                event("EV_finished_other", "room_finished", "other"),
                event("EV_started_other", "room_started", "other"),
            ],
        )
        await wait_for(lambda: len(subscriber.received) >= 2, timeout=60)
        await post_webhooks(http, [event("EV_last", "room_finished", "lobby-2")])
        await wait_for(lambda: len(subscriber.received) >= 4, timeout=60)
        by_path: dict[str, set[str]] = {}
        for delivery in subscriber.received:
            by_path.setdefault(delivery.path, set()).add(json.loads(delivery.body)["id"])
        assert by_path == {
            "/hook": {"EV_finished_other", "EV_last"},
            "/lobby": {"EV_started_lobby", "EV_last"},
        }
        assert len(subscriber.received) == 4


async def test_after_a_rotation_both_secrets_sign_for_a_day(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        created = await create(http, subscriber.path)
        old = created["signing_secret"]
        rotated = await http.post(
            f"/v1/webhooks/endpoints/{created['id']}/rotate-secret", headers=auth("hooks")
        )
        new = rotated.json()["signing_secret"]
        await post_webhooks(http, [event("EV_rotated")])
        await wait_for(lambda: len(subscriber.received) >= 1, timeout=60)
        delivery = subscriber.received[0]
        signatures = delivery.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
        from standardwebhooks.webhooks import Webhook

        for secret in (old, new):  # each alone verifies the delivery
            Webhook(secret).verify(delivery.body, delivery.headers)
        assert Webhook(new).verify(delivery.body, delivery.headers)["id"] == "EV_rotated"


async def test_a_test_event_and_a_replay_go_the_same_way(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        await post_webhooks(http, [event("EV_before_1"), event("EV_before_2", room="b")])
        created = await create(http, subscriber.path, room_name_pattern="room-*")
        subscriber.secrets = [created["signing_secret"]]
        endpoint = f"/v1/webhooks/endpoints/{created['id']}"

        tested = await http.post(f"{endpoint}/test", headers=auth("hooks"))
        assert tested.status_code == 202, tested.text
        await wait_for(lambda: len(subscriber.received) >= 1, timeout=60)
        assert json.loads(subscriber.received[0].body)["event"] == "webhook_test"
        assert subscriber.received[0].headers["webhook-id"] == tested.json()["id"]

        since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        replayed = await http.post(
            f"{endpoint}/replay", json={"since": since}, headers=auth("hooks")
        )
        assert replayed.status_code == 202, replayed.text
        assert replayed.json() == {"enqueued": 1}  # room "b" does not match room-*
        await wait_for(lambda: len(subscriber.received) >= 2, timeout=60)
        assert subscriber.event_ids()[1] == "EV_before_1"
        assert all(d.verified for d in subscriber.received)

        backwards = await http.post(
            f"{endpoint}/replay",
            json={"since": since, "until": "2000-01-01T00:00:00Z"},
            headers=auth("hooks"),
        )
        assert backwards.status_code == 400
        assert backwards.json()["code"] == "invalid_replay_window"


# --- retries ------------------------------------------------------------------------------


async def test_failures_are_retried_on_the_schedule_until_a_2xx(app_client, subscriber):
    answers = iter([500, 502])
    subscriber.respond = lambda _d: (next(answers, 200), {}, 0.0)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http)
        created = await create(http, subscriber.path)
        await post_webhooks(http, [event("EV_retried")])

        async def succeeded() -> bool:
            return bool(await deliveries(http, created["id"], status="succeeded"))

        await wait_for(succeeded, timeout=60)
        [delivery] = await deliveries(http, created["id"])
        assert delivery["attempts"] == 3 and delivery["last_status_code"] == 200
        ids = {d.headers["webhook-id"] for d in subscriber.received}
        assert ids == {delivery["id"]} and len(subscriber.received) == 3


async def test_past_the_schedule_a_delivery_fails(app_client, subscriber):
    subscriber.respond = lambda _d: (500, {}, 0.0)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http)
        created = await create(http, subscriber.path)
        await post_webhooks(http, [event("EV_failing")])

        async def failed() -> bool:
            return bool(await deliveries(http, created["id"], status="failed"))

        await wait_for(failed, timeout=60)
        [delivery] = await deliveries(http, created["id"])
        assert delivery["attempts"] == len(FAST.schedule) + 1
        assert delivery["last_error"] == "HTTP 500" and delivery["next_attempt_at"] is None
        assert len(subscriber.received) == len(FAST.schedule) + 1


class MovableClock:
    """The relay's clock, moved forward by `advance` (no test waits minutes)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(app_client, subscriber, status):
    answers = iter([status])
    subscriber.respond = lambda _d: (next(answers, 200), {"Retry-After": "120"}, 0.0)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http)
        clock = http.app.state.relay.clock = MovableClock()  # type: ignore[attr-defined]
        created = await create(http, subscriber.path)
        await post_webhooks(http, [event(f"EV_later_{status}")])

        async def attempted() -> bool:
            items = await deliveries(http, created["id"])
            return bool(items) and items[0]["attempts"] == 1

        await wait_for(attempted, timeout=60)
        [delivery] = await deliveries(http, created["id"])
        assert delivery["status"] == "pending" and delivery["last_status_code"] == status
        last = dt.datetime.fromisoformat(delivery["last_attempt_at"])
        due = dt.datetime.fromisoformat(delivery["next_attempt_at"])
        assert due - last == dt.timedelta(seconds=120)  # not the schedule's 0.05 s
        assert len(subscriber.received) == 1

        clock.advance(121)

        async def succeeded() -> bool:
            return bool(await deliveries(http, created["id"], status="succeeded"))

        await wait_for(succeeded, timeout=60)
        first, second = subscriber.received
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        sent = [int(d.headers["webhook-timestamp"]) for d in subscriber.received]
        assert sent[1] - sent[0] >= 120


async def test_a_subscriber_unavailable_for_10_s_gets_every_event_with_its_webhook_id(
    app_client, subscriber
):
    """In real time (no clock moved): the subscriber answers `503` with `Retry-After: 2`
    for 10 s after the first attempt reaches it, then `200`. Every event is delivered, every
    attempt of one event carries the same `webhook-id`, and no retry comes sooner than the
    `Retry-After` or the schedule says (`next_state`: the later of the two). The schedule
    is shortened to 1 s steps so that `Retry-After` is what spaces the attempts (the
    default's second retry comes after 5 min)."""
    arrivals: dict[str, list[float]] = {}  # webhook-id -> when each attempt arrived
    opened: list[float] = []

    def unavailable_then_ok(delivery: Subscriber.Delivery) -> tuple[int, dict[str, str], float]:
        now = time.monotonic()
        arrivals.setdefault(delivery.headers["webhook-id"], []).append(now)
        opened.append(opened[0] if opened else now)
        if now - opened[0] < 10:
            return 503, {"Retry-After": "2"}, 0.0
        return 200, {}, 0.0

    subscriber.respond = unavailable_then_ok
    policy = RelayPolicy(schedule=(1.0,) * 20, poll_seconds=0.2)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http, policy)
        created = await create(http, subscriber.path)
        subscriber.secrets = [created["signing_secret"]]
        ids = [f"EV_unavailable_{n}" for n in range(20)]
        await post_webhooks(http, [event(i) for i in ids])

        async def all_succeeded() -> bool:
            done = await deliveries(http, created["id"], status="succeeded", limit=100)
            return len(done) == len(ids)

        await wait_for(all_succeeded, timeout=90)
        items = await deliveries(http, created["id"], limit=100)
    assert all(d.verified for d in subscriber.received)
    assert set(subscriber.event_ids()) == set(ids)
    webhook_ids = subscriber.webhook_ids()
    assert all(len(found) == 1 for found in webhook_ids.values())  # stable across retries
    assert {d["id"] for d in items} == set().union(*webhook_ids.values())
    retry_after = 2.0
    for times in arrivals.values():
        assert len(times) >= 2  # the first attempt met the 503s
        for n, (before, after) in enumerate(itertools.pairwise(times)):
            assert after - before >= max(policy.schedule[n], retry_after)


async def test_410_disables_the_endpoint(app_client, subscriber):
    subscriber.respond = lambda _d: (410, {}, 0.0)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http)
        created = await create(http, subscriber.path)
        await post_webhooks(http, [event("EV_gone")])

        async def disabled() -> bool:
            one = await http.get(f"/v1/webhooks/endpoints/{created['id']}", headers=auth("events"))
            return one.json()["enabled"] is False

        await wait_for(disabled, timeout=60)
        one = await http.get(f"/v1/webhooks/endpoints/{created['id']}", headers=auth("events"))
        assert "410" in one.json()["disabled_reason"]
        [delivery] = await deliveries(http, created["id"])
        assert delivery["status"] == "failed" and delivery["last_status_code"] == 410
        await post_webhooks(http, [event("EV_after_gone")])
        assert len(await deliveries(http, created["id"])) == 1  # a disabled endpoint gets none
        assert len(subscriber.received) == 1


# --- no head-of-line blocking ---------------------------------------------------------------


async def test_a_dead_endpoint_never_holds_up_a_live_one(app_client, subscriber):
    hanging = Subscriber().start()
    hanging.respond = lambda _d: (204, {}, 120.0)  # answers only when released
    try:
        async with app_client(UNUSED_LIVEKIT) as http:
            policy = RelayPolicy(schedule=(60,), timeout_seconds=100, poll_seconds=0.05)
            fast(http, dataclasses.replace(policy, per_endpoint=2))
            await create(http, hanging.path)
            await create(http, f"http://127.0.0.1:{free_port()}/refused")  # nothing listens
            await create(http, subscriber.path)
            ids = [f"EV_hol_{n}" for n in range(12)]
            await post_webhooks(http, [event(i) for i in ids])
            await wait_for(lambda: len(subscriber.received) == len(ids), timeout=60)
            assert sorted(subscriber.event_ids()) == sorted(ids)
            # the hanging endpoint holds its own two slots, no more
            await wait_for(lambda: len(hanging.received) >= 2, timeout=60)
            assert len(hanging.received) == 2, hanging.event_ids()
    finally:
        hanging.stop()


async def test_the_address_is_checked_again_at_every_attempt(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http)
        created = await create(http, subscriber.path)
        # the rules change after creation (as a DNS answer may): the attempt is refused
        relay = http.app.state.relay  # type: ignore[attr-defined]
        relay.rules = EndpointUrlRules(https_only=False, allow=AddressAllowList())
        await post_webhooks(http, [event("EV_rebound")])

        async def refused() -> bool:
            items = await deliveries(http, created["id"])
            return bool(items) and items[0]["attempts"] >= 1

        await wait_for(refused, timeout=60)
        [delivery] = await deliveries(http, created["id"])
        assert delivery["last_status_code"] is None
        assert "not a global address" in delivery["last_error"]
        assert subscriber.received == []


async def test_redirects_are_not_followed(app_client, subscriber):
    target = Subscriber().start()
    subscriber.respond = lambda _d: (307, {"Location": target.path}, 0.0)
    try:
        async with app_client(UNUSED_LIVEKIT) as http:
            fast(http)
            created = await create(http, subscriber.path)
            await post_webhooks(http, [event("EV_redirected")])

            async def attempted() -> bool:
                items = await deliveries(http, created["id"])
                return bool(items) and items[0]["attempts"] >= 1

            await wait_for(attempted, timeout=60)
            [delivery] = await deliveries(http, created["id"])
            assert delivery["last_status_code"] == 307 and delivery["status"] != "succeeded"
            assert target.received == []
    finally:
        target.stop()


async def test_delivery_metrics_count_outcomes(app_client, subscriber):
    async with app_client(UNUSED_LIVEKIT) as http:
        await create(http, subscriber.path)
        await post_webhooks(http, [event("EV_counted")])
        await wait_for(lambda: len(subscriber.received) >= 1, timeout=60)

        async def counted() -> bool:
            text = (await http.get("/metrics")).text
            return 'control_plane_webhook_deliveries_total{outcome="succeeded"}' in text

        await wait_for(counted, timeout=60)
        text = (await http.get("/metrics")).text
        assert "control_plane_webhook_delivery_attempt_seconds_count" in text


async def test_finished_deliveries_are_purged_with_the_events_retention(app_client, subscriber):
    answers = iter([204])
    subscriber.respond = lambda _d: (next(answers, 500), {}, 0.0)
    async with app_client(UNUSED_LIVEKIT) as http:
        fast(http, dataclasses.replace(FAST, schedule=(3600,)))
        created = await create(http, subscriber.path)
        await post_webhooks(http, [event("EV_done")])
        await wait_for(lambda: len(subscriber.received) == 1, timeout=60)
        await post_webhooks(http, [event("EV_waiting")])  # 500: pending an hour
        await wait_for(lambda: len(subscriber.received) == 2, timeout=60)

        async def settled() -> bool:
            items = await deliveries(http, created["id"])
            return len(items) == 2 and all(d["attempts"] == 1 for d in items)

        await wait_for(settled, timeout=60)
        store = http.app.state.store  # type: ignore[attr-defined]
        now = dt.datetime.now(dt.UTC)
        assert await purge_finished_deliveries(store, 1, now=now) == 0  # too young
        later = now + dt.timedelta(days=2)
        assert await purge_finished_deliveries(store, 1, now=later) == 1
        [left] = await deliveries(http, created["id"])
        assert left["status"] == "pending" and left["last_status_code"] == 500


# --- https: the checked address, the URL's name --------------------------------------------


def certificate_authority(tmp_path, name: str):
    """A CA (its certificate file, to trust) and a server `ssl.SSLContext` whose certificate
    for the DNS name `name` it signed."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject, issuer, key, signer, *, ca: bool, san=None):
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", "test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name, "test CA", key, ca_key, ca=False, san=[x509.DNSName(name)])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(pem)
        + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem")
    return tmp_path / "ca.pem", server


@pytest.mark.parametrize(("certified", "verified"), [("localhost", True), ("other.example", False)])
async def test_https_connects_to_the_checked_address_and_verifies_the_urls_name(
    app_client, tmp_path, certified, verified
):
    import ssl

    ca_file, server_tls = certificate_authority(tmp_path, certified)
    secure = Subscriber(tls=server_tls).start()
    client = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_file)))
    try:
        async with app_client(UNUSED_LIVEKIT) as http:
            fast(http)
            http.app.state.relay.http = client  # type: ignore[attr-defined]  # trusts the CA
            created = await create(http, secure.path)
            assert created["url"].startswith("https://localhost:")
            secure.secrets = [created["signing_secret"]]
            await post_webhooks(http, [event("EV_tls")])

            async def attempted() -> bool:
                items = await deliveries(http, created["id"])
                return bool(items) and items[0]["attempts"] >= 1

            await wait_for(attempted, timeout=60)
            [delivery] = await deliveries(http, created["id"])
            assert "localhost" in secure.server_names  # SNI: the URL's name, not the address
            if verified:
                assert delivery["status"] == "succeeded"
                assert secure.received[0].verified
                assert secure.received[0].headers["host"] == created["url"].split("/")[2]
                assert secure.received[0].headers["connection"] == "close"  # never pooled
            else:  # a certificate for another name is refused: nothing is sent
                assert delivery["last_status_code"] is None
                assert "certificate" in delivery["last_error"].lower()
                assert secure.received == []
    finally:
        await client.aclose()
        secure.stop()
