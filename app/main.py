"""`create_app()`: routers, problem+json error handling, request ids, and the lifespan
that owns the LiveKit gateway, the HTTP client, the rate limiter and the store (migrated at
start-up, with the webhook retention task) and closes them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.auth import EndUserVerifier
from app.errors import AppError, BadRequest, InvalidInput
from app.idempotency import PURGE_INTERVAL_SECONDS
from app.idempotency import purge_expired as purge_keys
from app.livekit import LiveKit
from app.settings import Settings, get_settings
from app.store import Store, run_periodically
from app.webhooks import RETENTION_INTERVAL_SECONDS, purge_expired_events
from routers import dispatch, health, rooms, tokens, webhooks
from schemas.problems import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.livekit-control-plane.dev/problems/"
REQUEST_ID_HEADER = "X-Request-ID"
_NOT_JSON = "the body is not valid JSON"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the LiveKit gateway, the outbound HTTP client, the rate limiter and the store
    (migrated to the newest schema; see `_start_housekeeping` for its purges); close them."""
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
    app.state.rate_limiter = MovingWindowRateLimiter(
        storage_from_string(f"async+{settings.rate_limit_storage_url}")
    )
    app.state.store = store = Store(settings.database_url)
    housekeeping: list[asyncio.Task[None]] = []
    try:
        await store.migrate()
        housekeeping = _start_housekeeping(store, settings)
        yield
    finally:
        for task in housekeeping:
            task.cancel()
        await asyncio.gather(*housekeeping, return_exceptions=True)
        await store.aclose()
        await app.state.livekit.aclose()
        await app.state.http.aclose()


def _start_housekeeping(store: Store, settings: Settings) -> list[asyncio.Task[None]]:
    """Periodic purges: expired idempotency keys every 10 minutes, and webhook events past
    WEBHOOK_RETENTION_DAYS hourly (kept forever when it is 0)."""
    jobs = [("idempotency-purge", PURGE_INTERVAL_SECONDS, partial(purge_keys, store))]
    if settings.webhook_retention_days > 0:
        purge_events = partial(purge_expired_events, store, settings.webhook_retention_days)
        jobs.append(("webhook-retention", RETENTION_INTERVAL_SECONDS, purge_events))
    tasks = [
        asyncio.create_task(run_periodically(name, interval, job), name=name)
        for name, interval, job in jobs
    ]
    return tasks


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. `settings` defaults to the environment's (`get_settings()`)."""
    app = FastAPI(
        title="LiveKit control plane",
        version="0.1.0",
        summary="Tokens under policy, REST over LiveKit's server APIs, verified webhooks.",
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Routes are matched in order, one by one: the hot ones (tokens, webhooks) go first.
    for module in (health, tokens, webhooks, rooms, dispatch):
        app.include_router(module.router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Make /openapi.json show the error responses as the handlers below send them.

    FastAPI files a `responses=` model under `application/json` and documents its own
    `HTTPValidationError` for 422; the handlers answer `application/problem+json` with a
    `Problem`. And any operation with a JSON body may answer 400 `malformed_json`.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in components:
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
        problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": HTTPStatus(400).phrase})
                for status, response in responses.items():
                    if status.startswith(("4", "5")) and _is_problem(response):
                        response["content"] = dict(problem_content)
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
                components.pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_problem(response: dict[str, Any]) -> bool:
    """A documented error response the problem handlers answer: one that names
    `application/problem+json`, FastAPI's default 422, or one without content."""
    content = response.get("content")
    if not content:
        return True
    if PROBLEM_JSON in content:
        return True
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == "#/components/schemas/HTTPValidationError")


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-ID`, or a new UUID), echoes it,
    and counts the request in the Prometheus metrics by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given[:128] if given else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode("latin-1")))
                message["headers"] = headers
                route = getattr(scope.get("route"), "path", "unmatched")
                seconds = time.perf_counter() - started
                metrics.observe(scope["method"], route, message["status"], seconds)
            await send(message)

        await self.app(scope, receive, send_with_id)


def problem_response(request: Request, error: AppError) -> JSONResponse:
    """`error` as an RFC 9457 problem document."""
    return _problem(
        request, error.status, error.code, error.title, error.detail, error.headers, error.extra
    )


def _problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", None),
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status >= 500:
        log.warning(
            "%s %s -> %s %s: %s", request.method, request.url.path, exc.status, exc.code, exc.detail
        )
    return problem_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        error = BadRequest(_NOT_JSON, code="malformed_json")
        return problem_response(request, error)
    return problem_response(
        request, InvalidInput("the request is not valid", extra={"errors": errors})
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method ...) as problems too."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == HTTPStatus.BAD_REQUEST:
        # FastAPI's own 400 for a JSON body it cannot even decode (e.g. not UTF-8): the same
        # problem as any other body that is not JSON (`_validation_error`).
        return problem_response(request, BadRequest(_NOT_JSON, code="malformed_json"))
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    headers = dict(exc.headers) if exc.headers else None
    return _problem(request, exc.status_code, code, phrase, str(exc.detail), headers)
