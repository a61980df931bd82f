"""Unit tests for stagpack.fhe, the one module that talks to OpenFHE.

Every homomorphic result is checked against the same computation done in numpy modulo p, after
a real threshold decryption by the session committees (conftest's `committee3`, 3-of-3, and
`committee2of3`, 2-of-3 with stand-in partials). Bytes from outside — ciphertexts, partial
decryptions, key backup shares — are attacked with truncation, padding, garbage, bit flips,
out-of-range coefficients and objects under other keys: each must be refused with InvalidInput
before OpenFHE parses a byte.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import openfhe
import pytest

from support.unit import (
    coefficient_regions,
    decrypt,
    header_offsets,
    random_slots,
    shares_for,
    with_bit_flipped,
    with_word,
    word_at,
)
from support.committees import make_committee
from stagpack.decrypt import PartialShare
from stagpack.decrypt.threshold import fuse
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.fhe import FheContext, FheParameters, NoiseMode, PartialDecryption

P = 65537


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture(scope="module")
def vectors(context, committee3, rng):  # type: ignore[no-untyped-def]
    """Three random slot vectors and their encryptions under committee3's joint key."""
    plain = [random_slots(context, rng) for _ in range(3)]
    return plain, [context.encrypt(committee3.joint_key, vector) for vector in plain]


@pytest.fixture(scope="module")
def ciphertext_bytes(context, vectors) -> bytes:  # type: ignore[no-untyped-def]
    return context.ciphertext_to_bytes(vectors[1][0])


@pytest.fixture(scope="module")
def ciphertext_regions(context, vectors, ciphertext_bytes) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    other = context.ciphertext_to_bytes(vectors[1][1])
    regions = coefficient_regions(ciphertext_bytes, other, context.ring_dimension)
    assert len(regions) == 2 * context.input_towers  # a supplied ciphertext is fresh: every tower
    return regions


def _main_partial(committee, ciphertext) -> bytes:  # type: ignore[no-untyped-def]
    return next(share.data for share in committee.partials(ciphertext) if share.producer == 2)


@pytest.fixture(scope="module")
def partial_bytes(committee3, vectors) -> bytes:  # type: ignore[no-untyped-def]
    """A main (non-lead) partial decryption of a fresh ciphertext, as it travels."""
    return _main_partial(committee3, vectors[1][0])


@pytest.fixture(scope="module")
def partial_regions(context, committee3, vectors, partial_bytes) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    regions = coefficient_regions(partial_bytes, _main_partial(committee3, vectors[1][1]), context.ring_dimension)
    assert len(regions) == context.input_towers  # a partial of an input-level ciphertext
    return regions


# --- parameters ------------------------------------------------------------------------------


def test_default_parameters_use_noise_flooding(context: FheContext) -> None:
    parameters = FheParameters()
    assert parameters.noise_mode is NoiseMode.FLOODING
    assert parameters.is_secure
    assert context.parameters == parameters
    assert context.describe()["noise_mode"] == NoiseMode.FLOODING.value
    assert context.plaintext_modulus == P
    assert context.slot_count == 2 * context.row_width


def test_fixed_noise_parameters_are_refused_without_explicit_opt_in() -> None:
    insecure = FheParameters.insecure_fixed_noise_for_benchmarks()
    assert not insecure.is_secure
    with pytest.raises(InvalidInput, match="FIXED_NOISE"):
        FheContext(insecure)
    with pytest.raises(InvalidInput):
        FheContext(FheParameters(noise_mode=NoiseMode.FIXED_INSECURE), allow_insecure=False)


def test_fixed_noise_parameters_with_explicit_opt_in_work_end_to_end(rng) -> None:  # type: ignore[no-untyped-def]
    """The benchmark-only parameter set builds a context, a committee, and computes correctly."""
    context = FheContext(FheParameters.insecure_fixed_noise_for_benchmarks(), allow_insecure=True)
    assert not context.parameters.is_secure
    assert context.describe()["noise_mode"] == NoiseMode.FIXED_INSECURE.value
    committee = make_committee(context, 2, 2)
    first, second = random_slots(context, rng), random_slots(context, rng)
    product = context.multiply(context.encrypt(context.joint_key, first), context.encrypt(context.joint_key, second))
    assert np.array_equal(decrypt(committee, product), first * second % P)


@pytest.mark.parametrize(
    "parameters",
    [
        FheParameters(),
        FheParameters.insecure_fixed_noise_for_benchmarks(),
        FheParameters(plaintext_modulus=786433, multiplicative_depth=1, evaluation_towers=4, max_fused_partials=5),
    ],
)
def test_parameters_roundtrip_through_canonical_bytes(parameters: FheParameters) -> None:
    data = parameters.to_bytes()
    assert FheParameters.from_bytes(data) == parameters
    assert FheParameters.from_bytes(bytearray(data)) == parameters
    # Canonical: sorted keys, no whitespace, the enum by value.
    fields = json.loads(data)
    assert list(fields) == sorted(fields)
    assert b" " not in data
    assert fields["noise_mode"] == parameters.noise_mode.value
    # A non-canonical spelling of the same parameters parses to the same value and bytes.
    spaced = json.dumps(fields, indent=2, sort_keys=False).encode()
    assert FheParameters.from_bytes(spaced).to_bytes() == data


