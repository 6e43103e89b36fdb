"""Compact JSON as bytes, for the two hot writers of JSON: the token's claims
(`app.livekit.access_tokens.SignedAccessToken`) and the access line (`app.core.logs`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def compact_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact UTF-8 JSON (RFC 8259 §8.1), serialized by orjson, about ten times
    faster than the standard library. For printable ASCII the bytes are the standard
    library's `json.dumps(value, separators=(",", ":"))`; other text is written as UTF-8
    where the standard library writes `\\uXXXX` escapes. What orjson refuses (text that is
    not Unicode, such as a lone surrogate, which UTF-8 cannot encode; an integer beyond 64
    bits) is written by the standard library instead, so this never fails where `json`
    would not. `default` is called for objects neither serializes natively, as `json`'s.
    """
    try:
        return orjson.dumps(value, default=default)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), default=default).encode()
