"""Rate limits in a real Redis, and what `/v1/token` does when that Redis stops: it keeps
serving, counting in this process's memory (still limited), and says so in the log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from limits.aio import strategies as aio_strategies

import app.http.ratelimits
from tests.components import LocalRedis

UNUSED_LIVEKIT = "http://127.0.0.1:9"


@pytest.fixture
def redis():
    """A Redis of this test's own, which it stops."""
    server = LocalRedis().start()
    yield server
    server.stop()


async def test_token_endpoint_falls_back_to_memory_when_redis_stops(
    app_client, redis, caplog, monkeypatch
):
    monkeypatch.setattr(app.http.ratelimits, "RETRY_REMOTE_SECONDS", 0.5)
    policy = {"anonymous": {"rate_limit": "3/minute"}}
    async with app_client(
        UNUSED_LIVEKIT,
        token_policy=policy,
        rate_limit_storage_url=f"redis://{redis.address}/0",
    ) as http:
        statuses = [(await http.post("/v1/token")).status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]  # counted in Redis
        assert not http.app.state.rate_limiter.degraded

        redis.stop()
        with caplog.at_level(logging.WARNING, logger="app.http.ratelimits"):
            statuses = [(await http.post("/v1/token")).status_code for _ in range(4)]
        # still serving, and still limited: the fallback counts in memory
        assert statuses == [201, 201, 201, 429]
        assert http.app.state.rate_limiter.degraded
        assert any("rate-limit storage unavailable" in r.getMessage() for r in caplog.records)

        # Redis back (empty: it keeps nothing on disk): counting returns to it
        redis.start()
        deadline = time.monotonic() + 60
        while http.app.state.rate_limiter.degraded:
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            await asyncio.sleep(0.2)
        statuses = [(await http.post("/v1/token")).status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        assert not http.app.state.rate_limiter.degraded


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
async def test_replicas_share_one_count_in_redis_by_each_strategy(app_client, redis, strategy):
    settings = {
        "token_policy": {"anonymous": {"rate_limit": "3/minute"}},
        "rate_limit_storage_url": f"redis://{redis.address}/0",
        "rate_limit_strategy": strategy,
    }
    async with (
        app_client(UNUSED_LIVEKIT, **settings) as first,
        app_client(UNUSED_LIVEKIT, **settings) as second,
    ):
        statuses = [(await http.post("/v1/token")).status_code for http in (first, second, first)]
        assert statuses == [201, 201, 201]
        refused = await second.post("/v1/token")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        for http in (first, second):
            limiter = http.app.state.rate_limiter
            assert isinstance(limiter._remote, aio_strategies.STRATEGIES[strategy])
            assert not limiter.degraded
