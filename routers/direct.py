"""Routes served directly: the hot ones (`POST /v1/token`, LiveKit's webhooks), which
FastAPI documents from their endpoints' signatures like any route but which do not go
through its per-request machinery (dependency solving, body handling, response
validation): on a small endpoint that machinery costs more than the endpoint itself. Most
of their requests skip the framework's layers too: `DirectRoutesMiddleware` serves them
when the admission layers of `app.http.middleware` would pass them on unchanged.

`direct_route(arguments)` makes such a route class (a `DirectRoute`); `dependency` resolves
a dependency (or its override) for it; `read_json_body` reads a JSON body as FastAPI does;
`DirectRoutesMiddleware` is the ASGI layer that serves the direct routes ahead of the rest.
"""

from __future__ import annotations

import contextlib
import email.message
import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

from app.http.middleware import (
    MAX_BODY_BYTES,
    body_framing,
    credential_needed,
    credential_refusal,
    header_problem,
)

T = TypeVar("T")

#: What a direct route's `arguments` function is: the request in, the endpoint's keyword
#: arguments out (raising what FastAPI would raise for the request), declared as a
#: `TypedDict` whose fields are the endpoint's parameters (`check_arguments`).
Arguments = Callable[[Request], Awaitable[Mapping[str, Any]]]


class DirectRoute(APIRoute):
    """A route served directly: `respond(request)` calls the endpoint with the keyword
    arguments of `arguments(request)` (a class attribute, see `direct_route`) and returns
    what it returns: a `Response` as it is, a pydantic model as its JSON (by alias) at the
    route's status code. FastAPI's validation of the returned model is skipped: the
    endpoint builds it, so it is valid already. `DirectRoutesMiddleware`
    calls `respond` ahead of the framework's layers; the router calls it too (through
    `get_route_handler`) for the requests that go the usual way."""

    arguments: Arguments

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        check_arguments(self.arguments, endpoint)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.respond

    async def respond(self, request: Request) -> Response:
        """The endpoint's answer to `request`; raises what the endpoint or `arguments` raise."""
        result = await self.endpoint(**await self.arguments(request))
        if isinstance(result, Response):
            return result
        assert isinstance(result, BaseModel), f"{self.endpoint.__name__} returned {result!r}"
        body = result.model_dump_json(by_alias=True)
        return Response(body, status_code=self.status_code or 200, media_type="application/json")


def check_arguments(arguments: Arguments, endpoint: Callable[..., Any]) -> None:
    """Raise `TypeError` unless the `TypedDict` that `arguments` returns has exactly
    `endpoint`'s parameters, each of the parameter's type (its `Annotated` dependency
    aside). Run when a direct route is added (at import), so an endpoint that gains,
    loses or retypes a parameter cannot be served with the arguments of its old signature."""
    returned = typing.get_type_hints(arguments).get("return")
    given = typing.get_type_hints(returned) if typing.is_typeddict(returned) else None
    taken = {k: v for k, v in typing.get_type_hints(endpoint).items() if k != "return"}
    if given != taken:
        raise TypeError(
            f"{arguments.__qualname__} must return a TypedDict of exactly "
            f"{endpoint.__qualname__}'s parameters {taken}, not {given}"
        )


def direct_route(arguments: Arguments) -> type[DirectRoute]:
    """A `DirectRoute` class whose endpoint takes `await arguments(request)` as its keyword
    arguments. Pass it as `route_class_override=` when adding the route."""
    return type("DirectRoute", (DirectRoute,), {"arguments": staticmethod(arguments)})


async def dependency(request: Request, call: Callable[[Request], Awaitable[T]]) -> T:
    """`call(request)`, or its replacement in `app.dependency_overrides` (called with the
    request too), as FastAPI would resolve a dependency that takes only the request."""
    resolve = request.app.dependency_overrides.get(call, call)
    resolved: T = await resolve(request)
    return resolved


