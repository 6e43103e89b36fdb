"""A SIP call whose LiveKit does not answer by the service's deadline (SIP_CALL_TIMEOUT_SECONDS):
504 `sip_call_timeout`, and the service tries to hang the call up (RemoveParticipant).

LiveKit's SDK test server delays every call here (`X-Lk-Mock: {"delayMs": ...}`), the
hang-up too, so the problem says that hanging up failed and the warning names the call.
That the phone itself gets a CANCEL when LiveKit stops ringing is shown with a real SIP
server and phone in tests/sip/test_calls.py."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from app.http.deps import get_livekit
from app.livekit.gateway import LiveKit
from tests.conftest import API_KEY, API_SECRET, auth

pytestmark = pytest.mark.integration


async def test_call_past_the_deadline_is_504_and_hung_up(app_client, test_server, caplog):
    mock = {"X-Lk-Mock": json.dumps({"delayMs": 8000})}
    body = {
        "sip_trunk_id": "ST_slow",
        "sip_call_to": "+15550100",
        "room_name": "slow-room",
        "participant_identity": "slow-callee",
        "wait_until_answered": True,
    }
    async with (
        app_client(
            test_server.url, livekit_timeout_seconds=0.5, sip_call_timeout_seconds=3
        ) as http,
        aiohttp.ClientSession(headers=mock) as session,
    ):
        gateway = LiveKit(test_server.url, API_KEY, API_SECRET, 0.5, session=session)
        http.app.dependency_overrides[get_livekit] = lambda: gateway
        with caplog.at_level(logging.INFO, logger="app.server_apis.sip"):
            response = await http.post(
                "/v1/sip/participants", json=body, headers=auth("admin"), timeout=30
            )
    assert response.status_code == 504, response.text
    problem = response.json()
    assert problem["code"] == "sip_call_timeout"
    assert "+15550100 was not answered within 3 s" in problem["detail"]
    assert "hanging it up failed" in problem["detail"]
    assert any(
        "could not hang up slow-callee in room slow-room" in r.getMessage() for r in caplog.records
    )
