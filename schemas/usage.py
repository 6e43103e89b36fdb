"""Usage models (contract: Usage): LiveKit Cloud's usage figures, for any LiveKit, from the
stored webhook events (through the session projections)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The longest window one request may cover (days).
MAX_USAGE_DAYS = 400
#: The window lies within these years (a day past it is still a date).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)

UsageGrouping = Literal["day", "room", "identity"]


class UsageQuery(BaseModel):
    """`GET /v1/usage` query: the window `[start, end)` (a time without zone is UTC; at most
    `MAX_USAGE_DAYS` days, between `EARLIEST` and `LATEST`), grouped by UTC day, room name
    or participant identity, of one `room_name` when given."""

    model_config = ConfigDict(extra="forbid")

    start: dt.datetime
    end: dt.datetime
    group_by: UsageGrouping = "day"
    room_name: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _window(self) -> Self:
        self.start = _utc(self.start)
        self.end = _utc(self.end)
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.start < EARLIEST or self.end > LATEST:
            raise ValueError("the window must lie between 1970 and 9999")
        if self.end - self.start > dt.timedelta(days=MAX_USAGE_DAYS):
            raise ValueError(f"the window may cover at most {MAX_USAGE_DAYS} days")
        return self


def _utc(when: dt.datetime) -> dt.datetime:
    try:
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    except OverflowError:  # an offset that takes the time past year 1 or 9999
        raise ValueError("the window must lie between 1970 and 9999") from None


class UsageItem(BaseModel):
    """The usage of one key (a UTC day `YYYY-MM-DD`, a room name or an identity) within the
    window. Minutes are connected time (a connection still open counts up to now), to the
    millisecond: `participant_minutes` of every participant except SIP callers (their
    `sip_minutes`) and LiveKit's own egress and ingress participants (their
    `egress_minutes` by egress type and `ingress_minutes`); `sessions` counts the room
    sessions overlapping the key's slice (for an identity: those it was connected in);
    `peak_concurrent_participants` is the most connections, participants and SIP callers,
    open at one instant of the slice."""

    key: str
    participant_minutes: float
    sessions: int
    peak_concurrent_participants: int
    egress_minutes: dict[str, float]
    ingress_minutes: float
    sip_minutes: float


class UsageReport(BaseModel):
    """`GET /v1/usage`: one item per key, sorted by key, and the window."""

    items: list[UsageItem]
    start: dt.datetime
    end: dt.datetime
