"""`POST /v1/token` is served directly (`routers.direct`): it reads the body and resolves the
caller itself instead of through FastAPI's per-request machinery. These
tests prove it answers exactly as FastAPI's own handling of the same endpoint: the same
endpoint is mounted a second time as a plain `APIRoute` (under `/reference`), and every
body, media type and caller below gets the same status and the same problem from both."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.core.errors import RateLimited
from app.http.deps import get_token_caller
from app.main import create_app
from routers import tokens
from tests.conftest import auth, make_settings

JSON = "application/json"

BODIES: list[tuple[bytes, str | None]] = [
    (b"", JSON),
    (b"", None),
    (b"null", JSON),
    (b"{}", JSON),
    (b'{"room_name":"demo","participant_identity":"alice"}', JSON),
    (b'{"room_name":"demo"}', "application/json; charset=utf-8"),
    (b'{"room_name":"demo"}', "application/vnd.livekit+json"),
    (b'{"room_name":"demo"}', "Application/JSON"),
    (b'{"room_name":"demo"}', None),
    (b'{"room_name":"demo"}', "text/plain"),
    (b'{"room_name":"demo"}', "application/x-www-form-urlencoded"),
    (b'{"room_name":"demo"}', "application/jsonx"),
    (b"[]", JSON),
    (b"1", JSON),
    (b'"demo"', JSON),
    (b'{"room_name":5}', JSON),
    (b'{"room_name":"a","room_name":"b"}', JSON),
    (b'{"unknown_field":1}', JSON),
    (b'{"participant_identity":"\\ud800"}', JSON),
    (b'{"participant_attributes":{"k":1}}', JSON),
    (b'{"room_config":{"agents":"nope"}}', JSON),
    (b'{"room_name":"' + b"r" * 257 + b'"}', JSON),
    (b'{"room_name":', JSON),
    (b"{'room_name': 'demo'}", JSON),
    (b"\xff\xfe{}", JSON),
    (b"[" * 100_000, JSON),
    (b"NaN", JSON),
    # read by pydantic's parser and by Python's `json` alike, or by Python's only
    (b'\xef\xbb\xbf{"room_name":"demo"}', JSON),
    (b'{"room_name":"de\x01mo"}', JSON),
    (b'{"roomName":"demo","participantIdentity":"alice"}', JSON),
    (b'{"room_config":{"max_participants":10.0,"sync_streams":"true"}}', JSON),
    (b'{"room_config":{"max_participants":"10","agents":[{"agent_name":"a"}]}}', JSON),
    (b'{"room_config":{"max_participants":10.5}}', JSON),
    (b'{"participant_attributes":{"k":"v"},"participant_metadata":"m"}', JSON),
    (b' {"room_name":"demo"}\n', JSON),
]


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings("http://127.0.0.1:9", tmp_path))
    reference = APIRouter(prefix="/reference/v1", route_class=APIRoute)
    served = next(r for r in tokens.direct_router.routes if getattr(r, "path", "") == "/v1/token")
    assert type(served) is not APIRoute  # served directly
    reference.add_api_route(
        "/token", tokens.issue_participant_token, methods=["POST"], status_code=201
    )
    app.include_router(reference)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]  # for dependency_overrides
            yield client


#: A name the service makes up for a body that gives none (`app.auth.tokens._random_name`).
GENERATED = re.compile(r"(user|room)-[0-9a-f]{10}")


def comparable(response: httpx.Response) -> tuple[int, object]:
    """Status and body, without what differs between two requests: ids, the token, and
    names made up for a body without them (kept as `<user>` or `<room>`)."""
    body = response.json()
    if response.status_code == 201:
        return 201, {
            key: GENERATED.sub(r"<\1>", value)
            for key, value in body.items()
            if key not in {"participant_token", "expires_at"}
        }
    body.pop("request_id")
    for error in body.get("errors", []):
        error.pop("input", None)
    return response.status_code, body


async def both(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> list[object]:
    answers = []
    for path in ("/v1/token", "/reference/v1/token"):
        answers.append(comparable(await http.post(path, content=body, headers=headers)))
    return answers


@pytest.mark.parametrize(("body", "content_type"), BODIES)
async def test_every_body_gets_fastapis_answer(http, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    headers["X-Request-ID"] = "parity"
    served, reference = await both(http, body, headers)
    assert served == reference


@pytest.mark.parametrize(
    "body", [b'{"room_name":5}', b'{"room_name":', b"[]", b'{"room_name":"demo"}']
)
async def test_the_caller_is_refused_before_an_invalid_body_as_fastapi_orders_them(http, body):
    headers = {"content-type": JSON, **auth("nobody")}
    served, reference = await both(http, body, headers)
    assert served == reference
    assert served[0] in {400, 403}


async def test_an_override_of_the_caller_dependency_is_used(http):
    async def rate_limited(request):
        raise RateLimited("overridden", retry_after=7)

    http.app.dependency_overrides[get_token_caller] = rate_limited
    response = await http.post("/v1/token", json={"room_name": "demo"})
    assert response.status_code == 429, response.text
    assert response.json()["detail"] == "overridden"
    assert response.headers["retry-after"] == "7"
