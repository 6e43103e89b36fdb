"""`python -m bench` (`make bench`): each goal's figure beside its baseline, measured side by
side in one run, as a ratio; medians over interleaved rounds, with min-max.

Servers run one process each, pinned to core 0 (`taskset`); the load generator (`wrk`,
and the latency client) runs on core 1. Every round visits every server in turn (the order
rotates), so load on the shared machine falls on all of them alike.

1. `POST /v1/token` (policy, rate limit, metrics, request id and access log all on) vs
   express + livekit-server-sdk (bench/peers/node-token) vs a same-stack FastAPI route
   with a validated body and a constant reply (bench/ceiling.py): `wrk -c64`.
2. Minting one join token on one core: `SignedAccessToken.sign` vs livekit-server-sdk's
   `toJwt` (Node) and livekit-api's `AccessToken.to_jwt`.
3. Webhook verify + parse of a 1.2 KB event vs livekit-api's `WebhookReceiver`.
4. Webhook ingestion, durable before the 200, on SQLite and on PostgreSQL: `wrk` with a
   Lua script cycling through pre-signed distinct events; the same script against the
   ceiling app shows the generator's own ceiling.
5. (no figure: the stream's high-water mark is proved by tests/integration/
   test_stream_commit_order.py)
6. `GET /v1/rooms/{room}` vs livekit-api's `ListRooms` straight to LiveKit, sequential.

`python -m bench projections [...]` runs bench/projections.py instead: session, event and
usage reads with a million stored events, each beside its floor, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from livekit import api

from app.core.devserver import LocalLiveKit, LocalPostgres, ManagedProcess, free_port, http_ok
from bench.micro import webhook_authorization, webhook_event

ROOT = Path(__file__).resolve().parent.parent
NODE_PEER = ROOT / "bench" / "peers" / "node-token"
API_KEY = "APIbench"
API_SECRET = secrets.token_urlsafe(32)
SERVICE_KEY = secrets.token_urlsafe(32)
DURATION_S = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = max(3, int(os.environ.get("BENCH_ROUNDS", "3")))
CONNECTIONS = 64
SERVER_CPU, LOAD_CPU = "0", "1"
#: Distinct events prepared per ingestion round: more than a round can send.
EVENTS_PER_ROUND = int(os.environ.get("BENCH_EVENTS", str(DURATION_S * 4000)))
JOIN = {"room_name": "bench", "participant_identity": "p"}

TOKEN_LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
#: Cycles through pre-signed events, one line each: "<Authorization>\\t<body>".
WEBHOOK_LUA = """local requests = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\\t", 1, true)
    local headers = {["Content-Type"] = "application/webhook+json",
                     ["Authorization"] = line:sub(1, tab - 1)}
    requests[#requests + 1] = wrk.format("POST", "/v1/webhooks/livekit", headers,
                                         line:sub(tab + 1))
  end
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"""


def pinned(cpu: str, args: list[str]) -> list[str]:
    """`args` under `taskset -c cpu` when there are two cores or more."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cpu, *args]
    return args


def node_version() -> str:
    """`node --version` without its `v` (e.g. `18.19.0`)."""
    run = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    return run.stdout.strip().removeprefix("v")


def uvicorn_args(app: str, port: int, *extra: str) -> list[str]:
    return pinned(SERVER_CPU, [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", *extra,
    ])  # fmt: skip


