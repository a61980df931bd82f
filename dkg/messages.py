"""Records exchanged in the key-generation ceremony, and the transcript it produces.

All are frozen dataclasses with a canonical encoding (`stagpack.codec`): the same bytes are
hashed, signed, stored and sent. Key material travels as OpenFHE's own serialized bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stagpack.committee import Participant, Transcript, TranscriptBody, TranscriptSignature
from stagpack.shield.elgamal import DealerCommitment


@dataclass(frozen=True)
class CeremonyPlan:
    """Round 0: who takes part, in which order, with which parameters."""

    WIRE_NAME = "stagpack.CeremonyPlan.v2"

    ceremony_id: bytes
    parameters: bytes  # FheParameters.to_bytes()
    parties: int
    threshold: int
    fault_bound: int
    noise_test: bool
    participants: tuple[Participant, ...]
    coordinator_key: bytes
    aggregator_key: bytes


@dataclass(frozen=True)
class BackupBox:
    """A share sealed by `sender` to `recipient` with NaCl Box: a Shamir share of its FHE key
    share (backup round) or of its identity-key polynomial (round one)."""

    WIRE_NAME = "BackupBox"

    sender: int
    recipient: int
    sealed: bytes


@dataclass(frozen=True)
class ChainRequest:
    """Round 1 (sequential): extend the public-key chain; `previous` is None for party 1."""

    WIRE_NAME = "ChainRequest"

    ceremony_id: bytes
    previous: bytes | None


@dataclass(frozen=True)
class ChainResponse:
    WIRE_NAME = "ChainResponse"

    ceremony_id: bytes
    index: int
    public_key: bytes


@dataclass(frozen=True)
class RoundOneRequest:
    """Round 2: relinearization round one and rotation keys. The lead (party 1) is asked first
    with no lead shares; the others then join the lead's."""

    WIRE_NAME = "RoundOneRequest"

    ceremony_id: bytes
    chain: tuple[bytes, ...]  # every party's chain output, in order; the last is the joint key
    lead_relinearization: bytes | None
    lead_rotation: bytes | None


@dataclass(frozen=True)
class RoundOneResponse:
    """Also the keyholder's dealing of the committee's identity key (`stagpack.shield.elgamal`,
    round one): its public coefficient commitments and one share sealed to each other keyholder."""

    WIRE_NAME = "stagpack.RoundOneResponse.v2"

    ceremony_id: bytes
    index: int
    relinearization: bytes
    rotation: bytes
    identity_commitment: DealerCommitment
    identity_boxes: tuple[BackupBox, ...]


@dataclass(frozen=True)
class RoundTwoRequest:
    """Round 3: every party's round-one shares; each party combines them itself."""

    WIRE_NAME = "stagpack.RoundTwoRequest.v2"

    ceremony_id: bytes
    relinearization: tuple[bytes, ...]
    rotation: tuple[bytes, ...]
    identity_commitments: tuple[DealerCommitment, ...]  # every keyholder's, in order
    identity_boxes: tuple[BackupBox, ...]  # the identity-key shares sealed to this keyholder, one per other dealer


@dataclass(frozen=True)
class RoundTwoResponse:
    WIRE_NAME = "RoundTwoResponse"

    ceremony_id: bytes
    index: int
    relinearization: bytes


@dataclass(frozen=True)
class FinalizeRequest:
    """Round 4: every party's round-two shares; each party builds the joint evaluation keys."""

    WIRE_NAME = "FinalizeRequest"

    ceremony_id: bytes
    relinearization: tuple[bytes, ...]


@dataclass(frozen=True)
class FinalizeResponse:
    WIRE_NAME = "FinalizeResponse"

    ceremony_id: bytes
    index: int
    evaluation_keys: bytes  # digest over all published shares


@dataclass(frozen=True)
class BackupRequest:
    """Round 5 (t < n only): Shamir-share your key share to the others."""

    WIRE_NAME = "BackupRequest"

    ceremony_id: bytes


@dataclass(frozen=True)
class BackupResponse:
    WIRE_NAME = "BackupResponse"

    ceremony_id: bytes
    index: int
    boxes: tuple[BackupBox, ...]


@dataclass(frozen=True)
class DeliverBackupsRequest:
    """Round 6 (t < n only): the boxes addressed to you, one from every other party."""

    WIRE_NAME = "DeliverBackupsRequest"

    ceremony_id: bytes
    boxes: tuple[BackupBox, ...]


@dataclass(frozen=True)
class Acknowledgement:
    WIRE_NAME = "Acknowledgement"

    ceremony_id: bytes
    index: int


@dataclass(frozen=True)
class SelfTestRequest:
    """Round 7: encrypt two secret test vectors on your region under the final joint key."""

    WIRE_NAME = "stagpack.SelfTestRequest.v2"

    ceremony_id: bytes


@dataclass(frozen=True)
class SelfTestCiphertexts:
    WIRE_NAME = "stagpack.SelfTestCiphertexts.v1"

    ceremony_id: bytes
    index: int
    ciphertexts: tuple[bytes, ...]  # two input-level ciphertexts under the joint key


@dataclass(frozen=True)
class SelfTestCommitRequest:
    """Round 8: every keyholder's test ciphertexts; evaluate, partially decrypt for every
    self-test quorum, and commit to the partials."""

    WIRE_NAME = "stagpack.SelfTestCommitRequest.v1"

    ceremony_id: bytes
    ciphertexts: tuple[SelfTestCiphertexts, ...]


@dataclass(frozen=True)
class SelfTestCommitment:
    WIRE_NAME = "stagpack.SelfTestCommitment.v1"

    ceremony_id: bytes
    index: int
    digest: bytes


@dataclass(frozen=True)
class SelfTestRevealRequest:
    """Round 9: every keyholder's commitment; reveal the partials committed to."""

    WIRE_NAME = "stagpack.SelfTestRevealRequest.v1"

    ceremony_id: bytes
    commitments: tuple[SelfTestCommitment, ...]


@dataclass(frozen=True)
class QuorumPartials:
    WIRE_NAME = "QuorumPartials"

    members: tuple[int, ...]
    producer: int
    on_behalf_of: tuple[int, ...]
    partials: tuple[bytes, ...]


@dataclass(frozen=True)
class SelfTestResponse:
    WIRE_NAME = "SelfTestResponse"

    ceremony_id: bytes
    index: int
    partials: tuple[QuorumPartials, ...]


@dataclass(frozen=True)
class SignRequest:
    """Round 8: check the transcript body (and the self-test partials) and sign it."""

    WIRE_NAME = "SignRequest"

    body: TranscriptBody
    self_test: tuple[QuorumPartials, ...]


@dataclass(frozen=True)
class CompleteRequest:
    """Round 9: the transcript with every signature; keyholders start serving after this."""

    WIRE_NAME = "CompleteRequest"

    transcript: Transcript
    joint_public_key: bytes
