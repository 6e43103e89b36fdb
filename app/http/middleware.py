"""The ASGI layers every request passes before a route (part of the app's HTTP assembly,
like `app.main` and `app.http.problems`). From the outside in (Starlette's CORS middleware and its
`ServerErrorMiddleware` sit between 1 and 2, see `app.main`):

1. `RequestContextMiddleware`: the request id (`X-Request-ID`: the caller's when it is 1 to
   128 visible ASCII characters, else a new UUID from `new_request_id`), one access log line
   and the Prometheus metrics per request, and the last resort for an exception nobody
   expected: a problem+json `500 internal_error` carrying the request id (never a trace or
   a secret), logged with its traceback and counted in `/metrics`;
2. `HeaderLimitMiddleware`: more than `MAX_HEADERS` header fields, one field over
   `MAX_HEADER_BYTES`, or all of them over `MAX_HEADER_BLOCK_BYTES` is `431`;
3. `EarlyAuthMiddleware`: a request to a route that needs a service key, without a
   configured one, is `401` before its body is read (FastAPI reads a JSON body before it
   runs a route's dependencies); so is a request to `/v1/token` whose caller is not
   authenticated (`app.http.deps.authenticate_token_caller`: no credential where the token
   policy admits no anonymous callers, an unknown key, an end-user JWT that does not
   verify), and an unsigned webhook;
4. `BodyLimitMiddleware`: a body over `MAX_BODY_BYTES` is `413`, on the declared
   `Content-Length` before anything is read, else as soon as the bytes received pass it.
   (FastAPI's own `max_body_size` sits outside every user middleware, so it would refuse
   before authentication, and outside CORS; it also answers text/plain in places.)

Each of 2 to 4 answers with a plain ASGI response (`app.http.problems.send_problem`), so CORS,
outside them, adds its headers to these answers as to any other.

`routers.direct.DirectRoutesMiddleware`, just inside CORS, serves the direct routes itself
when 2 to 4 would pass the request on unchanged (it asks `header_problem`, `body_framing`
and `credential_refusal` here), skipping them and the framework's own layers; every other
request, refusals included, goes the way above.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import structlog
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.callers import authenticate_service_key, bearer_credential
from app.core import metrics
from app.core.errors import HeaderFieldsTooLarge, InternalError, PayloadTooLarge, Unauthorized
from app.core.logs import access_logger
from app.http.problems import report_unexpected, send_problem
from app.http.request_ids import REQUEST_ID_HEADER, new_request_id, valid_request_id
from app.livekit.webhook_verification import SIGNATURE_INVALID

#: Largest request body (contract: Conventions), bytes.
MAX_BODY_BYTES = 1024 * 1024
#: Most header fields in one request.
MAX_HEADERS = 100
#: Longest single header field (name and value), bytes.
MAX_HEADER_BYTES = 16 * 1024
#: Longest header block (every name and value), bytes.
MAX_HEADER_BLOCK_BYTES = 64 * 1024


class RequestContextMiddleware:
    """Request id, access log line, metrics and the last-resort 500 (see the module doc).

    The access line (logger `app.access`, INFO) carries `method`, `route` (the template,
    e.g. `/v1/rooms/{room}`), `status`, `duration_ms`, `caller` (a service key's name, a
    token caller's kind and name, or null) and `request_id`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access_log = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        request_id = given.decode("ascii") if valid_request_id(given) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode("ascii")))
                message["headers"] = headers
                seconds = time.perf_counter() - started
                metrics.observe(scope["method"], _route(scope), status, seconds)
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            report_unexpected(state, exc)
            if status == 0:
                error = InternalError()
                await send_problem(scope, send_with_id, error)
        finally:
            method, route = scope["method"], _route(scope)
            self.access_log.info(
                f"{method} {route} {status}",
                method=method,
                route=route,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                caller=state.get("caller"),
                request_id=request_id,
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _route(scope: Scope) -> str:
    """The matched route's template, or `unmatched` (never the raw path: unbounded labels)."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


class HeaderLimitMiddleware:
    """431 for more than `MAX_HEADERS` fields, a field over `MAX_HEADER_BYTES`, or a block
    over `MAX_HEADER_BLOCK_BYTES` (whichever HTTP parser uvicorn runs; see the README)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = header_problem(scope["headers"])
            if problem:
                await send_problem(scope, send, HeaderFieldsTooLarge(problem))
                return
        await self.app(scope, receive, send)


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why `HeaderLimitMiddleware` refuses `headers` (name, value pairs), else None."""
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} header fields; at most {MAX_HEADERS} are accepted"
    total = 0
    for name, value in headers:
        size = len(name) + len(value)
        if size > MAX_HEADER_BYTES:
            shown = name[:64].decode("latin-1")
            return f"the header {shown!r} is over {MAX_HEADER_BYTES} bytes"
        total += size
    if total > MAX_HEADER_BLOCK_BYTES:
        return f"the header fields are over {MAX_HEADER_BLOCK_BYTES} bytes in all"
    return None


class EarlyAuthMiddleware:
    """401 before the body is read for a route that needs a service key (its dependencies
    include `app.http.deps.get_caller`) presented without a configured key, for `/v1/token`
    (`app.http.deps.get_token_caller`) when its caller is not authenticated
    (`app.http.deps.authenticate_token_caller`), and for a route that reads `Authorization`
    itself (LiveKit's webhooks) presented without one. The route's own dependency still
    decides scopes (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs: dict[int, str | None] = {}
        # (method, path) -> route, for routes without path parameters: a hot route such as
        # /v1/token is found without trying every route (bounded: routes x methods).
        self._static: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = await self._refusal(scope)
            if error is not None:
                await send_problem(scope, send, error)
                return
        await self.app(scope, receive, send)

    async def _refusal(self, scope: Scope) -> Unauthorized | None:
        app = scope.get("app")
        if app is None:
            return None
        route = self._static.get((scope["method"], scope["path"]))
        if route is None:
            route = _match(app.router.routes, scope)
            if route is None:
                return None
            if isinstance(route, Route) and not route.param_convertors:
                self._static[(scope["method"], scope["path"])] = route
        if id(route) not in self._needs:
            self._needs[id(route)] = credential_needed(route)
        error = await credential_refusal(self._needs[id(route)], scope)
        if error is not None:
            scope["route"] = route  # the access line and metrics name the route of a refusal
        return error


async def credential_refusal(needs: str | None, scope: Scope) -> Unauthorized | None:
    """The 401 `EarlyAuthMiddleware` answers before the body is read, for a request to a
    route whose `credential_needed` is `needs`, else None."""
    if needs is None:
        return None
    if needs == "token_caller":  # /v1/token: the caller authenticated, whatever the body
        from app.http.deps import authenticate_token_caller  # deps imports the app's services

        try:
            await authenticate_token_caller(scope)
        except Unauthorized as refusal:
            return refusal
        return None
    app = scope["app"]
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    text = authorization.decode("latin-1")
    if needs == "authorization":  # LiveKit's webhooks: the signature is checked later
        if text.strip():
            return None
        return Unauthorized("webhook refused: no Authorization header", code=SIGNATURE_INVALID)
    try:
        authenticate_service_key(bearer_credential(text), app.state.settings.service_keys)
    except Unauthorized as refusal:
        return refusal
    return None


def _match(routes: list[Any], scope: Scope) -> Any:
    """The first route that fully matches `scope` (method and path), else None."""
    for route in _routes(routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps an included router as one
    entry holding the `original_router`)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def credential_needed(route: Any) -> str | None:
    """`service_key` when `route` depends on `app.http.deps.get_caller`, `token_caller` when on
    `app.http.deps.get_token_caller`, `authorization` when it reads the Authorization header
    itself, else None."""
    from app.http.deps import get_caller, get_token_caller  # deps imports the app's services

    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = [dependant]
    while stack:
        current = stack.pop()
        if current.call is get_caller:
            return "service_key"
        if current.call is get_token_caller:
            return "token_caller"
        stack.extend(current.dependencies)
    if any(p.alias.lower() == "authorization" for p in dependant.header_params):
        return "authorization"
    return None


class BodyLimitMiddleware:
    """413 for a body over `MAX_BODY_BYTES`: at once on a larger `Content-Length`, else when
    the received bytes pass it (the route's response is then replaced by the 413).

    A body framed by its `Content-Length` alone (no `Transfer-Encoding`) is not counted: the
    server reads exactly that many bytes as the body (RFC 9112 §6.3), so the declared length
    is the body's. Only a chunked body is counted as it arrives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = body_framing(scope["headers"])
        if declared.isdigit() and not chunked:
            if int(declared) > MAX_BODY_BYTES:
                await send_problem(scope, send, _too_large())
                return
            await self.app(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    over = True
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app answers to the cut body, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await send_problem(scope, send, _too_large())


def body_framing(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """The first `Content-Length` value (b"" without one), and whether the body is sent
    with a `Transfer-Encoding` (chunked)."""
    declared, chunked = b"", False
    for name, value in headers:
        if name == b"content-length":
            declared = declared or value
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
