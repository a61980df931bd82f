"""A stag's log: hash-chained entries, and the certificates keyholders sign into it.

The aggregator orders each stag's log; every keyholder replicates it and checks every entry
(`stagpack.pack.PackState.apply`). Entries carry their body as canonical bytes; ciphertexts
travel beside the log and are pinned by the digest inside the signed envelope.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AbstractSet, Sequence, TypeVar

from stagpack import codec
from stagpack.accounts import Account
from stagpack.attestation import ZERO32, HuntFacts, account_key
from stagpack.encoding import StagKind
from stagpack.committee import CommitteeInfo, KeyholderSignature, Transcript
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.identity import digest, verify_signature
from stagpack.shield import elgamal
from stagpack.shield.elgamal import DecryptionShare
from stagpack.shield.ring import ring_of
from stagpack.stag import StagSpec

GENESIS_PREVIOUS = bytes(32)


class EntryKind(str, enum.Enum):
    GENESIS = "genesis"
    SUBMISSION = "submission"
    WITHDRAWAL = "withdrawal"
    VALIDATION = "validation"
    HUNT = "hunt"
    VOID = "void"
    SETTLEMENT = "settlement"
    TRIGGER = "trigger"


@dataclass(frozen=True)
class LogEntry:
    WIRE_NAME = "stagpack.LogEntry.v1"

    stag_id: bytes
    height: int
    previous: bytes  # digest of the entry at height - 1 (zeros for the genesis)
    accepted_at_millis: int
    kind: EntryKind
    body: bytes

    def digest(self) -> bytes:
        return digest("log-entry", codec.encode(self))


@dataclass(frozen=True)
class LogRange:
    """Entries (after_height, up_to_height] of a stag's log: what a replica asks for (and signs
    its credential over)."""

    WIRE_NAME = "stagpack.LogRange.v1"

    stag_id: bytes
    after_height: int
    up_to_height: int


@dataclass(frozen=True)
class ValidationOutcome:
    """Which intendos of a validation batch are well-formed (DESIGN.md §7)."""

    WIRE_NAME = "stagpack.ValidationOutcome.v2"

    stag_id: bytes
    batch: int
    height: int
    head: bytes
    valid: tuple[bytes, ...]
    invalid: tuple[bytes, ...]
    deferred: tuple[bytes, ...]  # a batch whose noise test failed: each is tested alone next

    def digest(self) -> bytes:
        return digest("validation-outcome", codec.encode(self))


@dataclass(frozen=True)
class ValidationCertificate:
    WIRE_NAME = "stagpack.ValidationCertificate.v1"

    outcome: ValidationOutcome
    signatures: tuple[KeyholderSignature, ...]

    def verify(self, committee: CommitteeInfo) -> None:
        committee.check_quorum_signatures("validation", self.outcome.digest(), self.signatures)


@dataclass(frozen=True)
class HuntOutcome:
    """A fired hunt: level m and the pending members that execute, with their signed intendos.

    `executed_weight` is the weight already executed by earlier hunts (those members stay
    counted), so a verifier can check the fixed point: executed_weight + Σ member weights = m.

    `cause` links a composed hunt to the hunt that made it possible (DESIGN.md §10.2): in a stag
    with a trigger, its first hunt names the digest of the trigger's first hunt, whose
    certificate armed the stag; every other hunt names nothing. An executor applies a hunt with a
    cause only after, or in one bundle with, the hunt it names.
    """

    WIRE_NAME = "stagpack.HuntOutcome.v2"

    stag_id: bytes
    epoch: int
    height: int
    head: bytes
    level: int
    executed_weight: int
    members: tuple[IntendoEnvelope, ...]
    cause: bytes = b""  # the digest of the trigger's hunt that armed this stag (its first hunt only)

    def digest(self) -> bytes:
        return digest("hunt-outcome", codec.encode(self))

    @property
    def member_ids(self) -> tuple[bytes, ...]:
        return tuple(member.intendo_id for member in self.members)

    def chain_facts(self, spec: StagSpec) -> HuntFacts:
        """What a settlement contract acts on for this hunt (`stagpack.attestation`)."""
        beneficiary = spec.beneficiary if spec.kind is StagKind.CAPITAL else None
        return HuntFacts(
            outcome=self.digest(),
            stag=self.stag_id,
            epoch=self.epoch,
            cause=self.cause or ZERO32,
            trigger=spec.trigger or ZERO32,
            beneficiary=ZERO32 if beneficiary is None else account_key(beneficiary.owner, beneficiary.tag),
            members=() if beneficiary is None else tuple(
                (account_key(m.statement.participant, m.statement.capital_tag), m.statement.weight) for m in self.members
            ),
            hook=spec.hook or bytes(20),
        )

    def spent_accounts(self) -> tuple[Account, ...]:
        """The escrow accounts of the capital members: executing them spends those accounts."""
        return tuple(
            Account(member.statement.participant, member.statement.capital_tag)
            for member in self.members
            if member.statement.capital_tag
        )

    def check_consistency(self, spec: StagSpec, committee: CommitteeInfo, verified: AbstractSet[bytes] = frozenset()) -> None:
        """The facts must fit together: a fixed point of the members it names, each signed
        (ring-signed over the eligibility list, in an anonymous stag, each by another member:
        distinct key images) unless its envelope's digest is in `verified`."""
        if not 0 < self.level < spec.levels:
            raise InvalidInput(f"hunt level {self.level} is outside 1..{spec.levels - 1}")
        if not self.members:
            raise InvalidInput("a hunt has at least one pending member")
        if len(set(self.member_ids)) != len(self.members):
            raise InvalidInput("a hunt lists a member twice")
        if len({member.statement.participant for member in self.members}) != len(self.members) and spec.anonymous:
            raise InvalidInput("a hunt lists two intendos of one member (one key image)")
        members = ring_of(spec.stag_id, spec.eligibility) if spec.anonymous else None
        identity_key = committee.require_identity_key().public_key if spec.anonymous else None
        for member in self.members:
            if member.digest() not in verified:
                member.verify(members, identity_key)
            if member.statement.stag_id != self.stag_id:
                raise InvalidInput("a hunt member belongs to another stag")
        total = self.executed_weight + sum(member.statement.weight for member in self.members)
        if total != self.level:
            raise InvalidInput(f"members and executed weight total {total}, not the hunt level {self.level}")
        if self.cause and (not spec.trigger or self.executed_weight or len(self.cause) != 32):
            raise InvalidInput("only the first hunt of a stag with a trigger names a cause (its trigger's hunt)")


