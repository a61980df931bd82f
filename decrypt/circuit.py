"""The homomorphic circuits: hunt detection (DESIGN.md §3) and input well-formedness (§7).

Every function here is deterministic given its inputs (additions, plaintext products and
relinearized products are), so the aggregator and every keyholder compute byte-identical
ciphertexts from the same log and the same committed masks. That is what lets a keyholder
refuse anything it did not recompute itself (§4).

Levels: every ciphertext a party supplies (intendo, mask, pad) is at the input level (all
towers). The hunt path runs at the evaluation level, on compressed copies; the validity circuit
and the noise test run at the input level, where the flooding is 2^60 larger (docs/parameters.md).

Noise test of inputs X_1..X_k (every contributor's masks and pads and a batch's intendos; or,
to find whom to blame, one contributor's, or the intendos alone), with a pad T nobody but its
contributors knows and public random integers ρ in [2^112, 2^120) fixed after every input was
committed:
    Y       = Σ_i ρ_i·X_i + ρ_T·T                   plaintext padded; noise ρ·e reads noisy
                                                    once some |e| ≥ 2^74 (2^107 if crafted
                                                    to cancel, but for 2^-40)

Hunt, per epoch, with pack sum S = Σ w_i over counted intendos and joint masks R, R':
    d       = S − ramp                              zero exactly at fixed points c[ℓ] = ℓ
    check   = (d ⊙ window) ⊗ R                      reveals F = {ℓ : both copies zero}
    confirm = (d ⊙ 1_F) ⊗ R'                        fresh masks, only at the candidates F
    members = Σ_g rot(Σ_(i in g) w_i ⊙ (2^bit · a_i⁻¹ at m), g)   32 pending intendos per group,
                                                    all groups in one ciphertext

Well-formedness of a batch of new intendos, with public coefficients ρ drawn after submission:
    s_i     = rot(w_i, 1) − w_i                     step differences within each row
    E_i     = ρq ⊙ s_i ⊙ (s_i − a_i) + ρl ⊙ w_i − c_i   (two independent combinations)
    total_g = Σ_slots Σ_(i in g) E_i                combination k's in every slot of row k
    check   = Σ_g total_g ⊗ (R ⊙ 1_g)               zero in both rows of slot g iff group g is
                                                    valid, w.h.p.; every other slot zero
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


def session_seed(session: bytes, commitments: Sequence[bytes]) -> bytes:
    """The seed of a session's public random coefficients (validity combinations, noise-test
    scalars): fixed by the keyholders' mask commitments, so no submitter could know it when it
    submitted and no contributor when it committed."""
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
) -> ValidityTerms:
    """One intendo's residuals E = ρq ⊙ s ⊙ (s − a) + ρl ⊙ w − c, with the two random
    combinations interleaved across the rows (`ValidityTerms`)."""
    layout = layout_of(context)
    width = layout.row_width
    steps = context.subtract(context.rotate(ciphertext, 1), ciphertext)
    shifted = context.subtract_plain(steps, np.full(layout.slot_count, weight, dtype=np.int64))
    quadratic = context.multiply(steps, shifted)
    first, second = (
        ValidityCoefficients.derive(layout, seed, label + b"/%d" % combination, weight, levels)
        for combination in range(VALIDITY_COMBINATIONS)
    )

    def mixed(row0: ValidityCoefficients, row1: ValidityCoefficients) -> Ciphertext:
        quadratic_coefficients = np.concatenate([row0.quadratic[:width], row1.quadratic[width:]])
        linear_coefficients = np.concatenate([row0.linear[:width], row1.linear[width:]])
        constant = np.concatenate([row0.constant[:width], row1.constant[width:]])
        term = context.add(
            context.multiply_plain(quadratic, quadratic_coefficients),
            context.multiply_plain(ciphertext, linear_coefficients),
        )
        return context.subtract_plain(term, constant)

    return ValidityTerms(mixed(first, second), mixed(second, first))


@dataclass(frozen=True)
class ValidityTerms:
    """An intendo's residuals with the combinations interleaved: `straight` holds combination 0
    on row 0 and combination 1 on row 1, `crossed` the other way round. straight +
    rowswap(crossed) then holds all of combination 0's terms in row 0 and all of combination
    1's in row 1, with no plaintext product to select rows (each such product multiplies the
    noise by about 2^15, measured in docs/parameters.md)."""

    straight: Ciphertext
    crossed: Ciphertext


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


def validity_totals(context: FheContext, group: Sequence[ValidityTerms]) -> Ciphertext:
    """Combination 0's total over every slot of every intendo of the group in every slot of
    row 0, combination 1's in every slot of row 1."""
    if not group:
        raise InvalidInput("a validity group holds at least one intendo")
    straight = context.add_many(terms.straight for terms in group)
    crossed = context.add_many(terms.crossed for terms in group)
    return sum_rows(context, context.add(straight, context.rotate(crossed, context.row_width)))


