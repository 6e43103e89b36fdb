"""Path parameters shared by the routers: LiveKit names, at most 256 bytes (contract limits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from schemas.common import Name

RoomName = Annotated[Name, Path(description="the room's name")]
Identity = Annotated[Name, Path(description="the participant's identity")]
