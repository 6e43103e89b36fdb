"""Every error as an RFC 9457 `application/problem+json` document (part of the app's HTTP
assembly, like `app.main` and `app.http.middleware`).

- `problem_document`: the document of an `AppError` (`type`, `title`, `status`, `detail`,
  `code`, `request_id` and the error's `extra` members);
- `send_problem`: the same as a plain ASGI answer, for the layers of `app.http.middleware`;
- `add_exception_handlers`: the app's four handlers: an `AppError`, FastAPI's request
  validation (400 `malformed_json` for a body that is not JSON, else 422
  `validation_failed`), Starlette's own HTTP errors (an unknown route, a wrong method ...),
  and an exception nobody expected (500 `internal_error`, logged and counted first by
  `report_unexpected`, never a trace or a secret);
- `document_problems`: /openapi.json showing those answers as `Problem` documents
  (`schemas.problems`).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from app.core import metrics
from app.core.errors import AppError, BadRequest, InternalError, InvalidInput
from schemas.problems import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.livekit-control-plane.dev/problems/"

_NOT_JSON = "the body is not valid JSON"


def problem_document(error: AppError, request_id: str | None) -> dict[str, Any]:
    """`error` as an RFC 9457 problem document (`type`, `title`, `status`, `detail`,
    `code`, `request_id` and the error's `extra` members)."""
    return {
        "type": f"{PROBLEM_TYPE_BASE}{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "request_id": request_id,
        **error.extra,
    }


async def send_problem(scope: Scope, send: Send, error: AppError) -> None:
    """Answer the request with `error` as `application/problem+json` (plain ASGI)."""
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps(problem_document(error, request_id), ensure_ascii=False).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def report_unexpected(state: dict[str, Any], exc: Exception) -> None:
    """Log `exc` with its traceback and the request id (from the request's scope `state`)
    and count it in `/metrics`, once per request: Starlette's `ServerErrorMiddleware` hands
    it to the app's handler (`_unexpected_error`), which reports it before the 500 is sent,
    then re-raises it to `app.http.middleware.RequestContextMiddleware`, which reports only what
    nobody did."""
    if state.get("unexpected_reported"):
        return
    state["unexpected_reported"] = True
    metrics.UNHANDLED.labels(exc.__class__.__name__).inc()
    log.exception(
        "unhandled %s",
        exc.__class__.__name__,
        exc_info=exc,
        extra={"request_id": state.get("request_id")},
    )


def add_exception_handlers(app: FastAPI) -> None:
    """Register the handlers that answer every error of `app` as a problem (see the module
    doc); `routers.direct.DirectRoutesMiddleware` answers with the same handlers."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


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
    error = AppError(detail, code=code, headers=headers, extra=extra)
    error.status, error.title = status, title  # type: ignore[misc]  # an instance's own
    body = problem_document(error, getattr(request.state, "request_id", None))
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status >= 500:
        log.warning(
            "%s %s -> %s %s: %s", request.method, request.url.path, exc.status, exc.code, exc.detail
        )
    return problem_response(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """An exception nobody expected, as Starlette's `ServerErrorMiddleware` hands it over:
    a problem+json `500 internal_error` with the request id, never a trace or a secret.
    It is logged with its traceback and the request id and counted in `/metrics` before the
    answer leaves (`report_unexpected`)."""
    report_unexpected(request.scope.setdefault("state", {}), exc)
    error = InternalError()
    return problem_response(request, error)


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


def document_problems(app: FastAPI) -> None:
    """Make /openapi.json show the error responses as the handlers above send them.

    FastAPI files a `responses=` model under `application/json` and documents its own
    `HTTPValidationError` for 422; the handlers answer `application/problem+json` with a
    `Problem`. And any operation with a JSON body may answer 400 `malformed_json`, and 413
    for a body over 1 MiB (`app.http.middleware.BodyLimitMiddleware`).
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
                    responses.setdefault("413", {"description": "the body is over 1 MiB"})
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
