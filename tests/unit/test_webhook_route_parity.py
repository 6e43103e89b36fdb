"""`POST /v1/webhooks/livekit` is served directly (`routers.direct`), as `/v1/token` is
(tests/unit/test_token_route_parity.py): it resolves its arguments itself instead of through
FastAPI's per-request machinery. These tests prove it answers exactly as FastAPI's own
handling of the same endpoint: a second app serves the same endpoint as a plain `APIRoute`
(each app with its own store, so the same event is new to both), and every signature,
body and media type below gets the same status and the same receipt or problem from both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute

from app.core.errors import UpstreamUnavailable
from app.http.deps import get_store
from app.main import create_app
from app.store.engine import Store
from routers import webhooks
from tests.components import signed_webhook, webhook_body
from tests.conftest import API_KEY, API_SECRET, make_settings

PATH = "/v1/webhooks/livekit"
REFERENCE = "/reference/v1/webhooks/livekit"
EVENT = webhook_body("EV_parity", "participant_joined", participant={"identity": "alice"})


def signed(body: bytes, content_type: str | None = "application/webhook+json") -> dict[str, str]:
    headers = {"Authorization": signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


#: (body, headers) sent to both routes: valid events, forgeries, and bodies LiveKit never sends.
CASES: list[tuple[bytes, dict[str, str]]] = [
    (EVENT, signed(EVENT)),
    (EVENT, signed(EVENT, "application/json")),
    (EVENT, {**signed(EVENT), "Authorization": "Bearer " + signed(EVENT)["Authorization"]}),
    (EVENT, signed(EVENT, "text/plain")),
    (EVENT, signed(EVENT, None)),
    (EVENT, {"Content-Type": "application/webhook+json"}),
    (EVENT, {**signed(EVENT), "Authorization": "not-a-jwt"}),
    (EVENT, signed(webhook_body("EV_other"))),
    (b"", signed(b"")),
    (b"{", signed(b"{")),
    (b"[]", signed(b"[]")),
    (b'{"event":5}', signed(b'{"event":5}')),
    (b"\xff\xfe", signed(b"\xff\xfe")),
    (json.dumps({"event": "something_new", "id": "EV_new"}).encode(), signed(b"x")),
]


def reference_app(tmp_path: Path) -> FastAPI:
    """The app with the webhook endpoint also served as a plain route, under /reference."""
    app = create_app(make_settings("http://127.0.0.1:9", tmp_path))
    served = next(r for r in webhooks.direct_router.routes if getattr(r, "path", "") == PATH)
    assert type(served) is not APIRoute  # served directly
    reference = APIRouter(prefix="/reference/v1", route_class=APIRoute)
    reference.add_api_route("/webhooks/livekit", webhooks.receive_livekit_webhook, methods=["POST"])
    app.include_router(reference)
    return app


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """A client of the direct route's app and one of the reference route's, apart."""
    apps = [reference_app(tmp_path / "direct"), reference_app(tmp_path / "reference")]
    async with LifespanManager(apps[0]) as direct, LifespanManager(apps[1]) as reference:
        opened = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=m.app), base_url="http://t")
            for m in (direct, reference)
        ]
        for client, app in zip(opened, apps, strict=True):
            client.app = app  # type: ignore[attr-defined]  # for dependency_overrides
        try:
            yield opened
        finally:
            for client in opened:
                await client.aclose()


def comparable(response: httpx.Response) -> tuple[int, object]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return response.status_code, body


async def both(clients: list[httpx.AsyncClient], body: bytes, headers: dict[str, str]) -> list:
    direct, reference = clients
    return [
        comparable(await direct.post(PATH, content=body, headers=headers)),
        comparable(await reference.post(REFERENCE, content=body, headers=headers)),
    ]


@pytest.mark.parametrize(("body", "headers"), CASES)
async def test_every_request_gets_fastapis_answer(clients, body, headers):
    served, reference = await both(clients, body, headers)
    assert served == reference


async def test_a_repeated_event_is_a_duplicate_on_both(clients):
    first = await both(clients, EVENT, signed(EVENT))
    again = await both(clients, EVENT, signed(EVENT))
    assert first[0] == first[1] and again[0] == again[1]
    assert (first[0][1]["duplicate"], again[0][1]["duplicate"]) == (False, True)


async def test_an_override_of_the_store_dependency_is_used_by_both(clients):
    async def unavailable(request: Request) -> Store:
        raise UpstreamUnavailable("the event store is unavailable", code="store_unavailable")

    for client in clients:
        client.app.dependency_overrides[get_store] = unavailable
    served, reference = await both(clients, EVENT, signed(EVENT))
    assert served == reference
    assert served[0] == 503
