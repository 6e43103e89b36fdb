"""Session analytics (contract: Sessions), read from the session projections
(`app.store.projections`), which every stored event updates in its own transaction by
order-independent rules (`app.store.projection_facts`): the answer is a function of the set
of stored events only, the same whatever order they arrived in, however often one was repeated, and
on every replica. A derived event (reconciliation) counts like any other, but a real
event's time or name always wins over a derived one for the same value.

A session is one life of a room: LiveKit's room sid is its `session_id`. It is listed once
its `room_started` event is stored, and built from every stored event of the room that
carries that sid: `room_started`, `room_finished`, `participant_joined`,
`participant_left`, `participant_connection_aborted`, `track_published`, and the egress
events (`EgressInfo.room_id` is the room sid).

Retention: the webhook purge deletes events received before WEBHOOK_RETENTION_DAYS, and in
the same transaction the projection rows of every session with such an event, so a session
never shows a history cut short by the purge. Until the purge runs, a session with an
event older than the cutoff is already hidden.

Cost: a page is one read of `sessions` by the index on `(created_at, session_id)` (or
`(room_name, created_at, session_id)`), then the participant and egress rows of the page's
sessions by index; one session is a primary-key read and the same two. Neither depends on
how many events are stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from app.core.errors import NotFound
from app.store import projections as queries
from app.store.cursor import Cursor
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.projection_facts import TERMINAL_RANK
from schemas.common import Page
from schemas.sessions import (
    EgressState,
    ParticipantSession,
    PublishedSources,
    SessionDetails,
    SessionEgress,
    SessionParticipant,
    SessionQuery,
    SessionSummary,
)

_SOURCES = ("camera", "microphone", "screen_share", "screen_share_audio")


@dataclass(frozen=True)
class SessionPageToken(Cursor):
    """The cursor of the session list: `created_at` and `session_id` of the last page's
    last session (the list is ordered by both, descending)."""

    PREFIX: ClassVar[str] = "se2:"
    created_at: dt.datetime
    session_id: str


def session_start(session: Any) -> dt.datetime:
    """When a `sessions` row's room began: LiveKit's creation time of the room, else its
    first event."""
    start: dt.datetime | None = session.created_at or session.first_event_at
    assert start is not None
    return start


def participant_timeline(
    session: Any, rows: Sequence[Any], now: dt.datetime
) -> list[SessionParticipant]:
    """The identities of a session from its `session_participants` rows, sorted by
    identity: each connection's join (the room's start when no event gave one) and leave
    (the room's end when none gave one), the identity's latest name (by the event that
    set it), the sources it published, its connected time (an open connection counts up to
    `now`)."""
    by_identity: dict[str, list[Any]] = {}
    for row in rows:
        by_identity.setdefault(row.identity, []).append(row)
    participants = []
    for identity, own in sorted(by_identity.items()):
        connections = sorted(
            (
                ParticipantSession(
                    participant_sid=row.participant_sid,
                    joined_at=row.joined_at or session_start(session),
                    left_at=row.left_at or session.ended_at,
                )
                for row in own
            ),
            key=lambda c: (c.joined_at, c.participant_sid),
        )
        named = [row for row in own if row.name]
        latest = max(named, key=lambda r: (r.name_real, r.name_at, r.name_event), default=None)
        still_open = any(c.left_at is None for c in connections)
        duration = sum(
            max(((c.left_at or now) - c.joined_at).total_seconds(), 0.0) for c in connections
        )
        sources = {s: any(getattr(row, s) for row in own) for s in _SOURCES}
        participants.append(
            SessionParticipant(
                participant_identity=identity,
                participant_name=latest.name if latest is not None else "",
                joined_at=connections[0].joined_at,
                left_at=None if still_open else max(c.left_at for c in connections if c.left_at),
                duration_seconds=round(duration, 3),
                published_sources=PublishedSources(**sources),
                sessions=connections,
            )
        )
    return participants


def _egress_state(egress: Sequence[Any]) -> EgressState:
    if not egress:
        return "never"
    return "ended" if all(e.status_rank == TERMINAL_RANK for e in egress) else "active"


def _summary(
    session: Any, participants: Sequence[Any], egress: Sequence[Any], now: dt.datetime
) -> SessionSummary:
    timeline = participant_timeline(session, participants, now)
    return SessionSummary(
        session_id=session.session_id,
        room_name=session.room_name,
        created_at=session_start(session),
        ended_at=session.ended_at,
        last_active=session.last_active,
        num_participants=len(timeline),
        num_active_participants=sum(p.left_at is None for p in timeline),
        egress=_egress_state(egress),
    )


def _cutoff(now: dt.datetime, retention_days: int) -> dt.datetime | None:
    return now - dt.timedelta(days=retention_days) if retention_days > 0 else None


async def list_sessions(
    store: Store, query: SessionQuery, *, retention_days: int, now: dt.datetime | None = None
) -> Page[SessionSummary]:
    """Sessions created in the query's window, newest first (by the room's creation time,
    then session id), one page at a time. Raises 400 (`invalid_page_token`), 503 (store
    unavailable)."""
    now = now or dt.datetime.now(dt.UTC)
    cursor = SessionPageToken.decode(query.page_token) if query.page_token else None
    with database_errors():
        rows = await queries.sessions_page(
            store,
            room_name=query.room_name,
            start=query.start,
            end=query.end,
            active=query.active,
            visible_since=_cutoff(now, retention_days),
            after=(cursor.created_at, cursor.session_id) if cursor else None,
            limit=query.limit + 1,
        )
        page = rows[: query.limit]
        ids = [row.session_id for row in page]
        participants = await queries.participants_of(store, ids) if ids else []
        egress = await queries.egress_of(store, ids) if ids else []
    people: dict[str, list[Any]] = {}
    for row in participants:
        people.setdefault(row.session_id, []).append(row)
    recorded: dict[str, list[Any]] = {}
    for row in egress:
        recorded.setdefault(row.session_id, []).append(row)
    items = [
        _summary(row, people.get(row.session_id, []), recorded.get(row.session_id, []), now)
        for row in page
    ]
    token = (
        SessionPageToken(page[-1].created_at, page[-1].session_id).encode()
        if len(rows) > query.limit
        else None
    )
    return Page[SessionSummary](items=items, next_page_token=token)


async def get_session(
    store: Store, session_id: str, *, retention_days: int, now: dt.datetime | None = None
) -> SessionDetails:
    """The session whose room sid is `session_id`, with its participant timeline
    (identities and egress sorted by name).

    Raises `NotFound` (404, `session_not_found`), 503 (store unavailable).
    """
    now = now or dt.datetime.now(dt.UTC)
    cutoff = _cutoff(now, retention_days)
    with database_errors():
        found = await queries.session_rows(store, [session_id])
        session = found[0] if found else None
        if (
            session is None
            or not session.anchored
            or (cutoff is not None and session.oldest_received_at < cutoff)
        ):
            raise NotFound(f"no stored session has id {session_id!r}", code="session_not_found")
        participants = await queries.participants_of(store, [session_id])
        egress = await queries.egress_of(store, [session_id])
    timeline = participant_timeline(session, participants, now)
    return SessionDetails(
        session_id=session_id,
        room_name=session.room_name,
        start_time=session_start(session),
        end_time=session.ended_at,
        num_participants=len(timeline),
        participants=timeline,
        egress=[
            SessionEgress(
                egress_id=e.egress_id, status=e.status, started_at=e.started_at, ended_at=e.ended_at
            )
            for e in sorted(egress, key=lambda e: e.egress_id)
        ],
    )
