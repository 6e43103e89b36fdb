"""What one stored webhook event says about sessions, egress and ingress (pure): the facts
the projections (`app.store.projections`) merge, one upsert per fact.

Every fact carries, for each value that a later event may replace, the key deciding which
value wins, so the merge is a commutative, idempotent rule per column:

- times: the earliest (`joined_at`, `created_at`, `started_at`, the first event) or the
  latest (`left_at`, `ended_at`, `last_active`) value, where a value from a real event
  always beats one from a derived event (a body with a top-level `"derived"` object, added
  by reconciliation; contract: "Derived events"), whichever arrives first;
- names and the egress status: the value of the event that is greatest by
  `(status rank, real, created_at, event id)` (the rank only for the status: terminal >
  ending > any other);
- published sources, the room's anchor (`room_started` seen): OR;
- the participant's kind, the egress type, the room sid of an egress or ingress: the
  greatest value (they never change for one id).

Which events build a session, and what each reads, is the contract's "Sessions" section:
`room_started`, `room_finished`, `participant_joined`, `participant_left`,
`participant_connection_aborted`, `track_published` and the egress events, each by the
room sid it carries (`room.sid`, or `egress_info.room_id`); `ingress_started`,
`ingress_updated` and `ingress_ended` build the ingress intervals.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.egress import EgressInfo, EgressStatus
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo, TrackSource
from livekit.protocol.webhook import WebhookEvent

from schemas.protojson import from_livekit_json

ROOM_STARTED = "room_started"
ROOM_FINISHED = "room_finished"
JOINED = "participant_joined"
LEFT = ("participant_left", "participant_connection_aborted")
TRACK_PUBLISHED = "track_published"
EGRESS_EVENTS = ("egress_started", "egress_updated", "egress_ended")
INGRESS_EVENTS = ("ingress_started", "ingress_updated", "ingress_ended")
#: Every event type a session is built from.
SESSION_EVENTS = (ROOM_STARTED, ROOM_FINISHED, JOINED, *LEFT, TRACK_PUBLISHED, *EGRESS_EVENTS)

#: The key of a value no event has set yet: below every event's.
NO_EVENT_AT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TERMINAL_EGRESS = frozenset(
    {
        EgressStatus.EGRESS_COMPLETE,
        EgressStatus.EGRESS_FAILED,
        EgressStatus.EGRESS_ABORTED,
        EgressStatus.EGRESS_LIMIT_REACHED,
    }
)
#: Status rank of an egress: terminal (2) beats ending (1) beats any other (0).
TERMINAL_RANK = 2
SOURCES = {
    TrackSource.CAMERA: "camera",
    TrackSource.MICROPHONE: "microphone",
    TrackSource.SCREEN_SHARE: "screen_share",
    TrackSource.SCREEN_SHARE_AUDIO: "screen_share_audio",
}
#: The egress types (`EgressInfo.request`), as usage names them.
EGRESS_TYPES = ("room_composite", "web", "participant", "track_composite", "track")


def _spellings(message: Any, names: tuple[str, ...]) -> frozenset[str]:
    """Each field `names` of the protobuf message `message` as protojson may spell it."""
    fields = [message.DESCRIPTOR.fields_by_name[name] for name in names]
    return frozenset(spelling for f in fields for spelling in (f.name, f.json_name))


#: The WebhookEvent fields the projections read, by message field (both spellings).
_READ_FIELDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "room": (WebhookEvent().room, ("sid", "name", "creation_time", "creation_time_ms")),
    "participant": (
        ParticipantInfo,
        ("sid", "identity", "name", "joined_at", "joined_at_ms", "kind"),
    ),
    "track": (WebhookEvent().track, ("source",)),
    "egress_info": (
        EgressInfo,
        ("egress_id", "room_id", "room_name", "status", "started_at", "ended_at"),
    ),
    "ingress_info": (IngressInfo, ("ingress_id", "room_name", "participant_identity", "state")),
}
_EVENT_FIELDS = WebhookEvent.DESCRIPTOR.fields_by_name
_READ = {
    spelling: _spellings(message, names)
    for name, (message, names) in _READ_FIELDS.items()
    for spelling in (name, _EVENT_FIELDS[name].json_name)
}
_EGRESS_KEYS = {
    spelling: name
    for name in EGRESS_TYPES
    for spelling in (name, EgressInfo.DESCRIPTOR.fields_by_name[name].json_name)
}
_STATE_READ = _spellings(IngressState, ("room_id", "started_at", "ended_at", "status"))


@dataclass(frozen=True)
class Stamp:
    """Which event set a value: whether it was real (not derived), its `created_at` and
    id. Compared as `(real, at, event_id)`."""

    real: bool
    at: dt.datetime
    event_id: str


NO_STAMP = Stamp(False, NO_EVENT_AT, "")


@dataclass
class SessionFact:
    """What an event says of its room session (`sessions` row)."""

    session_id: str
    stamp: Stamp
    received_at: dt.datetime
    room_name: str = ""
    anchored: bool = False
    created_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


@dataclass
class ParticipantFact:
    """What an event says of one participant session (one participant sid)."""

    session_id: str
    participant_sid: str
    identity: str
    stamp: Stamp
    name: str = ""
    kind: int = 0
    joined_at: dt.datetime | None = None
    left_at: dt.datetime | None = None
    sources: set[str] = field(default_factory=set)


@dataclass
class EgressFact:
    """What an event says of one egress."""

    egress_id: str
    session_id: str
    room_name: str
    egress_type: str
    status: str
    status_rank: int
    stamp: Stamp
    received_at: dt.datetime
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


@dataclass
class IngressFact:
    """What an event says of one active interval of an ingress (an ingress id and the
    `IngressState.started_at` of the interval, 0 when the event gives none)."""

    ingress_id: str
    started_ns: int
    session_id: str
    room_name: str
    participant_identity: str
    stamp: Stamp
    received_at: dt.datetime
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


@dataclass
class Facts:
    """Every fact of one event (each list empty when the event says nothing of it)."""

    sessions: list[SessionFact] = field(default_factory=list)
    participants: list[ParticipantFact] = field(default_factory=list)
    egress: list[EgressFact] = field(default_factory=list)
    ingress: list[IngressFact] = field(default_factory=list)


def _ms(milliseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)


def _ns(nanoseconds: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(nanoseconds / 1e9, dt.UTC) if nanoseconds else None


def parse_body(body: str) -> tuple[WebhookEvent, bool]:
    """The fields of a stored body (`webhook_events.body`) that the projections read, as a
    `WebhookEvent`, and whether the event is real (its body has no `"derived"` object)."""
    data = json.loads(body)
    picked: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _READ or not isinstance(value, dict):
            continue
        kept = {k: v for k, v in value.items() if k in _READ[key]}
        state = kept.get("state")
        if isinstance(state, dict):
            kept["state"] = {k: v for k, v in state.items() if k in _STATE_READ}
        picked[key] = kept
    return from_livekit_json(picked, WebhookEvent), not isinstance(data.get("derived"), dict)


def egress_type(body: str) -> str:
    """The egress type of a stored egress event (`EgressInfo.request`: one of
    `EGRESS_TYPES`), '' when it names none."""
    data = json.loads(body)
    info = data.get("egress_info", data.get("egressInfo"))
    if not isinstance(info, dict):
        return ""
    return next((_EGRESS_KEYS[key] for key in info if key in _EGRESS_KEYS), "")


def facts_of(row: dict[str, Any] | Any) -> Facts:
    """The facts of one stored event: `row` holds `webhook_events` columns (`id`, `event`,
    `created_at`, `received_at`, `body`), as a dict or a row. A body that cannot be read
    gives no facts."""

    def get(name: str) -> Any:
        return row[name] if isinstance(row, dict) else getattr(row, name)

    event_type: str = get("event")
    if event_type not in SESSION_EVENTS and event_type not in INGRESS_EVENTS:
        return Facts()
    try:
        payload, real = parse_body(get("body"))
    except ValueError:
        return Facts()
    created_at: dt.datetime = get("created_at")
    received_at: dt.datetime = get("received_at")
    stamp = Stamp(real, created_at, get("id"))
    facts = Facts()
    if event_type in INGRESS_EVENTS:
        _ingress_fact(facts, event_type, payload, stamp, received_at)
        return facts
    session_id = payload.room.sid or payload.egress_info.room_id
    if not session_id:
        return facts
    session = SessionFact(
        session_id,
        stamp,
        received_at,
        room_name=payload.room.name or payload.egress_info.room_name,
    )
    facts.sessions.append(session)
    if event_type == ROOM_STARTED:
        room = payload.room
        session.anchored = True
        session.created_at = (
            _ms(room.creation_time_ms)
            if room.creation_time_ms
            else dt.datetime.fromtimestamp(room.creation_time, dt.UTC)
            if room.creation_time
            else created_at
        )
    elif event_type == ROOM_FINISHED:
        session.ended_at = created_at
    elif event_type in (JOINED, *LEFT, TRACK_PUBLISHED):
        _participant_fact(facts, session_id, event_type, payload, stamp)
    elif event_type in EGRESS_EVENTS and payload.egress_info.egress_id:
        info = payload.egress_info
        status_rank = (
            TERMINAL_RANK
            if info.status in TERMINAL_EGRESS
            else 1
            if info.status == EgressStatus.EGRESS_ENDING
            else 0
        )
        facts.egress.append(
            EgressFact(
                egress_id=info.egress_id,
                session_id=session_id,
                room_name=info.room_name,
                egress_type=egress_type(get("body")),
                status=EgressStatus.Name(info.status),
                status_rank=status_rank,
                stamp=stamp,
                received_at=received_at,
                started_at=_ns(info.started_at),
                ended_at=_ns(info.ended_at),
            )
        )
    return facts


def _participant_fact(
    facts: Facts, session_id: str, event_type: str, payload: WebhookEvent, stamp: Stamp
) -> None:
    info = payload.participant
    if not info.identity or not info.sid:
        return
    joined = (
        _ms(info.joined_at_ms)
        if info.joined_at_ms
        else dt.datetime.fromtimestamp(info.joined_at, dt.UTC)
        if info.joined_at
        else None
    )
    if event_type == JOINED:
        joined = joined or stamp.at
    sources = set()
    if event_type == TRACK_PUBLISHED and payload.track.source in SOURCES:
        sources.add(SOURCES[payload.track.source])
    facts.participants.append(
        ParticipantFact(
            session_id=session_id,
            participant_sid=info.sid,
            identity=info.identity,
            stamp=stamp,
            name=info.name,
            kind=int(info.kind),
            joined_at=joined,
            left_at=stamp.at if event_type in LEFT else None,
            sources=sources,
        )
    )


def _ingress_fact(
    facts: Facts, event_type: str, payload: WebhookEvent, stamp: Stamp, received_at: dt.datetime
) -> None:
    info = payload.ingress_info
    if not info.ingress_id:
        return
    state = info.state
    started = _ns(state.started_at)
    ended = _ns(state.ended_at)
    if event_type == "ingress_started":
        started = started or stamp.at
    if event_type == "ingress_ended":
        ended = ended or stamp.at
    facts.ingress.append(
        IngressFact(
            ingress_id=info.ingress_id,
            started_ns=int(state.started_at),
            session_id=state.room_id,
            room_name=info.room_name,
            participant_identity=info.participant_identity,
            stamp=stamp,
            received_at=received_at,
            started_at=started,
            ended_at=ended,
        )
    )
