"""The homomorphic circuits: hunt detection (DESIGN.md §3) and input well-formedness (§7).

Every function here is deterministic given its inputs (additions, plaintext products and
relinearized products are), so the aggregator and every keyholder compute byte-identical
ciphertexts from the same log and the same committed masks. That is what lets a keyholder
refuse anything it did not recompute itself (§4).

Hunt, per epoch, with pack sum S = Σ w_i over counted intendos and joint masks R, R':
    d       = S − ramp                              zero exactly at fixed points c[ℓ] = ℓ
    check   = (d ⊙ window) ⊗ R                      reveals F = {ℓ : both copies zero}
    confirm = (d ⊙ 1_F) ⊗ R'                        fresh masks, only at the candidates F
    members = Σ_g rot(Σ_(i in g) w_i ⊙ (2^bit · a_i⁻¹ at m), g)   32 pending intendos per group,
                                                    all groups in one ciphertext

Well-formedness of a batch of new intendos, with public coefficients ρ drawn after submission:
    s_i     = rot(w_i, 1) − w_i                     step differences within each row
    E_i     = ρq ⊙ s_i ⊙ (s_i − a_i) + ρl ⊙ w_i − c_i
    total   = Σ_slots Σ_i E_i   (twice, with independent ρ)  zero iff valid, w.h.p.
    check   = (total¹ in row 0, total² in row 1, at slot g of group g) ⊗ R
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stagpack.encoding import SlotLayout
from stagpack.errors import InvalidInput
from stagpack.fhe import Ciphertext, FheContext, SlotVector

MEMBERS_PER_SLOT = 16  # 2^16 − 1 < p: sixteen membership bits fit one slot exactly
MEMBERS_PER_GROUP = 2 * MEMBERS_PER_SLOT  # one slot in each row
VALIDITY_COMBINATIONS = 2  # independent random combinations: false accept ≈ p^-2


def layout_of(context: FheContext) -> SlotLayout:
    return SlotLayout(context.slot_count, context.plaintext_modulus)


def sum_masks(context: FheContext, masks: Sequence[Ciphertext]) -> Ciphertext:
    """R = Σ_j Enc(R_j): uniform as long as one contributor is honest."""
    return context.add_many(masks)


# --- hunt ------------------------------------------------------------------------------------


def fixed_point_distance(context: FheContext, pack_sum: Ciphertext, levels: int) -> Ciphertext:
    """d = S − ramp: d[ℓ] = c[ℓ] − ℓ, zero exactly at fixed points (never wraps: c ≤ L−1 < p)."""
    return context.subtract_plain(pack_sum, layout_of(context).ramp(levels))


def hunt_check(
    context: FheContext, pack_sum: Ciphertext, mask: Ciphertext, levels: int, executed_level: int
) -> Ciphertext:
    """check = (d ⊙ window) ⊗ R: zero where c[ℓ] = ℓ above the executed level, uniform elsewhere
    in the window, zero outside it."""
    layout = layout_of(context)
    distance = fixed_point_distance(context, pack_sum, levels)
    windowed = context.multiply_plain(distance, layout.window(levels, executed_level))
    return context.multiply(windowed, mask)


def hunt_confirmation(
    context: FheContext, pack_sum: Ciphertext, mask: Ciphertext, levels: int, candidates: Sequence[int]
) -> Ciphertext:
    """confirm = (d ⊙ 1_F) ⊗ R' with fresh masks R', only at the candidate levels F."""
    if not candidates:
        raise InvalidInput("a confirmation needs at least one candidate level")
    layout = layout_of(context)
    distance = fixed_point_distance(context, pack_sum, levels)
    selected = context.multiply_plain(distance, layout.indicator(candidates, levels))
    return context.multiply(selected, mask)


@dataclass(frozen=True)
class MembershipSlot:
    """Where a pending intendo's membership bit lands: slot `column` of `row`, bit `bit`."""

    group: int
    row: int
    bit: int

    def column(self, level: int, row_width: int) -> int:
        """Group g's words are rotated from slot `level` to slot `level − g` of each row."""
        return (level - self.group) % row_width