def test_parameter_digests_separate_parameter_sets() -> None:
    digests = {
        FheParameters().digest(),
        FheParameters.insecure_fixed_noise_for_benchmarks().digest(),
        FheParameters(multiplicative_depth=1).digest(),
        FheParameters(evaluation_towers=4).digest(),
    }
    assert len(digests) == 4
    assert FheParameters().digest() == FheParameters.from_bytes(FheParameters().to_bytes()).digest()


def _parameter_fields(**changes: object) -> bytes:
    fields: dict[str, object] = json.loads(FheParameters().to_bytes())
    fields.update(changes)
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",  # not UTF-8
        b"[]",
        b"null",
        b"65537",
        b"{}",
        b'"noise-flooding-multiparty"',
        _parameter_fields(noise_mode="no-noise"),
        _parameter_fields(noise_mode=7),
        _parameter_fields(plaintext_modulus="65537"),
        _parameter_fields(plaintext_modulus=65537.0),
        _parameter_fields(plaintext_modulus=0),
        _parameter_fields(multiplicative_depth=-1),
        _parameter_fields(evaluation_towers=True),
        _parameter_fields(wire_towers=3),  # the old name is an unknown field now
        _parameter_fields(max_fused_partials=None),
        _parameter_fields(extra=1),
        json.dumps({k: v for k, v in json.loads(FheParameters().to_bytes()).items() if k != "evaluation_towers"}).encode(),
        b"[" * 100_000,  # nesting deep enough to exhaust the JSON parser's recursion
        b'{"a":' * 100_000,
    ],
    ids=lambda data: repr(data[:30]),
)
def test_malformed_parameter_bytes_are_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        FheParameters.from_bytes(data)


@pytest.mark.parametrize("data", [FheParameters().to_bytes().decode(), None, 17, [1, 2]])
def test_parameters_from_non_bytes_is_type_error(data: object) -> None:
    with pytest.raises(TypeError):
        FheParameters.from_bytes(data)  # type: ignore[arg-type]


# --- evaluation against numpy ----------------------------------------------------------------


