"""Threshold ElGamal over the Ed25519 group: the committee's identity key and its decryption.

Anonymous intendos carry their signer's key encrypted to the committee's identity key K
(`stagpack.shield.ring`). No keyholder holds K's secret; t of the n keyholders together can
open one ciphertext, and each opening is a share with a proof, so the aggregator cannot use a
wrong share to name the wrong member.

**Key generation** (Feldman VSS run by every keyholder at once, as in Pedersen's DKG; the
proof of possession is FROST's, Komlo–Goldberg 2020, §5.1):

    Round one  keyholder j picks f_j(z) = a_j0 + a_j1·z + … + a_j,t−1·z^{t−1}, publishes
               A_jk = a_jk·B with a Schnorr proof that it knows a_j0 (bound to the ceremony
               and to j), and sends f_j(l) to each keyholder l (sealed, by the ceremony).
    Round two  keyholder l checks each share: f_j(l)·B = Σ_k l^k·A_jk, and each proof. A
               failed check names the dealer and the ceremony stops.
    Result     K = Σ_j A_j0, keyholder l's secret x_l = Σ_j f_j(l), and its verification key
               X_l = Σ_j Σ_k l^k·A_jk = x_l·B, which anyone computes from the commitments.

A minority of up to t−1 keyholders learns nothing of x = Σ_j a_j0. Feldman's DKG lets the last
dealer bias K's distribution (Gennaro et al. 1999); that does not help it decrypt, which is all
K is used for.

**Decryption** of (C₁, C₂) = (r·B, P + r·K): keyholder l releases D_l = x_l·C₁ with a
Chaum–Pedersen proof that log_B X_l = log_C₁ D_l; any t valid shares give
x·C₁ = Σ_l λ_l·D_l and P = C₂ − x·C₁.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.shield.group import BASE, Point, Scalar, hash_to_scalar, lagrange_at_zero
from stagpack.shield.ring import IdentityCiphertext


@dataclass(frozen=True)
class DealerCommitment:
    """Round one, public: a dealer's coefficient commitments and its proof of knowing a_j0."""

    WIRE_NAME = "stagpack.IdentityKeyCommitment.v1"

    dealer: int  # 1-based keyholder index
    coefficients: tuple[bytes, ...]  # A_j0 … A_j,t−1
    proof_challenge: bytes
    proof_response: bytes


@dataclass(frozen=True)
class Dealing:
    """A dealer's round-one output: its public commitment and the share for each keyholder
    (index → f_j(index)), which the ceremony seals to that keyholder alone."""

    commitment: DealerCommitment
    shares: dict[int, Scalar]


def _possession_challenge(context: bytes, dealer: int, constant: bytes, nonce_commitment: bytes) -> Scalar:
    return hash_to_scalar("identity-key-possession", context, dealer.to_bytes(4, "big"), constant, nonce_commitment)


def deal(context: bytes, dealer: int, threshold: int, size: int) -> Dealing:
    """Round one for keyholder `dealer` (1-based) of `size`, any `threshold` of whom decrypt.
    `context` binds the proof to one ceremony."""
    if not 1 <= threshold <= size or not 1 <= dealer <= size:
        raise InvalidInput("need 1 ≤ t ≤ n and a dealer index in 1..n")
    coefficients = [Scalar.random() for _ in range(threshold)]
    commitments = tuple(Point.base_times(coefficient).to_bytes() for coefficient in coefficients)
    nonce = Scalar.random()
    nonce_commitment = Point.base_times(nonce).to_bytes()
    challenge = _possession_challenge(context, dealer, commitments[0], nonce_commitment)
    response = nonce + challenge * coefficients[0]
    shares = {index: _evaluate(coefficients, index) for index in range(1, size + 1)}
    return Dealing(DealerCommitment(dealer, commitments, challenge.to_bytes(), response.to_bytes()), shares)


