"""The housekeeping runner: periodic purges survive database failures."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import OperationalError

from app.core.errors import UpstreamUnavailable
from app.store.engine import run_periodically


async def test_a_failed_purge_is_retried_at_the_next_interval():
    calls: list[int] = []
    failures = [OperationalError("DELETE", {}, Exception("locked")), UpstreamUnavailable("down")]
    three_runs = asyncio.Event()

    async def job() -> int:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        if len(calls) >= 3:
            three_runs.set()
        return 1

    task = asyncio.create_task(run_periodically("test-purge", 0.01, job))
    await asyncio.wait_for(three_runs.wait(), timeout=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(calls) >= 3 and not failures
