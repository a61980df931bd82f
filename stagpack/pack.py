"""The state of one stag's pack, rebuilt by replaying its log.

The aggregator and every keyholder apply the same entries through `PackState.apply`, which
checks every rule (signatures, eligibility, replays, one live intendo per identity, capacity,
rate limits, certificates) and keeps the encrypted pack sum S = Σ w_i over counted intendos. Two
honest replicas of the same log therefore hold byte-identical sums (addition is exact).

An intendo moves through: AWAITING validation → COUNTED (pending) → EXECUTED,
or → WITHDRAWN, or → REJECTED (malformed ciphertext, recorded against its signer), or → VOIDED
(its escrow was spent by another stag's hunt), or → REFUNDED (counted when a refund stag's
deadline passed without a hunt: paid its bonus by the settlement).

A stag with a trigger (DESIGN.md §10.2) is armed by a TRIGGER entry carrying its trigger's first
hunt certificate; it may hunt only once armed, and its first hunt names that hunt as its cause.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from stagpack.encoding import StagKind
from stagpack.accounts import Account, check_tag
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.errors import AlreadyExists, IntegrityFailure, InvalidInput, NotFound, RateLimited, WrongPhase
from stagpack.fhe import Ciphertext, FheContext
from stagpack.log import (
    GENESIS_PREVIOUS,
    EntryKind,
    HuntCertificate,
    LogEntry,
    Refund,
    SettlementCertificate,
    SettlementOutcome,
    Trigger,
    ValidationCertificate,
    Void,
    decode_body,
)
from stagpack.committee import CommitteeInfo
from stagpack.shield.ring import Ring, ring_of
from stagpack.stag import StagSpec


class IntendoStatus(str, enum.Enum):
    AWAITING = "awaiting-validation"
    COUNTED = "counted"
    EXECUTED = "executed"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"
    VOIDED = "voided"  # its escrow was spent by another stag's hunt
    REFUNDED = "refunded"  # counted at a refund stag's deadline, which passed without a hunt: paid its bonus


LIVE = (IntendoStatus.AWAITING, IntendoStatus.COUNTED, IntendoStatus.EXECUTED)


class CiphertextSource(Protocol):
    """Where a replica finds an intendo's ciphertext bytes (they are not kept in memory)."""

    def ciphertext(self, intendo_id: bytes) -> bytes: ...


@dataclass(frozen=True)
class MemoryCiphertexts:
    """A `CiphertextSource` over ciphertexts held in memory (benchmarks, tools and tests)."""

    ciphertexts: Mapping[bytes, bytes]

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self.ciphertexts[intendo_id]


@dataclass(frozen=True)
class PackLimits:
    """Operational limits every replica enforces identically."""

    max_rejections: int = 3  # malformed intendos an identity may submit to one stag
    action_budget: int = 4  # submissions and withdrawals an identity may make in one stag (DESIGN.md §7)
    max_clock_skew_millis: int = 30_000  # how far ahead of a replica's clock an entry may be stamped
    validation_batch: int = 64  # intendos per validation session


@dataclass
class IntendoRecord:
    envelope: IntendoEnvelope
    height: int  # log height of the submission
    status: IntendoStatus
    counted_at: int = 0  # log height of the validation that counted it (0: not counted)
    closed_at: int = 0  # log height at which it was withdrawn, rejected or executed
    deferred: bool = False  # its batch failed the noise test: it is validated alone

    @property
    def weight(self) -> int:
        return self.envelope.statement.weight

    @property
    def backing(self) -> Account | None:
        """The escrow account backing a capital intendo (None for a count intendo)."""
        statement = self.envelope.statement
        return Account(statement.participant, statement.capital_tag) if statement.capital_tag else None


