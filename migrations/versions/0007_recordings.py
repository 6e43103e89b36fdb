"""The recordings catalog (`recordings`): the files egresses wrote, from `egress_ended`
events (see `app.store.tables.recordings`).

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("recording_id", sa.String(64), nullable=False),
        sa.Column("egress_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("room_name", sa.String(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("recording_id", name="pk_recordings"),
    )
    op.create_index("ix_recordings_egress_id", "recordings", ["egress_id"])
    op.create_index(
        "ix_recordings_ended_at_recording_id", "recordings", ["ended_at", "recording_id"]
    )
    op.create_index(
        "ix_recordings_room_name_ended_at_recording_id",
        "recordings",
        ["room_name", "ended_at", "recording_id"],
    )
    op.create_index(
        "ix_recordings_session_id_ended_at_recording_id",
        "recordings",
        ["session_id", "ended_at", "recording_id"],
    )


def downgrade() -> None:
    op.drop_table("recordings")
