"""`create_app()` assembles the app: settings, the request layers of `app.http.middleware`
(request ids, access log, header and body limits, authentication before the body), the
routers, the problem+json handlers of `app.http.problems`, and the lifespan that owns the
LiveKit gateway, the HTTP client, the rate limiter and the store (migrated at start-up,
with its housekeeping tasks, kept in `app.state.housekeeping`) and closes them."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from app.auth.callers import EndUserVerifier
from app.config.settings import Settings, get_settings
from app.core.logs import configure_logging_once
from app.events.recordings import RETENTION_INTERVAL_SECONDS as RECORDINGS_RETENTION_INTERVAL
from app.events.recordings import RecordingsBucket, catalog_writer, purge_expired_recordings
from app.events.streams import EventFollower
from app.events.webhooks import RETENTION_INTERVAL_SECONDS, purge_expired_events
from app.http.idempotency import PURGE_INTERVAL_SECONDS
from app.http.idempotency import purge_expired as purge_keys
from app.http.middleware import (
    BodyLimitMiddleware,
    EarlyAuthMiddleware,
    HeaderLimitMiddleware,
    RequestContextMiddleware,
)
from app.http.problems import add_exception_handlers, document_problems
from app.http.ratelimits import RateLimiter
from app.http.request_ids import REQUEST_ID_HEADER
from app.livekit.gateway import LiveKit
from app.livekit.services import LIVEKIT_SERVICES
from app.store.engine import Store, run_periodically
from routers import console, health, recordings, sessions, tokens, usage, webhooks, whoami
from routers.direct import DirectRoute, DirectRoutesMiddleware


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the LiveKit gateway, the outbound HTTP client, the rate limiter, the store
    (migrated to the newest schema; see `_start_housekeeping` for its purges) and the event
    streams' follower (`app.events.streams`); close them.
    Once started, the start-up heap is kept out of the garbage collector's way
    (`_freeze_startup_heap`)."""
    settings: Settings = app.state.settings
    if not settings.livekit_url:
        raise RuntimeError("LIVEKIT_URL is not set (`python -m app` starts a dev server for you)")
    app.state.livekit = LiveKit(
        settings.livekit_url,
        settings.api_key,
        settings.api_secret,
        settings.livekit_timeout_seconds,
    )
    app.state.http = httpx.AsyncClient(timeout=settings.livekit_timeout_seconds)
    policy = settings.effective_token_policy
    app.state.end_user_verifier = (
        EndUserVerifier(policy.end_users, app.state.http) if policy.end_users else None
    )
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_storage_url, settings.rate_limit_strategy
    )
    app.state.store = store = Store(
        settings.database_url.get_secret_value(),
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        command_timeout_seconds=settings.database_command_timeout_seconds,
    )
    app.state.recordings_bucket = bucket = _recordings_bucket(settings)
    store.events.add_writer(catalog_writer(store))
    app.state.event_follower = follower = EventFollower(
        store, max_streams_per_key=settings.stream_max_per_key
    )
    housekeeping: list[asyncio.Task[None]] = []
    try:
        await store.migrate()
        housekeeping = app.state.housekeeping = _start_housekeeping(store, settings, bucket)
        follower.start()
        _freeze_startup_heap()
        yield
    finally:
        for task in housekeeping:
            task.cancel()
        await asyncio.gather(*housekeeping, return_exceptions=True)
        await follower.aclose()
        await store.aclose()
        await app.state.livekit.aclose()
        await app.state.http.aclose()


