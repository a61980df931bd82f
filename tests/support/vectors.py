"""Records to and from plain JSON, driven by their type annotations (for known-answer vectors:
tests/vectors/records.json). bytes are hex strings, enums their values, tuples lists, records
objects keyed by field name."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any


def to_json(value: object) -> Any:
    if value is None or isinstance(value, (bool, int, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [to_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
    raise TypeError(f"cannot express {type(value).__name__} in a vector")


def from_json(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (option,) = [option for option in typing.get_args(annotation) if option is not type(None)]
        return None if value is None else from_json(option, value)
    if origin is tuple:
        (item, _) = typing.get_args(annotation)
        return tuple(from_json(item, element) for element in value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if annotation is bytes:
        return bytes.fromhex(value)
    if annotation in (int, str, bool):
        assert type(value) is annotation, (annotation, value)
        return value
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return annotation(**{field.name: from_json(hints[field.name], value[field.name]) for field in dataclasses.fields(annotation)})
    raise TypeError(f"unsupported annotation {annotation!r}")
