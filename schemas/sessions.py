"""Session analytics models (contract: Sessions): LiveKit Cloud's Analytics API shapes, in
snake_case, derived from the stored webhook events."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

#: `"never"`: no egress was started in the session; `"active"`: one is still running;
#: `"ended"`: every egress has ended.
EgressState = Literal["never", "active", "ended"]


class SessionSummary(BaseModel):
    """One item of `GET /v1/sessions`: a room's life (`session_id` is LiveKit's room sid).

    `created_at` is when LiveKit created the room, `ended_at` when it finished (null while
    live), `last_active` the newest event of the session; `num_participants` counts
    distinct identities, `num_active_participants` those still connected.
    """

    session_id: str
    room_name: str
    created_at: dt.datetime
    ended_at: dt.datetime | None = None
    last_active: dt.datetime
    num_participants: int
    num_active_participants: int
    egress: EgressState


class PublishedSources(BaseModel):
    """Which kinds of track (LiveKit `TrackSource`) a participant published at least once."""

    camera: bool = False
    microphone: bool = False
    screen_share: bool = False
    screen_share_audio: bool = False


class ParticipantSession(BaseModel):
    """One connection of a participant: its `participant_sid`, when it joined and left
    (null while connected)."""

    participant_sid: str
    joined_at: dt.datetime
    left_at: dt.datetime | None = None


class SessionParticipant(BaseModel):
    """One identity in a session. `joined_at` is its first join, `left_at` its last leave
    (null while any of its connections is open), `duration_seconds` the sum of its
    connections (an open one counts up to now), `sessions` one per participant sid,
    oldest first."""

    participant_identity: str
    participant_name: str
    joined_at: dt.datetime
    left_at: dt.datetime | None = None
    duration_seconds: float
    published_sources: PublishedSources
    sessions: list[ParticipantSession]


class SessionEgress(BaseModel):
    """An egress of the session: its id, latest LiveKit `EgressStatus` name, start and end."""

    egress_id: str
    status: str
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


class SessionDetails(BaseModel):
    """`GET /v1/sessions/{session_id}`: the session and its participant timeline."""

    session_id: str
    room_name: str
    start_time: dt.datetime
    end_time: dt.datetime | None = None
    num_participants: int
    participants: list[SessionParticipant]
    egress: list[SessionEgress]


class SessionQuery(BaseModel):
    """`GET /v1/sessions` query: sessions created in `[start, end)` (a time without zone is
    UTC), of one `room_name`, only live ones (`active=true`) or only ended ones
    (`active=false`), and paging."""

    model_config = ConfigDict(extra="forbid")

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    room_name: str | None = None
    active: bool | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    page_token: str | None = Field(default=None, description="`next_page_token` of a page")
