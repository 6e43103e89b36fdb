"""Derived events (contract: Webhooks, "Derived events"): the events missing from the store
given what LiveKit says, built in LiveKit's shapes. Pure: no store, no LiveKit call (the run
that reads both and stores the result is `app.events.reconcile`).

- `room_finished` for a room the store holds live that LiveKit no longer has, after a
  `participant_left` for each participant the store holds connected in it;
- `participant_left` for a participant the store holds connected that LiveKit no longer
  lists in its room;
- `room_started` and `participant_joined` for a room or participant LiveKit has that no
  stored event names, with LiveKit's own times (`Room.creation_time`,
  `ParticipantInfo.joined_at`) as the events' `created_at`;
- `egress_ended` for an egress the store holds active that LiveKit no longer lists as
  active, with LiveKit's `EgressInfo` (`ListEgress` by its id; one LiveKit no longer knows
  ends as `EGRESS_ABORTED`); `egress_started` for an active egress no stored event names;
- `ingress_started` and `ingress_ended` likewise for each publication of an ingress
  (`ListIngress`), a publication being `(ingress_id, state.started_at)`.

A derived event is a `WebhookEvent` as LiveKit's protojson writes it, plus the top-level
`"derived": {"by": "reconciliation", "observed_at": <RFC 3339>}` (`DERIVED_BY`). Its `id` is
deterministic (`derived_id`: a hash of the fact), so the same fact derived twice, or on two
replicas at once, is one event. What ends (a room, a participant) carries the time it was
observed gone as its `created_at`, LiveKit having none; the `derived` member is what
sessions key on to let a real event for the same fact, arriving later, take precedence.

What the store says (`StoreView`) and what LiveKit answered (`LiveKitState`) are the
derivation's inputs; `rooms_to_list` and `egress_to_look_up` say what LiveKit must be asked
beyond its lists, and `still_missing` checks a candidate against a later view of the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from livekit.protocol.egress import EgressInfo, EgressStatus
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

#: The `by` of the `derived` member of every event this module builds.
DERIVED_BY = "reconciliation"
#: Prefix of a derived event's `id` (LiveKit's own ids start `EV_`).
DERIVED_ID_PREFIX = "EV_derived_"

_TERMINAL_EGRESS = frozenset(
    {
        EgressStatus.EGRESS_COMPLETE,
        EgressStatus.EGRESS_FAILED,
        EgressStatus.EGRESS_ABORTED,
        EgressStatus.EGRESS_LIMIT_REACHED,
    }
)
#: An ingress LiveKit counts as live: publishing, or buffering between two publications
#: (LiveKit sends `ingress_started` on publishing and `ingress_ended` on inactive, error or
#: complete: livekit-server's `IOInfoService.UpdateIngressState`).
_LIVE_INGRESS = frozenset(
    {IngressState.Status.ENDPOINT_PUBLISHING, IngressState.Status.ENDPOINT_BUFFERING}
)


def derived_id(event: str, *keys: str) -> str:
    """The `id` of the derived `event` about the fact named by `keys` (a room sid, then a
    participant sid; an egress id; an ingress id and its publication's `started_at`):
    `EV_derived_` and 32 hex digits of the SHA-256 of them all. The same fact always gets
    the same id, on every replica."""
    digest = hashlib.sha256("\x1f".join((event, *keys)).encode()).hexdigest()
    return f"{DERIVED_ID_PREFIX}{digest[:32]}"


# --- what the store says --------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRoom:
    """A room as its stored events name it: sid, name, LiveKit's creation time (seconds)."""

    sid: str
    name: str
    creation_time: int = 0


@dataclass(frozen=True)
class StoredParticipant:
    """A participant's connection as its stored events name it."""

    sid: str
    identity: str
    name: str = ""
    joined_at: int = 0


@dataclass(frozen=True)
class StoredEgress:
    """An egress as its stored events name it (`room_sid` '' for one without a room)."""

    egress_id: str
    room_sid: str = ""
    room_name: str = ""


@dataclass
class StoreView:
    """What the stored events say, to compare with LiveKit.

    `live_rooms`: rooms with no `room_finished`, by sid; `connected`: per live room sid, the
    participants with no `participant_left` (or `..._connection_aborted`), by sid;
    `active_egress`: egresses with no terminal event, by id; `started_rooms`, `seen_participants`,
    `seen_egress`: the sids and ids any stored event names (room sids with a stored
    `room_started`). Ingress is by publication, `(ingress_id, state.started_at)`:
    `active_ingress` holds the last stored `IngressInfo` of each publication with an
    `ingress_started` and no `ingress_ended`, `seen_ingress` every publication started.
    """

    live_rooms: dict[str, StoredRoom] = field(default_factory=dict)
    connected: dict[str, dict[str, StoredParticipant]] = field(default_factory=dict)
    active_egress: dict[str, StoredEgress] = field(default_factory=dict)
    started_rooms: set[str] = field(default_factory=set)
    seen_participants: set[str] = field(default_factory=set)
    seen_egress: set[str] = field(default_factory=set)
    active_ingress: dict[tuple[str, int], IngressInfo] = field(default_factory=dict)
    seen_ingress: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class LiveKitState:
    """What LiveKit answered in one run: its rooms, the participants of the rooms asked
    (`participants`, by room sid), its active egresses (None when the egress API could not
    be asked, e.g. LiveKit without Redis), the egresses looked up by id (None: LiveKit
    does not know it), and its ingresses (None when they could not be asked)."""

    rooms: list[Room]
    participants: dict[str, list[ParticipantInfo]] = field(default_factory=dict)
    active_egress: list[EgressInfo] | None = None
    looked_up_egress: dict[str, EgressInfo | None] = field(default_factory=dict)
    ingress: list[IngressInfo] | None = None


def rooms_to_list(view: StoreView, rooms: Iterable[Room]) -> list[Room]:
    """The rooms whose participants must be asked for: those whose start the store never
    saw, and those whose participant count (LiveKit's `num_participants`) differs from the
    number the store holds connected."""
    return [
        room
        for room in rooms
        if room.sid not in view.started_rooms
        or room.num_participants != len(view.connected.get(room.sid, {}))
    ]


def egress_to_look_up(view: StoreView, active: Iterable[EgressInfo]) -> list[str]:
    """The egresses the store holds active that LiveKit does not list as active."""
    listed = {info.egress_id for info in active}
    return [egress_id for egress_id in view.active_egress if egress_id not in listed]


@dataclass(frozen=True)
class DerivedEvent:
    """One event to append: its type, id and body (UTF-8 JSON, as LiveKit would send it,
    with the `derived` member)."""

    event: str
    id: str
    body: bytes


def derive(view: StoreView, state: LiveKitState, observed_at: dt.datetime) -> list[DerivedEvent]:
    """The events missing from the store given what LiveKit said (see the module doc),
    in the order they are to be stored (a room's participants leave before it finishes).
    Pure: the same view and state give the same events."""
    now = int(observed_at.timestamp())
    out: list[DerivedEvent] = []

    def add(kind: str, keys: tuple[str, ...], created_at: int, **fields: Any) -> None:
        event = WebhookEvent(id=derived_id(kind, *keys), event=kind, created_at=created_at)
        for name, value in fields.items():
            getattr(event, name).CopyFrom(value)
        data = json_format.MessageToDict(event)
        data["derived"] = {"by": DERIVED_BY, "observed_at": _rfc3339(observed_at)}
        out.append(DerivedEvent(kind, event.id, json.dumps(data, separators=(",", ":")).encode()))

    livekit_rooms = {room.sid: room for room in state.rooms}
    for room in state.rooms:
        if room.sid not in view.started_rooms:
            add("room_started", (room.sid,), room.creation_time or now, room=room)
        listed = state.participants.get(room.sid)
        if listed is None:
            continue
        for participant in listed:
            # LiveKit counts a participant joined once it is active (its `participant_joined`)
            active = participant.state == ParticipantInfo.State.ACTIVE
            if active and participant.sid not in view.seen_participants:
                joined = participant.joined_at or now
                keys = (room.sid, participant.sid)
                add("participant_joined", keys, joined, room=room, participant=participant)
        present = {participant.sid for participant in listed}
        for stored in view.connected.get(room.sid, {}).values():
            if stored.sid not in present:
                keys = (room.sid, stored.sid)
                add("participant_left", keys, now, room=room, participant=_left(stored))
    for sid, stored_room in view.live_rooms.items():
        if sid in livekit_rooms:
            continue
        room = Room(sid=sid, name=stored_room.name, creation_time=stored_room.creation_time)
        for stored in view.connected.get(sid, {}).values():
            add("participant_left", (sid, stored.sid), now, room=room, participant=_left(stored))
        add("room_finished", (sid,), now, room=room)
    if state.active_egress is not None:
        for info in state.active_egress:
            if info.egress_id not in view.seen_egress:
                started = info.started_at // 1_000_000_000 or now
                add("egress_started", (info.egress_id,), started, egress_info=info)
    for egress_id, found in state.looked_up_egress.items():
        if found is not None and found.status not in _TERMINAL_EGRESS:
            continue  # still going (e.g. ENDING): its end is reported when it comes
        info = found if found is not None else _forgotten(view.active_egress[egress_id])
        ended = info.ended_at // 1_000_000_000 or now
        add("egress_ended", (egress_id,), ended, egress_info=info)
    if state.ingress is not None:
        _derive_ingress(view, state.ingress, now, add)
    return out


def _derive_ingress(
    view: StoreView, ingress: list[IngressInfo], now: int, add: Callable[..., None]
) -> None:
    """`ingress_started` for a publication LiveKit has live that no stored event started;
    `ingress_ended` for one the store holds live that LiveKit no longer has live (with
    LiveKit's `IngressInfo` when it describes that publication, else the stored one,
    `ENDPOINT_INACTIVE`)."""
    livekit = {info.ingress_id: info for info in ingress}
    for info in ingress:
        key = (info.ingress_id, info.state.started_at)
        if info.state.status in _LIVE_INGRESS and key not in view.seen_ingress:
            started = info.state.started_at // 1_000_000_000 or now
            add("ingress_started", (info.ingress_id, str(key[1])), started, ingress_info=info)
    for key, stored in view.active_ingress.items():
        current = livekit.get(key[0])
        if current is not None and current.state.started_at == key[1]:
            if current.state.status in _LIVE_INGRESS:
                continue
            info = current
        else:  # deleted, or publishing again since: this publication ended unseen
            info = IngressInfo()
            info.CopyFrom(stored)
            info.state.status = IngressState.Status.ENDPOINT_INACTIVE
            info.state.ended_at = now * 1_000_000_000
        ended = info.state.ended_at // 1_000_000_000 or now
        add("ingress_ended", (key[0], str(key[1])), ended, ingress_info=info)


def _left(stored: StoredParticipant) -> ParticipantInfo:
    return ParticipantInfo(
        sid=stored.sid,
        identity=stored.identity,
        name=stored.name,
        joined_at=stored.joined_at,
        state=ParticipantInfo.State.DISCONNECTED,
    )


def _forgotten(stored: StoredEgress) -> EgressInfo:
    """The end of an egress LiveKit no longer knows at all (its records expired)."""
    return EgressInfo(
        egress_id=stored.egress_id,
        room_id=stored.room_sid,
        room_name=stored.room_name,
        status=EgressStatus.EGRESS_ABORTED,
        error="LiveKit no longer knows this egress",
    )


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def still_missing(view: StoreView, event: DerivedEvent) -> bool:
    """Whether `event` is still missing given a later `view` of the store (a real event for
    the same fact may have arrived while LiveKit was being asked)."""
    data = json.loads(event.body)
    room_sid = data.get("room", {}).get("sid", "")
    participant_sid = data.get("participant", {}).get("sid", "")
    egress_id = data.get("egressInfo", {}).get("egressId", "")
    match event.event:
        case "room_started":
            return room_sid not in view.started_rooms
        case "participant_joined":
            return participant_sid not in view.seen_participants
        case "egress_started":
            return egress_id not in view.seen_egress
        case "participant_left":
            return participant_sid in view.connected.get(room_sid, {})
        case "room_finished":
            return room_sid in view.live_rooms
        case "egress_ended":
            return egress_id in view.active_egress
        case "ingress_started" | "ingress_ended":
            info = data.get("ingressInfo", {})
            key = (info.get("ingressId", ""), int(info.get("state", {}).get("startedAt", 0)))
            if event.event == "ingress_started":
                return key not in view.seen_ingress
            return key in view.active_ingress
    return True
