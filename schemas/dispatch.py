"""Bodies of the agent dispatch routes (contract: Agent dispatch).

The response is LiveKit's own `AgentDispatch` (derived by `schemas.bridge.model_for`). The
create body is LiveKit's `CreateAgentDispatchRequest` without `room`, which the path names,
with the contract's limits (`schemas.common`) applied before LiveKit sees it.
"""

from __future__ import annotations

from typing import Any

from livekit.protocol import agent_dispatch
from pydantic import Field

from schemas.bridge import model_for
from schemas.common import Attributes, Metadata, Name, Page, RequestModel

AgentDispatch = model_for(agent_dispatch.AgentDispatch)
AgentDispatchPage = Page[AgentDispatch]  # type: ignore[valid-type]

_LIVEKIT_REQUEST = model_for(agent_dispatch.CreateAgentDispatchRequest)
#: LiveKit `JobRestartPolicy` by name (`JRP_ON_FAILURE`, `JRP_NEVER`).
JobRestartPolicy: Any = _LIVEKIT_REQUEST.model_fields["restart_policy"].annotation


class CreateDispatchRequest(RequestModel):
    """`POST /v1/rooms/{room}/dispatches` (CreateDispatch): send the agent registered as
    `agent_name` into the room; its job receives `metadata` (and `attributes`) unchanged.

    LiveKit creates the room when it does not exist yet.
    """

    agent_name: Name = Field(min_length=1, description="the worker's registered agent_name")
    metadata: Metadata | None = Field(default=None, description="handed to the job as is")
    attributes: Attributes | None = None
    restart_policy: JobRestartPolicy | None = None
    deployment: Name | None = Field(default=None, description="LiveKit Cloud deployment")

    def to_livekit(self, room: str) -> dict[str, Any]:
        """LiveKit `CreateAgentDispatchRequest` fields (proto names) for `room`."""
        return {**self.model_dump(mode="json", exclude_none=True), "room": room}
