"""Session analytics routes (contract: Sessions), derived from the stored webhook events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.events.sessions import get_session, list_sessions
from app.http.deps import SessionsReadCaller, SettingsDep, StoreDep
from schemas.common import Page
from schemas.problems import problems
from schemas.sessions import SessionDetails, SessionQuery, SessionSummary

router = APIRouter(prefix="/v1", tags=["sessions"])


@router.get(
    "/sessions",
    operation_id="list_sessions",
    responses=problems(400, 401, 403, 422, 503),
)
async def list_room_sessions(
    store: StoreDep,
    settings: SettingsDep,
    query: Annotated[SessionQuery, Query()],
    _: SessionsReadCaller,
) -> Page[SessionSummary]:
    """Room sessions (one per LiveKit room sid), newest first; follow `next_page_token`."""
    return await list_sessions(store, query, retention_days=settings.webhook_retention_days)


@router.get(
    "/sessions/{session_id}",
    operation_id="get_session",
    responses=problems(401, 403, 404, 503),
)
async def get_room_session(
    session_id: Annotated[str, Path(max_length=255, description="LiveKit's room sid")],
    store: StoreDep,
    settings: SettingsDep,
    _: SessionsReadCaller,
) -> SessionDetails:
    """One session with its participant timeline and egress."""
    return await get_session(store, session_id, retention_days=settings.webhook_retention_days)
