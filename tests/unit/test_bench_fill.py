"""`bench.fill`: a small fill stores every event it was asked for, each as a received
webhook's row, and the service reads them back as sessions (through the app)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import sqlalchemy as sa

from app.store.engine import Store
from app.store.tables import webhook_events
from bench.fill import fill, generate, plan_for
from tests.conftest import auth

UNUSED_LIVEKIT = "http://127.0.0.1:9"


async def test_a_fill_is_read_back_as_sessions(app_client, tmp_path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.migrate()
    assert await fill(store, 600, days=3, seed=7) == 600
    assert await fill(store, 600, days=3, seed=7) == 0  # the same events again: all repeats
    async with store.db_session() as session:
        rows = (
            await session.execute(sa.select(webhook_events.c.event, webhook_events.c.room_name))
        ).all()
        room_sids = {
            json.loads(body)["room"]["sid"]
            for (body,) in await session.execute(
                sa.select(webhook_events.c.body).where(webhook_events.c.event == "room_started")
            )
        }
    await store.aclose()
    kinds = Counter(kind for kind, _ in rows)
    assert len(rows) == 600
    assert {"room_started", "participant_joined", "track_published", "room_finished"} <= set(kinds)
    assert all(room_name for _, room_name in rows)

    async with app_client(UNUSED_LIVEKIT) as http:
        seen: set[str] = set()
        token = None
        while True:
            params = {"limit": 200, **({"page_token": token} if token else {})}
            response = await http.get("/v1/sessions", params=params, headers=auth("admin"))
            assert response.status_code == 200, response.text
            page = response.json()
            seen |= {item["session_id"] for item in page["items"]}
            token = page["next_page_token"]
            if token is None:
                break
        assert seen == room_sids
        one = sorted(room_sids)[0]
        response = await http.get(f"/v1/sessions/{one}", headers=auth("admin"))
        assert response.status_code == 200, response.text
        assert response.json()["participants"]


def test_the_generator_covers_what_livekit_sends() -> None:
    """Reconnections, SIP and ingress participants, every egress request type, and both
    ways of leaving appear in a fill of a few thousand events; every body is protojson."""
    plan = plan_for(5000, 5, None, dt.date(2026, 12, 1))
    bodies = list(generate(5000, plan, seed=3))
    assert len(bodies) == 5000
    kinds = Counter(body["event"] for body in bodies)
    for kind in (
        "participant_left",
        "participant_connection_aborted",
        "egress_started",
        "egress_updated",
        "egress_ended",
        "ingress_started",
        "ingress_ended",
    ):
        assert kinds[kind] > 0, kind
    participants = [b["participant"] for b in bodies if b["event"] == "participant_joined"]
    assert {p.get("kind", "STANDARD") for p in participants} == {"STANDARD", "SIP", "INGRESS"}
    sids_per_identity: dict[tuple[str, str], set[str]] = {}
    for body in bodies:
        if body["event"] == "participant_joined":
            key = (body["room"]["sid"], body["participant"]["identity"])
            sids_per_identity.setdefault(key, set()).add(body["participant"]["sid"])
    assert any(len(sids) > 1 for sids in sids_per_identity.values())  # reconnections
    egress_types = {
        next(
            k
            for k in ("roomComposite", "web", "participant", "trackComposite", "track")
            if k in b["egressInfo"]
        )
        for b in bodies
        if b["event"] == "egress_started"
    }
    assert len(egress_types) == 5
    sources = {b["track"]["source"] for b in bodies if b["event"] == "track_published"}
    assert sources == {"CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO"}
    first, last = plan.first_day, plan.first_day + 5 * 86_400
    assert all(first <= int(b["createdAt"]) < last + 86_400 for b in bodies)
