"""`from_livekit_json` is `json_format.ParseDict(..., ignore_unknown_fields=True)`, exactly.

Random documents for `WebhookEvent` (every message LiveKit's webhooks carry, nested three
deep) mix values as LiveKit writes them with values it never writes: nulls, numbers as
text (`"1_000"`, `"1e3"`, `" 5"`), out-of-range integers, floats for integers, booleans
for numbers, unknown enum names and numbers, NaN, lists and objects in the wrong place,
fields given under both names, two members of a oneof, unknown and extension-like keys.
Both parsers give the same message (byte for byte) or the same error. JSON as LiveKit's
servers write it takes the fast plan, without falling back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from livekit.protocol.webhook import WebhookEvent

from bench.micro import webhook_event
from schemas.protojson import _fields, _plan, from_livekit_json

T = FieldDescriptor
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
#: Values LiveKit never writes for a field, whatever its type.
odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**31, -(2**31) - 1, 2**32, 2**63, -(2**63) - 1, 2**64, -1]),
    st.floats(),
    st.sampled_from(["12", "-3", "1.0", "1e3", " 5", "1_000", "+7", "٣", "0x10", "007"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "true", "FUTURE_VALUE", ""]),
    text,
    st.lists(st.integers(), max_size=2),
    st.lists(text, max_size=2),
    st.just({}),
    st.just({"a": 1}),
)
LIMITS = {
    T.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    T.CPPTYPE_UINT32: (0, 2**32 - 1),
    T.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    T.CPPTYPE_UINT64: (0, 2**64 - 1),
}


def as_livekit_writes(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """One value of `field` as protojson writes it (64-bit integers as text)."""
    if field.message_type is not None:
        return documents(field.message_type, depth + 1, odd_values=False)
    if field.cpp_type in LIMITS:
        low, high = LIMITS[field.cpp_type]
        numbers = st.integers(low, high)
        return (
            numbers.map(str) if field.cpp_type in (T.CPPTYPE_INT64, T.CPPTYPE_UINT64) else numbers
        )
    if field.cpp_type == T.CPPTYPE_ENUM:
        return st.sampled_from([value.name for value in field.enum_type.values])
    if field.cpp_type == T.CPPTYPE_BOOL:
        return st.booleans()
    if field.cpp_type == T.CPPTYPE_FLOAT:
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if field.cpp_type == T.CPPTYPE_DOUBLE:
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60)
    return text


def values(field: FieldDescriptor, depth: int, odd_values: bool) -> st.SearchStrategy[Any]:
    """A JSON value for `field`: a map, a list or one value, sometimes an odd one."""
    nested = field.message_type
    if nested is not None and nested.GetOptions().map_entry:
        entry = nested.fields_by_name["value"]
        whole = st.dictionaries(
            text, sometimes_odd(as_livekit_writes(entry, depth), odd_values), max_size=3
        )
    else:
        one = sometimes_odd(as_livekit_writes(field, depth), odd_values)
        whole = st.lists(one, max_size=3) if field.is_repeated else one
    return sometimes_odd(whole, odd_values)


def sometimes_odd(values: st.SearchStrategy[Any], odd_values: bool) -> st.SearchStrategy[Any]:
    """`values`, or one time in five an odd value."""
    return st.one_of(values, values, values, values, odd) if odd_values else values


@st.composite
def documents(
    draw: Callable[..., Any], descriptor: Descriptor, depth: int = 0, odd_values: bool = True
) -> dict[str, Any]:
    """A JSON object for `descriptor`: a few of its fields (three levels deep at most)."""
    if depth > 3:
        return {}
    chosen = draw(
        st.lists(
            st.sampled_from(list(descriptor.fields)),
            max_size=6 if depth == 0 else 3,
            # As LiveKit writes: one member per oneof. Else two may come.
            unique_by=lambda field: field.number if odd_values else group(field),
        )
    )
    document: dict[str, Any] = {}
    for field in chosen:
        names = [field.json_name, field.name] if odd_values else [field.json_name]
        document[draw(st.sampled_from(names))] = draw(values(field, depth, odd_values))
        if odd_values and draw(st.integers(0, 9)) == 0:  # the same field under its other name
            document[field.name if field.json_name in document else field.json_name] = draw(
                values(field, depth, odd_values)
            )
    if odd_values and draw(st.integers(0, 4)) == 0:  # a newer LiveKit's field, or junk
        unknown = st.sampled_from(["futureField", "[livekit.ext]", "[x", "[]"])
        document[draw(unknown)] = draw(odd)
    return document


def group(field: FieldDescriptor) -> str:
    """The oneof a field belongs to, else its own name."""
    return field.containing_oneof.name if field.containing_oneof else field.name


def outcome(parse: Callable[[], Message]) -> tuple[str, Any]:
    """What a parse gives: the message's bytes, or its error's type and text."""
    try:
        return "message", parse().SerializeToString(deterministic=True)
    except Exception as error:  # what ParseDict raises is what is compared
        return type(error).__name__, str(error)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(WebhookEvent.DESCRIPTOR))
@example({"room": {"numParticipants": 2**40}})
@example({"room": {"numParticipants": True}})
@example({"room": {"numParticipants": 1.0}, "createdAt": "1_000"})
@example({"room": "name", "participant": ["sid"]})
@example({"egressInfo": {"roomComposite": {}, "web": {}}})
@example({"createdAt": "1", "created_at": "2"})
@example({"room": {"name": None}})
@example({"[livekit.ext]": 1})
@example({1: "not a JSON key", "room": {2: "x"}})
@example({"participant": {"state": "FUTURE_STATE", "attributes": {"a": None}}})
@example({"participant": {"tracks": [{"layers": [{"width": -1}]}]}})
def test_from_livekit_json_is_parse_dict(document: dict[str, Any]) -> None:
    expected = outcome(
        lambda: json_format.ParseDict(document, WebhookEvent(), ignore_unknown_fields=True)
    )
    assert outcome(lambda: from_livekit_json(document, WebhookEvent)) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(WebhookEvent.DESCRIPTOR, odd_values=False))
def test_json_as_livekit_writes_it_takes_the_fast_plan(document: dict[str, Any]) -> None:
    # What protobuf's own encoder writes for the message (as LiveKit's Go protojson does).
    written = json.loads(
        json_format.MessageToJson(
            json_format.ParseDict(document, WebhookEvent(), ignore_unknown_fields=True)
        )
    )
    fields = _fields(_plan(WebhookEvent.DESCRIPTOR), written, 1)  # raises when it falls back
    assert WebhookEvent(**fields) == from_livekit_json(written, WebhookEvent)


def test_the_benchmarks_webhook_takes_the_fast_plan() -> None:
    document = json.loads(webhook_event("EV_fast"))
    fields = _fields(_plan(WebhookEvent.DESCRIPTOR), document, 1)
    expected = json_format.ParseDict(document, WebhookEvent(), ignore_unknown_fields=True)
    assert WebhookEvent(**fields) == expected
