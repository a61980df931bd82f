"""Helpers shared by the unit tests of the core layers (not fixtures: plain functions).

Decryption here fuses raw slot vectors, which only tests may do: production code reads fused
vectors through `stagpack.decrypt`'s fact readers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stagpack.decrypt import PartialShare, Quorum
from stagpack.decrypt.threshold import fuse
from stagpack.fhe import Ciphertext, FheContext, SlotVector

COEFFICIENT_BYTES = 8


def decrypt(committee, ciphertext: Ciphertext, members: tuple[int, ...] | None = None) -> SlotVector:  # type: ignore[no-untyped-def]
    """Fuse every partial the quorum owes (own and stand-in) and the public lead term into the
    raw slot vector."""
    quorum = committee.quorum(members)
    return fuse(committee.context, ciphertext, quorum, committee.partials(ciphertext, quorum))


def shares_for(committee, ciphertext: Ciphertext, members: tuple[int, ...] | None = None) -> tuple[Quorum, list[PartialShare]]:  # type: ignore[no-untyped-def]
    """One quorum (`members`, default everyone) and every partial it needs."""
    quorum = committee.quorum(members)
    return quorum, committee.partials(ciphertext, quorum)


def family_shares_for(committee, ciphertext: Ciphertext, live: Sequence[int] | None = None) -> tuple[tuple[Quorum, ...], list[PartialShare]]:  # type: ignore[no-untyped-def]
    """The prescribed family of quorums for the `live` keyholders (default everyone) and every
    partial it needs (one own partial per member, stand-ins per quorum)."""
    family = committee.family(live)
    return family, committee.partials(ciphertext, family)


def crafted_partial(context: FheContext, share: PartialShare, ciphertext: Ciphertext, shift: SlotVector) -> PartialShare:
    """`share` plus Δ·shift: what a dishonest keyholder sends to shift the fused plaintext by
    `shift`. It needs no secret: the public lead partial of (Δ·shift, 0) is added to its honest
    partial (`FheContext.shifted_partial`)."""
    return PartialShare(share.producer, share.on_behalf_of, share.quorum, context.shifted_partial(share.data, ciphertext, shift))


def random_slots(context: FheContext, rng: np.random.Generator, low: int = 0) -> SlotVector:
    """Uniform slot values in [low, p)."""
    return rng.integers(low, context.plaintext_modulus, context.slot_count, dtype=np.int64)


def random_mask(context: FheContext, rng: np.random.Generator) -> Ciphertext:
    """Enc(R) with R uniform in Z_p* on every slot, as the keyholders' summed masks are."""
    return context.encrypt(context.joint_key, random_slots(context, rng, low=1))


def coefficient_regions(data: bytes, other: bytes, ring_dimension: int) -> list[tuple[int, int]]:
    """(start, length) of each block of `ring_dimension` 64-bit coefficients in serialized
    OpenFHE bytes, found from cereal's layout — an 8-byte little-endian length prefix equal to
    the ring dimension, then the words — independently of stagpack's own template code. The
    prefix pattern also occurs in headers by chance, so a block must also start with words
    that differ from those of `other`, an independent object of the same kind."""
    assert len(data) == len(other)
    prefix = int(ring_dimension).to_bytes(COEFFICIENT_BYTES, "little")
    block = ring_dimension * COEFFICIENT_BYTES
    regions = []
    position = 0
    while True:
        found = data.find(prefix, position)
        if found < 0 or found + len(prefix) + block > len(data):
            return regions
        start = found + len(prefix)
        words = np.frombuffer(data[start : start + 64], dtype="<u8")
        other_words = np.frombuffer(other[start : start + 64], dtype="<u8")
        if np.count_nonzero(words != other_words) >= 6:
            regions.append((start, block))
            position = start + block
        else:
            position = found + 1


def with_word(data: bytes, offset: int, value: int) -> bytes:
    """`data` with the 64-bit little-endian word at `offset` replaced by `value`."""
    changed = bytearray(data)
    changed[offset : offset + COEFFICIENT_BYTES] = int(value).to_bytes(COEFFICIENT_BYTES, "little")
    return bytes(changed)


def with_bit_flipped(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def word_at(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + COEFFICIENT_BYTES], "little")


def header_offsets(regions: Sequence[tuple[int, int]], size: int) -> list[int]:
    """Every byte offset outside the coefficient regions."""
    inside = np.zeros(size, dtype=bool)
    for start, length in regions:
        inside[start : start + length] = True
    return [int(offset) for offset in np.nonzero(~inside)[0]]
