"""The direct routes are served ahead of the framework's layers
(`routers.direct.DirectRoutesMiddleware`) only when those layers would pass the request on
unchanged; any other request goes the usual way. Either way the answer is the same: the
parity of every body and caller with FastAPI's own handling is in
test_token_route_parity.py and test_webhook_route_parity.py, the admission layers'
refusals in tests/integration/test_request_limits.py. Here: which way a request went, the
last resort (an exception nobody expected) on the direct way, and the check, when a direct
route is added, that its arguments are exactly its endpoint's parameters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.http.deps import TokenCall, get_token_caller
from app.main import create_app
from routers.direct import direct_route
from tests.conftest import API_SECRET, make_settings

UNUSED_LIVEKIT = "http://127.0.0.1:9"
BODY = b'{"room_name":"demo","participant_identity":"alice"}'
JSON = {"content-type": "application/json"}
DEEP = b"[" * 100_000


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(UNUSED_LIVEKIT, tmp_path))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]  # for dependency_overrides
            yield client


def watch_the_router(http: httpx.AsyncClient) -> list[bool]:
    """Overrides the token route's caller with one that notes, per request, whether the
    framework's router handled it (the router puts itself in the scope), then identifies
    the caller as usual."""
    routed: list[bool] = []

    async def caller(request: Request) -> TokenCall:
        routed.append("router" in request.scope)
        return await get_token_caller(request)

    http.app.dependency_overrides[get_token_caller] = caller  # type: ignore[attr-defined]
    return routed


async def chunks(body: bytes = BODY) -> AsyncIterator[bytes]:
    """`body` sent in two chunks (`Transfer-Encoding: chunked`)."""
    yield body[:2]
    yield body[2:]


async def test_a_body_framed_by_its_length_is_served_directly(http):
    routed = watch_the_router(http)
    response = await http.post("/v1/token", content=BODY, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["participant_identity"] == "alice"
    assert routed == [False]


async def test_a_chunked_body_goes_the_usual_way_with_the_same_answer(http):
    routed = watch_the_router(http)
    response = await http.post("/v1/token", content=chunks(), headers=JSON)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 201, response.text
    assert response.json()["participant_identity"] == "alice"
    assert routed == [True]


async def test_a_request_under_another_root_path_goes_the_usual_way(http):
    routed = watch_the_router(http)
    transport = httpx.ASGITransport(app=http.app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/api/v1/token", content=BODY, headers=JSON)
    assert response.status_code == 201, response.text
    assert routed == [True]


async def test_an_unexpected_exception_on_the_direct_way_is_the_last_resort_500(http, caplog):
    routed: list[bool] = []

    async def failing(request: Request) -> TokenCall:
        routed.append("router" in request.scope)
        raise RuntimeError(f"unexpected, holding {API_SECRET}")

    http.app.dependency_overrides[get_token_caller] = failing
    headers = {**JSON, "X-Request-ID": "direct-boom", "Origin": "http://localhost:3000"}
    with caplog.at_level(logging.ERROR, logger="app.http.problems"):
        response = await http.post("/v1/token", content=BODY, headers=headers)
    assert routed == [False]  # the direct way
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["access-control-allow-origin"] == "*"  # CORS, as on any answer
    problem = response.json()
    assert (problem["code"], problem["request_id"]) == ("internal_error", "direct-boom")
    assert API_SECRET not in response.text and "RuntimeError" not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "direct-boom"]
    assert len(logged) == 1 and logged[0].exc_info and logged[0].exc_info[0] is RuntimeError
    metrics = (await http.get("/metrics")).text
    assert any(
        'route="/v1/token"' in line and 'status="500"' in line
        for line in metrics.splitlines()
        if line.startswith("control_plane_http_requests_total{")
    )


async def test_a_handler_for_a_status_code_answers_on_both_ways(tmp_path):
    async def teapot(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"handled": "by status"}, status_code=418)

    app = create_app(make_settings(UNUSED_LIVEKIT, tmp_path))
    app.add_exception_handler(400, teapot)  # FastAPI's 400 HTTPException: JSON nested too deep
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            direct = await http.post("/v1/token", content=DEEP, headers=JSON)
            usual = await http.post("/v1/token", content=chunks(DEEP), headers=JSON)
    assert (direct.status_code, direct.json()) == (418, {"handled": "by status"})
    assert (usual.status_code, usual.json()) == (418, {"handled": "by status"})


async def endpoint(room: str, limit: int | None = None) -> JSONResponse:
    return JSONResponse({"room": room, "limit": limit})


class Exact(TypedDict):
    room: str
    limit: int | None


class Missing(TypedDict):
    room: str


class Retyped(TypedDict):
    room: str
    limit: int


class Extra(TypedDict):
    room: str
    limit: int | None
    page: str


async def exact(request: Request) -> Exact:
    return {"room": "r", "limit": None}


async def missing(request: Request) -> Missing:
    return {"room": "r"}


async def retyped(request: Request) -> Retyped:
    return {"room": "r", "limit": 1}


async def extra(request: Request) -> Extra:
    return {"room": "r", "limit": None, "page": "p"}


async def untyped(request: Request) -> dict[str, object]:
    return {"room": "r", "limit": None}


def test_a_direct_route_whose_arguments_are_its_parameters_is_added() -> None:
    router = APIRouter()
    router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=direct_route(exact))
    assert len(router.routes) == 1


@pytest.mark.parametrize("arguments", [missing, retyped, extra, untyped])
def test_a_direct_route_whose_arguments_differ_from_its_parameters_is_refused(arguments) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match="endpoint's parameters"):
        router.add_api_route(
            "/x", endpoint, methods=["POST"], route_class_override=direct_route(arguments)
        )
