"""Alembic environment: runs on the connection `app.store.engine.Store.migrate()` hands
over, or, from the command line (`uv run alembic upgrade head`, `alembic revision
--autogenerate`), on `DATABASE_URL`. Every table is declared in `app.store.tables`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app.store.engine import Store
from app.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_database_url() -> None:
    from app.config.settings import get_settings

    store = Store(get_settings().database_url.get_secret_value())
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await store.aclose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
else:
    asyncio.run(_run_on_database_url())
