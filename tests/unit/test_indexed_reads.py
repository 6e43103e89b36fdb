"""Sessions, usage and the event list read by index: every statement they run on a store
with events is planned by SQLite as an index search or a primary-key lookup, never a scan
of a whole table (`EXPLAIN QUERY PLAN`), for each filter of the contract."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa

from app.events.sessions import get_session, list_sessions
from app.events.usage import usage_report
from app.events.webhooks import list_events
from app.livekit.webhook_verification import parse_event
from app.store.engine import Store
from schemas.sessions import SessionQuery
from schemas.usage import UsageQuery
from schemas.webhooks import EventQuery
from tests.unit.test_sessions import T0, life

WHEN = dt.datetime.fromtimestamp(T0, dt.UTC)


@pytest.fixture
async def store(tmp_path) -> Any:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    await store.migrate()
    for item in life():
        _, columns = parse_event(json.dumps(item).encode())
        await store.events.insert(columns)
    yield store
    await store.aclose()


def _capture(store: Store) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    return statements


async def _scans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """The plan lines of `statements` that scan a whole table."""
    found = []
    async with store.engine.connect() as connection:
        for statement, parameters in statements:
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            found += [f"{row[3]} <- {statement}" for row in plan if row[3].startswith("SCAN")]
    return found


async def test_sessions_and_usage_read_by_index(store: Store) -> None:
    statements = _capture(store)
    await list_sessions(store, SessionQuery(), retention_days=30)
    await list_sessions(store, SessionQuery(room_name="standup", active=False), retention_days=0)
    await list_sessions(
        store, SessionQuery(start=WHEN, end=WHEN + dt.timedelta(days=1)), retention_days=0
    )
    await get_session(store, "RM_life", retention_days=30)
    for group_by in ("day", "room", "identity"):
        query = UsageQuery(start=WHEN, end=WHEN + dt.timedelta(days=1), group_by=group_by)
        await usage_report(store, query)
    await usage_report(
        store, UsageQuery(start=WHEN, end=WHEN + dt.timedelta(hours=1), room_name="standup")
    )
    assert len(statements) >= 10
    assert await _scans(store, statements) == []


@pytest.mark.parametrize(
    "filters",
    [
        {"event": "participant_joined"},
        {"room_name": "standup"},
        {"participant_identity": "alice"},
        {"egress_id": "EG_1"},
        {"ingress_id": "IN_1"},
        {"since": WHEN},
        {"until": WHEN + dt.timedelta(seconds=30)},
        {"since": WHEN, "until": WHEN + dt.timedelta(seconds=30), "event": "room_started"},
    ],
)
async def test_every_event_filter_reads_by_index(store: Store, filters: dict[str, Any]) -> None:
    statements = _capture(store)
    await list_events(store, EventQuery(**filters))
    assert statements
    assert await _scans(store, statements) == []
