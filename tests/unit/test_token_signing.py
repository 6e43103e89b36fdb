"""`SignedAccessToken` writes what livekit-api's `AccessToken.to_jwt` writes.

For random builders (identity, name, kind, metadata, attributes, every video grant field,
SIP and the other grants, room configurations with agents, egress and tags, room presets,
TTLs), both sign at the same frozen instant: the claims are equal claim for claim and in
the same order, under the same JOSE header; the JWTs are equal byte for byte wherever our
claims are printable ASCII (other text is UTF-8 in ours, `\\uXXXX` escapes in theirs);
and `sign()` reports the token's own `exp`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import jwt
import pytest
import time_machine
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api
from livekit.api import access_token

from app.livekit.access_tokens import SignedAccessToken

KEY, SECRET = "APIsign", "s" * 43

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
maybe_bool = st.none() | st.booleans()
sources = st.lists(st.sampled_from(["camera", "microphone", "screen_share", ""]), max_size=3)


def grants_of(cls: type) -> st.SearchStrategy:
    """Any value of livekit-api's grant dataclass `cls`, field by field from its types."""
    fields = {}
    for field in dataclasses.fields(cls):
        kind = str(field.type)
        if "List" in kind or "list" in kind:
            strategy: st.SearchStrategy = st.none() | sources
        elif "bool" in kind:
            strategy = maybe_bool if "Optional" in kind else st.booleans()
        else:
            strategy = st.none() | text if "Optional" in kind else text
        fields[field.name] = strategy
    return st.builds(cls, **fields)


room_configs = st.fixed_dictionaries(
    {},
    optional={
        "name": text,
        "emptyTimeout": st.integers(0, 2**32 - 1),
        "departureTimeout": st.integers(0, 2**32 - 1),
        "maxParticipants": st.integers(0, 2**32 - 1),
        "metadata": text,
        "minPlayoutDelay": st.integers(0, 5000),
        "maxPlayoutDelay": st.integers(0, 5000),
        "syncStreams": st.booleans(),
        "agents": st.lists(
            st.fixed_dictionaries(
                {"agentName": text},
                optional={
                    "metadata": text,
                    "deployment": text,
                    "attributes": st.dictionaries(text, text, max_size=2),
                },
            ),
            max_size=3,
        ),
        "egress": st.fixed_dictionaries(
            {},
            optional={
                "room": st.fixed_dictionaries(
                    {"roomName": text}, optional={"layout": text, "audioOnly": st.booleans()}
                ),
                "tracks": st.fixed_dictionaries({"filepath": text}),
            },
        ),
        "tags": st.dictionaries(text, text, max_size=3),
    },
).map(lambda d: json_format.ParseDict(d, api.RoomConfiguration()))

#: (builder method, strategy of its argument); each is applied or not.
SETTERS = {
    "with_identity": text,
    "with_name": text,
    "with_kind": st.sampled_from(["standard", "egress", "ingress", "sip", "agent", ""]),
    "with_metadata": text,
    "with_attributes": st.dictionaries(text, text, max_size=4),
    "with_grants": grants_of(api.VideoGrants),
    "with_sip_grants": grants_of(api.SIPGrants),
    "with_inference_grants": grants_of(access_token.InferenceGrants),
    "with_observability_grants": grants_of(access_token.ObservabilityGrants),
    "with_agent_grants": grants_of(access_token.AgentGrants),
    "with_agent_endpoint_grants": grants_of(access_token.AgentEndpointGrants),
    "with_agent_thread_grants": grants_of(access_token.AgentThreadGrants),
    "with_sha256": text,
    "with_room_preset": text,
    "with_room_config": room_configs,
    "with_ttl": st.builds(
        dt.timedelta, seconds=st.integers(1, 10**7), microseconds=st.integers(0, 999_999)
    ),
}
builders = st.fixed_dictionaries({}, optional=SETTERS)
instants = st.datetimes(
    min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)


def build(cls: type[api.AccessToken], calls: dict) -> api.AccessToken:
    token = cls(KEY, SECRET)
    for method, argument in calls.items():
        getattr(token, method)(argument)
    return token


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=builders, instant=instants)
def test_claims_equal_livekit_api_access_token(calls: dict, instant: dt.datetime) -> None:
    with time_machine.travel(instant, tick=False):
        try:
            expected = build(api.AccessToken, calls).to_jwt()
        except ValueError as refused:  # a room-join grant without identity or room
            with pytest.raises(ValueError, match=str(refused)):
                build(SignedAccessToken, calls).to_jwt()
            return
        signed = build(SignedAccessToken, calls)
        assert isinstance(signed, SignedAccessToken)
        token, exp = signed.sign()
    claims = assert_same_token(token, expected, SECRET)
    assert exp == claims["exp"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_text_that_is_not_unicode_is_escaped_as_livekit_api_escapes_it() -> None:
    # a lone surrogate (JSON `"\\ud800"` parses to one) has no UTF-8 form: such claims
    # are written by the standard library, as livekit-api writes them, byte for byte
    calls = {"with_identity": "p\ud800", "with_name": "Zoë", "with_metadata": "\x7f"}
    with time_machine.travel(dt.datetime(2026, 12, 4, tzinfo=dt.UTC), tick=False):
        expected = build(api.AccessToken, calls).to_jwt()
        token, _ = build(SignedAccessToken, calls).sign()
    assert token == expected


def assert_same_token(token: str, reference: str, secret: str) -> dict:
    """`token` and `reference` verify with `secret` and carry the same JOSE header and the
    same claims in the same order; where the claims of `token` are printable ASCII, the two
    are the same bytes, signature included (other text is UTF-8 in ours, `\\uXXXX` escapes
    in livekit-api's). Returns the claims."""
    unchecked = {"verify_exp": False, "verify_nbf": False}
    claims = jwt.decode(token, secret, algorithms=["HS256"], options=unchecked)
    expected = jwt.decode(reference, secret, algorithms=["HS256"], options=unchecked)
    assert claims == expected
    assert list(claims) == list(expected)  # the same claims, in the same order
    assert jwt.get_unverified_header(token) == jwt.get_unverified_header(reference)
    payload = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    if all(0x20 <= byte <= 0x7E for byte in payload):
        assert token == reference
    return claims


def test_every_grant_livekit_api_knows_is_written() -> None:
    """A livekit-api upgrade that adds a grant type fails here instead of being dropped."""
    grant_types = {
        field.name
        for field in dataclasses.fields(access_token.Claims)
        if "Grants" in str(field.type)
    }
    setters = {"video" if m == "with_grants" else m[5:-7] for m in SETTERS if "grants" in m}
    assert grant_types == setters


def test_a_token_livekit_api_verifies() -> None:
    token = SignedAccessToken(KEY, SECRET)
    token.with_identity("alice").with_grants(api.VideoGrants(room_join=True, room="r"))
    text_token, exp = token.sign()
    claims = api.TokenVerifier(KEY, SECRET).verify(text_token)
    assert claims.identity == "alice"
    assert claims.video is not None and claims.video.room == "r"
    assert exp == jwt.decode(text_token, SECRET, algorithms=["HS256"])["exp"]


def test_a_wrong_secret_does_not_verify() -> None:
    token = SignedAccessToken(KEY, SECRET).with_identity("a").to_jwt()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "x" * 43, algorithms=["HS256"])
