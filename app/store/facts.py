"""The facts the session projections merge (`app.store.projection_facts` reads them from a
stored event, `app.store.projections` upserts them): one type per projection row, and the
`Stamp` of the event that set a value, which decides which value a later event replaces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: The key of a value no event has set yet: below every event's.
NO_EVENT_AT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
