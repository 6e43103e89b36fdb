"""Readiness checks that cost nothing between probes (for `/readyz`, which anyone may call).

`CachedCheck` runs a probe (LiveKit's cheapest authenticated call, the event store's probe
write) at most once per `max_age_seconds` (READYZ_CACHE_SECONDS), and callers arriving
while a probe runs wait for that probe instead of starting their own (single flight): a
burst of anonymous requests costs one probe, never one per request. A result learnt
otherwise (the store committing a webhook, or failing to) is recorded with `record` and
counts as a fresh probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: A check's result: `"ok"` or `"failed: <why>"`.
CheckResult = str


class CachedCheck:
    """A probe's latest result, reused while younger than the caller's `max_age_seconds`.

    `probe` is an async callable returning `"ok"` or `"failed: <why>"` that never raises;
    `clock` gives seconds (monotonic; tests pass their own).
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[CheckResult]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._result: CheckResult | None = None
        self._checked_at = 0.0
        self._running: asyncio.Task[CheckResult] | None = None

    def record(self, result: CheckResult) -> None:
        """Remember `result` as learnt now (as if a probe had just answered it)."""
        self._result, self._checked_at = result, self._clock()

    async def result(self, max_age_seconds: float) -> CheckResult:
        """The latest result if it is younger than `max_age_seconds` (no I/O); otherwise the
        result of a probe, the one already running if any (`0` always waits for a probe).
        A caller that is cancelled does not cancel the probe others wait for."""
        if self._result is not None and self._clock() - self._checked_at < max_age_seconds:
            return self._result
        running = self._running
        if (
            running is None
            or running.done()
            or running.get_loop() is not asyncio.get_running_loop()
        ):
            running = self._running = asyncio.create_task(self._run())
        return await asyncio.shield(running)

    async def _run(self) -> CheckResult:
        result = await self._probe()
        self.record(result)
        return result
