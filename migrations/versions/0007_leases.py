"""Leases of the jobs one replica at a time runs (`leases`; see `app.store.leases`), first
the reconciliation with LiveKit's state (`app.events.reconcile`), and the index by which
it finds the egresses not yet ended (`session_egress.status_rank`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_index("ix_session_egress_status_rank", "session_egress", ["status_rank"])


def downgrade() -> None:
    op.drop_index("ix_session_egress_status_rank", "session_egress")
    op.drop_table("leases")
