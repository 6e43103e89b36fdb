"""Per-caller rate limits of `/v1/token`, counted by the `limits` library (moving window).

`RATE_LIMIT_STORAGE_URL` names the storage: `memory://` (one process) or
`redis://host:port/db` (shared by every replica). When Redis cannot be reached, requests
are counted in this process's memory instead (the same limit per replica, so a caller gets
at most replicas x the limit) and a warning is logged; Redis is tried again
`RETRY_PRIMARY_SECONDS` later. The token endpoint so keeps serving while Redis is down,
instead of failing every user's join.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

log = logging.getLogger(__name__)

#: Seconds one Redis call may take (connect included) before the fallback counts instead.
STORAGE_TIMEOUT_SECONDS = 1.0
#: Seconds after a Redis failure before Redis is tried again.
RETRY_PRIMARY_SECONDS = 5.0


@dataclass(frozen=True)
class Verdict:
    """One hit's outcome: `allowed`, and when refused, `retry_after` (whole seconds, >= 1)."""

    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """A moving-window limiter over `storage_url` (`memory://` or `redis://...`), with an
    in-memory fallback while a remote storage fails (see the module doc)."""

    def __init__(self, storage_url: str) -> None:
        self.storage_url = storage_url
        remote = not storage_url.startswith("memory://")
        options: dict[str, float | str | bool] = {}
        if remote:
            options = {
                "implementation": "redispy",
                "wrap_exceptions": True,
                "socket_connect_timeout": STORAGE_TIMEOUT_SECONDS,
                "socket_timeout": STORAGE_TIMEOUT_SECONDS,
            }
        self._primary = MovingWindowRateLimiter(
            storage_from_string(f"async+{storage_url}", **options)
        )
        self._fallback = MovingWindowRateLimiter(MemoryStorage()) if remote else None
        self._primary_down_until = 0.0

    @property
    def degraded(self) -> bool:
        """True while hits are counted in memory because the remote storage failed."""
        return time.monotonic() < self._primary_down_until

    async def hit(self, limit: RateLimitItem, *identifiers: str) -> Verdict:
        """Count one hit of `identifiers` against `limit`; never raises for a storage
        failure (the fallback answers then)."""
        if self._fallback is None:
            return await _hit(self._primary, limit, identifiers)
        if not self.degraded:
            try:
                async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS * 2):
                    return await _hit(self._primary, limit, identifiers)
            except (StorageError, TimeoutError, OSError) as exc:
                log.warning(
                    "rate-limit storage unavailable (%s); counting in memory for %.0f s",
                    exc.__class__.__name__,
                    RETRY_PRIMARY_SECONDS,
                )
                self._primary_down_until = time.monotonic() + RETRY_PRIMARY_SECONDS
        return await _hit(self._fallback, limit, identifiers)


async def _hit(
    limiter: MovingWindowRateLimiter, limit: RateLimitItem, identifiers: tuple[str, ...]
) -> Verdict:
    if await limiter.hit(limit, *identifiers):
        return Verdict(allowed=True)
    stats = await limiter.get_window_stats(limit, *identifiers)
    return Verdict(allowed=False, retry_after=max(1, int(stats.reset_time - time.time()) + 1))
