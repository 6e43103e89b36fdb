"""Webhook event store: `webhook_events` and the readiness probe row `store_probe`.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_INDEXED_WITH_SEQ = ("event", "room_name", "participant_identity", "egress_id", "ingress_id")


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("room_name", sa.String(), nullable=True),
        sa.Column("participant_identity", sa.String(), nullable=True),
        sa.Column("egress_id", sa.String(), nullable=True),
        sa.Column("ingress_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_events"),
        sa.UniqueConstraint("id", name="uq_webhook_events_id"),
        sqlite_autoincrement=True,
    )
    for column in _INDEXED_WITH_SEQ:
        op.create_index(f"ix_webhook_events_{column}_seq", "webhook_events", [column, "seq"])
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.create_index("ix_webhook_events_received_at", "webhook_events", ["received_at"])
    op.create_table(
        "store_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_probe"),
    )


def downgrade() -> None:
    op.drop_table("store_probe")
    op.drop_table("webhook_events")
