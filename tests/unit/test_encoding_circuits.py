"""Unit tests for the thermometer encoding (stagpack.encoding) and the homomorphic circuits
(stagpack.decrypt.circuit), decrypted by the session's 3-of-3 committee.

Oracles: the definitions of DESIGN.md §2-§3 and §7 written out directly (loops and numpy), and
the plaintext solver `PackSolver` for fixed points, executed levels and hunt members. Masks are
uniform in Z_p*, so a masked slot is zero exactly when the unmasked value is: the expected
pattern of zeros is exact, not probabilistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from support.unit import decrypt, random_mask, random_slots, shares_for
from stagpack.decrypt import circuit
from stagpack.decrypt.circuit import MEMBERS_PER_GROUP, MEMBERS_PER_SLOT, layout_of, membership_slot
from stagpack.decrypt import reveal_confirmation, reveal_hunt_check, reveal_membership, reveal_validity
from stagpack.decrypt.facts import read_membership
from stagpack.encoding import MIN_LEVELS, SlotLayout, StagKind, Threshold
from stagpack.errors import InvalidInput
from stagpack.fhe import Ciphertext, FheContext
from stagpack.solver import PackSolver

P = 65537


@pytest.fixture(scope="module")
def layout(context: FheContext) -> SlotLayout:
    return layout_of(context)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7_2024)


# --- thresholds and levels -------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 3, 10, 8192])
def test_count_thresholds(levels: int) -> None:
    for others in sorted({0, 1, levels // 2, levels - 2} & set(range(levels - 1))):
        assert Threshold.count(others, levels=levels) == Threshold(level=others + 1, weight=1)
    for others in (-1, levels - 1, levels + 5):
        with pytest.raises(InvalidInput):
            Threshold.count(others, levels=levels)


@pytest.mark.parametrize("levels", [2, 10, 300])
def test_capital_thresholds(levels: int) -> None:
    top = levels - 1
    for amount in sorted({1, top // 2 or 1, top}):
        for total in sorted({1, top // 2 or 1, top}):
            threshold = Threshold.capital(amount, total, levels=levels)
            assert threshold == Threshold(level=max(total, amount), weight=amount)
            threshold.check(levels)
    for amount, total in ((0, 1), (levels, 1), (-1, 1), (1, 0), (1, levels), (1, -5)):
        with pytest.raises(InvalidInput):
            Threshold.capital(amount, total, levels=levels)


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", None], ids=repr)
def test_threshold_constructors_refuse_non_integers(bad: object) -> None:
    with pytest.raises(TypeError):
        Threshold.count(bad, levels=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Threshold.capital(bad, 5, levels=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Threshold.capital(5, bad, levels=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Threshold(bad, 1).check(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Threshold(1, bad).check(10)  # type: ignore[arg-type]


def test_threshold_check_ranges() -> None:
    Threshold(1, 1).check(2)
    Threshold(9, 9).check(10)
    for level, weight in ((0, 1), (10, 1), (-1, 1), (1, 0), (1, 10), (1, -1)):
        with pytest.raises(InvalidInput):
            Threshold(level, weight).check(10)


def test_levels_bounds(layout: SlotLayout) -> None:
    assert layout.max_levels == layout.row_width == layout.slot_count // 2
    layout.check_levels(MIN_LEVELS)
    layout.check_levels(layout.max_levels)
    for levels in (MIN_LEVELS - 1, 0, -3, layout.max_levels + 1):
        with pytest.raises(InvalidInput):
            layout.check_levels(levels)
    for levels in (True, 4.0, "4"):
        with pytest.raises(TypeError):
            layout.check_levels(levels)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        layout.thermometer(Threshold(1, 1), layout.max_levels + 1)
    with pytest.raises(InvalidInput):
        layout.thermometer(Threshold(5, 1), 5)  # the threshold level must be below L


# --- plaintext vectors against their definitions ---------------------------------------------


def _by_definition(layout: SlotLayout, levels: int, value_at_level) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Slot s = (row, ℓ) holds value_at_level(ℓ) for ℓ < L in both rows, else 0."""
    vector = np.zeros(layout.slot_count, dtype=np.int64)
    for slot in range(layout.slot_count):
        _, level = divmod(slot, layout.row_width)
        if level < levels:
            vector[slot] = value_at_level(level)
    return vector


