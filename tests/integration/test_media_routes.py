"""Egress and ingress routes against LiveKit's test server (`X-Lk-Mock`): each route's
success shape, and each failure mode mapped to the contract's status. Real egress and
ingress workers are exercised in tests/media/."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.http.deps import get_livekit
from tests.components import LocalTestServer
from tests.conftest import auth
from tests.integration.test_livekit_errors import (
    EXPECTED,
    TIMEOUT_SECONDS,
    TRANSPORT,
    assert_problem,
    mocked_gateway,
    twirp_failure,
)

pytestmark = pytest.mark.integration

S3_SECRET = "s3-secret-0f9c1d7e"
S3_TOKEN = "s3-session-token-77ab"
FILE_TO_S3 = {
    "filepath": "rec/{room_name}-{time}.mp4",
    "s3": {"access_key": "AKIAEXAMPLE", "secret": S3_SECRET, "session_token": S3_TOKEN,
           "bucket": "recordings", "region": "eu-west-1"},
}  # fmt: skip

#: route -> (method, path, body) with a valid body for each.
STARTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "room-composite": ("POST", "/v1/egress/room-composite",
                       {"room_name": "r", "layout": "grid", "file_outputs": [FILE_TO_S3]}),
    "web": ("POST", "/v1/egress/web",
            {"url": "https://example.com/page", "stream_outputs":
             [{"protocol": "RTMP", "urls": ["rtmp://live.example.com/app/key"]}]}),
    "participant": ("POST", "/v1/egress/participant",
                    {"room_name": "r", "identity": "alice", "advanced": {"audio_codec": "OPUS"},
                     "segment_outputs": [{"filename_prefix": "seg/a", "playlist_name": "a.m3u8",
                                          "gcp": {"bucket": "b", "credentials": "{}"}}]}),
    "track-composite": ("POST", "/v1/egress/track-composite",
                        {"room_name": "r", "audio_track_id": "TR_a", "preset": "H264_720P_30",
                         "image_outputs": [{"capture_interval": 5, "filename_prefix": "img/a",
                                            "azure": {"account_name": "a", "account_key": "k",
                                                      "container_name": "c"}}]}),
    "track": ("POST", "/v1/egress/track",
              {"room_name": "r", "track_id": "TR_a",
               "file": {"filepath": "t.ogg", "aliOSS": {"access_key": "a", "secret": "x",
                                                         "bucket": "b"}}}),
}  # fmt: skip
OTHERS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "list": ("GET", "/v1/egress?room_name=r&active=true", None),
    "get": ("GET", "/v1/egress/EG_a", None),
    "layout": ("PATCH", "/v1/egress/EG_a/layout", {"layout": "speaker"}),
    "stream": ("PATCH", "/v1/egress/EG_a/stream",
               {"add_output_urls": ["rtmps://live.example.com/app/k2"],
                "remove_output_urls": ["rtmp://live.example.com/app/key"]}),
    "stop": ("POST", "/v1/egress/EG_a/stop", None),
    "ingress-create": ("POST", "/v1/ingress",
                       {"input_type": "RTMP_INPUT", "name": "cam", "room_name": "r",
                        "participant_identity": "cam"}),
    "ingress-list": ("GET", "/v1/ingress?room_name=r", None),
    "ingress-get": ("GET", "/v1/ingress/IN_a", None),
    "ingress-update": ("PATCH", "/v1/ingress/IN_a", {"name": "cam-2", "enabled": False}),
    "ingress-delete": ("DELETE", "/v1/ingress/IN_a", None),
}  # fmt: skip
ROUTES = {**STARTS, **OTHERS}

#: The problem code a Twirp `not_found` becomes on each route.
NOT_FOUND_CODE = {
    "room-composite": "room_not_found", "web": "egress_not_found",
    "participant": "room_not_found", "track-composite": "room_not_found",
    "track": "room_not_found", "list": "egress_not_found", "get": "egress_not_found",
    "layout": "egress_not_found", "stream": "egress_not_found", "stop": "egress_not_found",
    "ingress-create": "ingress_not_found", "ingress-list": "ingress_not_found",
    "ingress-get": "ingress_not_found", "ingress-update": "ingress_not_found",
    "ingress-delete": "ingress_not_found",
}  # fmt: skip


@pytest.fixture
def media_app(app_client: Callable[..., Any], test_server: LocalTestServer) -> Callable[..., Any]:
    """`async with media_app(mock, **settings) as http:` the service in process, its LiveKit
    calls going to the test server with `X-Lk-Mock: <mock>` under a 0.5 s deadline."""

    @asynccontextmanager
    async def open_app(mock: dict[str, Any], **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = {"livekit_timeout_seconds": TIMEOUT_SECONDS, **overrides}
        async with (
            app_client(test_server.url, **settings) as http,
            mocked_gateway(test_server.url, mock) as gateway,
        ):
            http.app.dependency_overrides[get_livekit] = lambda: gateway  # type: ignore[attr-defined]
            yield http

    return open_app


async def call(
    http: httpx.AsyncClient, route: str, key: str = "admin", **headers: str
) -> httpx.Response:
    method, path, body = ROUTES[route]
    return await http.request(method, path, json=body, headers={**auth(key), **headers})


# --- success shapes -----------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(STARTS))
async def test_start_returns_201_with_egress_info(media_app, route):
    canned = {"egress_id": "EG_canned", "room_name": "r", "status": "EGRESS_STARTING",
              "started_at": 1_795_000_000_000_000_000}  # fmt: skip
    async with media_app({"response": canned}) as http:
        response = await call(http, route)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["egress_id"] == "EG_canned" and body["status"] == "EGRESS_STARTING"
    assert body["started_at"] == 1_795_000_000_000_000_000  # int64 as a JSON number


async def test_start_with_the_mocks_default_answer(media_app):
    async with media_app({}) as http:
        response = await call(http, "track")
    assert response.status_code == 201, response.text
    assert response.json()["egress_id"] == "MOCK_EGRESS_ID"


async def test_list_carries_livekits_next_page_token(media_app):
    canned = {"items": [{"egress_id": "EG_1", "status": "EGRESS_ACTIVE"},
                        {"egress_id": "EG_2", "status": "EGRESS_COMPLETE"}],
              "next_page_token": {"token": "page-2"}}  # fmt: skip
    async with media_app({"response": canned}) as http:
        first = await call(http, "list", "reader")
        assert first.status_code == 200, first.text
        assert [e["egress_id"] for e in first.json()["items"]] == ["EG_1", "EG_2"]
        assert first.json()["next_page_token"] == "page-2"
        following = await http.get("/v1/egress?page_token=page-2", headers=auth("reader"))
    assert following.status_code == 200


async def test_last_page_has_a_null_token(media_app):
    async with media_app({"response": {"items": [{"egress_id": "EG_1"}]}}) as http:
        response = await call(http, "list", "reader")
    assert response.json()["next_page_token"] is None


async def test_get_finds_the_egress_and_404s_when_livekit_lists_none(media_app):
    complete = {"egress_id": "EG_a", "status": "EGRESS_COMPLETE",
                "file_results": [{"filename": "a.ogg", "size": 133000}]}  # fmt: skip
    async with media_app({"response": {"items": [complete]}}) as http:
        found = await call(http, "get", "reader")
    assert found.status_code == 200, found.text
    assert found.json()["file_results"][0]["size"] == 133000
    async with media_app({"response": {"items": []}}) as http:
        missing = await call(http, "get", "reader")
    assert_problem(missing, 404, "egress_not_found", retry_after=False)


async def test_stop_looks_the_egress_up_and_returns_its_info(media_app):
    """Stop asks ListEgress first (LiveKit answers StopEgress for an unknown id only after
    ~3 s): the mock's default answers list and stop MOCK_EGRESS_ID."""
    async with media_app({}) as http:
        response = await http.post("/v1/egress/MOCK_EGRESS_ID/stop", headers=auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["egress_id"] == "MOCK_EGRESS_ID"


@pytest.mark.parametrize("route", ["layout", "stream"])
async def test_update_and_stop_return_the_egress_info(media_app, route):
    async with media_app({"response": {"egress_id": "EG_a", "status": "EGRESS_ACTIVE"}}) as http:
        response = await call(http, route)
    assert response.status_code == 200, response.text
    assert response.json()["egress_id"] == "EG_a"
    assert response.json()["status"] == "EGRESS_ACTIVE"


async def test_ingress_shapes(media_app):
    info = {"ingress_id": "IN_a", "url": "rtmp://192.0.2.1/live", "stream_key": "sk",
            "input_type": "RTMP_INPUT", "state": {"status": "ENDPOINT_INACTIVE"}}  # fmt: skip
    async with media_app({"response": info}) as http:
        created = await call(http, "ingress-create")
        updated = await call(http, "ingress-update")
    assert created.status_code == 201, created.text
    assert created.json()["stream_key"] == "sk" and created.json()["url"].startswith("rtmp://")
    assert created.json()["state"]["status"] == "ENDPOINT_INACTIVE"
    assert updated.status_code == 200 and updated.json()["ingress_id"] == "IN_a"
    async with media_app({"response": {"items": [info]}}) as http:
        listed = await call(http, "ingress-list", "reader")
        got = await call(http, "ingress-get", "reader")
    assert listed.json()["items"][0]["ingress_id"] == "IN_a"
    assert listed.json()["next_page_token"] is None
    assert got.json()["input_type"] == "RTMP_INPUT"
    async with media_app({}) as http:
        deleted = await call(http, "ingress-delete")
    assert deleted.status_code == 204 and deleted.content == b""


# --- failure modes ------------------------------------------------------------------------

#: A sample of the Twirp table on every route (the whole table is proven on one route in
#: test_livekit_errors.py and on the track start and the ingress create below).
SAMPLE = ["not_found", "invalid_argument", "failed_precondition", "unavailable", "internal"]


@pytest.mark.parametrize("twirp_code", SAMPLE)
@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_route_maps_twirp_code(media_app, route, twirp_code, caplog):
    await assert_twirp_code_mapped(media_app, route, twirp_code, caplog)


@pytest.mark.parametrize("twirp_code", sorted(EXPECTED))
@pytest.mark.parametrize("route", ["track", "ingress-create"])
async def test_start_and_create_map_every_twirp_code(media_app, route, twirp_code, caplog):
    await assert_twirp_code_mapped(media_app, route, twirp_code, caplog)


async def assert_twirp_code_mapped(media_app, route, twirp_code, caplog):
    """`route`, answered by LiveKit with `twirp_code`, gives the contract's problem."""
    status, code, retry_after = EXPECTED[twirp_code]
    if twirp_code == "not_found":
        code = NOT_FOUND_CODE[route]
    async with media_app(twirp_failure(twirp_code)) as http:
        with caplog.at_level(logging.CRITICAL, logger="app.core.errors"):
            response = await call(http, route)
    assert_problem(response, status, code, retry_after)


@pytest.mark.parametrize("case", sorted(TRANSPORT))
@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_route_maps_transport_failure(media_app, route, case):
    mock, (status, code, retry_after) = TRANSPORT[case]
    async with media_app(mock) as http:
        response = await call(http, route)
    assert_problem(response, status, code, retry_after)
    if route in STARTS and case == "delay_past_our_timeout":
        assert "no egress worker accepted the request" in response.json()["detail"]


# --- redaction and idempotency ------------------------------------------------------------


async def test_upload_credentials_reach_no_response_replay_or_log_line(media_app, tmp_path, caplog):
    """LiveKit's EgressInfo echoes the request, S3 secret included (measured with egress
    v1.8.6): the canned answer does the same."""
    _, path, body = STARTS["room-composite"]
    echo = {"egress_id": "EG_secret", "status": "EGRESS_STARTING",
            "room_composite": body, "file_results": [{"filename": "rec/r.mp4"}]}  # fmt: skip
    caplog.set_level(logging.DEBUG)
    async with media_app({"response": echo}) as http:
        headers = {**auth("admin"), "Idempotency-Key": "start-with-secret"}
        first = await http.post(path, json=body, headers=headers)
        replay = await http.post(path, json=body, headers=headers)
        listed = await http.get("/v1/egress", headers=auth("reader"))
    assert first.status_code == 201, first.text
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    s3 = first.json()["room_composite"]["file_outputs"][0]["s3"]
    assert s3["access_key"] == "AKIAEXAMPLE" and s3["bucket"] == "recordings"
    assert "secret" not in s3 and "session_token" not in s3
    stored = b"".join(
        str(row).encode()
        for row in sqlite3.connect(tmp_path / "events.db").execute("SELECT * FROM idempotency_keys")
    )
    assert b"EG_secret" in stored  # the replay is stored ...
    for text in (first.text, replay.text, listed.text, stored.decode(), caplog.text):
        assert S3_SECRET not in text and S3_TOKEN not in text  # ... without the credentials


async def test_a_retried_start_with_the_same_key_starts_once(media_app):
    _, path, body = STARTS["track"]
    headers = {**auth("admin"), "Idempotency-Key": "track-once"}
    async with media_app({"response": {"egress_id": "EG_once"}}) as http:
        first = await http.post(path, json=body, headers=headers)
        again = await http.post(path, json=body, headers=headers)
        other = await http.post(path, json={**body, "track_id": "TR_b"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert_problem(other, 409, "idempotency_key_reused", retry_after=False)


def test_egress_routes_document_their_problems(tmp_path):
    from app.main import create_app
    from tests.conftest import make_settings

    schema = create_app(
        make_settings("http://127.0.0.1:9", __import__("pathlib").Path("/tmp"))
    ).openapi()
    start = schema["paths"]["/v1/egress/track"]["post"]
    assert {"201", "404", "422", "502", "503", "504"} <= set(start["responses"])
    assert start["operationId"] == "start_track_egress"
    body = json.dumps(schema["components"]["schemas"]["StartWebEgress"])
    assert "exactly one of" in body


async def test_a_start_with_no_egress_worker_answers_at_the_services_deadline(
    app_client, livekit_server
):
    """The real LiveKit server (with Redis, no egress worker) holds a start for ~23 s before
    `unavailable`; the service answers 504 at its own deadline (here 2 s) instead."""
    body = {"url": "https://example.com/", "file_outputs": [{"filepath": "a.mp4"}]}
    async with app_client(livekit_server.url, livekit_timeout_seconds=2) as http:
        response = await http.post("/v1/egress/web", json=body, headers=auth("admin"))
    assert_problem(response, 504, "livekit_timeout", retry_after=False)
    assert "no egress worker accepted the request within 2 s" in response.json()["detail"]


async def test_real_livekit_not_found_codes(app_client, livekit_server):
    async with app_client(livekit_server.url) as http:
        get = await http.get("/v1/egress/EG_missing", headers=auth("reader"))
        listed = await http.get("/v1/egress?egress_id=EG_missing", headers=auth("reader"))
        stop = await http.post("/v1/egress/EG_missing/stop", headers=auth("admin"))
        track = await http.post(
            "/v1/egress/track",
            json={"room_name": "no-such-room", "track_id": "TR_x", "file": {"filepath": "a.ogg"}},
            headers=auth("admin"),
        )
        ingress = await http.get("/v1/ingress/IN_missing", headers=auth("reader"))
        ingress_list = await http.get("/v1/ingress?ingress_id=IN_missing", headers=auth("reader"))
    assert_problem(get, 404, "egress_not_found", retry_after=False)
    assert listed.status_code == 200 and listed.json() == {"items": [], "next_page_token": None}
    assert_problem(stop, 404, "egress_not_found", retry_after=False)
    assert_problem(track, 404, "room_not_found", retry_after=False)
    assert_problem(ingress, 404, "ingress_not_found", retry_after=False)
    assert ingress_list.json() == {"items": [], "next_page_token": None}
