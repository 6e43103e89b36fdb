"""Per-caller rate limits of `/v1/token`, counted by the `limits` library.

`RATE_LIMIT_STRATEGY` names how hits are counted, in `limits`' terms:
- `fixed-window` (the default, as in Flask-Limiter and slowapi): one counter per caller and
  window, the window starting at the caller's first hit; a hit costs the same whatever the
  limit. A caller can get up to twice its limit across the end of one window and the
  start of the next.
- `moving-window`: exact over any window's length of time, but it keeps every hit of the
  window (one list entry per hit, in memory or in Redis), so a hit costs time and memory
  in proportion to the limit: at 100000/minute a caller holds 100,000 entries, and the
  token route served a fifth fewer requests per second than at 100000000/second
  (bench/README.md).
- `sliding-window-counter`: two fixed windows weighted by the time elapsed, an
  approximation of the moving window at a constant cost per hit.

`RATE_LIMIT_STORAGE_URL` names the storage: `memory://` (one process) or
`redis://host:port/db` (shared by every replica). When Redis cannot be reached, requests
are counted in this process's memory instead (the same limit per replica, so a caller gets
at most replicas x the limit) and a warning is logged; Redis is tried again
`RETRY_REMOTE_SECONDS` later. The token endpoint so keeps serving while Redis is down,
instead of failing every user's join.

In memory, hits are counted by `limits`' synchronous storage: it never waits, so it is
called straight from the event loop. Its asynchronous one hands each pass of its expiry
sweep to a thread while holding the key's lock, so under load every request of that key
queues behind the thread (bench/README.md: the token route served a fifth more requests
per second without it). The synchronous one sweeps from a thread too, started anew every
10 ms under load; `SweptMemoryStorage` sweeps once a second instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, strategies
from limits.aio import strategies as aio_strategies
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string

log = logging.getLogger(__name__)

#: How hits are counted: `limits`' strategy names (see the module doc).
Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]

#: Seconds one Redis call may take (connect included) before the fallback counts instead.
STORAGE_TIMEOUT_SECONDS = 1.0
#: Seconds after a Redis failure before Redis is tried again.
RETRY_REMOTE_SECONDS = 5.0
#: Seconds between two sweeps of expired hits out of the in-memory storage.
MEMORY_SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    """`limits`' in-memory storage, its expired hits swept out at most once per
    `MEMORY_SWEEP_SECONDS` instead of every 10 ms.

    `limits` 5.8 starts a new `threading.Timer(0.01)` on a hit whenever the last one has
    finished, so under load a thread is started every 10 ms: each start waits for the new
    thread to run, and each sweep takes the GIL from the event loop. The sweep only frees
    memory: whether a hit is allowed is decided from the hits' own times (`acquire_entry`),
    so sweeping less often changes no answer; an expired hit stays in memory up to
    `MEMORY_SWEEP_SECONDS` longer. The timer is a daemon thread, so a pending sweep never
    holds up the process's exit.

    This replaces `limits`' private `__schedule_expiry` (same body, another interval);
    pyproject.toml pins `limits`, and tests/unit/test_ratelimits.py fails if the hook moves.
    """

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - limits' hook, mangled
        if not self.timer.is_alive():
            sweep = self._MemoryStorage__expire_events  # type: ignore[attr-defined]
            self.timer = threading.Timer(MEMORY_SWEEP_SECONDS, sweep)
            self.timer.daemon = True
            self.timer.start()


@dataclass(frozen=True)
class Verdict:
    """One hit's outcome: `allowed`, and when refused, `retry_after` (whole seconds, >= 1)."""

    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """A limiter counting by `strategy` over `storage_url` (`memory://` or `redis://...`),
    with an in-memory fallback while a remote storage fails (see the module doc)."""

    def __init__(self, storage_url: str, strategy: Strategy = "fixed-window") -> None:
        self._remote: aio_strategies.RateLimiter | None = None
        if not storage_url.startswith("memory://"):
            # limits types its asynchronous table by the abstract base (the synchronous one
            # by its three classes); every class in it is concrete.
            remote = aio_strategies.STRATEGIES[strategy]
            self._remote = remote(  # type: ignore[abstract]
                storage_from_string(
                    f"async+{storage_url}",
                    implementation="redispy",
                    wrap_exceptions=True,
                    socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
                    socket_timeout=STORAGE_TIMEOUT_SECONDS,
                )
            )
        self._memory = strategies.STRATEGIES[strategy](SweptMemoryStorage())
        self._remote_down_until = 0.0

    @property
    def degraded(self) -> bool:
        """True while hits are counted in memory because the remote storage failed."""
        return time.monotonic() < self._remote_down_until

    async def hit(self, limit: RateLimitItem, *identifiers: str) -> Verdict:
        """Count one hit of `identifiers` against `limit`; never raises for a storage
        failure (the in-memory count answers then)."""
        if self._remote is not None and not self.degraded:
            try:
                async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS * 2):
                    if await self._remote.hit(limit, *identifiers):
                        return ALLOWED
                    stats = await self._remote.get_window_stats(limit, *identifiers)
                    return _refused(stats.reset_time)
            except (StorageError, TimeoutError, OSError) as exc:
                log.warning(
                    "rate-limit storage unavailable (%s); counting in memory for %.0f s",
                    exc.__class__.__name__,
                    RETRY_REMOTE_SECONDS,
                )
                self._remote_down_until = time.monotonic() + RETRY_REMOTE_SECONDS
        if self._memory.hit(limit, *identifiers):
            return ALLOWED
        return _refused(self._memory.get_window_stats(limit, *identifiers).reset_time)


#: The verdict of every allowed hit.
ALLOWED = Verdict(allowed=True)


def _refused(reset_time: float) -> Verdict:
    """A refusal whose `retry_after` is the whole seconds until `reset_time` (epoch
    seconds, when the window frees a hit), at least 1."""
    return Verdict(allowed=False, retry_after=max(1, int(reset_time - time.time()) + 1))
