"""Property over the HTTP endpoint: whatever a caller POSTs to /v1/token, a 201 never carries
an admin-class grant, a TTL over the cap, or an empty room; everything else is 4xx."""

from __future__ import annotations

import jwt
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.conftest import API_SECRET, make_settings
from tests.unit.test_tokens import ADMIN_VIDEO_GRANTS, names

MAX_TTL = 900
POLICY = {
    "max_ttl_seconds": MAX_TTL,
    "anonymous": {
        "rooms": ["lobby-*", "{identity}-room"],
        "agents": ["helper"],
        "allow_metadata": True,
        "ttl_seconds": MAX_TTL,
        "rate_limit": "1000000/second",
    },
}
# requests the policy allows: lobby rooms, the identity's own room or none, the allowed agent
bodies = st.fixed_dictionaries(
    {},
    optional={
        "room_name": names.map(lambda n: f"lobby-{n}"),
        "participant_identity": names,
        "participant_name": names,
        "participant_metadata": names,
        "room_config": st.fixed_dictionaries(
            {},
            optional={
                "agents": st.lists(
                    st.fixed_dictionaries(
                        {"agent_name": st.just("helper")}, optional={"metadata": names}
                    ),
                    max_size=2,
                ),
            },
        ),
    },
)
# what the policy refuses (403): other rooms, agents, attributes, room settings
refused = st.one_of(
    names.filter(lambda n: not n.startswith("lobby-")).map(lambda n: {"room_name": f"x{n}"}),
    st.just({"room_config": {"agents": [{"agent_name": "other"}]}}),
    st.just({"participant_attributes": {"k": "v"}}),
    st.just({"room_config": {"max_participants": 2}}),
)
# what no /v1/token request may carry (422): admin grants and unknown fields
extras = st.fixed_dictionaries(
    {},
    optional={
        "video": st.just({"room_admin": True}),
        "kind": st.just("agent"),
        "sip": st.just({"admin": True}),
        "ttl_seconds": st.integers(1, 10**6),
        "roomAdmin": st.just(True),
    },
).filter(bool)


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    app = create_app(
        make_settings("http://127.0.0.1:9", tmp_path_factory.mktemp("prop"), token_policy=POLICY)
    )
    with TestClient(app) as client:
        yield client


def test_random_requests_never_mint_more_than_the_policy(http):
    outcomes: dict[int, int] = {}

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        body=bodies,
        extra=st.one_of(st.just({}), st.just({}), refused, extras),
        camel=st.booleans(),
    )
    def one_request(body, extra, camel):
        body = {**body, **extra}
        if camel:
            body = {_camel(k): v for k, v in body.items()}
        response = http.post("/v1/token", json=body)
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        if response.status_code != 201:
            assert response.status_code in {403, 422}, response.text
            assert response.headers["content-type"] == "application/problem+json"
            return
        assert not extra, f"{extra} was accepted"
        claims = jwt.decode(response.json()["participant_token"], API_SECRET, algorithms=["HS256"])
        video = claims["video"]
        assert not ADMIN_VIDEO_GRANTS & video.keys()
        assert "sip" not in claims and "kind" not in claims
        assert video["roomJoin"] is True and video["room"]
        assert video["room"].startswith("lobby-") or video["room"] == f"{claims['sub']}-room"
        assert claims["exp"] - claims["nbf"] <= MAX_TTL
        for dispatch in claims.get("roomConfig", {}).get("agents", []):
            assert dispatch.get("agentName") == "helper"

    one_request()
    # it must have minted and refused many tokens, or it proved nothing
    assert outcomes.get(201, 0) >= 100, outcomes
    assert outcomes.get(403, 0) >= 20, outcomes
    assert outcomes.get(422, 0) >= 20, outcomes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)
