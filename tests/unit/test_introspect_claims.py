"""`/v1/tokens/introspect` with validly signed tokens whose claims are odd: 200 with what
can be read, or `{valid: false, reason}`; never a 5xx."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import API_KEY, API_SECRET, auth

UNUSED_LIVEKIT = "http://127.0.0.1:9"
NOW = int(time.time())
BASE = {"iss": API_KEY, "sub": "svc", "nbf": NOW - 10, "exp": NOW + 600}

ODD_CLAIMS = {
    "metadata-number": {"metadata": 12},
    "metadata-object": {"metadata": {"a": 1}},
    "attributes-numbers": {"attributes": {"a": 1, "b": [2]}},
    "attributes-list": {"attributes": ["a"]},
    "exp-1e20": {"exp": 10**20},
    "nbf-negative-huge": {"nbf": -(10**20)},
    "exp-float": {"exp": NOW + 600.5},
    "missing-sub": {"sub": None},
    "sub-number": {"sub": 7},
    "name-object": {"name": {"x": 1}},
    "kind-number": {"kind": 3},
    "video-string": {"video": "admin"},
    "video-odd-fields": {"video": {"roomJoin": "yes", "room": 5, "canPublishSources": "cam"}},
    "sip-list": {"sip": [1]},
    "room-config-string": {"roomConfig": "x"},
    "room-config-odd": {"roomConfig": {"agents": "a", "maxParticipants": -1}},
}


@pytest.mark.parametrize("odd", ODD_CLAIMS.values(), ids=ODD_CLAIMS.keys())
async def test_odd_claims_never_give_a_5xx(app_client, odd):
    claims = {**BASE, **odd}
    claims = {k: v for k, v in claims.items() if v is not None}
    token = jwt.encode(claims, API_SECRET)
    async with app_client(UNUSED_LIVEKIT) as http:
        response = await http.post(
            "/v1/tokens/introspect", json={"token": token}, headers=auth("minter")
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["valid"], bool)
    if not body["valid"]:
        assert body["reason"] in {"invalid_claims", "expired", "not_yet_valid"}, body
