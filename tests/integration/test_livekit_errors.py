"""The contract's "Mapping of LiveKit errors" table, proven against LiveKit's own servers.

LiveKit's SDK test server (`test_server`) answers each call as its `X-Lk-Mock` header says:
a Twirp error with a given code, a dropped connection, a delay, a SIP status. The gateway
(`app.livekit.gateway.LiveKit`) sends that header on every call when given a session carrying it.
The `internal ... (redis required)` row comes from a real `livekit-server` started without
Redis, and connection refused from a port nothing listens on.

Each failure is checked where it surfaces: at the gateway (`LiveKit.run`, the one place
errors are mapped), on `/readyz` (LiveKit unreachable or refusing -> 503), and on a REST
route that calls LiveKit (problem+json, status, `code`, `Retry-After`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest
from livekit import api

from app.core.devserver import LocalLiveKit, free_port
from app.core.errors import AppError
from app.http.deps import get_livekit
from app.livekit.gateway import LiveKit
from tests.components import LocalTestServer
from tests.conftest import API_KEY, API_SECRET, auth

pytestmark = pytest.mark.integration

#: The HTTP status a Twirp server sends with each code (Twirp spec v7, "Error codes").
TWIRP_HTTP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

#: Twirp code -> (REST status, problem code, Retry-After expected): the contract's table.
#: `room_not_found` is the `not_found_code` the calls below pass.
EXPECTED: dict[str, tuple[int, str, bool]] = {
    "invalid_argument": (422, "invalid_argument", False),
    "malformed": (422, "invalid_argument", False),
    "out_of_range": (422, "invalid_argument", False),
    "not_found": (404, "room_not_found", False),
    "already_exists": (409, "already_exists", False),
    "aborted": (409, "aborted", False),
    "failed_precondition": (409, "failed_precondition", False),
    "resource_exhausted": (429, "livekit_rate_limited", True),
    "unauthenticated": (502, "livekit_auth", False),
    "permission_denied": (502, "livekit_auth", False),
    "unimplemented": (501, "feature_not_enabled", False),
    "unavailable": (503, "livekit_unavailable", True),
    "deadline_exceeded": (504, "livekit_timeout", False),
    # anything else
    "internal": (502, "livekit_error", False),
    "unknown": (502, "livekit_error", False),
    "dataloss": (502, "livekit_error", False),
    "bad_route": (502, "livekit_error", False),
    "canceled": (502, "livekit_error", False),
}
assert set(EXPECTED) == set(TWIRP_HTTP_STATUS)
TWIRP_CODES = sorted(EXPECTED)

#: Our own deadline in these tests, and a LiveKit delay well past it.
TIMEOUT_SECONDS = 0.5
DELAY_MS = 3000


def twirp_failure(twirp_code: str) -> dict[str, Any]:
    """`X-Lk-Mock` config: the primary region answers a Twirp error with `twirp_code`."""
    return {
        "failRegions": [0],
        "failStatus": TWIRP_HTTP_STATUS[twirp_code],
        "failTwirpCode": twirp_code,
    }


DROP = {"failRegions": [0], "failMode": "drop"}
DELAY = {"delayMs": DELAY_MS}

#: Transport failures -> (REST status, problem code, Retry-After expected).
TRANSPORT: dict[str, tuple[dict[str, Any], tuple[int, str, bool]]] = {
    "dropped_connection": (DROP, (503, "livekit_unavailable", True)),
    "delay_past_our_timeout": (DELAY, (504, "livekit_timeout", False)),
}


@asynccontextmanager
async def mocked_gateway(
    url: str, mock: dict[str, Any], timeout: float = TIMEOUT_SECONDS
) -> AsyncIterator[LiveKit]:
    """The service's gateway to `url`, sending `X-Lk-Mock: <mock>` on every call."""
    headers = {"X-Lk-Mock": json.dumps(mock)} if mock else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield LiveKit(url, API_KEY, API_SECRET, timeout, session=session)


