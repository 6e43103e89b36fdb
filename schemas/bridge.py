"""The one bridge between pydantic models and LiveKit's protobuf messages.

`model_for(Message)` derives a pydantic model from a message's descriptor, field by proto
field name, so OpenAPI shows LiveKit's real schema and every LiveKit doc maps 1:1:

- field names are the proto names (snake_case); the lowerCamelCase JSON names that
  LiveKit's protojson uses are accepted too, on input;
- enums are their protobuf value names (`"EGRESS_ACTIVE"`; a number only for a value newer
  than this SDK knows), 64-bit integers JSON numbers,
  `bytes` base64 strings, `google.protobuf.Duration`/`Timestamp` their protojson strings;
- every field is optional (proto3), unknown fields are refused on input;
- a protobuf `oneof` (egress `output` / `options`, upload backends, SIP rule kinds ...) is
  documented as "exactly one of" on the model and on each member (`x-oneof` names the
  group), and a request that sets two members of one group is refused by validation (422)
  naming both fields, before protobuf sees it;
- credentials inside LiveKit's messages (`schemas.credentials.SECRET_FIELDS`: upload keys
  and tokens, SIP passwords and dispatch rule PINs, `Room.turn_password` ...) are
  write-only: accepted on input and sent to LiveKit, never rendered by `to_json` (so never
  in a response, a stored idempotent replay or an event payload), and
  `schemas.credentials.redacted(message)` is the copy to put in a log line. Fields shown
  only to some callers (`STREAM_KEY_FIELDS`: an ingress's
  `stream_key`, for callers that may write ingress) are left out by `to_json` when the
  caller passes them as `withheld`.

`to_proto` and `to_json` convert with `google.protobuf.json_format`, so no resource is
ever converted by hand; `to_page` renders a list response with LiveKit's page token.
What LiveKit sends (webhooks) is read by `schemas.protojson.from_livekit_json`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Optional, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, model_validator

from app.core.errors import InvalidInput
from schemas.credentials import SECRET_FIELDS

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


def oneof_groups(descriptor: Descriptor) -> list[tuple[str, list[str]]]:
    """The real `oneof`s of `descriptor` as (group name, member proto names); proto3
    `optional` fields (synthetic one-member oneofs) are not groups."""
    return [
        (oneof.name, [field.name for field in oneof.fields])
        for oneof in descriptor.oneofs
        if len(oneof.fields) > 1
    ]


def oneof_clash(group: str, members: list[str], given: list[str]) -> str | None:
    """The problem message when `given` (the members set, in order) holds more than one
    member of oneof `group`, else None. Names the first two fields given."""
    if len(given) < 2:
        return None
    choices = ", ".join(f"`{m}`" for m in members)
    return (
        f"`{given[0]}` and `{given[1]}` are both given, but oneof `{group}` takes "
        f"exactly one of {choices}"
    )


def _exactly_one_of(group: str, members: list[str]) -> str:
    return f"oneof `{group}`: exactly one of " + ", ".join(f"`{m}`" for m in members)


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


def _attr(field_name: str) -> str:
    """The Python attribute of a proto field: a name that shadows a BaseModel attribute
    (`schema`, `copy` ...) gets a trailing underscore and keeps its proto name on the wire."""
    return f"{field_name}_" if hasattr(BaseModel, field_name) else field_name


def _build(descriptor: Descriptor, name: str | None = None) -> type[ProtoModel]:
    groups = oneof_groups(descriptor)
    group_of = {member: (group, members) for group, members in groups for member in members}
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        attr = _attr(field.name)
        extra: dict[str, Any] = {}
        description = None
        if field.full_name in SECRET_FIELDS:
            extra["writeOnly"] = True
            description = "a credential: write-only, never returned"
        if field.name in group_of:
            group, members = group_of[field.name]
            extra["x-oneof"] = group
            description = _exactly_one_of(group, members)
        fields[attr] = (
            Optional[_annotation(field)],  # noqa: UP045 - the annotation is built at run time
            Field(
                default=None,
                alias=field.name if attr != field.name else None,
                validation_alias=AliasChoices(field.name, field.json_name),
                description=description,
                json_schema_extra=extra or None,
            ),
        )
    doc = f"LiveKit `{descriptor.full_name}`."
    if groups:
        doc += " " + "; ".join(_exactly_one_of(g, m) for g, m in groups) + "."
    validators = {"_check_oneofs": _oneof_validator(groups)} if groups else {}
    model = create_model(
        name or descriptor.name,
        __base__=ProtoModel,
        __doc__=doc,
        __validators__=validators,
        **fields,
    )
    return cast(type[ProtoModel], model)


def _oneof_validator(groups: list[tuple[str, list[str]]]) -> Any:
    """An after-validator refusing two members of one oneof (a 422 naming both)."""

    def check(model: ProtoModel) -> ProtoModel:
        for group, members in groups:
            given = [m for m in members if getattr(model, _attr(m)) is not None]
            if message := oneof_clash(group, members, given):
                raise ValueError(message)
        return model

    return model_validator(mode="after")(check)


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

    Only fields the caller set are sent. Raises `InvalidInput` (422) naming both fields
    when two members of one oneof are given, and when protobuf refuses a value (a bad
    base64 string ...).
    """
    data = (
        model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if isinstance(model, BaseModel)
        else model
    )
    _check_oneofs(cast(Descriptor, message.DESCRIPTOR), data, [])
    try:
        return json_format.ParseDict(data, message())
    except json_format.ParseError as exc:
        raise InvalidInput(f"invalid {message.DESCRIPTOR.name}: {exc}") from exc


