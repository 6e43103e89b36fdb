"""Reconciliation with LiveKit's state (contract: Webhooks, "Derived events").

LiveKit's webhook delivery is best effort: an event it cannot deliver (the service down, a
network partition) is retried for seconds and then dropped, so the store can go on saying
that a room is live long after it ended. At start-up and every RECONCILE_INTERVAL_SECONDS,
`reconcile` compares what the stored events say is live (`read_live`) with LiveKit's
own state and appends the events that are missing, in LiveKit's shapes:

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
`"derived": {"by": "reconciliation", "observed_at": <RFC 3339>}` (`DERIVED_BY`). It is
checked and turned into its row by the same code as a received webhook
(`app.livekit.webhook_verification.parse_event`) and stored through
`store.events.insert`, so it is stored once, listed, streamed and relayed like any other.
Its `id` is deterministic (`derived_id`: a hash of the fact), so the same fact derived
twice, or on two replicas at once, is one event. What ends (a room, a participant) carries
the time it was observed gone as its `created_at`, LiveKit having none; the `derived`
member is what sessions key on to let a real event for the same fact, arriving later,
take precedence.

Order of reading: what the store holds live first (`read_live`), then LiveKit, then what
the store has seen of what LiveKit answered (`read_seen`). Whatever LiveKit lacks had ended
before it was asked, so every derived fact is true; what can happen is a real event still
in flight for the same fact, so the candidates are checked against the store once more
just before they are written (`_still_missing`), which leaves only a race of milliseconds.

LiveKit calls per run: `ListRooms` (all rooms), `ListEgress` (active ones), `ListIngress`
(all, usually one page), then `ListParticipants` only for a room LiveKit has whose
participant count differs from the store's or whose start the store never saw, and
`ListEgress` by id only for an egress the store holds active that LiveKit does not list
as active. At most `MAX_PARTICIPANT_LISTS` `ListParticipants` per run: with more rooms to
ask (the first run over a store that has never seen LiveKit's rooms), the rest wait for
the next runs. LiveKit's count leaves out the participants it calls dependent (agents,
egress' recorders), so a room holding one is asked every run.

One replica reconciles at a time: each run first takes the `reconcile` lease
(`app.store.leases`) for one interval, renewed by its holder at its next run, so a
cluster makes one run per interval whatever the number of replicas; a replica that stops
loses it within an interval. (A PostgreSQL advisory lock would need a connection held for
the whole run, would not exist on SQLite, and would let every replica run once per
interval, one after the other.)

Metrics (`app.core.metrics`): derived events stored by type, the time of the last
successful run, LiveKit calls by method (`bench/reconcile.py` measures them with many
rooms).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from livekit import api
from livekit.protocol.egress import EgressInfo, EgressStatus
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from app.core import metrics
from app.core.errors import AppError, NotFound
from app.livekit.gateway import LiveKit
from app.livekit.webhook_verification import parse_event
from app.store import leases
from app.store import live as queries
from app.store.engine import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The `by` of the `derived` member of every event this module appends.
DERIVED_BY = "reconciliation"
#: Prefix of a derived event's `id` (LiveKit's own ids start `EV_`).
DERIVED_ID_PREFIX = "EV_derived_"
#: The lease a replica takes before each run (`app.store.leases`).
LEASE_NAME = "reconcile"
#: Most `ListParticipants` calls in one run (the other rooms that need one wait for the
#: next runs), and how many are in flight at once.
MAX_PARTICIPANT_LISTS = 250
LIST_CONCURRENCY = 8

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
#: Most `ListIngress` pages read in one run.
MAX_INGRESS_PAGES = 100


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


async def read_live(store: Store) -> StoreView:
    """What the store holds live (`StoreView` without its `seen` sets: `read_seen` fills
    them), from the session projections (`app.store.live.live`): read before LiveKit is
    asked, so that what LiveKit then lacks has ended. Database errors reach the caller."""
    rows = await queries.live(store)
    view = StoreView()
    for row in rows.rooms:
        view.live_rooms[row.session_id] = StoredRoom(
            row.session_id, row.room_name, _seconds(row.created_at)
        )
    for row in rows.participants:
        view.connected.setdefault(row.session_id, {})[row.participant_sid] = StoredParticipant(
            row.participant_sid, row.identity, row.name, _seconds(row.joined_at)
        )
    for row in rows.egress:
        view.active_egress[row.egress_id] = StoredEgress(
            row.egress_id, row.session_id, row.room_name
        )
    for row in rows.ingress:
        state = IngressState(started_at=int(row.started_ns), room_id=row.session_id)
        view.active_ingress[(row.ingress_id, int(row.started_ns))] = IngressInfo(
            ingress_id=row.ingress_id,
            room_name=row.room_name,
            participant_identity=row.participant_identity,
            state=state,
        )
    return view


async def read_seen(store: Store, view: StoreView, state: LiveKitState) -> None:
    """Fill `view`'s `seen` sets for what LiveKit answered in `state` (its rooms and their
    participants, its egresses and ingresses; `app.store.live.seen`): read after LiveKit
    was asked, so that a real event stored meanwhile counts. Database errors reach the
    caller."""
    seen = await queries.seen(
        store,
        room_sids=[room.sid for room in state.rooms],
        egress_ids=[info.egress_id for info in state.active_egress or ()],
        ingress_ids=[info.ingress_id for info in state.ingress or ()],
    )
    view.started_rooms, view.seen_participants = seen.started_rooms, seen.participants
    view.seen_egress, view.seen_ingress = seen.egress, seen.ingress


async def read_store_view(store: Store, state: LiveKitState) -> StoreView:
    """`read_live` then `read_seen`: the whole `StoreView` as of now."""
    view = await read_live(store)
    await read_seen(store, view, state)
    return view


def _seconds(moment: dt.datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


# --- what LiveKit says, and what follows ---------------------------------------------------


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


def _still_missing(view: StoreView, event: DerivedEvent) -> bool:
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


# --- one run ----------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What one run did: whether it ran (it holds the lease), the LiveKit calls it made by
    method, the derived events it stored by type, and how long it took (seconds)."""

    ran: bool = False
    calls: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Reconciler:
    """Runs `reconcile` for one process: `holder` is its lease holder id (random), and
    `interval_seconds` how long each lease it takes lasts."""

    def __init__(self, store: Store, lk: LiveKit, interval_seconds: float) -> None:
        self.store = store
        self.lk = lk
        self.interval_seconds = interval_seconds
        self.holder = secrets.token_hex(8)
        self.last_report = RunReport()

    async def run(self) -> int:
        """One run if this process takes the lease (`run_periodically`'s job); returns how
        many derived events it stored. Raises what `reconcile` raises."""
        self.last_report = await reconcile(
            self.store, self.lk, lease=(self.holder, self.interval_seconds)
        )
        return sum(self.last_report.stored.values())


