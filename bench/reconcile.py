"""What one reconciliation with LiveKit's state (`app.events.reconcile`) costs with many rooms:
LiveKit calls by method and seconds per run, on a local LiveKit dev server (no Redis, so
its egress and ingress APIs answer an error and both are left out) and a fresh SQLite
store.

Three runs over the same rooms: the store empty (every room is new to it: its start is
derived and its participants asked for), the store in agreement (the steady state), and
after a tenth of the rooms were deleted (their ends derived).
Run: `.venv/bin/python -m bench.reconcile [rooms]` (default 1,000).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from livekit import api

from app.core.devserver import LocalLiveKit, running
from app.events.reconcile import RunReport, reconcile
from app.livekit.gateway import LiveKit
from app.store.engine import Store

#: CreateRoom / DeleteRoom calls in flight at once while setting up.
SETUP_CONCURRENCY = 32


async def _each(names: list[str], call: object) -> None:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(name: str) -> None:
        async with gate:
            await call(name)  # type: ignore[operator]

    await asyncio.gather(*(one(name) for name in names))


def _line(label: str, report: RunReport) -> str:
    calls = ", ".join(f"{method} {count}" for method, count in sorted(report.calls.items()))
    stored = sum(report.stored.values())
    return f"| {label} | {calls} | {stored} | {report.seconds:.2f} |"


async def main(rooms: int) -> None:
    key, secret = "APIbench", secrets.token_urlsafe(32)
    with running(LocalLiveKit(api_key=key, api_secret=secret)) as livekit:
        names = [f"bench-{index:05d}" for index in range(rooms)]
        async with api.LiveKitAPI(livekit.url, key, secret) as setup:

            async def create(name: str) -> None:
                await setup.room.create_room(api.CreateRoomRequest(name=name, empty_timeout=600))

            async def delete(name: str) -> None:
                await setup.room.delete_room(api.DeleteRoomRequest(room=name))

            await _each(names, create)
            store = Store(f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'events.db'}")
            gateway = LiveKit(livekit.url, key, secret, 30)
            try:
                await store.migrate()
                first = await reconcile(store, gateway, lease=None)
                steady = await reconcile(store, gateway, lease=None)
                await _each(names[: rooms // 10], delete)
                ended = await reconcile(store, gateway, lease=None)
            finally:
                await store.aclose()
                await gateway.aclose()
    print(f"{rooms} rooms on a local LiveKit dev server, SQLite store, one process")
    print("| run | LiveKit calls | events derived | seconds |")
    print("| --- | --- | --- | --- |")
    print(_line("store empty", first))
    print(_line("store in agreement", steady))
    print(_line(f"{rooms // 10} rooms deleted", ended))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
