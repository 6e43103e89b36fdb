"""Usage route (contract: Usage), computed from the session projections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.events.usage import usage_report
from app.http.deps import SessionsReadCaller, StoreDep
from schemas.problems import problems
from schemas.usage import UsageQuery, UsageReport

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage", operation_id="get_usage", responses=problems(401, 403, 422, 503))
async def get_usage(
    store: StoreDep, query: Annotated[UsageQuery, Query()], _: SessionsReadCaller
) -> UsageReport:
    """Participant, SIP, egress and ingress minutes, sessions and peak concurrency in
    `[start, end)`, by UTC day, room or identity."""
    return await usage_report(store, query)
