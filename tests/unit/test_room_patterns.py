"""Room patterns of the token policy (app.auth.room_patterns): `{identity}` names exactly one
identity, so one pattern never grants a room to two identities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.auth.policy import Caller, CallerRule
from app.auth.room_patterns import room_allowed
from app.core.errors import Forbidden
from tests.unit.test_tokens import claims_of, mint

USER_ROOMS = ["user-{identity}-*"]


def end_user(identity: str) -> Caller:
    return Caller(kind="end_user", name=identity, identity=identity)


def test_a_room_of_another_identity_is_not_granted_through_a_shorter_one():
    rule = CallerRule(rooms=USER_ROOMS, allow_identity=False)
    with pytest.raises(Forbidden) as caught:
        mint({"room_name": "user-alice-bob-private"}, rule, end_user("alice"))
    assert caught.value.code == "room_not_allowed"
    minted = mint({"room_name": "user-alice-bob-private"}, rule, end_user("alice-bob"))
    assert claims_of(minted.token)["video"]["room"] == "user-alice-bob-private"
    assert claims_of(mint({"room_name": "user-alice-x"}, rule, end_user("alice")).token)


@pytest.mark.parametrize(
    ("room", "identity", "granted"),
    [
        ("user-alice-x", "alice", True),
        ("user-alice-bob-x", "alice", False),  # alice-bob's room
        ("user-alice-bob-x", "alice-bob", True),
        ("user-user-1-3f9a", "user-1", True),
        ("user-user-1-3f9a", "user", False),
        ("user-alice-", "alice", True),
        ("user-alice", "alice", False),
        ("user-a*-x", "a*", True),  # glob characters in an identity are literal
        ("user-ab-x", "a*", False),
        ("user-a[b]-x", "a[b]", True),
        ("user-ab-x", "a[b]", False),
        ("user-a?-x", "a?", True),
    ],
)
def test_the_identity_is_the_longest_part_the_pattern_allows(room, identity, granted):
    assert room_allowed(room, identity, USER_ROOMS) is granted


@pytest.mark.parametrize(
    ("pattern", "room", "identity", "granted"),
    [
        ("support-{identity}", "support-ann", "ann", True),
        ("support-{identity}", "support-ann-2", "ann", False),
        ("*-{identity}", "a-b-c", "b-c", True),  # the part before as short as it can be
        ("*-{identity}", "a-b-c", "c", False),
        ("{identity}-room-?", "x-y-room-1", "x-y", True),
        ("{identity}-room-?", "x-y-room-1", "x", False),
        ("lobby-*", "lobby-1", "anyone", True),
    ],
)
def test_other_patterns_read_the_same_way(pattern, room, identity, granted):
    assert room_allowed(room, identity, [pattern]) is granted


@pytest.mark.parametrize(
    "pattern",
    [
        "user-{identity}*",
        "user*{identity}-x",
        "u-?{identity}",
        "[ab]{identity}",
        "{identity}[ab]",
        "{identity}-{identity}",
    ],
)
def test_a_wildcard_next_to_the_identity_or_a_second_identity_is_refused(pattern):
    with pytest.raises(ValidationError, match="room pattern"):
        CallerRule(rooms=[pattern])


identities = st.text(alphabet="ab-*?[]!", min_size=1, max_size=8)
PATTERNS = [
    "user-{identity}-*",
    "*-{identity}-*",
    "{identity}-*",
    "x?-{identity}-[ab]*",
    "*-{identity}",
]


@st.composite
def rooms_near(draw: st.DrawFn, a: str, b: str) -> str:
    """A room name built around `a` or `b` (or both), so that one of them is often granted."""
    inner = draw(st.sampled_from([a, b, f"{a}-{b}", f"{b}-{a}"]))
    prefix = draw(st.sampled_from(["user-", "xa-", "a-b-", ""]))
    return prefix + inner + draw(st.sampled_from(["", "-", "-a", "-a-b", "-[ab]"]))


@settings(max_examples=1000, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), a=identities, b=identities, data=st.data())
def test_no_room_is_granted_to_two_identities(pattern, a, b, data):
    room = data.draw(rooms_near(a, b))
    if a != b:
        assert not (room_allowed(room, a, [pattern]) and room_allowed(room, b, [pattern]))
