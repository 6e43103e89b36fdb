"""Session, event and usage reads through the app, each beside its floor, with N stored
events, on SQLite and on PostgreSQL in one run; and ingestion with the projections
maintained beside ingestion without them.

`python -m bench projections [--events N] [--ingest-events M] [--repeat R]
[--backends sqlite,postgresql]` (or `python -m bench.projections ...`): for each backend,
`bench.fill` stores N events (default 1,000,000) over 30 days, then each read goes through
the real app in process (ASGI, `create_app` with its lifespan, a service key with
`sessions:read`), the median of R timed requests after one warm-up:

- a sessions page of 50, one room's sessions (50), one session's details, an events page
  of 100: each on the first page and 1,000 pages deep (walked to with the page tokens the
  API hands out; fewer pages when there are not that many, the table says how deep);
- usage for the 30 days, grouped by day.

Beside each read, its floor: the same number of rows read straight from an index with a
plain SQL select (keyset from the same depth), on the same store. Ingestion: M events
(default 50,000) stored by `bench.fill` into an empty store with the projection writers
registered and without, alternating, 3 rounds; events per second.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.config.settings import Settings
from app.core.devserver import LocalPostgres
from app.main import create_app
from app.store.engine import Store
from app.store.tables import UTCDateTime, webhook_events
from bench.fill import fill, plan_for
from bench.sessions import timed

SERVICE_KEY = secrets.token_urlsafe(32)
DEEP_PAGES = 1000
DAYS = 30
INGEST_ROUNDS = 3
VARIANTS = ("with projections", "without projections")


@dataclass
class Figures:
    """One backend's figures: read name -> (ms, floor ms or None, depth note)."""

    backend: str
    filled_per_s: float = 0.0
    reads: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    ingestion: dict[str, list[float]] = field(default_factory=dict)


