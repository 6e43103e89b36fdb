"""`python -m bench.fill --events N --database-url URL [--rooms-per-day R] [--days D]
[--seed S]`: store N realistic LiveKit webhook events, as a busy deployment would have
received them, through the store's own insert path.

Rooms start and finish; participants join (some as SIP callers, `ParticipantInfo.kind`
`SIP`; ingress publishers as `INGRESS`), publish their microphone, camera or screen share,
some lose their connection and come back with a new participant sid, and leave or are
aborted; some rooms are recorded or streamed by an egress of one of LiveKit's five request
types (`egress_started`, `egress_updated`, `egress_ended`), some get an ingress
(`ingress_started`, `ingress_ended`). Bodies are protojson (camelCase) as LiveKit posts
them, and each becomes its row exactly as a received webhook does
(`app.webhook_verification.parse_event`), stored with `store.events.insert` (group commit,
and every writer the store runs with each event), many inserts at once so that commits
carry full batches.

The rooms are spread evenly over the D whole UTC days before today (R per day, by default
as many as N events need); the same seed gives the same events. The last room may be cut
short by N (it is then still live).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.livekit.webhook_verification import parse_event
from app.store.engine import Store

#: Events one room's life produces on average (measured over the generator); only used to
#: choose the default number of rooms per day.
EVENTS_PER_ROOM = 18
#: Inserts awaited together: enough to fill several group-commit batches.
CONCURRENT_INSERTS = 2000
EGRESS_TYPES = ("roomComposite", "web", "participant", "trackComposite", "track")
DAY = 86_400


@dataclass(frozen=True)
class Plan:
    """Where the rooms go: `rooms_per_day` rooms on each of the `days` UTC days from
    `first_day` (a timestamp at midnight UTC), cycling over the days again if N asks for
    more rooms than that."""

    first_day: int
    days: int
    rooms_per_day: int

    def room_start(self, index: int, rng: random.Random) -> int:
        day = (index // self.rooms_per_day) % self.days
        # leave the day's last two hours so most rooms finish on the day they started
        return self.first_day + day * DAY + rng.randrange(DAY - 7200)


def plan_for(events: int, days: int, rooms_per_day: int | None, today: dt.date) -> Plan:
    """The plan for `events` events over the `days` days before `today`."""
    if rooms_per_day is None:
        rooms_per_day = max(1, math.ceil(events / EVENTS_PER_ROOM / days))
    first = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), dt.UTC)
    return Plan(int(first.timestamp()), days, rooms_per_day)


class RoomLife:
    """The events of one room from `room_started` to `room_finished`, in time order, as
    LiveKit's protojson dicts."""

    def __init__(self, index: int, start: int, room_name: str, rng: random.Random) -> None:
        self.rng = rng
        self.sid = f"RM_{index:08x}{rng.getrandbits(24):06x}"
        self.name = room_name
        self.start = start
        self.timed: list[tuple[int, dict[str, Any]]] = []

    def room(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "name": self.name,
            "emptyTimeout": 300,
            "departureTimeout": 20,
            "creationTime": str(self.start),
            "creationTimeMs": str(self.start * 1000),
            "enabledCodecs": [{"mime": "audio/opus"}, {"mime": "video/VP8"}],
        }

    def add(self, at: int, kind: str, **fields: Any) -> None:
        body = {"id": "", "event": kind, "createdAt": str(at), **fields}
        if kind not in ("egress_started", "egress_updated", "egress_ended"):
            body = {**body, "room": self.room()}
        self.timed.append((at, body))

    def events(self) -> list[dict[str, Any]]:
        ordered = sorted(self.timed, key=lambda item: item[0])
        for number, (_, body) in enumerate(ordered, start=1):
            body["id"] = f"EV_{self.sid}_{number}"
        return [body for _, body in ordered]

    def participant(
        self, psid: str, identity: str, joined: int, kind: str = "STANDARD", **extra: Any
    ) -> dict[str, Any]:
        info = {
            "sid": psid,
            "identity": identity,
            "name": identity.replace("-", " ").title(),
            "state": "ACTIVE",
            "joinedAt": str(joined),
            "joinedAtMs": str(joined * 1000),
            "version": 3,
            "permission": {"canSubscribe": True, "canPublish": True, "canPublishData": True},
            "region": "local",
            "isPublisher": True,
            **extra,
        }
        if kind != "STANDARD":  # protojson leaves out a field at its default
            info["kind"] = kind
        return info

    def connection(
        self, psid: str, identity: str, joined: int, left: int, sources: list[str], **extra: Any
    ) -> None:
        """One participant sid: joined, its tracks published, then gone at `left`."""
        who = self.participant(psid, identity, joined, **extra)
        self.add(joined, "participant_joined", participant=who)
        for number, source in enumerate(sources):
            track = {
                "sid": f"TR_{psid[3:]}{number}",
                "type": "AUDIO" if source in ("MICROPHONE", "SCREEN_SHARE_AUDIO") else "VIDEO",
                "source": source,
                "name": source.lower(),
                "mimeType": "audio/opus"
                if "AUDIO" in source or source == "MICROPHONE"
                else "video/VP8",
            }
            self.add(joined + 1 + number, "track_published", participant=who, track=track)
        gone = "participant_left" if self.rng.random() < 0.9 else "participant_connection_aborted"
        self.add(left, gone, participant={**who, "state": "DISCONNECTED"})

    def person(self, number: int, arrives: int) -> int:
        """A standard participant (sometimes reconnecting); returns when it last left."""
        rng = self.rng
        identity = f"user-{rng.randrange(5000)}"
        sources = [s for s, p in (("MICROPHONE", 0.9), ("CAMERA", 0.7)) if rng.random() < p]
        if rng.random() < 0.15:
            sources += ["SCREEN_SHARE"] + (["SCREEN_SHARE_AUDIO"] if rng.random() < 0.5 else [])
        stays = rng.randrange(60, 3600)
        if rng.random() < 0.2:  # drops, and comes back under a new participant sid
            dropped = arrives + stays // 2
            psid = f"PA_{self.sid[3:]}{number}"
            who = self.participant(psid, identity, arrives)
            self.add(arrives, "participant_joined", participant=who)
            self.add(dropped, "participant_connection_aborted", participant=who)
            back = dropped + rng.randrange(2, 15)
            self.connection(f"{psid}r", identity, back, arrives + stays, sources)
            return arrives + stays
        self.connection(f"PA_{self.sid[3:]}{number}", identity, arrives, arrives + stays, sources)
        return arrives + stays

    def caller(self, number: int, arrives: int) -> int:
        """A SIP participant (a phone call into the room); returns when it hung up."""
        phone = f"+1555{self.rng.randrange(10**7):07d}"
        hangs_up = arrives + self.rng.randrange(30, 1800)
        attributes = {"sip.callID": f"SCL_{self.sid[3:]}{number}", "sip.phoneNumber": phone}
        self.connection(
            f"PA_{self.sid[3:]}s{number}",
            f"sip_{phone}",
            arrives,
            hangs_up,
            ["MICROPHONE"],
            kind="SIP",
            attributes=attributes,
        )
        return hangs_up

    def ingress(self, arrives: int) -> int:
        """An RTMP ingress publishing into the room; returns when it ended."""
        ends = arrives + self.rng.randrange(300, 3600)
        identity = f"ingress-{self.rng.randrange(100)}"
        info = {
            "ingressId": f"IN_{self.sid[3:]}",
            "name": "stream",
            "url": "rtmp://ingress.example/x",
            "inputType": "RTMP_INPUT",
            "roomName": self.name,
            "participantIdentity": identity,
            "enabled": True,
        }
        state = {"roomId": self.sid, "startedAt": str(arrives * 10**9)}
        started = {**state, "status": "ENDPOINT_PUBLISHING"}
        self.add(arrives, "ingress_started", ingressInfo={**info, "state": started})
        self.connection(
            f"PA_{self.sid[3:]}i",
            identity,
            arrives + 1,
            ends,
            ["CAMERA", "MICROPHONE"],
            kind="INGRESS",
        )
        ended = {**state, "status": "ENDPOINT_INACTIVE", "endedAt": str(ends * 10**9)}
        self.add(ends, "ingress_ended", ingressInfo={**info, "state": ended})
        return ends

    def egress(self, begins: int, until: int) -> None:
        """An egress of one of LiveKit's request types, started, active, then ended."""
        rng = self.rng
        kind = rng.choice(EGRESS_TYPES)
        ends = max(begins + 10, until - rng.randrange(0, 60))
        info: dict[str, Any] = {
            "egressId": f"EG_{self.sid[3:]}",
            "roomId": self.sid,
            "roomName": self.name,
            kind: {"roomName": self.name},
        }
        self.add(begins, "egress_started", egressInfo={**info, "status": "EGRESS_STARTING"})
        started = str((begins + 2) * 10**9)
        active = {**info, "status": "EGRESS_ACTIVE", "startedAt": started}
        self.add(begins + 2, "egress_updated", egressInfo=active)
        if kind == "web" or rng.random() < 0.2:
            results = {
                "streamResults": [{"url": "rtmp://live.example/app/key", "status": "FINISHED"}]
            }
        elif rng.random() < 0.3:
            results = {
                "segmentResults": [{"playlistName": f"{self.sid}.m3u8", "segmentCount": "40"}]
            }
        else:
            name = f"{self.sid}.mp4"
            results = {"fileResults": [{"filename": name, "location": f"s3://rec/{name}"}]}
        status = "EGRESS_COMPLETE" if rng.random() < 0.95 else "EGRESS_FAILED"
        ended = {**active, **results, "status": status, "endedAt": str(ends * 10**9)}
        self.add(ends, "egress_ended", egressInfo=ended)

    def build(self) -> list[dict[str, Any]]:
        rng = self.rng
        self.add(self.start, "room_started")
        last = self.start + 5
        for number in range(rng.randint(1, 6)):
            arrives = self.start + 2 + rng.randrange(0, 600)
            last = max(last, self.person(number, arrives))
        if rng.random() < 0.15:
            last = max(last, self.caller(0, self.start + rng.randrange(5, 900)))
        if rng.random() < 0.1:
            last = max(last, self.ingress(self.start + rng.randrange(5, 600)))
        if rng.random() < 0.3:
            self.egress(self.start + rng.randrange(3, 120), last)
        self.add(last + 20, "room_finished")  # LiveKit's departure timeout after the last left
        return self.events()


