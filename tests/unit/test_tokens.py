"""Minting and policy (app.auth.tokens, app.auth.policy): what a token carries is exactly what was
asked and allowed."""

from __future__ import annotations

import datetime as dt
import re

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.policy import Caller, CallerRule, TokenPolicy, default_development_policy
from app.auth.tokens import mint_participant_token, mint_token
from app.core.errors import Forbidden, InvalidInput
from app.livekit.access_tokens import introspect
from schemas.tokens import IssueTokenRequest, ParticipantTokenRequest

KEY, SECRET = "APIunit", "u" * 40
ANON = Caller(kind="anonymous", name="127.0.0.1")
ADMIN_VIDEO_GRANTS = {
    "roomCreate", "roomList", "roomRecord", "roomAdmin", "ingressAdmin", "hidden", "agent",
    "recorder", "destinationRoom",
}  # fmt: skip


def claims_of(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)


def mint(body: dict, rule: CallerRule | None = None, caller: Caller = ANON):
    request = ParticipantTokenRequest.model_validate(body)
    return mint_participant_token(
        request, caller, rule or CallerRule(agents=["*"]), api_key=KEY, api_secret=SECRET
    )


def test_participant_token_carries_exactly_what_was_asked_and_allowed():
    issued = mint(
        {
            "room_name": "standup",
            "participant_identity": "alice",
            "participant_name": "Alice",
            "room_config": {"agents": [{"agent_name": "notetaker", "metadata": '{"lang":"de"}'}]},
        }
    )
    claims = claims_of(issued.token)
    assert claims["sub"] == "alice"
    assert claims["name"] == "Alice"
    assert claims["iss"] == KEY
    assert claims["video"] == {
        "roomJoin": True,
        "room": "standup",
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
    }
    assert claims["roomConfig"] == {
        "agents": [{"agentName": "notetaker", "metadata": '{"lang":"de"}'}]
    }
    assert claims["exp"] - claims["nbf"] == 600  # the default TTL: 10 minutes
    assert issued.expires_at == dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC)
    assert "kind" not in claims and "sip" not in claims


def test_camel_case_request_fields_are_accepted():
    request = ParticipantTokenRequest.model_validate(
        {
            "roomName": "r",
            "participantIdentity": "bob",
            "roomConfig": {"agents": [{"agentName": "a"}]},
        }
    )
    assert request.room_name == "r" and request.participant_identity == "bob"
    assert request.room_config.agents[0].agent_name == "a"


def test_empty_request_gets_a_generated_identity_and_room():
    claims = claims_of(mint({}).token)
    assert claims["sub"].startswith("user-")
    assert claims["video"]["room"].startswith("room-")


def test_empty_room_config_is_accepted_and_left_out_of_the_token():
    assert "roomConfig" not in claims_of(mint({"room_name": "r", "room_config": {}}).token)


def test_subscribe_only_rule_and_publish_sources():
    rule = CallerRule(can_publish=False, can_publish_data=False)
    video = claims_of(mint({"room_name": "r"}, rule).token)["video"]
    assert video["canPublish"] is False and video["canPublishData"] is False
    assert "canPublishSources" not in video
    rule = CallerRule(can_publish_sources=["microphone"])
    video = claims_of(mint({"room_name": "r"}, rule).token)["video"]
    assert video["canPublishSources"] == ["microphone"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("participant_metadata", "{}"),
        ("participant_attributes", {"a": "b"}),
    ],
)
def test_fields_the_rule_forbids_are_refused_not_dropped(field, value):
    with pytest.raises(Forbidden) as caught:
        mint({"room_name": "r", field: value}, CallerRule())
    assert caught.value.code == "field_not_allowed"
    assert caught.value.extra == {"field": field}


def test_metadata_and_attributes_pass_when_allowed():
    rule = CallerRule(allow_metadata=True, allow_attributes=True)
    claims = claims_of(
        mint({"participant_metadata": "m", "participant_attributes": {"k": "v"}}, rule).token
    )
    assert claims["metadata"] == "m" and claims["attributes"] == {"k": "v"}


def test_room_config_beyond_agents_needs_permission():
    with pytest.raises(Forbidden) as caught:
        mint({"room_name": "r", "room_config": {"max_participants": 3}}, CallerRule())
    assert caught.value.extra == {"field": "room_config.max_participants"}
    rule = CallerRule(allow_room_config=True)
    claims = claims_of(mint({"room_name": "r", "room_config": {"max_participants": 3}}, rule).token)
    assert claims["roomConfig"] == {"maxParticipants": 3}


