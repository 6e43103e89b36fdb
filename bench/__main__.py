"""`python -m bench`: measure the service side by side with its baselines, in one run.

Machines here are noisy, so every figure is printed next to a baseline measured in the
same run, as a ratio:

1. token endpoint vs a constant-JSON endpoint (`/healthz`) on the same stack: the
   framework ceiling, with `wrk` as the load generator;
2. webhook ingestion with durable writes (signed, distinct events) vs the same client
   posting to `/healthz`;
3. the latency the service adds over calling LiveKit directly with livekit-api
   (`GET /v1/rooms/{room}` vs `ListRooms`), sequential calls.

The service runs as `uvicorn --loop uvloop --http httptools` with one worker (the other
core goes to the load generator).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from livekit import api

from app.devserver import LocalLiveKit, ManagedProcess, free_port, http_ok

API_KEY = "APIbench"
API_SECRET = secrets.token_urlsafe(32)
SERVICE_KEY = secrets.token_urlsafe(32)
DURATION_S = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 32


def start_service(livekit: LocalLiveKit, workdir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    env_file = workdir / "bench.env"
    env_file.write_text(
        "\n".join(
            [
                f"LIVEKIT_URL={livekit.url}",
                f"LIVEKIT_API_KEY={API_KEY}",
                f"LIVEKIT_API_SECRET={API_SECRET}",
                f"DATABASE_URL=sqlite+aiosqlite:///{workdir / 'events.db'}",
                f'SERVICE_KEYS=[{{"name": "bench", "key": "{SERVICE_KEY}", "scopes": ["admin"]}}]',
                'TOKEN_POLICY={"anonymous": {"rate_limit": "100000000/second"}}',
            ]
        )
    )
    args = [
        sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--no-access-log", "--env-file", str(env_file),
    ]  # fmt: skip
    process = ManagedProcess("service", args, workdir)
    url = f"http://127.0.0.1:{port}"
    process.start(http_ok(f"{url}/healthz"))
    return process, url


def wrk(url: str, workdir: Path, *, body: dict | None = None) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of `wrk` against `url` (POST when `body`)."""
    script = workdir / "wrk.lua"
    if body is None:
        script.write_text("")
    else:
        payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = "{payload}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99")}


def signed_event(event_id: str) -> tuple[bytes, str]:
    body = json.dumps(
        {"event": "room_started", "id": event_id, "createdAt": int(time.time()),
         "room": {"name": "bench-room", "sid": "RM_bench"}}
    ).encode()  # fmt: skip
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(API_KEY, API_SECRET).with_sha256(digest).to_jwt()
    return body, token


async def send_all(method: str, url: str, requests: list[tuple[bytes, dict[str, str]]]) -> float:
    """Send every request with CONNECTIONS in flight; returns requests per second."""
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                response = await client.request(method, url, content=body, headers=headers)
                if response.status_code >= 300:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return len(requests) / (time.perf_counter() - start)


async def webhook_ingestion(service: str, count: int = 3000) -> dict[str, float]:
    events = [signed_event(f"EV_{uuid.uuid4().hex}") for _ in range(count)]
    webhook = [
        (body, {"Authorization": token, "Content-Type": "application/webhook+json"})
        for body, token in events
    ]
    stored = await send_all("POST", f"{service}/v1/webhooks/livekit", webhook)
    baseline = await send_all("GET", f"{service}/healthz", [(b"", {})] * count)
    return {"events_per_s": stored, "baseline_per_s": baseline}


async def added_latency(service: str, livekit: LocalLiveKit, calls: int = 300) -> dict[str, float]:
    room = "bench-latency"
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk, httpx.AsyncClient() as http:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        direct, via = [], []
        for _ in range(calls):
            start = time.perf_counter()
            await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            response = await http.get(f"{service}/v1/rooms/{room}", headers=headers)
            via.append(time.perf_counter() - start)
            response.raise_for_status()
    return {
        "direct_p50_ms": statistics.median(direct) * 1000,
        "service_p50_ms": statistics.median(via) * 1000,
        "direct_p99_ms": statistics.quantiles(direct, n=100)[98] * 1000,
        "service_p99_ms": statistics.quantiles(via, n=100)[98] * 1000,
    }


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: `make bench` installs it (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    livekit = LocalLiveKit(api_key=API_KEY, api_secret=API_SECRET, workdir=workdir).start()
    service, url = start_service(livekit, workdir)
    try:
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
            f"wrk -c{CONNECTIONS} -d{DURATION_S}s, 1 uvicorn worker (uvloop, httptools)\n"
        )
        healthz = wrk(f"{url}/healthz", workdir)
        join = {"room_name": "bench", "participant_identity": "p"}
        token = wrk(f"{url}/v1/token", workdir, body=join)
        rows = [
            [name, f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
             f"{r['rps'] / healthz['rps']:.2f}"]
            for name, r in (("GET /healthz (constant JSON)", healthz), ("POST /v1/token", token))
        ]  # fmt: skip
        print(table(["endpoint", "req/s", "p50 ms", "p99 ms", "vs constant JSON"], rows))

        ingest = asyncio.run(webhook_ingestion(url))
        ratio = ingest["events_per_s"] / ingest["baseline_per_s"]
        print(
            f"\nwebhook ingestion (signed, distinct events, durable writes): "
            f"{ingest['events_per_s']:.0f} events/s; same client on GET /healthz: "
            f"{ingest['baseline_per_s']:.0f} req/s; ratio {ratio:.2f}\n"
        )

        lat = asyncio.run(added_latency(url, livekit))
        direct = [f"{lat['direct_p50_ms']:.2f}", f"{lat['direct_p99_ms']:.2f}"]
        via = [f"{lat['service_p50_ms']:.2f}", f"{lat['service_p99_ms']:.2f}"]
        rows = [
            ["livekit-api ListRooms, direct", *direct],
            ["GET /v1/rooms/{room}", *via],
            ["ratio", f"{lat['service_p50_ms'] / lat['direct_p50_ms']:.2f}",
             f"{lat['service_p99_ms'] / lat['direct_p99_ms']:.2f}"],
        ]  # fmt: skip
        print(table(["one room, sequential calls", "p50 ms", "p99 ms"], rows))
    finally:
        service.stop()
        livekit.stop()


if __name__ == "__main__":
    main()
