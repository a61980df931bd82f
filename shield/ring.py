"""Linkable ring signatures over a stag's eligibility list, with the signer's identity encrypted.

An anonymous intendo is authorized by a signature that proves, for *some* member i of the ring
P₀ … P_{n−1} (the stag's eligible keys), knowledge of x and r with

    P_i = x·B,   I = x·Hp(stag, P_i),   C₁ = r·B,   C₂ − P_i = r·K

where I is the key image and (C₁, C₂) is the ElGamal encryption of P_i to the committee's
identity key K (threshold ElGamal, `stagpack.shield.elgamal`). It is a back-to-back linkable
ring signature (bLSAG; Noether & Goodell, "Zero to Monero", §3.4) whose ring equation carries
four commitments per member instead of two, so one proof shows both that an eligible member
signed and that the ciphertext holds *that* member's key (DESIGN.md §10.5):

    L_i = ( s_i·B + c_i·P_i,  s_i·Hp_i + c_i·I,  t_i·B + c_i·C₁,  t_i·K + c_i·(C₂ − P_i) )
    c_{i+1} = H("ring", m, i, L_i),  closing at c_n = c₀.

The key image is one per identity per stag (Hp depends on the stag), so it enforces one live
intendo per member and authorizes withdrawal, yet images of the same member in two stags are
unlinkable (under DDH). It is decoded as a prime-order point: an image with a torsion component
would let one member make eight different images. A signature without a ciphertext (for a
withdrawal, whose key image already names the intendo) drops the last two commitments.

Sizes: 32·(2n + 4) bytes with the ciphertext, 32·(n + 2) without. Costs are in docs/benchmarks.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

from stagpack import codec
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.shield.dvp import key_image_base
from stagpack.shield.group import BASE, Point, Scalar, hash_to_scalar
from stagpack.identity import digest

MAX_RING = 4096


class Ring:
    """The decoded members of a stag's eligibility list and their key-image bases, computed
    once per stag and reused for every signature checked against it."""

    __slots__ = ("stag_id", "keys", "members", "bases", "digest")

    def __init__(self, stag_id: bytes, keys: Sequence[bytes]) -> None:
        if len(stag_id) != 32:
            raise InvalidInput("the stag id must be 32 bytes")
        if not 2 <= len(keys) <= MAX_RING:
            raise InvalidInput(f"a ring has 2 to {MAX_RING} members")
        if len(set(keys)) != len(keys):
            raise InvalidInput("a ring member is listed twice")
        self.stag_id = bytes(stag_id)
        self.keys = tuple(bytes(key) for key in keys)
        self.members = [Point.from_bytes(key, "ring member key") for key in self.keys]
        self.bases = [key_image_base(stag_id, key) for key in self.keys]
        self.digest = digest("ring", self.stag_id, *self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: bytes) -> int:
        try:
            return self.keys.index(key)
        except ValueError:
            raise InvalidInput("the signer is not a member of the ring") from None


@functools.lru_cache(maxsize=64)
def ring_of(stag_id: bytes, keys: tuple[bytes, ...]) -> Ring:
    """The ring of a stag's eligibility list, built once per process for the stags in use
    (decoding and hashing 1,024 keys takes about 0.15 s)."""
    return Ring(stag_id, keys)


@dataclass(frozen=True)
class IdentityCiphertext:
    """ElGamal encryption of a signer's key P to the committee's identity key K:
    (C₁, C₂) = (r·B, P + r·K)."""

    WIRE_NAME = "stagpack.IdentityCiphertext.v1"

    ephemeral: bytes
    masked: bytes


@dataclass(frozen=True)
class RingSignature:
    WIRE_NAME = "stagpack.RingSignature.v1"

    key_image: bytes
    identity: IdentityCiphertext | None
    challenge: bytes  # c₀
    key_responses: tuple[bytes, ...]  # s_i
    encryption_responses: tuple[bytes, ...]  # t_i; empty when there is no ciphertext

    @property
    def size(self) -> int:
        return 32 * (2 + len(self.key_responses) + len(self.encryption_responses) + (2 if self.identity else 0))


def key_image(stag_id: bytes, signer: bytes, secret: Scalar) -> bytes:
    """I = x·Hp(stag, P)."""
    return (key_image_base(stag_id, signer) * secret).to_bytes()


def _message_digest(ring: Ring, message: bytes, image: bytes, identity: IdentityCiphertext | None, committee_key: bytes) -> bytes:
    encoded_identity = codec.encode(identity) if identity else b""
    return digest("ring-message", ring.digest, message, image, encoded_identity, committee_key)


def _next_challenge(message: bytes, index: int, commitments: list[Point]) -> Scalar:
    return hash_to_scalar("ring", message, index.to_bytes(4, "big"), *(point.to_bytes() for point in commitments))


def sign(
    ring: Ring, message: bytes, signer: bytes, secret: Scalar, committee_key: bytes | None = None
) -> RingSignature:
    """Sign `message` as an anonymous member of `ring`. With `committee_key`, the signature
    also carries the signer's key encrypted to it, bound into the same proof."""
    index = ring.index(signer)
    if Point.base_times(secret) != ring.members[index]:
        raise InvalidInput("the secret does not belong to the signer's key")
    size = len(ring)
    image_point = ring.bases[index] * secret
    image = image_point.to_bytes()
    identity = None
    key_point = None
    randomness = Scalar.random()
    if committee_key is not None:
        key_point = Point.from_bytes(committee_key, "committee identity key")
        identity = IdentityCiphertext(
            Point.base_times(randomness).to_bytes(), (ring.members[index] + key_point * randomness).to_bytes()
        )
    ephemeral = Point.from_bytes(identity.ephemeral) if identity else None
    masked = Point.from_bytes(identity.masked) if identity else None
    bound = _message_digest(ring, message, image, identity, committee_key or b"")

    challenges: list[Scalar | None] = [None] * size
    key_responses: list[Scalar | None] = [None] * size
    encryption_responses: list[Scalar | None] = [None] * size
    key_nonce, encryption_nonce = Scalar.random(), Scalar.random()
    commitments = [BASE * key_nonce, ring.bases[index] * key_nonce]
    if key_point is not None:
        commitments += [BASE * encryption_nonce, key_point * encryption_nonce]
    position = (index + 1) % size
    challenges[position] = _next_challenge(bound, index, commitments)
    while position != index:
        challenge = challenges[position]
        assert challenge is not None
        s, t = Scalar.random(), Scalar.random()
        key_responses[position], encryption_responses[position] = s, t
        commitments = _member_commitments(ring, position, challenge, s, t, image_point, key_point, ephemeral, masked)
        following = (position + 1) % size
        challenges[following] = _next_challenge(bound, position, commitments)
        position = following
    closing = challenges[index]
    assert closing is not None
    key_responses[index] = key_nonce - closing * secret
    encryption_responses[index] = encryption_nonce - closing * randomness
    first = challenges[0]
    assert first is not None
    return RingSignature(
        image, identity, first.to_bytes(),
        tuple(response.to_bytes() for response in key_responses if response is not None),
        tuple(response.to_bytes() for response in encryption_responses if response is not None) if identity else (),
    )


