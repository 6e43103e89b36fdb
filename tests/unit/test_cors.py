"""CORS (contract: Conventions, Browsers) in-process: preflights, headers on success and on
every error, the development and production defaults, and an origin that is not allowed."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.http.deps import get_store
from app.main import create_app
from tests.conftest import auth, make_settings

UNUSED_LIVEKIT = "http://127.0.0.1:9"
PAGE = "http://localhost:3000"


def preflight(method: str = "POST", headers: str = "content-type, authorization, idempotency-key"):
    return {
        "Origin": PAGE,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture
async def http(app_client):
    async with app_client(UNUSED_LIVEKIT) as client:
        yield client


async def test_preflight_of_the_token_endpoint_succeeds_in_development(http):
    response = await http.options("/v1/token", headers=preflight())
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"content-type", "authorization", "idempotency-key"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["x-request-id"]


async def test_responses_expose_request_id_and_retry_after(http):
    response = await http.post("/v1/token", json={"room_name": "r"}, headers={"Origin": PAGE})
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "retry-after"} <= exposed


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("GET", "/v1/rooms", {}, None, 401),
        ("GET", "/v1/rooms", auth("nobody"), None, 403),
        ("POST", "/v1/webhooks/livekit", {"Authorization": "a.b.c"}, b"x" * (1024 * 1024 + 1), 413),
        ("POST", "/v1/token", {}, {"room_name": "r", "participant_metadata": "m"}, 403),
        ("GET", "/v1/no-such-route", {}, None, 404),
    ],
)
async def test_errors_carry_cors_headers(http, method, path, headers, body, status):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    if body is not None and isinstance(body, bytes):
        headers = {**headers, "Content-Type": "application/json"}
    response = await http.request(method, path, headers={"Origin": PAGE, **headers}, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_an_unexpected_500_carries_cors_headers_too(tmp_path):
    app = create_app(make_settings(UNUSED_LIVEKIT, tmp_path, cors_allow_origins=PAGE))

    async def broken_store():
        raise RuntimeError("boom")

    app.dependency_overrides[get_store] = broken_store
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get(
                "/v1/webhooks/events", headers={"Origin": PAGE, **auth("admin")}
            )
    assert response.status_code == 500
    assert "boom" not in response.text
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "internal_error"
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_an_origin_not_allowed_gets_no_cors_headers(app_client):
    async with app_client(UNUSED_LIVEKIT, cors_allow_origins="https://app.example.com") as http:
        refused = await http.options("/v1/token", headers=preflight())
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        response = await http.post("/v1/token", json={}, headers={"Origin": PAGE})
        assert "access-control-allow-origin" not in response.headers
        allowed = await http.options(
            "/v1/token", headers={**preflight(), "Origin": "https://app.example.com"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"


def test_defaults_development_any_origin_production_none(tmp_path):
    development = make_settings(UNUSED_LIVEKIT, tmp_path)
    assert development.effective_cors_origins == ["*"]
    production = make_settings(
        UNUSED_LIVEKIT,
        tmp_path,
        app_env="production",
        livekit_api_secret="s" * 40,
        service_keys=[{"name": "ops", "key": "k" * 40, "scopes": ["admin"]}],
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        rate_limit_storage_url="memory://",
    )
    assert production.effective_cors_origins == []
    listed = make_settings(UNUSED_LIVEKIT, tmp_path, cors_allow_origins=" https://a.example/ ,b ")
    assert listed.effective_cors_origins == ["https://a.example", "b"]
