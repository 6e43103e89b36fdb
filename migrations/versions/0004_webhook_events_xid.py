"""Webhook events: `xid`, the writing transaction's id on PostgreSQL, so the event stream
can follow commits without a database-wide write lock (see
`app.store.events.EventRepository.follow`).

On PostgreSQL the column defaults to `pg_current_xact_id()` (64-bit, never wraps), rows
stored before this revision get 0, and `(xid, seq)` is indexed for followers. SQLite
commits one writer at a time and follows `seq` alone: the column stays NULL there.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CURRENT_XID = "(pg_current_xact_id()::text::bigint)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("webhook_events") as batch:
            batch.add_column(sa.Column("xid", sa.BigInteger(), nullable=True))
        return
    op.add_column(
        "webhook_events",
        sa.Column("xid", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.alter_column("webhook_events", "xid", server_default=sa.text(_CURRENT_XID))
    op.create_index("ix_webhook_events_xid_seq", "webhook_events", ["xid", "seq"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_webhook_events_xid_seq", table_name="webhook_events")
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_column("xid")