def test_thermometer_matches_the_definition(layout: SlotLayout, rng: np.random.Generator) -> None:
    cases = [(2, 1, 1), (10, 1, 1), (10, 9, 1), (10, 9, 9), (10, 3, 7), (layout.max_levels, 1, 1), (layout.max_levels, layout.max_levels - 1, 3)]
    for _ in range(6):
        levels = int(rng.integers(2, 200))
        cases.append((levels, int(rng.integers(1, levels)), int(rng.integers(1, levels))))
    for levels, level, weight in cases:
        expected = _by_definition(layout, levels, lambda ell: weight if level <= ell else 0)
        assert np.array_equal(layout.thermometer(Threshold(level, weight), levels), expected), (levels, level, weight)


def test_ramp_window_and_indicator_match_their_definitions(layout: SlotLayout) -> None:
    levels = 37
    assert np.array_equal(layout.ramp(levels), _by_definition(layout, levels, lambda ell: ell))
    for executed in (0, 1, 20, levels - 1):
        expected = _by_definition(layout, levels, lambda ell: 1 if executed < ell else 0)
        assert np.array_equal(layout.window(levels, executed), expected)
    chosen = {1, 5, levels - 1}
    assert np.array_equal(layout.indicator(chosen, levels), _by_definition(layout, levels, lambda ell: 1 if ell in chosen else 0))
    for bad in (0, levels, -1):
        with pytest.raises(InvalidInput):
            layout.indicator({3, bad}, levels)


def test_level_pairs_and_outside_levels(layout: SlotLayout, rng: np.random.Generator) -> None:
    vector = rng.integers(0, P, layout.slot_count)
    levels = 50
    first, second = layout.level_pairs(vector, levels)
    assert np.array_equal(first, vector[:levels])
    assert np.array_equal(second, vector[layout.row_width : layout.row_width + levels])
    outside = layout.outside_levels(vector, levels)
    assert len(outside) == layout.slot_count - 2 * levels
    expected = [vector[s] for s in range(layout.slot_count) if s % layout.row_width >= levels]
    assert np.array_equal(outside, expected)


