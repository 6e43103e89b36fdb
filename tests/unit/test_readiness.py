"""`CachedCheck`: a probe's result reused within the caller's window, one probe shared by
concurrent callers, and results learnt otherwise counted as fresh."""

from __future__ import annotations

import asyncio

from app.core.readiness import CachedCheck


class Probe:
    """A probe answering `result` once `release` is set, counting its runs; `now` is the
    clock the check reads."""

    def __init__(self) -> None:
        self.runs = 0
        self.result = "ok"
        self.release = asyncio.Event()
        self.release.set()
        self.now = 100.0

    async def __call__(self) -> str:
        self.runs += 1
        await self.release.wait()
        return self.result

    def clock(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_probe():
    probe = Probe()
    probe.release.clear()
    check = CachedCheck(probe, clock=probe.clock)
    waiting = [asyncio.create_task(check.result(2.0)) for _ in range(100)]
    await asyncio.sleep(0)
    probe.release.set()
    assert await asyncio.gather(*waiting) == ["ok"] * 100
    assert probe.runs == 1


async def test_a_result_is_reused_within_the_window_and_probed_again_after_it():
    probe = Probe()
    check = CachedCheck(probe, clock=probe.clock)
    assert await check.result(2.0) == "ok"
    probe.result = "failed: OSError"
    probe.now += 1.9
    assert await check.result(2.0) == "ok"
    assert probe.runs == 1
    probe.now += 0.1
    assert await check.result(2.0) == "failed: OSError"
    assert probe.runs == 2
    assert await check.result(0) == "failed: OSError"  # no window: always a probe
    assert probe.runs == 3


async def test_a_recorded_result_counts_as_a_fresh_probe():
    probe = Probe()
    check = CachedCheck(probe, clock=probe.clock)
    check.record("failed: OperationalError")
    assert await check.result(2.0) == "failed: OperationalError"
    assert probe.runs == 0
    probe.now += 5
    check.record("ok")
    assert await check.result(2.0) == "ok"
    assert probe.runs == 0


async def test_a_caller_that_gives_up_does_not_cancel_the_probe_of_the_others():
    probe = Probe()
    probe.release.clear()
    check = CachedCheck(probe, clock=probe.clock)
    impatient = asyncio.create_task(check.result(2.0))
    patient = asyncio.create_task(check.result(2.0))
    await asyncio.sleep(0)
    impatient.cancel()
    probe.release.set()
    assert await patient == "ok"
    assert probe.runs == 1
