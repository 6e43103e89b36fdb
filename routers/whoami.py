"""`GET /v1/auth/whoami`: the calling service key's name and scopes (never the key)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.callers import Scope
from app.http.deps import CallerDep
from schemas.auth import Whoami
from schemas.problems import problems

router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/auth/whoami", operation_id="whoami", responses=problems(401))
async def whoami(caller: CallerDep) -> Whoami:
    """The key's name, configured scopes and every scope it holds; any valid key may ask."""
    return Whoami(
        name=caller.name,
        scopes=sorted(caller.scopes),
        allowed=[scope.value for scope in Scope if caller.allows(scope)],
    )