@dataclass
class PackState:
    """One stag's state at some log height."""

    context: FheContext
    committee: CommitteeInfo
    stag_id: bytes
    limits: PackLimits = field(default_factory=PackLimits)
    spec: StagSpec | None = None
    height: int = 0
    head: bytes = GENESIS_PREVIOUS
    last_accepted_at: int = 0
    intendos: dict[bytes, IntendoRecord] = field(default_factory=dict)
    live_by_participant: dict[bytes, bytes] = field(default_factory=dict)
    nonces: set[tuple[bytes, bytes]] = field(default_factory=set)
    rejections: dict[bytes, int] = field(default_factory=dict)
    actions: dict[bytes, int] = field(default_factory=dict)  # submissions and withdrawals per identity
    counted_sum: Ciphertext | None = None
    counted: int = 0
    reserved_weight: int = 0  # awaiting + counted + executed: what capacity is checked against
    executed_level: int = 0
    validation_batches: int = 0
    last_hunt_epoch: int = 0
    hunts: list[HuntCertificate] = field(default_factory=list)
    settlement: SettlementCertificate | None = None  # a refund stag's, once its deadline passed without a hunt
    armed: HuntCertificate | None = None  # a stag with a trigger: the trigger's first hunt, once logged here
    verified_envelopes: set[bytes] = field(default_factory=set)  # digests of envelopes and withdrawals whose signature it checked
    armed_at: int = 0  # the log height of the trigger entry that armed it

    # -- views --------------------------------------------------------------------------------

    def require_spec(self) -> StagSpec:
        if self.spec is None:
            raise WrongPhase("the stag has no genesis entry yet")
        return self.spec

    def record(self, intendo_id: bytes) -> IntendoRecord:
        record = self.intendos.get(intendo_id)
        if record is None:
            raise NotFound("no such intendo in this stag")
        return record

    def pending(self) -> list[tuple[bytes, IntendoRecord]]:
        """Counted, not yet executed intendos in log order: the candidates of the next hunt."""
        return [(key, record) for key, record in self.intendos.items() if record.status is IntendoStatus.COUNTED]

    def held(self, account: Account, at_millis: int | None) -> int:
        """What this stag's live intendo backed by `account` may still take from it (0 if
        none): its weight plus the stag's fee per executed member — escrow that may not be
        released while the intendo can still execute (until the stag is `finished`; at_millis
        None: whatever the clock says)."""
        intendo_id = self.live_by_participant.get(account.owner)
        if intendo_id is None or self.finished(at_millis):
            return 0
        record = self.intendos[intendo_id]
        if record.status in (IntendoStatus.AWAITING, IntendoStatus.COUNTED) and record.backing == account:
            return record.weight + self.member_fee
        return 0

    def finished(self, at_millis: int | None) -> bool:
        """Whether no intendo of the stag can execute any more: its refunds are settled, its last
        epoch hunted, or (unless at_millis is None) the last epoch is over, past the clock skew
        keyholders allow — no new session may open then, though one that opened in time may
        still finish (`Aggregator._held` asks its store). A refund stag that never hunted is
        finished only by its settlement: its closing epoch stays current until it has run."""
        spec = self.require_spec()
        if self.settlement is not None:
            return True
        if not spec.deadline_millis:
            return False
        last = spec.closing_epoch or spec.current_epoch(spec.deadline_millis)
        if self.last_hunt_epoch >= last:
            return True
        if at_millis is None or (spec.refund is not None and not self.hunts):
            return False
        return at_millis >= spec.epoch_due_at(last + 1) + self.limits.max_clock_skew_millis

    def closing_pending(self, epoch: int) -> bool:
        """Whether `epoch` is the closing epoch of a refund stag that may still settle: it stays
        current until it has run."""
        return self.require_spec().is_closing(epoch) and not self.hunts and self.settlement is None

    @property
    def cause(self) -> bytes:
        """What the next hunt names as its cause (`HuntOutcome.cause`): the trigger's hunt that
        armed this stag, for its first hunt; nothing otherwise."""
        if self.armed is None or self.executed_level:
            return b""
        return self.armed.outcome.digest()

    def hunt_epoch(self, at_millis: int) -> int:
        """The epoch a hunt check of this stag runs as at `at_millis`: the current one — or 1
        for a stag armed by its trigger before its first epoch is due (the immediate check the
        trigger's hunt makes due, DESIGN.md §10.2; it stands in for epoch 1's)."""
        epoch = self.require_spec().current_epoch(at_millis)
        return 1 if epoch == 0 and self.armed is not None else epoch

    def may_hunt(self) -> bool:
        """A stag with a trigger hunts only once the trigger's first hunt armed it."""
        return not self.require_spec().trigger or self.armed is not None

    @property
    def member_fee(self) -> int:
        fees = self.require_spec().fees
        return 0 if fees is None else fees.member

    @property
    def submission_fee(self) -> int:
        fees = self.require_spec().fees
        return 0 if fees is None else fees.submission

    def awaiting(self) -> list[bytes]:
        return [key for key, record in self.intendos.items() if record.status is IntendoStatus.AWAITING]

    def validation_batch(self) -> list[bytes]:
        """The intendos the next validation session checks, in log order: the first deferred
        one alone while any is deferred (its batch failed the noise test, and testing each alone
        blames only the noisy one), else up to `validation_batch` of them."""
        awaiting = self.awaiting()
        deferred = [key for key in awaiting if self.intendos[key].deferred]
        return deferred[:1] if deferred else awaiting[: self.limits.validation_batch]

    def count_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in IntendoStatus}
        for record in self.intendos.values():
            counts[record.status.value] += 1
        return counts

    # -- checks shared by the aggregator (before appending) and replicas (when applying) -------

    def admit_submission(self, envelope: IntendoEnvelope, ciphertext: bytes, at_millis: int) -> None:
        """Every check of `check_submission` but the ciphertext's parsing. The cheap checks come
        first and the signature last: an anonymous stag's ring signature costs about 1 ms per
        ring member, and a refusal must not cost that much (the fields checked before it are
        the envelope's own claims, used only to refuse). The aggregator runs this before it
        takes the stag's write lock; the signature is then remembered."""
        spec = self.require_spec()
        envelope.check_shape()
        statement = envelope.statement
        if statement.stag_id != self.stag_id:
            raise InvalidInput("the envelope is signed for another stag")
        if not spec.accepts_submissions(at_millis):
            raise WrongPhase("the stag's deadline has passed")
        if statement.expires_at_millis < at_millis:
            raise InvalidInput("the envelope has expired")
        if not spec.anonymous and not spec.is_eligible(statement.participant):  # anonymous: the ring signature proves it
            raise InvalidInput("this identity is not eligible for the stag")
        if self.rejections.get(statement.participant, 0) >= self.limits.max_rejections:
            raise RateLimited("this identity has submitted too many malformed intendos to this stag")
        self._check_budget(statement.participant)
        if envelope.intendo_id in self.intendos or (statement.participant, statement.nonce) in self.nonces:
            raise AlreadyExists("this envelope was already submitted (replay)")
        if statement.participant in self.live_by_participant:
            raise AlreadyExists("this identity already has a live intendo in the stag; withdraw it first")
        if spec.kind is StagKind.COUNT and statement.weight != 1:
            raise InvalidInput("count intendos have weight 1")
        if spec.kind is StagKind.COUNT and statement.capital_tag:
            raise InvalidInput("count intendos name no capital tag")
        if spec.kind is StagKind.CAPITAL:
            check_tag(statement.capital_tag, "the capital tag backing the intendo")
        if not 1 <= statement.weight <= spec.levels - 1:
            raise InvalidInput(f"the weight must be in 1..{spec.levels - 1}")
        if self.reserved_weight + statement.weight > spec.levels - 1:
            raise InvalidInput(f"the stag is full: its total may not exceed {spec.levels - 1}")
        if hashlib.sha256(ciphertext).digest() != statement.ciphertext_digest:
            raise InvalidInput("the ciphertext does not match the digest in the signed envelope")
        self.verify_envelope(envelope)

    def check_submission(self, envelope: IntendoEnvelope, ciphertext: bytes, at_millis: int) -> Ciphertext:
        """Raise unless this signed intendo may enter the log now; return its parsed ciphertext."""
        self.admit_submission(envelope, ciphertext, at_millis)
        return self.context.ciphertext_from_bytes(ciphertext)

    def check_withdrawal(self, withdrawal: Withdrawal, at_millis: int) -> IntendoRecord:
        """Raise unless the withdrawal may enter the log now; the signature is checked last."""
        spec = self.require_spec()
        withdrawal.check_shape()
        statement = withdrawal.statement
        if statement.stag_id != self.stag_id:
            raise InvalidInput("the withdrawal is signed for another stag")
        if not spec.accepts_submissions(at_millis):
            raise WrongPhase("the stag's deadline has passed")
        if statement.expires_at_millis < at_millis:
            raise InvalidInput("the withdrawal has expired")
        if (statement.participant, statement.nonce) in self.nonces:
            raise AlreadyExists("this withdrawal was already submitted (replay)")
        self._check_budget(statement.participant)
        record = self.record(statement.intendo_id)
        if record.envelope.statement.participant != statement.participant:
            raise InvalidInput("only the intendo's signer may withdraw it")
        if record.status is IntendoStatus.EXECUTED:
            raise WrongPhase("the intendo has executed in a hunt and cannot be withdrawn")
        if record.status not in LIVE:
            raise WrongPhase(f"the intendo is already {record.status.value}")
        self._verify_once(withdrawal.digest(), lambda: withdrawal.verify(self._anonymity()[0]))
        return record

    def verify_envelope(self, envelope: IntendoEnvelope) -> None:
        """Check the envelope's signature, once per state: the aggregator checks a submission
        before it takes the stag's write lock, again before appending it and when it applies
        the entry, and a ring signature costs about 1 ms per ring member (every replica still
        checks every envelope itself, once)."""
        self._verify_once(envelope.digest(), lambda: envelope.verify(*self._anonymity()))

    def _verify_once(self, record_digest: bytes, verify: Callable[[], None]) -> None:
        """Run `verify` unless this state already checked the record of that digest (successes only)."""
        if record_digest not in self.verified_envelopes:
            verify()
            self.verified_envelopes.add(record_digest)

    def _anonymity(self) -> tuple[Ring | None, bytes | None]:
        """An anonymous stag's ring (its eligibility list) and the committee's identity key,
        which its envelopes are checked against; (None, None) for other stags."""
        spec = self.require_spec()
        if not spec.anonymous:
            return None, None
        return ring_of(spec.stag_id, spec.eligibility), self.committee.require_identity_key().public_key

    def _check_budget(self, participant: bytes) -> None:
        """Every submission and withdrawal counts against the identity's budget in this stag,
        valid or not: each submission can be a probe of the validity bit (DESIGN.md §7), so the
        budget bounds what one identity can learn about anyone's threshold."""
        if self.actions.get(participant, 0) >= self.limits.action_budget:
            raise RateLimited(
                f"this identity has used its {self.limits.action_budget} submissions and withdrawals for this stag"
            )

    # -- applying the log ---------------------------------------------------------------------

    def apply(self, entry: LogEntry, ciphertext: bytes | None, source: CiphertextSource) -> None:  # noqa: C901
        """Check `entry` against the state and apply it. A replica that gets an error here has
        been handed an invalid log and must stop serving the stag."""
        if entry.stag_id != self.stag_id:
            raise IntegrityFailure("log entry for another stag")
        if entry.height != self.height + 1 or entry.previous != self.head:
            raise IntegrityFailure(f"log entry {entry.height} does not extend height {self.height}")
        if entry.accepted_at_millis < self.last_accepted_at:
            raise IntegrityFailure("log timestamps go backwards")
        if entry.kind is EntryKind.GENESIS:
            self._apply_genesis(entry, decode_body(entry, StagSpec))
        elif entry.kind is EntryKind.SUBMISSION:
            if ciphertext is None:
                raise IntegrityFailure("a submission entry arrived without its ciphertext")
            self._apply_submission(entry, decode_body(entry, IntendoEnvelope), ciphertext)
        elif entry.kind is EntryKind.WITHDRAWAL:
            self._apply_withdrawal(entry, decode_body(entry, Withdrawal), source)
        elif entry.kind is EntryKind.VALIDATION:
            self._apply_validation(entry, decode_body(entry, ValidationCertificate), source)
        elif entry.kind is EntryKind.HUNT:
            self._apply_hunt(entry, decode_body(entry, HuntCertificate))
        elif entry.kind is EntryKind.VOID:
            self._apply_void(entry, decode_body(entry, Void), source)
        elif entry.kind is EntryKind.SETTLEMENT:
            self._apply_settlement(entry, decode_body(entry, SettlementCertificate))
        elif entry.kind is EntryKind.TRIGGER:
            self._apply_trigger(entry, decode_body(entry, Trigger))
        self.height = entry.height
        self.head = entry.digest()
        self.last_accepted_at = entry.accepted_at_millis

    def check_genesis(self, spec: StagSpec, at_millis: int) -> None:
        """Raise unless `spec` may open this stag's log at `at_millis`."""
        if spec.stag_id != self.stag_id:
            raise IntegrityFailure("the genesis does not hash to the stag id")
        spec.validate(self.context.row_width, self.committee.committee_id)
        if spec.anonymous:
            self.committee.require_identity_key()
        if spec.opens_at_millis + self.limits.max_clock_skew_millis < at_millis:
            raise InvalidInput(
                "the stag opens in the past: every epoch since would be due at once (open it now or later)"
            )

    def _apply_genesis(self, entry: LogEntry, spec: StagSpec) -> None:
        if entry.height != 1:
            raise IntegrityFailure("the genesis must be the first entry")
        self.check_genesis(spec, entry.accepted_at_millis)
        self.spec = spec

    def _apply_submission(self, entry: LogEntry, envelope: IntendoEnvelope, ciphertext: bytes) -> None:
        self.check_submission(envelope, ciphertext, entry.accepted_at_millis)
        statement = envelope.statement
        self.intendos[envelope.intendo_id] = IntendoRecord(envelope, entry.height, IntendoStatus.AWAITING)
        self.live_by_participant[statement.participant] = envelope.intendo_id
        self.nonces.add((statement.participant, statement.nonce))
        self.actions[statement.participant] = self.actions.get(statement.participant, 0) + 1
        self.reserved_weight += statement.weight

    def _apply_withdrawal(self, entry: LogEntry, withdrawal: Withdrawal, source: CiphertextSource) -> None:
        record = self.check_withdrawal(withdrawal, entry.accepted_at_millis)
        statement = withdrawal.statement
        if record.status is IntendoStatus.COUNTED:
            self._uncount(statement.intendo_id, source)
        record.status = IntendoStatus.WITHDRAWN
        record.closed_at = entry.height
        self.live_by_participant.pop(statement.participant, None)
        self.nonces.add((statement.participant, statement.nonce))
        self.actions[statement.participant] = self.actions.get(statement.participant, 0) + 1
        self.reserved_weight -= record.weight

    def _apply_validation(self, entry: LogEntry, certificate: ValidationCertificate, source: CiphertextSource) -> None:
        certificate.verify(self.committee)
        outcome = certificate.outcome
        if outcome.stag_id != self.stag_id or outcome.batch != self.validation_batches + 1:
            raise IntegrityFailure("validation certificate out of sequence")
        decided = outcome.valid + outcome.invalid + outcome.deferred
        if len(set(decided)) != len(decided) or not decided:
            raise IntegrityFailure("validation certificate lists an intendo twice or none")
        if outcome.deferred and (outcome.valid or outcome.invalid or len(outcome.deferred) < 2):
            raise IntegrityFailure("a validation certificate defers a whole batch of several intendos, or nothing")
        for intendo_id in decided:
            record = self.intendos.get(intendo_id)
            if record is None or record.height > outcome.height:
                raise IntegrityFailure("validation certificate names an intendo outside its batch")
            if record.status not in (IntendoStatus.AWAITING, IntendoStatus.WITHDRAWN):
                raise IntegrityFailure("validation certificate names an intendo already decided")
        for intendo_id in outcome.valid:
            record = self.intendos[intendo_id]
            if record.status is IntendoStatus.AWAITING:
                record.status = IntendoStatus.COUNTED
                record.counted_at = entry.height
                self._count(intendo_id, source)
        for intendo_id in outcome.invalid:
            record = self.intendos[intendo_id]
            participant = record.envelope.statement.participant
            self.rejections[participant] = self.rejections.get(participant, 0) + 1
            if record.status is IntendoStatus.AWAITING:
                record.status = IntendoStatus.REJECTED
                record.closed_at = entry.height
                self.live_by_participant.pop(participant, None)
                self.reserved_weight -= record.weight
        for intendo_id in outcome.deferred:
            self.intendos[intendo_id].deferred = True
        self.validation_batches = outcome.batch

    def _apply_hunt(self, entry: LogEntry, certificate: HuntCertificate) -> None:
        spec = self.require_spec()
        certificate.verify(self.committee, spec, self.verified_envelopes)  # members this state checked are not checked again
        if self.settlement is not None:
            raise IntegrityFailure("a hunt after the stag's refunds were settled")
        if not self.may_hunt():
            raise IntegrityFailure("a hunt of a stag whose trigger has not hunted")
        outcome = certificate.outcome
        if outcome.cause != self.cause:
            raise IntegrityFailure("the hunt names another cause than the trigger's hunt that armed the stag")
        if outcome.epoch <= self.last_hunt_epoch or outcome.level <= self.executed_level:
            raise IntegrityFailure("hunt certificate out of sequence")
        if outcome.executed_weight != self.executed_level:
            raise IntegrityFailure("hunt certificate disagrees with the executed level")
        for intendo_id in outcome.member_ids:
            record = self.intendos.get(intendo_id)
            if record is None or record.status is not IntendoStatus.COUNTED:
                raise IntegrityFailure("hunt certificate names an intendo that is not pending")
        for intendo_id in outcome.member_ids:
            self.intendos[intendo_id].status = IntendoStatus.EXECUTED
            self.intendos[intendo_id].closed_at = entry.height
        self.executed_level = outcome.level
        self.last_hunt_epoch = outcome.epoch
        self.hunts.append(certificate)

    def check_trigger(self, trigger: Trigger) -> None:
        """A trigger entry must carry the first hunt (executed weight 0) of the stag this one
        names as its trigger, certified by this committee, and arm the stag only once."""
        spec = self.require_spec()
        if not spec.trigger:
            raise InvalidInput("the stag names no trigger: nothing can arm it")
        if self.armed is not None:
            raise AlreadyExists("the stag is already armed by its trigger's hunt")
        outcome = trigger.certificate.outcome
        if trigger.spec.stag_id != spec.trigger or outcome.stag_id != spec.trigger:
            raise InvalidInput("the trigger entry carries a hunt of another stag than this stag's trigger")
        if outcome.executed_weight != 0:
            raise InvalidInput("a stag is armed by its trigger's first hunt, not a later one")
        trigger.certificate.verify(self.committee, trigger.spec)  # this committee's stag, consistent, t signatures

    def _apply_trigger(self, entry: LogEntry, trigger: Trigger) -> None:
        self.check_trigger(trigger)
        self.armed = trigger.certificate
        self.armed_at = entry.height

    def check_void(self, void: Void) -> IntendoRecord:
        """A void must cite a hunt certificate the committee signed, of another stag, that
        executed an intendo backed by the same escrow account as the live intendo it voids."""
        record = self.intendos.get(void.intendo_id)
        if record is None:
            raise InvalidInput("the void names no intendo of this stag")
        if record.status not in (IntendoStatus.AWAITING, IntendoStatus.COUNTED):
            raise WrongPhase(f"only a live intendo can be voided; this one is {record.status.value}")
        statement = record.envelope.statement
        if not statement.capital_tag:
            raise InvalidInput("only a capital intendo can be voided: a count intendo spends no escrow")
        outcome = void.certificate.outcome
        if outcome.stag_id == self.stag_id:
            raise InvalidInput("a void cites a hunt of another stag (a stag's own members execute, not void)")
        if record.backing not in outcome.spent_accounts():
            raise InvalidInput("the cited hunt executed nothing backed by this intendo's escrow account")
        if void.spec.kind is not StagKind.CAPITAL:
            raise InvalidInput("the cited hunt is of a count stag: it spent no escrow")
        void.certificate.verify(self.committee, void.spec)  # this committee's stag, consistent, t signatures
        return record

    def _apply_void(self, entry: LogEntry, void: Void, source: CiphertextSource) -> None:
        record = self.check_void(void)
        if record.status is IntendoStatus.COUNTED:
            self._uncount(void.intendo_id, source)
        record.status = IntendoStatus.VOIDED
        record.closed_at = entry.height
        self.live_by_participant.pop(record.envelope.statement.participant, None)
        self.reserved_weight -= record.weight

    def settlement_due(self, at_millis: int) -> bool:
        """Whether a refund stag may settle now: its closing epoch is due, it never executed an
        intendo, every intendo submitted before the deadline was validated, and it has not
        settled yet."""
        spec = self.require_spec()
        return (
            spec.refund is not None and self.settlement is None and not self.hunts and not self.awaiting()
            and at_millis >= spec.epoch_due_at(spec.closing_epoch)
        )

    def settlement_outcome(self) -> SettlementOutcome:
        """The settlement of this pack as it stands: each counted intendo's bonus by the refund
        terms, in log order, and what is left of the pool."""
        return settlement_of(self.require_spec(), self.height, self.head, [(key, record.envelope) for key, record in self.pending()])

    def check_settlement(self, certificate: SettlementCertificate, at_millis: int) -> None:
        """A settlement must come after the closing epoch is due, on a stag that never hunted,
        and pay exactly what this replica derives from its own log — certified by t keyholders
        whenever it pays anyone."""
        spec = self.require_spec()
        if spec.refund is None:
            raise InvalidInput("the stag has no refund pool: there is nothing to settle")
        if self.settlement is not None:
            raise AlreadyExists("the stag's refunds were already settled")
        if self.hunts:
            raise WrongPhase("the stag executed a hunt: its refund pool went back when the hunt executed")
        if at_millis < spec.epoch_due_at(spec.closing_epoch):
            raise WrongPhase(
                f"refunds are settled after the deadline, by the closing epoch {spec.closing_epoch} "
                f"(due at {spec.epoch_due_at(spec.closing_epoch)}): it is {at_millis}"
            )
        if self.awaiting():
            raise WrongPhase("intendos submitted before the deadline still await validation")
        if certificate.outcome != self.settlement_outcome():
            raise InvalidInput("the settlement does not pay what this log's counted intendos are owed")
        certificate.verify(self.committee)

    def _apply_settlement(self, entry: LogEntry, certificate: SettlementCertificate) -> None:
        self.check_settlement(certificate, entry.accepted_at_millis)
        for refund in certificate.outcome.refunds:
            record = self.intendos[refund.intendo_id]
            record.status = IntendoStatus.REFUNDED
            record.closed_at = entry.height
        self.settlement = certificate

    def _count(self, intendo_id: bytes, source: CiphertextSource) -> None:
        """Add a validated intendo to S at the evaluation level (its noise was shown bounded at
        the input level; compressing divides it by the dropped tower)."""
        ciphertext = self.context.compress(self.context.ciphertext_from_bytes(source.ciphertext(intendo_id)))
        self.counted_sum = ciphertext if self.counted_sum is None else self.context.add(self.counted_sum, ciphertext)
        self.counted += 1

    def _uncount(self, intendo_id: bytes, source: CiphertextSource) -> None:
        assert self.counted_sum is not None
        ciphertext = self.context.compress(self.context.ciphertext_from_bytes(source.ciphertext(intendo_id)))
        self.counted_sum = self.context.subtract(self.counted_sum, ciphertext)
        self.counted -= 1


    def snapshot(self) -> PackSnapshot:
        """What a session evaluates, frozen at the current height (the live state moves on)."""
        return PackSnapshot(
            spec=self.require_spec(),
            height=self.height,
            head=self.head,
            counted_sum=self.counted_sum,
            counted=self.counted,
            executed_level=self.executed_level,
            pending=tuple((key, record.envelope) for key, record in self.pending()),
            batch=tuple((key, self.intendos[key].weight) for key in self.validation_batch()),
            cause=self.cause,
        )


