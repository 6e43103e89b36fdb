"""Leases (`leases`): a periodic job that one replica at a time runs takes its lease
before each run. A lease is a row per job name with its holder and expiry, taken in one
statement (an upsert that only overwrites an expired lease or the holder's own), so it
works the same on SQLite and PostgreSQL and holds no connection while the job runs.
Database errors reach the caller (`app.store.errors`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from app.store.tables import leases

if TYPE_CHECKING:
    from app.store.engine import Store


async def take(store: Store, name: str, holder: str, *, now: dt.datetime, seconds: float) -> bool:
    """Take or renew the lease `name` for `holder` until `now + seconds`; True when
    `holder` holds it now (it was free, expired, or already `holder`'s), False when another
    holder's lease runs past `now`. Two replicas asking at once: one gets it (the row's
    own lock orders the two upserts)."""
    expires_at = now + dt.timedelta(seconds=seconds)
    upsert = store.insert(leases).values(name=name, holder=holder, expires_at=expires_at)
    statement = upsert.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": holder, "expires_at": expires_at},
        where=(leases.c.expires_at <= now) | (leases.c.holder == holder),
    ).returning(leases.c.holder)
    async with store.db_session.begin() as session:
        taken = (await session.execute(statement)).scalar_one_or_none()
    return bool(taken == holder)