def _evaluate(coefficients: Sequence[Scalar], index: int) -> Scalar:
    result = Scalar.from_int(0)
    point = Scalar.from_int(index)
    for coefficient in reversed(coefficients):
        result = result * point + coefficient
    return result


def _commitment_at(commitment: DealerCommitment, index: int) -> Point:
    """Σ_k index^k·A_jk."""
    total = None
    power = 1
    for encoded in commitment.coefficients:
        term = Point.from_bytes(encoded, "coefficient commitment") * Scalar.from_int(power)
        total = term if total is None else total + term
        power *= index
    assert total is not None
    return total


def check_commitment(context: bytes, commitment: DealerCommitment, threshold: int) -> None:
    """Round two, public part: the right number of valid commitments and a valid proof."""
    if len(commitment.coefficients) != threshold:
        raise InvalidInput(f"dealer {commitment.dealer} committed to {len(commitment.coefficients)} coefficients, not {threshold}")
    try:
        constant = Point.from_bytes(commitment.coefficients[0], "coefficient commitment")
        for encoded in commitment.coefficients[1:]:
            Point.from_bytes(encoded, "coefficient commitment")
        challenge = Scalar.from_bytes(commitment.proof_challenge, "possession challenge")
        response = Scalar.from_bytes(commitment.proof_response, "possession response")
        nonce_commitment = Point.base_times(response) - constant * challenge
    except InvalidInput:
        raise InvalidSignature(f"dealer {commitment.dealer}'s identity-key commitment is malformed") from None
    if _possession_challenge(context, commitment.dealer, commitment.coefficients[0], nonce_commitment.to_bytes()) != challenge:
        raise InvalidSignature(f"dealer {commitment.dealer} did not prove it knows its secret")


def check_share(commitment: DealerCommitment, index: int, share: Scalar) -> None:
    """Round two, private part: f_j(index)·B = Σ_k index^k·A_jk."""
    try:
        matches = Point.base_times(share) == _commitment_at(commitment, index)
    except InvalidInput:
        matches = False
    if not matches:
        raise InvalidSignature(f"dealer {commitment.dealer}'s share for keyholder {index} does not match its commitment")


@dataclass(frozen=True)
class IdentityKey:
    """The result every keyholder and the aggregator compute from the commitments: K and each
    keyholder's verification key X_l."""

    WIRE_NAME = "stagpack.IdentityKey.v1"

    threshold: int
    public_key: bytes  # K
    verification_keys: tuple[bytes, ...]  # X_1 … X_n

    @classmethod
    def combine(cls, context: bytes, commitments: Sequence[DealerCommitment], threshold: int) -> IdentityKey:
        size = len(commitments)
        if sorted(commitment.dealer for commitment in commitments) != list(range(1, size + 1)):
            raise InvalidInput("need exactly one commitment from each keyholder 1..n")
        for commitment in commitments:
            check_commitment(context, commitment, threshold)
        public = _sum(Point.from_bytes(commitment.coefficients[0]) for commitment in commitments)
        verification = tuple(
            _sum(_commitment_at(commitment, index) for commitment in commitments).to_bytes() for index in range(1, size + 1)
        )
        return cls(threshold, public.to_bytes(), verification)


def _sum(points: Iterable[Point]) -> Point:
    total: Point | None = None
    for point in points:
        total = point if total is None else total + point
    if total is None:
        raise InvalidInput("nothing to add")
    return total


def combine_shares(index: int, dealings: Sequence[Scalar]) -> Scalar:
    """x_l = Σ_j f_j(l): keyholder `index`'s secret share from every dealer's (checked) share."""
    total = Scalar.from_int(0)
    for share in dealings:
        total = total + share
    return total


@dataclass(frozen=True)
class DecryptionShare:
    """D_l = x_l·C₁, with a Chaum–Pedersen proof that log_B X_l = log_C₁ D_l."""

    WIRE_NAME = "stagpack.IdentityDecryptionShare.v1"

    keyholder: int
    share: bytes
    proof_challenge: bytes
    proof_response: bytes


