"""The committee: the signed transcript of its key ceremony, and the public facts about it that
every verifier needs (who the keyholders are, t of n, their signing keys).

A transcript's body is what every keyholder attests to at the end of the ceremony
(`stagpack.dkg`); its digest identifies the committee, and stags, certificates and clients all
name the committee by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from stagpack import codec
from stagpack.attestation import check_address, check_attestations
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.identity import digest, verify_signature
from stagpack.shield.elgamal import IdentityKey


@dataclass(frozen=True)
class Participant:
    WIRE_NAME = "Participant"

    index: int  # 1-based position in the public-key chain
    name: str
    verify_key: bytes  # Ed25519
    box_key: bytes  # X25519
    chain_address: bytes  # secp256k1: the EVM address its hunt attestations recover to (stagpack.attestation)


@dataclass(frozen=True)
class TranscriptBody:
    """What every keyholder attests to. Its digest identifies the committee."""

    WIRE_NAME = "stagpack.TranscriptBody.v3"

    ceremony_id: bytes
    parameters: bytes
    parties: int
    threshold: int
    fault_bound: int  # f: the keyholders that may be malicious (DESIGN.md §1); steps need t + f
    noise_test: bool  # False only in benchmarks that measure the attacks it stops
    participants: tuple[Participant, ...]
    coordinator_key: bytes  # Ed25519 key that ran the ceremony (and may run another)
    aggregator_key: bytes  # Ed25519 key of the one aggregator keyholders serve sessions to
    chain: tuple[bytes, ...]  # digests of each party's chain output
    joint_public_key: bytes  # digest of the joint public key bytes
    evaluation_keys: bytes  # digest over every published evaluation-key share
    rotation_steps: tuple[int, ...]
    self_test: bytes  # digest of every keyholder's self-test ciphertexts and the quorums tested
    identity_key: IdentityKey  # threshold ElGamal key anonymous intendos encrypt their signer to (stagpack.shield)

    def digest(self) -> bytes:
        return digest("committee", codec.encode(self))


@dataclass(frozen=True)
class TranscriptSignature:
    WIRE_NAME = "TranscriptSignature"

    index: int
    signature: bytes


@dataclass(frozen=True)
class Transcript:
    """The signed outcome of a ceremony."""

    WIRE_NAME = "stagpack.Transcript.v1"

    body: TranscriptBody
    signatures: tuple[TranscriptSignature, ...]

    @property
    def committee_id(self) -> bytes:
        return self.body.digest()

    def participant(self, index: int) -> Participant:
        for participant in self.body.participants:
            if participant.index == index:
                return participant
        raise InvalidInput(f"no keyholder {index} in this committee")

    def verify(self) -> None:
        """Every participant has signed the body exactly once."""
        body = self.body
        if sorted(participant.index for participant in body.participants) != list(range(1, body.parties + 1)):
            raise InvalidInput("transcript participants are not exactly keyholders 1..n")
        addresses = [check_address(participant.chain_address, "a keyholder's chain address") for participant in body.participants]
        if len(set(addresses)) != len(addresses):
            raise InvalidInput("two keyholders register the same chain address")
        signed = {}
        for signature in self.signatures:
            if signature.index in signed:
                raise InvalidInput(f"keyholder {signature.index} signed the transcript twice")
            participant = self.participant(signature.index)
            verify_signature(participant.verify_key, "transcript", self.committee_id, signature.signature)
            signed[signature.index] = True
        if len(signed) != body.parties:
            raise InvalidInput(f"transcript carries {len(signed)} of {body.parties} keyholder signatures")
        identity = body.identity_key
        if identity.threshold != body.threshold or len(identity.verification_keys) != body.parties:
            raise InvalidInput("the identity key is not a t-of-n key of this committee")

    def to_bytes(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Transcript:
        return codec.decode(cls, data)


@dataclass(frozen=True)
class KeyholderSignature:
    WIRE_NAME = "KeyholderSignature"

    index: int
    signature: bytes


@dataclass(frozen=True)
class CommitteeInfo:
    """The public facts about a committee that verifiers need."""

    committee_id: bytes
    parties: int
    threshold: int
    fault_bound: int
    noise_test: bool
    verify_keys: tuple[bytes, ...]  # index i+1 -> verify_keys[i]
    aggregator_key: bytes
    coordinator_key: bytes
    chain_addresses: tuple[bytes, ...]  # index i+1 -> its attestation key's EVM address
    identity_key: IdentityKey | None = None  # None only for committees built by hand in tests

    @classmethod
    def from_transcript(cls, transcript: Transcript) -> CommitteeInfo:
        body = transcript.body
        participants = sorted(body.participants, key=lambda p: p.index)
        return cls(
            transcript.committee_id, body.parties, body.threshold, body.fault_bound, body.noise_test,
            tuple(participant.verify_key for participant in participants), body.aggregator_key, body.coordinator_key,
            tuple(participant.chain_address for participant in participants), body.identity_key,
        )

    @property
    def decrypting(self) -> int:
        """t + f: the keyholders a step needs, so that for every f of them a quorum without
        them cross-checks the rest (DESIGN.md §4)."""
        return self.threshold + self.fault_bound

    def require_identity_key(self) -> IdentityKey:
        if self.identity_key is None:
            raise InvalidInput("this committee has no identity key: it cannot serve anonymous stags")
        return self.identity_key

    def verify_key(self, index: int) -> bytes:
        if not 1 <= index <= self.parties:
            raise InvalidInput(f"there is no keyholder {index} in this committee")
        return self.verify_keys[index - 1]

    def check_quorum_signatures(self, domain: str, message: bytes, signatures: Sequence[KeyholderSignature]) -> None:
        """At least t distinct keyholders signed `message`; every listed signature verifies."""
        seen: set[int] = set()
        for signature in signatures:
            if signature.index in seen:
                raise InvalidSignature(f"keyholder {signature.index} appears twice among the {domain} signatures")
            verify_signature(self.verify_key(signature.index), domain, message, signature.signature)
            seen.add(signature.index)
        if len(seen) < self.threshold:
            raise InvalidSignature(f"{domain}: {len(seen)} keyholder signatures, {self.threshold} needed")

    def check_attestations(self, digest: bytes, attestations: Sequence[KeyholderSignature]) -> None:
        """At least t distinct keyholders attested `digest` with their registered secp256k1
        keys (`stagpack.attestation`); every listed attestation recovers to its keyholder."""
        check_attestations(self.chain_addresses, self.threshold, digest, [(a.index, a.signature) for a in attestations])


def default_fault_bound(parties: int, threshold: int) -> int:
    """f = 1 where the committee has a keyholder to spare (n > t), else 0."""
    return min(1, parties - threshold)


def check_committee_shape(parties: int, threshold: int, fault_bound: int, max_fused_partials: int) -> None:
    """Raise unless n, t and f make a committee this code can run: t > n/2 for t-of-n (OpenFHE's
    Shamir recovery), 0 ≤ f ≤ n − t, and every fusion within the flooding's budget of partials
    (one lead term, t own partials and t stand-ins for each of the n − t absent keyholders)."""
    if not 1 <= parties <= 64:
        raise InvalidInput(f"a committee has 1..64 keyholders, not {parties}")
    if not 1 <= threshold <= parties:
        raise InvalidInput(f"threshold must be in 1..{parties}")
    if threshold < parties and 2 * threshold <= parties:
        raise InvalidInput("t-of-n needs t > n/2 (OpenFHE's Shamir recovery enforces a majority)")
    if not 0 <= fault_bound <= parties - threshold:
        raise InvalidInput(f"the fault bound f must be in 0..n−t = 0..{parties - threshold} (steps need t + f keyholders)")
    fused = 1 + threshold + threshold * (parties - threshold)
    if fused > max_fused_partials + 1:
        raise InvalidInput(
            f"a {threshold}-of-{parties} fusion combines {fused} partials; the FHE parameters allow "
            f"{max_fused_partials} plus the lead term"
        )
