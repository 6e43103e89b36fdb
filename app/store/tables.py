"""Every table the service keeps, declared on the one `metadata` (the schema that alembic's
migrations in `migrations/versions/` create; `migrations/env.py` compares against it for
`alembic revision --autogenerate`).

Adding a table
    1. declare it here with `sa.Table("<name>", metadata, ...)`;
    2. add `migrations/versions/00NN_<name>.py` whose `down_revision` is the newest one;
    3. write its statements in a repository module beside this one (`app/store/<name>.py`,
       as `app.store.idempotency`), run on `Store.db_session` (`app.store.engine`);
       `Store.insert(table)` is the dialect's INSERT, with
       `.on_conflict_do_nothing(index_elements=[...])` / `.on_conflict_do_update(...)` on
       both SQLite and PostgreSQL, so concurrent writers across replicas never need a read
       first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every dialect (SQLite keeps no zone: stored as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: The store sequence: 64-bit on PostgreSQL, SQLite's rowid (AUTOINCREMENT: never reused).
SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: One row per LiveKit webhook event, unique by LiveKit's event `id`. `seq` orders rows as
#: they were inserted; `xid` (PostgreSQL only, its default: the writing transaction's id)
#: orders them for followers (see `app.store.events.EventRepository.follow`); `body` is
#: the exact JSON LiveKit sent. The index on `(event, created_at)` (migration 0003) reads
#: one event type in a time window, `(created_at, seq)` (0005) the event list's pages of a
#: time window (`EventRepository.find(by_time=True)`).
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(), nullable=False, unique=True),
    sa.Column("event", sa.String(), nullable=False),
    sa.Column("room_name", sa.String(), nullable=True),
    sa.Column("participant_identity", sa.String(), nullable=True),
    sa.Column("egress_id", sa.String(), nullable=True),
    sa.Column("ingress_id", sa.String(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("xid", sa.BigInteger(), nullable=True),
    sa.Index(None, "event", "seq"),
    sa.Index(None, "room_name", "seq"),
    sa.Index(None, "participant_identity", "seq"),
    sa.Index(None, "egress_id", "seq"),
    sa.Index(None, "ingress_id", "seq"),
    sa.Index(None, "event", "created_at"),
    sa.Index(None, "created_at", "seq"),
    sqlite_autoincrement=True,
)

#: A single row rewritten by the readiness probe (`app.store.engine.Store.readiness`).
store_probe = sa.Table(
    "store_probe",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
)

#: Longest `Idempotency-Key` (characters; the contract's limit, `app.http.idempotency.check_key`).
IDEMPOTENCY_KEY_MAX_LENGTH = 255

#: One row per (caller, key) of `Idempotency-Key`: the request it was first used for and,
#: once the operation succeeded, the response to replay. `claim_id` identifies the request
#: running it now (`app.store.idempotency`).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("caller", sa.String(), primary_key=True),
    sa.Column("key", sa.String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claim_id", sa.String(36), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("response_body", sa.Text(), nullable=True),
)

#: The recordings catalog: one row per file, segment playlist or image series an egress
#: wrote, from its `egress_ended` event (`app.recordings`). `recording_id` is derived from
#: the egress id and the result's kind and index, so the same event stored twice (received
#: and derived) is one row. Listed newest first by `(ended_at, recording_id)`.
recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("recording_id", sa.String(64), primary_key=True),
    sa.Column("egress_id", sa.String(), nullable=False, index=True),
    sa.Column("session_id", sa.String(), nullable=True),
    sa.Column("room_name", sa.String(), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("location", sa.Text(), nullable=False),
    sa.Column("filename", sa.Text(), nullable=False),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("duration_seconds", sa.Float(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Index(None, "ended_at", "recording_id"),
    sa.Index(None, "room_name", "ended_at", "recording_id"),
    sa.Index(None, "session_id", "ended_at", "recording_id"),
)

# --- session projections (`app.store.projections`; merge rules: `app.store.projection_facts`)
#
# Each row is the merge of every stored event that names it, kept in the event's own
# transaction (`EventRepository.add_writer`). A value that a later event may replace keeps
# the key that decides (`*_real`: it came from a real event, not a derived one; `*_at`,
# `*_event`: the `created_at` and id of the event that set it).


def _stamp(prefix: str) -> list[sa.Column[Any]]:
    """The key of a value replaced by a newer event: from a real event, when, which."""
    return [
        sa.Column(f"{prefix}_real", sa.Boolean(), nullable=False),
        sa.Column(f"{prefix}_at", UTCDateTime(), nullable=False),
        sa.Column(f"{prefix}_event", sa.String(), nullable=False),
    ]


def _time(name: str) -> list[sa.Column[Any]]:
    """A time merged by earliest or latest, and whether a real event set it."""
    return [
        sa.Column(name, UTCDateTime(), nullable=True),
        sa.Column(f"{name}_real", sa.Boolean(), nullable=False),
    ]


#: One row per room session (LiveKit's room sid). `created_at` is set by `room_started`
#: only (so a listed session has one), `anchored` once a `room_started` is stored; the list
#: pages by `(created_at, session_id)`, of one room by `(room_name, created_at, ...)`.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", sa.String(), primary_key=True),
    sa.Column("room_name", sa.String(), nullable=False),
    *_stamp("room_name"),
    sa.Column("anchored", sa.Boolean(), nullable=False),
    *_time("created_at"),
    *_time("ended_at"),
    *_time("first_event_at"),
    *_time("last_active"),
    sa.Column("oldest_received_at", UTCDateTime(), nullable=False, index=True),
    sa.Index(None, "created_at", "session_id"),
    sa.Index(None, "room_name", "created_at", "session_id"),
    sa.Index(None, "ended_at"),
)

#: One row per participant session (a participant sid in a room session): the identity,
#: its latest name, `kind` (LiveKit `ParticipantInfo.Kind`: 0 standard, 1 ingress, 2 egress,
#: 3 SIP, 4 agent ...), when it joined and left, the sources it published.
session_participants = sa.Table(
    "session_participants",
    metadata,
    sa.Column("session_id", sa.String(), primary_key=True),
    sa.Column("participant_sid", sa.String(), primary_key=True),
    sa.Column("identity", sa.String(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    *_stamp("name"),
    sa.Column("kind", sa.Integer(), nullable=False),
    *_time("joined_at"),
    *_time("left_at"),
    sa.Column("camera", sa.Boolean(), nullable=False),
    sa.Column("microphone", sa.Boolean(), nullable=False),
    sa.Column("screen_share", sa.Boolean(), nullable=False),
    sa.Column("screen_share_audio", sa.Boolean(), nullable=False),
    sa.Index(None, "joined_at"),
    sa.Index(None, "left_at"),
    sa.Index(None, "identity", "joined_at"),
)

#: One row per egress (LiveKit's egress ids are unique; the room sid is part of the key so
#: that one id seen in two sessions cannot mix them): type (`room_composite`, `web`, `participant`,
#: `track_composite`, `track`), status (LiveKit `EgressStatus` name, with its rank:
#: terminal 2, ending 1, other 0), start and end.
session_egress = sa.Table(
    "session_egress",
    metadata,
    sa.Column("session_id", sa.String(), primary_key=True),
    sa.Column("egress_id", sa.String(), primary_key=True),
    sa.Column("room_name", sa.String(), nullable=False),
    sa.Column("egress_type", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("status_rank", sa.Integer(), nullable=False),
    *_stamp("status"),
    *_time("started_at"),
    *_time("ended_at"),
    sa.Column("oldest_received_at", UTCDateTime(), nullable=False, index=True),
    sa.Index(None, "egress_id"),
    sa.Index(None, "started_at"),
    sa.Index(None, "ended_at"),
)

#: One row per active interval of an ingress (`started_ns`: `IngressState.started_at`, in
#: nanoseconds, 0 when its events gave none): room, identity it publishes as, start, end.
session_ingress = sa.Table(
    "session_ingress",
    metadata,
    sa.Column("ingress_id", sa.String(), primary_key=True),
    sa.Column("started_ns", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("session_id", sa.String(), nullable=False),
    sa.Column("room_name", sa.String(), nullable=False),
    sa.Column("participant_identity", sa.String(), nullable=False),
    *_time("started_at"),
    *_time("ended_at"),
    sa.Column("oldest_received_at", UTCDateTime(), nullable=False, index=True),
    sa.Index(None, "started_at"),
    sa.Index(None, "ended_at"),
)