def membership_slot(position: int) -> MembershipSlot:
    group, within = divmod(position, MEMBERS_PER_GROUP)
    row, bit = divmod(within, MEMBERS_PER_SLOT)
    return MembershipSlot(group, row, bit)


def shifted_sum(context: FheContext, terms: Sequence[Ciphertext], step: int = 1) -> Ciphertext:
    """Σ_g rotate(terms[g], g · step), with about one rotation per term: split by the lowest
    radix-16 digit of g, recurse on the rest with step · 16, then combine the 16 buckets in
    Horner form (rotate by `step`, add the next bucket). Every shift must stay within a row."""
    if not terms or (len(terms) - 1) * step >= context.row_width:
        raise InvalidInput(f"a shifted sum takes 1..{context.row_width // step} terms at step {step}")
    if len(terms) == 1:
        return terms[0]
    if step * 16 > context.row_width and len(terms) > 1:
        radix = context.row_width // step
    else:
        radix = 16
    buckets = [shifted_sum(context, terms[digit::radix], step * radix) for digit in range(min(radix, len(terms)))]
    total = buckets[-1]
    for bucket in reversed(buckets[:-1]):
        total = context.add(context.rotate(total, step), bucket)
    return total


def membership_ciphertext(
    context: FheContext, pending: Sequence[tuple[Ciphertext, int]], level: int, levels: int
) -> Ciphertext:
    """One ciphertext carrying the membership bit b_i = w_i[level] / a_i ∈ {0, 1} of every
    pending intendo (log order): intendo i is group g = i // 32, row r, bit k; group g's two
    16-bit words (Σ_k 2^k b_i) sit in slot level − g of rows 0 and 1. Every other slot is zero,
    so decrypting it reveals each b_i and nothing else about any threshold."""
    layout = layout_of(context)
    layout.check_levels(levels)
    if not 0 < level < levels:
        raise InvalidInput(f"membership level {level} is outside 1..{levels - 1}")
    if not pending:
        raise InvalidInput("there are no pending intendos")
    if len(pending) > MEMBERS_PER_GROUP * layout.row_width:
        raise InvalidInput("too many pending intendos for one membership ciphertext")
    groups: list[list[Ciphertext]] = []
    for position, (ciphertext, weight) in enumerate(pending):
        place = membership_slot(position)
        selector = layout.zeros()
        selector[place.row * layout.row_width + level] = (1 << place.bit) * layout.inverse(weight) % layout.plaintext_modulus
        if place.group == len(groups):
            groups.append([])
        groups[place.group].append(context.multiply_plain(ciphertext, selector))
    return shifted_sum(context, [context.add_many(terms) for terms in groups])


# --- well-formedness -------------------------------------------------------------------------


def _uniform_vector(seed: bytes, label: bytes, size: int, modulus: int) -> SlotVector:
    stream = hashlib.shake_256(b"stagpack/validity-coefficients/v1\x00" + seed + b"\x00" + label).digest(4 * size)
    return (np.frombuffer(stream, dtype="<u4").astype(np.int64) % modulus).astype(np.int64)


@dataclass(frozen=True)
class ValidityCoefficients:
    """The public random coefficients of one validity combination for one intendo. They are
    derived from a seed fixed only after the intendo was submitted (the keyholders' mask
    commitments), so a submitter cannot aim a malformed ciphertext at a blind spot."""

    quadratic: SlotVector
    linear: SlotVector
    constant: SlotVector

    @classmethod
    def derive(cls, layout: SlotLayout, seed: bytes, label: bytes, weight: int, levels: int) -> ValidityCoefficients:
        layout.check_levels(levels)
        modulus = layout.plaintext_modulus
        width = layout.row_width
        size = layout.slot_count
        quadratic_random = _uniform_vector(seed, label + b"/quadratic", size, modulus)
        agree = _uniform_vector(seed, label + b"/rows-agree", width, modulus)
        zero = _uniform_vector(seed, label + b"/zero", size, modulus)
        top = _uniform_vector(seed, label + b"/top", 2, modulus)

        quadratic = layout.zeros()
        for row in (0, 1):  # s[ℓ] ∈ {0, a} for ℓ = 0..L−2 in both rows
            quadratic[row * width : row * width + levels - 1] = quadratic_random[row * width : row * width + levels - 1]

        linear = layout.zeros()
        linear[:width] += agree  # w[ℓ] − w[W+ℓ] = 0 for every slot of the row
        linear[width:] -= agree
        for row in (0, 1):
            base = row * width
            linear[base] += zero[base]  # w[0] = 0
            linear[base + levels : base + width] += zero[base + levels : base + width]  # w[ℓ≥L] = 0
            linear[base + levels - 1] += top[row]  # w[L−1] = a
        constant = layout.zeros()
        for row in (0, 1):
            constant[row * width + levels - 1] = top[row] * weight % modulus
        return cls(quadratic % modulus, linear % modulus, constant)


