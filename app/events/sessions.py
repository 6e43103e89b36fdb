"""Session analytics (contract: Sessions), recomputed on every read from the stored webhook
events, so the answer is a function of the set of stored events only: the same whatever
order they arrived in, however often one was repeated, and on every replica.

A session is one life of a room: LiveKit's room sid is its `session_id`. It is listed when
its `room_started` event is stored (the anchor), and it is built from every stored event
of the room that carries that sid: `room_started`, `room_finished`, `participant_joined`,
`participant_left`, `participant_connection_aborted`, `track_published`, and the egress
events (`EgressInfo.room_id` is the room sid). Events are deduplicated by LiveKit's event
`id`; every value is a min, a max or a union, with fixed tie-breaks, so no arrival order
changes a result.

Retention: the webhook purge deletes events one by one (`received_at` older than
WEBHOOK_RETENTION_DAYS). A session with any event received before that cutoff is hidden
whole, and once its `room_started` is gone it is never listed again, so a session never
shows a history cut short by the purge.

Cost (`python -m bench.sessions`): a page reads its `room_started` rows (index on
`event, created_at`, migration 0003), then the events of those rooms by `room_name` (index
`room_name, seq`), and parses only the fields a session reads of the events whose body
names one of the page's sids. No table beyond the event store is written and the event
insert path is untouched; the price is paid on read (see bench/README.md).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from livekit.protocol.egress import EgressStatus
from livekit.protocol.models import TrackSource
from livekit.protocol.webhook import WebhookEvent

from app.core.errors import NotFound
from app.store import sessions as queries
from app.store.cursor import Cursor
from app.store.engine import Store
from app.store.errors import database_errors
from schemas.common import Page
from schemas.protojson import from_livekit_json
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

ROOM_STARTED = "room_started"
ROOM_FINISHED = "room_finished"
JOINED = "participant_joined"
LEFT = ("participant_left", "participant_connection_aborted")
TRACK_PUBLISHED = "track_published"
EGRESS_EVENTS = ("egress_started", "egress_updated", "egress_ended")
#: Every event type a session is built from.
SESSION_EVENTS = (ROOM_STARTED, ROOM_FINISHED, JOINED, *LEFT, TRACK_PUBLISHED, *EGRESS_EVENTS)
#: How far before its room's `created_at` a session's events are looked for (seconds):
#: LiveKit stamps events in whole seconds, on several nodes.
CLOCK_SLACK = dt.timedelta(seconds=60)
#: Fewest `room_started` rows read per query while filling a page (more when a filter such
#: as `active` leaves a batch short).
MIN_SCAN_BATCH = 20

_TERMINAL_EGRESS = frozenset(
    {
        EgressStatus.EGRESS_COMPLETE,
        EgressStatus.EGRESS_FAILED,
        EgressStatus.EGRESS_ABORTED,
        EgressStatus.EGRESS_LIMIT_REACHED,
    }
)
_SOURCES = {
    TrackSource.CAMERA: "camera",
    TrackSource.MICROPHONE: "microphone",
    TrackSource.SCREEN_SHARE: "screen_share",
    TrackSource.SCREEN_SHARE_AUDIO: "screen_share_audio",
}


def _spellings(parent: Any, names: Iterable[str]) -> frozenset[str]:
    """Each field `names` of the message field `parent` (a protobuf `FieldDescriptor`) as
    protojson may spell it: proto name and lowerCamelCase."""
    message = parent.message_type
    assert message is not None
    fields = [message.fields_by_name[name] for name in names]
    return frozenset(name for f in fields for name in (f.name, f.json_name))


#: The WebhookEvent fields a session is built from, by message field (both spellings).
_READ_FIELDS = {
    "room": ("sid", "name", "creation_time", "creation_time_ms"),
    "participant": ("sid", "identity", "name", "joined_at", "joined_at_ms"),
    "track": ("source",),
    "egress_info": ("egress_id", "room_id", "room_name", "status", "started_at", "ended_at"),
}
_EVENT_FIELDS = WebhookEvent.DESCRIPTOR.fields_by_name
_READ = {
    spelling: _spellings(_EVENT_FIELDS[field], names)
    for field, names in _READ_FIELDS.items()
    for spelling in (field, _EVENT_FIELDS[field].json_name)
}


@dataclass(frozen=True)
class StoredSessionEvent:
    """One stored event as the fold sees it: LiveKit's `id` and `event`, its `created_at`
    (LiveKit's time) and `received_at` (ours), and the parsed `WebhookEvent`."""

    id: str
    event: str
    created_at: dt.datetime
    received_at: dt.datetime
    payload: WebhookEvent

    @classmethod
    def from_row(cls, row: Any) -> StoredSessionEvent:
        """A `webhook_events` row (needs `id, event, created_at, received_at, body`); only
        the fields a session reads (`_READ`) are parsed (`from_livekit_json`)."""
        data = json.loads(row.body)
        picked = {
            key: {k: v for k, v in value.items() if k in _READ[key]}
            for key, value in data.items()
            if key in _READ and isinstance(value, dict)
        }
        payload = from_livekit_json(picked, WebhookEvent)
        return cls(row.id, row.event, row.created_at, row.received_at, payload)

    @property
    def session_id(self) -> str:
        """The room sid the event belongs to ('' when it names none)."""
        return self.payload.room.sid or self.payload.egress_info.room_id

    @property
    def order(self) -> tuple[dt.datetime, str]:
        """A total order on events that does not depend on arrival: time, then id."""
        return self.created_at, self.id


# --- the fold (pure) -----------------------------------------------------------------------


@dataclass
class _Connection:
    sid: str
    joined_at: dt.datetime | None = None
    left_at: dt.datetime | None = None


@dataclass
class _Identity:
    connections: dict[str, _Connection] = field(default_factory=dict)
    name: tuple[tuple[dt.datetime, str], str] | None = None  # (order of the event, name)
    sources: set[str] = field(default_factory=set)


def _ms(milliseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)


def _min(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else max(a, b)


class SessionFold:
    """The session of one room sid, folded from a set of its events (see the module doc).

    `add` takes events in any order, repeats included; `summary` and `details` read it.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.seen: set[str] = set()
        self.room_name: tuple[tuple[dt.datetime, str], str] | None = None
        self.created_at: dt.datetime | None = None
        self.ended_at: dt.datetime | None = None
        self.first_event: dt.datetime | None = None
        self.last_active: dt.datetime | None = None
        self.oldest_received: dt.datetime | None = None
        self.anchored = False
        self.identities: dict[str, _Identity] = {}
        self.egress: dict[str, tuple[tuple[int, dt.datetime, str], SessionEgress]] = {}

    def add(self, event: StoredSessionEvent) -> None:
        """Fold in one event of this session (one already folded, by `id`, is ignored)."""
        if event.id in self.seen or event.session_id != self.session_id:
            return
        self.seen.add(event.id)
        payload = event.payload
        self.first_event = _min(self.first_event, event.created_at)
        self.last_active = _max(self.last_active, event.created_at)
        self.oldest_received = _min(self.oldest_received, event.received_at)
        name = payload.room.name or payload.egress_info.room_name
        if name and (self.room_name is None or event.order > self.room_name[0]):
            self.room_name = (event.order, name)
        if event.event == ROOM_STARTED:
            self.anchored = True
            room = payload.room
            created = (
                _ms(room.creation_time_ms)
                if room.creation_time_ms
                else dt.datetime.fromtimestamp(room.creation_time, dt.UTC)
                if room.creation_time
                else event.created_at
            )
            self.created_at = _min(self.created_at, created)
        elif event.event == ROOM_FINISHED:
            self.ended_at = _max(self.ended_at, event.created_at)
        elif event.event in (JOINED, *LEFT, TRACK_PUBLISHED):
            self._add_participant_event(event)
        elif event.event in EGRESS_EVENTS:
            self._add_egress_event(event)

    def _add_participant_event(self, event: StoredSessionEvent) -> None:
        info = event.payload.participant
        if not info.identity or not info.sid:
            return
        identity = self.identities.setdefault(info.identity, _Identity())
        connection = identity.connections.setdefault(info.sid, _Connection(info.sid))
        if info.name and (identity.name is None or event.order > identity.name[0]):
            identity.name = (event.order, info.name)
        joined = (
            _ms(info.joined_at_ms)
            if info.joined_at_ms
            else dt.datetime.fromtimestamp(info.joined_at, dt.UTC)
            if info.joined_at
            else None
        )
        if event.event == JOINED:
            joined = joined or event.created_at
        connection.joined_at = _min(connection.joined_at, joined)
        if event.event in LEFT:
            connection.left_at = _max(connection.left_at, event.created_at)
        if event.event == TRACK_PUBLISHED and event.payload.track.source in _SOURCES:
            identity.sources.add(_SOURCES[event.payload.track.source])

    def _add_egress_event(self, event: StoredSessionEvent) -> None:
        info = event.payload.egress_info
        if not info.egress_id:
            return
        terminal = info.status in _TERMINAL_EGRESS
        rank = (
            2 if terminal else 1 if info.status == EgressStatus.EGRESS_ENDING else 0,
            *event.order,
        )
        started = (
            dt.datetime.fromtimestamp(info.started_at / 1e9, dt.UTC) if info.started_at else None
        )
        ended = dt.datetime.fromtimestamp(info.ended_at / 1e9, dt.UTC) if info.ended_at else None
        current = self.egress.get(info.egress_id)
        if current is not None:
            started = _min(current[1].started_at, started)
            ended = _max(current[1].ended_at, ended)
        status = EgressStatus.Name(info.status)
        if current is not None and current[0] > rank:
            rank, status = current[0], current[1].status
        self.egress[info.egress_id] = (
            rank,
            SessionEgress(
                egress_id=info.egress_id, status=status, started_at=started, ended_at=ended
            ),
        )

    # --- reading the fold --------------------------------------------------------------

    def visible(self, retention_cutoff: dt.datetime | None) -> bool:
        """Listed and readable: its `room_started` is stored and none of its events is older
        than the retention cutoff (see the module doc)."""
        if not self.anchored:
            return False
        return not (
            retention_cutoff and self.oldest_received and self.oldest_received < retention_cutoff
        )

    def _start(self) -> dt.datetime:
        start = self.created_at or self.first_event
        assert start is not None
        return start

    def _participants(self, now: dt.datetime) -> list[SessionParticipant]:
        participants = []
        for identity, seen in sorted(self.identities.items()):
            connections = []
            for connection in seen.connections.values():
                joined = connection.joined_at or self._start()
                left = connection.left_at or self.ended_at
                connections.append(
                    ParticipantSession(
                        participant_sid=connection.sid, joined_at=joined, left_at=left
                    )
                )
            connections.sort(key=lambda c: (c.joined_at, c.participant_sid))
            still_open = any(c.left_at is None for c in connections)
            duration = sum(
                max(((c.left_at or now) - c.joined_at).total_seconds(), 0.0) for c in connections
            )
            participants.append(
                SessionParticipant(
                    participant_identity=identity,
                    participant_name=seen.name[1] if seen.name else "",
                    joined_at=connections[0].joined_at,
                    left_at=None
                    if still_open
                    else max(c.left_at for c in connections if c.left_at),
                    duration_seconds=round(duration, 3),
                    published_sources=PublishedSources(**dict.fromkeys(seen.sources, True)),
                    sessions=connections,
                )
            )
        return participants

    def _egress_state(self) -> EgressState:
        if not self.egress:
            return "never"
        ended = all(rank[0] == 2 for rank, _ in self.egress.values())
        return "ended" if ended else "active"

    def summary(self, now: dt.datetime) -> SessionSummary:
        """The list item."""
        participants = self._participants(now)
        assert self.last_active is not None
        return SessionSummary(
            session_id=self.session_id,
            room_name=self.room_name[1] if self.room_name else "",
            created_at=self._start(),
            ended_at=self.ended_at,
            last_active=self.last_active,
            num_participants=len(participants),
            num_active_participants=sum(p.left_at is None for p in participants),
            egress=self._egress_state(),
        )

    def details(self, now: dt.datetime) -> SessionDetails:
        """The session with its participant timeline, identities and egress sorted by name."""
        participants = self._participants(now)
        return SessionDetails(
            session_id=self.session_id,
            room_name=self.room_name[1] if self.room_name else "",
            start_time=self._start(),
            end_time=self.ended_at,
            num_participants=len(participants),
            participants=participants,
            egress=[egress for _, (_, egress) in sorted(self.egress.items())],
        )


def fold_sessions(events: Iterable[StoredSessionEvent]) -> dict[str, SessionFold]:
    """Every session named by `events` (any order, repeats allowed), by session id."""
    folds: dict[str, SessionFold] = {}
    for event in events:
        if event.session_id:
            folds.setdefault(event.session_id, SessionFold(event.session_id)).add(event)
    return folds


# --- reading from the store -----------------------------------------------------------------


@dataclass(frozen=True)
class SessionPageToken(Cursor):
    """The cursor of the session list: `created_at` and event `id` of the last page's last
    `room_started` row (the list is ordered by both, descending)."""

    PREFIX: ClassVar[str] = "se1:"
    created_at: dt.datetime
    event_id: str


async def _session_events(
    store: Store, anchors: Sequence[tuple[str, str]], since: dt.datetime
) -> list[StoredSessionEvent]:
    """The session events of `anchors` ((session id, room name) pairs) created at or after
    `since`. Rows are read by room name; only those whose body contains one of the room's
    session ids (a sid appears verbatim in every event of its session) are parsed, and
    `SessionFold.add` checks the parsed sid exactly."""
    wanted: dict[str, set[str]] = {}
    for session_id, room_name in anchors:
        wanted.setdefault(room_name, set()).add(session_id)
    rows = await queries.events_of_rooms(store, wanted, SESSION_EVENTS, since)
    return [
        StoredSessionEvent.from_row(row)
        for row in rows
        if any(sid in row.body for sid in wanted.get(row.room_name or "", ()))
    ]


def _cutoff(now: dt.datetime, retention_days: int) -> dt.datetime | None:
    return now - dt.timedelta(days=retention_days) if retention_days > 0 else None


async def list_sessions(
    store: Store, query: SessionQuery, *, retention_days: int, now: dt.datetime | None = None
) -> Page[SessionSummary]:
    """Sessions created in the query's window, newest first (by `room_started` time), one
    page at a time. Raises 400 (`invalid_page_token`), 503 (store unavailable)."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = _cutoff(now, retention_days)
    cursor = SessionPageToken.decode(query.page_token) if query.page_token else None
    found: list[tuple[SessionPageToken, SessionSummary]] = []
    listed: set[str] = set()
    batch = max(query.limit + 1, MIN_SCAN_BATCH)
    with database_errors():
        while len(found) <= query.limit:
            rows = await queries.anchors_page(
                store,
                ROOM_STARTED,
                room_name=query.room_name,
                start=query.start,
                end=query.end,
                after=(cursor.created_at, cursor.event_id) if cursor else None,
                limit=batch,
            )
            if not rows:
                break
            cursor = SessionPageToken(rows[-1].created_at, rows[-1].id)
            anchors = [(StoredSessionEvent.from_row(row), row) for row in rows]
            pairs = [(a.session_id, row.room_name or "") for a, row in anchors if a.session_id]
            since = min(row.created_at for row in rows) - CLOCK_SLACK
            folds = fold_sessions(await _session_events(store, pairs, since))
            for anchor, row in anchors:
                fold = folds.get(anchor.session_id)
                if fold is None or anchor.session_id in listed or not fold.visible(cutoff):
                    continue
                listed.add(anchor.session_id)
                summary = fold.summary(now)
                if query.active is None or query.active == (summary.ended_at is None):
                    found.append((SessionPageToken(row.created_at, row.id), summary))
            if len(rows) < batch:
                break
    page = found[: query.limit]
    token = page[-1][0].encode() if len(found) > query.limit else None
    return Page[SessionSummary](items=[summary for _, summary in page], next_page_token=token)


async def get_session(
    store: Store, session_id: str, *, retention_days: int, now: dt.datetime | None = None
) -> SessionDetails:
    """The session whose room sid is `session_id`, with its participant timeline.

    Raises `NotFound` (404, `session_not_found`), 503 (store unavailable).
    """
    now = now or dt.datetime.now(dt.UTC)
    missing = NotFound(f"no stored session has id {session_id!r}", code="session_not_found")
    if not session_id.isprintable() or '"' in session_id:
        raise missing
    with database_errors():
        # The sid appears verbatim in its room_started body; the parse below confirms it.
        rows = await queries.events_containing(store, ROOM_STARTED, session_id)
        anchors = [r for r in rows if StoredSessionEvent.from_row(r).session_id == session_id]
        if not anchors:
            raise missing
        since = min(row.created_at for row in anchors) - CLOCK_SLACK
        pairs = [(session_id, row.room_name or "") for row in anchors]
        events = await _session_events(store, pairs, since)
    fold = fold_sessions(events).get(session_id)
    if fold is None or not fold.visible(_cutoff(now, retention_days)):
        raise missing
    return fold.details(now)
