"""Recordings catalog models (contract: Recordings): the files egresses wrote."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.sessions import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

#: `file`: a file output (`FileInfo`); `segments`: an HLS playlist (`SegmentsInfo`; the
#: location and name are the playlist's); `image`: an image series (`ImagesInfo`; the
#: filename is its prefix, with no location or size).
RecordingKind = Literal["file", "segments", "image"]


class Recording(BaseModel):
    """One file an egress wrote, from its `egress_ended` event (received or derived).

    `recording_id` is derived from the egress id and the result's position, so the same
    event stored twice is one recording; `session_id` is the room's sid; `location` is
    where LiveKit's egress says it put the file (empty for a local file or images);
    `filename` its name (the object key for an upload); `size_bytes`, `duration_seconds`
    as LiveKit reported them; `status` the egress's (`EGRESS_COMPLETE`, `EGRESS_FAILED`,
    ...). Times are RFC 3339 UTC.
    """

    recording_id: str
    egress_id: str
    session_id: str | None = None
    room_name: str | None = None
    kind: RecordingKind
    location: str
    filename: str
    size_bytes: int
    duration_seconds: float
    started_at: dt.datetime | None = None
    ended_at: dt.datetime
    status: str


class RecordingDetails(Recording):
    """One recording with `download_url`: a presigned GET of its object, valid
    `RECORDINGS_LINK_SECONDS`, when the object lies in the configured bucket (null
    otherwise)."""

    download_url: str | None = None


class RecordingQuery(BaseModel):
    """`GET /v1/recordings` query: recordings of one `room_name` or `session_id` (room sid),
    ended in `[start, end)` (a time without zone is UTC), and paging."""

    model_config = ConfigDict(extra="forbid")

    room_name: str | None = None
    session_id: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    page_token: str | None = Field(default=None, description="`next_page_token` of a page")
