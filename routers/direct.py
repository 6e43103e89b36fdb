"""Routes served directly: the hot ones (`POST /v1/token`, LiveKit's webhooks), which
FastAPI documents from their endpoints' signatures like any route but which do not go
through its per-request machinery (dependency solving, body handling, response
validation): on a small endpoint that machinery costs more than the endpoint itself. Most
of their requests skip the framework's layers too (`app.middleware.DirectRoutesMiddleware`).

`direct_route(arguments)` makes such a route class (a `DirectRoute`); `dependency` resolves
a dependency (or its override) for it; `read_json_body` reads a JSON body as FastAPI does.
"""

from __future__ import annotations

import contextlib
import email.message
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

T = TypeVar("T")

#: What a direct route's `arguments` function is: the request in, the endpoint's keyword
#: arguments out (raising what FastAPI would raise for the request).
Arguments = Callable[[Request], Awaitable[dict[str, Any]]]


class DirectRoute(APIRoute):
    """A route served directly: `respond(request)` calls the endpoint with the keyword
    arguments of `arguments(request)` (a class attribute, see `direct_route`) and returns
    what it returns: a `Response` as it is, a pydantic model as its JSON (by alias) at the
    route's status code. FastAPI's validation of the returned model is skipped: the
    endpoint builds it, so it is valid already. `app.middleware.DirectRoutesMiddleware`
    calls `respond` ahead of the framework's layers; the router calls it too (through
    `get_route_handler`) for the requests that go the usual way."""

    arguments: Arguments

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
