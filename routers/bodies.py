"""Reading a JSON request body as FastAPI does, for a route that serves itself
(`routers.tokens.ParticipantTokenRoute`)."""

from __future__ import annotations

import email.message
import functools
import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

T = TypeVar("T")


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
    """
    raw = await request.body()
    data: Any = None
    if raw:
        data = raw
        if _is_json(request.headers.get("content-type")):
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
