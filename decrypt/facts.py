"""Turn fused slot vectors into the facts DESIGN.md §3 allows to be revealed — and nothing else.

Every circuit output has slots that are zero by construction (outside the masked window, beyond
the membership slot, beyond the validity groups). A fused vector with anything non-zero there was
fused from a corrupted partial decryption: that raises `IntegrityFailure` and reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stagpack.decrypt.circuit import MEMBERS_PER_GROUP, MEMBERS_PER_SLOT, membership_slot
from stagpack.encoding import SlotLayout
from stagpack.errors import IntegrityFailure
from stagpack.fhe import SlotVector


@dataclass(frozen=True)
class CheckFacts:
    """The hunt check: levels whose both masked copies are zero (candidates for a fixed point)."""

    candidates: tuple[int, ...]

    @property
    def fired(self) -> bool:
        return bool(self.candidates)


@dataclass(frozen=True)
class ConfirmationFacts:
    """The greatest candidate confirmed with fresh masks, or None (a chance zero, no hunt)."""

    level: int | None


def _require_zero(values: SlotVector, what: str) -> None:
    if values.size and np.any(values != 0):
        raise IntegrityFailure(f"{what}: slots that must decrypt to zero do not (corrupted partial decryption)")


def read_hunt_check(layout: SlotLayout, slots: SlotVector, levels: int, executed_level: int) -> CheckFacts:
    first, second = layout.level_pairs(slots, levels)
    _require_zero(layout.outside_levels(slots, levels), "hunt check")
    _require_zero(first[: executed_level + 1], "hunt check")
    _require_zero(second[: executed_level + 1], "hunt check")
    zero_in_both = (first == 0) & (second == 0)
    zero_in_both[: executed_level + 1] = False
    return CheckFacts(tuple(int(level) for level in np.nonzero(zero_in_both)[0]))


def read_confirmation(layout: SlotLayout, slots: SlotVector, levels: int, candidates: Sequence[int]) -> ConfirmationFacts:
    first, second = layout.level_pairs(slots, levels)
    _require_zero(layout.outside_levels(slots, levels), "hunt confirmation")
    others = np.ones(levels, dtype=bool)
    others[list(candidates)] = False
    _require_zero(first[others], "hunt confirmation")
    _require_zero(second[others], "hunt confirmation")
    confirmed = [level for level in candidates if first[level] == 0 and second[level] == 0]
    return ConfirmationFacts(max(confirmed) if confirmed else None)


def read_membership(layout: SlotLayout, vector: SlotVector, level: int, count: int) -> tuple[bool, ...]:
    """Membership bits b_i of `count` pending intendos from the decrypted membership vector."""
    width = layout.row_width
    groups = -(-count // MEMBERS_PER_GROUP)
    expected = np.zeros_like(vector)
    words: list[tuple[int, int]] = []  # (first position, word)
    for group in range(groups):
        column = membership_slot(group * MEMBERS_PER_GROUP).column(level, width)
        for row in (0, 1):
            index = row * width + column
            expected[index] = vector[index]
            words.append((group * MEMBERS_PER_GROUP + row * MEMBERS_PER_SLOT, int(vector[index])))
    _require_zero(vector - expected, "membership")
    bits: list[bool] = []
    for first_position, word in words:
        population = max(0, min(MEMBERS_PER_SLOT, count - first_position))
        if word >> population:
            raise IntegrityFailure("membership: bits set beyond the pending intendos (corrupted partial decryption)")
        bits.extend(bool(word >> bit & 1) for bit in range(population))
    return tuple(bits)


def read_validity(layout: SlotLayout, slots: SlotVector, groups: int) -> tuple[bool, ...]:
    """Per group: valid iff both independent masked combinations are zero."""
    width = layout.row_width
    _require_zero(slots[groups:width], "validity check")
    _require_zero(slots[width + groups :], "validity check")
    return tuple(bool(slots[group] == 0 and slots[width + group] == 0) for group in range(groups))