@dataclass(frozen=True)
class IdentityRelease:
    """An anonymous member of a certified hunt, named: its key, and the t keyholders' proven
    decryption shares of the identity its intendo carried (`stagpack.shield.elgamal`), from
    which anyone recomputes the key."""

    WIRE_NAME = "stagpack.IdentityRelease.v1"

    intendo_id: bytes
    member: bytes  # the member's Ed25519 key
    shares: tuple[DecryptionShare, ...]


@dataclass(frozen=True)
class HuntCertificate:
    """A hunt with the Ed25519 signatures of t keyholders that certified it, and their secp256k1
    attestations of its chain facts (`stagpack.attestation`): executable by the SQLite ledger
    and by a settlement contract alike. In an anonymous stag it also names every member
    (`identities`, one per member in order): a certificate that leaves one out is invalid, so a
    hunt that exposes some members exposes all of them (DESIGN.md §10.5)."""

    WIRE_NAME = "stagpack.HuntCertificate.v3"

    outcome: HuntOutcome
    signatures: tuple[KeyholderSignature, ...]
    attestations: tuple[KeyholderSignature, ...] = ()
    identities: tuple[IdentityRelease, ...] = ()

    def verify(self, committee: CommitteeInfo, spec: StagSpec, verified: AbstractSet[bytes] = frozenset()) -> None:
        """t keyholder signatures and attestations first (cheap), then the facts and every
        member's signature — except members whose envelope digest is in `verified` (a replica's
        own, checked when they were logged): a ring signature costs about 1 ms per ring member."""
        if spec.stag_id != self.outcome.stag_id:
            raise InvalidInput("the certificate is for another stag")
        if spec.committee != committee.committee_id:
            raise InvalidInput("the stag was created for another committee")
        committee.check_quorum_signatures("hunt", self.outcome.digest(), self.signatures)
        committee.check_attestations(self.outcome.chain_facts(spec).digest(committee.committee_id), self.attestations)
        self.outcome.check_consistency(spec, committee, verified)
        self.check_identities(committee, spec)

    def check_identities(self, committee: CommitteeInfo, spec: StagSpec) -> None:
        """Every anonymous member named, each by t proven shares that decrypt to its key."""
        if not spec.anonymous:
            if self.identities:
                raise InvalidInput("only an anonymous stag's hunt releases identities")
            return
        key = committee.require_identity_key()
        if tuple(release.intendo_id for release in self.identities) != self.outcome.member_ids:
            raise InvalidInput("an anonymous hunt names every member, in order")
        for release, member in zip(self.identities, self.outcome.members):
            if len(release.shares) != key.threshold:
                raise InvalidInput(f"a released identity carries exactly {key.threshold} decryption shares")
            if elgamal.decrypt(key, member.identity_ciphertext(), release.shares) != release.member:
                raise InvalidInput("a released identity is not what the member's intendo encrypted")

    @property
    def revealed(self) -> tuple[bytes, ...]:
        """The members' keys: released identities in an anonymous stag, else the signers."""
        if self.identities:
            return tuple(release.member for release in self.identities)
        return tuple(member.statement.participant for member in self.outcome.members)

    def to_bytes(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> HuntCertificate:
        return codec.decode(cls, data)


@dataclass(frozen=True)
class CertificateBundle:
    """Everything `stagpack verify` needs to check a hunt without trusting anyone."""

    WIRE_NAME = "stagpack.CertificateBundle.v1"

    certificate: HuntCertificate
    spec: StagSpec
    transcript: Transcript

    def verify(self) -> None:
        self.transcript.verify()
        self.certificate.verify(CommitteeInfo.from_transcript(self.transcript), self.spec)


@dataclass(frozen=True)
class Void:
    """A live capital intendo that can no longer execute: another stag's hunt, whose certificate
    this cites, executed an intendo backed by the same escrow account (DESIGN.md §10.1,
    multiplexing: intendos that share a signer and a capital tag are mutually exclusive)."""

    WIRE_NAME = "stagpack.Void.v1"

    intendo_id: bytes
    certificate: HuntCertificate
    spec: StagSpec  # the spending hunt's stag: ties the certificate to this committee


@dataclass(frozen=True)
class Refund:
    """One counted intendo's refund bonus, paid to the escrow account that backs it."""

    WIRE_NAME = "stagpack.Refund.v1"

    intendo_id: bytes
    account: Account
    amount: int


@dataclass(frozen=True)
class SettlementOutcome:
    """A refund stag's closing check did not fire and it never executed an intendo: the refund
    pool pays every intendo counted at the deadline its bonus (DESIGN.md §10.3), in log order,
    and what is left goes to the terms' return account."""

    WIRE_NAME = "stagpack.SettlementOutcome.v1"

    stag_id: bytes
    epoch: int  # the closing epoch
    height: int
    head: bytes
    refunds: tuple[Refund, ...]
    returned: int

    def digest(self) -> bytes:
        return digest("settlement-outcome", codec.encode(self))


@dataclass(frozen=True)
class SettlementCertificate:
    """A settlement with the signatures of t keyholders that fused the closing check and derived
    the same refunds from their own replicas. A stag that counted no intendo at its deadline pays
    no bonus: its settlement carries no signatures (every replica checks it from the log alone)."""

    WIRE_NAME = "stagpack.SettlementCertificate.v1"

    outcome: SettlementOutcome
    signatures: tuple[KeyholderSignature, ...]

    def verify(self, committee: CommitteeInfo) -> None:
        if self.outcome.refunds:
            committee.check_quorum_signatures("settlement", self.outcome.digest(), self.signatures)
        elif self.signatures:
            raise InvalidInput("a settlement that pays no bonus carries no signatures")


@dataclass(frozen=True)
class Trigger:
    """The first hunt of a stag's trigger (DESIGN.md §10.2): its certificate arms the stag, whose
    hunts may fire only from then on, and makes it due for one immediate check at the height of
    this entry. The trigger's spec ties the certificate to this committee."""

    WIRE_NAME = "stagpack.Trigger.v1"

    certificate: HuntCertificate
    spec: StagSpec


BODY_TYPES: dict[EntryKind, type] = {
    EntryKind.GENESIS: StagSpec,
    EntryKind.SUBMISSION: IntendoEnvelope,
    EntryKind.WITHDRAWAL: Withdrawal,
    EntryKind.VALIDATION: ValidationCertificate,
    EntryKind.HUNT: HuntCertificate,
    EntryKind.VOID: Void,
    EntryKind.SETTLEMENT: SettlementCertificate,
    EntryKind.TRIGGER: Trigger,
}
Body = TypeVar("Body")


def decode_body(entry: LogEntry, body_type: type[Body]) -> Body:
    """The entry's body, which must be a `body_type` (the type its kind carries)."""
    if BODY_TYPES[entry.kind] is not body_type:
        raise InvalidInput(f"a {entry.kind.value} entry does not carry a {body_type.__name__}")
    return codec.decode(body_type, entry.body)
