"""Session projections: `sessions`, `session_participants`, `session_egress` and
`session_ingress` (declared in `app.store.tables`), kept with each stored event from now on
(`app.store.projections`), and built here from the events already stored, in batches
(`app.store.projections.rebuild_sync`); and the index on `webhook_events (created_at, seq)`
that pages the event list within a time window.

Revision ID: 0005
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.store.projections import rebuild_sync
from app.store.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("sessions", "session_participants", "session_egress", "session_ingress")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("room_name", sa.String(), nullable=False),
        sa.Column("room_name_real", sa.Boolean(), nullable=False),
        sa.Column("room_name_at", UTCDateTime(), nullable=False),
        sa.Column("room_name_event", sa.String(), nullable=False),
        sa.Column("anchored", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("created_at_real", sa.Boolean(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at_real", sa.Boolean(), nullable=False),
        sa.Column("first_event_at", UTCDateTime(), nullable=True),
        sa.Column("first_event_at_real", sa.Boolean(), nullable=False),
        sa.Column("last_active", UTCDateTime(), nullable=True),
        sa.Column("last_active_real", sa.Boolean(), nullable=False),
        sa.Column("oldest_received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
    )
    op.create_table(
        "session_participants",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("participant_sid", sa.String(), nullable=False),
        sa.Column("identity", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("name_real", sa.Boolean(), nullable=False),
        sa.Column("name_at", UTCDateTime(), nullable=False),
        sa.Column("name_event", sa.String(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=True),
        sa.Column("joined_at_real", sa.Boolean(), nullable=False),
        sa.Column("left_at", UTCDateTime(), nullable=True),
        sa.Column("left_at_real", sa.Boolean(), nullable=False),
        sa.Column("camera", sa.Boolean(), nullable=False),
        sa.Column("microphone", sa.Boolean(), nullable=False),
        sa.Column("screen_share", sa.Boolean(), nullable=False),
        sa.Column("screen_share_audio", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "session_id", "participant_sid", name=op.f("pk_session_participants")
        ),
    )
    op.create_table(
        "session_egress",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("egress_id", sa.String(), nullable=False),
        sa.Column("room_name", sa.String(), nullable=False),
        sa.Column("egress_type", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("status_rank", sa.Integer(), nullable=False),
        sa.Column("status_real", sa.Boolean(), nullable=False),
        sa.Column("status_at", UTCDateTime(), nullable=False),
        sa.Column("status_event", sa.String(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("started_at_real", sa.Boolean(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at_real", sa.Boolean(), nullable=False),
        sa.Column("oldest_received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "egress_id", name=op.f("pk_session_egress")),
    )
    op.create_table(
        "session_ingress",
        sa.Column("ingress_id", sa.String(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("room_name", sa.String(), nullable=False),
        sa.Column("participant_identity", sa.String(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("started_at_real", sa.Boolean(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at_real", sa.Boolean(), nullable=False),
        sa.Column("oldest_received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ingress_id", "started_ns", name=op.f("pk_session_ingress")),
    )
    op.create_index(
        op.f("ix_sessions_created_at_session_id"),
        "sessions",
        ["created_at", "session_id"],
        unique=False,
    )
    op.create_index(op.f("ix_sessions_ended_at"), "sessions", ["ended_at"], unique=False)
    op.create_index(
        op.f("ix_sessions_oldest_received_at"), "sessions", ["oldest_received_at"], unique=False
    )
    op.create_index(
        op.f("ix_sessions_room_name_created_at_session_id"),
        "sessions",
        ["room_name", "created_at", "session_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_participants_identity_joined_at"),
        "session_participants",
        ["identity", "joined_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_participants_joined_at"),
        "session_participants",
        ["joined_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_participants_left_at"), "session_participants", ["left_at"], unique=False
    )
    op.create_index(
        op.f("ix_session_egress_ended_at"), "session_egress", ["ended_at"], unique=False
    )
    op.create_index(
        op.f("ix_session_egress_oldest_received_at"),
        "session_egress",
        ["oldest_received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_egress_egress_id"), "session_egress", ["egress_id"], unique=False
    )
    op.create_index(
        op.f("ix_session_egress_started_at"), "session_egress", ["started_at"], unique=False
    )
    op.create_index(
        op.f("ix_session_ingress_ended_at"), "session_ingress", ["ended_at"], unique=False
    )
    op.create_index(
        op.f("ix_session_ingress_oldest_received_at"),
        "session_ingress",
        ["oldest_received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_ingress_started_at"), "session_ingress", ["started_at"], unique=False
    )
    # the event list's pages of a time window (`EventRepository.find(by_time=True)`)
    op.create_index("ix_webhook_events_created_at_seq", "webhook_events", ["created_at", "seq"])
    rebuild_sync(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_webhook_events_created_at_seq", table_name="webhook_events")
    for table in reversed(_TABLES):
        op.drop_table(table)
