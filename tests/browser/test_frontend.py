"""A frontend on another origin, as a LiveKit user builds one: LiveKit's JS SDK in Chromium
gets a token from `/v1/token` with `TokenSource.endpoint`, joins the real LiveKit server and
publishes its (fake) microphone; the policy's 403 reaches the page; an origin that
CORS_ALLOW_ORIGINS does not list is refused by the browser."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import pytest

from tests.components import LiveService
from tests.conftest import auth, make_settings
from tests.participants import wait_for

pytestmark = pytest.mark.integration


def join_url(origin: str, service_url: str, room: str, identity: str, **extra: str) -> str:
    query = {"endpoint": f"{service_url}/v1/token", "room": room, "identity": identity, **extra}
    return f"{origin}/page/join.html?{urlencode(query)}"


async def page_status(page, *, until_not: tuple[str, ...]) -> str:
    """The page's #status once it is no longer one of `until_not` (polled, 60 s at most)."""
    status = page.locator("#status")
    await wait_for(lambda: _done(status, until_not), timeout=60, interval=0.2)
    return await status.inner_text()


async def _done(status, until_not: tuple[str, ...]) -> bool:
    return (await status.inner_text()) not in until_not


async def test_a_page_on_another_origin_joins_and_publishes_its_microphone(
    browser, page_origin, client, live_service
):
    room = f"frontend-{secrets.token_hex(4)}"
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(join_url(page_origin, live_service.url, room, "web-alice"))
        status = await page_status(page, until_not=("loading", "token", "connected"))
        assert status.startswith("published TR_"), status
        track_sid = status.removeprefix("published ")

        async def microphone_listed() -> bool:
            response = await client.get(f"/v1/rooms/{room}/participants", headers=auth("admin"))
            assert response.status_code == 200, response.text
            tracks = [t for p in response.json()["items"] for t in p.get("tracks", [])]
            return any(t["sid"] == track_sid and t["source"] == "MICROPHONE" for t in tracks)

        await wait_for(microphone_listed, timeout=30)
        participants = await client.get(f"/v1/rooms/{room}/participants", headers=auth("admin"))
        assert [p["identity"] for p in participants.json()["items"]] == ["web-alice"]
    finally:
        await context.close()


async def test_a_field_the_policy_forbids_shows_403_in_the_page(browser, page_origin, live_service):
    context = await browser.new_context()
    try:
        page = await context.new_page()
        url = join_url(page_origin, live_service.url, "frontend-403", "web-bob", metadata="x")
        await page.goto(url)
        status = await page_status(page, until_not=("loading",))
        assert status.startswith("error:"), status
        assert "403" in status and "field_not_allowed" in status, status
    finally:
        await context.close()


async def test_an_origin_not_allowed_is_refused_by_the_browser(
    browser, page_origin, livekit_server, tmp_path
):
    settings = make_settings(
        livekit_server.url, tmp_path, cors_allow_origins="https://app.example.com"
    )
    service = LiveService().start(settings)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        await page.goto(join_url(page_origin, service.url, "frontend-cors", "web-eve"))
        status = await page_status(page, until_not=("loading",))
        assert status == "error: Failed to fetch", status
        assert any("CORS policy" in text for text in refused), refused
    finally:
        await context.close()
        service.stop()
