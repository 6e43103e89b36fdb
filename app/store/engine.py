"""The database engine: `Store` opens SQLAlchemy's asyncio engine over `DATABASE_URL`,
migrates the schema at start-up, answers the readiness probe, and holds the repositories
that have state of their own (`Store.events`); the housekeeping loop `run_periodically`.

Databases
    `DATABASE_URL` is an SQLAlchemy async URL: `sqlite+aiosqlite:///./data/events.db` by
    default (its directory is created; WAL journal, `synchronous=FULL`, so a commit is on
    disk before it returns), or `postgresql+asyncpg://user:pass@host/db` for several
    replicas sharing one database.

Schema
    The tables are declared in `app.store.tables` and created by alembic migrations in
    `migrations/versions/` (revision `0001` creates `webhook_events` and `store_probe`).
    `Store.migrate()` upgrades to the newest revision at start-up; on PostgreSQL it holds an
    advisory lock meanwhile, so replicas starting together migrate once.

Errors and outages
    What a failure looks like and how a request reports it: `app.store.errors`. Background
    loops (`run_periodically`) log every failure and carry on. The engine hides the
    statement's parameters from its errors (`hide_parameters`): a webhook body or a stored
    response is a parameter, and an error is logged with its text.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.core.errors import UpstreamUnavailable
from app.core.readiness import CachedCheck
from app.store.errors import DATABASE_ERRORS, is_unavailable
from app.store.events import EventRepository
from app.store.projections import write_projections
from app.store.tables import store_probe

# The package's logger: every line of the store keeps one logger name.
log = logging.getLogger(__package__)
# aiosqlite logs every statement with its parameters at DEBUG: webhook bodies (LiveKit's
# egress events carry upload credentials) and stored responses must never reach a log line.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

#: `pg_advisory_lock` key of the migrations (an arbitrary 64-bit constant).
MIGRATION_LOCK_KEY = 0x4C4B_4350_0001

#: Seconds the readiness probe's write may take before the store counts as not writable.
READINESS_TIMEOUT_SECONDS = 5.0

#: SQLite waits this long (seconds) for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30


class Store:
    """An async engine and session factory over `DATABASE_URL`, and the event repository.

    Create one per process (the app's lifespan does: `app.state.store`), `await migrate()`
    before use and `await aclose()` at shutdown. Attributes: `engine` (`AsyncEngine`),
    `db_session` (`async_sessionmaker`: `store.db_session()` opens a session,
    `store.db_session.begin()` one in a transaction committed on exit), `dialect`
    (`"sqlite"` or `"postgresql"`), `events` (`app.store.events.EventRepository`: the
    webhook events, with this process's group commit and change notifications).
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
        self.db_session = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writable = CachedCheck(self._probe_write)
        self.events = EventRepository(self)
        # The session projections change with every stored event, on every store.
        self.events.add_writer(write_projections)

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
        (`app.core.readiness.CachedCheck`). So the probe writes at most once per
        `max_age_seconds`, and not at all while webhooks are being stored."""
        return await self._writable.result(max_age_seconds)

    def record_write(self, failure: BaseException | None = None) -> None:
        """Count a write that just ended as a readiness probe: committed (`failure` None),
        or failed because the database cannot be reached (`app.store.errors.is_unavailable`;
        a row the database refused says nothing about readiness and is not recorded)."""
        if failure is None:
            self._writable.record("ok")
        elif is_unavailable(failure):
            self._writable.record(_not_writable(failure))

    async def _probe_write(self, timeout_seconds: float = READINESS_TIMEOUT_SECONDS) -> str:
        now = dt.datetime.now(dt.UTC)
        statement = self.insert(store_probe).values(id=1, checked_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[store_probe.c.id], set_={"checked_at": now}
        )
        try:
            async with asyncio.timeout(timeout_seconds), self.db_session.begin() as session:
                await session.execute(statement)
        except DATABASE_ERRORS as exc:
            log.warning("event store not writable: %s", exc.__class__.__name__, exc_info=exc)
            return _not_writable(exc)
        return "ok"


def _not_writable(exc: BaseException) -> str:
    """The readiness result for a write that failed with `exc` (its class name only)."""
    return f"failed: {exc.__class__.__name__}"


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
