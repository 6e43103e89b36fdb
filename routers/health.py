"""Liveness, readiness and metrics (contract: Operations)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from app.core import metrics
from app.http.deps import LiveKitDep, SettingsDep, StoreDep
from schemas.health import Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    """The process is up; does no I/O."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a check failed"}},
)
async def readyz(livekit: LiveKitDep, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """LiveKit answers an authenticated call and the event store takes a write; `503` names
    the check that failed. Each check's result is reused for READYZ_CACHE_SECONDS, and
    concurrent requests share one probe: a request in between does no I/O."""
    max_age = settings.readyz_cache_seconds
    livekit_check, store_check = await asyncio.gather(
        livekit.readiness(max_age), store.readiness(max_age)
    )
    checks = {"livekit": livekit_check, "event_store": store_check}
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics() -> Response:
    """Prometheus text format: requests and latency by route template."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
