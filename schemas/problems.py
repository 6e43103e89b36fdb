"""The problem document (RFC 9457) every error response carries, for OpenAPI."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict


class ValidationItem(BaseModel):
    """One thing wrong with a request: where (`loc`) and what (`msg`)."""

    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """An `application/problem+json` error; `code` is stable and snake_case."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[ValidationItem] | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting each status as a problem document."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


#: What any route that calls LiveKit may answer besides its own errors.
LIVEKIT_PROBLEMS = (401, 403, 422, 429, 501, 502, 503, 504)
