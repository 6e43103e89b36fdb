"""What relaying the stored events to the app's webhook endpoints (`app.events.relay`) costs
one service process (`python -m app`, pinned to core 0) on PostgreSQL
(`app.core.devserver.LocalPostgres`), its LiveKit unused, with a fast local subscriber in
this process (aiohttp, answering 204):

- relay throughput: deliveries/s while the outbox of a burst of N events drains;
- ingestion (signed LiveKit webhooks, 16 at a time): events/s with one endpoint enabled vs
  none (the same endpoint disabled), interleaved rounds, as a ratio;
- latency, one event at a time: p50 from the POST being sent to the subscriber receiving;
- with a dead endpoint beside the live one (it accepts connections and never answers:
  every attempt holds one of its slots for 15 s): the process's RSS before and after a
  burst of N events to both, then the live endpoint's p50 with the dead one enabled vs
  disabled, interleaved rounds.

Run: `.venv/bin/python -m bench.relay [events]` (default 1,000; no LiveKit needed).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from app.core.devserver import LocalPostgres, ManagedProcess, free_port, http_ok
from bench.__main__ import ROOT, SERVER_CPU, pinned, rotated, summary, table
from bench.micro import webhook_authorization, webhook_event

API_KEY = "APIbench"
API_SECRET = secrets.token_urlsafe(32)
SERVICE_KEY = secrets.token_urlsafe(32)
ROUNDS = max(3, int(os.environ.get("BENCH_ROUNDS", "3")))
#: Webhook POSTs in flight at once in a burst.
POSTERS = 16
#: Events sent one at a time for a latency figure.
LATENCY_EVENTS = 100


class Subscriber:
    """The app's endpoint: records when each event id arrives (`time.perf_counter`) and
    answers 204."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        event_id = json.loads(await request.read())["id"]
        now = time.perf_counter()
        self.arrived.setdefault(event_id, now)
        waiter = self.waiting.pop(event_id, None)
        if waiter and not waiter.done():
            waiter.set_result(now)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def received(self, ids: list[str]) -> None:
        """Wait until every event of `ids` has arrived (5 min at most)."""
        loop = asyncio.get_running_loop()
        pending = [
            self.waiting.setdefault(i, loop.create_future()) for i in ids if i not in self.arrived
        ]
        async with asyncio.timeout(300):
            await asyncio.gather(*pending)


