"""Agent dispatch over LiveKit's AgentDispatchService (contract: Agent dispatch).

A dispatch asks LiveKit to send the agent worker registered under `agent_name` into a room;
the worker receives a job carrying the dispatch's `metadata`. Every call goes through the
`LiveKit` gateway, so each LiveKit failure is already the contract's status.

What the LiveKit server (v1.13, checked against `livekit-server --dev`) answers:

| call | missing room | missing dispatch |
|---|---|---|
| CreateDispatch | creates the room | - |
| ListDispatch (with or without `dispatch_id`) | `unavailable` after ~3 s | an empty list |
| DeleteDispatch | `unavailable` after ~3 s | `not_found` |

So the calls on an existing room check it with ListRooms first (a quick, exact answer):
404 `room_not_found` when absent, 404 `dispatch_not_found` for a dispatch it does not hold.
A room that LiveKit creates lists the automatic dispatch (`agent_name` empty) for workers
registered without an agent name next to the explicit ones.
"""

from __future__ import annotations

from typing import Any

from livekit import api

from app.core.errors import NotFound
from app.livekit.gateway import LiveKit
from app.server_apis.rooms import ROOM_NOT_FOUND, get_room
from schemas.bridge import to_proto

DISPATCH_NOT_FOUND = "dispatch_not_found"


async def create_dispatch(lk: LiveKit, fields: dict[str, Any]) -> api.AgentDispatch:
    """CreateDispatch with `fields` (LiveKit `CreateAgentDispatchRequest` proto names,
    `room` and `agent_name` included). Returns the `AgentDispatch`, its `id` `AD_...`.

    LiveKit creates the room when it does not exist. Raises the gateway's `AppError`s.
    """
    request = to_proto(fields, api.CreateAgentDispatchRequest)
    return await lk.run(lk.agent_dispatch.create_dispatch(request))


async def list_dispatches(lk: LiveKit, room: str) -> list[api.AgentDispatch]:
    """ListDispatch: every dispatch of `room`, explicit or automatic; 404 `room_not_found`."""
    await get_room(lk, room)
    return await lk.run(lk.agent_dispatch.list_dispatch(room), not_found_code=ROOM_NOT_FOUND)


async def get_dispatch(lk: LiveKit, room: str, dispatch_id: str) -> api.AgentDispatch:
    """ListDispatch(dispatch_id): that dispatch; 404 `room_not_found` / `dispatch_not_found`."""
    await get_room(lk, room)
    found = await lk.run(
        lk.agent_dispatch.get_dispatch(dispatch_id, room), not_found_code=DISPATCH_NOT_FOUND
    )
    if found is None:
        raise _dispatch_not_found(room, dispatch_id)
    return found


async def delete_dispatch(lk: LiveKit, room: str, dispatch_id: str) -> api.AgentDispatch:
    """DeleteDispatch: the deleted `AgentDispatch`; 404 `room_not_found` / `dispatch_not_found`.

    LiveKit stops dispatching it; a job an agent already runs for it is not ended by this.
    """
    await get_room(lk, room)
    return await lk.run(
        lk.agent_dispatch.delete_dispatch(dispatch_id, room), not_found_code=DISPATCH_NOT_FOUND
    )


def _dispatch_not_found(room: str, dispatch_id: str) -> NotFound:
    return NotFound(f"room {room!r} has no dispatch {dispatch_id!r}", code=DISPATCH_NOT_FOUND)
