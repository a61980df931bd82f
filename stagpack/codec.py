"""A canonical binary encoding for protocol records (frozen dataclasses).

Records are what parties sign, hash, store and (in-process) send. The encoding is
deterministic — equal records give equal bytes in every process — so a signature or digest over
`encode(record)` means the same thing everywhere. Decoding is strict: it checks every type and
length against the record's annotations and raises `InvalidInput` on anything else, so it is
safe on bytes from an adversary.

Supported field types: int (64-bit signed), bool, bytes, str, str/int enums, nested records,
`tuple[T, ...]` and `T | None`.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
import typing
from typing import Any, TypeVar

from stagpack.errors import InvalidInput

T = TypeVar("T")

MAX_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 1 << 20

_INT = b"i"
_BOOL = b"b"
_BYTES = b"y"
_STR = b"s"
_NONE = b"n"
_TUPLE = b"t"
_RECORD = b"r"

_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hints_cache[cls] = hints
    return hints


def record_name(cls: type) -> str:
    """The name a record type is encoded under: its declared `WIRE_NAME`.

    Every record declares one, so that renaming a class never changes what is signed, hashed or
    stored (a record without one is a programming error, not bad input)."""
    name = cls.__dict__.get("WIRE_NAME")
    if not isinstance(name, str) or not name:
        raise TypeError(f"record type {cls.__name__} declares no WIRE_NAME")
    return name


def encode(value: object) -> bytes:
    """Canonical bytes of a record (or of any supported value)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: object, out: bytearray) -> None:
    if value is None:
        out += _NONE
    elif isinstance(value, bool):
        out += _BOOL + (b"\x01" if value else b"\x00")
    elif isinstance(value, enum.Enum):
        _encode(value.value, out)
    elif isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            raise InvalidInput("integer does not fit 64 bits")
        out += _INT + struct.pack(">q", value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        out += _BYTES + struct.pack(">I", len(data)) + data
    elif isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
            raise InvalidInput("string is not valid Unicode (lone surrogate)") from None
        out += _STR + struct.pack(">I", len(data)) + data
    elif isinstance(value, tuple):
        out += _TUPLE + struct.pack(">I", len(value))
        for item in value:
            _encode(item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = record_name(type(value)).encode()
        fields = dataclasses.fields(value)
        out += _RECORD + struct.pack(">H", len(name)) + name + struct.pack(">H", len(fields))
        for field in fields:
            _encode(getattr(value, field.name), out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def across(record: T) -> T:
    """`record` after a trip through its canonical bytes: what an in-process transport hands
    the other party, so that tests run exactly the decoding the network path runs."""
    return decode(type(record), encode(record))


def decode(cls: type[T], data: bytes) -> T:
    """Parse canonical bytes into a record of type `cls`, checking every field."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, not {type(data).__name__}")
    reader = _Reader(bytes(data))
    value = reader.read(cls, record_name(cls))
    if reader.offset != len(reader.data):
        raise InvalidInput(f"{record_name(cls)}: {len(reader.data) - reader.offset} trailing bytes")
    return typing.cast(T, value)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, where: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise InvalidInput(f"{where}: truncated")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def tag(self, where: str) -> bytes:
        return self.take(1, where)

    def read(self, annotation: Any, where: str) -> Any:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            options = [option for option in typing.get_args(annotation) if option is not type(None)]
            if len(options) != 1:
                raise TypeError(f"{where}: only `T | None` unions are supported")
            if self.data[self.offset : self.offset + 1] == _NONE:
                self.offset += 1
                return None
            return self.read(options[0], where)
        if origin is tuple:
            arguments = typing.get_args(annotation)
            if len(arguments) != 2 or arguments[1] is not Ellipsis:
                raise TypeError(f"{where}: only tuple[T, ...] is supported")
            if self.tag(where) != _TUPLE:
                raise InvalidInput(f"{where}: expected a list")
            (count,) = struct.unpack(">I", self.take(4, where))
            if count > MAX_ITEMS:
                raise InvalidInput(f"{where}: too many items ({count})")
            return tuple(self.read(arguments[0], f"{where}[{index}]") for index in range(count))
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            base = str if issubclass(annotation, str) else int
            raw = self.read(base, where)
            try:
                return annotation(raw)
            except ValueError:
                raise InvalidInput(f"{where}: {raw!r} is not a valid {annotation.__name__}") from None
        if annotation is bool:
            if self.tag(where) != _BOOL:
                raise InvalidInput(f"{where}: expected a bool")
            flag = self.take(1, where)
            if flag not in (b"\x00", b"\x01"):
                raise InvalidInput(f"{where}: malformed bool")
            return flag == b"\x01"
        if annotation is int:
            if self.tag(where) != _INT:
                raise InvalidInput(f"{where}: expected an integer")
            return struct.unpack(">q", self.take(8, where))[0]
        if annotation in (bytes, str):
            expected = _BYTES if annotation is bytes else _STR
            if self.tag(where) != expected:
                raise InvalidInput(f"{where}: expected {'bytes' if annotation is bytes else 'a string'}")
            (size,) = struct.unpack(">I", self.take(4, where))
            if size > MAX_BYTES:
                raise InvalidInput(f"{where}: field too large ({size} bytes)")
            raw = self.take(size, where)
            if annotation is bytes:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{where}: not UTF-8") from None
        if dataclasses.is_dataclass(annotation):
            return self.read_record(annotation, where)
        raise TypeError(f"{where}: unsupported field type {annotation!r}")

    def read_record(self, cls: Any, where: str) -> Any:
        if self.tag(where) != _RECORD:
            raise InvalidInput(f"{where}: expected a {record_name(cls)} record")
        (name_size,) = struct.unpack(">H", self.take(2, where))
        name = self.take(name_size, where)
        if name != record_name(cls).encode():
            raise InvalidInput(f"{where}: expected a {record_name(cls)} record, got {name[:40]!r}")
        (count,) = struct.unpack(">H", self.take(2, where))
        fields = dataclasses.fields(cls)
        if count != len(fields):
            raise InvalidInput(f"{where}: {record_name(cls)} has {len(fields)} fields, got {count}")
        hints = _hints(cls)
        values = {field.name: self.read(hints[field.name], f"{where}.{field.name}") for field in fields}
        try:
            return cls(**values)
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"{where}: {error}") from None