def _check_oneofs(descriptor: Descriptor, data: Any, loc: list[str | int]) -> None:
    """Refuse (422, naming both fields) a dict of proto-named fields, at any depth, that
    sets two members of one oneof; protobuf's own refusal would name neither clearly."""
    if not isinstance(data, dict):
        return
    for group, members in oneof_groups(descriptor):
        given = [m for m in members if _given(descriptor, data, m)]
        if message := oneof_clash(group, members, given):
            raise InvalidInput(message, extra={"errors": [{"loc": [*loc], "msg": message}]})
    for field in descriptor.fields:
        nested = field.message_type
        if nested is None or nested.full_name in _WELL_KNOWN or nested.GetOptions().map_entry:
            continue
        value = _value(data, field)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            where = [*loc, field.name] if index is None else [*loc, field.name, index]
            _check_oneofs(nested, item, where)


def _value(data: dict[str, Any], field: FieldDescriptor) -> Any:
    return data.get(field.name, data.get(field.json_name))


def _given(descriptor: Descriptor, data: dict[str, Any], name: str) -> bool:
    return _value(data, descriptor.fields_by_name[name]) is not None


def to_json(
    message: Message, *, with_defaults: bool = True, withheld: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`message` as JSON with proto field names and 64-bit ints as numbers, without any
    `SECRET_FIELDS` member nor any `withheld` one (full field names, e.g.
    `STREAM_KEY_FIELDS`) at any depth; every other field is present unless `with_defaults`
    is False (then only the fields that were set)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=with_defaults,
    )
    hidden = SECRET_FIELDS | withheld if withheld else SECRET_FIELDS
    _shape(cast(Descriptor, message.DESCRIPTOR), data, hidden)
    return data


def to_page(
    items: Iterable[Message],
    next_page_token: str | Message | None = None,
    *,
    withheld: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A list response `{"items": [...], "next_page_token": ...}`: each item as `to_json`
    renders it (without the `withheld` fields); `next_page_token` is LiveKit's, as text or
    as the `TokenPagination` message LiveKit's list responses carry
    (`ListEgressResponse.next_page_token`, its `token`); empty or None on the last page
    becomes null."""
    token = getattr(next_page_token, "token", next_page_token)
    items_json = [to_json(item, withheld=withheld) for item in items]
    return {"items": items_json, "next_page_token": str(token or "") or None}


def _shape(descriptor: Descriptor, data: dict[str, Any], hidden: frozenset[str]) -> None:
    """Drop the `hidden` fields (full names); and protojson writes 64-bit integers as
    strings, the contract wants JSON numbers."""
    for field in descriptor.fields:
        if field.full_name in hidden:
            data.pop(field.name, None)
            continue
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
                    _shape(value_field.message_type, item, hidden)
        elif field.message_type is not None and field.message_type.full_name not in _WELL_KNOWN:
            for item in value if isinstance(value, list) else [value]:
                _shape(field.message_type, item, hidden)
