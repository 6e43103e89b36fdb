"""Operations responses (contract: Operations)."""

from __future__ import annotations

from pydantic import BaseModel


class Readiness(BaseModel):
    """`/readyz`: whether every check passed, and each check's result by name
    (`livekit`, `event_store`): `"ok"` or `"failed: <why>"`."""

    ready: bool
    checks: dict[str, str]
