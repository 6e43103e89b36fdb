"""The gateway's one call form: any exception livekit-api raises becomes a contract error."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import NotFound, UpstreamError
from app.livekit import LiveKit


async def _raises(exc: BaseException) -> None:
    raise exc


@pytest.fixture
async def gateway():
    lk = LiveKit("http://127.0.0.1:9", "key", "secret-" * 6, 1.0)
    yield lk
    await lk.aclose()


@pytest.mark.parametrize("exc", [ValueError("x"), KeyError("k"), TypeError("t"), RuntimeError()])
async def test_an_unexpected_sdk_exception_is_502_not_500(gateway, exc, caplog):
    with pytest.raises(UpstreamError) as caught:
        await gateway.run(_raises(exc), not_found_code="egress_not_found")
    assert caught.value.status == 502 and caught.value.code == "livekit_error"
    assert type(exc).__name__ in caught.value.detail
    assert type(exc).__name__ in caplog.text


async def test_app_errors_pass_through_unchanged(gateway):
    with pytest.raises(NotFound):
        await gateway.run(_raises(NotFound("gone", code="egress_not_found")))


async def test_cancellation_is_not_swallowed(gateway):
    with pytest.raises(asyncio.CancelledError):
        await gateway.run(_raises(asyncio.CancelledError()))