def _equality_challenge(index: int, ephemeral: bytes, verification_key: bytes, share: bytes, first: bytes, second: bytes) -> Scalar:
    return hash_to_scalar("identity-decryption", index.to_bytes(4, "big"), ephemeral, verification_key, share, first, second)


def decryption_share(index: int, secret: Scalar, ciphertext: IdentityCiphertext) -> DecryptionShare:
    """Keyholder `index`'s share of one identity ciphertext, with its proof."""
    ephemeral = Point.from_bytes(ciphertext.ephemeral, "identity ciphertext")
    share = (ephemeral * secret).to_bytes()
    nonce = Scalar.random()
    first, second = Point.base_times(nonce).to_bytes(), (ephemeral * nonce).to_bytes()
    challenge = _equality_challenge(index, ciphertext.ephemeral, Point.base_times(secret).to_bytes(), share, first, second)
    return DecryptionShare(index, share, challenge.to_bytes(), (nonce + challenge * secret).to_bytes())


def check_decryption_share(key: IdentityKey, ciphertext: IdentityCiphertext, share: DecryptionShare) -> None:
    """Raise InvalidSignature unless the share is keyholder `share.keyholder`'s, proven correct."""
    if not 1 <= share.keyholder <= len(key.verification_keys):
        raise InvalidInput(f"no keyholder {share.keyholder} in the identity key")
    verification_key = key.verification_keys[share.keyholder - 1]
    try:
        ephemeral = Point.from_bytes(ciphertext.ephemeral, "identity ciphertext")
        shared = Point.from_bytes(share.share, "decryption share")
        challenge = Scalar.from_bytes(share.proof_challenge, "decryption proof")
        response = Scalar.from_bytes(share.proof_response, "decryption proof")
        first = Point.base_times(response) - Point.from_bytes(verification_key) * challenge
        second = ephemeral * response - shared * challenge
    except InvalidInput:
        raise InvalidSignature(f"keyholder {share.keyholder}'s decryption share is malformed") from None
    expected = _equality_challenge(share.keyholder, ciphertext.ephemeral, verification_key, share.share, first.to_bytes(), second.to_bytes())
    if expected != challenge:
        raise InvalidSignature(f"keyholder {share.keyholder}'s decryption share does not verify")


def decrypt(key: IdentityKey, ciphertext: IdentityCiphertext, shares: Sequence[DecryptionShare]) -> bytes:
    """The encrypted key P from t proven shares (each checked here; duplicates refused)."""
    chosen = _choose(key, shares)
    for share in chosen:
        check_decryption_share(key, ciphertext, share)
    return combine(key, ciphertext, chosen)


def combine(key: IdentityKey, ciphertext: IdentityCiphertext, shares: Sequence[DecryptionShare]) -> bytes:
    """P = C₂ − Σ λ_l·D_l from t shares the caller has already checked one by one
    (`check_decryption_share`); duplicates and too few refused."""
    chosen = _choose(key, shares)
    used = [share.keyholder for share in chosen]
    combined = _sum(Point.from_bytes(share.share) * lagrange_at_zero(share.keyholder, used) for share in chosen)
    try:
        return (Point.from_bytes(ciphertext.masked, "identity ciphertext") - combined).to_bytes()
    except InvalidInput:
        raise InvalidInput("the identity ciphertext decrypts to no key") from None


def _choose(key: IdentityKey, shares: Sequence[DecryptionShare]) -> list[DecryptionShare]:
    indices = [share.keyholder for share in shares]
    if len(set(indices)) != len(indices):
        raise InvalidInput("a keyholder's decryption share is given twice")
    if len(shares) < key.threshold:
        raise InvalidInput(f"{key.threshold} decryption shares are needed, got {len(shares)}")
    return list(shares)[: key.threshold]
