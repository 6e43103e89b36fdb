"""The service's durable state: the webhook event store (and, beside it, any other table the
service keeps, such as idempotency keys), with SQLAlchemy's asyncio engine.

Databases
    `DATABASE_URL` is an SQLAlchemy async URL: `sqlite+aiosqlite:///./data/events.db` by
    default (its directory is created; WAL journal, `synchronous=FULL`, so a commit is on
    disk before it returns), or `postgresql+asyncpg://user:pass@host/db` for several
    replicas sharing one database.

Schema
    Every table is declared on the one `metadata` below and created by alembic migrations
    in `migrations/versions/` (revision `0001` creates `webhook_events` and `store_probe`).
    `Store.migrate()` upgrades to the newest revision at start-up; on PostgreSQL it holds an
    advisory lock meanwhile, so replicas starting together migrate once.

Adding a table (e.g. idempotency keys)
    1. declare it with `sa.Table("idempotency_keys", metadata, ...)` in your own module and
       import that module in `migrations/env.py` (for `alembic revision --autogenerate`);
    2. add `migrations/versions/0002_<name>.py` with `down_revision = "0001"`;
    3. in a request, get the `Store` with `app.deps.StoreDep` and use
       `async with store.sessions.begin() as session: ...` (commits on exit);
       `store.insert(table)` is the dialect's INSERT, which has
       `.on_conflict_do_nothing(index_elements=[...])` / `.on_conflict_do_update(...)` on both
       SQLite and PostgreSQL, so concurrent writers across replicas never need a read first.

Errors and outages
    Database failures surface as `sqlalchemy.exc.SQLAlchemyError`, or from the driver as
    `OSError` (connection refused), `TimeoutError` or asyncpg's own errors (the server is
    starting up) when a connection is being opened: `DATABASE_ERRORS` lists them. A request
    turns them into `app.errors.UpstreamUnavailable` (503, code `event_store_unavailable`)
    by running its queries inside `with database_errors():`. Background loops
    (`run_periodically`) log every failure and carry on. The engine hides the statement's
    parameters from its errors (`hide_parameters`): a webhook body or a stored response is
    a parameter, and an error is logged with its text.
    Opening a connection gives up after `connect_timeout_seconds` (and waiting for a pooled
    one as long), and a PostgreSQL statement after `command_timeout_seconds`, so a database
    that is down or unreachable answers 503 within seconds. Pooled connections are checked
    before use (`pool_pre_ping`), so after the database is back the next request gets a
    fresh connection: the service heals without a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError

try:
    from asyncpg import InterfaceError as _AsyncpgInterfaceError
    from asyncpg import PostgresError as _AsyncpgError
except ImportError:  # pragma: no cover - asyncpg is a dependency; SQLite-only installs work

    class _AsyncpgError(Exception):  # type: ignore[no-redef]
        pass

    class _AsyncpgInterfaceError(Exception):  # type: ignore[no-redef]
        pass


from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from app.errors import UpstreamUnavailable
from app.readiness import CachedCheck

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG: webhook bodies (LiveKit's
# egress events carry upload credentials) and stored responses must never reach a log line.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: `pg_advisory_lock` key of the migrations (an arbitrary 64-bit constant).
MIGRATION_LOCK_KEY = 0x4C4B_4350_0001

#: On PostgreSQL, the writing transaction's id (64-bit, never wraps), as a column default.
CURRENT_XID_SQL = "(pg_current_xact_id()::text::bigint)"
#: On PostgreSQL, the oldest transaction id still running as this statement's snapshot was
#: taken: every transaction below it has committed or aborted.
SNAPSHOT_XMIN_SQL = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"

#: Most webhook events committed in one transaction (see `Store.insert_event`).
EVENT_BATCH_LIMIT = 200

#: Seconds the readiness probe's write may take before the store counts as not writable.
READINESS_TIMEOUT_SECONDS = 5.0

#: SQLite waits this long (seconds) for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30

#: What a database failure may be raised as: SQLAlchemy's errors, and what the driver raises
#: itself while connecting (refused, timed out, PostgreSQL starting up or shutting down).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    _AsyncpgError,
    _AsyncpgInterfaceError,
)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every dialect (SQLite keeps no zone: stored as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: The store sequence: 64-bit on PostgreSQL, SQLite's rowid (AUTOINCREMENT: never reused).
SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: One row per LiveKit webhook event, unique by LiveKit's event `id`. `seq` orders rows as
#: they were inserted; `xid` (PostgreSQL only, its default: the writing transaction's id)
#: orders them for followers (see `Store.follow_events`); `body` is the exact JSON LiveKit
#: sent.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(), nullable=False, unique=True),
    sa.Column("event", sa.String(), nullable=False),
    sa.Column("room_name", sa.String(), nullable=True),
    sa.Column("participant_identity", sa.String(), nullable=True),
    sa.Column("egress_id", sa.String(), nullable=True),
    sa.Column("ingress_id", sa.String(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("xid", sa.BigInteger(), nullable=True),
    sa.Index(None, "event", "seq"),
    sa.Index(None, "room_name", "seq"),
    sa.Index(None, "participant_identity", "seq"),
    sa.Index(None, "egress_id", "seq"),
    sa.Index(None, "ingress_id", "seq"),
    sqlite_autoincrement=True,
)

#: A single row rewritten by `Store.readiness`.
store_probe = sa.Table(
    "store_probe",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
)


@dataclass(frozen=True)
class StreamPosition:
    """Where an event follower stands: past every row at or before `(xid, seq)` in follow
    order (`xid` is 0 on SQLite and for rows older than revision 0004)."""

    xid: int
    seq: int


class Store:
    """An async engine and session factory over `DATABASE_URL`, plus the event-store queries.

    Create one per process (the app's lifespan does: `app.state.store`), `await migrate()`
    before use and `await aclose()` at shutdown. Attributes: `engine` (`AsyncEngine`),
    `sessions` (`async_sessionmaker`), `dialect` (`"sqlite"` or `"postgresql"`).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        connect_timeout_seconds: float = 3.0,
        command_timeout_seconds: float = 4.0,
    ) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            _create_sqlite_directory(self.url)
            self.engine: AsyncEngine = create_async_engine(
                self.url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                hide_parameters=True,
            )
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # asyncpg: `timeout` bounds connecting, `command_timeout` every statement.
            connect_args: dict[str, Any] = (
                {"timeout": connect_timeout_seconds, "command_timeout": command_timeout_seconds}
                if self.url.get_driver_name() == "asyncpg"
                else {}
            )
            self.engine = create_async_engine(
                self.url,
                pool_pre_ping=True,
                pool_timeout=connect_timeout_seconds,
                connect_args=connect_args,
                hide_parameters=True,
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._changed = asyncio.Event()
        self._pending_events: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._event_writer: asyncio.Task[None] | None = None
        self._writable = CachedCheck(self._probe_write)

    async def migrate(self) -> None:
        """Upgrade the schema to the newest alembic revision (idempotent)."""
        async with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                await connection.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY))
                )
            await connection.run_sync(_upgrade_to_head)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT for `table`, with `on_conflict_do_nothing` / `..._do_update`."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def readiness(self, max_age_seconds: float = 0.0) -> str:
        """`"ok"` when the database takes a durable write, else `"failed: <error class>"`
        (for /readyz). What was learnt less than `max_age_seconds` ago is answered without
        I/O: the last probe (the `store_probe` row rewritten; concurrent callers share one),
        or the last commit of webhook events, or its failure to reach the database
        (`app.readiness.CachedCheck`). So the probe writes at most once per
        `max_age_seconds`, and not at all while webhooks are being stored."""
        return await self._writable.result(max_age_seconds)

    async def _probe_write(self, timeout_seconds: float = READINESS_TIMEOUT_SECONDS) -> str:
        now = dt.datetime.now(dt.UTC)
        statement = self.insert(store_probe).values(id=1, checked_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[store_probe.c.id], set_={"checked_at": now}
        )
        try:
            async with asyncio.timeout(timeout_seconds), self.sessions.begin() as session:
                await session.execute(statement)
        except DATABASE_ERRORS as exc:
            log.warning("event store not writable: %s", exc.__class__.__name__, exc_info=exc)
            return _not_writable(exc)
        return "ok"

    # --- webhook events -----------------------------------------------------------------

    async def insert_event(self, values: dict[str, Any]) -> bool:
        """Commit one `webhook_events` row unless its `id` is already stored; returns after
        the commit.

        Returns True when this call stored it, False for a duplicate (including one written
        at the same moment by another request or replica). Rows that arrive while a commit
        is under way are committed together in the next transaction (group commit: one
        disk flush for many events); each caller still returns only once its own row is
        durable, and gets the batch's error if that commit fails. No lock beyond the rows'
        own: on PostgreSQL each row's `xid` column defaults to the writing transaction's
        id, which is what lets `follow_events` never skip a row that commits late.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_events.append((values, future))
        writer = self._event_writer
        if writer is None or writer.done() or writer.get_loop() is not future.get_loop():
            self._event_writer = asyncio.create_task(self._write_pending_events())
        return await asyncio.shield(future)

    async def _write_pending_events(self) -> None:
        """Commit the waiting rows, `EVENT_BATCH_LIMIT` per transaction, until none wait.
        A batch that fails is retried row by row, so one bad row fails only its caller."""
        while self._pending_events:
            batch = self._pending_events[:EVENT_BATCH_LIMIT]
            del self._pending_events[:EVENT_BATCH_LIMIT]
            try:
                stored = await self._commit_events([values for values, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or _store_unavailable(exc):
                    for _, future in batch:
                        _settle(future, exc)
                else:  # a row the database refuses fails only its own caller
                    await self._commit_one_by_one(batch)
                continue
            seen: set[str] = set()
            for values, future in batch:  # a repeated id in one batch is stored once
                _settle(future, values["id"] in stored and values["id"] not in seen)
                seen.add(values["id"])
            if stored:
                self._notify()

    async def _commit_one_by_one(
        self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]
    ) -> None:
        for values, future in batch:
            try:
                stored = await self._commit_events([values])
            except Exception as exc:
                _settle(future, exc)
            else:
                _settle(future, bool(stored))
                if stored:
                    self._notify()

    async def _commit_events(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert `rows` (`webhook_events` column values) in one transaction, skipping ids
        already stored; returns the ids this transaction stored. Anything else that must
        change with each stored event belongs in this transaction."""
        statement = (
            self.insert(webhook_events)
            .on_conflict_do_nothing(index_elements=[webhook_events.c.id])
            .returning(webhook_events.c.id)
        )
        try:
            async with self.sessions.begin() as session:
                result = await session.execute(statement, rows)
                stored = {row.id for row in result}
        except DATABASE_ERRORS as exc:
            if _store_unavailable(exc):
                self._writable.record(_not_writable(exc))
            raise
        self._writable.record("ok")  # committed: the store is writable (see `readiness`)
        return stored

    async def find_events(
        self,
        *,
        filters: dict[str, str],
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before_seq: int | None = None,
        after_seq: int | None = None,
        newest_first: bool = True,
        limit: int = 50,
    ) -> list[sa.Row[Any]]:
        """Rows of `webhook_events` matching every filter (column name -> exact value),
        `since <= created_at < until`, `after_seq < seq < before_seq`; ordered by `seq`."""
        query = sa.select(webhook_events)
        for column, value in filters.items():
            query = query.where(webhook_events.c[column] == value)
        if since is not None:
            query = query.where(webhook_events.c.created_at >= since)
        if until is not None:
            query = query.where(webhook_events.c.created_at < until)
        if before_seq is not None:
            query = query.where(webhook_events.c.seq < before_seq)
        if after_seq is not None:
            query = query.where(webhook_events.c.seq > after_seq)
        order = webhook_events.c.seq.desc() if newest_first else webhook_events.c.seq.asc()
        async with self.sessions() as session:
            result = await session.execute(query.order_by(order).limit(limit))
            return list(result.all())

    async def get_event(self, event_id: str) -> sa.Row[Any] | None:
        """The row whose LiveKit event id is `event_id`, or None."""
        query = sa.select(webhook_events).where(webhook_events.c.id == event_id)
        async with self.sessions() as session:
            return (await session.execute(query)).first()

    async def last_seq(self) -> int:
        """The highest `seq` stored so far (0 when empty)."""
        async with self.sessions() as session:
            value = await session.scalar(sa.select(sa.func.max(webhook_events.c.seq)))
            return int(value or 0)

    async def stream_position_now(self) -> StreamPosition:
        """The follow position from which every event committed from now on is delivered.

        SQLite (one writer at a time: `seq` order is commit order): the highest `seq`.
        PostgreSQL: just below the oldest running transaction, so rows of transactions
        still in flight are delivered when they commit (rows committed by younger
        transactions meanwhile may be delivered too: a follower may see a few events from
        just before it started, never miss one)."""
        if self.dialect != "postgresql":
            return StreamPosition(0, await self.last_seq())
        async with self.sessions() as session:
            xmin = await session.scalar(sa.select(sa.text(SNAPSHOT_XMIN_SQL)))
            return StreamPosition(int(xmin), 0)

    async def event_position(self, event_id: str) -> StreamPosition | None:
        """The follow position of the stored event `event_id`, or None."""
        columns = (sa.func.coalesce(webhook_events.c.xid, 0), webhook_events.c.seq)
        query = sa.select(*columns).where(webhook_events.c.id == event_id)
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        return StreamPosition(int(row[0]), int(row[1])) if row is not None else None

    async def follow_events(
        self, *, filters: dict[str, str], after: StreamPosition, limit: int
    ) -> list[sa.Row[Any]]:
        """Up to `limit` rows matching `filters` past `after`, in follow order, never past
        the high-water mark: a follower that moves its position to the last row returned
        never skips a row committed later.

        SQLite commits one writer at a time, so `seq` order is commit order. PostgreSQL
        hands out `seq` before commit, so a later `seq` can commit first: there rows go in
        `(xid, seq)` order and only those whose `xid` is below the snapshot's `xmin` (the
        oldest transaction still running) are returned; every transaction below `xmin` has
        finished, and every later one has a higher `xid`. A long-running transaction
        anywhere in the cluster therefore holds followers back until it ends.
        """
        query = sa.select(webhook_events)
        for column, value in filters.items():
            query = query.where(webhook_events.c[column] == value)
        if self.dialect == "postgresql":
            xid, seq = webhook_events.c.xid, webhook_events.c.seq
            query = query.where(
                sa.tuple_(xid, seq) > sa.tuple_(sa.literal(after.xid), sa.literal(after.seq)),
                xid < sa.text(SNAPSHOT_XMIN_SQL),
            ).order_by(xid, seq)
        else:
            query = query.where(webhook_events.c.seq > after.seq).order_by(webhook_events.c.seq)
        async with self.sessions() as session:
            return list((await session.execute(query.limit(limit))).all())

    async def delete_events_received_before(self, cutoff: dt.datetime) -> int:
        """Delete events received before `cutoff`; returns how many were deleted."""
        statement = sa.delete(webhook_events).where(webhook_events.c.received_at < cutoff)
        async with self.sessions.begin() as session:
            result = await session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0)

    def changed(self) -> asyncio.Event:
        """An event set at the next row this process stores (a wake-up for followers; rows
        stored by other replicas are found by polling)."""
        return self._changed

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _store_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (rather than refusing a row)."""
    if isinstance(exc, (OSError, TimeoutError, sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


def _not_writable(exc: BaseException) -> str:
    """The readiness result for a write that failed with `exc` (its class name only)."""
    return f"failed: {exc.__class__.__name__}"


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    """Resolve a waiting `insert_event` (unless its caller has gone)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@contextmanager
def database_errors() -> Iterator[None]:
    """Run database work for a request: any of `DATABASE_ERRORS` becomes
    `UpstreamUnavailable` (503, `event_store_unavailable`; LiveKit retries a webhook then).
    The error is logged; the detail carries no database text."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        log.error("event store failure: %s", exc.__class__.__name__, exc_info=exc)
        raise UpstreamUnavailable(
            "the event store is unavailable", code="event_store_unavailable"
        ) from exc


async def run_periodically(
    name: str, interval_seconds: float, job: Callable[[], Awaitable[int]]
) -> None:
    """Run the housekeeping `job` (it returns how many rows it deleted) now and then every
    `interval_seconds`, until cancelled. A failure (the database down, or anything else) is
    logged and the job runs again at the next interval: the loop only ends when cancelled."""
    while True:
        try:
            deleted = await job()
            if deleted:
                log.info("%s: deleted %d rows", name, deleted)
        except DATABASE_ERRORS as exc:
            log.warning("%s failed: %s", name, exc.__class__.__name__)
        except UpstreamUnavailable as exc:
            log.warning("%s failed: %s", name, exc.__class__.__name__)
        except Exception:
            log.exception("%s failed unexpectedly", name)
        await asyncio.sleep(interval_seconds)


def _create_sqlite_directory(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    finally:
        cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic configuration for `migrations/` (no alembic.ini needed); `connection`,
    when given, is the one `migrations/env.py` runs on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
