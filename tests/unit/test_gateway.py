"""The gateway's one call form: any exception livekit-api raises becomes a contract error;
and each call's token is the one livekit-api would sign for it."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api

from app.core.errors import NotFound, UpstreamError
from app.livekit.gateway import CallAuthorization, LiveKit
from app.livekit.services import LIVEKIT_SERVICES
from tests.unit.test_token_signing import assert_same_token, grants_of

KEY, SECRET = "APIgateway", "secret-" * 6


async def _raises(exc: BaseException) -> None:
    raise exc


@pytest.fixture
async def gateway():
    lk = LiveKit("http://127.0.0.1:9", KEY, SECRET, 1.0)
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


SERVICES = tuple(service.client for service in LIVEKIT_SERVICES)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    grants=st.none() | grants_of(api.VideoGrants),
    sip=st.none() | grants_of(api.SIPGrants),
    service=st.sampled_from(SERVICES),
)
async def test_each_call_carries_the_header_livekit_api_would_send(grants, sip, service):
    plain = api.LiveKitAPI("http://127.0.0.1:9", KEY, SECRET)
    lk = LiveKit("http://127.0.0.1:9", KEY, SECRET, 1.0)
    try:
        ours = getattr(lk, service)
        assert isinstance(ours._auth_header, CallAuthorization)
        with time_machine.travel(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC), tick=False):
            try:
                expected = getattr(plain, service)._auth_header(grants, sip)
            except ValueError as refused:  # a room-join grant: no identity in a call's token
                with pytest.raises(ValueError, match=str(refused)):
                    ours._auth_header(grants, sip)
                return
            mine = ours._auth_header(grants, sip)["authorization"].removeprefix("Bearer ")
            reference = expected["authorization"].removeprefix("Bearer ")
            assert_same_token(mine, reference, SECRET)
    finally:
        await plain.aclose()
        await lk.aclose()
