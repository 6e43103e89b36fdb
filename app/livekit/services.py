"""The LiveKit services the control plane serves as REST routes, in one table.

Each row ties a service's three modules together: its gateway client (`app.livekit.gateway.LiveKit`
reads the table to sign the service's calls), its router (`app.main.create_app` includes
the routers in the table's order) and its scopes (`app.http.deps` builds the service's read and
write callers from them). `tests/unit/test_services.py` checks that every row's router is
in the app and that its scopes guard its routes.

The `Scope` members, the gateway's typed client properties and the `Annotated` caller
aliases stay declared where they are: mypy reads them statically, so a table cannot
generate them; the table names them instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.callers import Scope


@dataclass(frozen=True, slots=True)
class LiveKitService:
    """One of LiveKit's server APIs, served as REST routes.

    - `name`: the service's name in the code (`app/<name>.py`, `schemas/<name>.py`);
    - `client`: the `app.livekit.gateway.LiveKit` property (and livekit-api's `LiveKitAPI`
      attribute) of its Twirp client, e.g. `egress`;
    - `router`: the module path of its `APIRouter` (a name, not the module: `app.http.deps`
      and `app.livekit.gateway` read the table and do not import `routers/`);
    - `read_scope`: the scope its reads need; its `write_scope` admits them too (a
      service's write scope includes reading it; contract: Authentication of callers);
    - `write_scope`: the scope every other call needs.
    """

    name: str
    client: str
    router: str
    read_scope: Scope
    write_scope: Scope

    @property
    def read_scopes(self) -> tuple[Scope, ...]:
        """The scopes of which a caller must hold one to read: `read_scope` (the one a
        403 names), then `write_scope`."""
        return (self.read_scope, self.write_scope)


ROOMS = LiveKitService("rooms", "room", "routers.rooms", Scope.ROOMS_READ, Scope.ROOMS_WRITE)
DISPATCH = LiveKitService(
    "dispatch", "agent_dispatch", "routers.dispatch", Scope.ROOMS_READ, Scope.DISPATCH_WRITE
)
EGRESS = LiveKitService("egress", "egress", "routers.egress", Scope.ROOMS_READ, Scope.EGRESS_WRITE)
INGRESS = LiveKitService(
    "ingress", "ingress", "routers.ingress", Scope.ROOMS_READ, Scope.INGRESS_WRITE
)
SIP = LiveKitService("sip", "sip", "routers.sip", Scope.ROOMS_READ, Scope.SIP_WRITE)

#: Every service, in the order of their routes in the app (and in /openapi.json).
LIVEKIT_SERVICES: tuple[LiveKitService, ...] = (ROOMS, DISPATCH, EGRESS, INGRESS, SIP)