def test_room_config_name_must_match_the_room():
    with pytest.raises(InvalidInput):
        mint(
            {"room_name": "r", "room_config": {"name": "other"}}, CallerRule(allow_room_config=True)
        )


def test_unknown_agent_is_refused():
    rule = CallerRule(agents=["support"])
    mint({"room_config": {"agents": [{"agent_name": "support"}]}}, rule)
    with pytest.raises(Forbidden) as caught:
        mint({"room_config": {"agents": [{"agent_name": "billing"}]}}, rule)
    assert caught.value.code == "agent_not_allowed"


def test_room_pattern_with_identity():
    rule = CallerRule(rooms=["support-{identity}", "lobby-*"])
    assert claims_of(mint({"participant_identity": "ann"}, rule).token)["video"]["room"] == (
        "support-ann"
    )
    mint({"participant_identity": "ann", "room_name": "lobby-1"}, rule)
    with pytest.raises(Forbidden) as caught:
        mint({"participant_identity": "ann", "room_name": "support-bob"}, rule)
    assert caught.value.code == "room_not_allowed"
    # glob characters in an identity are literal, not patterns
    with pytest.raises(Forbidden):
        mint({"participant_identity": "*", "room_name": "support-bob"}, rule)


def test_without_a_room_name_the_room_is_one_the_policy_allows():
    rule = CallerRule(rooms=["lobby-*-?", "support-{identity}"])
    room = claims_of(mint({"participant_identity": "ann"}, rule).token)["video"]["room"]
    assert re.fullmatch(r"lobby-[0-9a-f]{8}-x", room)
    # an identity's glob characters stay literal in the room made for it
    rule = CallerRule(rooms=["[ab]-*", "{identity}-room"])
    assert claims_of(mint({"participant_identity": "a*"}, rule).token)["video"]["room"] == "a*-room"


def test_end_user_identity_is_their_sub_and_cannot_be_overridden():
    user = Caller(kind="end_user", name="u-42", identity="u-42")
    rule = CallerRule(allow_identity=False)
    assert claims_of(mint({"room_name": "r"}, rule, user).token)["sub"] == "u-42"
    assert claims_of(mint({"participant_identity": "u-42"}, rule, user).token)["sub"] == "u-42"
    with pytest.raises(Forbidden) as caught:
        mint({"participant_identity": "someone-else"}, rule, user)
    assert caught.value.code == "field_not_allowed"


def test_policy_refuses_rule_ttl_above_the_cap():
    with pytest.raises(ValueError, match="max_ttl_seconds"):
        TokenPolicy(anonymous=CallerRule(ttl_seconds=7200), max_ttl_seconds=3600)


# --- property: no /v1/token request yields an admin grant, an over-cap TTL or no room ---

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "room_name": names,
        "participant_identity": names,
        "participant_name": names,
        "participant_metadata": names,
        "participant_attributes": st.dictionaries(names, names, max_size=3),
        "room_config": st.fixed_dictionaries(
            {},
            optional={
                "agents": st.lists(
                    st.fixed_dictionaries({"agent_name": names, "metadata": names}), max_size=2
                ),
                "empty_timeout": st.integers(0, 10_000),
                "max_participants": st.integers(0, 100),
            },
        ),
    },
)
rules = st.builds(
    CallerRule,
    rooms=st.lists(
        st.sampled_from(["*", "room-*", "{identity}-*", "fixed"]), min_size=1, max_size=2
    ),
    can_publish=st.booleans(),
    can_subscribe=st.booleans(),
    agents=st.lists(st.sampled_from(["*", "a", "b"]), max_size=2),
    allow_identity=st.booleans(),
    allow_metadata=st.booleans(),
    allow_attributes=st.booleans(),
    allow_room_config=st.booleans(),
    ttl_seconds=st.integers(1, 3600),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=bodies, rule=rules)