def validity_check(context: FheContext, groups: Sequence[Sequence[ValidityTerms]], mask: Ciphertext) -> Ciphertext:
    """Σ_g totals_g ⊗ (R ⊙ 1_g): slot g of each row holds group g's total (of combination 0 in
    row 0, 1 in row 1) times the mask there; every other slot is zero. Zero in both rows iff
    every intendo of the group is valid, up to probability ≈ p^-2. The one-hot selector falls on
    the mask, a fresh encryption, rather than on the noisy totals (measured: 38 bits less noise
    than selecting the totals)."""
    layout = layout_of(context)
    if not groups or len(groups) > layout.row_width:
        raise InvalidInput(f"a validity check covers 1..{layout.row_width} groups")
    placed = []
    for index, group in enumerate(groups):
        selector = layout.zeros()
        selector[index] = 1
        selector[layout.row_width + index] = 1
        placed.append(context.multiply(validity_totals(context, group), context.multiply_plain(mask, selector)))
    return context.add_many(placed)


# --- noise test (DESIGN.md §3a) --------------------------------------------------------------

NOISE_SCALE_FACTORS = 8  # each tested input is scaled by a product of 8 random integers in [2^14, 2^15)


def noise_scalars(seed: bytes, label: bytes, count: int) -> tuple[tuple[int, ...], ...]:
    """`count` public random scalars, each the product of NOISE_SCALE_FACTORS integers in
    [2^14, 2^15) (so in [2^112, 2^120), with 112 bits of entropy, and never a multiple of p),
    derived from a seed that is fixed only once every tested ciphertext is committed (nobody can
    aim a crafted noise at them)."""
    scalars = []
    for index in range(count):
        stream = hashlib.shake_256(b"stagpack/noise-scalars/v2\x00" + seed + b"\x00" + label + b"/%d" % index)
        words = np.frombuffer(stream.digest(2 * NOISE_SCALE_FACTORS), dtype=">u2")
        scalars.append(tuple(int(word) & 0x3FFF | 0x4000 for word in words))
    return tuple(scalars)


def noise_test(context: FheContext, tested: Sequence[Ciphertext], pad: Ciphertext, scalars: Sequence[Sequence[int]]) -> Ciphertext:
    """Y = Σ_i ρ_i·X_i + ρ_pad·T (integer scalars ρ, each given as its factors: ρ_1..ρ_k, ρ_pad).

    The plaintext Σ ρ_i x_i + ρ_pad t (mod p) is one-time padded by T's, uniform and known to no
    one but its contributor, so decrypting Y says nothing about the tested plaintexts. The noise
    is Σ ρ_i e_i + ρ_pad e_T: between 2^112 and 2^120 times each input's noise. Honest inputs
    (fresh encryptions) stay more than 40 bits under one partial's flooding at the input level
    (docs/parameters.md); an input with a noise coefficient of 2^74 or more reads noisy, whatever
    its sign or size (a wrapped one is uniform modulo Q), and noise crafted to cancel across
    inputs escapes only below 2^107, except with probability 2^-40 (docs/protocol.md §3a). So
    every keyholder that fuses Y reads whether the inputs' noise is bounded."""
    if len(scalars) != len(tested) + 1:
        raise InvalidInput("a noise test takes one scalar per tested ciphertext and one for the pad")
    terms = [context.scale(ciphertext, scalar) for ciphertext, scalar in zip(tested, scalars)]
    return context.add_many([*terms, context.scale(pad, scalars[-1])])