async def read_json_body(
    request: Request, adapter: TypeAdapter[T]
) -> tuple[T | None, RequestValidationError | None]:
    """The body validated by `adapter`, or the `RequestValidationError` FastAPI would raise
    for it (errors located under `body`, as FastAPI's `loc`), which the caller raises when
    FastAPI would: after the route's dependencies.

    FastAPI's rules (`fastapi.routing.get_request_handler`, strict content type, its
    default): an empty body is None; a body is parsed as JSON only under a JSON media type
    (`application/json` or `application/*+json`), else it is validated as bytes. Raises at
    once, as FastAPI does, `RequestValidationError` (`json_invalid`) for a body that is not
    JSON and a 400 `HTTPException` for one that cannot be decoded at all (not UTF-8, or
    nested deeper than Python's recursion limit).

    A JSON body is first parsed and validated in one pass by pydantic (`validate_json`);
    only when that fails is it read FastAPI's way, which then says what is wrong. Both
    ways accept the same bodies with the same result, except a few that pydantic's parser
    refuses and Python's `json` reads (a lone surrogate escape, a byte order mark): those
    go FastAPI's way as well (tests/unit/test_token_route_parity.py).
    """
    raw = await request.body()
    json_body = bool(raw) and _is_json(request.headers.get("content-type"))
    if json_body:
        with contextlib.suppress(ValidationError):
            return adapter.validate_json(raw), None
    data: Any = None
    if raw:
        data = raw
        if json_body:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as error:
                invalid = {
                    "type": "json_invalid",
                    "loc": ("body", error.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": error.msg},
                }
                raise RequestValidationError([invalid], body=error.doc) from error
            except (ValueError, RecursionError) as error:  # not UTF-8 text, nested too deep
                raise HTTPException(400, "There was an error parsing the body") from error
    try:
        # As FastAPI validates a body field (`fastapi._compat.v2.ModelField.validate`).
        return adapter.validate_python(data, from_attributes=True), None
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        return None, RequestValidationError(errors, body=data)


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """True for `application/json` and `application/<anything>+json` (parameters aside).
    Remembered for the few media types clients send (parsing one costs more than the
    rest of reading a small body)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class DirectRoutesMiddleware:
    """The direct routes (`DirectRoute`s: `POST /v1/token`, LiveKit's webhooks) served
    ahead of Starlette's and FastAPI's own layers (`ServerErrorMiddleware`, the admission
    layers 2 to 4 of `app.http.middleware`, `ExceptionMiddleware`, the router and the per-route
    wrapper), which cost a token request more than its endpoint (bench/README.md).

    A request takes this way only when those layers would hand it to the route unchanged:
    its method and path are exactly a direct route's, its header fields are within
    `HeaderLimitMiddleware`'s limits, its body is framed by a `Content-Length` of at most
    `MAX_BODY_BYTES`, and `EarlyAuthMiddleware` would not refuse it (`_admitted`). Any
    other request goes the usual way, where those layers refuse it: each refusal keeps one
    place. What the route raises is answered by the app's handler for it
    (`exception_handlers`, the app's when its stack is built, looked up as
    `_exception_handler` says), as `ExceptionMiddleware` and, for an exception nobody
    expected, `ServerErrorMiddleware` would; the route and its endpoint are in the scope, as
    the router puts them.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: list[DirectRoute],
        exception_handlers: Mapping[Any, HTTPExceptionHandler],
    ) -> None:
        self.app = app
        self._handlers = dict(exception_handlers)
        #: (method, path) -> the route and the credential it needs (`credential_needed`).
        self._routes = {
            (method, route.path): (route, credential_needed(route))
            for route in routes
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self._routes.get((scope["method"], scope["path"]))
            if found is not None and await _admitted(found[1], scope):
                await self._serve(found[0], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, route: DirectRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
        request = Request(scope, receive, send)
        try:
            response = await route.respond(request)
        except Exception as exc:
            handler = _exception_handler(self._handlers, exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


async def _admitted(needs: str | None, scope: Scope) -> bool:
    """True when the admission layers would pass the request on unchanged: header fields
    within limits, a body framed by a `Content-Length` of at most `MAX_BODY_BYTES`, and no
    early 401 for a route whose `credential_needed` is `needs`."""
    headers = scope["headers"]
    declared, chunked = body_framing(headers)
    return (
        declared.isdigit()
        and not chunked
        and int(declared) <= MAX_BODY_BYTES
        and header_problem(headers) is None
        and await credential_refusal(needs, scope) is None
    )


def _exception_handler(
    handlers: Mapping[Any, HTTPExceptionHandler], exc: Exception
) -> HTTPExceptionHandler | None:
    """The handler registered for an `HTTPException`'s status code, else for `exc`'s class
    or its nearest base class, else None (Starlette's lookup, `ExceptionMiddleware`)."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