def test_no_request_yields_admin_grants_over_cap_ttl_or_empty_room(body, rule):
    try:
        issued = mint(body, rule)
    except (Forbidden, InvalidInput):
        return
    claims = claims_of(issued.token)
    video = claims["video"]
    assert not ADMIN_VIDEO_GRANTS & video.keys()
    assert "sip" not in claims and "kind" not in claims and "roomPreset" not in claims
    assert video["roomJoin"] is True and video["room"]
    assert claims["sub"]
    assert 0 < claims["exp"] - claims["nbf"] <= TokenPolicy().max_ttl_seconds
    assert claims["exp"] - claims["nbf"] == rule.ttl_seconds


# --- /v1/tokens: full control ---


def test_full_token_carries_every_requested_grant():
    video = {
        "room": "r", "room_join": True, "room_create": True, "room_list": True,
        "room_record": True, "room_admin": True, "can_publish": False, "can_subscribe": True,
        "can_publish_data": False, "can_publish_sources": ["camera"],
        "can_update_own_metadata": True, "ingress_admin": True, "hidden": True, "agent": True,
        "destination_room": "r2",
    }  # fmt: skip
    request = IssueTokenRequest.model_validate(
        {
            "identity": "bot",
            "name": "Bot",
            "kind": "agent",
            "ttl_seconds": 120,
            "video": video,
            "sip": {"admin": True, "call": True},
            "room_preset": "preset-1",
            "metadata": "m",
            "attributes": {"a": "1"},
            "roomConfig": {"emptyTimeout": 30},
        }
    )
    issued = mint_token(request, api_key=KEY, api_secret=SECRET, max_ttl_seconds=3600)
    claims = claims_of(issued.token)
    assert claims["video"] == {
        "room": "r", "roomJoin": True, "roomCreate": True, "roomList": True, "roomRecord": True,
        "roomAdmin": True, "canPublish": False, "canSubscribe": True, "canPublishData": False,
        "canPublishSources": ["camera"], "canUpdateOwnMetadata": True, "ingressAdmin": True,
        "hidden": True, "agent": True, "destinationRoom": "r2",
    }  # fmt: skip
    assert claims["sip"] == {"admin": True, "call": True}
    assert claims["kind"] == "agent" and claims["roomPreset"] == "preset-1"
    assert claims["roomConfig"] == {"emptyTimeout": 30}
    assert claims["exp"] - claims["nbf"] == 120


def test_full_token_ttl_above_cap_is_refused():
    request = IssueTokenRequest(identity="x", ttl_seconds=7201)
    with pytest.raises(InvalidInput):
        mint_token(request, api_key=KEY, api_secret=SECRET, max_ttl_seconds=7200)


def test_room_join_without_room_is_refused():
    request = IssueTokenRequest.model_validate({"identity": "x", "video": {"room_join": True}})
    with pytest.raises(InvalidInput):
        mint_token(request, api_key=KEY, api_secret=SECRET, max_ttl_seconds=3600)


# --- introspection ---


def test_introspect_valid_token_describes_it():
    token = mint({"room_name": "r", "participant_identity": "i"}).token
    result = introspect(token, {KEY: SECRET})
    assert result.valid and result.identity == "i" and result.issuer == KEY
    assert result.video.model_dump(exclude_unset=True) == {
        "room_join": True, "room": "r", "can_publish": True, "can_subscribe": True,
        "can_publish_data": True,
    }  # fmt: skip
    assert result.sip is None and result.room_config is None


@pytest.mark.parametrize(
    ("token_for", "reason"),
    [
        (lambda t: t + "x", "bad_signature"),
        (lambda t: "not-a-jwt", "malformed"),
        (lambda t: jwt.encode({"iss": "other", "exp": 9999999999}, SECRET), "unknown_key"),
        (lambda t: jwt.encode({"iss": KEY, "sub": "x", "exp": 1}, SECRET), "expired"),
        (
            lambda t: jwt.encode(
                {"iss": KEY, "sub": "x", "exp": 9999999999, "nbf": 9999999990}, SECRET
            ),
            "not_yet_valid",
        ),
        (lambda t: jwt.encode({"iss": KEY, "sub": "x"}, SECRET), "invalid_claims"),
    ],
)
def test_introspect_reasons(token_for, reason):
    token = token_for(mint({"room_name": "r"}).token)
    result = introspect(token, {KEY: SECRET})
    assert result.valid is False and result.reason == reason


def test_development_default_policy():
    policy = default_development_policy()
    assert policy.anonymous is not None and policy.anonymous.can_publish
    assert policy.anonymous.can_subscribe and policy.anonymous.can_publish_data