class Servers:
    """Every server of the run, started once and stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[Any] = []
        self.urls: dict[str, str] = {}

    def start(self, name: str, args: list[str], port: int, health: str, **kw: Any) -> str:
        process = ManagedProcess(name, args, self.workdir, **kw)
        url = f"http://127.0.0.1:{port}"
        process.start(http_ok(f"{url}{health}"), timeout=60)
        self.processes.append(process)
        self.urls[name] = url
        return url

    def service(self, name: str, livekit: LocalLiveKit, database_url: str) -> str:
        """The service as `python -m app` runs it (uvicorn on uvloop and httptools, its
        JSON access line per request at LOG_LEVEL=info, request ids, metrics, the token
        policy and its rate limit), its log in the work directory."""
        port = free_port()
        env = {
            **os.environ,
            "APP_ENV": "development",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "HTTP_PARSER": "httptools",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "DATABASE_URL": database_url,
            "SERVICE_KEYS": json.dumps(
                [{"name": "bench", "key": SERVICE_KEY, "scopes": ["admin"]}]
            ),
            "TOKEN_POLICY": json.dumps({"anonymous": {"rate_limit": "100000000/second"}}),
        }
        args = pinned(SERVER_CPU, [sys.executable, "-m", "app"])
        return self.start(name, args, port, "/healthz", env=env, cwd=ROOT)

    def node_peer(self, livekit: LocalLiveKit) -> str:
        port = free_port()
        env = {
            **os.environ,
            "PORT": str(port),
            "LIVEKIT_URL": livekit.url.replace("http://", "ws://"),
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "NODE_ENV": "production",
        }
        args = pinned(SERVER_CPU, ["node", "server.js"])
        return self.start("node-peer", args, port, "/healthz", env=env, cwd=NODE_PEER)

    def ceiling(self) -> str:
        port = free_port()
        args = uvicorn_args("bench.ceiling:app", port, "--log-level", "warning")
        return self.start("ceiling", args, port, "/docs", cwd=ROOT)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def npm_ci() -> None:
    """Install the Node peer's locked dependencies (git-ignored node_modules)."""
    if shutil.which("npm") is None:
        sys.exit("npm not found: the Node peer needs Node.js 20+ and npm")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_PEER, check=True
    )