async def dead_endpoint() -> tuple[asyncio.Server, str]:
    """A server that accepts connections and never answers (nor closes them)."""

    async def hold(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hook"


def start_service(workdir: Path, database_url: str) -> tuple[ManagedProcess, str]:
    """`python -m app` on `database_url`, pinned to the servers' core."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "LIVEKIT_URL": "http://127.0.0.1:9",
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "DATABASE_URL": database_url,
        "SERVICE_KEYS": json.dumps([{"name": "bench", "key": SERVICE_KEY, "scopes": ["admin"]}]),
        "WEBHOOK_ENDPOINT_ALLOW": "127.0.0.1",
        "RECONCILE_INTERVAL_SECONDS": "0",
    }
    process = ManagedProcess("service", pinned(SERVER_CPU, [sys.executable, "-m", "app"]),
                             workdir, env=env, cwd=ROOT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process.start(http_ok(f"{url}/healthz"), timeout=60)
    return process, url


def rss_mb(process: ManagedProcess) -> float:
    """The process's resident set size (MB), from /proc."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def signed(tag: str, count: int) -> list[tuple[str, bytes, str]]:
    """`count` distinct signed events: (id, body, Authorization)."""
    now = int(time.time())
    events = []
    for n in range(count):
        event_id = f"EV_{tag}_{n:06d}"
        body = webhook_event(event_id, now)
        events.append((event_id, body, webhook_authorization(body, API_KEY, API_SECRET, 7200)))
    return events


async def post(http: aiohttp.ClientSession, url: str, event: tuple[str, bytes, str]) -> None:
    _, body, authorization = event
    headers = {"Authorization": authorization, "Content-Type": "application/webhook+json"}
    async with http.post(f"{url}/v1/webhooks/livekit", data=body, headers=headers) as response:
        response.raise_for_status()


async def burst(
    http: aiohttp.ClientSession, url: str, events: list[tuple[str, bytes, str]]
) -> float:
    """POST every event, `POSTERS` at a time; events/s."""
    queue = list(events)

    async def poster() -> None:
        while queue:
            await post(http, url, queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    return len(events) / (time.perf_counter() - started)


async def latencies(
    http: aiohttp.ClientSession, url: str, subscriber: Subscriber, tag: str
) -> list[float]:
    """One event at a time: ms from sending its POST to the subscriber receiving it."""
    found = []
    for event in signed(tag, LATENCY_EVENTS):
        arrival = asyncio.get_running_loop().create_future()
        subscriber.waiting[event[0]] = arrival
        sent = time.perf_counter()
        await post(http, url, event)
        found.append((await asyncio.wait_for(arrival, 30) - sent) * 1000)
    return found


async def endpoint(http: aiohttp.ClientSession, url: str, target: str) -> str:
    async with http.post(f"{url}/v1/webhooks/endpoints", json={"url": target}) as response:
        response.raise_for_status()
        return str((await response.json())["id"])


async def enable(http: aiohttp.ClientSession, url: str, endpoint_id: str, on: bool) -> None:
    path = f"{url}/v1/webhooks/endpoints/{endpoint_id}"
    async with http.patch(path, json={"enabled": on}) as response:
        response.raise_for_status()


async def measure(url: str, process: ManagedProcess, events: int) -> str:
    subscriber = Subscriber()
    await subscriber.start()
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    ingest: dict[str, list[float]] = {"none": [], "one": []}
    drain: list[float] = []
    p50: dict[str, list[float]] = {"alone": [], "beside": []}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            live = await endpoint(http, url, subscriber.url)
            await burst(http, url, signed("warm", 200))  # warm-up: connections, caches
            await subscriber.received([f"EV_warm_{n:06d}" for n in range(200)])
            for r in range(ROUNDS):
                for mode in rotated(["none", "one"], r):
                    await enable(http, url, live, mode == "one")
                    batch = signed(f"{mode}{r}", events)
                    ingest[mode].append(await burst(http, url, batch))
                    if mode == "one":
                        ids = [event_id for event_id, _, _ in batch]
                        await subscriber.received(ids)
                        times = [subscriber.arrived[i] for i in ids]
                        drain.append(events / (max(times) - min(times)))
            await enable(http, url, live, True)
            rss_before = rss_mb(process)
            dead_server, dead_url = await dead_endpoint()
            try:
                dead = await endpoint(http, url, dead_url)
                batch = signed("dead", events)
                await burst(http, url, batch)
                await subscriber.received([event_id for event_id, _, _ in batch])
                for r in range(ROUNDS):
                    for mode in rotated(["alone", "beside"], r):
                        await enable(http, url, dead, mode == "beside")
                        found = await latencies(http, url, subscriber, f"{mode}{r}")
                        p50[mode].append(statistics.median(found))
                rss_after = rss_mb(process)
            finally:
                dead_server.close()
    finally:
        await subscriber.stop()
    ratio = [one / none for one, none in zip(ingest["one"], ingest["none"], strict=True)]
    p50_ratio = [b / a for b, a in zip(p50["beside"], p50["alone"], strict=True)]
    rows = [
        ["relay throughput (outbox of a burst draining)", f"{summary(drain)} deliveries/s", "", ""],
        [
            "ingestion, one endpoint vs none",
            f"{summary(ingest['one'])} events/s",
            f"{summary(ingest['none'])} events/s",
            summary(ratio, 2),
        ],
        ["p50 POST sent → subscriber received", f"{summary(p50['alone'], 2)} ms", "", ""],
        [
            "the same, a dead endpoint beside (enabled)",
            f"{summary(p50['beside'], 2)} ms",
            f"{summary(p50['alone'], 2)} ms (it disabled)",
            summary(p50_ratio, 2),
        ],
        [
            f"RSS around a burst of {events} events to both",
            f"{rss_after:.1f} MB after",
            f"{rss_before:.1f} MB before",
            f"{rss_after / rss_before:.2f}",
        ],
    ]
    head = (
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {os.cpu_count()} cores, the "
        f"service pinned to core {SERVER_CPU}; {events} events per burst, {POSTERS} POSTs at "
        f"once; {ROUNDS} interleaved rounds, median (min-max); {LATENCY_EVENTS} events "
        "one at a time per p50"
    )
    return head + "\n\n" + table(["relay", "figure", "baseline", "ratio"], rows)


def main(events: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    postgres = LocalPostgres().start()
    try:
        process, url = start_service(workdir, postgres.create_database("bench"))
        try:
            print(asyncio.run(measure(url, process, events)))
        finally:
            process.stop()
    finally:
        postgres.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