@pytest.fixture
def mocked_app(app_client: Callable[..., Any], test_server: LocalTestServer) -> Callable[..., Any]:
    """`async with mocked_app(mock) as http:` an in-process client of the service whose
    LiveKit calls go to the test server with `X-Lk-Mock: <mock>`, under a 0.5 s deadline."""

    @asynccontextmanager
    async def open_app(mock: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
        async with app_client(test_server.url, livekit_timeout_seconds=TIMEOUT_SECONDS) as http:
            settings = http.app.state.settings  # type: ignore[attr-defined]
            async with mocked_gateway(
                test_server.url, mock, settings.livekit_timeout_seconds
            ) as gateway:
                http.app.dependency_overrides[get_livekit] = lambda: gateway  # type: ignore[attr-defined]
                yield http

    return open_app


def assert_problem(response: httpx.Response, status: int, code: str, retry_after: bool) -> None:
    """`response` is an RFC 9457 problem with `status` and `code`, with or without Retry-After."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/{code}")
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert ("retry-after" in response.headers) == retry_after, response.headers
    if retry_after:
        assert int(response.headers["retry-after"]) >= 1
    assert "Traceback" not in response.text
    assert API_SECRET not in response.text


async def gateway_error(gateway: LiveKit, call: Callable[[], Any], **kwargs: Any) -> AppError:
    """The `AppError` the gateway raises for `call()`; fails the test if it succeeds."""
    with pytest.raises(AppError) as caught:
        await gateway.run(call(), **kwargs)
    return caught.value


def list_rooms(gateway: LiveKit) -> Callable[[], Any]:
    return lambda: gateway.room.list_rooms(api.ListRoomsRequest(names=["errors-room"]))


# --- the test server itself: our signed calls are accepted, the header is honoured ---


async def test_test_server_accepts_our_signed_calls(test_server):
    async with mocked_gateway(test_server.url, {}) as gateway:
        rooms = await gateway.run(list_rooms(gateway)())
    assert len(rooms.rooms) == 1  # the mock's populated default: one element per list


async def test_test_server_returns_the_response_we_ask_for(test_server):
    mock = {"response": {"rooms": [{"sid": "RM_canned", "name": "canned"}]}}
    async with mocked_gateway(test_server.url, mock) as gateway:
        rooms = await gateway.run(list_rooms(gateway)())
    assert [(r.sid, r.name) for r in rooms.rooms] == [("RM_canned", "canned")]


async def test_readyz_is_ready_against_the_test_server(mocked_app):
    async with mocked_app({}) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["livekit"] == "ok"


# --- the gateway: every Twirp code, and every transport failure ---


@pytest.mark.parametrize("twirp_code", TWIRP_CODES)
async def test_gateway_maps_twirp_code(test_server, twirp_code):
    status, code, retry_after = EXPECTED[twirp_code]
    async with mocked_gateway(test_server.url, twirp_failure(twirp_code)) as gateway:
        error = await gateway_error(gateway, list_rooms(gateway), not_found_code="room_not_found")
    assert (error.status, error.code) == (status, code)
    assert ("Retry-After" in error.headers) == retry_after
    assert isinstance(error.__cause__, api.TwirpError)
    assert error.__cause__.code == twirp_code


@pytest.mark.parametrize("case", sorted(TRANSPORT))
async def test_gateway_maps_transport_failure(test_server, case):
    mock, (status, code, retry_after) = TRANSPORT[case]
    async with mocked_gateway(test_server.url, mock) as gateway:
        error = await gateway_error(gateway, list_rooms(gateway))
    assert (error.status, error.code) == (status, code)
    assert ("Retry-After" in error.headers) == retry_after


async def test_gateway_connection_refused_is_503():
    closed = f"http://127.0.0.1:{free_port()}"
    async with mocked_gateway(closed, {}) as gateway:
        error = await gateway_error(gateway, list_rooms(gateway))
    assert (error.status, error.code) == (503, "livekit_unavailable")
    assert int(error.headers["Retry-After"]) >= 1


async def test_gateway_wrong_secret_is_502_and_an_alert(test_server, caplog):
    """No header: the test server checks our token signature like LiveKit does."""
    async with aiohttp.ClientSession() as session:
        gateway = LiveKit(test_server.url, API_KEY, "not-" + API_SECRET, 5, session=session)
        with caplog.at_level(logging.WARNING, logger="app.core.errors"):
            error = await gateway_error(gateway, list_rooms(gateway))
    assert (error.status, error.code) == (502, "livekit_auth")
    assert error.__cause__.code == "unauthenticated"
    alerts = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(alerts) == 1
    assert "ALERT" in alerts[0].getMessage()


@pytest.mark.parametrize(
    ("sip", "sip_code", "sip_status"),
    [
        ({"code": 486, "status": "Busy Here"}, 486, "Busy Here"),
        # No reason phrase: LiveKit reports the SIPStatusCode enum name instead.
        ({"code": 603}, 603, "SIP_STATUS_GLOBAL_DECLINE"),
        ({"code": 404, "status": "Not Found"}, 404, "Not Found"),
    ],
)
async def test_gateway_sip_status_is_502_with_sip_members(test_server, sip, sip_code, sip_status):
    async with mocked_gateway(test_server.url, {"sipStatus": sip, "delayMs": 0}) as gateway:
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id="ST_errors", sip_call_to="+15550100", room_name="errors-room"
        )
        error = await gateway_error(
            gateway,
            lambda: gateway.sip.create_sip_participant(request),
            not_found_code="room_not_found",
        )
    assert (error.status, error.code) == (502, "sip_call_failed")
    assert error.extra["sip_status_code"] == sip_code
    assert error.extra["sip_status"] == sip_status
    assert isinstance(error.__cause__, api.SipCallError)


# --- a REST route that calls LiveKit: GET /v1/rooms (ListRooms) ---

#: GET /v1/rooms passes no `not_found_code`: a Twirp `not_found` is plain `not_found` there.
ROUTE_EXPECTED = {**EXPECTED, "not_found": (404, "not_found", False)}


@pytest.mark.parametrize("twirp_code", TWIRP_CODES)
async def test_route_maps_twirp_code(mocked_app, twirp_code, caplog):
    status, code, retry_after = ROUTE_EXPECTED[twirp_code]
    async with mocked_app(twirp_failure(twirp_code)) as http:
        with caplog.at_level(logging.WARNING, logger="app.core.errors"):
            response = await http.get("/v1/rooms", headers=auth("reader"))
    assert_problem(response, status, code, retry_after)
    alerted = any(r.levelno == logging.CRITICAL for r in caplog.records)
    assert alerted == (twirp_code in {"unauthenticated", "permission_denied"})


@pytest.mark.parametrize("case", sorted(TRANSPORT))
async def test_route_maps_transport_failure(mocked_app, case):
    mock, (status, code, retry_after) = TRANSPORT[case]
    async with mocked_app(mock) as http:
        response = await http.get("/v1/rooms", headers=auth("reader"))
    assert_problem(response, status, code, retry_after)


async def test_route_connection_refused_is_503(app_client):
    async with app_client(f"http://127.0.0.1:{free_port()}") as http:
        response = await http.get("/v1/rooms", headers=auth("reader"))
    assert_problem(response, 503, "livekit_unavailable", retry_after=True)


async def test_route_wrong_secret_is_502_not_401(app_client, test_server):
    """LiveKit refusing our key is our fault, not the caller's: 502, never 401/403."""
    async with app_client(test_server.url, livekit_api_secret="not-" + API_SECRET) as http:
        response = await http.get("/v1/rooms", headers=auth("reader"))
    assert_problem(response, 502, "livekit_auth", retry_after=False)
    assert "www-authenticate" not in response.headers


async def test_route_returns_livekit_answer_through_the_test_server(mocked_app):
    mock = {"response": {"rooms": [{"sid": "RM_canned", "name": "canned", "num_participants": 2}]}}
    async with mocked_app(mock) as http:
        response = await http.get("/v1/rooms", headers=auth("reader"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_page_token"] is None
    assert [(r["sid"], r["name"], r["num_participants"]) for r in body["items"]] == [
        ("RM_canned", "canned", 2)
    ]


# --- `internal ... (redis required)`: a real LiveKit server without Redis ---


@pytest.fixture(scope="module")
def livekit_without_redis() -> Iterator[LocalLiveKit]:
    """`livekit-server --dev` with no Redis: egress, ingress and SIP are not available."""
    server = LocalLiveKit(api_key=API_KEY, api_secret=API_SECRET).start()
    yield server
    server.stop()


@pytest.mark.parametrize("service", ["egress", "ingress", "sip"])
async def test_gateway_redis_required_is_501(livekit_without_redis, service):
    async with mocked_gateway(livekit_without_redis.url, {}, timeout=10) as gateway:
        calls = {
            "egress": lambda: gateway.egress.list_egress(api.ListEgressRequest()),
            "ingress": lambda: gateway.ingress.list_ingress(api.ListIngressRequest()),
            "sip": lambda: gateway.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest()),
        }
        error = await gateway_error(gateway, calls[service])
    assert (error.status, error.code) == (501, "feature_not_enabled")
    assert error.__cause__.code == "internal"
    assert "redis required" in error.__cause__.message


# --- /readyz: LiveKit failing in any way is "not ready", naming the check ---


READYZ_FAILURES = {
    **{code: twirp_failure(code) for code in TWIRP_CODES},
    **{case: mock for case, (mock, _) in TRANSPORT.items()},
}


@pytest.mark.parametrize("case", sorted(READYZ_FAILURES))
async def test_readyz_is_503_when_livekit_fails(mocked_app, case):
    async with mocked_app(READYZ_FAILURES[case]) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["livekit"].startswith("failed: ")


async def test_readyz_is_503_when_livekit_refuses_connections(app_client):
    port = free_port()
    async with app_client(f"http://127.0.0.1:{port}") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503, response.text
    # which check failed, never where LiveKit lives (anyone may call /readyz)
    assert response.json()["checks"]["livekit"] == "failed: livekit_unavailable"
    assert str(port) not in response.text and "127.0.0.1" not in response.text


async def test_readyz_is_503_and_alerts_when_livekit_refuses_our_keys(
    app_client, test_server, caplog
):
    async with app_client(test_server.url, livekit_api_secret="not-" + API_SECRET) as http:
        with caplog.at_level(logging.WARNING, logger="app.core.errors"):
            response = await http.get("/readyz")
    assert response.status_code == 503, response.text
    assert API_SECRET not in response.text
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
