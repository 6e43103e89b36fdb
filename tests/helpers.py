"""Helpers every test tier shares: unique names, the check of a problem+json answer, and
polling until a real component has caught up. (Fixtures live in the conftest files; the
real components they start, in tests/components.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other test uses: `prefix` plus a time-based suffix."""
    return f"{prefix}-{time.monotonic_ns():x}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with `status` and `code` whose `request_id` is the
    response's `X-Request-ID`; returns the problem document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def poll(
    fetch: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 90.0,
    interval: float = 0.5,
) -> T:
    """Await `fetch()` until `accept(result)` holds; returns that result. AssertionError
    with the last result after `timeout` s (generous: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = await fetch()
        if accept(last):
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not reached within {timeout:g} s; last: {last}")
