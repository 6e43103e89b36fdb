"""`python -m bench.profile_token [N]`: where one `POST /v1/token` spends its time, in process.

Drives the real app (`create_app`, its lifespan, every middleware and dependency) through
its ASGI callable N times with no network in between, under `cProfile`, and prints the
microseconds per request and the functions with the most time, grouped by where they
live. Minting alone (`SignedAccessToken.sign` for the same grant) is timed beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime as dt
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
import timeit
from collections import defaultdict
from pathlib import Path
from typing import Any

from livekit import api

from app.config.settings import Settings
from app.core.logs import configure_logging
from app.livekit.access_tokens import SignedAccessToken
from app.main import create_app

BODY = json.dumps({"room_name": "bench", "participant_identity": "p"}).encode()


def settings(workdir: Path) -> Settings:
    return Settings(
        app_env="development",
        log_format="json",
        livekit_url="http://127.0.0.1:9",
        livekit_api_key="APIbench",
        livekit_api_secret=secrets.token_urlsafe(32),
        database_url=f"sqlite+aiosqlite:///{workdir / 'events.db'}",
        token_policy={"anonymous": {"rate_limit": "100000000/second"}},
    )


async def drive(app: Any, count: int) -> float:
    """Send `count` token requests through `app`; returns seconds per request."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/token", "raw_path": b"/v1/token", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode())],
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(count):
        await app(dict(scope, state={}), receive, send)
    elapsed = time.perf_counter() - start
    if set(statuses) != {201}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return elapsed / count


def mint_us() -> float:
    def once() -> tuple[str, int]:
        token = SignedAccessToken("APIbench", "s" * 43)
        grants = api.VideoGrants(room_join=True, room="bench")
        token.with_identity("p").with_ttl(dt.timedelta(seconds=600)).with_grants(grants)
        return token.sign()

    n = 5000
    return min(timeit.repeat(once, number=n, repeat=5)) / n * 1e6


def where(filename: str) -> str:
    for marker in ("/app/", "/routers/", "/schemas/"):
        if marker in filename and "site-packages" not in filename:
            return marker.strip("/")
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    return "python" if filename.startswith(("/", "<")) else filename


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        served = settings(Path(tmp))
        configure_logging(served)  # as `python -m app` logs: JSON, the access line at INFO
        app = create_app(served)
        async with app.router.lifespan_context(app):
            await drive(app, 500)  # warm up
            plain = await drive(app, count)
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(app, count)
            profiler.disable()
    print(f"POST /v1/token in process: {plain * 1e6:.0f} µs per request ({count} requests)")
    print(f"minting alone (SignedAccessToken.sign): {mint_us():.1f} µs per token\n")
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        by_package[where(filename)] += tottime
    total = sum(by_package.values())
    print("| own time in | share |\n| --- | --- |")
    for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:10]:
        print(f"| {package} | {seconds / total:.0%} |")
    print("\n| function (cumulative) | share | calls per request |\n| --- | --- | --- |")
    ranked = sorted(entries.items(), key=lambda kv: -kv[1][3])
    shown = 0
    for (filename, line, name), (_cc, calls, _tt, cumtime, _callers) in ranked:
        package = where(filename)
        if (
            package
            not in (
                "app",
                "routers",
                "schemas",
                "fastapi",
                "starlette",
                "limits",
                "jwt",
                "prometheus_client",
                "pydantic",
                "structlog",
            )
            or cumtime / total > 0.9
        ):
            continue
        short = filename.split("site-packages/")[-1].split("/perf/")[-1]
        print(f"| {short}:{line} {name} | {cumtime / total:.0%} | {calls / count:g} |")
        shown += 1
        if shown == 18:
            break


if __name__ == "__main__":
    # The service's log lines go where its stderr goes: /dev/null here (this prints the profile).
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
