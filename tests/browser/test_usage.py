"""The console's Usage view in Chromium: with webhook events of several days posted to the
service as LiveKit signs them, each point of the chart (participant-minutes bars, peak
concurrency line) is the figure `GET /v1/usage` gives for that day, item by item, and the
table shows the items of the grouping chosen."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import httpx

from bench.fill import generate, plan_for
from tests.browser.test_console import sign_in
from tests.components import post_webhooks
from tests.conftest import auth, serving

UNUSED_LIVEKIT = "http://127.0.0.1:9"


def finished_rooms(events: int, days: int) -> list[dict]:
    """About `events` generated events over the `days` days before today, cut after the last
    `room_finished`, so no participant is still connected (a connected one counts up to now,
    and now moves between two reads)."""
    plan = plan_for(events, days, None, dt.datetime.now(dt.UTC).date())
    bodies = list(generate(events, plan, seed=11))
    last = max(n for n, body in enumerate(bodies) if body["event"] == "room_finished")
    return bodies[: last + 1]


async def test_the_usage_chart_shows_what_the_usage_route_gives(browser, tmp_path) -> None:
    with serving(UNUSED_LIVEKIT, tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            await post_webhooks(http, finished_rooms(500, days=4))
            context, page = await sign_in(browser, service.url, "admin")
            try:
                requested: list[str] = []
                page.on(
                    "request", lambda r: requested.append(r.url) if "/v1/usage" in r.url else None
                )
                await page.click("#tabs button[data-tab=usage]")
                await page.locator("#usage-table tbody tr").first.wait_for()
                by_day = dict(parse_qsl(urlsplit(requested[0]).query))
                assert by_day["group_by"] == "day"
                usage = await http.get("/v1/usage", params=by_day, headers=auth("admin"))
                assert usage.status_code == 200, usage.text
                items = usage.json()["items"]
                days_with_usage = [i for i in items if i["participant_minutes"] > 0]
                assert len(days_with_usage) >= 4, items

                bars = await page.locator("#usage-chart rect.usage-bar").evaluate_all(
                    "bars => bars.map(b => [b.dataset.day, Number(b.dataset.minutes)])"
                )
                peaks = await page.locator("#usage-chart circle.usage-peak").evaluate_all(
                    "points => points.map(p => [p.dataset.day, Number(p.dataset.peak)])"
                )
                assert bars == [[i["key"], i["participant_minutes"]] for i in items]
                assert peaks == [[i["key"], i["peak_concurrent_participants"]] for i in items]
                rows = page.locator("#usage-table tbody tr")
                assert await rows.evaluate_all("rows => rows.map(r => r.dataset.key)") == [
                    i["key"] for i in items
                ]

                # grouped by room: the chart stays by day, the table lists the rooms
                requested.clear()
                await page.select_option("#usage-filter select[name=group_by]", "room")
                await page.click("#usage-filter button[type=submit]")
                await page.locator("#usage-table thead th:text-is('room')").wait_for()
                by_room = dict(parse_qsl(urlsplit(requested[-1]).query))
                assert by_room["group_by"] == "room"
                rooms = await http.get("/v1/usage", params=by_room, headers=auth("admin"))
                keys = await rows.evaluate_all("rows => rows.map(r => r.dataset.key)")
                assert keys == [i["key"] for i in rooms.json()["items"]]
                assert len(keys) > 1
                assert page.csp_violations == []
            finally:
                await context.close()
