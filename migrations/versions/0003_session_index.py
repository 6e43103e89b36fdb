"""Session analytics: an index on `webhook_events (event, created_at)` for the session list's
scan of `room_started` events by time (see `app.events.sessions`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_webhook_events_event_created_at", "webhook_events", ["event", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_events_event_created_at", table_name="webhook_events")
