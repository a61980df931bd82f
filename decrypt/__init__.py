"""Threshold decryption that reveals only what DESIGN.md §3 allows.

Keyholders produce partials with `DecryptingParty`; whoever fuses calls one of the `reveal_*`
functions, which fuse a complete set of partials and return the facts (a check's candidate
levels, a confirmed level, membership bits, validity bits) — never the plaintext vector.
"""

from __future__ import annotations

from typing import Sequence

from stagpack.circuit import layout_of
from stagpack.decrypt.facts import (
    CheckFacts,
    ConfirmationFacts,
    read_confirmation,
    read_hunt_check,
    read_membership,
    read_validity,
)
from stagpack.decrypt.quorum import Quorum
from stagpack.decrypt.threshold import DecryptingParty, PartialShare, fuse
from stagpack.fhe import FheContext

__all__ = [
    "CheckFacts",
    "ConfirmationFacts",
    "DecryptingParty",
    "PartialShare",
    "Quorum",
    "reveal_confirmation",
    "reveal_hunt_check",
    "reveal_membership",
    "reveal_validity",
]


def reveal_hunt_check(
    context: FheContext, quorum: Quorum, shares: Sequence[PartialShare], levels: int, executed_level: int
) -> CheckFacts:
    """Candidate fixed points above the executed level (both masked copies zero)."""
    return read_hunt_check(layout_of(context), fuse(context, quorum, shares), levels, executed_level)


def reveal_confirmation(
    context: FheContext, quorum: Quorum, shares: Sequence[PartialShare], levels: int, candidates: Sequence[int]
) -> ConfirmationFacts:
    """The greatest candidate confirmed with fresh masks, or None."""
    return read_confirmation(layout_of(context), fuse(context, quorum, shares), levels, candidates)


def reveal_membership(
    context: FheContext, quorum: Quorum, shares_per_ciphertext: Sequence[Sequence[PartialShare]], level: int, count: int
) -> tuple[bool, ...]:
    """Membership bit of each of `count` pending intendos, in log order."""
    vectors = [fuse(context, quorum, shares) for shares in shares_per_ciphertext]
    return read_membership(layout_of(context), vectors, level, count)


def reveal_validity(context: FheContext, quorum: Quorum, shares: Sequence[PartialShare], groups: int) -> tuple[bool, ...]:
    """Validity bit of each group in a validity check."""
    return read_validity(layout_of(context), fuse(context, quorum, shares), groups)
