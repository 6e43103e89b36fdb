"""Agent dispatch routes (contract: Agent dispatch), over LiveKit's AgentDispatchService."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from app.http.deps import DispatchReadCaller, DispatchWriteCaller, IdempotencyDep, LiveKitDep
from app.server_apis import dispatch
from routers.params import RoomName
from schemas.bridge import to_json, to_page
from schemas.dispatch import AgentDispatch, AgentDispatchPage, CreateDispatchRequest
from schemas.problems import LIVEKIT_PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["dispatch"])

DispatchId = Annotated[str, Path(description="the dispatch's id, `AD_...`")]


@router.post(
    "/rooms/{room}/dispatches",
    status_code=201,
    operation_id="create_dispatch",
    response_model=AgentDispatch,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 400, 409, 503),
)
async def create_dispatch(
    room: RoomName,
    body: CreateDispatchRequest,
    livekit: LiveKitDep,
    _: DispatchWriteCaller,
    idempotent: IdempotencyDep,
) -> Response:
    """Send the agent `agent_name` into `room` (created if absent); its job gets `metadata`.
    A retry with the same `Idempotency-Key` and body gets the first response, not a second
    dispatch."""
    return await idempotent.run(lambda: dispatch.create_dispatch(livekit, body.to_livekit(room)))


@router.get(
    "/rooms/{room}/dispatches",
    operation_id="list_dispatches",
    response_model=AgentDispatchPage,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def list_dispatches(
    room: RoomName, livekit: LiveKitDep, _: DispatchReadCaller
) -> dict[str, Any]:
    """Every dispatch of `room`, explicit or automatic (one page); 404 `room_not_found`."""
    found = await dispatch.list_dispatches(livekit, room)
    return to_page(found)


@router.get(
    "/rooms/{room}/dispatches/{dispatch_id}",
    operation_id="get_dispatch",
    response_model=AgentDispatch,
    response_model_exclude_unset=True,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def get_dispatch(
    room: RoomName, dispatch_id: DispatchId, livekit: LiveKitDep, _: DispatchReadCaller
) -> dict[str, Any]:
    """One dispatch; 404 `room_not_found` or `dispatch_not_found`."""
    return to_json(await dispatch.get_dispatch(livekit, room, dispatch_id))


@router.delete(
    "/rooms/{room}/dispatches/{dispatch_id}",
    status_code=204,
    operation_id="delete_dispatch",
    response_class=Response,
    responses=problems(*LIVEKIT_PROBLEMS, 404),
)
async def delete_dispatch(
    room: RoomName, dispatch_id: DispatchId, livekit: LiveKitDep, _: DispatchWriteCaller
) -> None:
    """Delete a dispatch: LiveKit dispatches it no more; 404 as for GET."""
    await dispatch.delete_dispatch(livekit, room, dispatch_id)
