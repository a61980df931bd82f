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
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.identity import digest, verify_signature


@dataclass(frozen=True)
class Participant:
    WIRE_NAME = "Participant"

    index: int  # 1-based position in the public-key chain
    name: str
    verify_key: bytes  # Ed25519
    box_key: bytes  # X25519


@dataclass(frozen=True)
class TranscriptBody:
    """What every keyholder attests to. Its digest identifies the committee."""

    WIRE_NAME = "stagpack.TranscriptBody.v1"

    ceremony_id: bytes
    parameters: bytes
    parties: int
    threshold: int
    participants: tuple[Participant, ...]
    chain: tuple[bytes, ...]  # digests of each party's chain output
    joint_public_key: bytes  # digest of the joint public key bytes
    evaluation_keys: bytes  # digest over every published evaluation-key share
    rotation_steps: tuple[int, ...]
    self_test: bytes  # digest of the self-test vectors that decrypted correctly

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
        signed = {}
        for signature in self.signatures:
            if signature.index in signed:
                raise InvalidInput(f"keyholder {signature.index} signed the transcript twice")
            participant = self.participant(signature.index)
            verify_signature(participant.verify_key, "transcript", self.committee_id, signature.signature)
            signed[signature.index] = True
        if len(signed) != body.parties:
            raise InvalidInput(f"transcript carries {len(signed)} of {body.parties} keyholder signatures")

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
    verify_keys: tuple[bytes, ...]  # index i+1 -> verify_keys[i]

    @classmethod
    def from_transcript(cls, transcript: Transcript) -> CommitteeInfo:
        body = transcript.body
        keys = tuple(participant.verify_key for participant in sorted(body.participants, key=lambda p: p.index))
        return cls(transcript.committee_id, body.parties, body.threshold, keys)

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