async def reconcile(
    store: Store,
    lk: LiveKit,
    *,
    lease: tuple[str, float] | None,
    now: dt.datetime | None = None,
) -> RunReport:
    """Compare the store with LiveKit and store the missing events (see the module doc).

    `lease` is `(holder, seconds)`: the run happens only if `holder` takes the `reconcile`
    lease for `seconds`; None runs without it. Returns the `RunReport`. Raises `AppError`
    when `ListRooms` fails (nothing is derived then; a failing egress call only leaves
    egress out of this run) and the store's errors (`DATABASE_ERRORS`).
    """
    started = time.perf_counter()
    report = RunReport()
    if lease is not None:
        holder, seconds = lease
        taken = await leases.take(
            store, LEASE_NAME, holder, now=now or dt.datetime.now(dt.UTC), seconds=seconds
        )
        if not taken:
            return report
    report.ran = True
    view = await read_live(store)
    state = LiveKitState(rooms=list((await _call(report, lk, "ListRooms", _list_rooms(lk))).rooms))
    try:
        listed = await _call(report, lk, "ListEgress", _list_active_egress(lk))
        state.active_egress = list(listed.items)
    except AppError as exc:
        log.info("reconcile: egress left out (%s)", exc.code)
    try:
        state.ingress = await _all_ingress(report, lk)
    except AppError as exc:
        log.info("reconcile: ingress left out (%s)", exc.code)
    await read_seen(store, view, state)
    state.participants = await _participants_of(report, lk, rooms_to_list(view, state.rooms))
    if state.active_egress is not None:
        for egress_id in egress_to_look_up(view, state.active_egress):
            found = await _call(report, lk, "ListEgress", _egress_by_id(lk, egress_id))
            state.looked_up_egress[egress_id] = next(iter(found.items), None)
    observed_at = now or dt.datetime.now(dt.UTC)
    candidates = derive(view, state, observed_at)
    if candidates:
        later = await read_store_view(store, state)
        missing = [event for event in candidates if _still_missing(later, event)]
        # all at once, in order: the store commits them in few transactions (group commit)
        inserts = (store.events.insert(parse_event(event.body)[1]) for event in missing)
        for event, stored in zip(missing, await asyncio.gather(*inserts), strict=True):
            if stored:
                report.stored[event.event] = report.stored.get(event.event, 0) + 1
                metrics.DERIVED_EVENTS.labels(event.event).inc()
    metrics.RECONCILE_LAST_SUCCESS.set(time.time())
    report.seconds = time.perf_counter() - started
    if report.stored:
        log.debug("reconcile: derived %s", report.stored)  # `run_periodically` logs the total
    return report


