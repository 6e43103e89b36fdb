"""The one bridge between pydantic models and LiveKit's protobuf messages.

`model_for(Message)` derives a pydantic model from a message's descriptor, field by proto
field name, so OpenAPI shows LiveKit's real schema and every LiveKit doc maps 1:1:

- field names are the proto names (snake_case); the lowerCamelCase JSON names that
  LiveKit's protojson uses are accepted too, on input;
- enums are their protobuf value names (`"EGRESS_ACTIVE"`; a number only for a value newer
  than this SDK knows), 64-bit integers JSON numbers,
  `bytes` base64 strings, `google.protobuf.Duration`/`Timestamp` their protojson strings;
- every field is optional (proto3), unknown fields are refused on input.

`to_proto` and `to_json` convert with `google.protobuf.json_format`, so no resource is
ever converted by hand.
"""

from __future__ import annotations

import enum
from typing import Any, Optional, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model

from app.errors import InvalidInput

M = TypeVar("M", bound=Message)

_SCALARS: dict[int, type] = {
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BYTES: str,
}
_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_WELL_KNOWN: dict[str, Any] = {
    "google.protobuf.Duration": str,
    "google.protobuf.Timestamp": str,
    "google.protobuf.Struct": dict[str, Any],
    "google.protobuf.Value": Any,
    "google.protobuf.ListValue": list[Any],
    "google.protobuf.Empty": dict[str, Any],
    "google.protobuf.BoolValue": bool,
    "google.protobuf.StringValue": str,
    "google.protobuf.BytesValue": str,
    "google.protobuf.DoubleValue": float,
    "google.protobuf.FloatValue": float,
    "google.protobuf.Int32Value": int,
    "google.protobuf.UInt32Value": int,
    "google.protobuf.Int64Value": int,
    "google.protobuf.UInt64Value": int,
}


class ProtoModel(BaseModel):
    """Base of every derived model; `__proto__` is the message class it mirrors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    __proto__: type[Message]


_models: dict[str, type[ProtoModel]] = {}
_enums: dict[str, type[enum.Enum]] = {}


def model_for(message: type[Message], *, name: str | None = None) -> type[ProtoModel]:
    """The pydantic model mirroring `message` (cached per message and name).

    `name` renames the top model in OpenAPI (nested models keep LiveKit's names).
    """
    key = f"{message.DESCRIPTOR.full_name}:{name or ''}"
    if key not in _models:
        _models[key] = _build(cast(Descriptor, message.DESCRIPTOR), name)
        _models[key].__proto__ = message
    return _models[key]


def _build(descriptor: Descriptor, name: str | None = None) -> type[ProtoModel]:
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        # A proto name that shadows a BaseModel attribute (`schema`, `copy` ...) gets a
        # trailing underscore in Python and keeps its proto name on the wire.
        attr = f"{field.name}_" if hasattr(BaseModel, field.name) else field.name
        fields[attr] = (
            Optional[_annotation(field)],  # noqa: UP045 - the annotation is built at run time
            Field(
                default=None,
                alias=field.name if attr != field.name else None,
                validation_alias=AliasChoices(field.name, field.json_name),
            ),
        )
    model = create_model(
        name or descriptor.name,
        __base__=ProtoModel,
        __doc__=f"LiveKit `{descriptor.full_name}`.",
        **fields,
    )
    return cast(type[ProtoModel], model)


def _annotation(field: FieldDescriptor) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = field.message_type.fields
        return dict[_single(key_field), _single(value_field)]  # type: ignore[misc]
    single = _single(field)
    return list[single] if _is_repeated(field) else single  # type: ignore[valid-type]


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _single(field: FieldDescriptor) -> Any:
    if field.type in _SCALARS:
        return _SCALARS[field.type]
    if field.enum_type is not None:
        # A value newer than this SDK's descriptors arrives as its number (protojson).
        return _enum_for(field.enum_type) | int
    if field.message_type is not None:
        full_name = field.message_type.full_name
        if full_name in _WELL_KNOWN:
            return _WELL_KNOWN[full_name]
        key = f"{full_name}:"
        if key not in _models:
            _models[key] = _build(field.message_type)
        return _models[key]
    return int


def _enum_for(enum_type: EnumDescriptor) -> type[enum.Enum]:
    """A str Enum of the protobuf value names, so they travel as names (`"EGRESS_ACTIVE"`)."""
    if enum_type.full_name not in _enums:
        members = {value.name: value.name for value in enum_type.values}
        _enums[enum_type.full_name] = cast(
            type[enum.Enum], enum.Enum(enum_type.name, members, type=str)
        )
    return _enums[enum_type.full_name]


def to_proto(model: BaseModel | dict[str, Any], message: type[M]) -> M:
    """Convert a validated model (or a plain dict of proto-named fields) into `message`.

    Only fields the caller set are sent. Raises `InvalidInput` (422) when protobuf refuses
    the value (two members of one oneof, a bad base64 string ...).
    """
    data = (
        model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if isinstance(model, BaseModel)
        else model
    )
    try:
        return json_format.ParseDict(data, message())
    except json_format.ParseError as exc:
        raise InvalidInput(f"invalid {message.DESCRIPTOR.name}: {exc}") from exc


def to_json(message: Message, *, with_defaults: bool = True) -> dict[str, Any]:
    """`message` as JSON with proto field names and 64-bit ints as numbers; every field is
    present unless `with_defaults` is False (then only the fields that were set)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=with_defaults,
    )
    _int64_as_numbers(cast(Descriptor, message.DESCRIPTOR), data)
    return data


def _int64_as_numbers(descriptor: Descriptor, data: dict[str, Any]) -> None:
    """protojson writes 64-bit integers as strings; the contract wants JSON numbers."""
    for field in descriptor.fields:
        value = data.get(field.name)
        if value is None:
            continue
        if field.type in _INT64:
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type in _INT64:
                data[field.name] = {k: int(v) for k, v in value.items()}
            elif value_field.message_type is not None:
                for item in value.values():
                    _int64_as_numbers(value_field.message_type, item)
        elif field.message_type is not None and field.message_type.full_name not in _WELL_KNOWN:
            for item in value if isinstance(value, list) else [value]:
                _int64_as_numbers(field.message_type, item)