def test_inverse_and_membership_slots(layout: SlotLayout) -> None:
    for value in (1, 2, 3, 255, P - 1):
        assert value * layout.inverse(value) % P == 1
    for position in range(100):
        slot = membership_slot(position)
        assert (slot.group, slot.row, slot.bit) == (position // 32, position % 32 // 16, position % 16)
    assert MEMBERS_PER_GROUP == 2 * MEMBERS_PER_SLOT and (1 << MEMBERS_PER_SLOT) - 1 < P
    # Group g's words sit in slot level − g of each row, wrapping around the row.
    width = layout.row_width
    for position, level, column in ((0, 9, 9), (31, 9, 9), (32, 9, 8), (95, 9, 7), (32, 0, width - 1), (64, 1, width - 1), (9 * 32, 9, 0)):
        assert membership_slot(position).column(level, width) == column, (position, level)


# --- random packs ----------------------------------------------------------------------------


@dataclass
class Pack:
    """A pack built through the plaintext solver: every live intendo (executed ones stay
    counted), its encryption, and the solver's state."""

    kind: StagKind
    levels: int
    solver: PackSolver
    thresholds: dict[int, Threshold] = field(default_factory=dict)
    ciphertexts: dict[int, Ciphertext] = field(default_factory=dict)

    def counts(self) -> np.ndarray:
        """c[ℓ] = Σ a_i [C_i ≤ ℓ] over live intendos, straight from the definition."""
        c = np.zeros(self.levels, dtype=np.int64)
        for threshold in self.thresholds.values():
            c[threshold.level :] += threshold.weight
        return c

    def fixed_points_above_execution(self) -> list[int]:
        c = self.counts()
        return [level for level in range(self.solver.executed_level + 1, self.levels) if c[level] == level]

    def pending(self) -> list[int]:
        return list(self.solver.pending_ids())


def build_pack(context: FheContext, rng: np.random.Generator, kind: StagKind, levels: int, intendos: int, hunts: int) -> Pack:
    layout = layout_of(context)
    pack = Pack(kind, levels, PackSolver(levels))
    per_phase = max(1, intendos // (hunts + 1))
    next_id = 0
    for phase in range(hunts + 1):
        for _ in range(per_phase):
            weight = 1 if kind is StagKind.COUNT else int(rng.integers(1, 4))
            if pack.solver.total_weight + weight > levels - 1:
                break
            # Thresholds spread over the room left, so that fixed points are common.
            top = min(levels - 1, pack.solver.total_weight + int(rng.integers(weight, 3 * weight + 8)))
            threshold = Threshold(int(rng.integers(weight, max(weight, top) + 1)), weight)
            threshold.check(levels)
            pack.solver.insert(next_id, threshold.level, threshold.weight)
            pack.thresholds[next_id] = threshold
            pack.ciphertexts[next_id] = context.encrypt(context.joint_key, layout.thermometer(threshold, levels))
            next_id += 1
        hunt = pack.solver.hunt()
        if phase < hunts and hunt is not None:
            pack.solver.execute(hunt)
    return pack


PACK_SHAPES = [
    (StagKind.COUNT, 20, 14, 0, 1),
    (StagKind.COUNT, 40, 30, 1, 2),
    (StagKind.COUNT, 60, 40, 2, 3),
    (StagKind.CAPITAL, 30, 10, 1, 4),
    (StagKind.CAPITAL, 60, 25, 2, 5),
    (StagKind.CAPITAL, 45, 20, 0, 6),
]


@pytest.fixture(scope="module")
def packs(context, committee3) -> list[Pack]:  # type: ignore[no-untyped-def]
    built = []
    for kind, levels, intendos, hunts, seed in PACK_SHAPES:
        built.append(build_pack(context, np.random.default_rng(seed), kind, levels, intendos, hunts))
    # The suite is only meaningful if it exercises executed levels, fixed points and quiet packs.
    assert any(pack.solver.executed_level > 0 for pack in built)
    assert any(pack.fixed_points_above_execution() for pack in built)
    assert sum(len(pack.fixed_points_above_execution()) >= 2 for pack in built) >= 1
    return built


def _pack_sum(context: FheContext, pack: Pack) -> Ciphertext:
    """S at the evaluation level, as a replica counts it (each intendo compressed, then added)."""
    return context.add_many(context.compress(ciphertext) for ciphertext in pack.ciphertexts.values())


def _hunt_mask(context: FheContext, rng: np.random.Generator) -> Ciphertext:
    """The summed masks, compressed: the hunt path runs at the evaluation level."""
    return context.compress(random_mask(context, rng))


def test_pack_sums_decrypt_to_the_solver_counts(context, committee3, packs, layout) -> None:  # type: ignore[no-untyped-def]
    for pack in packs:
        c = pack.counts()
        assert tuple(int(value) for value in c) == pack.solver.counts()
        expected = _by_definition(layout, pack.levels, lambda ell: c[ell])
        assert np.array_equal(decrypt(committee3, _pack_sum(context, pack)), expected)


def test_hunt_check_is_zero_exactly_at_fixed_points_above_the_executed_level(context, committee3, packs, layout, rng) -> None:  # type: ignore[no-untyped-def]
    width = layout.row_width
    for pack in packs:
        executed, levels = pack.solver.executed_level, pack.levels
        fixed = set(pack.fixed_points_above_execution())
        check = circuit.hunt_check(context, _pack_sum(context, pack), _hunt_mask(context, rng), levels, executed)
        assert check.towers == context.evaluation_towers
        slots = decrypt(committee3, check)
        for row in (0, 1):
            values = slots[row * width : (row + 1) * width]
            in_window = np.zeros(width, dtype=bool)
            in_window[executed + 1 : levels] = True
            expected_zero = ~in_window
            expected_zero[sorted(fixed)] = True
            assert np.array_equal(values == 0, expected_zero), (pack.kind, levels, executed, row)
        quorum, shares = shares_for(committee3, check)
        facts = reveal_hunt_check(context, check, (quorum,), shares, levels, executed)
        assert facts.candidates == tuple(sorted(fixed))
        assert facts.fired == (pack.solver.hunt() is not None)
        assert max(facts.candidates, default=None) == pack.solver.greatest_fixed_point()


def test_hunt_confirmation_is_non_zero_only_at_candidates_that_are_not_fixed(context, committee3, packs, layout, rng) -> None:  # type: ignore[no-untyped-def]
    for pack in packs:
        levels, executed = pack.levels, pack.solver.executed_level
        fixed = set(pack.fixed_points_above_execution())
        c = pack.counts()
        not_fixed = [level for level in range(1, levels) if c[level] != level]
        decoys = set(rng.choice(not_fixed, size=min(3, len(not_fixed)), replace=False).tolist())
        candidates = sorted(fixed | decoys)
        confirmation = circuit.hunt_confirmation(context, _pack_sum(context, pack), _hunt_mask(context, rng), levels, candidates)
        slots = decrypt(committee3, confirmation)
        expected_nonzero = _by_definition(layout, levels, lambda ell: 1 if ell in decoys else 0) == 1
        assert np.array_equal(slots != 0, expected_nonzero), (pack.kind, levels, executed)
        quorum, shares = shares_for(committee3, confirmation)
        facts = reveal_confirmation(context, confirmation, (quorum,), shares, levels, candidates)
        assert facts.level == (max(fixed) if fixed else None)
        assert facts.level == pack.solver.greatest_fixed_point()
    with pytest.raises(InvalidInput):
        circuit.hunt_confirmation(context, _pack_sum(context, packs[0]), _hunt_mask(context, rng), packs[0].levels, [])


def test_membership_reveals_exactly_the_hunt_members(context, committee3, packs, layout) -> None:  # type: ignore[no-untyped-def]
    fired = 0
    for pack in packs:
        hunt = pack.solver.hunt()
        pending = pack.pending()
        levels_to_read = [level for level in (hunt.level if hunt else None, 1, pack.levels - 1) if level is not None]
        for level in levels_to_read:
            ciphertext = circuit.membership_ciphertext(
                context, [(context.compress(pack.ciphertexts[i]), pack.thresholds[i].weight) for i in pending], level, pack.levels
            )
            bits = read_membership(layout, decrypt(committee3, ciphertext), level, len(pending))
            assert bits == tuple(pack.thresholds[i].level <= level for i in pending)
        if hunt is not None:
            fired += 1
            ciphertext = circuit.membership_ciphertext(
                context, [(context.compress(pack.ciphertexts[i]), pack.thresholds[i].weight) for i in pending], hunt.level, pack.levels
            )
            quorum, shares = shares_for(committee3, ciphertext)
            bits = reveal_membership(context, ciphertext, (quorum,), shares, hunt.level, len(pending))
            assert tuple(i for i, bit in zip(pending, bits) if bit) == hunt.members
            executed_weight = sum(pack.thresholds[i].weight for i in pack.solver.executed_ids())
            assert executed_weight + sum(hunt.weights) == hunt.level
    assert fired >= 2


def _membership_by_definition(layout: SlotLayout, bits: list[bool], level: int) -> np.ndarray:
    """The membership vector written out from its definition: group g = i // 32 holds
    Σ 2^(i mod 16) b_i of its first 16 intendos in row 0 and of the next 16 in row 1, both in
    slot (level − g) mod W; every other slot is zero."""
    width = layout.row_width
    vector = np.zeros(layout.slot_count, dtype=np.int64)
    for position, member in enumerate(bits):
        group, within = divmod(position, 32)
        row, bit = divmod(within, 16)
        vector[row * width + (level - group) % width] += int(member) << bit
    return vector


def test_membership_with_many_pending_capital_intendos(context, committee3, layout, rng) -> None:  # type: ignore[no-untyped-def]
    """More than 32 pending intendos (three groups in one membership ciphertext) with weights
    up to 5; at level 1 the groups' slots wrap around the end of the rows."""
    levels = 400
    thresholds = []
    for _ in range(70):
        weight = int(rng.integers(1, 6))
        thresholds.append(Threshold(int(rng.integers(weight, levels)), weight))
    ciphertexts = [context.compress(context.encrypt(context.joint_key, layout.thermometer(threshold, levels))) for threshold in thresholds]
    pending = [(ct, t.weight) for ct, t in zip(ciphertexts, thresholds)]
    for level in (int(np.median([t.level for t in thresholds])), 1, levels - 1):
        output = circuit.membership_ciphertext(context, pending, level, levels)
        vector = decrypt(committee3, output)
        truth = [t.level <= level for t in thresholds]
        assert read_membership(layout, vector, level, len(thresholds)) == tuple(truth)
        # The 16-bit words sit in slot level − g of both rows for groups g = 0, 1, 2, nothing else.
        assert np.array_equal(vector, _membership_by_definition(layout, truth, level)), level
        assert set(np.nonzero(vector)[0]) <= {
            row * layout.row_width + (level - group) % layout.row_width for row in (0, 1) for group in range(3)
        }
    for bad_level in (0, levels):
        with pytest.raises(InvalidInput):
            circuit.membership_ciphertext(context, pending[:1], bad_level, levels)
    with pytest.raises(InvalidInput):
        circuit.membership_ciphertext(context, [], 5, levels)
    with pytest.raises(InvalidInput):  # more groups than slots in a row (checked before any work)
        circuit.membership_ciphertext(context, pending[:1] * (MEMBERS_PER_GROUP * layout.row_width + 1), 5, levels)


class _RowRotations:
    """The slot algebra `shifted_sum` uses (rotate within rows, add), on numpy vectors with a
    small row width, counting rotations: the algorithm on its own, at any number of terms."""

    def __init__(self, row_width: int) -> None:
        self.row_width = row_width
        self.rotations = 0

    def rotate(self, vector: np.ndarray, step: int) -> np.ndarray:
        assert 0 < step < self.row_width and step & (step - 1) == 0  # radix steps only, never the row swap
        self.rotations += 1
        width = self.row_width
        return np.concatenate([np.roll(vector[:width], -step), np.roll(vector[width:], -step)])

    def add(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (first + second) % P


def _shifted_sum_by_definition(terms: list[np.ndarray], step: int, width: int) -> np.ndarray:
    """Σ_g rotate(terms[g], g · step), each row rotated left on its own."""
    total = np.zeros_like(terms[0])
    for index, term in enumerate(terms):
        shift = index * step % width
        total = (total + np.concatenate([np.roll(term[:width], -shift), np.roll(term[width:], -shift)])) % P
    return total


@pytest.mark.parametrize("width", [64, 2048])
def test_shifted_sum_matches_its_definition_with_one_rotation_per_term(width: int) -> None:
    """Up to a full row of terms (as many membership groups as a row has slots), including the
    last radix step that is smaller than 16 (64 = 16·4, 2048 = 16·16·8)."""
    rng = np.random.default_rng(width)
    counts = {1, 2, 15, 16, 17, 31, 255, 256, 257, width // 2 + 3, width - 1, width}
    for count in sorted(count for count in counts if count <= width):
        for step in (1, 16) if count * 16 <= width else (1,):
            terms = [rng.integers(0, P, 2 * width) for _ in range(count)]
            algebra = _RowRotations(width)
            total = circuit.shifted_sum(algebra, terms, step)  # type: ignore[arg-type]
            assert np.array_equal(total, _shifted_sum_by_definition(terms, step, width)), (count, step)
            assert algebra.rotations == count - 1, (count, step)


def test_shifted_sum_refuses_no_terms_and_shifts_beyond_the_row() -> None:
    """A shift of a row width or more would wrap onto another term's slot (and the rotation by
    a whole row is the row swap): refused, like an empty sum."""
    width = 64
    term = np.zeros(2 * width, dtype=np.int64)
    for terms, step in (([], 1), ([term] * (width + 1), 1), ([term] * 5, 16), ([term] * 300, 1)):
        with pytest.raises(InvalidInput):
            circuit.shifted_sum(_RowRotations(width), terms, step)  # type: ignore[arg-type]
    circuit.shifted_sum(_RowRotations(width), [term] * 4, 16)  # type: ignore[arg-type]


def test_shifted_sum_on_ciphertexts(context, committee3, layout, rng) -> None:  # type: ignore[no-untyped-def]
    plain = [random_slots(context, rng) for _ in range(20)]
    encrypted = [context.encrypt(context.joint_key, vector) for vector in plain]
    for step in (1, 16):
        total = circuit.shifted_sum(context, encrypted, step)
        assert np.array_equal(decrypt(committee3, total), _shifted_sum_by_definition(plain, step, layout.row_width)), step


# --- validity (DESIGN.md §7) -----------------------------------------------------------------

VALIDITY_LEVELS = 16
SEED = circuit.session_seed(b"unit-test-session", [b"commitment-1", b"commitment-2"])


def _rows(layout: SlotLayout, first: list[int], second: list[int] | None = None) -> np.ndarray:
    vector = layout.zeros()
    second = first if second is None else second
    vector[: len(first)] = first
    vector[layout.row_width : layout.row_width + len(second)] = second
    return vector % P


def _thermometer_row(level: int, weight: int, levels: int = VALIDITY_LEVELS) -> list[int]:
    return [weight if level <= ell else 0 for ell in range(levels)]


def valid_cases(layout: SlotLayout) -> dict[str, tuple[np.ndarray, int]]:
    top = VALIDITY_LEVELS - 1
    cases = {}
    for name, threshold in {
        "count-lowest": Threshold(1, 1),
        "count-middle": Threshold(6, 1),
        "count-highest": Threshold(top, 1),
        "capital-small": Threshold(4, 2),
        "capital-all-in": Threshold(top, top),
        "capital-weight-equals-level": Threshold(5, 5),
    }.items():
        cases[name] = (layout.thermometer(threshold, VALIDITY_LEVELS), threshold.weight)
    return cases


def malformed_cases(layout: SlotLayout) -> dict[str, tuple[np.ndarray, int]]:
    """Hand-crafted malformed vectors and the weight each claims (encrypted under the real key)."""
    L, width = VALIDITY_LEVELS, layout.row_width
    count = _thermometer_row(5, 1)
    cases: dict[str, tuple[np.ndarray, int]] = {}
    two = list(count)
    two[8] = 2
    cases["value-2"] = (_rows(layout, two), 1)
    minus_one = list(count)
    minus_one[3] = P - 1
    cases["value-minus-1"] = (_rows(layout, minus_one), 1)
    non_monotone = list(count)
    non_monotone[9] = 0
    cases["non-monotone"] = (_rows(layout, non_monotone), 1)
    cases["capital-wrong-weight"] = (_rows(layout, _thermometer_row(6, 3)), 2)
    cases["count-weight-2"] = (_rows(layout, _thermometer_row(6, 2)), 1)
    cases["rows-disagree"] = (_rows(layout, _thermometer_row(5, 1), _thermometer_row(6, 1)), 1)
    cases["second-row-empty"] = (_rows(layout, count, [0] * L), 1)
    beyond = _rows(layout, count)
    beyond[L] = 1
    beyond[width + L] = 1
    cases["non-zero-beyond-levels"] = (beyond, 1)
    far = _rows(layout, count)
    far[width - 1] = 7
    far[2 * width - 1] = 7
    cases["non-zero-last-slot"] = (far, 1)
    cases["all-zero"] = (_rows(layout, [0] * L), 1)
    top_zero = _thermometer_row(4, 2)
    top_zero[L - 1] = 0
    cases["top-level-zero"] = (_rows(layout, top_zero), 2)
    cases["threshold-0"] = (_rows(layout, [3] * L), 3)
    cases["negated"] = (_rows(layout, [-value for value in _thermometer_row(5, 1)]), 1)
    return cases


@dataclass
class ValidityCase:
    """A vector as submitted (encrypted under the committee key), the weight it claims, its
    validity terms, and whether it is a thermometer by the definition (`_is_thermometer`)."""

    vector: np.ndarray
    weight: int
    terms: circuit.ValidityTerms
    valid: bool
    label: bytes
    levels: int = VALIDITY_LEVELS


def _is_thermometer(layout: SlotLayout, vector: np.ndarray, weight: int, levels: int) -> bool:
    """DESIGN.md §7 written out: both rows equal, w[ℓ] = a·[C ≤ ℓ] for ℓ < L with 1 ≤ C ≤ L − 1,
    zero from L on."""
    width = layout.row_width
    row = vector[:width] % P
    if not np.array_equal(row, vector[width:] % P) or np.any(row[levels:] != 0):
        return False
    return any(np.array_equal(row[:levels], np.where(np.arange(levels) >= level, weight, 0)) for level in range(1, levels))


def _case(context: FheContext, layout: SlotLayout, label: str, vector: np.ndarray, weight: int, levels: int = VALIDITY_LEVELS) -> ValidityCase:
    ciphertext = context.encrypt(context.joint_key, vector % P)
    terms = circuit.validity_terms(context, ciphertext, weight, levels, SEED, label.encode())
    return ValidityCase(vector % P, weight, terms, _is_thermometer(layout, vector, weight, levels), label.encode(), levels)


@pytest.fixture(scope="module")
def validity_terms(context, committee3, layout) -> dict[str, ValidityCase]:  # type: ignore[no-untyped-def]
    """name -> case, for the hand-crafted valid and malformed vectors."""
    cases = {}
    for valid, table in ((True, valid_cases(layout)), (False, malformed_cases(layout))):
        for name, (vector, weight) in table.items():
            cases[name] = _case(context, layout, name, vector, weight)
            assert cases[name].valid is valid, name  # the hand-crafted cases agree with the definition
    return cases


def random_cases(context: FheContext, layout: SlotLayout, rng: np.random.Generator) -> dict[str, ValidityCase]:
    """Random thermometers (random thresholds and weights) and random malformations of each
    kind: a dip (non-monotone), a weight other than the claimed one, a non-zero value beyond the
    levels, rows that disagree."""
    L, width = VALIDITY_LEVELS, layout.row_width

    def thermometer() -> tuple[np.ndarray, int, int]:
        weight = int(rng.integers(1, L))
        level = int(rng.integers(1, L))
        return layout.thermometer(Threshold(level, weight), L), weight, level

    cases = {}
    for index in range(5):
        vector, weight, _ = thermometer()
        cases[f"random-valid-{index}"] = _case(context, layout, f"random-valid-{index}", vector, weight)
    weight, level = int(rng.integers(1, L)), int(rng.integers(1, L - 2))
    vector = layout.thermometer(Threshold(level, weight), L)
    dip = int(rng.integers(level + 1, L - 1))  # a zero between the first one and the last
    vector[[dip, width + dip]] = 0
    cases["random-non-monotone"] = _case(context, layout, "random-non-monotone", vector, weight)
    vector, weight, _ = thermometer()
    cases["random-wrong-weight"] = _case(context, layout, "random-wrong-weight", vector, weight % (L - 1) + 1)
    vector, weight, _ = thermometer()
    beyond = int(rng.integers(L, width))
    vector[beyond] = int(rng.integers(1, P))
    cases["random-beyond-levels"] = _case(context, layout, "random-beyond-levels", vector, weight)
    vector, weight, level = thermometer()
    vector[width:] = layout.thermometer(Threshold(level % (L - 1) + 1, weight), L)[width:]
    cases["random-rows-disagree"] = _case(context, layout, "random-rows-disagree", vector, weight)
    for name, case in cases.items():
        assert case.valid == name.startswith("random-valid"), name
    return cases


@dataclass
class ValidityCheck:
    """A validity check over `groups` of cases with a known mask R: what every quorum fuses
    and the validity bits it reveals."""

    groups: list[list[ValidityCase]]
    mask: np.ndarray
    fused: np.ndarray
    verdicts: tuple[bool, ...]


def _check(context, committee, groups: list[list[ValidityCase]], rng: np.random.Generator) -> ValidityCheck:  # type: ignore[no-untyped-def]
    mask = random_slots(context, rng, low=1)  # summed masks are uniform in Z_p*
    check = circuit.validity_check(context, [[case.terms for case in group] for group in groups], context.encrypt(context.joint_key, mask))
    assert check.towers == context.input_towers  # the validity check runs at the input level
    quorum, shares = shares_for(committee, check)
    verdicts = reveal_validity(context, check, (quorum,), shares, len(groups))
    return ValidityCheck(groups, mask, decrypt(committee, check), verdicts)


@pytest.fixture(scope="module")
def each_check(context, committee3, validity_terms) -> ValidityCheck:  # type: ignore[no-untyped-def]
    """The per-intendo check of every hand-crafted case, in a shuffled order: one group each."""
    names = list(validity_terms)
    np.random.default_rng(11).shuffle(names)
    return _check(context, committee3, [[validity_terms[name]] for name in names], np.random.default_rng(12))


@pytest.fixture(scope="module")
def batch_check(context, committee3, layout, validity_terms) -> ValidityCheck:  # type: ignore[no-untyped-def]
    """Batch checks of several intendos per group: the valid hand-crafted ones; the same with
    one malformed in the middle; everything shuffled; random thermometers; and random valid
    groups spoiled by one random malformation of each kind."""
    rng = np.random.default_rng(13)
    randoms = random_cases(context, layout, rng)
    valid = [case for case in validity_terms.values() if case.valid]
    everything = list(validity_terms.values())
    rng.shuffle(everything)  # type: ignore[arg-type]
    good = [randoms[f"random-valid-{index}"] for index in range(5)]
    groups = [
        valid,
        valid[:2] + [validity_terms["value-minus-1"]] + valid[2:],
        everything,
        good,
        good[:2] + [randoms["random-non-monotone"]],
        [good[2], randoms["random-wrong-weight"]],
        [randoms["random-beyond-levels"], good[3]],
        [randoms["random-rows-disagree"]],
    ]
    return _check(context, committee3, groups, rng)


def test_valid_thermometers_pass_in_a_batch_and_each(validity_terms, each_check, batch_check) -> None:  # type: ignore[no-untyped-def]
    assert batch_check.verdicts[0] is True  # the hand-crafted valid ones, one group
    assert batch_check.verdicts[3] is True  # five random thermometers, one group
    for group, verdict in zip(each_check.groups, each_check.verdicts):
        if group[0].valid:
            assert verdict is True, group[0].label


@pytest.mark.parametrize("name", list(malformed_cases(SlotLayout(16384, P))))
def test_each_malformed_vector_fails_alone(validity_terms, each_check, name) -> None:  # type: ignore[no-untyped-def]
    case = validity_terms[name]
    assert not case.valid
    (verdict,) = [verdict for group, verdict in zip(each_check.groups, each_check.verdicts) if group[0] is case]
    assert verdict is False


def test_mixed_batch_fails_and_the_per_intendo_check_singles_out_the_bad_ones(each_check, batch_check) -> None:  # type: ignore[no-untyped-def]
    # One bad intendo among valid ones is enough to fail the batch; so does any random
    # malformation of each kind, next to random thermometers.
    assert batch_check.verdicts == (True, False, False, True, False, False, False, False)
    # The per-intendo check (shuffled) gives exactly each case's validity.
    assert each_check.verdicts == tuple(group[0].valid for group in each_check.groups)


def _residual_totals(layout: SlotLayout, case: ValidityCase) -> tuple[int, int]:
    """Σ over every slot of E = ρq ⊙ s ⊙ (s − a) + ρl ⊙ w − c, for each of the two combinations,
    from the plaintext (s = rot(w, 1) − w within each row), modulo p."""
    width = layout.row_width
    w = case.vector.astype(np.int64) % P
    s = (np.concatenate([np.roll(w[:width], -1), np.roll(w[width:], -1)]) - w) % P
    totals = []
    for combination in range(circuit.VALIDITY_COMBINATIONS):
        coefficients = circuit.ValidityCoefficients.derive(layout, SEED, case.label + b"/%d" % combination, case.weight, case.levels)
        residual = (coefficients.quadratic * s % P * ((s - case.weight) % P) % P + coefficients.linear * w - coefficients.constant) % P
        totals.append(int(residual.sum() % P))
    return totals[0], totals[1]


@pytest.mark.parametrize("which", ["each", "batch"])
def test_the_validity_check_decrypts_to_its_plaintext_definition(layout, each_check, batch_check, which: str) -> None:  # type: ignore[no-untyped-def]
    """Slot g of row k holds (Σ over group g's intendos and every slot of combination k's
    residual) · R there; every slot outside the groups is zero — computed in numpy. The totals
    are zero in both rows exactly for groups of thermometers (by the definition)."""
    check = each_check if which == "each" else batch_check
    width = layout.row_width
    expected = layout.zeros()
    for index, group in enumerate(check.groups):
        totals = [sum(pair) % P for pair in zip(*(_residual_totals(layout, case) for case in group))]
        expected[index] = totals[0] * check.mask[index] % P
        expected[width + index] = totals[1] * check.mask[width + index] % P
        assert (totals == [0, 0]) == all(case.valid for case in group), [case.label for case in group]
    assert np.array_equal(check.fused, expected)
    used = [index for index in range(len(check.groups))] + [width + index for index in range(len(check.groups))]
    assert np.count_nonzero(np.delete(check.fused, used)) == 0


def test_valid_thermometer_at_the_maximum_number_of_levels(context, committee3, layout, rng) -> None:  # type: ignore[no-untyped-def]
    levels = layout.max_levels
    vector = layout.thermometer(Threshold(levels - 1, 1), levels)
    wrong = vector.copy()
    wrong[0] = 1  # w[0] must be zero
    wrong[layout.row_width] = 1
    right, spoiled = _case(context, layout, "max", vector, 1, levels), _case(context, layout, "max-wrong", wrong, 1, levels)
    assert (right.valid, spoiled.valid) == (True, False)
    assert _check(context, committee3, [[right], [spoiled]], rng).verdicts == (True, False)


def test_validity_check_group_bounds(context, layout, rng) -> None:  # type: ignore[no-untyped-def]
    mask = random_mask(context, rng)
    with pytest.raises(InvalidInput):
        circuit.validity_check(context, [], mask)
    with pytest.raises(InvalidInput):
        circuit.validity_check(context, [[]] * (layout.row_width + 1), mask)
    with pytest.raises(InvalidInput):
        circuit.validity_totals(context, [])  # a group holds at least one intendo


def test_validity_coefficients_depend_on_seed_and_label(layout: SlotLayout) -> None:
    first = circuit.ValidityCoefficients.derive(layout, SEED, b"a", 1, VALIDITY_LEVELS)
    assert np.array_equal(first.linear, circuit.ValidityCoefficients.derive(layout, SEED, b"a", 1, VALIDITY_LEVELS).linear)
    assert not np.array_equal(first.linear, circuit.ValidityCoefficients.derive(layout, SEED, b"b", 1, VALIDITY_LEVELS).linear)
    other_seed = circuit.session_seed(b"unit-test-session", [b"commitment-1", b"commitment-3"])
    assert other_seed != SEED
    assert not np.array_equal(first.quadratic, circuit.ValidityCoefficients.derive(layout, other_seed, b"a", 1, VALIDITY_LEVELS).quadratic)
    # Quadratic coefficients sit exactly on the steps ℓ = 0..L-2 of both rows.
    support = set(np.nonzero(first.quadratic)[0])
    allowed = set(range(VALIDITY_LEVELS - 1)) | {layout.row_width + ell for ell in range(VALIDITY_LEVELS - 1)}
    assert support <= allowed and len(support) >= len(allowed) - 2
