"""The operator console in Chromium against the live service and the real LiveKit server:
sign in with a key, see a room a real participant (the Python realtime SDK) joined, remove
the participant from the console and it is disconnected, the live tail shows
`participant_left` without a reload, and a `rooms:read` key sees remove disabled."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.conftest import KEYS, auth
from tests.participants import fetch_token, joined, publish_audio, recorder, wait_for

pytestmark = pytest.mark.integration

#: Where the README's screenshot is written when set (e.g. `docs/console.png`).
SCREENSHOT = os.environ.get("CONSOLE_SCREENSHOT")


async def sign_in(browser, service_url: str, key_name: str):
    context = await browser.new_context(viewport={"width": 1100, "height": 470})
    page = await context.new_page()
    await page.goto(f"{service_url}/console")
    await page.fill("#key", KEYS[key_name][0])
    await page.click("#sign-in-form button[type=submit]")
    await page.wait_for_selector("#who-name:has-text('" + key_name + "')")
    return context, page


async def test_console_removes_a_participant_and_tails_its_departure(
    browser, client, live_service, tmp_path
):
    room_name = f"console-{secrets.token_hex(4)}"
    token = await fetch_token(client, room_name, "carol", participant_name="Carol")
    async with joined(token["server_url"], token["participant_token"]) as room:
        disconnected = recorder(room, "disconnected")
        await publish_audio(room)
        admin, page = await sign_in(browser, live_service.url, "admin")
        reader, reader_page = await sign_in(browser, live_service.url, "reader")
        try:
            # the key is in the tab's session storage only: not in the URL, not in a cookie
            assert KEYS["admin"][0] not in page.url
            assert await admin.cookies() == []
            stored = await page.evaluate("Object.values(sessionStorage)")
            assert stored == [KEYS["admin"][0]]

            await page.click("#tabs button[data-tab=events]")
            await page.check("#tail")
            await page.wait_for_selector("#tail-state:text-is('live')")
            await page.click("#tabs button[data-tab=rooms]")
            row = page.locator(f"#rooms-table tr[data-room='{room_name}']")
            # LiveKit updates a room's participant count a moment after the join
            count = row.locator("td:nth-child(2):text-is('1')")
            await count.wait_for(timeout=30_000)
            await row.locator("a").click()
            carol = page.locator("#participants-table tr[data-identity=carol]")
            await carol.locator(".track").wait_for(timeout=30_000)
            if SCREENSHOT:
                Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=SCREENSHOT)

            # a rooms:read key sees the room and the participant, with remove disabled
            await reader_page.locator(f"#rooms-table tr[data-room='{room_name}'] a").click()
            reader_carol = reader_page.locator("#participants-table tr[data-identity=carol]")
            remove = reader_carol.locator("button[data-action=remove]")
            await remove.wait_for(timeout=30_000)
            assert await remove.is_disabled()
            assert "rooms:write" in (await remove.get_attribute("title") or "")
            assert await reader_page.locator("#room-delete").is_disabled()
            assert await reader_page.locator("#dispatch-form button").is_disabled()

            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            await carol.locator("button[data-action=remove]").click()
            await page.wait_for_selector("#status:text-is('removed carol')")
            await wait_for(lambda: disconnected, timeout=30)

            await page.click("#tabs button[data-tab=events]")
            left = page.locator("#events-table tr[data-event=participant_left]", has_text=room_name)
            await left.wait_for(timeout=30_000)
            assert "carol" in await left.inner_text()
            listed = [url for url in requests if "/v1/webhooks/events?" in url]
            assert listed == [], "the event list was fetched again instead of tailed"
            assert not any(url.endswith("/v1/webhooks/events") for url in requests)
        finally:
            await admin.close()
            await reader.close()


async def test_console_shows_session_history_and_a_participant_timeline(
    browser, client, live_service
):
    room_name = f"console-history-{secrets.token_hex(4)}"
    for identity in ("dave", "erin"):
        token = await fetch_token(client, room_name, identity)
        async with joined(token["server_url"], token["participant_token"]) as room:
            await publish_audio(room)
            await wait_for(lambda who=identity: _published(client, room_name, who), timeout=30)

    async def both_left() -> bool:
        response = await client.get(
            "/v1/sessions", params={"room_name": room_name}, headers=auth("admin")
        )
        items = response.json()["items"]
        return bool(items) and (
            items[0]["num_participants"],
            items[0]["num_active_participants"],
        ) == (2, 0)

    await wait_for(both_left, timeout=60, interval=0.5)
    context, page = await sign_in(browser, live_service.url, "admin")
    try:
        await page.click("#tabs button[data-tab=sessions]")
        await page.fill("#sessions-filter input[name=room_name]", room_name)
        await page.click("#sessions-filter button[type=submit]")
        rows = page.locator("#sessions-table tbody tr")
        await page.locator(f"#sessions-table tbody tr:has-text('{room_name}')").wait_for()
        await wait_for(lambda: _count_is(rows, 1), timeout=30)  # the filtered list replaced
        assert room_name in await rows.first.inner_text()
        assert "0 / 2" in await rows.first.inner_text()
        await rows.first.locator("a").click()
        lanes = page.locator("#timeline .lane")
        await lanes.first.wait_for()
        assert [await lane.get_attribute("data-identity") for lane in await lanes.all()] == [
            "dave",
            "erin",
        ]
        assert "microphone" in await lanes.first.inner_text()
        assert await page.locator("#timeline .segment").count() == 2
    finally:
        await context.close()


async def _published(client, room_name: str, identity: str) -> bool:
    """LiveKit's track_published webhook for `identity` in `room_name` is stored."""
    params = {"room_name": room_name, "event": "track_published"}
    params["participant_identity"] = identity
    events = await client.get("/v1/webhooks/events", params=params, headers=auth("admin"))
    return bool(events.json()["items"])


async def _count_is(locator, count: int) -> bool:
    return await locator.count() == count
