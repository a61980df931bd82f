"""Unit tests for stagpack.codec: canonical, strict encoding of protocol records.

The oracle for the format is the documented layout itself (tag letters, big-endian lengths),
written out by hand for a known record; decoding is attacked at every prefix length and with
wrong tags, names, counts, lengths, UTF-8 and enum values; Hypothesis checks the round trip and
that anything decode accepts is canonical (re-encodes to the very same bytes).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagpack import codec
from stagpack.errors import InvalidInput
from stagpack.log import EntryKind, LogEntry

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclass(frozen=True)
class Leaf:
    WIRE_NAME = "test.Leaf.v1"

    number: int
    label: str
    blob: bytes
    flag: bool


@dataclass(frozen=True)
class Tree:
    WIRE_NAME = "test.Tree.v1"

    leaf: Leaf
    maybe_leaf: Leaf | None
    leaves: tuple[Leaf, ...]
    numbers: tuple[int, ...]
    color: Color
    size: Size
    note: str | None
    nested: tuple[tuple[bytes, ...], ...]
    maybe_number: int | None


@dataclass(frozen=True)
class Unnamed:  # no WIRE_NAME: refused (a class rename must never change signed bytes)
    value: int


@dataclass(frozen=True)
class Named:
    WIRE_NAME = "test.Named.v1"

    value: int


@dataclass(frozen=True)
class InheritsName(Named):  # a subclass does not inherit its parent's wire name
    pass


# Look-alikes used to build hostile encodings.
@dataclass(frozen=True)
class LeafRenamed:
    WIRE_NAME = "test.Leaf.v2"

    number: int
    label: str
    blob: bytes
    flag: bool


@dataclass(frozen=True)
class LeafWithExtraField:
    WIRE_NAME = "test.Leaf.v1"

    number: int
    label: str
    blob: bytes
    flag: bool
    extra: int


@dataclass(frozen=True)
class LeafMissingField:
    WIRE_NAME = "test.Leaf.v1"

    number: int
    label: str
    blob: bytes


@dataclass(frozen=True)
class Checked:
    WIRE_NAME = "test.Checked.v1"

    positive: int

    def __post_init__(self) -> None:
        if self.positive <= 0:
            raise ValueError("must be positive")


@dataclass(frozen=True)
class Loose:
    WIRE_NAME = "test.Checked.v1"

    positive: int


@dataclass(frozen=True)
class WithFloat:
    value: float


@dataclass(frozen=True)
class WithList:
    values: list[int]


@dataclass(frozen=True)
class WithPair:
    values: tuple[int, str]


@dataclass(frozen=True)
class WithUnion:
    value: int | str


@dataclass(frozen=True)
class Colored:
    WIRE_NAME = "test.Colored.v1"

    color: Color
    size: Size


@dataclass(frozen=True)
class ColoredRaw:
    WIRE_NAME = "test.Colored.v1"

    color: str
    size: int


@dataclass(frozen=True)
class Numbered:
    WIRE_NAME = "test.Numbered.v1"

    items: tuple[int, ...]
    data: bytes


def _leaf(number: int = -5) -> Leaf:
    return Leaf(number, "héllo ✓", b"\x00\xff\x10", True)


SAMPLE = Tree(
    leaf=_leaf(),
    maybe_leaf=None,
    leaves=(Leaf(INT64_MIN, "", b"", False), Leaf(INT64_MAX, "x", b"y" * 300, True)),
    numbers=(0, 1, -1, INT64_MAX, INT64_MIN),
    color=Color.GREEN,
    size=Size.LARGE,
    note="a note",
    nested=((), (b"", b"ab"), (b"c",)),
    maybe_number=0,
)


# --- the format ------------------------------------------------------------------------------


def _u16(value: int) -> bytes:
    return struct.pack(">H", value)


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _leaf_bytes(number: int, label: str, blob: bytes, flag: bool, name: bytes = b"test.Leaf.v1") -> bytes:
    text = label.encode()
    return (
        b"r" + _u16(len(name)) + name + _u16(4)
        + b"i" + struct.pack(">q", number)
        + b"s" + _u32(len(text)) + text
        + b"y" + _u32(len(blob)) + blob
        + b"b" + (b"\x01" if flag else b"\x00")
    )


def test_known_answer_layout() -> None:
    leaf = _leaf()
    assert codec.encode(leaf) == _leaf_bytes(-5, "héllo ✓", b"\x00\xff\x10", True)
    assert codec.encode(Named(7)) == b"r" + _u16(13) + b"test.Named.v1" + _u16(1) + b"i" + struct.pack(">q", 7)
    assert codec.encode(None) == b"n"
    assert codec.encode((1, b"")) == b"t" + _u32(2) + b"i" + struct.pack(">q", 1) + b"y" + _u32(0)
    assert codec.encode(Color.RED) == codec.encode("red") == b"s" + _u32(3) + b"red"
    assert codec.encode(Size.LARGE) == codec.encode(2)
    assert codec.record_name(Leaf) == "test.Leaf.v1"
    assert codec.record_name(Named) == "test.Named.v1"


@pytest.mark.parametrize("cls", [Unnamed, InheritsName])
def test_a_record_without_its_own_wire_name_is_a_programming_error(cls: type) -> None:
    """Before, a record without WIRE_NAME was encoded under its class name, so renaming the
    class silently changed what keyholders sign and store. Now every record must name itself."""
    with pytest.raises(TypeError, match="declares no WIRE_NAME"):
        codec.encode(cls(7))
    with pytest.raises(TypeError, match="declares no WIRE_NAME"):
        codec.decode(cls, codec.encode(Named(7)))


def test_nested_record_roundtrip() -> None:
    data = codec.encode(SAMPLE)
    decoded = codec.decode(Tree, data)
    assert decoded == SAMPLE
    assert type(decoded.color) is Color and type(decoded.size) is Size
    assert decoded.maybe_leaf is None and decoded.maybe_number == 0
    filled = Tree(**{**SAMPLE.__dict__, "maybe_leaf": _leaf(3), "note": None, "maybe_number": None})
    assert codec.decode(Tree, codec.encode(filled)) == filled
    assert codec.decode(Tree, bytearray(data)) == SAMPLE
    assert codec.decode(Tree, memoryview(data)) == SAMPLE


def test_encoding_is_deterministic() -> None:
    rebuilt = Tree(**{name: getattr(SAMPLE, name) for name in SAMPLE.__dataclass_fields__})
    assert rebuilt is not SAMPLE
    assert codec.encode(rebuilt) == codec.encode(SAMPLE) == codec.encode(SAMPLE)
    assert codec.encode(Leaf(1, "a", bytearray(b"z"), False)) == codec.encode(Leaf(1, "a", b"z", False))
    assert codec.encode(_leaf(1)) != codec.encode(_leaf(2))


def test_64_bit_bounds() -> None:
    for value in (INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX):
        assert codec.decode(Leaf, codec.encode(Leaf(value, "", b"", False))).number == value
    for value in (INT64_MAX + 1, INT64_MIN - 1, 1 << 64, -(1 << 100)):
        with pytest.raises(InvalidInput):
            codec.encode(Leaf(value, "", b"", False))
        with pytest.raises(InvalidInput):
            codec.encode((0, value))


@pytest.mark.parametrize("value", [1.5, [1], {"a": 1}, {1}, object(), complex(1, 1)], ids=repr)
def test_unsupported_values_are_type_errors(value: object) -> None:
    with pytest.raises(TypeError):
        codec.encode(value)
    with pytest.raises(TypeError):
        codec.encode(Named(value))  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [WithFloat, WithList, WithPair, WithUnion])
def test_unsupported_annotations_are_type_errors(cls: type) -> None:
    data = b"r" + _u16(len(cls.__name__)) + cls.__name__.encode() + _u16(1) + b"i" + struct.pack(">q", 1)
    with pytest.raises(TypeError):
        codec.decode(cls, data)


@pytest.mark.parametrize("data", ["text", None, 5, [1, 2]], ids=repr)
def test_decoding_non_bytes_is_type_error(data: object) -> None:
    with pytest.raises(TypeError):
        codec.decode(Leaf, data)  # type: ignore[arg-type]


def test_unencodable_string_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        codec.encode(Leaf(1, "lone surrogate \ud800", b"", False))


# --- strict decoding -------------------------------------------------------------------------


def test_wrong_record_name_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="test.Leaf.v1"):
        codec.decode(Leaf, codec.encode(LeafRenamed(1, "a", b"b", True)))
    with pytest.raises(InvalidInput):
        codec.decode(Tree, codec.encode(_leaf()))
    with pytest.raises(InvalidInput):
        codec.decode(Leaf, _leaf_bytes(1, "a", b"", True, name=b"test.Leaf.v"))
    with pytest.raises(InvalidInput):
        codec.decode(Leaf, _leaf_bytes(1, "a", b"", True, name=b""))


def test_wrong_field_count_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="fields"):
        codec.decode(Leaf, codec.encode(LeafWithExtraField(1, "a", b"b", True, 9)))
    with pytest.raises(InvalidInput, match="fields"):
        codec.decode(Leaf, codec.encode(LeafMissingField(1, "a", b"b")))
    with pytest.raises(InvalidInput):
        codec.decode(LeafWithExtraField, codec.encode(_leaf()))


def test_every_truncation_is_invalid() -> None:
    for record, cls in ((_leaf(), Leaf), (SAMPLE, Tree)):
        data = codec.encode(record)
        for length in range(len(data)):
            with pytest.raises(InvalidInput):
                codec.decode(cls, data[:length])


def test_trailing_bytes_are_invalid() -> None:
    data = codec.encode(SAMPLE)
    for trailer in (b"\x00", b"n", codec.encode(_leaf()), data):
        with pytest.raises(InvalidInput, match="trailing"):
            codec.decode(Tree, data + trailer)


def test_wrong_tags_are_invalid() -> None:
    good = _leaf_bytes(1, "a", b"b", True)
    name_end = 1 + 2 + len(b"test.Leaf.v1") + 2
    int_at = name_end
    str_at = int_at + 9
    bytes_at = str_at + 5 + 1
    bool_at = bytes_at + 5 + 1
    assert good[int_at : int_at + 1] == b"i" and good[str_at : str_at + 1] == b"s"
    assert good[bytes_at : bytes_at + 1] == b"y" and good[bool_at : bool_at + 1] == b"b"
    tags = [b"i", b"b", b"y", b"s", b"n", b"t", b"r", b"\x00", b"z"]
    for position in (0, int_at, str_at, bytes_at, bool_at):
        for tag in tags:
            if tag == good[position : position + 1]:
                continue
            with pytest.raises(InvalidInput):
                codec.decode(Leaf, good[:position] + tag + good[position + 1 :])


def test_malformed_bool_is_invalid() -> None:
    good = _leaf_bytes(1, "a", b"b", True)
    for flag in (b"\x02", b"\xff", b"1"):
        with pytest.raises(InvalidInput, match="bool"):
            codec.decode(Leaf, good[:-1] + flag)


def test_oversized_lengths_are_invalid_without_allocating() -> None:
    name = b"test.Numbered.v1"
    head = b"r" + _u16(len(name)) + name + _u16(2)
    empty_bytes = b"y" + _u32(0)
    for count in (0xFFFF_FFFF, codec.MAX_ITEMS + 1):
        with pytest.raises(InvalidInput, match="too many"):
            codec.decode(Numbered, head + b"t" + _u32(count) + empty_bytes)
    with pytest.raises(InvalidInput, match="truncated"):
        codec.decode(Numbered, head + b"t" + _u32(codec.MAX_ITEMS) + b"i" + struct.pack(">q", 1))
    for size in (0xFFFF_FFFF, codec.MAX_BYTES + 1):
        with pytest.raises(InvalidInput, match="too large"):
            codec.decode(Numbered, head + b"t" + _u32(0) + b"y" + _u32(size))
    for size in (codec.MAX_BYTES, 1 << 20, 2):
        with pytest.raises(InvalidInput, match="truncated"):
            codec.decode(Numbered, head + b"t" + _u32(0) + b"y" + _u32(size) + b"x")
    with pytest.raises(InvalidInput):
        codec.decode(Numbered, b"r" + _u16(0xFFFF) + name)
    with pytest.raises(InvalidInput):
        codec.decode(Leaf, _leaf_bytes(1, "a", b"b", True)[:15].replace(b"\x00\x0c", b"\xff\xff", 1))


def test_invalid_utf8_is_invalid() -> None:
    for raw in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"ok\x80"):  # bad byte, cut, surrogate, overlong
        data = _leaf_bytes(1, "", b"", True).replace(b"s" + _u32(0), b"s" + _u32(len(raw)) + raw, 1)
        with pytest.raises(InvalidInput, match="UTF-8"):
            codec.decode(Leaf, data)


def test_invalid_enum_values_are_invalid() -> None:
    assert codec.decode(Colored, codec.encode(ColoredRaw("red", 1))) == Colored(Color.RED, Size.SMALL)
    for raw in (ColoredRaw("purple", 1), ColoredRaw("RED", 1), ColoredRaw("", 2), ColoredRaw("red", 3), ColoredRaw("red", 0)):
        with pytest.raises(InvalidInput):
            codec.decode(Colored, codec.encode(raw))


def test_record_constructor_errors_are_invalid_input() -> None:
    assert codec.decode(Checked, codec.encode(Loose(3))) == Checked(3)
    with pytest.raises(InvalidInput, match="positive"):
        codec.decode(Checked, codec.encode(Loose(-3)))


def test_protocol_record_roundtrip() -> None:
    entry = LogEntry(b"\x01" * 32, 7, b"\x02" * 32, 1_700_000_000_000, EntryKind.WITHDRAWAL, b"body")
    assert codec.decode(LogEntry, codec.encode(entry)) == entry
    assert codec.encode(entry).startswith(b"r" + _u16(len(b"stagpack.LogEntry.v1")) + b"stagpack.LogEntry.v1")


# --- properties ------------------------------------------------------------------------------

int64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
leaves = st.builds(Leaf, int64, st.text(max_size=20), st.binary(max_size=40), st.booleans())
trees = st.builds(
    Tree,
    leaf=leaves,
    maybe_leaf=st.none() | leaves,
    leaves=st.lists(leaves, max_size=4).map(tuple),
    numbers=st.lists(int64, max_size=6).map(tuple),
    color=st.sampled_from(Color),
    size=st.sampled_from(Size),
    note=st.none() | st.text(max_size=10),
    nested=st.lists(st.lists(st.binary(max_size=5), max_size=3).map(tuple), max_size=3).map(tuple),
    maybe_number=st.none() | int64,
)


@given(trees)
def test_roundtrip_property(tree: Tree) -> None:
    data = codec.encode(tree)
    assert codec.decode(Tree, data) == tree
    assert codec.encode(codec.decode(Tree, data)) == data


@given(trees, st.data())
def test_mutated_bytes_are_refused_or_canonical(tree: Tree, data: st.DataObject) -> None:
    """Whatever decode accepts re-encodes to exactly the bytes it was given (one encoding per
    record), and everything else is InvalidInput — never another exception."""
    encoded = bytearray(codec.encode(tree))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    mutated = bytes(encoded[:cut]) + data.draw(st.binary(max_size=3))
    try:
        decoded = codec.decode(Tree, mutated)
    except InvalidInput:
        return
    assert codec.encode(decoded) == mutated
