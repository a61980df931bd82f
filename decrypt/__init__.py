"""Threshold decryption that reveals only what DESIGN.md §3 allows.

The package holds everything between the kernel and the parties: the circuits (`circuit`), the
facts a fused vector may reveal (`facts`), quorums and threshold decryption (`quorum`,
`threshold`), the session step graph (`steps`) and the session computation every party runs
(`computation`).

Keyholders produce partials with `DecryptingParty`; whoever fuses calls one of the `reveal_*`
functions with a family of quorums (see `quorum.quorum_family`). Each fuses the partials of every
quorum of the family, reads the facts (a check's candidate levels, a confirmed level, membership
bits, validity bits), and returns them only if every quorum agrees — never a plaintext vector.
An optional `observe` callback sees each fused vector (tests and benchmarks: what a fuser sees).
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from stagpack.decrypt.circuit import layout_of
from stagpack.decrypt.facts import (
    CheckFacts,
    ConfirmationFacts,
    read_confirmation,
    read_hunt_check,
    read_membership,
    read_validity,
)
from stagpack.decrypt.quorum import Quorum, family_members, quorum_family
from stagpack.decrypt.threshold import DecryptingParty, PartialShare, fuse, quorum_partials
from stagpack.errors import IntegrityFailure, InvalidInput
from stagpack.fhe import Ciphertext, FheContext, SlotVector

__all__ = [
    "CheckFacts",
    "ConfirmationFacts",
    "DecryptingParty",
    "Observe",
    "PartialShare",
    "Quorum",
    "family_members",
    "quorum_family",
    "reveal_confirmation",
    "reveal_hunt_check",
    "reveal_membership",
    "reveal_noise",
    "reveal_validity",
]

Facts = TypeVar("Facts")
Observe = Callable[[Quorum, SlotVector], None]


def _agreed(
    context: FheContext,
    ciphertext: Ciphertext,
    family: Sequence[Quorum],
    shares: Sequence[PartialShare],
    read: Callable[[SlotVector], Facts],
    observe: Observe | None,
) -> Facts:
    """Facts read from each quorum's fusion; they must agree across the family."""
    if not family:
        raise InvalidInput("no quorum to decrypt with")
    results = []
    for quorum in family:
        vector = fuse(context, ciphertext, quorum, shares)
        if observe is not None:
            observe(quorum, vector)
        results.append(read(vector))
    if any(result != results[0] for result in results[1:]):
        raise IntegrityFailure(
            "quorums disagree on what was decrypted: a keyholder's partial decryption is dishonest; nothing is revealed"
        )
    return results[0]


def reveal_hunt_check(
    context: FheContext, ciphertext: Ciphertext, family: Sequence[Quorum], shares: Sequence[PartialShare],
    levels: int, executed_level: int, observe: Observe | None = None,
) -> CheckFacts:
    """Candidate fixed points above the executed level (both masked copies zero)."""
    layout = layout_of(context)
    return _agreed(context, ciphertext, family, shares, lambda vector: read_hunt_check(layout, vector, levels, executed_level), observe)


def reveal_confirmation(
    context: FheContext, ciphertext: Ciphertext, family: Sequence[Quorum], shares: Sequence[PartialShare],
    levels: int, candidates: Sequence[int], observe: Observe | None = None,
) -> ConfirmationFacts:
    """The greatest candidate confirmed with fresh masks, or None."""
    layout = layout_of(context)
    return _agreed(context, ciphertext, family, shares, lambda vector: read_confirmation(layout, vector, levels, candidates), observe)


def reveal_membership(
    context: FheContext, ciphertext: Ciphertext, family: Sequence[Quorum], shares: Sequence[PartialShare],
    level: int, count: int, observe: Observe | None = None,
) -> tuple[bool, ...]:
    """Membership bit of each of `count` pending intendos, in log order."""
    layout = layout_of(context)
    return _agreed(context, ciphertext, family, shares, lambda vector: read_membership(layout, vector, level, count), observe)


def reveal_validity(
    context: FheContext, ciphertext: Ciphertext, family: Sequence[Quorum], shares: Sequence[PartialShare], groups: int,
    observe: Observe | None = None,
) -> tuple[bool, ...]:
    """Validity bit of each group in a validity check."""
    layout = layout_of(context)
    return _agreed(context, ciphertext, family, shares, lambda vector: read_validity(layout, vector, groups), observe)


def reveal_noise(
    context: FheContext, ciphertext: Ciphertext, family: Sequence[Quorum], shares: Sequence[PartialShare],
    observe: Observe | None = None,
) -> bool:
    """Whether a noise test's noise stayed below the reading threshold in every quorum's fusion
    (DESIGN.md §3a): the quorums must agree, because a keyholder that crafted the noise of its
    own mask can shift its own partial of the test to hide it, and only a quorum without it
    shows the truth. Reveals nothing else (the plaintext is padded)."""
    if not family:
        raise InvalidInput("no quorum to decrypt with")
    bits = context.noise_reading_bits
    verdicts = []
    for quorum in family:
        partials = quorum_partials(context, ciphertext, quorum, shares)
        if observe is not None:
            observe(quorum, context.fuse(partials))
        verdicts.append(context.noise_reading(partials, bits) == 0)
    if any(verdict != verdicts[0] for verdict in verdicts[1:]):
        raise IntegrityFailure(
            "quorums disagree on a noise test: a keyholder's partial decryption is dishonest; nothing is revealed"
        )
    return verdicts[0]
