"""The operator console in Chromium against the live service and the real LiveKit server:
sign in with a key, see a room a real participant (the Python realtime SDK) joined, remove
the participant from the console and it is disconnected, the live tail shows
`participant_left` without a reload, and a `rooms:read` key sees remove disabled; an
endpoint added in the Endpoints view gets a test event, whose delivery the view shows."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.components import LiveService, post_webhooks, webhook_body
from tests.conftest import KEYS, auth, make_settings
from tests.participants import fetch_token, joined, publish_audio, recorder, wait_for

pytestmark = pytest.mark.integration

#: Where the README's screenshot is written when set (e.g. `docs/console.png`).
SCREENSHOT = os.environ.get("CONSOLE_SCREENSHOT")


async def sign_in(browser, service_url: str, key_name: str):
    context = await browser.new_context(viewport={"width": 1100, "height": 470})
    page = await context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.csp_violations = violations  # type: ignore[attr-defined]
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
        segments = page.locator("#timeline .segment")
        assert await segments.count() == 2
        widths = await segments.evaluate_all("spans => spans.map(s => s.style.width)")
        assert all(width.startswith("calc(") for width in widths), widths
        assert page.csp_violations == []
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


async def test_console_mutes_updates_dispatches_and_deletes(browser, client, live_service):
    room_name = f"console-actions-{secrets.token_hex(4)}"
    token = await fetch_token(client, room_name, "frank")
    async with joined(token["server_url"], token["participant_token"]) as room:
        disconnected = recorder(room, "disconnected")
        publication = await publish_audio(room)
        context, page = await sign_in(browser, live_service.url, "admin")
        page.on("dialog", lambda dialog: dialog.accept())  # "Delete room ...?"
        try:
            await page.locator(f"#rooms-table tr[data-room='{room_name}'] a").click()
            frank = page.locator("#participants-table tr[data-identity=frank]")
            await frank.locator(".track button:text-is('Mute')").click(timeout=30_000)
            await page.wait_for_selector(f"#status:text-is('muted {publication.sid}')")
            participant = await client.get(
                f"/v1/rooms/{room_name}/participants/frank", headers=auth("admin")
            )
            assert participant.json()["tracks"][0]["muted"] is True

            await page.fill("#room-metadata", "set from the console")
            await page.click("#room-metadata-form button")
            await page.wait_for_selector(f"#status:text-is('metadata of {room_name} updated')")
            got = await client.get(f"/v1/rooms/{room_name}", headers=auth("admin"))
            assert got.json()["metadata"] == "set from the console"

            await page.fill("#dispatch-agent", "console-agent")
            await page.click("#dispatch-form button")
            await page.wait_for_selector("#status:has-text('dispatched console-agent')")
            dispatches = await client.get(
                f"/v1/rooms/{room_name}/dispatches", headers=auth("admin")
            )
            assert "console-agent" in [d["agent_name"] for d in dispatches.json()["items"]]

            await page.click("#room-delete")
            await page.wait_for_selector(f"#status:text-is('deleted {room_name}')")
            await wait_for(lambda: disconnected, timeout=30)
            gone = await client.get(f"/v1/rooms/{room_name}", headers=auth("admin"))
            assert gone.status_code == 404
        finally:
            await context.close()


async def test_the_live_tail_resumes_after_a_dropped_connection(browser, livekit_server, tmp_path):
    """The tail's connection is cut (its TCP connections reset with `ss -K`, in the test's
    network namespace) while the tab is offline; events stored meanwhile appear once the
    tab is back, because the tail reconnects with `Last-Event-ID`."""
    service = LiveService().start(make_settings(livekit_server.url, tmp_path))
    context, page = await sign_in(browser, service.url, "admin")
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            await post_webhooks(http, [_event("before", "room_started")])
            await page.click("#tabs button[data-tab=events]")
            await page.check("#tail")
            await page.wait_for_selector("#tail-state:text-is('live')")
            await post_webhooks(http, [_event("first", "participant_joined")])
            await page.locator("#events-table tr[data-id=first]").wait_for()

            await context.set_offline(True)  # the reconnect waits until the tab is online
            reset = subprocess.run(
                ["ss", "-K", "-t", f"sport = :{service.port}"], capture_output=True, check=False
            )
            assert reset.returncode == 0, reset.stderr
            await page.wait_for_selector("#tail-state:text-is('reconnecting')")
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            missed = [_event(f"missed-{n}", "participant_left") for n in range(3)]
            await post_webhooks(http, missed)
        await context.set_offline(False)
        await page.wait_for_selector("#tail-state:text-is('live')", timeout=30_000)
        for n in range(3):
            await page.locator(f"#events-table tr[data-id=missed-{n}]").wait_for()
        ids = await page.locator("#events-table tbody tr").evaluate_all(
            "rows => rows.map(row => row.dataset.id)"
        )
        assert ids == ["missed-2", "missed-1", "missed-0", "first", "before"]
    finally:
        await context.close()
        service.stop()


def _event(event_id: str, kind: str) -> dict[str, object]:
    return json.loads(webhook_body(event_id, kind, room="tail-room"))


async def test_console_adds_an_endpoint_and_sees_its_deliveries(
    browser, client, live_service, subscriber
):
    context, page = await sign_in(browser, live_service.url, "admin")
    endpoint_id = None
    try:
        await page.click("#tabs button[data-tab=endpoints]")
        pattern = f"console-relay-{secrets.token_hex(4)}"
        await page.fill("#endpoint-form input[name=url]", subscriber.path)
        await page.fill("#endpoint-form input[name=room_name_pattern]", pattern)
        await page.click("#endpoint-form button[type=submit]")
        secret = await page.locator("#endpoint-secret code").inner_text()
        assert secret.startswith("whsec_")
        subscriber.secrets = [secret]
        row = page.locator("#endpoints-table tr", has_text=subscriber.path)
        endpoint_id = await row.get_attribute("data-endpoint")

        await row.locator("button[data-action=test]").click()
        await wait_for(lambda: len(subscriber.received) == 1, timeout=30)
        assert subscriber.received[0].verified

        async def succeeded() -> bool:
            await page.click("#endpoints-refresh")
            delivered = page.locator("#deliveries-table tr[data-status=succeeded]")
            return await delivered.count() == 1

        await wait_for(succeeded, timeout=30)
        delivered = page.locator("#deliveries-table tr[data-status=succeeded]")
        assert "webhook_test" in await delivered.inner_text()
        assert "204" in await delivered.inner_text()

        await row.locator("button[data-action=toggle]").click()
        await page.wait_for_selector(
            f"#endpoints-table tr[data-endpoint='{endpoint_id}'] td.state:text-is('disabled')"
        )
        assert page.csp_violations == []  # type: ignore[attr-defined]
        # the secret was shown once: no read of the endpoint answers it
        listed = await client.get("/v1/webhooks/endpoints", headers=auth("admin"))
        assert secret not in listed.text
    finally:
        await context.close()
        if endpoint_id:
            await client.delete(f"/v1/webhooks/endpoints/{endpoint_id}", headers=auth("admin"))
