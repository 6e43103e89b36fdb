"""The one page-token codec of the store's keyset pages.

A list read page by page (newest first by a sort key) hands out `next_page_token`: the
sort key of the last row returned, which the next request reads from. A token kind is a
frozen dataclass subclassing `Cursor` with a `PREFIX` (which list it belongs to and the
version of its format) and fields of type `int`, `str` or a timezone-aware
`datetime.datetime`; `encode` writes `PREFIX` and the fields' texts joined by `|`
(a datetime in ISO 8601, only the last field may contain `|`), as URL-safe base64
without padding. `decode` reads only tokens of its own kind.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import typing
from typing import Any, ClassVar, Self

from app.core.errors import BadRequest


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Base of the token kinds (see the module doc); subclasses set `PREFIX` and fields."""

    PREFIX: ClassVar[str]

    def encode(self) -> str:
        """URL-safe text for `next_page_token`."""
        texts = [_text(getattr(self, field.name)) for field in dataclasses.fields(self)]
        raw = (self.PREFIX + "|".join(texts)).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Self:
        """Read a token made by `encode` of this kind; `BadRequest` (400,
        `invalid_page_token`) otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            if not raw.startswith(cls.PREFIX):
                raise ValueError(raw)
            fields = dataclasses.fields(cls)
            texts = raw.removeprefix(cls.PREFIX).split("|", len(fields) - 1)
            if len(texts) != len(fields):
                raise ValueError(raw)
            hints = typing.get_type_hints(cls)
            return cls(
                *(_value(hints[f.name], text) for f, text in zip(fields, texts, strict=True))
            )
        except ValueError:
            raise BadRequest(
                "page_token is not one this API issued", code="invalid_page_token"
            ) from None


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _value(kind: type, text: str) -> Any:
    """`text` read as a field of type `kind`; `ValueError` when it is not one."""
    if kind is int:
        return int(text)
    if kind is dt.datetime:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is None:
            raise ValueError(text)
        return when
    if not text:
        raise ValueError("an empty field")
    return text
