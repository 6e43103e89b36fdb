"""What LiveKit's address answers with something that is not LiveKit: never a bare 500."""

from __future__ import annotations

import pytest
from aiohttp import web
from livekit import api

from app.core.errors import UpstreamError
from app.livekit.gateway import LiveKit
from tests.conftest import auth

pytestmark = pytest.mark.integration


@pytest.fixture
async def not_livekit():
    """A real HTTP server that answers every Twirp call 200 with an HTML page, as a
    misconfigured proxy in front of LiveKit would."""

    async def html(_request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Welcome to nginx!</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_an_unreadable_answer_is_502(not_livekit):
    gateway = LiveKit(not_livekit, "key", "s" * 40, timeout_seconds=5)
    try:
        assert await gateway.readiness() == (
            "failed: livekit_error"  # /readyz names the failure, never LiveKit's URL
        )
        with pytest.raises(UpstreamError) as caught:
            await gateway.run(gateway.room.list_rooms(api.ListRoomsRequest()))
        assert caught.value.status == 502
    finally:
        await gateway.aclose()


async def test_a_route_answers_502_problem(not_livekit, app_client):
    async with app_client(not_livekit) as http:
        response = await http.get("/v1/rooms", headers=auth("reader"))
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "livekit_error"
