"""Designated-verifier proofs: "I signed this intendo", convincing to the named verifiers only.

The construction is Jakobsson–Sako–Impagliazzo's, made non-interactive: a Fiat–Shamir OR-proof
of two statements over the Ed25519 group,

    (signer)     I know x with  P = x·B            (and I = x·Hp(stag, P) for an anonymous intendo)
    (verifiers)  I know v₁ … v_k with  V_j = v_j·B  for every designated verifier j.

The prover knows x and proves the first branch; it simulates the second by choosing its
challenge and responses first. The challenges must add up to

    c = H("dvp", statement, R_signer…, R_verifier…)

where `statement` binds the context string, the stag, the intendo id, the signer's key (and key
image), every verifier key and the claimed threshold text. A verifier that did not make the
proof knows it came from the signer; anyone else does not, because the verifiers together could
have made it (`forge`, which runs the same equations with the roles swapped). With several
verifiers each is convinced unless *all* of them colluded to forge it. A proof is 32·(3 + k)
bytes for k verifiers.

The claimed threshold is bound to the proof but **not proven**: the intendo's threshold is
encrypted, and nothing here opens it. A verifier learns only that the signer chose to say it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stagpack import codec
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.shield.group import BASE, Point, Scalar, hash_to_point, hash_to_scalar

MAX_VERIFIERS = 16
MAX_CLAIM_LENGTH = 200
CONTEXT = "stagpack signed-intendo proof"


def key_image_base(stag_id: bytes, signer: bytes) -> Point:
    """Hp(stag, P): the base of a signer's key image in one stag (DESIGN.md §10.5)."""
    return hash_to_point("key-image", stag_id, signer)


@dataclass(frozen=True)
class SignedIntendoClaim:
    """What a designated-verifier proof is about. `key_image` is empty for an ordinary intendo
    (the envelope names the signer) and the signer's key image for an anonymous one."""

    WIRE_NAME = "stagpack.SignedIntendoClaim.v1"

    context: str
    stag_id: bytes
    intendo_id: bytes
    signer: bytes
    key_image: bytes
    verifiers: tuple[bytes, ...]
    claimed_threshold: str  # free text the signer chose to add; bound, NOT proven

    def check(self) -> None:
        if self.context != CONTEXT:
            raise InvalidInput(f"not a signed-intendo claim (context {self.context!r})")
        if len(self.stag_id) != 32 or len(self.intendo_id) != 32:
            raise InvalidInput("stag id and intendo id must be 32 bytes")
        Point.from_bytes(self.signer, "signer key")
        if self.key_image:
            Point.from_bytes(self.key_image, "key image")
        if not 1 <= len(self.verifiers) <= MAX_VERIFIERS:
            raise InvalidInput(f"a proof names 1 to {MAX_VERIFIERS} verifiers")
        if len(set(self.verifiers)) != len(self.verifiers):
            raise InvalidInput("a verifier is named twice")
        for verifier in self.verifiers:
            Point.from_bytes(verifier, "verifier key")
        if self.signer in self.verifiers:
            raise InvalidInput("the signer cannot be one of its own designated verifiers")
        if len(self.claimed_threshold) > MAX_CLAIM_LENGTH:
            raise InvalidInput(f"the claimed threshold text is at most {MAX_CLAIM_LENGTH} characters")

    def signer_relation(self) -> list[tuple[Point, Point]]:
        """(base, public point) pairs sharing the signer's secret x."""
        signer = Point.from_bytes(self.signer, "signer key")
        pairs = [(BASE, signer)]
        if self.key_image:
            pairs.append((key_image_base(self.stag_id, self.signer), Point.from_bytes(self.key_image, "key image")))
        return pairs


@dataclass(frozen=True)
class DesignatedProof:
    WIRE_NAME = "stagpack.DesignatedProof.v1"

    signer_challenge: bytes
    verifier_challenge: bytes
    signer_response: bytes
    verifier_responses: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return 32 * (3 + len(self.verifier_responses))


