"""Records of a decryption session between the aggregator and the keyholders.

A session is one hunt check (per stag and epoch) or one validation batch (per stag and batch
number). Its rounds, for each keyholder:

    open   → SignedCommitment   fresh masks generated and committed (hash first)
    reveal → MaskReveal         masks revealed once every commitment is fixed
    decrypt (step) → partials   each step recomputed by the keyholder from its own replica
    certify → signature         over the outcome the keyholder fused itself

Which step may follow which is `stagpack.decrypt.steps` (the one step graph). Every partial is
signed with the session, step, quorum and the digest of the ciphertext it decrypts, so partials
from different sessions, steps or quorums cannot be mixed, and any keyholder can re-fuse a
previous step's partials to check what it revealed. Each step is decrypted by a family of
quorums whose facts must agree (see `stagpack.decrypt.quorum`).

`SESSION_CALLS` is the table of the four verbs; every transport is driven from it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from stagpack import codec
from stagpack.calls import Call
from stagpack.identity import digest
from stagpack.shield.elgamal import DecryptionShare


class SessionKind(str, enum.Enum):
    HUNT = "hunt"
    VALIDATION = "validation"


class Step(str, enum.Enum):
    NOISE = "noise"  # everything the session uses that a party chose: is its noise bounded?
    NOISE_EACH = "noise-each"  # after a failed NOISE: each contributor's masks and pads alone
    INPUT_NOISE = "input-noise"  # after a failed NOISE: the validation batch's intendos alone
    CHECK = "check"
    CONFIRM = "confirm"
    MEMBERSHIP = "membership"
    BATCH = "batch"
    EACH = "each"


class Committed(enum.IntEnum):
    """The ciphertexts each keyholder commits to when a session opens, in order. Every one is
    a fresh encryption of a vector uniform in Z_p, at the input level."""

    FIRST_MASK = 0  # hunt: the check's mask; validation: the batch check's
    SECOND_MASK = 1  # hunt: the confirmation's; validation: the per-intendo check's
    PAD = 2  # pads the noise test of this keyholder's own masks
    INPUT_PAD = 3  # validation only: with the other contributors', pads the intendos' noise test


def committed_count(kind: SessionKind) -> int:
    """How many ciphertexts each keyholder commits to in a session of `kind`."""
    return 3 if kind is SessionKind.HUNT else 4


@dataclass(frozen=True)
class SessionRef:
    """Which session, and the log position (height, head digest) it evaluates."""

    WIRE_NAME = "stagpack.SessionRef.v1"

    stag_id: bytes
    kind: SessionKind
    number: int  # the epoch (hunt) or batch number (validation)
    height: int
    head: bytes

    @property
    def session_id(self) -> bytes:
        return digest("session", self.stag_id, self.kind.value.encode(), self.number.to_bytes(8, "big"))

    def describe(self) -> str:
        return f"{self.kind.value} {self.number} of stag {self.stag_id.hex()[:12]} at height {self.height}"


@dataclass(frozen=True)
class MaskCommitment:
    WIRE_NAME = "stagpack.MaskCommitment.v1"

    session: SessionRef
    keyholder: int
    masks: tuple[bytes, ...]  # SHA-256 of each mask ciphertext


@dataclass(frozen=True)
class SignedCommitment:
    WIRE_NAME = "SignedCommitment"

    commitment: MaskCommitment
    signature: bytes

    def message(self) -> bytes:
        return codec.encode(self.commitment)


@dataclass(frozen=True)
class RevealRequest:
    WIRE_NAME = "RevealRequest"

    session: SessionRef
    commitments: tuple[SignedCommitment, ...]


@dataclass(frozen=True)
class MaskReveal:
    WIRE_NAME = "MaskReveal"

    keyholder: int
    masks: tuple[bytes, ...]  # the mask ciphertexts


@dataclass(frozen=True)
class PartialStatement:
    WIRE_NAME = "stagpack.PartialStatement.v1"

    session: SessionRef
    step: Step
    item: int  # which ciphertext of the step (0: every step decrypts one ciphertext today)
    quorum: tuple[int, ...]  # the stand-in's quorum; () for the producer's own partial
    producer: int
    on_behalf_of: int
    ciphertext: bytes  # digest of the decrypted ciphertext
    partial: bytes  # digest of the partial decryption bytes


@dataclass(frozen=True)
class SignedPartial:
    WIRE_NAME = "SignedPartial"

    statement: PartialStatement
    signature: bytes
    data: bytes  # the partial decryption


@dataclass(frozen=True)
class DecryptRequest:
    WIRE_NAME = "DecryptRequest"

    session: SessionRef
    step: Step
    quorums: tuple[tuple[int, ...], ...]  # the family of quorums (decrypt.quorum_family)
    commitments: tuple[SignedCommitment, ...]
    reveals: tuple[MaskReveal, ...]
    prior: tuple[SignedPartial, ...]  # complete partial sets of every earlier step
    claimed: tuple[bytes, ...]  # digests of the ciphertexts the aggregator computed


@dataclass(frozen=True)
class DecryptResponse:
    WIRE_NAME = "DecryptResponse"

    partials: tuple[SignedPartial, ...]


@dataclass(frozen=True)
class CertifyRequest:
    WIRE_NAME = "CertifyRequest"

    session: SessionRef
    commitments: tuple[SignedCommitment, ...]
    reveals: tuple[MaskReveal, ...]
    prior: tuple[SignedPartial, ...]  # complete partial sets of every step of the session
    outcome: bytes  # the encoded HuntOutcome or ValidationOutcome the aggregator fused


@dataclass(frozen=True)
class CertifyResponse:
    WIRE_NAME = "stagpack.CertifyResponse.v2"

    keyholder: int
    signature: bytes
    attestation: bytes = b""  # a hunt's: the keyholder's secp256k1 signature of its chain facts
    identity_shares: tuple[DecryptionShare, ...] = ()  # an anonymous stag's hunt: one per member, in order


OPEN_SESSION = Call("open_session", "OpenSession", SessionRef, SignedCommitment)
REVEAL_MASKS = Call("reveal", "RevealMasks", RevealRequest, MaskReveal)
DECRYPT = Call("decrypt", "Decrypt", DecryptRequest, DecryptResponse)
CERTIFY = Call("certify", "Certify", CertifyRequest, CertifyResponse)
SESSION_CALLS: tuple[Call[Any, Any], ...] = (OPEN_SESSION, REVEAL_MASKS, DECRYPT, CERTIFY)
