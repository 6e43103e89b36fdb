"""`app.core.jsonbytes.compact_json`: the standard library's JSON, faster, and never failing where
the standard library would not; and the JSON access line written through it."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from app.core.jsonbytes import compact_json
from app.core.logs import access_logger

text = st.text()  # every code point, lone surrogates included
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | text
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
)


def reference(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@given(values)
@example({"a": [1, True, None, 'x\n"\\\x01/'], "": -(2**63)})  # printable ASCII out
def test_the_same_value_as_json_and_the_same_bytes_where_printable_ascii(value):
    written = compact_json(value)
    assert json.loads(written) == json.loads(reference(value))
    if all(0x20 <= byte <= 0x7E for byte in written):
        assert written == reference(value)


def test_what_orjson_refuses_is_written_as_json_writes_it():
    for value in ({"sub": "a\ud800"}, {"n": 2**64}, ["é", "\udfff"]):
        assert compact_json(value) == reference(value)
    assert compact_json({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()


def test_a_json_access_line_with_a_lone_surrogate_is_still_written(json_log_output):
    access_logger().info("GET /x 200", caller="end_user:a\ud800", status=200)
    line = json.loads(json_log_output.getvalue())
    assert (line["caller"], line["status"], line["logger"]) == (
        "end_user:a\ud800",
        200,
        "app.access",
    )