def test_encrypt_then_threshold_decrypt_is_identity(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    plain, encrypted = vectors
    for vector, ciphertext in zip(plain, encrypted):
        assert np.array_equal(decrypt(committee3, ciphertext), vector)


def test_add_subtract_and_add_many_match_numpy(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    (a, b, c), (ca, cb, cc) = vectors
    assert np.array_equal(decrypt(committee3, context.add(ca, cb)), (a + b) % P)
    assert np.array_equal(decrypt(committee3, context.subtract(ca, cb)), (a - b) % P)
    assert np.array_equal(decrypt(committee3, context.add_many([ca, cb, cc])), (a + b + c) % P)
    assert np.array_equal(decrypt(committee3, context.add_plain(ca, c)), (a + c) % P)
    assert np.array_equal(decrypt(committee3, context.subtract_plain(ca, c)), (a - c) % P)


def test_multiplications_match_numpy_up_to_the_depth(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    (a, b, c), (ca, cb, cc) = vectors
    product = context.multiply(ca, cb)
    assert np.array_equal(decrypt(committee3, product), a * b % P)
    assert np.array_equal(decrypt(committee3, context.multiply_plain(ca, c)), a * c % P)
    # Depth 2: a product of products still decrypts (the validity circuit needs this).
    assert np.array_equal(decrypt(committee3, context.multiply(product, cc)), a * b % P * c % P)
    mixed = context.multiply(context.multiply_plain(context.subtract(ca, cb), c), cc)
    assert np.array_equal(decrypt(committee3, mixed), (a - b) % P * c % P * c % P)


def test_rotations_act_within_rows_and_the_row_swap_swaps_them(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    (a, _, _), (ca, _, _) = vectors
    width = context.row_width
    assert context.rotation_steps[-1] == width
    for step in context.rotation_steps[:-1]:
        expected = np.concatenate([np.roll(a[:width], -step), np.roll(a[width:], -step)])
        assert np.array_equal(decrypt(committee3, context.rotate(ca, step)), expected), step
    swapped = np.concatenate([a[width:], a[:width]])
    assert np.array_equal(decrypt(committee3, context.rotate(ca, width)), swapped)


def test_evaluation_input_errors(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    _, (ca, _, _) = vectors
    key = committee3.joint_key
    with pytest.raises(InvalidInput):
        context.encrypt(key, np.zeros(context.slot_count - 1, dtype=np.int64))
    with pytest.raises(InvalidInput):
        context.encrypt(key, np.zeros((2, context.row_width), dtype=np.int64))
    too_big = np.zeros(context.slot_count, dtype=np.int64)
    too_big[5] = P
    with pytest.raises(InvalidInput):
        context.encrypt(key, too_big)
    negative = np.zeros(context.slot_count, dtype=np.int64)
    negative[-1] = -1
    with pytest.raises(InvalidInput):
        context.add_plain(ca, negative)
    with pytest.raises(InvalidInput):
        context.rotate(ca, 2)  # no rotation key for step 2
    with pytest.raises(InvalidInput):
        context.add_many([])
    with pytest.raises(InvalidInput):
        context.fuse([])


# --- canonical bytes and digests -------------------------------------------------------------


def test_canonical_ciphertext_bytes_are_stable(context, vectors, ciphertext_bytes) -> None:  # type: ignore[no-untyped-def]
    assert len(ciphertext_bytes) == context.ciphertext_size
    parsed = context.ciphertext_from_bytes(ciphertext_bytes)
    assert context.ciphertext_to_bytes(parsed) == ciphertext_bytes
    assert context.ciphertext_to_bytes(context.ciphertext_from_bytes(bytearray(ciphertext_bytes))) == ciphertext_bytes
    _, (ca, cb, _) = vectors
    product = context.multiply(ca, cb)
    assert context.ciphertext_to_bytes(product) == context.ciphertext_to_bytes(product)


def test_independently_computed_equal_ciphertexts_have_equal_digests(context, vectors) -> None:  # type: ignore[no-untyped-def]
    """Two replicas that recompute the same circuit from the same inputs agree byte for byte
    (DESIGN.md §4), whatever the order of additions."""
    _, (ca, cb, cc) = vectors
    first = context.add(context.add(ca, cb), cc)
    again = [context.ciphertext_from_bytes(context.ciphertext_to_bytes(ciphertext)) for ciphertext in (cc, ca, cb)]
    second = context.add_many(again)
    assert context.ciphertext_digest(first) == context.ciphertext_digest(second)
    assert context.ciphertext_to_bytes(first) == context.ciphertext_to_bytes(second)

    product_first = context.rotate(context.multiply(first, ca), 1)
    product_second = context.rotate(context.multiply(second, again[1]), 1)
    assert context.ciphertext_digest(product_first) == context.ciphertext_digest(product_second)

    # ...while different ciphertexts, and two encryptions of one vector, differ.
    assert context.ciphertext_digest(first) != context.ciphertext_digest(context.add(ca, cb))
    zeros = np.zeros(context.slot_count, dtype=np.int64)
    assert context.ciphertext_digest(context.encrypt(context.joint_key, zeros)) != context.ciphertext_digest(
        context.encrypt(context.joint_key, zeros)
    )


# --- levels: input (every tower) and evaluation (compressed) --------------------------------


def test_encryptions_are_at_the_input_level_and_compress_goes_to_the_evaluation_level(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    """A fresh encryption keeps every tower the depth gives (what a party supplies, where its
    noise is tested); `compress` is a deterministic modulus switch to the evaluation level that
    keeps the plaintext."""
    plain, (ca, cb, cc) = vectors
    assert context.input_towers == len(context.tower_moduli) == context.fresh_towers == 4
    assert context.evaluation_towers == FheParameters().evaluation_towers == 3
    assert ca.towers == context.input_towers
    compressed = context.compress(ca)
    assert compressed.towers == context.evaluation_towers
    assert np.array_equal(decrypt(committee3, compressed), plain[0])
    assert context.compress(compressed) is compressed  # already there
    # Deterministic: every party compressing the same bytes gets the same bytes.
    reparsed = context.ciphertext_from_bytes(context.ciphertext_to_bytes(ca))
    assert context.ciphertext_to_bytes(context.compress(reparsed)) == context.ciphertext_to_bytes(compressed)
    # One tower of two elements fewer: about a quarter smaller.
    size = len(context.ciphertext_to_bytes(compressed))
    assert abs(size / context.ciphertext_size - 3 / 4) < 0.01
    # The hunt path's operations at the evaluation level, against numpy.
    a, b, c = plain
    eb, ec = context.compress(cb), context.compress(cc)
    assert np.array_equal(decrypt(committee3, context.add(compressed, eb)), (a + b) % P)
    assert np.array_equal(decrypt(committee3, context.subtract_plain(compressed, c)), (a - c) % P)
    assert np.array_equal(decrypt(committee3, context.multiply(context.multiply_plain(compressed, c), eb)), a * c % P * b % P)
    assert np.array_equal(decrypt(committee3, context.rotate(ec, context.row_width)), np.concatenate([c[context.row_width :], c[: context.row_width]]))


@pytest.mark.parametrize(
    "operation",
    ["add", "subtract", "multiply"],
)
def test_operations_refuse_ciphertexts_of_different_levels(context, vectors, operation: str) -> None:  # type: ignore[no-untyped-def]
    """OpenFHE combines ciphertexts of different tower counts silently wrongly (a product of a
    3- and a 4-tower ciphertext decrypts to garbage without an error): every operation refuses
    operands of different levels with InvalidInput."""
    _, (ca, cb, _) = vectors
    compressed = context.compress(cb)
    with pytest.raises(InvalidInput, match="towers"):
        getattr(context, operation)(ca, compressed)
    with pytest.raises(InvalidInput, match="towers"):
        getattr(context, operation)(compressed, ca)
    if operation == "add":
        with pytest.raises(InvalidInput, match="towers"):
            context.add_many([compressed, compressed, ca])


def test_partials_record_their_level_and_never_fuse_across_levels(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    """Partials of both levels parse (each template is pinned), carry their level, and a fusion
    refuses to mix them."""
    _, (ca, cb, _) = vectors
    compressed = context.compress(cb)
    fresh_partial = context.partial_from_bytes(_main_partial(committee3, ca))
    compressed_data = _main_partial(committee3, compressed)
    compressed_partial = context.partial_from_bytes(compressed_data)
    assert (fresh_partial.towers, compressed_partial.towers) == (context.input_towers, context.evaluation_towers)
    assert len(compressed_data) < len(context.partial_to_bytes(fresh_partial))
    lead = context.public_lead_partial(compressed)
    assert lead.towers == context.evaluation_towers
    with pytest.raises(InvalidInput, match="levels"):
        context.fuse([lead, compressed_partial, fresh_partial])
    # A partial at another level than the ciphertext it claims to decrypt is refused by the
    # quorum's fusion, before OpenFHE sees it.
    quorum, shares = shares_for(committee3, compressed)
    swapped = [PartialShare(share.producer, share.on_behalf_of, share.quorum, _main_partial(committee3, ca)) if share.producer == 2 else share for share in shares]
    with pytest.raises(InvalidInput, match="level"):
        fuse(context, compressed, quorum, swapped)


# --- hostile ciphertext bytes ----------------------------------------------------------------


def _garbage_sizes(size: int) -> list[int]:
    return [0, 1, 8, 63, 64, 65, 1000, 4096, size // 2, size - 1, size, size + 1, size + 4096]


def test_truncated_and_padded_ciphertexts_are_invalid(context, ciphertext_bytes, ciphertext_regions) -> None:  # type: ignore[no-untyped-def]
    size = len(ciphertext_bytes)
    regions = ciphertext_regions
    cuts = [0, 1, 64, regions[0][0] - 1, regions[0][0] + 8, size // 2, regions[-1][0] + 1, size - 8, size - 1]
    for cut in cuts:
        with pytest.raises(InvalidInput):
            context.ciphertext_from_bytes(ciphertext_bytes[:cut])
    for padding in (b"\x00", b"\x00" * 8, b"\xff" * 64, ciphertext_bytes[:100]):
        with pytest.raises(InvalidInput):
            context.ciphertext_from_bytes(ciphertext_bytes + padding)
        with pytest.raises(InvalidInput):
            context.ciphertext_from_bytes(padding + ciphertext_bytes)


def test_random_garbage_is_invalid_ciphertext(context, ciphertext_bytes, rng) -> None:  # type: ignore[no-untyped-def]
    for size in _garbage_sizes(len(ciphertext_bytes)):
        for _ in range(3):
            with pytest.raises(InvalidInput):
                context.ciphertext_from_bytes(rng.bytes(size))
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(bytes(len(ciphertext_bytes)))


def test_every_header_bit_flip_is_refused(context, ciphertext_bytes, ciphertext_regions) -> None:  # type: ignore[no-untyped-def]
    regions = ciphertext_regions
    buffer = bytearray(ciphertext_bytes)
    for offset in header_offsets(regions, len(buffer)):
        for bit in range(8):
            buffer[offset] ^= 1 << bit
            with pytest.raises(InvalidInput):
                context.ciphertext_from_bytes(buffer)
            buffer[offset] ^= 1 << bit
    assert bytes(buffer) == ciphertext_bytes


def _tower_modulus(context: FheContext, region_index: int) -> int:
    # Regions run element by element, tower by tower; input-level objects keep every tower.
    return context.tower_moduli[region_index % context.input_towers]


def test_out_of_range_coefficients_are_refused(context, ciphertext_bytes, ciphertext_regions, rng) -> None:  # type: ignore[no-untyped-def]
    regions = ciphertext_regions
    for index, (start, length) in enumerate(regions):
        modulus = _tower_modulus(context, index)
        for word in (0, int(rng.integers(0, length // 8)), length // 8 - 1):
            offset = start + 8 * word
            for value in (0xFFFF_FFFF_FFFF_FFFF, modulus, modulus + 1, 1 << 63):
                with pytest.raises(InvalidInput, match="modulus"):
                    context.ciphertext_from_bytes(with_word(ciphertext_bytes, offset, value))
            original = word_at(ciphertext_bytes, offset)
            for bit in (60, 61, 62, 63):  # every modulus is below 2^60
                if original >> bit & 1 == 0:
                    with pytest.raises(InvalidInput):
                        context.ciphertext_from_bytes(with_bit_flipped(ciphertext_bytes, offset + bit // 8, bit % 8))
    # The largest reduced value is accepted: the check is exact, not over-strict.
    start, _ = regions[0]
    context.ciphertext_from_bytes(with_word(ciphertext_bytes, start, _tower_modulus(context, 0) - 1))


def test_low_bit_flips_inside_coefficients_parse_as_another_ciphertext(context, ciphertext_bytes, ciphertext_regions) -> None:  # type: ignore[no-untyped-def]
    """Parsing cannot tell a mauled coefficient from a fresh one (it is a valid ring element):
    what pins a submitted ciphertext is the digest inside the signed envelope."""
    start, _ = ciphertext_regions[1]
    mauled = with_bit_flipped(ciphertext_bytes, start + 8 * 100, 0)
    parsed = context.ciphertext_from_bytes(mauled)
    assert context.ciphertext_to_bytes(parsed) == mauled
    assert context.ciphertext_digest(parsed) != context.ciphertext_digest(context.ciphertext_from_bytes(ciphertext_bytes))


def test_ciphertexts_under_other_keys_are_refused(context, committee3, committee2of3, vectors) -> None:  # type: ignore[no-untyped-def]
    plain, _ = vectors
    _, stranger_key = context.generate_key_share(None)  # a fresh single-party key
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(context.ciphertext_to_bytes(context.encrypt(stranger_key, plain[0])))
    other = committee2of3.context
    from_other_committee = other.ciphertext_to_bytes(other.encrypt(other.joint_key, plain[0]))
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(from_other_committee)
    with pytest.raises(InvalidInput):
        other.ciphertext_from_bytes(context.ciphertext_to_bytes(vectors[1][0]))
    # Only input-level ciphertexts (fresh, every tower) parse: that is what a party supplies and
    # where its noise is tested. A compressed (evaluation-level) ciphertext under the right key
    # is refused. (Before the security changes it was the other way round: every ciphertext was
    # compressed to the wire level and a fresh one refused; the expectation follows the design.)
    compressed = context.ciphertext_to_bytes(context.compress(vectors[1][0]))
    assert len(compressed) < context.ciphertext_size
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(compressed)
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(compressed + bytes(context.ciphertext_size - len(compressed)))


@pytest.mark.parametrize("data", ["ciphertext", None, 12, [1, 2, 3], np.zeros(8, dtype=np.uint8)], ids=repr)
def test_parsing_non_bytes_is_type_error(context, committee3, data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError):
        context.ciphertext_from_bytes(data)
    with pytest.raises(TypeError):
        context.partial_from_bytes(data)
    with pytest.raises(TypeError):
        context.backup_share_from_bytes(data)


def test_parsing_needs_a_bound_committee_key() -> None:
    unbound = FheContext()
    with pytest.raises(WrongPhase):
        unbound.ciphertext_from_bytes(b"\x00" * 100)
    with pytest.raises(WrongPhase):
        unbound.partial_from_bytes(b"\x00" * 100)
    with pytest.raises(WrongPhase):
        unbound.backup_share_from_bytes(b"\x00" * 100)
    with pytest.raises(WrongPhase):
        unbound.joint_key
    with pytest.raises(WrongPhase):
        unbound.ciphertext_size


def test_binding_another_committee_key_is_refused(context, committee2of3) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WrongPhase):
        context.bind_joint_key(committee2of3.context.joint_key)
    context.bind_joint_key(context.joint_key)  # rebinding the same key is a no-op


# --- hostile partial decryption bytes --------------------------------------------------------


def test_partial_bytes_roundtrip(context, committee3, vectors, partial_bytes) -> None:  # type: ignore[no-untyped-def]
    parsed = context.partial_from_bytes(partial_bytes)
    assert context.partial_to_bytes(parsed) == partial_bytes
    # Partials of a product (a higher noise-scale degree) parse too.
    _, (ca, cb, _) = vectors
    for share in committee3.partials(context.multiply(ca, cb)):
        assert context.partial_to_bytes(context.partial_from_bytes(share.data)) == share.data


def test_truncated_padded_and_garbage_partials_are_invalid(context, partial_bytes, ciphertext_bytes, rng) -> None:  # type: ignore[no-untyped-def]
    size = len(partial_bytes)
    for cut in (0, 1, 64, 700, size // 2, size - 1):
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(partial_bytes[:cut])
    for padding in (b"\x00", b"\xff" * 8):
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(partial_bytes + padding)
    for size_ in _garbage_sizes(size):
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(rng.bytes(size_))
    with pytest.raises(InvalidInput):
        context.partial_from_bytes(ciphertext_bytes)  # a ciphertext is not a partial
    with pytest.raises(InvalidInput):
        context.ciphertext_from_bytes(partial_bytes)  # nor a partial a ciphertext


def test_every_partial_header_bit_flip_is_refused(context, committee3, vectors, partial_bytes, partial_regions) -> None:  # type: ignore[no-untyped-def]
    """A flipped header bit is refused unless it turns the header into that of a legitimate
    partial of a product (the header records the ciphertext's noise-scale degree, and partials
    of every degree up to the multiplicative depth are accepted)."""
    offsets = header_offsets(partial_regions, len(partial_bytes))

    def header(data: bytes | bytearray) -> bytes:
        return bytes(np.frombuffer(bytes(data), dtype=np.uint8)[offsets])

    _, (ca, cb, cc) = vectors
    product = context.multiply(ca, cb)
    legitimate = {header(_main_partial(committee3, product)), header(_main_partial(committee3, context.multiply(product, cc)))}
    assert header(partial_bytes) not in legitimate
    buffer = bytearray(partial_bytes)
    accepted = 0
    for offset in offsets:
        for bit in range(8):
            buffer[offset] ^= 1 << bit
            try:
                context.partial_from_bytes(buffer)
            except InvalidInput:
                pass
            else:
                assert header(buffer) in legitimate, (offset, bit)
                accepted += 1
            buffer[offset] ^= 1 << bit
    assert accepted <= 2


def test_partial_coefficients_outside_the_modulus_are_refused(context, partial_bytes, partial_regions) -> None:  # type: ignore[no-untyped-def]
    for index, (start, length) in enumerate(partial_regions):
        for offset in (start, start + length - 8):
            for value in (0xFFFF_FFFF_FFFF_FFFF, _tower_modulus(context, index)):
                with pytest.raises(InvalidInput):
                    context.partial_from_bytes(with_word(partial_bytes, offset, value))


def test_partials_under_other_keys_are_refused(context, committee2of3, vectors) -> None:  # type: ignore[no-untyped-def]
    plain, _ = vectors
    stranger_secret, stranger_key = context.generate_key_share(None)
    stranger_ciphertext = context.encrypt(stranger_key, plain[0])
    for lead in (True, False):
        partial = context.partial_decrypt(stranger_ciphertext, stranger_secret, lead=lead)
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(context.partial_to_bytes(partial))
    other = committee2of3.context
    other_shares = committee2of3.partials(other.encrypt(other.joint_key, plain[0]))
    for share in other_shares:
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(share.data)


def test_partials_beyond_the_multiplicative_depth_are_refused(context, committee3, vectors) -> None:  # type: ignore[no-untyped-def]
    _, (ca, cb, cc) = vectors
    too_deep = context.multiply(context.multiply(context.multiply(ca, cb), cc), ca)
    for share in committee3.partials(too_deep):
        with pytest.raises(InvalidInput):
            context.partial_from_bytes(share.data)


# --- hostile key backup share bytes ----------------------------------------------------------


def test_hostile_bytes_never_reach_the_openfhe_parser(  # type: ignore[no-untyped-def]
    context, ciphertext_bytes, ciphertext_regions, partial_bytes, partial_regions, monkeypatch
) -> None:
    """Bytes from outside are checked against the exact layout before OpenFHE parses them: a
    flipped length field would otherwise make cereal allocate without bound (a single flipped
    header bit in a backup share made the deserializer allocate over 20 GB)."""
    backup_bytes, backup_regions = _backup_sample(context)
    calls = []

    def spy(data: bytes, mode: object) -> object:
        calls.append(len(data))
        raise RuntimeError("the parser must not see hostile bytes")

    monkeypatch.setattr(openfhe, "DeserializeCiphertextString", spy)
    for parse, good, regions in (
        (context.ciphertext_from_bytes, ciphertext_bytes, ciphertext_regions),
        (context.partial_from_bytes, partial_bytes, partial_regions),
        (context.backup_share_from_bytes, backup_bytes, backup_regions),
    ):
        hostile = [
            good[:-1],
            good + b"\x00",
            bytes(len(good)),
            with_bit_flipped(good, 37, 3),
            with_bit_flipped(good, regions[0][0] - 8, 6),  # the length prefix of the first tower
            with_bit_flipped(good, regions[-1][0] - 3, 0),
        ]
        if parse != context.backup_share_from_bytes:  # backup coefficients are not range-checked
            hostile.append(with_word(good, regions[-1][0], 0xFFFF_FFFF_FFFF_FFFF))
        for data in hostile:
            with pytest.raises(InvalidInput):
                parse(data)
    assert calls == []


def _backup_sample(context: FheContext) -> tuple[bytes, list[tuple[int, int]]]:
    """Serialized backup share of a throwaway key, and its coefficient regions."""
    samples = []
    for _ in range(2):
        secret, _ = context.generate_key_share(None)
        samples.append(context.backup_share_to_bytes(context.share_secret_key(secret, 3, 2, 1)[2]))
    regions = coefficient_regions(samples[0], samples[1], context.ring_dimension)
    assert len(regions) == context.fresh_towers  # a key share keeps every tower
    return samples[0], regions


def test_backup_shares_roundtrip_and_hostile_backup_bytes_are_invalid(context, committee2of3, rng) -> None:  # type: ignore[no-untyped-def]
    data, regions = _backup_sample(context)
    # Canonical: a parsed share re-serializes to the same bytes (keyholders seal parsed shares
    # and parse them again when they restart).
    assert context.backup_share_to_bytes(context.backup_share_from_bytes(data)) == data
    secret, _ = context.generate_key_share(None)
    for cut in (0, 63, 64, len(data) // 2, len(data) - 1):
        with pytest.raises(InvalidInput):
            context.backup_share_from_bytes(data[:cut])
    with pytest.raises(InvalidInput):
        context.backup_share_from_bytes(data + b"\x00")
    for size in _garbage_sizes(len(data)):
        with pytest.raises(InvalidInput):
            context.backup_share_from_bytes(rng.bytes(size))
    buffer = bytearray(data)
    for offset in header_offsets(regions, len(buffer)):
        bit = int(rng.integers(0, 8))
        buffer[offset] ^= 1 << bit
        with pytest.raises(InvalidInput):
            context.backup_share_from_bytes(buffer)
        buffer[offset] ^= 1 << bit
    # Coefficients are not range-checked: OpenFHE's own shares are not fully reduced for t >= 3.
    for t_of_n in ((5, 3), (7, 4)):
        for holder_share in context.share_secret_key(context.generate_key_share(None)[0], *t_of_n, 1).values():
            share_bytes = context.backup_share_to_bytes(holder_share)
            assert context.backup_share_to_bytes(context.backup_share_from_bytes(share_bytes)) == share_bytes
    other = committee2of3.context
    with pytest.raises(InvalidInput):
        context.backup_share_from_bytes(other.backup_share_to_bytes(other.share_secret_key(secret, 3, 2, 1)[2]))
    with pytest.raises(InvalidInput):
        context.backup_share_from_bytes(context.ciphertext_to_bytes(context.encrypt(context.joint_key, random_slots(context, rng))))


# --- t-of-n stand-ins (DESIGN.md §6) ---------------------------------------------------------


def test_stand_in_keys_decrypt_for_every_quorum_of_a_hand_built_key(context, rng) -> None:  # type: ignore[no-untyped-def]
    """A 3-party key built by the DKG chain, Shamir-shared 2-of-3 through the wire format:
    every 2-member quorum decrypts with its own partials plus stand-ins for the third."""
    parties, threshold = 3, 2
    secrets = {}
    previous = None
    for index in range(1, parties + 1):
        secrets[index], previous = context.generate_key_share(previous)
    joint = previous
    assert joint is not None
    held: dict[tuple[int, int], object] = {}  # (holder, owner) -> backup share, via bytes
    for owner, secret in secrets.items():
        shares = context.share_secret_key(secret, parties, threshold, owner)
        assert sorted(shares) == [holder for holder in range(1, parties + 1) if holder != owner]
        for holder, share in shares.items():
            held[(holder, owner)] = context.backup_share_from_bytes(context.backup_share_to_bytes(share))
    plain = random_slots(context, rng)
    ciphertext = context.encrypt(joint, plain)

    everyone = [context.partial_decrypt(ciphertext, secrets[index], lead=index == 1) for index in secrets]
    assert np.array_equal(context.fuse(everyone), plain)

    for quorum in combinations(range(1, parties + 1), threshold):
        (absent,) = set(range(1, parties + 1)) - set(quorum)
        partials = [context.partial_decrypt(ciphertext, secrets[member], lead=member == quorum[0]) for member in quorum]
        for member in quorum:
            weighted = context.stand_in_key(held[(member, absent)], member, quorum, parties, threshold)  # type: ignore[arg-type]
            partials.append(context.partial_decrypt(ciphertext, weighted, lead=False))
        assert np.array_equal(context.fuse(partials), plain), quorum
        # Without the stand-ins the result is wrong: the oracle can tell.
        assert not np.array_equal(context.fuse(partials[:threshold]), plain)

    # A weighted key is λ for its own quorum: used for another quorum it decrypts wrongly.
    wrong_quorum = (1, 3)
    partials = [context.partial_decrypt(ciphertext, secrets[member], lead=member == 1) for member in (1, 2)]
    for member in (1, 2):
        weighted = context.stand_in_key(held[(member, 3)], member, wrong_quorum if member == 1 else (1, 2), parties, threshold)  # type: ignore[arg-type]
        partials.append(context.partial_decrypt(ciphertext, weighted, lead=False))
    assert not np.array_equal(context.fuse(partials), plain)

    with pytest.raises(InvalidInput):
        context.stand_in_key(held[(1, 3)], 1, (2, 3), parties, threshold)  # type: ignore[arg-type]


def test_every_quorum_of_a_two_of_three_committee_decrypts(committee2of3, rng) -> None:  # type: ignore[no-untyped-def]
    context = committee2of3.context
    plain = random_slots(context, rng)
    first = context.encrypt(context.joint_key, plain)
    second = context.encrypt(context.joint_key, (plain * 3 + 1) % P)
    product = context.multiply(first, second)
    expected = plain * ((plain * 3 + 1) % P) % P
    for members in [(1, 2, 3), (1, 2), (1, 3), (2, 3)]:
        assert np.array_equal(decrypt(committee2of3, first, members), plain), members
        assert np.array_equal(decrypt(committee2of3, product, members), expected), members


# --- the public lead term --------------------------------------------------------------------


def test_public_lead_partial_completes_the_keyholders_main_partials(context, committee3, vectors, rng) -> None:  # type: ignore[no-untyped-def]
    """Keyholders only produce main partials (c1·s_j + flooding); the lead term (c0) needs no
    secret: `public_lead_partial` is a lead partial under the zero key, computable by whoever
    fuses — even a context that holds no key share at all."""
    plain, (ca, cb, _) = vectors
    shift = random_slots(context, rng)
    for ciphertext, expected in ((ca, plain[0]), (context.multiply(ca, cb), plain[0] * plain[1] % P)):
        mains = [context.partial_decrypt(ciphertext, secret, lead=False) for secret in committee3.secrets]
        lead = context.public_lead_partial(ciphertext)
        assert np.array_equal(context.fuse([lead, *mains]), expected)
        assert np.array_equal(context.fuse([*reversed(mains), lead]), expected)
        # The main partials alone do not decrypt, and a key share's lead partial on top of the
        # public one counts c0 twice: the lead term comes from the public partial only.
        assert not np.array_equal(context.fuse(mains), expected)
        doubled = [lead, context.partial_decrypt(ciphertext, committee3.secrets[0], lead=True), *mains[1:]]
        assert not np.array_equal(context.fuse(doubled), expected)
        # The main partials do not depend on c0: adding a plaintext to the ciphertext moves only
        # the lead term, so the same main partials fuse with the new lead to the new plaintext.
        assert np.array_equal(context.fuse([context.public_lead_partial(context.add_plain(ciphertext, shift)), *mains]), (expected + shift) % P)
        # Every call draws fresh flooding noise, and the result travels like any partial.
        again = context.public_lead_partial(ciphertext)
        assert context.partial_to_bytes(again) != context.partial_to_bytes(lead)
        assert np.array_equal(context.fuse([context.partial_from_bytes(context.partial_to_bytes(again)), *mains]), expected)
    # A context with no key share, bound only to the joint public key, computes the same term.
    outsider = FheContext()
    outsider.bind_joint_key(outsider.public_key_from_bytes(committee3.bundle.joint_public_key))
    foreign = outsider.public_lead_partial(outsider.ciphertext_from_bytes(context.ciphertext_to_bytes(ca)))
    mains = [context.partial_decrypt(ca, secret, lead=False) for secret in committee3.secrets]
    assert np.array_equal(context.fuse([context.partial_from_bytes(outsider.partial_to_bytes(foreign)), *mains]), plain[0])


def test_partial_decryption_objects_are_opaque(context, partial_bytes) -> None:  # type: ignore[no-untyped-def]
    partial = context.partial_from_bytes(partial_bytes)
    assert isinstance(partial, PartialDecryption)
    assert not hasattr(partial, "__dict__")


def test_releasing_unused_evaluation_keys_keeps_what_living_committees_use() -> None:
    """OpenFHE keeps evaluation keys in process-wide maps; releasing drops those of committees
    that are gone and reinstalls the rest, so a living committee still rotates and multiplies
    (checked by decrypting against numpy)."""
    kept = make_committee(FheContext(), 1, 1)
    gone = make_committee(FheContext(), 1, 1)
    gone_tag = gone.context.joint_key.key_tag
    del gone
    assert FheContext.release_unused_evaluation_keys() >= 1
    assert gone_tag not in FheContext.installed_key_tags()
    assert FheContext.release_unused_evaluation_keys() == 0  # nothing more to free
    context = kept.context
    rng = np.random.default_rng(21)
    values = rng.integers(0, 200, context.slot_count)
    ciphertext = context.encrypt(context.joint_key, values)
    width = context.row_width
    rows = values.reshape(2, width)
    expected = (np.roll(rows, -1, axis=1).reshape(-1) * values) % context.plaintext_modulus
    assert np.array_equal(decrypt(kept, context.multiply(context.rotate(ciphertext, 1), ciphertext)), expected)