def wrk(url: str, script: Path, *script_args: str) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and the request count of one `wrk` run."""
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", "-s", str(script)]
    args += [url, *(["--", *script_args] if script_args else [])]
    out = subprocess.run(pinned(LOAD_CPU, args), capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


def rotated(items: list[Any], round_number: int) -> list[Any]:
    shift = round_number % len(items)
    return items[shift:] + items[:shift]


def signed_events(path: Path, count: int, tag: str) -> Path:
    """`count` distinct signed ~1.2 KB events for the webhook Lua script."""
    now = int(time.time())
    with path.open("w") as out:
        for i in range(count):
            body = webhook_event(f"EV_{tag}_{i:07d}_{uuid.uuid4().hex[:8]}", now)
            authorization = webhook_authorization(body, API_KEY, API_SECRET, ttl_seconds=7200)
            out.write(f"{authorization}\t{body.decode()}\n")
    return path


def micro(workdir: Path) -> dict[str, float]:
    """bench/micro.py and the Node SDK's toJwt, each pinned to the servers' core."""
    ours = subprocess.run(
        pinned(SERVER_CPU, [sys.executable, "-m", "bench.micro"]),
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    node = subprocess.run(
        pinned(SERVER_CPU, ["node", "mint.js", "20000"]),
        cwd=NODE_PEER, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {**json.loads(ours), "mint_node_us": json.loads(node)["us_per_token"]}


async def room_latency(service: str, livekit: LocalLiveKit, calls: int = 300) -> dict[str, float]:
    """p50 (ms) of `ListRooms` straight to LiveKit and of `GET /v1/rooms/{room}`, alternating,
    both over aiohttp keep-alive connections (livekit-api's own HTTP client), so the
    difference is what the service adds, not a difference between client libraries."""
    room = "bench-latency"
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with (
        api.LiveKitAPI(livekit.url, API_KEY, API_SECRET) as lk,
        aiohttp.ClientSession() as http,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        direct, via = [], []
        for i in range(calls + 20):  # the first 20 of each warm up connections and caches
            start = time.perf_counter()
            await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
            elapsed_direct = time.perf_counter() - start
            start = time.perf_counter()
            async with http.get(f"{service}/v1/rooms/{room}", headers=headers) as response:
                await response.read()
                elapsed_via = time.perf_counter() - start
                response.raise_for_status()
            if i >= 20:
                direct.append(elapsed_direct)
                via.append(elapsed_via)
    return {
        "direct_p50_ms": statistics.median(direct) * 1000,
        "service_p50_ms": statistics.median(via) * 1000,
    }


def summary(values: list[float], digits: int = 0) -> str:
    """`median (min-max)`."""
    fmt = f"{{:.{digits}f}}"
    median = fmt.format(statistics.median(values))
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def med(values: list[float]) -> float:
    return statistics.median(values)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def start_postgres(workdir: Path) -> tuple[LocalPostgres, str]:
    """A throwaway PostgreSQL cluster (`app.core.devserver.LocalPostgres`) and the URL of its
    empty database `bench`."""
    server = LocalPostgres().start()
    return server, server.create_database("bench")


def run(workdir: Path, log: Callable[[str], None]) -> str:
    npm_ci()
    livekit = LocalLiveKit(api_key=API_KEY, api_secret=API_SECRET, workdir=workdir).start()
    postgres, postgres_url = start_postgres(workdir)
    servers = Servers(workdir)
    try:
        sqlite_url = f"sqlite+aiosqlite:///{workdir / 'events.db'}"
        service = servers.service("service", livekit, sqlite_url)
        service_pg = servers.service("service-postgres", livekit, postgres_url)
        node = servers.node_peer(livekit)
        ceiling = servers.ceiling()

        token_lua = workdir / "token.lua"
        token_lua.write_text(TOKEN_LUA.format(body=json.dumps(JOIN)))
        webhook_lua = workdir / "webhook.lua"
        webhook_lua.write_text(WEBHOOK_LUA)

        token: dict[str, list[dict[str, float]]] = {"service": [], "node": [], "ceiling": []}
        targets = {"service": service, "node": node, "ceiling": ceiling}
        ingest: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": [], "gen": []}
        ingest_targets = {"sqlite": service, "postgresql": service_pg, "gen": ceiling}
        micro_runs: list[dict[str, float]] = []
        latency: list[dict[str, float]] = []
        for r in range(ROUNDS):
            log(f"round {r + 1}/{ROUNDS}: token route")
            for name in rotated(list(targets), r):
                token[name].append(wrk(f"{targets[name]}/v1/token", token_lua))
            log(f"round {r + 1}/{ROUNDS}: webhook ingestion")
            for name in rotated(list(ingest_targets), r):
                events = signed_events(workdir / "events.tsv", EVENTS_PER_ROUND, f"{name}{r}")
                result = wrk(ingest_targets[name], webhook_lua, str(events))
                if name != "gen" and result["requests"] > EVENTS_PER_ROUND:
                    log(f"  {name}: sent more than the {EVENTS_PER_ROUND} distinct events")
                ingest[name].append(result)
            log(f"round {r + 1}/{ROUNDS}: minting, webhook parsing, room latency")
            micro_runs.append(micro(workdir))
            latency.append(asyncio.run(room_latency(service, livekit)))
        return report(token, ingest, micro_runs, latency)
    finally:
        servers.stop()
        postgres.stop()
        livekit.stop()


def report(
    token: dict[str, list[dict[str, float]]],
    ingest: dict[str, list[dict[str, float]]],
    micro_runs: list[dict[str, float]],
    latency: list[dict[str, float]],
) -> str:
    def rps(name: str) -> list[float]:
        return [run["rps"] for run in token[name]]

    def p99(name: str) -> list[float]:
        return [run["p99_ms"] for run in token[name]]

    def per_round(f: Callable[[int], float]) -> list[float]:
        return [f(i) for i in range(ROUNDS)]

    vs_node = per_round(lambda i: token["service"][i]["rps"] / token["node"][i]["rps"])
    vs_ceiling = per_round(lambda i: token["service"][i]["rps"] / token["ceiling"][i]["rps"])
    m = {key: [run[key] for run in micro_runs] for key in micro_runs[0]}
    added = [run["service_p50_ms"] - run["direct_p50_ms"] for run in latency]
    ing = {name: [run["rps"] for run in runs] for name, runs in ingest.items()}

    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {os.cpu_count()} cores, "
        f"servers pinned to core {SERVER_CPU}, load on core {LOAD_CPU}; "
        f"wrk -t1 -c{CONNECTIONS} -d{DURATION_S}s; {ROUNDS} interleaved rounds, "
        f"median (min-max); Python {platform.python_version()} "
        f"({os.path.realpath(sys.executable)}), Node {node_version()}",
        "",
        table(
            ["POST /v1/token", "req/s", "p50 ms", "p99 ms"],
            [
                [
                    label,
                    summary(rps(name)),
                    summary([run["p50_ms"] for run in token[name]], 2),
                    summary(p99(name), 2),
                ]
                for label, name in (
                    ("this service (everything on)", "service"),
                    ("express + livekit-server-sdk", "node"),
                    ("FastAPI constant reply (ceiling)", "ceiling"),
                )
            ],
        ),
        "",
        table(
            ["goal", "figure", "baseline", "ratio", "target", ""],
            [
                [
                    "1 token route vs Node peer",
                    f"{summary(rps('service'))} req/s",
                    f"{summary(rps('node'))} req/s",
                    summary(vs_node, 2),
                    "≥ 1.0",
                    verdict(med(vs_node) >= 1.0),
                ],
                [
                    "1 token route vs same-stack ceiling",
                    f"{summary(rps('service'))} req/s",
                    f"{summary(rps('ceiling'))} req/s",
                    summary(vs_ceiling, 2),
                    "≥ 0.7",
                    verdict(med(vs_ceiling) >= 0.7),
                ],
                [
                    "1 token route p99 vs Node peer",
                    f"{summary(p99('service'), 2)} ms",
                    f"{summary(p99('node'), 2)} ms",
                    summary(per_round(lambda i: p99("service")[i] / p99("node")[i]), 2),
                    "≤ 1.0",
                    verdict(med(p99("service")) <= med(p99("node"))),
                ],
                [
                    "2 minting, µs per token",
                    f"{summary(m['mint_ours_us'], 1)} µs",
                    f"Node toJwt {summary(m['mint_node_us'], 1)} µs; "
                    f"livekit-api {summary(m['mint_livekit_api_us'], 1)} µs",
                    summary(per_round(lambda i: m["mint_ours_us"][i] / m["mint_node_us"][i]), 2)
                    + " of Node",
                    "≤ 20 µs, < Node",
                    verdict(
                        med(m["mint_ours_us"]) <= 20
                        and med(m["mint_ours_us"]) < med(m["mint_node_us"])
                    ),
                ],
                [
                    f"3 webhook verify + parse ({int(m['webhook_bytes'][0])} B)",
                    f"{summary(m['webhook_ours_us'], 0)} µs "
                    f"(verify alone {summary(m['webhook_verify_only_us'], 0)})",
                    f"WebhookReceiver {summary(m['webhook_receiver_us'], 0)} µs",
                    summary(
                        per_round(lambda i: m["webhook_ours_us"][i] / m["webhook_receiver_us"][i]),
                        2,
                    ),
                    "≤ 100 µs",
                    verdict(med(m["webhook_ours_us"]) <= 100),
                ],
                *(
                    [
                        f"4 ingestion, {label}",
                        f"{summary(ing[store])} events/s",
                        f"generator ceiling {summary(ing['gen'])} req/s",
                        summary(
                            [run / gen for run, gen in zip(ing[store], ing["gen"], strict=True)], 2
                        ),
                        "≥ 1000/s",
                        verdict(med(ing[store]) >= 1000),
                    ]
                    for store, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
                ),
                [
                    "6 GET /v1/rooms/{room}, added p50",
                    f"{summary(added, 2)} ms "
                    f"({summary([r['service_p50_ms'] for r in latency], 2)} ms in all)",
                    f"ListRooms direct {summary([r['direct_p50_ms'] for r in latency], 2)} ms",
                    summary(
                        per_round(
                            lambda i: latency[i]["service_p50_ms"] / latency[i]["direct_p50_ms"]
                        ),
                        2,
                    ),
                    "≤ 1 ms added",
                    verdict(med(added) <= 1.0),
                ],
            ],
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["projections"]:  # session, event and usage reads (bench/projections.py)
        from bench import projections

        asyncio.run(projections.main(sys.argv[2:]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: `make bench` installs it (Debian package wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = run(workdir, log)
    log("profile of the token route")
    profile = subprocess.run(
        pinned(SERVER_CPU, [sys.executable, "-m", "bench.profile_token", "3000"]),
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result += "\n\nWhere the token route's time goes (bench/profile_token.py, cProfile):\n\n"
    result += profile
    print(result)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "last.md").write_text(result + "\n")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
