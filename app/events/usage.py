"""Usage (contract: Usage): LiveKit Cloud's usage figures for any LiveKit, computed from the
session projections (`app.store.projections`) of the window asked, so the same set of
stored events gives the same figures whatever their order or repetition.

The rules
    - A participant session is connected from its join (its room's start when no event
      gave one) to its leave (its room's end when no event gave one; now while it is still
      open). Time is clipped to the window and, grouped by day, split at UTC midnights.
    - `participant_minutes` counts every participant kind except SIP (`sip_minutes`, as
      LiveKit Cloud bills SIP minutes apart) and LiveKit's egress and ingress participants
      (their time is `egress_minutes` and `ingress_minutes`, from the egress and ingress
      rows). Agents count as participants.
    - `peak_concurrent_participants`: the most participant and SIP connections open at one
      instant of the key's slice (a leave and a join at the same instant do not overlap).
    - `sessions`: room sessions whose life (creation to end, or now; at least an instant)
      overlaps the key's slice; by identity, the sessions that identity was connected in
      within the window.
    - `egress_minutes` by egress type (`room_composite`, `web`, `participant`,
      `track_composite`, `track`), from start to end (now while active); egress have no
      identity, so grouped by identity they are not counted. `ingress_minutes` from each
      active interval of an ingress, by the room and the identity it publishes as.
    - Grouped by day, every UTC day the window touches is an item; by room or identity,
      each key with any usage.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.models import ParticipantInfo

from app.store import projections as queries
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.projection_facts import TERMINAL_RANK
from schemas.usage import UsageItem, UsageQuery, UsageReport

SIP = int(ParticipantInfo.Kind.SIP)
#: Participant kinds whose time is counted elsewhere (egress and ingress minutes).
NOT_PARTICIPANTS = frozenset({int(ParticipantInfo.Kind.EGRESS), int(ParticipantInfo.Kind.INGRESS)})
DAY = dt.timedelta(days=1)
#: How long a room session that ended before it began (LiveKit stamps `room_finished` in
#: whole seconds, the room's creation in milliseconds) lasts for counting `sessions`.
INSTANT = dt.timedelta(microseconds=1)


def day_pieces(a: dt.datetime, b: dt.datetime) -> Iterator[tuple[str, dt.datetime, dt.datetime]]:
    """`[a, b)` cut at UTC midnights: (day `YYYY-MM-DD`, from, to) for each day it touches."""
    while a < b:
        midnight = dt.datetime.combine(a.date(), dt.time(), dt.UTC) + DAY
        yield a.date().isoformat(), a, min(b, midnight)
        a = midnight


def peak(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The most intervals `[a, b)` open at one instant."""
    edges = sorted([(b, -1) for _, b in intervals] + [(a, 1) for a, _ in intervals])
    most = open_now = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


@dataclass
class _Key:
    participant_seconds: float = 0.0
    sip_seconds: float = 0.0
    connections: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    egress_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    ingress_seconds: float = 0.0

    def item(self, key: str) -> UsageItem:
        return UsageItem(
            key=key,
            participant_minutes=_minutes(self.participant_seconds),
            sessions=len(self.sessions),
            peak_concurrent_participants=peak(self.connections),
            egress_minutes={k: _minutes(v) for k, v in sorted(self.egress_seconds.items())},
            ingress_minutes=_minutes(self.ingress_seconds),
            sip_minutes=_minutes(self.sip_seconds),
        )


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 3)


class _Usage:
    """The keys of one report, filled interval by interval."""

    def __init__(self, query: UsageQuery) -> None:
        self.query = query
        self.keys: dict[str, _Key] = defaultdict(_Key)
        if query.group_by == "day":
            for day, _, _ in day_pieces(query.start, query.end):
                self.keys[day] = _Key()

    def pieces(
        self, key: str | None, a: dt.datetime, b: dt.datetime
    ) -> Iterator[tuple[_Key, dt.datetime, dt.datetime]]:
        """`[a, b)` clipped to the window, for its key (its day's pieces when grouped by
        day); nothing when it is empty or has no key."""
        a, b = max(a, self.query.start), min(b, self.query.end)
        if a >= b:
            return
        if self.query.group_by == "day":
            for day, x, y in day_pieces(a, b):
                yield self.keys[day], x, y
        elif key:
            yield self.keys[key], a, b


def _begun(row: Any) -> dt.datetime:
    begun: dt.datetime = row.created_at or row.first_event_at
    return begun


async def usage_report(
    store: Store, query: UsageQuery, *, now: dt.datetime | None = None
) -> UsageReport:
    """The usage of `query`'s window (see the module doc for the rules); `now` is when open
    connections are counted up to. Raises 503 (store unavailable)."""
    now = now or dt.datetime.now(dt.UTC)
    start, end, room = query.start, query.end, query.room_name
    with database_errors():
        participants = await queries.participants_overlapping(store, start, end, room)
        rooms = (
            await queries.sessions_overlapping(store, start, end, room)
            if query.group_by != "identity"
            else []
        )
        egress = await queries.egress_overlapping(store, start, end, room)
        ingress = await queries.ingress_overlapping(store, start, end, room)
    usage = _Usage(query)
    by = query.group_by
    for row in participants:
        if row.kind in NOT_PARTICIPANTS:
            continue
        joined = row.joined_at or _begun(row)
        left = row.left_at or row.ended_at or now
        key = row.room_name if by == "room" else row.identity
        for bucket, a, b in usage.pieces(key, joined, left):
            seconds = (b - a).total_seconds()
            if row.kind == SIP:
                bucket.sip_seconds += seconds
            else:
                bucket.participant_seconds += seconds
            bucket.connections.append((a, b))
            if by == "identity":
                bucket.sessions.add(row.session_id)
    for row in rooms:
        # a life shorter than LiveKit's clocks can tell (ended before begun) is an instant
        begun = _begun(row)
        ended = max(row.ended_at or now, begun + INSTANT)
        for bucket, _, _ in usage.pieces(row.room_name, begun, ended):
            bucket.sessions.add(row.session_id)
    if by != "identity":
        for row in egress:
            ended = row.ended_at or (row.started_at if row.status_rank == TERMINAL_RANK else now)
            for bucket, a, b in usage.pieces(row.room_name, row.started_at, ended):
                bucket.egress_seconds[row.egress_type or "unknown"] += (b - a).total_seconds()
    for row in ingress:
        key = row.room_name if by == "room" else row.participant_identity
        for bucket, a, b in usage.pieces(key, row.started_at, row.ended_at or now):
            bucket.ingress_seconds += (b - a).total_seconds()
    items = [bucket.item(key) for key, bucket in sorted(usage.keys.items())]
    return UsageReport(items=items, start=start, end=end)
