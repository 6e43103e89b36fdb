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
    (`run_periodically`) log every failure and carry on.
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

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG: webhook bodies (LiveKit's
# egress events carry upload credentials) and stored responses must never reach a log line.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: `pg_advisory_lock` keys (arbitrary 64-bit constants, one per purpose).
MIGRATION_LOCK_KEY = 0x4C4B_4350_0001
EVENT_WRITE_LOCK_KEY = 0x4C4B_4350_0002

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
#: they were committed (see `Store.insert_event`); `body` is the exact JSON LiveKit sent.
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
                self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
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
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._changed = asyncio.Event()

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

    async def readiness(self, timeout_seconds: float = 5.0) -> str:
        """`"ok"` when the database takes a durable write now (the `store_probe` row is
        rewritten), else `"failed: <error class>"` (for /readyz)."""
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
            return f"failed: {exc.__class__.__name__}"
        return "ok"

    # --- webhook events -----------------------------------------------------------------

    async def insert_event(self, values: dict[str, Any]) -> bool:
        """Commit one `webhook_events` row unless its `id` is already stored.

        Returns True when this call stored it, False for a duplicate (including one written
        at the same moment by another request or replica). On PostgreSQL, writers take a
        transaction-scoped advisory lock so that `seq` order is commit order: a reader
        following `seq` upwards then never skips a row that commits late.
        """
        statement = (
            self.insert(webhook_events)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[webhook_events.c.id])
            .returning(webhook_events.c.seq)
        )
        async with self.sessions.begin() as session:
            if self.dialect == "postgresql":
                await session.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(EVENT_WRITE_LOCK_KEY))
                )
            stored = (await session.execute(statement)).scalar_one_or_none() is not None
        if stored:
            self._notify()
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
