"""The in-memory rate-limit storage: `limits`' own counting, swept of expired hits from a
thread started at most once per `MEMORY_SWEEP_SECONDS` (not one every 10 ms)."""

from __future__ import annotations

import asyncio
import time

from limits import RateLimitItemPerSecond, parse

import app.ratelimits
from app.ratelimits import RateLimiter, SweptMemoryStorage


def memory_storage(limiter: RateLimiter) -> SweptMemoryStorage:
    storage = limiter._memory.storage
    assert isinstance(storage, SweptMemoryStorage)
    return storage


async def test_hits_under_load_start_one_sweep_thread_not_one_per_10_ms():
    limiter = RateLimiter("memory://")
    storage = memory_storage(limiter)
    limit = parse("100000000/second")
    await asyncio.to_thread(storage.timer.join)  # the sweep `limits` starts with the storage
    timers = set()
    started = time.monotonic()
    while time.monotonic() - started < 0.3:  # limits 5.8 alone starts a thread per 10 ms
        assert (await limiter.hit(limit, "load")).allowed
        timers.add(storage.timer)
    assert len(timers) == 1
    (timer,) = timers
    assert timer.daemon  # a pending sweep does not hold up the process's exit
    assert timer.interval == app.ratelimits.MEMORY_SWEEP_SECONDS


async def test_expired_hits_are_still_swept_out(monkeypatch):
    monkeypatch.setattr(app.ratelimits, "MEMORY_SWEEP_SECONDS", 0.2)
    limiter = RateLimiter("memory://")
    storage = memory_storage(limiter)
    limit = RateLimitItemPerSecond(2, 1)
    key = limit.key_for("caller")
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]
    assert len(storage.events[key]) == 2
    await asyncio.to_thread(storage.timer.join)  # the sweep the hits scheduled has run
    await asyncio.sleep(1.05)  # both hits have expired
    assert len(storage.events[key]) == 2  # a sweep runs only when a hit schedules it
    await limiter.hit(parse("10/second"), "other")
    deadline = time.monotonic() + 5
    while storage.events[key]:
        assert time.monotonic() < deadline, "expired hits were never swept out"
        await asyncio.sleep(0.05)


async def test_answers_come_from_the_moving_window_not_from_the_sweep(monkeypatch):
    monkeypatch.setattr(app.ratelimits, "MEMORY_SWEEP_SECONDS", 60.0)  # no sweep runs here
    limiter = RateLimiter("memory://")
    limit = RateLimitItemPerSecond(2, 1)
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]
    refused = await limiter.hit(limit, "caller")
    assert not refused.allowed and refused.retry_after == 1
    await asyncio.sleep(1.05)  # the window has moved past both hits, still held in memory
    assert len(memory_storage(limiter).events[limit.key_for("caller")]) == 2
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]
