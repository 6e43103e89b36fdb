"""Building blocks shared by request and response models."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, AliasChoices, AliasGenerator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

#: LiveKit's own limits, enforced before LiveKit sees a request (contract: Token policy).
MAX_NAME_BYTES = 256
MAX_METADATA_BYTES = 512 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024


class RequestModel(BaseModel):
    """A request body: snake_case fields, lowerCamelCase accepted too, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=AliasGenerator(
            validation_alias=lambda name: AliasChoices(name, to_camel(name))
        ),
    )


def _max_bytes(limit: int, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise ValueError(f"{what} is over {limit} bytes")
        return value

    return AfterValidator(check)


def _attributes_within_limit(value: dict[str, str]) -> dict[str, str]:
    total = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
    if total > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes total {total} bytes, over {MAX_ATTRIBUTES_BYTES}")
    return value


#: A participant identity, participant name or room name: at most 256 bytes of UTF-8.
Name = Annotated[str, _max_bytes(MAX_NAME_BYTES, "the value")]
#: Participant or room metadata: at most 512 KiB of UTF-8.
Metadata = Annotated[str, _max_bytes(MAX_METADATA_BYTES, "metadata")]
#: Participant attributes: at most 64 KiB of keys and values together.
Attributes = Annotated[dict[str, str], AfterValidator(_attributes_within_limit)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A list response: `items`, and `next_page_token` (null on the last page)."""

    items: list[T]
    next_page_token: str | None = None