def validity_seed(session: bytes, commitments: Sequence[bytes]) -> bytes:
    """The coefficient seed for a validation session: fixed by the keyholders' fresh mask
    commitments, which no submitter could know when it submitted."""
    digest = hashlib.sha256(b"stagpack/validity-seed/v1\x00" + session)
    for commitment in commitments:
        digest.update(commitment)
    return digest.digest()


def validity_terms(
    context: FheContext,
    ciphertext: Ciphertext,
    weight: int,
    levels: int,
    seed: bytes,
    label: bytes,
) -> list[Ciphertext]:
    """E_i for each of the VALIDITY_COMBINATIONS random combinations (summed over slots later)."""
    layout = layout_of(context)
    steps = context.subtract(context.rotate(ciphertext, 1), ciphertext)
    shifted = context.subtract_plain(steps, np.full(layout.slot_count, weight, dtype=np.int64))
    quadratic = context.multiply(steps, shifted)
    terms = []
    for combination in range(VALIDITY_COMBINATIONS):
        coefficients = ValidityCoefficients.derive(layout, seed, label + b"/%d" % combination, weight, levels)
        term = context.add(
            context.multiply_plain(quadratic, coefficients.quadratic),
            context.multiply_plain(ciphertext, coefficients.linear),
        )
        terms.append(context.subtract_plain(term, coefficients.constant))
    return terms


def sum_rows(context: FheContext, ciphertext: Ciphertext) -> Ciphertext:
    """Every slot ← the sum of its row: radix-16 rotate-and-add steps within the rows."""
    total = ciphertext
    block = 1
    while block < context.row_width:
        radix = min(16, context.row_width // block)
        rotated = total
        accumulated = total
        for _ in range(radix - 1):
            rotated = context.rotate(rotated, block)
            accumulated = context.add(accumulated, rotated)
        total = accumulated
        block *= radix
    return total


def fold_rows(context: FheContext, ciphertext: Ciphertext) -> Ciphertext:
    """x + rowswap(x): each row then holds both rows' terms, so a row sum is a sum of all slots."""
    return context.add(ciphertext, context.rotate(ciphertext, context.row_width))


def validity_check(
    context: FheContext, groups: Sequence[Sequence[list[Ciphertext]]], mask: Ciphertext
) -> Ciphertext:
    """For each group g of intendos (a list of their validity terms), put combination k's total
    over all slots in slot g of row k, then mask: zero in both rows iff every intendo of the
    group is valid (up to probability ≈ p^-2). Slots beyond the groups stay zero.

    Combination 0 is folded into row 0 and combination 1 into row 1 before one row sum, which
    halves the rotations of summing each combination over all slots separately."""
    layout = layout_of(context)
    if not groups or len(groups) > layout.row_width:
        raise InvalidInput(f"a validity check covers 1..{layout.row_width} groups")
    width = layout.row_width
    row_selector = [layout.zeros(), layout.zeros()]
    row_selector[0][:width] = 1
    row_selector[1][width:] = 1
    placed: list[Ciphertext] = []
    for index, group in enumerate(groups):
        rows = []
        for combination in range(VALIDITY_COMBINATIONS):
            folded = fold_rows(context, context.add_many(terms[combination] for terms in group))
            rows.append(context.multiply_plain(folded, row_selector[combination]))
        totals = sum_rows(context, context.add_many(rows))
        selector = layout.zeros()
        selector[index] = 1
        selector[width + index] = 1
        placed.append(context.multiply_plain(totals, selector))
    return context.multiply(context.add_many(placed), mask)
