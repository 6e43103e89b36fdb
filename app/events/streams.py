"""Live event streams (`GET /v1/webhooks/events/stream`): one reader of the store per
process, fanned out to every open stream, and a cap on open streams per service key.

The follower
    `EventFollower` (one per process, owned by the app's lifespan: `app.state.event_follower`)
    reads new webhook events for all the streams of the process: once per
    `FOLLOW_POLL_SECONDS` (events stored by other replicas) and at once when this process
    stores one (`EventRepository.changed`), however many streams are open; while none is
    open it does not read at all. Each row it reads goes into the queue of every open
    stream whose filters it matches (`Subscription`).

A stream (`EventFollower.stream`)
    1. subscribes: from then on, every row the follower reads past its position is queued;
    2. reads from the store the rows between its own start (`Last-Event-ID`, or now) and
       where the follower stands (`app.events.webhooks.stored_rows_past`), serving them;
    3. serves its queue, skipping any row it has already served.
    Both readings follow the store's follow order up to its high-water mark
    (`EventRepository.follow`), so a late-committing event is never skipped: a row that step
    2 did not return was beyond the high-water mark of that read, hence beyond the
    follower's position when the stream subscribed, and the follower queues it once it
    commits.

A slow stream
    Its queue holds at most `STREAM_QUEUE_ROWS` rows. When the follower finds it full, the
    stream leaves the fan-out (the follower and the other streams never wait for it); it
    serves what its queue holds, then starts again at step 1 from the last event it
    served: it falls back to reading from the store, losing nothing, and holds no more than
    `STREAM_QUEUE_ROWS` rows in memory.

Store failures
    A failed read of the follower ends every open stream cleanly (the client reconnects
    with `Last-Event-ID` and gets 503 until the store is back, then resumes without a
    gap); a failed read of step 2 ends that stream.

Open streams per key
    A service key holds at most STREAM_MAX_PER_KEY open streams in this process (each
    replica counts its own, whatever `RATE_LIMIT_STORAGE_URL` says); one more is `429`
    `too_many_streams` with `Retry-After` (`EventFollower.open_stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from app.core.errors import RateLimited
from app.events.webhooks import (
    FOLLOW_BATCH,
    FOLLOW_POLL_SECONDS,
    row_position,
    stored_event,
    stored_rows_past,
)
from app.store.engine import Store
from app.store.errors import DATABASE_ERRORS
from app.store.events import StreamPosition
from schemas.credentials import STREAM_KEY_FIELDS
from schemas.webhooks import EventFilters, StoredEvent

log = logging.getLogger(__name__)

#: Rows one stream's queue holds before the stream falls back to reading the store.
STREAM_QUEUE_ROWS = 256
#: `Retry-After` (seconds) of a `429 too_many_streams`.
STREAM_RETRY_AFTER_SECONDS = 5


class Subscription:
    """One open stream's share of the follower: the rows matching `columns` (column name ->
    value), queued in follow order, at most `capacity` of them.

    `started` is set once the follower has a position (rows past it are queued from then
    on) or the subscription has ended; `state` is `open`, `overflowed` (its queue was full:
    the follower dropped it) or `ended` (the follower stopped or failed)."""

    def __init__(self, columns: dict[str, str], capacity: int) -> None:
        self.columns = columns
        self.capacity = capacity
        self.started = asyncio.Event()
        self.state: Literal["open", "overflowed", "ended"] = "open"
        self._rows: deque[Any] = deque()
        self._arrived = asyncio.Event()

    def offer(self, row: Any) -> bool:
        """Queue `row` if it matches the filters. False when the queue is full: the
        subscription is `overflowed` and must leave the fan-out."""
        if any(getattr(row, column) != value for column, value in self.columns.items()):
            return True
        if len(self._rows) >= self.capacity:
            self.state = "overflowed"
            self._arrived.set()
            return False
        self._rows.append(row)
        self._arrived.set()
        return True

    @property
    def ended(self) -> bool:
        """Whether the follower ended this subscription (no overflow: it stopped or failed)."""
        return self.state == "ended"

    def end(self) -> None:
        """No more rows will come (the follower stopped or failed)."""
        if self.state == "open":
            self.state = "ended"
        self.started.set()
        self._arrived.set()

    async def rows(self) -> AsyncIterator[Any]:
        """The queued rows, then each new one as it arrives, until the subscription has
        overflowed or ended and its queue is empty."""
        while True:
            while self._rows:
                yield self._rows.popleft()
            if self.state != "open":
                return
            self._arrived.clear()
            await self._arrived.wait()


class EventFollower:
    """The process's one reader of new webhook events for the open event streams, and the
    count of open streams per service key (see the module doc).

    `start()` in the app's lifespan (on its event loop), `await aclose()` at shutdown (every
    open stream ends). `polls` counts the follower's reads of new events (for tests and
    operators: one per `poll_seconds` while streams are open, however many).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_streams_per_key: int,
        poll_seconds: float = FOLLOW_POLL_SECONDS,
        queue_rows: int = STREAM_QUEUE_ROWS,
    ) -> None:
        self.store = store
        self.max_streams_per_key = max_streams_per_key
        self.poll_seconds = poll_seconds
        self.queue_rows = queue_rows
        self.polls = 0
        self._subscriptions: set[Subscription] = set()
        self._position: StreamPosition | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._open: dict[str, int] = {}

    @property
    def subscribers(self) -> int:
        """How many streams the follower feeds now (a slow one leaves until it catches up)."""
        return len(self._subscriptions)

    def start(self) -> None:
        """Start following (idle until a stream subscribes)."""
        self._task = asyncio.create_task(self._follow(), name="event-follower")

    async def aclose(self) -> None:
        """Stop following; every open stream ends."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._end_all()

    @contextlib.contextmanager
    def open_stream(self, caller: str) -> Iterator[None]:
        """Hold one of `caller`'s (a service key name) open streams while the block runs.

        Raises `RateLimited` (429, `too_many_streams`, `Retry-After`) when `caller` already
        holds `max_streams_per_key` in this process."""
        held = self._open.get(caller, 0)
        if held >= self.max_streams_per_key:
            raise RateLimited(
                f"the service key {caller!r} already holds {held} open event streams "
                "(STREAM_MAX_PER_KEY); close one, or retry later",
                retry_after=STREAM_RETRY_AFTER_SECONDS,
                code="too_many_streams",
            )
        self._open[caller] = held + 1
        try:
            yield
        finally:
            left = self._open[caller] - 1
            if left:
                self._open[caller] = left
            else:
                del self._open[caller]

    async def stream(
        self,
        filters: EventFilters,
        after: StreamPosition,
        withheld: frozenset[str] = STREAM_KEY_FIELDS,
    ) -> AsyncIterator[StoredEvent]:
        """The events matching `filters` past `after` (`app.events.webhooks.stream_start`), in
        follow order, each once and without the `withheld` fields (`stored_event`), until
        the caller stops, the store fails or the follower stops (see the module doc)."""
        columns = filters.columns()
        while True:
            with self._subscribed(columns) as subscription:
                await subscription.started.wait()
                if subscription.ended:
                    return
                try:
                    async for row in stored_rows_past(self.store, columns, after):
                        after = row_position(row)
                        yield stored_event(row, withheld)
                except DATABASE_ERRORS as exc:
                    log.warning("event stream ended: store query failed: %s", type(exc).__name__)
                    return
                async for row in subscription.rows():
                    position = row_position(row)
                    if (position.xid, position.seq) > (after.xid, after.seq):
                        after = position
                        yield stored_event(row, withheld)
                if subscription.ended:
                    return
            # overflowed: subscribe again and read from the store where this stream stands

    @contextlib.contextmanager
    def _subscribed(self, columns: dict[str, str]) -> Iterator[Subscription]:
        subscription = Subscription(columns, self.queue_rows)
        self._subscriptions.add(subscription)
        if self._position is not None:
            subscription.started.set()
        self._wake.set()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def _follow(self) -> None:
        """Until cancelled: while streams are open, read new rows and fan them out; a
        failure ends every open stream, and reading goes on at the next interval."""
        while True:
            if not self._subscriptions:
                self._position = None  # found again when a stream subscribes
                self._wake.clear()
                await self._wake.wait()
                continue
            changed = self.store.events.changed()
            read = 0
            try:
                read = await self._read()
            except DATABASE_ERRORS as exc:
                log.warning("event streams ended: store query failed: %s", type(exc).__name__)
                self._end_all()
            except Exception:
                log.exception("event streams ended: the follower failed unexpectedly")
                self._end_all()
            if read < FOLLOW_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=self.poll_seconds)

    async def _read(self) -> int:
        """Read the next rows past the follower's position and queue each in every
        matching subscription; returns how many rows were read."""
        if self._position is None:
            self._position = await self.store.events.stream_position_now()
            for subscription in self._subscriptions:
                subscription.started.set()
        rows = await self.store.events.follow(filters={}, after=self._position, limit=FOLLOW_BATCH)
        self.polls += 1
        for row in rows:
            self._position = row_position(row)
            overflowed = [s for s in self._subscriptions if not s.offer(row)]
            self._subscriptions.difference_update(overflowed)
        return len(rows)

    def _end_all(self) -> None:
        for subscription in self._subscriptions:
            subscription.end()
        self._subscriptions.clear()