def _freeze_startup_heap() -> None:
    """Once per process, after the first start-up: collect, then move every object still
    alive (the modules, the app, its routes and models, about 200,000 objects) to the
    garbage collector's permanent generation (`gc.freeze`). They live as long as the
    process, so a full collection had nothing to find in them, yet walked them all: a
    136 ms pause of the event loop every few seconds under load, every request in flight
    waiting (bench/README.md). Reference counting still frees them as usual.

    Only the first start-up in a process freezes (nothing is frozen yet): a process that
    starts several apps (the tests) would otherwise keep each discarded app's reference
    cycles forever."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def _recordings_bucket(settings: Settings) -> RecordingsBucket | None:
    """The recordings bucket of RECORDINGS_S3_*, or None when RECORDINGS_S3_BUCKET is unset
    (the settings refuse a bucket without its access key and secret)."""
    if not settings.recordings_s3_bucket or settings.recordings_s3_secret is None:
        return None
    return RecordingsBucket(
        endpoint=settings.recordings_s3_endpoint,
        bucket=settings.recordings_s3_bucket,
        region=settings.recordings_s3_region,
        access_key=settings.recordings_s3_access_key or "",
        secret=settings.recordings_s3_secret,
        link_seconds=settings.recordings_link_seconds,
    )


def _start_housekeeping(
    store: Store, settings: Settings, bucket: RecordingsBucket | None
) -> list[asyncio.Task[None]]:
    """Periodic purges: expired idempotency keys every 10 minutes, webhook events past
    WEBHOOK_RETENTION_DAYS hourly (kept forever when it is 0), and recordings (object and
    entry) past RECORDINGS_RETENTION_DAYS hourly (kept when it is unset)."""
    jobs = [("idempotency-purge", PURGE_INTERVAL_SECONDS, partial(purge_keys, store))]
    if settings.webhook_retention_days > 0:
        purge_events = partial(purge_expired_events, store, settings.webhook_retention_days)
        jobs.append(("webhook-retention", RETENTION_INTERVAL_SECONDS, purge_events))
    if settings.recordings_retention_days:
        days = settings.recordings_retention_days
        purge_recordings = partial(purge_expired_recordings, store, bucket, days)
        jobs.append(("recordings-retention", RECORDINGS_RETENTION_INTERVAL, purge_recordings))
    tasks = [
        asyncio.create_task(run_periodically(name, interval, job), name=name)
        for name, interval, job in jobs
    ]
    return tasks


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. `settings` defaults to the environment's (`get_settings()`).
    The process's logging is configured from them, once (`app.core.logs.configure_logging_once`),
    so that any server running the app logs as `python -m app` does."""
    app = FastAPI(
        title="LiveKit control plane",
        version="0.1.0",
        summary="Tokens under policy, REST over LiveKit's server APIs, verified webhooks.",
        lifespan=lifespan,
        # The service reports through /metrics (Prometheus) and its log lines; FastAPI's
        # own OpenTelemetry, on by default, would look for a global provider on every
        # request (about 3% of a token request) to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings or get_settings()
    configure_logging_once(app.state.settings)
    # Added innermost first: inside Starlette's ServerErrorMiddleware a request passes
    # HeaderLimit, EarlyAuth, BodyLimit, then the routes (see app.http.middleware);
    # `_add_outer_layers` puts the request context and CORS around all of them.
    for layer in (BodyLimitMiddleware, EarlyAuthMiddleware, HeaderLimitMiddleware):
        app.add_middleware(layer)
    add_exception_handlers(app)
    # Routes are matched in order, one by one. The routes served directly (the token
    # endpoint, LiveKit's webhooks: `routers.direct`) come first, before FastAPI's own
    # documentation routes too, and sit on the app's own router: FastAPI 0.165 matches an
    # included router's routes through a layer of its own, per router and per request
    # (about a tenth of a token request, bench/README.md), and these routes need nothing an
    # inclusion adds (their dependencies, overrides included, are resolved by
    # `routers.direct`). Every other route is included as usual. Most requests to the
    # direct routes do not even reach the router: `DirectRoutesMiddleware` serves them.
    direct_routes = [
        route
        for module in (tokens, webhooks)
        for route in module.direct_router.routes
        if isinstance(route, DirectRoute)
    ]
    app.router.routes[:0] = direct_routes
    for router in _routers():
        app.include_router(router)
    document_problems(app)
    _add_outer_layers(app, app.state.settings, direct_routes)
    return app


def _routers() -> list[APIRouter]:
    """The routers `create_app` includes, in order (the order of /openapi.json's paths):
    health, tokens and webhooks, each LiveKit service's in `app.livekit.services.LIVEKIT_SERVICES`,
    then sessions, usage, recordings, whoami and the console."""
    services: list[APIRouter] = [
        importlib.import_module(service.router).router for service in LIVEKIT_SERVICES
    ]
    return [
        health.router,
        tokens.router,
        webhooks.router,
        *services,
        sessions.router,
        usage.router,
        recordings.router,
        whoami.router,
        console.router,
    ]


#: What a browser page may send and read (contract: Conventions, Browsers).
CORS_ALLOW_HEADERS = ("Content-Type", "Authorization", "Idempotency-Key", "Last-Event-ID")
CORS_EXPOSE_HEADERS = (REQUEST_ID_HEADER, "Retry-After", "Idempotent-Replayed")
CORS_MAX_AGE_SECONDS = 600


def _add_outer_layers(app: FastAPI, settings: Settings, direct_routes: list[DirectRoute]) -> None:
    """Wrap the whole stack, Starlette's `ServerErrorMiddleware` included, in
    `RequestContextMiddleware` (outermost: every response, a CORS preflight too, carries
    `X-Request-ID`) and Starlette's `CORSMiddleware` for `CORS_ALLOW_ORIGINS`, so that every
    response to an allowed origin carries `Access-Control-Allow-Origin`, a 500 included
    (`app.http.problems` renders it inside CORS). Preflights (`OPTIONS` with
    `Access-Control-Request-Method`) are answered by CORS: 200 for an allowed origin,
    method and headers, 400 otherwise (Fetch standard, CORS protocol). Just inside CORS,
    `DirectRoutesMiddleware` serves `direct_routes` ahead of the rest (see its doc)."""
    origins = settings.effective_cors_origins
    build = app.build_middleware_stack

    def build_with_outer_layers() -> ASGIApp:
        stack: ASGIApp = DirectRoutesMiddleware(build(), direct_routes, app.exception_handlers)
        if origins:
            stack = CORSMiddleware(
                stack,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=list(CORS_ALLOW_HEADERS),
                expose_headers=list(CORS_EXPOSE_HEADERS),
                max_age=CORS_MAX_AGE_SECONDS,
            )
        return RequestContextMiddleware(stack)

    app.build_middleware_stack = build_with_outer_layers  # type: ignore[method-assign]
