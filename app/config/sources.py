"""Reading configuration values safely: the `@path` form, JSON and YAML parsed with errors
that give a position and never text of the value, and a pydantic validation error described
the same way (`app.config.settings` reads the environment with them)."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def read_at_path(value: Any) -> Any:
    """Resolve the `@path` form: the text of that file, else the value unchanged.
    `ValueError` naming the path (never its text) when it cannot be read as UTF-8."""
    if isinstance(value, str) and value.startswith("@"):
        path = value[1:]
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return value


def parse_json(text: str) -> Any:
    """`text` as JSON; `ValueError` with the error's kind, line and column, never the text
    (a parser's excerpt of the line could show a secret)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # `msg` is one of json's fixed messages
        raise ValueError(
            f"not valid JSON ({exc.msg}) at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


def parse_json_or_yaml(text: str) -> Any:
    """`text` as JSON, else as YAML (`yaml.safe_load`); `ValueError` with the error's kind,
    line and column, never the text: PyYAML's message quotes the line around the error (and
    names such as an undefined alias or tag are text of the document). A document that
    starts like a JSON object is reported as JSON."""
    looks_like_json = text.lstrip().startswith("{")
    if looks_like_json:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass  # perhaps YAML's flow style (`{rooms: [a]}`)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if looks_like_json:
            parse_json(text)  # raises with JSON's line and column
        raise ValueError(f"not valid YAML ({type(exc).__name__}){_yaml_marks(exc)}") from None
    except RecursionError:
        raise ValueError("not valid YAML (nested too deeply)") from None


def _yaml_marks(exc: yaml.YAMLError) -> str:
    """Where PyYAML found the problem (`problem_mark`), and where what it was reading
    started (`context_mark`: an unclosed quote or bracket), 1-based; only the positions."""
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    text = ""
    if problem is not None:
        text += f" at line {problem.line + 1}, column {problem.column + 1}"
    if context is not None and (problem is None or context.line != problem.line):
        text += f" (in what starts at line {context.line + 1}, column {context.column + 1})"
    return text


def describe_validation_error(error: ValidationError, field_names: frozenset[str]) -> str:
    """One line per error of a `Settings` validation: `SETTING: path.in.value: message`,
    the setting by its environment variable's name. Only what the service itself wrote is
    shown: messages without input, and of an error's location the indexes and the field
    names of the settings' models, `field_names` (an unknown key, a dictionary key, is
    `<key>`)."""
    lines = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(part).upper() if i == 0 else part for i, part in enumerate(item["loc"])]
        path = "".join(_loc_part(part, field_names) for part in loc[1:]).lstrip(".")
        message = item["msg"].removeprefix("Value error, ")
        where = ": ".join(str(part) for part in (loc[0] if loc else None, path) if part)
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def _loc_part(part: str | int, field_names: frozenset[str]) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if part in field_names else ".<key>"


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds (`list[ServiceKey]`, `TokenPolicy | None` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from models_in(field.annotation)
    elif typing.get_origin(annotation) is not None:
        for argument in typing.get_args(annotation):
            yield from models_in(argument)