def settings_for(database_url: str) -> Settings:
    """The app's settings for a bench store: development, a LiveKit URL nothing listens on
    (no read here calls LiveKit), one admin key, no retention (the fill's days stay)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        app_env="development",
        livekit_url="http://127.0.0.1:9",
        livekit_api_key="APIbench",
        livekit_api_secret=secrets.token_urlsafe(32),
        service_keys=[{"name": "bench", "key": SERVICE_KEY, "scopes": ["admin"]}],
        database_url=database_url,
        webhook_retention_days=0,
    )


async def walk(
    http: httpx.AsyncClient, path: str, params: dict[str, Any], pages: int
) -> tuple[str | None, int]:
    """The page token `pages` pages into `path` (or of its last page), and the page it is."""
    token, page = None, 0
    while page < pages:
        query = {**params, **({"page_token": token} if token else {})}
        body = (await http.get(path, params=query)).raise_for_status().json()
        if body["next_page_token"] is None:
            break
        token, page = body["next_page_token"], page + 1
    return token, page


def keyset_floor(
    store: Store,
    table: sa.Table,
    order: Sequence[sa.ColumnElement[Any]],
    rows: int,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> Callable[[int], Awaitable[Callable[[], Awaitable[Any]]]]:
    """A floor: `rows` rows of `table` in descending `order` (an index's columns) after
    `depth` rows, as a keyset select (the key at that depth found once, untimed)."""

    async def at_depth(depth: int) -> Callable[[], Awaitable[Any]]:
        base = (
            sa.select(sa.literal_column("*"))
            .select_from(table)
            .where(*where)
            .order_by(*(c.desc() for c in order))
        )
        key = None
        if depth:
            async with store.db_session() as session:
                found = (
                    await session.execute(
                        sa.select(*order)
                        .where(*where)
                        .order_by(*(c.desc() for c in order))
                        .offset(depth - 1)
                        .limit(1)
                    )
                ).first()
            key = tuple(found) if found else None
        statement = base.limit(rows)
        if key is not None:
            statement = statement.where(
                sa.tuple_(*order) < sa.tuple_(*(sa.literal(v) for v in key))
            )

        async def read() -> int:
            async with store.db_session() as session:
                return len((await session.execute(statement)).all())

        return read

    return at_depth


async def measure_reads(database_url: str, repeat: int, figures: Figures) -> None:
    """The reads through the app, each beside its floor."""
    app = create_app(settings_for(database_url))
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with app.router.lifespan_context(app):
        store: Store = app.state.store
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers, timeout=600
        ) as http:

            def get(path: str, params: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
                async def call() -> None:
                    (await http.get(path, params=params)).raise_for_status()

                return call

            async def side_by_side(
                name: str, path: str, params: dict[str, Any], rows: int, floor: Any
            ) -> None:
                for deep in (False, True):
                    token, page = await walk(http, path, params, DEEP_PAGES) if deep else (None, 0)
                    query = {**params, **({"page_token": token} if token else {})}
                    ms = await timed(repeat, get(path, query))
                    floor_ms = await timed(repeat, await floor(page * rows)) if floor else None
                    label = f"{name}, page {page + 1}" if deep else f"{name}, first page"
                    figures.reads[label] = (ms, floor_ms)

            events_floor = keyset_floor(store, webhook_events, [webhook_events.c.seq], 100)
            await side_by_side(
                "events page of 100", "/v1/webhooks/events", {"limit": 100}, 100, events_floor
            )
            projected = await has_projections(store)
            room = await busiest_room(store)
            for name, path, params, rows, floor in session_reads(store, room, projected):
                await side_by_side(name, path, params, rows, floor)
            await session_details(http, store, repeat, figures, projected)
            first = dt.datetime.fromtimestamp(
                plan_for(1, DAYS, 1, dt.datetime.now(dt.UTC).date()).first_day, dt.UTC
            )
            usage = {
                "start": first.isoformat(),
                "end": (first + dt.timedelta(days=DAYS)).isoformat(),
                "group_by": "day",
            }
            if (await http.get("/v1/usage", params=usage)).status_code != 404:  # older commits
                ms = await timed(repeat, get("/v1/usage", usage))
                window = (first, first + dt.timedelta(days=DAYS))
                floor_ms = await timed(repeat, usage_floor(store, *window)) if projected else None
                figures.reads[f"usage, {DAYS} days by day"] = (ms, floor_ms)


async def busiest_room(store: Store) -> str:
    """The room name with the most `room_started` events."""
    statement = (
        sa.select(webhook_events.c.room_name)
        .where(webhook_events.c.event == "room_started")
        .group_by(webhook_events.c.room_name)
        .order_by(sa.func.count().desc())
        .limit(1)
    )
    async with store.db_session() as session:
        return str(await session.scalar(statement))


#: The session projections' tables as far as the floors read them (named, not imported, so
#: that the bench also runs on a commit from before them, without these floors).
SESSIONS = sa.table(
    "sessions", sa.column("session_id"), sa.column("room_name"), sa.column("created_at")
)
PARTICIPANTS = sa.table(
    "session_participants",
    sa.column("session_id"),
    sa.column("participant_sid"),
    sa.column("identity"),
    sa.column("joined_at"),
    sa.column("left_at"),
)
EGRESS = sa.table("session_egress", sa.column("session_id"), sa.column("egress_id"))


def usage_floor(store: Store, start: dt.datetime, end: dt.datetime) -> Callable[[], Awaitable[int]]:
    """The floor of usage: every projection row that began in `[start, end)` (participant
    sessions by `joined_at`, sessions by `created_at`, egress and ingress by `started_at`),
    each read by a range on its index, nothing folded."""
    ranges = [
        ("session_participants", "joined_at"),
        ("sessions", "created_at"),
        ("session_egress", "started_at"),
        ("session_ingress", "started_at"),
    ]
    statements = [
        sa.select(sa.literal_column("*"))
        .select_from(sa.table(name))
        .where(sa.column(column, UTCDateTime()) >= start, sa.column(column, UTCDateTime()) < end)
        for name, column in ranges
    ]

    async def read() -> int:
        rows = 0
        async with store.db_session() as session:
            for statement in statements:
                rows += len((await session.execute(statement)).all())
        return rows

    return read


async def has_projections(store: Store) -> bool:
    async with store.db_session() as session:
        names = await session.run_sync(lambda s: sa.inspect(s.connection()).get_table_names())
    return "sessions" in names


def session_reads(
    store: Store, room: str, projected: bool
) -> list[tuple[str, str, dict[str, Any], int, Any]]:
    """The session list reads: (name, path, params, rows per page, floor or None). The
    floors: keyset selects on the indexes `(created_at, session_id)` and
    `(room_name, created_at, session_id)` of the sessions projection."""
    order = [SESSIONS.c.created_at, SESSIONS.c.session_id]
    in_room = [SESSIONS.c.room_name == room]
    return [
        (
            "sessions page of 50",
            "/v1/sessions",
            {"limit": 50},
            50,
            keyset_floor(store, SESSIONS, order, 50) if projected else None,
        ),
        (
            "one room's sessions (50)",
            "/v1/sessions",
            {"limit": 50, "room_name": room},
            50,
            keyset_floor(store, SESSIONS, order, 50, in_room) if projected else None,
        ),
    ]


async def session_details(
    http: httpx.AsyncClient, store: Store, repeat: int, figures: Figures, projected: bool
) -> None:
    """One session's details: the newest session and one 1,000 pages of 50 deep. The floor:
    its row, its participants' rows and its egress rows, each by its index."""
    for depth in (0, DEEP_PAGES * 50):
        statement = (
            sa.select(
                sa.func.json_extract(webhook_events.c.body, "$.room.sid")
                if store.dialect == "sqlite"
                else sa.text("body::json->'room'->>'sid'")
            )
            .select_from(webhook_events)
            .where(webhook_events.c.event == "room_started")
            .order_by(webhook_events.c.created_at.desc())
        )
        async with store.db_session() as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(webhook_events)
                .where(webhook_events.c.event == "room_started")
            )
            position = min(depth, max(int(count or 1) - 1, 0))
            sid = str(await session.scalar(statement.offset(position).limit(1)))
        label = "the newest session" if position == 0 else f"session {position + 1:,} newest first"

        async def call(sid: str = sid) -> None:
            (await http.get(f"/v1/sessions/{sid}")).raise_for_status()

        async def floor(sid: str = sid) -> int:
            rows = 0
            async with store.db_session() as session:
                for table in (SESSIONS, PARTICIPANTS, EGRESS):
                    selected = (
                        sa.select(sa.literal_column("*"))
                        .select_from(table)
                        .where(table.c.session_id == sid)
                    )
                    rows += len((await session.execute(selected)).all())
            return rows

        floor_ms = await timed(repeat, floor) if projected else None
        figures.reads[f"one session's details, {label}"] = (await timed(repeat, call), floor_ms)


