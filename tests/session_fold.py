"""The reference fold of sessions over raw webhook events (the test oracle of the
projections): the sessions of a set of stored events recomputed in memory, each value a
min, a max or a union with fixed tie-breaks, as the contract's "Sessions" section reads.
`app.store.projections` must give the same `summary` and `details` for the same events,
whatever order they arrive in and however often one repeats."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.egress import EgressStatus
from livekit.protocol.webhook import WebhookEvent

from app.store.projection_facts import (
    EGRESS_EVENTS,
    JOINED,
    LEFT,
    ROOM_FINISHED,
    ROOM_STARTED,
    SOURCES,
    TERMINAL_EGRESS,
    TRACK_PUBLISHED,
)
from schemas.protojson import from_livekit_json
from schemas.sessions import (
    EgressState,
    ParticipantSession,
    PublishedSources,
    SessionDetails,
    SessionEgress,
    SessionParticipant,
    SessionSummary,
)


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
        if event.event == TRACK_PUBLISHED and event.payload.track.source in SOURCES:
            identity.sources.add(SOURCES[event.payload.track.source])

    def _add_egress_event(self, event: StoredSessionEvent) -> None:
        info = event.payload.egress_info
        if not info.egress_id:
            return
        terminal = info.status in TERMINAL_EGRESS
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