def _challenge(claim: SignedIntendoClaim, signer_commitments: list[Point], verifier_commitments: list[Point]) -> Scalar:
    return hash_to_scalar(
        "dvp", codec.encode(claim), *(point.to_bytes() for point in signer_commitments + verifier_commitments)
    )


def prove(claim: SignedIntendoClaim, signer_secret: Scalar) -> DesignatedProof:
    """The signer's proof: it knows x for the signer branch and simulates the verifiers'."""
    claim.check()
    pairs = claim.signer_relation()
    if any(base * signer_secret != public for base, public in pairs):
        raise InvalidInput("the secret does not match the signer key (or key image) of the claim")
    verifiers = [Point.from_bytes(key) for key in claim.verifiers]
    nonce = Scalar.random()
    signer_commitments = [base * nonce for base, _ in pairs]
    verifier_challenge = Scalar.random()
    verifier_responses = [Scalar.random() for _ in verifiers]
    verifier_commitments = [
        Point.base_times(response) - key * verifier_challenge for response, key in zip(verifier_responses, verifiers)
    ]
    signer_challenge = _challenge(claim, signer_commitments, verifier_commitments) - verifier_challenge
    signer_response = nonce + signer_challenge * signer_secret
    return DesignatedProof(
        signer_challenge.to_bytes(), verifier_challenge.to_bytes(), signer_response.to_bytes(),
        tuple(response.to_bytes() for response in verifier_responses),
    )


def forge(claim: SignedIntendoClaim, verifier_secrets: list[Scalar]) -> DesignatedProof:
    """The same proof made by the designated verifiers together, without the signer's key: they
    simulate the signer branch and prove their own. `verify` accepts it exactly as it accepts
    `prove`'s, which is why a verifier cannot convince anyone else with a proof it was shown."""
    claim.check()
    verifiers = [Point.from_bytes(key) for key in claim.verifiers]
    if len(verifier_secrets) != len(verifiers) or any(
        Point.base_times(secret) != key for secret, key in zip(verifier_secrets, verifiers)
    ):
        raise InvalidInput("forging takes the secret of every designated verifier, in the claim's order")
    pairs = claim.signer_relation()
    signer_challenge = Scalar.random()
    signer_response = Scalar.random()
    signer_commitments = [base * signer_response - public * signer_challenge for base, public in pairs]
    nonces = [Scalar.random() for _ in verifiers]
    verifier_commitments = [Point.base_times(nonce) for nonce in nonces]
    verifier_challenge = _challenge(claim, signer_commitments, verifier_commitments) - signer_challenge
    responses = [nonce + verifier_challenge * secret for nonce, secret in zip(nonces, verifier_secrets)]
    return DesignatedProof(
        signer_challenge.to_bytes(), verifier_challenge.to_bytes(), signer_response.to_bytes(),
        tuple(response.to_bytes() for response in responses),
    )


def verify(claim: SignedIntendoClaim, proof: DesignatedProof) -> None:
    """Raise InvalidSignature unless the proof verifies for the claim. (Whether it *convinces*
    depends on who checks: a designated verifier that did not forge it.)"""
    claim.check()
    if len(proof.verifier_responses) != len(claim.verifiers):
        raise InvalidSignature("the proof answers for a different number of verifiers")
    try:
        signer_challenge = Scalar.from_bytes(proof.signer_challenge, "signer challenge")
        verifier_challenge = Scalar.from_bytes(proof.verifier_challenge, "verifier challenge")
        signer_response = Scalar.from_bytes(proof.signer_response, "signer response")
        responses = [Scalar.from_bytes(response, "verifier response") for response in proof.verifier_responses]
        signer_commitments = [
            base * signer_response - public * signer_challenge for base, public in claim.signer_relation()
        ]
        verifier_commitments = [
            Point.base_times(response) - Point.from_bytes(key) * verifier_challenge
            for response, key in zip(responses, claim.verifiers)
        ]
    except InvalidInput:
        raise InvalidSignature("the designated-verifier proof is malformed") from None
    if signer_challenge + verifier_challenge != _challenge(claim, signer_commitments, verifier_commitments):
        raise InvalidSignature("the designated-verifier proof does not verify")
