"""Reconciliation with LiveKit's state (contract: Webhooks, "Derived events").

LiveKit's webhook delivery is best effort: an event it cannot deliver (the service down, a
network partition) is retried for seconds and then dropped, so the store can go on saying
that a room is live long after it ended. At start-up and every RECONCILE_INTERVAL_SECONDS,
`reconcile` compares what the stored events say is live (`read_live`) with LiveKit's
own state and appends the events that are missing, in LiveKit's shapes
(`app.events.derived_events`: which events, their bodies and deterministic ids).

A derived event is checked and turned into its row by the same code as a received webhook
(`app.livekit.webhook_verification.parse_event`) and stored through
`store.events.insert`, so it is stored once, listed, streamed and relayed like any other.

Order of reading: what the store holds live first (`read_live`), then LiveKit, then what
the store has seen of what LiveKit answered (`read_seen`). Whatever LiveKit lacks had ended
before it was asked, so every derived fact is true; what can happen is a real event still
in flight for the same fact, so the candidates are checked against the store once more
just before they are written (`still_missing`), which leaves only a race of milliseconds.

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
import logging
import random
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from livekit import api
from livekit.protocol.ingress import IngressInfo, IngressState
from livekit.protocol.models import ParticipantInfo, Room

from app.core import metrics
from app.core.errors import AppError, NotFound
from app.events.derived_events import (
    LiveKitState,
    StoredEgress,
    StoredParticipant,
    StoredRoom,
    StoreView,
    derive,
    egress_to_look_up,
    rooms_to_list,
    still_missing,
)
from app.livekit.gateway import LiveKit
from app.livekit.webhook_verification import parse_event
from app.store import leases
from app.store import live as queries
from app.store.engine import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The lease a replica takes before each run (`app.store.leases`).
LEASE_NAME = "reconcile"
#: Most `ListParticipants` calls in one run (the other rooms that need one wait for the
#: next runs), and how many are in flight at once.
MAX_PARTICIPANT_LISTS = 250
LIST_CONCURRENCY = 8
#: Most `ListIngress` pages read in one run.
MAX_INGRESS_PAGES = 100


# --- what the store says --------------------------------------------------------------------


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
        missing = [event for event in candidates if still_missing(later, event)]
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