def generate(events: int, plan: Plan, seed: int) -> Iterator[dict[str, Any]]:
    """`events` webhook bodies (protojson dicts), room after room, from `seed`."""
    rng = random.Random(seed)
    names = [f"room-{n}" for n in range(max(4, plan.rooms_per_day * plan.days // 40))]
    produced, index = 0, 0
    while produced < events:
        start = plan.room_start(index, rng)
        life = RoomLife(index, start, rng.choice(names), rng).build()
        yield from life[: events - produced]
        produced += min(len(life), events - produced)
        index += 1


async def fill(
    store: Store,
    events: int,
    *,
    days: int = 30,
    rooms_per_day: int | None = None,
    seed: int = 1,
    today: dt.date | None = None,
) -> int:
    """Store `events` generated webhook events in `store` (migrated) as received webhooks are
    stored; returns how many were stored (fewer than `events` only when some were already
    there, e.g. a second fill with the same seed)."""
    plan = plan_for(events, days, rooms_per_day, today or dt.datetime.now(dt.UTC).date())
    stored = 0
    chunk: list[dict[str, Any]] = []
    in_flight: asyncio.Future[list[bool]] | None = None
    for body in generate(events, plan, seed):
        chunk.append(parse_event(json.dumps(body).encode())[1])
        if len(chunk) % 100 == 0:
            await asyncio.sleep(0)  # the commits under way go on while the next rows parse
        if len(chunk) == CONCURRENT_INSERTS:
            stored += sum(await in_flight) if in_flight else 0
            in_flight = asyncio.gather(*(store.events.insert(row) for row in chunk))
            chunk = []
    stored += sum(await in_flight) if in_flight else 0
    return stored + sum(await asyncio.gather(*(store.events.insert(row) for row in chunk)))


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fill", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--events", type=int, required=True, help="how many events to store")
    parser.add_argument("--database-url", required=True, help="SQLAlchemy async URL of the store")
    parser.add_argument("--rooms-per-day", type=int, help="rooms started per day (default: N's)")
    parser.add_argument("--days", type=int, default=30, help="UTC days before today (30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args(argv)
    if args.events < 0 or args.days < 1 or (args.rooms_per_day or 1) < 1:
        parser.error("--events must be >= 0, --days and --rooms-per-day >= 1")
    store = Store(args.database_url)
    try:
        await store.migrate()
        started = time.perf_counter()
        stored = await fill(
            store, args.events, days=args.days, rooms_per_day=args.rooms_per_day, seed=args.seed
        )
        took = time.perf_counter() - started
    finally:
        await store.aclose()
    rate = stored / max(took, 1e-9)
    print(f"stored {stored} of {args.events} events in {took:.1f} s ({rate:.0f}/s)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
