"""What a database failure looks like, and how a request reports it.

Database failures surface as `sqlalchemy.exc.SQLAlchemyError`, or from the driver as
`OSError` (connection refused), `TimeoutError` or asyncpg's own errors (the server is
starting up) when a connection is being opened: `DATABASE_ERRORS` lists them. The
repositories (`app.store.events`, `app.store.idempotency`, `app.store.projections`) let them
through; a request turns them into `app.core.errors.UpstreamUnavailable` (503, code
`event_store_unavailable`) by running its queries inside `with database_errors():`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from app.core.errors import UpstreamUnavailable

try:
    from asyncpg import InterfaceError as _AsyncpgInterfaceError
    from asyncpg import PostgresError as _AsyncpgError
except ImportError:  # pragma: no cover - asyncpg is a dependency; SQLite-only installs work

    class _AsyncpgError(Exception):  # type: ignore[no-redef]
        pass

    class _AsyncpgInterfaceError(Exception):  # type: ignore[no-redef]
        pass


log = logging.getLogger("app.store")

#: What a database failure may be raised as: SQLAlchemy's errors, and what the driver raises
#: itself while connecting (refused, timed out, PostgreSQL starting up or shutting down).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    _AsyncpgError,
    _AsyncpgInterfaceError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (rather than refusing a row)."""
    if isinstance(exc, (OSError, TimeoutError, OperationalError, InterfaceError)):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


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