async def fill_store(database_url: str, events: int) -> float:
    """Fill a new store with `events` events over `DAYS` days; events per second."""
    store = Store(database_url)
    try:
        await store.migrate()
        started = time.perf_counter()
        await fill(store, events, days=DAYS)
        return events / (time.perf_counter() - started)
    finally:
        await store.aclose()


async def ingestion(new_database: Callable[[str], str], events: int, figures: Figures) -> None:
    """`events` events into an empty store with and without the projection writers,
    alternating, `INGEST_ROUNDS` rounds: events per second."""
    for round_number in range(INGEST_ROUNDS):
        for variant in VARIANTS:
            store = Store(new_database(f"ingest_{round_number}_{variant.split()[0]}"))
            try:
                await store.migrate()
                if variant.startswith("without"):
                    store.events._writers.clear()  # the one switch there is
                started = time.perf_counter()
                await fill(store, events, days=DAYS, seed=round_number + 2)
                figures.ingestion.setdefault(variant, []).append(
                    events / (time.perf_counter() - started)
                )
            finally:
                await store.aclose()


async def run_backend(
    backend: str, events: int, ingest: int, repeat: int, log: Callable[[str], None]
) -> Figures:
    figures = Figures(backend)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-projections-{backend}-"))
    postgres = LocalPostgres().start() if backend == "postgresql" else None
    try:

        def new_database(name: str) -> str:
            if postgres is not None:
                return postgres.create_database(name)
            return f"sqlite+aiosqlite:///{workdir / name}.db"

        url = new_database("bench")
        log(f"{backend}: filling {events} events")
        figures.filled_per_s = await fill_store(url, events)
        log(f"{backend}: filled at {figures.filled_per_s:.0f} events/s; reads")
        await measure_reads(url, repeat, figures)
        log(f"{backend}: ingestion, {ingest} events x {2 * INGEST_ROUNDS}")
        await ingestion(new_database, ingest, figures)
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # a million events take a gigabyte
    return figures


def report(results: list[Figures], events: int, ingest: int, repeat: int) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run of {when} at {commit}: {events:,} events over {DAYS} days (bench.fill), "
        f"median of {repeat} requests through the app in process, ms; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores.",
        "",
    ]
    header = ["read"]
    for figures in results:
        header += [f"{figures.backend} ms", "floor ms", "ratio"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] * len(header)) + " |")
    for name in results[0].reads:
        cells = [name]
        for figures in results:
            ms, floor = figures.reads.get(name, (float("nan"), None))
            cells += [
                f"{ms:.2f}",
                f"{floor:.2f}" if floor is not None else "",
                f"{ms / floor:.1f}" if floor else "",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"| ingestion ({ingest:,} events into an empty store, {INGEST_ROUNDS} rounds) | "
        + " | ".join(f.backend for f in results)
        + " |",
    ]
    lines.append("| --- |" + " --- |" * len(results))
    for variant in VARIANTS:
        cells = [f"events/s {variant}"]
        for figures in results:
            values = figures.ingestion[variant]
            cells.append(f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})")
        lines.append("| " + " | ".join(cells) + " |")
    ratio = ["with / without"]
    for figures in results:
        with_, without = (statistics.median(figures.ingestion[v]) for v in VARIANTS)
        ratio.append(f"{with_ / without:.2f}")
    lines.append("| " + " | ".join(ratio) + " |")
    fills = ", ".join(f"{f.backend} {f.filled_per_s:.0f}/s" for f in results)
    lines += ["", f"The fill of {events:,} events itself: {fills}."]
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench projections", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events stored before the reads"
    )
    parser.add_argument(
        "--ingest-events", type=int, default=50_000, help="events per ingestion round"
    )
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per read (median)")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results = [
        await run_backend(backend, args.events, args.ingest_events, args.repeat, log)
        for backend in args.backends.split(",")
    ]
    print(report(results, args.events, args.ingest_events, args.repeat))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