async def _call(report: RunReport, lk: LiveKit, method: str, call: Awaitable[T]) -> T:
    """`lk.run(call)`, counted by `method` (LiveKit's RPC name) in the report and metrics."""
    report.calls[method] = report.calls.get(method, 0) + 1
    metrics.RECONCILE_LIVEKIT_CALLS.labels(method).inc()
    return await lk.run(call)


async def _participants_of(
    report: RunReport, lk: LiveKit, rooms: list[Room]
) -> dict[str, list[ParticipantInfo]]:
    """`ListParticipants` of at most `MAX_PARTICIPANT_LISTS` of `rooms` (drawn at random, so
    that rooms left over are reached by the next runs), `LIST_CONCURRENCY` at a time; by
    room sid. A room gone since `ListRooms` is left out (the next run sees it gone)."""
    if len(rooms) > MAX_PARTICIPANT_LISTS:
        rooms = random.sample(rooms, MAX_PARTICIPANT_LISTS)
    gate = asyncio.Semaphore(LIST_CONCURRENCY)
    found: dict[str, list[ParticipantInfo]] = {}

    async def one(room: Room) -> None:
        request = api.ListParticipantsRequest(room=room.name)
        async with gate:
            try:
                answer = await _call(
                    report, lk, "ListParticipants", lk.room.list_participants(request)
                )
            except NotFound:
                return
        found[room.sid] = list(answer.participants)

    await asyncio.gather(*(one(room) for room in rooms))
    return found


def _list_rooms(lk: LiveKit) -> Awaitable[api.ListRoomsResponse]:
    return lk.room.list_rooms(api.ListRoomsRequest())


async def _all_ingress(report: RunReport, lk: LiveKit) -> list[IngressInfo]:
    """Every ingress (`ListIngress`, page after page, at most `MAX_INGRESS_PAGES`)."""
    items: list[IngressInfo] = []
    request = api.ListIngressRequest()
    for _ in range(MAX_INGRESS_PAGES):
        page = await _call(report, lk, "ListIngress", lk.ingress.list_ingress(request))
        items.extend(page.items)
        if not page.next_page_token.token:
            break
        request.page_token.token = page.next_page_token.token
    return items


def _list_active_egress(lk: LiveKit) -> Awaitable[api.ListEgressResponse]:
    return lk.egress.list_egress(api.ListEgressRequest(active=True))


async def _egress_by_id(lk: LiveKit, egress_id: str) -> api.ListEgressResponse:
    empty = api.ListEgressResponse()
    call = lk.egress.list_egress(api.ListEgressRequest(egress_id=egress_id))
    return await lk.run_list(call, not_found_code="egress_not_found", by_id=True, empty=empty)
