"""The in-memory rate-limit storage: `limits`' own counting, by each strategy, swept of
expired hits from a thread started at most once per `MEMORY_SWEEP_SECONDS` (not one every
10 ms)."""

from __future__ import annotations

import asyncio
import time
from typing import get_args

import pytest
from limits import RateLimitItemPerSecond, parse

import app.http.ratelimits
from app.http.ratelimits import RateLimiter, Strategy, SweptMemoryStorage

STRATEGIES = get_args(Strategy)
#: The strategies that answer exactly within a window (the sliding-window counter weighs
#: the window before in, so its answers right after a window are approximate).
EXACT = ["fixed-window", "moving-window"]


def memory_storage(limiter: RateLimiter) -> SweptMemoryStorage:
    storage = limiter._memory.storage
    assert isinstance(storage, SweptMemoryStorage)
    return storage


def held(storage: SweptMemoryStorage, key: str) -> object:
    """What the storage holds for `key`: the moving window's hits, else a window's count."""
    return storage.events.get(key) or storage.storage.get(key)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_hits_under_load_start_one_sweep_thread_not_one_per_10_ms(strategy):
    limiter = RateLimiter("memory://", strategy)
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
    assert timer.interval == app.http.ratelimits.MEMORY_SWEEP_SECONDS


@pytest.mark.parametrize("strategy", EXACT)
async def test_expired_hits_are_still_swept_out(monkeypatch, strategy):
    monkeypatch.setattr(app.http.ratelimits, "MEMORY_SWEEP_SECONDS", 0.2)
    limiter = RateLimiter("memory://", strategy)
    storage = memory_storage(limiter)
    limit = RateLimitItemPerSecond(2, 1)
    key = limit.key_for("caller")
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]
    assert held(storage, key)
    await asyncio.to_thread(storage.timer.join)  # the sweep the hits scheduled has run
    await asyncio.sleep(1.05)  # the window has ended
    assert held(storage, key)  # a sweep runs only when a hit schedules it
    await limiter.hit(parse("10/second"), "other")
    deadline = time.monotonic() + 5
    while held(storage, key):
        assert time.monotonic() < deadline, "expired hits were never swept out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("strategy", EXACT)
async def test_answers_come_from_the_window_not_from_the_sweep(monkeypatch, strategy):
    monkeypatch.setattr(app.http.ratelimits, "MEMORY_SWEEP_SECONDS", 60.0)  # no sweep runs here
    limiter = RateLimiter("memory://", strategy)
    limit = RateLimitItemPerSecond(2, 1)
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]
    refused = await limiter.hit(limit, "caller")
    assert not refused.allowed and refused.retry_after == 1
    await asyncio.sleep(1.05)  # the window has ended; its hits are still held in memory
    assert held(memory_storage(limiter), limit.key_for("caller"))
    assert [(await limiter.hit(limit, "caller")).allowed for _ in range(3)] == [True, True, False]


async def test_a_fixed_window_holds_one_count_per_caller_whatever_the_limit():
    limiter = RateLimiter("memory://")  # the default: fixed-window
    storage = memory_storage(limiter)
    limit = parse("100000/minute")
    for _ in range(1000):
        assert (await limiter.hit(limit, "backend")).allowed
    assert storage.storage == {limit.key_for("backend"): 1000}
    assert not storage.events  # no entry per hit, as the moving window keeps