def _member_commitments(
    ring: Ring, position: int, challenge: Scalar, s: Scalar, t: Scalar, image: Point,
    key: Point | None, ephemeral: Point | None, masked: Point | None,
) -> list[Point]:
    member = ring.members[position]
    commitments = [BASE * s + member * challenge, ring.bases[position] * s + image * challenge]
    if key is not None and ephemeral is not None and masked is not None:
        commitments += [BASE * t + ephemeral * challenge, key * t + (masked - member) * challenge]
    return commitments


def verify(ring: Ring, message: bytes, signature: RingSignature, committee_key: bytes | None = None) -> None:
    """Raise InvalidSignature unless some member of `ring` signed `message` with this key image
    (and, with `committee_key`, encrypted its own key to it in `signature.identity`)."""
    size = len(ring)
    if (signature.identity is None) != (committee_key is None):
        raise InvalidSignature("the signature must carry an identity ciphertext exactly when one is required")
    if len(signature.key_responses) != size or len(signature.encryption_responses) != (size if committee_key else 0):
        raise InvalidSignature("the ring signature is for a ring of another size")
    try:
        image = Point.from_bytes(signature.key_image, "key image")
        first = Scalar.from_bytes(signature.challenge, "ring challenge")
        key_responses = [Scalar.from_bytes(value, "ring response") for value in signature.key_responses]
        key_point = ephemeral = masked = None
        encryption_responses = [first] * size  # unused without a ciphertext
        if committee_key is not None and signature.identity is not None:
            key_point = Point.from_bytes(committee_key, "committee identity key")
            ephemeral = Point.from_bytes(signature.identity.ephemeral, "identity ciphertext")
            masked = Point.from_bytes(signature.identity.masked, "identity ciphertext")
            encryption_responses = [Scalar.from_bytes(value, "ring response") for value in signature.encryption_responses]
        bound = _message_digest(ring, message, signature.key_image, signature.identity, committee_key or b"")
        challenge = first
        for position in range(size):
            commitments = _member_commitments(
                ring, position, challenge, key_responses[position], encryption_responses[position],
                image, key_point, ephemeral, masked,
            )
            challenge = _next_challenge(bound, position, commitments)
    except InvalidInput:
        raise InvalidSignature("the ring signature is malformed") from None
    if challenge != first:
        raise InvalidSignature("the ring signature does not verify")
