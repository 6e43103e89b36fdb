"""What the stored events say is live, read for the reconciliation with LiveKit
(`app.events.reconcile.read_store_view`): the rows of the event types that open or close a room,
a participant's connection or an egress. Each row has `app.store.sessions.COLUMNS` plus
`egress_id`. Database errors reach the caller (`app.store.errors`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store.sessions import COLUMNS
from app.store.tables import webhook_events

if TYPE_CHECKING:
    from app.store.engine import Store


async def rows_of_types(store: Store, events: Iterable[str]) -> list[Any]:
    """Every stored row whose type is one of `events` (read by the index on
    `(event, seq)`), in no particular order. Its cost grows with the events retained
    (`WEBHOOK_RETENTION_DAYS`)."""
    statement = sa.select(*COLUMNS, webhook_events.c.egress_id).where(
        webhook_events.c.event.in_(tuple(events))
    )
    async with store.db_session() as session:
        return list((await session.execute(statement)).all())
