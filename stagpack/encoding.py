"""Thermometer encoding of intendos and the plaintext vectors the circuits use (DESIGN.md §2).

Slots form two rows of `row_width` slots each (BFV batching with p = 65537). Level ℓ of a stag
with L levels lives in slot ℓ of row 0 *and* slot ℓ of row 1: every intendo is encoded twice,
which gives each masked test two independent copies (§3, step 5). Slots ℓ ≥ L are zero.

An intendo with threshold C and weight a encodes w[ℓ] = a · [C ≤ ℓ]:
* count stag, "I will if at least N others do": C = N + 1 (group size including me), a = 1;
* capital stag, "I commit a if the total reaches C": C and a in the stag's units.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from stagpack.errors import InvalidInput
from stagpack.fhe import SlotVector

MIN_LEVELS = 2


class StagKind(str, enum.Enum):
    """What a stag's levels count."""

    COUNT = "count"  # members
    CAPITAL = "capital"  # committed units


def _require_int(name: str, value: object) -> int:
    if type(value) is not int:  # bool is an int subclass, and is refused here on purpose
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Threshold:
    """A plaintext intendo condition: threshold level C and weight a (DESIGN.md §2)."""

    level: int
    weight: int

    @classmethod
    def count(cls, others: int, *, levels: int) -> Threshold:
        """"I will if at least `others` others do": C = others + 1, weight 1."""
        _require_int("others", others)
        if not 0 <= others <= levels - 2:
            raise InvalidInput(
                f"a count intendo needs 0 <= others <= {levels - 2} for a stag with {levels} "
                f"levels (the stag is full at {levels - 1} members); got {others}"
            )
        return cls(level=others + 1, weight=1)

    @classmethod
    def capital(cls, amount: int, total: int, *, levels: int) -> Threshold:
        """"I commit `amount` if the total reaches `total`" (units of the stag)."""
        _require_int("amount", amount)
        _require_int("total", total)
        if not 1 <= amount <= levels - 1:
            raise InvalidInput(f"the committed amount must be in 1..{levels - 1} units; got {amount}")
        if not 1 <= total <= levels - 1:
            raise InvalidInput(
                f"the target total must be in 1..{levels - 1} units for a stag with {levels} levels; got {total}"
            )
        return cls(level=max(total, amount), weight=amount)

    def check(self, levels: int) -> None:
        _require_int("threshold level", self.level)
        _require_int("weight", self.weight)
        if not 1 <= self.level <= levels - 1:
            raise InvalidInput(f"threshold level must be in 1..{levels - 1}; got {self.level}")
        if not 1 <= self.weight <= levels - 1:
            raise InvalidInput(f"weight must be in 1..{levels - 1}; got {self.weight}")


@dataclass(frozen=True)
class SlotLayout:
    """Where levels live in the slot vector, and the plaintext vectors built from that."""

    slot_count: int
    plaintext_modulus: int

    @property
    def row_width(self) -> int:
        return self.slot_count // 2

    @property
    def max_levels(self) -> int:
        return self.row_width

    def check_levels(self, levels: int) -> None:
        _require_int("levels", levels)
        if not MIN_LEVELS <= levels <= self.max_levels:
            raise InvalidInput(f"levels must be in {MIN_LEVELS}..{self.max_levels}; got {levels}")

    def zeros(self) -> SlotVector:
        return np.zeros(self.slot_count, dtype=np.int64)

    def _both_rows(self, row: SlotVector) -> SlotVector:
        vector = self.zeros()
        vector[: len(row)] = row
        vector[self.row_width : self.row_width + len(row)] = row
        return vector

    def thermometer(self, threshold: Threshold, levels: int) -> SlotVector:
        """w[ℓ] = a · [C ≤ ℓ] for ℓ < L, in both rows."""
        self.check_levels(levels)
        threshold.check(levels)
        row = np.zeros(levels, dtype=np.int64)
        row[threshold.level :] = threshold.weight
        return self._both_rows(row)

    def ramp(self, levels: int) -> SlotVector:
        """ramp[ℓ] = ℓ for ℓ < L, in both rows (d = Σ w − ramp is zero at fixed points)."""
        self.check_levels(levels)
        return self._both_rows(np.arange(levels, dtype=np.int64))

    def window(self, levels: int, executed_level: int) -> SlotVector:
        """1 at levels executed_level < ℓ < L (both rows), 0 elsewhere: slot 0, levels already
        executed, and unused slots are masked off before anything is decrypted."""
        self.check_levels(levels)
        row = np.zeros(levels, dtype=np.int64)
        row[executed_level + 1 :] = 1
        return self._both_rows(row)

    def indicator(self, levels_set: Iterable[int], levels: int) -> SlotVector:
        """1 at each given level (both rows), 0 elsewhere."""
        self.check_levels(levels)
        row = np.zeros(levels, dtype=np.int64)
        for level in levels_set:
            if not 0 < level < levels:
                raise InvalidInput(f"level {level} is outside 1..{levels - 1}")
            row[level] = 1
        return self._both_rows(row)

    def level_pairs(self, vector: SlotVector, levels: int) -> tuple[SlotVector, SlotVector]:
        """The two copies (row 0, row 1) of levels 0..L-1 in a decrypted vector."""
        return vector[:levels], vector[self.row_width : self.row_width + levels]

    def outside_levels(self, vector: SlotVector, levels: int) -> SlotVector:
        """The slots that hold no level: they must decrypt to zero in every circuit output."""
        return np.concatenate([vector[levels : self.row_width], vector[self.row_width + levels :]])

    def inverse(self, value: int) -> int:
        return pow(value, -1, self.plaintext_modulus)
