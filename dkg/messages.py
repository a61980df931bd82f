"""Records exchanged in the key-generation ceremony, and the transcript it produces.

All are frozen dataclasses with a canonical encoding (`stagpack.codec`): the same bytes are
hashed, signed, stored and sent. Key material travels as OpenFHE's own serialized bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stagpack import codec
from stagpack.errors import InvalidInput
from stagpack.identity import digest, verify_signature


@dataclass(frozen=True)
class Participant:
    index: int  # 1-based position in the public-key chain
    name: str
    verify_key: bytes  # Ed25519
    box_key: bytes  # X25519


@dataclass(frozen=True)
class CeremonyPlan:
    """Round 0: who takes part, in which order, with which parameters."""

    ceremony_id: bytes
    parameters: bytes  # FheParameters.to_bytes()
    parties: int
    threshold: int
    participants: tuple[Participant, ...]


@dataclass(frozen=True)
class ChainRequest:
    """Round 1 (sequential): extend the public-key chain; `previous` is None for party 1."""

    ceremony_id: bytes
    previous: bytes | None


@dataclass(frozen=True)
class ChainResponse:
    ceremony_id: bytes
    index: int
    public_key: bytes


@dataclass(frozen=True)
class RoundOneRequest:
    """Round 2: relinearization round one and rotation keys. The lead (party 1) is asked first
    with no lead shares; the others then join the lead's."""

    ceremony_id: bytes
    chain: tuple[bytes, ...]  # every party's chain output, in order; the last is the joint key
    lead_relinearization: bytes | None
    lead_rotation: bytes | None


@dataclass(frozen=True)
class RoundOneResponse:
    ceremony_id: bytes
    index: int
    relinearization: bytes
    rotation: bytes


@dataclass(frozen=True)
class RoundTwoRequest:
    """Round 3: every party's round-one shares; each party combines them itself."""

    ceremony_id: bytes
    relinearization: tuple[bytes, ...]
    rotation: tuple[bytes, ...]


@dataclass(frozen=True)
class RoundTwoResponse:
    ceremony_id: bytes
    index: int
    relinearization: bytes


@dataclass(frozen=True)
class FinalizeRequest:
    """Round 4: every party's round-two shares; each party builds the joint evaluation keys."""

    ceremony_id: bytes
    relinearization: tuple[bytes, ...]


@dataclass(frozen=True)
class FinalizeResponse:
    ceremony_id: bytes
    index: int
    evaluation_keys: bytes  # digest over all published shares


@dataclass(frozen=True)
class BackupBox:
    """One Shamir share of `sender`'s key share, sealed to `recipient` with NaCl Box."""

    sender: int
    recipient: int
    sealed: bytes


@dataclass(frozen=True)
class BackupRequest:
    """Round 5 (t < n only): Shamir-share your key share to the others."""

    ceremony_id: bytes


@dataclass(frozen=True)
class BackupResponse:
    ceremony_id: bytes
    index: int
    boxes: tuple[BackupBox, ...]


@dataclass(frozen=True)
class DeliverBackupsRequest:
    """Round 6 (t < n only): the boxes addressed to you, one from every other party."""

    ceremony_id: bytes
    boxes: tuple[BackupBox, ...]


@dataclass(frozen=True)
class Acknowledgement:
    ceremony_id: bytes
    index: int


@dataclass(frozen=True)
class SelfTestRequest:
    """Round 7: evaluate the self-test circuit on vectors derived from the ceremony id and
    partially decrypt it for each listed quorum (the full committee, and for t < n one quorum
    without each party)."""

    ceremony_id: bytes
    test_ciphertexts: tuple[bytes, ...]
    quorums: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class QuorumPartials:
    members: tuple[int, ...]
    producer: int
    on_behalf_of: tuple[int, ...]
    partials: tuple[bytes, ...]


@dataclass(frozen=True)
class SelfTestResponse:
    ceremony_id: bytes
    index: int
    partials: tuple[QuorumPartials, ...]


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
class SignRequest:
    """Round 8: check the transcript body (and the self-test partials) and sign it."""

    body: TranscriptBody
    self_test: tuple[QuorumPartials, ...]


@dataclass(frozen=True)
class TranscriptSignature:
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
class CompleteRequest:
    """Round 9: the transcript with every signature; keyholders start serving after this."""

    transcript: Transcript
    joint_public_key: bytes
