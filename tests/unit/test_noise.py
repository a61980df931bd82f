"""Unit tests for the noise machinery of the security changes (DESIGN.md §3a): the measuring
instrument and attack primitives of `stagpack.fhe`, the noise test (`circuit.noise_test`, read
by `reveal_noise`), and the flooding margin of every kind of output the committee decrypts.

Oracles, each independent of the code under test:
- what an attacker adds is known exactly (`with_added_noise` adds κ to every coefficient of c0),
  so a whole-key measurement must read log2 κ, and a noise reading 2^k·κ/Δ with Δ = Q/p computed
  here from the tower moduli with Python integers;
- plaintexts are checked against numpy modulo p (a scaled ciphertext decrypts to Π·m mod p, a
  noise test to Σ ρ_i·x_i + ρ_T·t mod p);
- the flooding margin is log2 of one partial's flooding (Q/q0/2, integers again) minus the noise
  of a realistic honest output measured with the whole secret key of a 1-of-1 committee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from support.committees import KeyedCommittee, make_committee
from support.unit import decrypt, random_slots
from stagpack.decrypt import circuit, reveal_noise
from stagpack.decrypt.threshold import quorum_partials
from stagpack.encoding import Threshold
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.fhe import Ciphertext, FheContext
from stagpack.pack import PackLimits

P = 65537


@pytest.fixture(scope="module")
def solo() -> KeyedCommittee:
    """A 1-of-1 committee: its one key share is the whole secret key, so it can measure noise
    (`FheContext.measure_noise_bits`); its own context (a context binds one committee key)."""
    return make_committee(FheContext(), 1, 1, "noise-solo")


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(3_2025)


def _modulus(context: FheContext, towers: int) -> int:
    return math.prod(context.tower_moduli[:towers])


def _noisy(context: FheContext, ciphertext: Ciphertext, noise: int) -> Ciphertext:
    """`ciphertext` (input level) with `noise` added to c0: what a party that crafts its noise sends."""
    return context.ciphertext_from_bytes(context.with_added_noise(context.ciphertext_to_bytes(ciphertext), noise))


def _reading(committee: KeyedCommittee, ciphertext: Ciphertext, bits: int) -> int:
    """The noise reading of the one quorum of a 1-of-1 committee."""
    context = committee.context
    (quorum,) = committee.family()
    partials = quorum_partials(context, ciphertext, quorum, committee.partials(ciphertext, quorum))
    return context.noise_reading(partials, bits)


# --- the numbers the test rests on -----------------------------------------------------------


def test_flooding_and_delta_bits_follow_the_tower_moduli(context: FheContext) -> None:
    """Flooding is uniform modulo the product of every tower but the first (halved: it is
    centred); Δ = Q/p. Computed here with integers."""
    moduli = context.tower_moduli
    assert len(moduli) == context.input_towers and all(modulus.bit_length() == 60 for modulus in moduli)
    for towers in (context.evaluation_towers, context.input_towers):
        flooding = math.prod(moduli[1:towers]) // 2
        delta = _modulus(context, towers) // P
        assert abs(context.flooding_bits(towers) - math.log2(flooding)) < 1e-9
        assert abs(context.delta_bits(towers) - math.log2(delta)) < 1e-9
        # Δ is q0/p·2 above the flooding, whatever the level: about 44 bits.
        assert 43 < context.delta_bits(towers) - context.flooding_bits(towers) < 45
    # One more tower: 60 more bits of flooding (the noise test and validity run there).
    assert 59 < context.flooding_bits(context.input_towers) - context.flooding_bits(context.evaluation_towers) < 61


def test_noise_reading_bits_is_the_deepest_reading_every_honest_fusion_passes(context: FheContext) -> None:
    """k is the largest integer with 2^(k+1)·(F + 1)·p ≤ q0, F the most partials one fusion
    combines: then Δ/2^(k+1) exceeds the flooding of any honest fusion (docstring), by search."""
    fused = context.parameters.max_fused_partials + 1
    q0 = context.tower_moduli[0]
    k = next(k for k in range(200, 0, -1) if 2 ** (k + 1) * fused * P <= q0)
    assert context.noise_reading_bits == k == 37


# --- the measuring instrument and the attack primitives --------------------------------------


def test_a_whole_key_measures_exactly_the_noise_that_was_added(solo: KeyedCommittee, rng: np.random.Generator) -> None:
    context, secret = solo.context, solo.secrets[0]
    plain = random_slots(context, rng)
    fresh = context.encrypt(context.joint_key, plain)
    honest = context.measure_noise_bits(fresh, secret)
    assert 8 < honest < 13  # a fresh encryption's noise (the noise test's premise: |e| < 2^13)
    for noise in (1 << 20, 1 << 40, -(1 << 70), 3 << 150, 1 << 200):
        crafted = _noisy(context, fresh, noise)
        # The plaintext is untouched while |noise| < Δ/2 ...
        assert np.array_equal(decrypt(solo, crafted), plain), noise.bit_length()
        # ... and the instrument reads the added constant (the fresh noise is 2^-9 of it or less).
        assert abs(context.measure_noise_bits(crafted, secret) - math.log2(abs(noise))) < 0.01, noise.bit_length()
    # An encryption of zero pinned with `message`: the same reading.
    zero = context.encrypt(context.joint_key, np.zeros(context.slot_count, dtype=np.int64))
    message = np.zeros(context.slot_count, dtype=np.int64)
    assert abs(context.measure_noise_bits(_noisy(context, zero, 1 << 100), secret, message) - 100) < 0.01


def test_scale_multiplies_the_plaintext_and_the_noise_by_the_integer_product(solo: KeyedCommittee, rng: np.random.Generator) -> None:
    """scale(ct, factors) is an integer product Π: the plaintext becomes Π·m mod p, the noise
    exactly Π times as large — far above p, which is what the noise test needs."""
    context, secret = solo.context, solo.secrets[0]
    plain = random_slots(context, rng)
    crafted = _noisy(context, context.encrypt(context.joint_key, plain), 1 << 60)
    factors = (40_000, 65_536, 3, 50_021)
    product = math.prod(factors)
    scaled = context.scale(crafted, factors)
    assert scaled.towers == crafted.towers
    assert np.array_equal(decrypt(solo, scaled), plain * (product % P) % P)
    assert abs(context.measure_noise_bits(scaled, secret) - (60 + math.log2(product))) < 0.01
    compressed = context.compress(context.encrypt(context.joint_key, plain))
    assert np.array_equal(decrypt(solo, context.scale(compressed, (P - 1,))), (P - plain) % P)
    for bad in ((0,), (P,), (-1,), (1.5,), (True,)):
        with pytest.raises(InvalidInput):
            context.scale(crafted, bad)  # type: ignore[arg-type]


def test_the_noise_reading_is_the_noise_read_k_bits_below_the_plaintext(solo: KeyedCommittee, rng: np.random.Generator) -> None:
    """noise_reading = max |round(2^k·e/Δ)|: 0 for an honest fusion, and for an added κ far
    above the flooding, 2^k·κ·p/Q computed here (the flooding shifts it by less than one)."""
    context = solo.context
    bits = context.noise_reading_bits
    fresh = context.encrypt(context.joint_key, random_slots(context, rng))
    assert _reading(solo, fresh, bits) == 0
    assert _reading(solo, context.compress(fresh), bits) == 0
    modulus = _modulus(context, context.input_towers)
    for noise in (1 << 190, -(1 << 200), 5 << 197):  # readings below p/2 (a reading is read modulo p)
        expected = abs(noise) * P * 2**bits / modulus
        reading = _reading(solo, _noisy(context, fresh, noise), bits)
        assert abs(reading - expected) <= 1, (noise.bit_length(), reading, expected)
    # Read shallower, the same noise reads smaller by exactly the difference in depth.
    assert abs(_reading(solo, _noisy(context, fresh, 1 << 200), 30) - (1 << 200) * P * 2**30 / modulus) <= 1


def test_a_flipped_bit_passes_the_layout_checks_and_decrypts_to_garbage(solo: KeyedCommittee) -> None:
    context, secret = solo.context, solo.secrets[0]
    zero = context.encrypt(context.joint_key, np.zeros(context.slot_count, dtype=np.int64))
    data = context.ciphertext_to_bytes(zero)
    ring = context.ring_dimension
    for coefficient, bit in ((5, 0), (ring + 17, 7), (4 * ring + 3, 2), (8 * ring - 1, 30)):  # c0 and c1, several towers
        flipped = context.with_flipped_bit(data, coefficient, bit)
        assert flipped != data and len(flipped) == len(data)
        parsed = context.ciphertext_from_bytes(flipped)  # a well-formed ciphertext...
        noise = context.measure_noise_bits(parsed, secret, np.zeros(context.slot_count, dtype=np.int64))
        assert noise > context.delta_bits(context.input_towers) - 3, (coefficient, bit, noise)  # ...of garbage noise
        assert not np.array_equal(decrypt(solo, parsed), np.zeros(context.slot_count, dtype=np.int64))
    with pytest.raises(InvalidInput, match="modulus"):
        context.with_flipped_bit(data, 0, 63)  # every modulus is below 2^60: the word would leave it
    with pytest.raises(InvalidInput):
        context.with_added_noise(data[:-1], 1)
    with pytest.raises(WrongPhase):
        FheContext().with_added_noise(data, 1)


def test_noise_scalars_are_public_deterministic_and_in_range() -> None:
    seed = circuit.session_seed(b"session", [b"commitment-1", b"commitment-2"])
    scalars = circuit.noise_scalars(seed, b"noise/1", 5)
    assert scalars == circuit.noise_scalars(seed, b"noise/1", 5)
    assert circuit.noise_scalars(seed, b"noise/1", 3) == scalars[:3]
    assert len(scalars) == 5 and len(set(scalars)) == 5
    for scalar in scalars:
        assert len(scalar) == circuit.NOISE_SCALE_FACTORS == 8
        assert all(type(factor) is int and 1 << 14 <= factor < 1 << 15 for factor in scalar)
        assert 112 <= math.log2(math.prod(scalar)) < 120 and math.prod(scalar) % P != 0
    assert circuit.noise_scalars(seed, b"noise/2", 5) != scalars
    assert circuit.noise_scalars(circuit.session_seed(b"session", [b"commitment-1", b"commitment-3"]), b"noise/1", 5) != scalars
    assert circuit.session_seed(b"session", [b"a", b"b"]) != circuit.session_seed(b"other", [b"a", b"b"])


# --- the noise test (2-of-3 committee, the whole family of quorums) ---------------------------


@dataclass
class NoiseCase:
    """A contributor's noise test as a validation session runs it: its two masks and its input
    pad tested, padded by its pad; scalars from the session seed."""

    context: FheContext
    committee: KeyedCommittee
    tested: list[Ciphertext]
    plain: list[np.ndarray]
    pad: Ciphertext
    pad_plain: np.ndarray
    scalars: tuple[tuple[int, ...], ...]

    def output(self, tested: list[Ciphertext] | None = None, pad: Ciphertext | None = None) -> Ciphertext:
        return circuit.noise_test(self.context, tested or self.tested, pad or self.pad, self.scalars)

    def clean(self, output: Ciphertext, observe: Callable[..., None] | None = None) -> bool:
        family = self.committee.family()
        return reveal_noise(self.context, output, family, self.committee.partials(output, family), observe)

    def with_noise(self, index: int, noise: int) -> list[Ciphertext]:
        return [_noisy(self.context, item, noise) if position == index else item for position, item in enumerate(self.tested)]


@pytest.fixture(scope="module")
def noise_case(committee2of3: KeyedCommittee) -> NoiseCase:
    context = committee2of3.context
    rng = np.random.default_rng(64)
    plain = [rng.integers(0, P, context.slot_count) for _ in range(3)]
    pad_plain = rng.integers(0, P, context.slot_count)
    seed = circuit.session_seed(b"unit noise test", [b"commitment-1", b"commitment-2", b"commitment-3"])
    return NoiseCase(
        context, committee2of3, [context.encrypt(context.joint_key, vector) for vector in plain], plain,
        context.encrypt(context.joint_key, pad_plain), pad_plain, circuit.noise_scalars(seed, b"noise/1", 4),
    )


def test_honest_inputs_read_clean_and_the_plaintext_is_padded(noise_case: NoiseCase) -> None:
    """Every quorum of the family reads 0 noise; what it fuses is Σ ρ_i·x_i + ρ_T·t mod p
    (numpy), uniform because t is."""
    case = noise_case
    fused: list[np.ndarray] = []
    assert case.clean(case.output(), lambda quorum, vector: fused.append(vector))
    assert len(fused) == len(case.committee.family()) == 3
    expected = case.pad_plain * (math.prod(case.scalars[-1]) % P) % P
    for vector, scalar in zip(case.plain, case.scalars):
        expected = (expected + vector * (math.prod(scalar) % P)) % P
    for vector in fused:
        assert np.array_equal(vector, expected)
    # The same inputs with a fresh pad read a different plaintext: the pad hides the sum.
    other_pad = case.context.encrypt(case.context.joint_key, (case.pad_plain + 1) % P)
    assert case.clean(case.output(pad=other_pad))
    with pytest.raises(InvalidInput):
        circuit.noise_test(case.context, case.tested, case.pad, case.scalars[:-1])


@pytest.mark.parametrize("sign", [1, -1], ids=["plus", "minus"])
@pytest.mark.parametrize(
    "noise_bits, clean",
    [(60, True), (74, False), (100, False), (200, False)],
    ids=["2^60-below-the-bound", "2^74", "2^100", "2^200"],
)
@pytest.mark.parametrize("where", ["mask", "input-pad", "pad"])
def test_added_noise_reads_noisy_from_2_to_the_74(noise_case: NoiseCase, where: str, noise_bits: int, clean: bool, sign: int) -> None:
    """κ = 2^60 stays below what the test sees (a fresh noise is 2^11; the test is for noise
    that could reach the flooding of a product): κ·ρ < 2^180 rounds to 0 at the reading depth.
    From κ = 2^74 on (κ·ρ ≥ 2^186, the reading threshold, for every ρ ≥ 2^112), in any input and
    of either sign, the test reads noisy in every quorum (large κ wrap: the noise is then
    uniform modulo Q)."""
    case = noise_case
    noise = sign * (1 << noise_bits)
    if where == "pad":
        output = case.output(pad=_noisy(case.context, case.pad, noise))
    else:
        output = case.output(case.with_noise(0 if where == "mask" else 2, noise))
    assert case.clean(output) is clean


# Inputs of the noise case by position: the two masks, the input pad (tested), then the pad.
_INPUTS = {"mask-1": 0, "mask-2": 1, "input-pad": 2, "pad": 3}
PAIRS = [("mask-1", "mask-2"), ("mask-1", "input-pad"), ("input-pad", "pad"), ("mask-2", "pad")]


def _cancelling(case: NoiseCase, plus: str, minus: str, noise_bits: int) -> tuple[bool, float]:
    """+κ in one input and −κ in another: the verdict, and log2 of the residual κ·|ρ_i − ρ_j|."""
    noise = 1 << noise_bits
    inputs = [*case.tested, case.pad]
    inputs[_INPUTS[plus]] = _noisy(case.context, inputs[_INPUTS[plus]], noise)
    inputs[_INPUTS[minus]] = _noisy(case.context, inputs[_INPUTS[minus]], -noise)
    residual = noise * abs(math.prod(case.scalars[_INPUTS[plus]]) - math.prod(case.scalars[_INPUTS[minus]]))
    return case.clean(case.output(inputs[:3], inputs[3])), math.log2(residual)


@pytest.mark.parametrize("plus, minus", PAIRS)
def test_noise_that_cancels_in_a_plain_sum_does_not_cancel_in_the_test(noise_case: NoiseCase, plus: str, minus: str) -> None:
    """+κ in one input and −κ in another would cancel in a plain sum; the independent scalars
    leave κ·(ρ_i − ρ_j) in Y. At κ = 2^107 — the bound the test certifies against cancelling
    noise, docs/protocol.md §3a — it reads noisy (|ρ_i − ρ_j| < 2^79 would be needed to hide it:
    probability about 2^-40 over the session's scalars)."""
    case = noise_case
    threshold = math.log2(_modulus(case.context, case.context.input_towers) / P / 2 ** (case.context.noise_reading_bits + 1))
    clean, residual = _cancelling(case, plus, minus, 107)
    assert residual > threshold + 1  # these scalars are not the 2^-40 exception
    assert not clean


@pytest.mark.parametrize("plus, minus", PAIRS)
@pytest.mark.parametrize("noise_bits", [64, 90])
def test_below_the_bound_cancelling_noise_is_read_exactly_by_the_residual(noise_case: NoiseCase, plus: str, minus: str, noise_bits: int) -> None:
    """Below the certified bound the verdict is exactly whether κ·|ρ_i − ρ_j| reaches the
    reading threshold Δ/2^(k+1) (computed here): cancelling noise that small may pass, which the
    bound allows — it is 2^40 below what could reach the flooding of any product."""
    case = noise_case
    threshold = math.log2(_modulus(case.context, case.context.input_towers) / P / 2 ** (case.context.noise_reading_bits + 1))
    clean, residual = _cancelling(case, plus, minus, noise_bits)
    if abs(residual - threshold) < 1:
        pytest.skip("borderline residual for these scalars")
    assert clean == (residual < threshold)


def test_a_flipped_bit_in_an_input_reads_noisy(noise_case: NoiseCase) -> None:
    case = noise_case
    context = case.context
    flipped = context.ciphertext_from_bytes(context.with_flipped_bit(context.ciphertext_to_bytes(case.tested[2]), 12_345, 3))
    assert not case.clean(case.output([case.tested[0], case.tested[1], flipped]))


# --- the flooding margin of every decrypted output -------------------------------------------

FLOODING_MARGIN_BITS = 40  # flooding over the honest noise: statistical distance about 2^-40
CONTRIBUTORS = 3  # t + f of a 2-of-3 committee with f = 1: masks and pads are sums of three
LEVELS = 64
BATCH = PackLimits().validation_batch  # a full validation batch, as production runs it
EACH_GROUPS = 4  # groups built for the per-intendo validity check; the rest of a batch is bounded


@dataclass(frozen=True)
class Measured:
    kind: str
    towers: int
    noise_bits: float
    allowance_bits: float = 0.0  # added for what was not built (a sum of that many more terms)

    def margin(self, context: FheContext) -> float:
        return context.flooding_bits(self.towers) - self.noise_bits - self.allowance_bits


@pytest.fixture(scope="module")
def flooding_table(solo: KeyedCommittee) -> dict[str, Measured]:
    """Realistic honest outputs of every kind the committee decrypts, built by the production
    circuits: a full validation batch of intendos (PackLimits' default), counted into the pack
    for the hunt; masks and pads are sums of fresh encryptions of uniform vectors from t + f
    contributors; seeds and labels as SessionComputation uses them. Printed (pytest -s)."""
    context, secret = solo.context, solo.secrets[0]
    layout = circuit.layout_of(context)
    rng = np.random.default_rng(2025)
    batch = BATCH

    def uniform() -> Ciphertext:
        return context.encrypt(context.joint_key, rng.integers(0, P, context.slot_count))

    def contributed() -> Ciphertext:
        return circuit.sum_masks(context, [uniform() for _ in range(CONTRIBUTORS)])

    thresholds = [Threshold(int(rng.integers(1, LEVELS)), 1) for _ in range(batch)]
    intendos = [context.encrypt(context.joint_key, layout.thermometer(threshold, LEVELS)) for threshold in thresholds]
    ids = [b"intendo-%d" % index for index in range(batch)]
    seed = circuit.session_seed(b"flooding-margin", [b"commitment-%d" % index for index in range(CONTRIBUTORS)])

    def measure(kind: str, output: Ciphertext, allowance: float = 0.0) -> Measured:
        return Measured(kind, output.towers, context.measure_noise_bits(output, secret), allowance)

    rows = []
    # NOISE_EACH: one contributor's masks and input pad, padded by its pad (a validation session).
    own = [uniform() for _ in range(3)]
    rows.append(measure("noise test Y (a contributor)", circuit.noise_test(context, own, uniform(), circuit.noise_scalars(seed, b"noise/1", 4))))
    # NOISE: the whole session at once — every contributor's masks, all pads but the last, and
    # the batch's intendos, padded by the last pad (the honest session's only noise test).
    everything = [uniform() for _ in range(4 * CONTRIBUTORS - 1)] + intendos
    rows.append(
        measure(
            f"noise test Y (the session's: {CONTRIBUTORS} contributors, {batch} intendos)",
            circuit.noise_test(context, everything, uniform(), circuit.noise_scalars(seed, b"noise", len(everything) + 1)),
        )
    )
    # INPUT_NOISE: the batch's intendos, padded by the contributors' input pads.
    rows.append(
        measure(
            f"noise test Y (a batch of {batch})",
            circuit.noise_test(context, intendos, contributed(), circuit.noise_scalars(seed, b"input-noise", batch + 1)),
        )
    )
    # The hunt: the pack sum of the counted batch at the evaluation level, compressed masks.
    pack_sum = context.add_many(context.compress(intendo) for intendo in intendos)
    solver_counts = np.zeros(LEVELS, dtype=np.int64)
    for threshold in thresholds:
        solver_counts[threshold.level :] += 1
    candidates = [level for level in range(1, LEVELS) if solver_counts[level] == level] or [1, 2, 3]
    rows.append(measure("hunt check", circuit.hunt_check(context, pack_sum, context.compress(contributed()), LEVELS, 0)))
    rows.append(measure("confirmation", circuit.hunt_confirmation(context, pack_sum, context.compress(contributed()), LEVELS, candidates)))
    pending = [(context.compress(intendo), 1) for intendo in intendos]
    rows.append(measure(f"membership ({batch} pending)", circuit.membership_ciphertext(context, pending, max(candidates), LEVELS)))
    # Validity at the input level: the whole batch in one group, and each intendo in its own.
    terms = [circuit.validity_terms(context, intendo, 1, LEVELS, seed, intendo_id) for intendo, intendo_id in zip(intendos, ids)]
    rows.append(measure(f"validity batch ({batch})", circuit.validity_check(context, [terms], contributed())))
    # The per-intendo check of a full batch is a sum of one term per group (the noise of a sum
    # of G terms is at most G times the largest): EACH_GROUPS are built, log2(batch/EACH_GROUPS)
    # bits allowed for the rest.
    rows.append(
        measure(
            f"validity each ({EACH_GROUPS} built of {batch})",
            circuit.validity_check(context, [[item] for item in terms[:EACH_GROUPS]], contributed()),
            math.log2(batch / EACH_GROUPS),
        )
    )
    table = {row.kind: row for row in rows}
    print()
    print(f"| output | towers | honest noise (bits) | flooding (bits) | margin (bits) |")
    print("|---|---|---|---|---|")
    for row in rows:
        allowance = f" (+{row.allowance_bits:.0f} allowed)" if row.allowance_bits else ""
        print(
            f"| {row.kind} | {row.towers} | {row.noise_bits:.1f}{allowance} | {context.flooding_bits(row.towers):.1f} "
            f"| {row.margin(context):.1f} |"
        )
    return table


EVALUATION_LEVEL_KINDS = ["hunt check", "confirmation", f"membership ({BATCH} pending)"]
FLOODING_KINDS = [
    "noise test Y (a contributor)",
    f"noise test Y (the session's: {CONTRIBUTORS} contributors, {BATCH} intendos)",
    f"noise test Y (a batch of {BATCH})",
    *EVALUATION_LEVEL_KINDS,
    f"validity batch ({BATCH})",
    f"validity each ({EACH_GROUPS} built of {BATCH})",
]




@pytest.mark.parametrize("kind", FLOODING_KINDS)
def test_every_decrypted_output_stays_40_bits_under_one_partials_flooding(solo: KeyedCommittee, flooding_table: dict[str, Measured], kind: str) -> None:
    """Noise flooding hides a partial decryption's secret-dependent noise only while that noise
    is far below the flooding: every honest output must stay FLOODING_MARGIN_BITS under it at its
    level. A circuit change that grows the noise (a selector product on a noisy total costs
    about 2^15 per product) fails here."""
    assert set(flooding_table) == set(FLOODING_KINDS)
    row = flooding_table[kind]
    assert row.towers == (solo.context.evaluation_towers if kind in EVALUATION_LEVEL_KINDS else solo.context.input_towers)
    margin = row.margin(solo.context)
    message = f"{kind}: {row.noise_bits:.2f} bits of honest noise leave {margin:.2f} bits of flooding margin"
    assert margin >= FLOODING_MARGIN_BITS, message