def settlement_of(spec: StagSpec, height: int, head: bytes, counted: Sequence[tuple[bytes, IntendoEnvelope]]) -> SettlementOutcome:
    """The settlement of a refund stag whose `counted` intendos (in log order) are pending at
    `height`: each one's bonus by the terms, paid to the escrow account backing it."""
    assert spec.refund is not None
    amounts, returned = spec.refund.payouts([envelope.statement.weight for _, envelope in counted])
    refunds = tuple(
        Refund(key, Account(envelope.statement.participant, envelope.statement.capital_tag), amount)
        for (key, envelope), amount in zip(counted, amounts)
    )
    return SettlementOutcome(spec.stag_id, spec.closing_epoch, height, head, refunds, returned)


@dataclass(frozen=True)
class PackSnapshot:
    """A pack frozen at one log height: the input of one decryption session."""

    spec: StagSpec
    height: int
    head: bytes
    counted_sum: Ciphertext | None
    counted: int
    executed_level: int
    pending: tuple[tuple[bytes, IntendoEnvelope], ...]  # counted, not executed, in log order
    batch: tuple[tuple[bytes, int], ...]  # (intendo id, weight) awaiting validation, next batch
    cause: bytes = b""  # what a hunt at this height names as its cause (`PackState.cause`)

    def settlement_outcome(self) -> SettlementOutcome:
        return settlement_of(self.spec, self.height, self.head, self.pending)

    def pending_ciphertexts(self, context: FheContext, source: CiphertextSource) -> list[tuple[Ciphertext, int]]:
        """The pending intendos at the evaluation level, with their weights."""
        return [
            (context.compress(context.ciphertext_from_bytes(source.ciphertext(key))), envelope.statement.weight)
            for key, envelope in self.pending
        ]
