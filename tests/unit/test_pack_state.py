"""Unit tests for stagpack.pack.PackState: the rules every replica applies to a stag's log.

Logs are built by hand from real signed envelopes, real ciphertexts under the 2-of-3 session
committee's key, and keyholder certificates signed with that committee's keyholder identities
(or forged with fresh ones). The encrypted pack sum is checked by decrypting it against the
numpy sum of the counted thermometers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import pytest

from support.unit import decrypt
from stagpack import codec
from stagpack.accounts import Account
from stagpack.decrypt.circuit import layout_of
from stagpack.decrypt.computation import SessionComputation, prescribed_family, read_step, session_outcome, sign_partials
from stagpack.decrypt.steps import SessionFacts, next_step
from stagpack.encoding import StagKind, Threshold
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.errors import (
    AlreadyExists,
    IntegrityFailure,
    InvalidInput,
    InvalidSignature,
    NotFound,
    RateLimited,
    WrongPhase,
)
from stagpack.identity import KeyholderIdentity, SigningIdentity
from stagpack.log import (
    GENESIS_PREVIOUS,
    EntryKind,
    HuntCertificate,
    HuntOutcome,
    LogEntry,
    SettlementCertificate,
    Trigger,
    ValidationCertificate,
    ValidationOutcome,
    Void,
)
from stagpack.committee import CommitteeInfo, KeyholderSignature
from stagpack.pack import IntendoStatus, PackLimits, PackState
from stagpack.session import (
    Committed,
    MaskCommitment,
    MaskReveal,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
    committed_count,
)
from stagpack.stag import StagSpec
from stagpack.terms import RefundMode, RefundTerms

T0 = 1_700_000_000_000
HOUR = 3_600_000


class Ciphertexts(dict):  # type: ignore[type-arg]
    """The CiphertextSource a replica reads intendo ciphertexts from."""

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self[intendo_id]  # type: ignore[no-any-return]


class Log:
    """One stag's log under construction, applied entry by entry to a PackState replica."""

    def __init__(self, committee, *, kind: StagKind = StagKind.COUNT, levels: int = 20, eligibility=(), limits=None, deadline: int = 0, refund=None, trigger: bytes = b"") -> None:  # type: ignore[no-untyped-def]
        self.committee = committee
        self.context = committee.context
        self.info = CommitteeInfo.from_transcript(committee.bundle.transcript)
        self.spec = StagSpec.new(
            committee=self.info.committee_id,
            kind=kind,
            levels=levels,
            eligibility=tuple(eligibility),
            epoch_millis=1000,
            opens_at_millis=T0,
            deadline_millis=deadline,
            beneficiary=Account(SigningIdentity().verify_key, "proceeds") if kind is StagKind.CAPITAL else None,
            refund=refund,
            trigger=trigger,
        )
        self.source = Ciphertexts()
        self.state = PackState(self.context, self.info, self.spec.stag_id, limits or PackLimits())
        self.now = T0
        self.plain: dict[bytes, np.ndarray] = {}

    @property
    def stag_id(self) -> bytes:
        return self.spec.stag_id

    # -- entries --------------------------------------------------------------------------------

    def entry(self, kind: EntryKind, body: object, **changes: object) -> LogEntry:
        entry = LogEntry(self.stag_id, self.state.height + 1, self.state.head, self.now, kind, codec.encode(body))
        return dataclasses.replace(entry, **changes)

    def apply(self, kind: EntryKind, body: object, ciphertext: bytes | None = None, **changes: object) -> LogEntry:
        entry = self.entry(kind, body, **changes)
        self.state.apply(entry, ciphertext, self.source)
        return entry

    def genesis(self) -> Log:
        self.apply(EntryKind.GENESIS, self.spec)
        return self

    # -- intendos -------------------------------------------------------------------------------

    def encrypt(self, threshold: Threshold) -> bytes:
        vector = layout_of(self.context).thermometer(threshold, self.spec.levels)
        data = self.context.ciphertext_to_bytes(self.context.encrypt(self.context.joint_key, vector))
        self.plain[hashlib.sha256(data).digest()] = vector
        return data

    def envelope(
        self, identity: SigningIdentity, ciphertext: bytes, weight: int = 1, *, stag_id: bytes | None = None,
        expires: int | None = None, tag: str | None = None,
    ) -> IntendoEnvelope:
        """A signed envelope; a capital stag's names the escrow tag "main" unless `tag` says otherwise."""
        if tag is None:
            tag = "main" if self.spec.kind is StagKind.CAPITAL else ""
        return IntendoEnvelope.sign(
            identity, stag_id or self.stag_id, hashlib.sha256(ciphertext).digest(), weight,
            self.now + HOUR if expires is None else expires, tag,
        )

    def submit(self, identity: SigningIdentity, level: int = 1, weight: int = 1) -> IntendoEnvelope:
        ciphertext = self.encrypt(Threshold(level, weight))
        envelope = self.envelope(identity, ciphertext, weight)
        self.submit_envelope(envelope, ciphertext)
        return envelope

    def submit_envelope(self, envelope: IntendoEnvelope, ciphertext: bytes) -> None:
        self.source[envelope.intendo_id] = ciphertext
        self.apply(EntryKind.SUBMISSION, envelope, ciphertext)

    def withdraw(self, identity: SigningIdentity, intendo_id: bytes) -> Withdrawal:
        withdrawal = Withdrawal.sign(identity, self.stag_id, intendo_id, self.now + HOUR)
        self.apply(EntryKind.WITHDRAWAL, withdrawal)
        return withdrawal

    # -- certificates ---------------------------------------------------------------------------

    def signatures(self, domain: str, message: bytes, signers=(1, 2)) -> tuple[KeyholderSignature, ...]:  # type: ignore[no-untyped-def]
        return tuple(KeyholderSignature(index, self.committee.identities[index - 1].sign(domain, message)) for index in signers)

    def validation(self, valid=(), invalid=(), deferred=(), *, batch: int | None = None, signers=(1, 2), **changes: object) -> ValidationCertificate:  # type: ignore[no-untyped-def]
        outcome = ValidationOutcome(
            self.stag_id, self.state.validation_batches + 1 if batch is None else batch, self.state.height, self.state.head,
            tuple(valid), tuple(invalid), tuple(deferred),
        )
        outcome = dataclasses.replace(outcome, **changes)
        return ValidationCertificate(outcome, self.signatures("validation", outcome.digest(), signers))

    def validate(self, valid=(), invalid=(), deferred=()) -> None:  # type: ignore[no-untyped-def]
        self.apply(EntryKind.VALIDATION, self.validation(valid, invalid, deferred))

    def hunt(self, members, level: int | None = None, *, epoch: int | None = None, signers=(1, 2), **changes: object) -> HuntCertificate:  # type: ignore[no-untyped-def]
        executed = self.state.executed_level
        level = executed + sum(member.statement.weight for member in members) if level is None else level
        outcome = HuntOutcome(
            self.stag_id, self.state.last_hunt_epoch + 1 if epoch is None else epoch, self.state.height, self.state.head, level, executed,
            tuple(members), self.state.cause,
        )
        outcome = dataclasses.replace(outcome, **changes)
        return HuntCertificate(outcome, self.signatures("hunt", outcome.digest(), signers), self.attestations(outcome, signers))

    def attestations(self, outcome: HuntOutcome, signers=(1, 2)) -> tuple[KeyholderSignature, ...]:  # type: ignore[no-untyped-def]
        """The keyholders' secp256k1 attestations of a hunt's chain facts."""
        digest = outcome.chain_facts(self.spec).digest(self.info.committee_id)
        return tuple(KeyholderSignature(index, self.committee.identities[index - 1].chain_key.sign(digest)) for index in signers)

    # -- checks ---------------------------------------------------------------------------------

    def snapshot(self) -> tuple[int, bytes, int, dict[bytes, IntendoStatus], int]:
        state = self.state
        return state.height, state.head, state.reserved_weight, {k: r.status for k, r in state.intendos.items()}, state.counted

    def expect_refused(self, error: type[Exception], kind: EntryKind, body: object, ciphertext: bytes | None = None, **changes: object) -> None:
        """The entry is refused with `error` and the replica is unchanged."""
        before = self.snapshot()
        with pytest.raises(error):
            self.apply(kind, body, ciphertext, **changes)
        assert self.snapshot() == before

    def counted_sum_matches(self) -> None:
        """S decrypts to the sum of the counted thermometers, straight from the records."""
        counted = [
            self.plain[record.envelope.statement.ciphertext_digest]
            for record in self.state.intendos.values()
            if record.status in (IntendoStatus.COUNTED, IntendoStatus.EXECUTED)
        ]
        assert self.state.counted == len([r for r in self.state.intendos.values() if r.status is IntendoStatus.COUNTED]) + len(
            [r for r in self.state.intendos.values() if r.status is IntendoStatus.EXECUTED]
        )
        if not counted:
            assert self.state.counted_sum is None or not self.state.counted
            return
        assert self.state.counted_sum is not None
        expected = np.sum(counted, axis=0) % self.context.plaintext_modulus
        assert np.array_equal(decrypt(self.committee, self.state.counted_sum, (1, 3)), expected)


@pytest.fixture
def log(committee2of3) -> Log:  # type: ignore[no-untyped-def]
    return Log(committee2of3).genesis()


def people(count: int) -> list[SigningIdentity]:
    return [SigningIdentity() for _ in range(count)]


# --- genesis ---------------------------------------------------------------------------------


def test_genesis_sets_the_spec(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3)
    with pytest.raises(WrongPhase):
        log.state.require_spec()
    entry = log.apply(EntryKind.GENESIS, log.spec)
    assert log.state.spec == log.spec
    assert (log.state.height, log.state.head, log.state.last_accepted_at) == (1, entry.digest(), T0)
    assert entry.previous == GENESIS_PREVIOUS


def test_genesis_rules(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3)
    other = dataclasses.replace(log.spec, nonce=os.urandom(16))
    log.expect_refused(IntegrityFailure, EntryKind.GENESIS, other)  # does not hash to the stag id
    for bad in (
        dataclasses.replace(log.spec, committee=bytes(32)),
        dataclasses.replace(log.spec, levels=1),
        dataclasses.replace(log.spec, levels=log.context.row_width + 1),
        dataclasses.replace(log.spec, epoch_millis=5),
        dataclasses.replace(log.spec, eligibility=(b"\x01" * 32, b"\x00" * 32)),  # not sorted
    ):
        replica = PackState(log.context, log.info, bad.stag_id)
        with pytest.raises(InvalidInput):
            replica.apply(LogEntry(bad.stag_id, 1, GENESIS_PREVIOUS, T0, EntryKind.GENESIS, codec.encode(bad)), None, log.source)
        assert replica.spec is None and replica.height == 0
    log.expect_refused(IntegrityFailure, EntryKind.GENESIS, log.spec, height=2)
    log.expect_refused(IntegrityFailure, EntryKind.GENESIS, log.spec, previous=b"\x01" * 32)
    person = SigningIdentity()
    ciphertext = log.encrypt(Threshold(1, 1))
    log.expect_refused(WrongPhase, EntryKind.SUBMISSION, log.envelope(person, ciphertext), ciphertext)
    log.genesis()
    log.expect_refused(IntegrityFailure, EntryKind.GENESIS, log.spec)  # only the first entry


def test_a_genesis_that_opens_further_in_the_past_than_the_clock_skew_is_refused(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Every epoch since a stag opened would be due at once: a genesis accepted more than the
    clock skew after its opening is refused (new with the security changes); within the skew,
    or opening later, it is fine."""
    skew = PackLimits().max_clock_skew_millis
    late = Log(committee2of3)
    late.now = T0 + skew + 1
    late.expect_refused(InvalidInput, EntryKind.GENESIS, late.spec)
    assert late.state.spec is None
    on_time = Log(committee2of3)
    on_time.now = T0 + skew
    on_time.genesis()
    early = Log(committee2of3)
    early.now = T0 - HOUR
    early.genesis()
    assert on_time.state.spec == on_time.spec and early.state.spec == early.spec


def test_entries_for_another_stag_or_off_the_chain_are_integrity_failures(log: Log) -> None:
    person = SigningIdentity()
    ciphertext = log.encrypt(Threshold(2, 1))
    envelope = log.envelope(person, ciphertext)
    log.source[envelope.intendo_id] = ciphertext
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, ciphertext, stag_id=bytes(32))
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, ciphertext, previous=bytes(32))
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, ciphertext, height=log.state.height)  # repeat
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, ciphertext, height=log.state.height + 2)  # skip
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, ciphertext, accepted_at_millis=log.now - 1)
    log.expect_refused(IntegrityFailure, EntryKind.SUBMISSION, envelope, None)  # the ciphertext must travel with it
    log.apply(EntryKind.SUBMISSION, envelope, ciphertext)  # the same timestamp is fine
    log.now += 5
    log.withdraw(person, envelope.intendo_id)
    assert log.state.last_accepted_at == log.now


def test_bodies_that_do_not_decode_are_invalid(log: Log) -> None:
    person = SigningIdentity()
    ciphertext = log.encrypt(Threshold(2, 1))
    envelope = log.envelope(person, ciphertext)
    before = log.snapshot()
    for kind, body in (
        (EntryKind.SUBMISSION, b"garbage"),
        (EntryKind.SUBMISSION, codec.encode(Withdrawal.sign(person, log.stag_id, bytes(32), log.now))),
        (EntryKind.WITHDRAWAL, codec.encode(envelope)),
        (EntryKind.GENESIS, codec.encode(envelope)),
        (EntryKind.VALIDATION, codec.encode(envelope)[:-1]),
    ):
        entry = LogEntry(log.stag_id, log.state.height + 1, log.state.head, log.now, kind, body)
        with pytest.raises(InvalidInput):
            log.state.apply(entry, ciphertext, log.source)
    assert log.snapshot() == before


# --- submissions -----------------------------------------------------------------------------


def test_a_valid_submission_awaits_validation(log: Log) -> None:
    person = SigningIdentity()
    envelope = log.submit(person, level=3)
    record = log.state.record(envelope.intendo_id)
    assert record.status is IntendoStatus.AWAITING and record.height == log.state.height
    assert log.state.live_by_participant[person.verify_key] == envelope.intendo_id
    assert log.state.reserved_weight == 1
    assert log.state.awaiting() == [envelope.intendo_id] and log.state.pending() == []
    with pytest.raises(NotFound):
        log.state.record(bytes(32))


def test_submission_signatures_and_fields(log: Log) -> None:
    person = SigningIdentity()
    ciphertext = log.encrypt(Threshold(2, 1))
    envelope = log.envelope(person, ciphertext)
    log.source[envelope.intendo_id] = ciphertext
    flipped = bytearray(envelope.signature)
    flipped[0] ^= 1
    log.expect_refused(InvalidSignature, EntryKind.SUBMISSION, dataclasses.replace(envelope, signature=bytes(flipped)), ciphertext)
    altered = dataclasses.replace(envelope.statement, expires_at_millis=envelope.statement.expires_at_millis + 1)
    log.expect_refused(InvalidSignature, EntryKind.SUBMISSION, dataclasses.replace(envelope, statement=altered), ciphertext)
    impostor = dataclasses.replace(envelope.statement, participant=SigningIdentity().verify_key)
    log.expect_refused(InvalidSignature, EntryKind.SUBMISSION, dataclasses.replace(envelope, statement=impostor), ciphertext)
    short_nonce = dataclasses.replace(envelope.statement, nonce=b"\x00" * 4)
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, IntendoEnvelope(short_nonce, person.sign("intendo", codec.encode(short_nonce))), ciphertext)
    other_stag = log.envelope(person, ciphertext, stag_id=hashlib.sha256(b"other stag").digest())
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, other_stag, ciphertext)
    expired = log.envelope(person, ciphertext, expires=log.now - 1)
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, expired, ciphertext)
    log.submit_envelope(log.envelope(person, ciphertext, expires=log.now), ciphertext)  # expiring now is still fine


def test_eligibility(committee2of3) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = people(3)
    log = Log(committee2of3, eligibility=(bob.verify_key, alice.verify_key)).genesis()
    ciphertext = log.encrypt(Threshold(2, 1))
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, log.envelope(carol, ciphertext), ciphertext)
    log.submit(alice)
    log.submit(bob)
    assert len(log.state.awaiting()) == 2


def test_replays_and_second_live_intendos_are_refused(log: Log) -> None:
    alice, bob = people(2)
    first = log.submit(alice, level=2)
    ciphertext = log.source[first.intendo_id]
    log.expect_refused(AlreadyExists, EntryKind.SUBMISSION, first, ciphertext)  # replayed envelope
    second_ciphertext = log.encrypt(Threshold(3, 1))
    second = log.envelope(alice, second_ciphertext)
    log.source[second.intendo_id] = second_ciphertext
    log.expect_refused(AlreadyExists, EntryKind.SUBMISSION, second, second_ciphertext)  # one live intendo per identity
    same_nonce = dataclasses.replace(second.statement, nonce=first.statement.nonce)
    log.expect_refused(AlreadyExists, EntryKind.SUBMISSION, IntendoEnvelope(same_nonce, alice.sign("intendo", codec.encode(same_nonce))), second_ciphertext)
    log.submit(bob, level=2)
    log.withdraw(alice, first.intendo_id)
    log.expect_refused(AlreadyExists, EntryKind.SUBMISSION, first, ciphertext)  # still a replay after withdrawing
    log.submit_envelope(second, second_ciphertext)  # a fresh envelope is welcome again
    assert log.state.live_by_participant[alice.verify_key] == second.intendo_id


def test_weights(committee2of3) -> None:  # type: ignore[no-untyped-def]
    count = Log(committee2of3, levels=10).genesis()
    person = SigningIdentity()
    ciphertext = count.encrypt(Threshold(2, 2))
    for weight, error in ((2, InvalidInput), (0, InvalidInput), (-1, InvalidInput)):
        count.expect_refused(error, EntryKind.SUBMISSION, count.envelope(person, ciphertext, weight), ciphertext)
    capital = Log(committee2of3, kind=StagKind.CAPITAL, levels=10).genesis()
    capital.expect_refused(InvalidInput, EntryKind.SUBMISSION, capital.envelope(person, ciphertext, 10), ciphertext)
    capital.submit(person, level=9, weight=9)
    assert capital.state.reserved_weight == 9


def test_capacity_counts_awaiting_and_counted_weight(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3, levels=4).genesis()  # full at 3 members
    members = people(4)
    envelopes = [log.submit(person, level=1) for person in members[:2]]
    log.validate(valid=[envelopes[0].intendo_id])  # one counted, one awaiting: both reserve
    envelopes.append(log.submit(members[2], level=3))
    assert log.state.reserved_weight == 3
    ciphertext = log.encrypt(Threshold(1, 1))
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, log.envelope(members[3], ciphertext), ciphertext)
    log.withdraw(members[1], envelopes[1].intendo_id)  # frees one unit
    log.submit_envelope(log.envelope(members[3], ciphertext), ciphertext)
    assert log.state.reserved_weight == 3

    capital = Log(committee2of3, kind=StagKind.CAPITAL, levels=10).genesis()
    a, b, c = people(3)
    capital.submit(a, level=5, weight=5)
    capital.submit(b, level=9, weight=4)
    small = capital.encrypt(Threshold(9, 1))
    capital.expect_refused(InvalidInput, EntryKind.SUBMISSION, capital.envelope(c, small, 1), small)


def test_ciphertexts_must_match_the_envelope_and_the_committee_key(log: Log, committee3) -> None:  # type: ignore[no-untyped-def]
    person = SigningIdentity()
    ciphertext = log.encrypt(Threshold(2, 1))
    other = log.encrypt(Threshold(3, 1))
    envelope = log.envelope(person, ciphertext)
    log.source[envelope.intendo_id] = ciphertext
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, envelope, other)  # digest mismatch
    garbage = os.urandom(len(ciphertext))
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, log.envelope(person, garbage), garbage)
    truncated = ciphertext[:-10]
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, log.envelope(person, truncated), truncated)
    foreign_context = committee3.context
    foreign = foreign_context.ciphertext_to_bytes(
        foreign_context.encrypt(foreign_context.joint_key, layout_of(foreign_context).thermometer(Threshold(2, 1), 20))
    )
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, log.envelope(person, foreign), foreign)  # another committee's key
    assert log.state.check_submission(envelope, ciphertext, log.now) is not None


def test_deadline(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3, deadline=T0 + 10_000).genesis()
    person, late = people(2)
    envelope = log.submit(person)
    log.now = T0 + 10_000
    ciphertext = log.encrypt(Threshold(1, 1))
    log.expect_refused(WrongPhase, EntryKind.SUBMISSION, log.envelope(late, ciphertext), ciphertext)
    log.expect_refused(WrongPhase, EntryKind.WITHDRAWAL, Withdrawal.sign(person, log.stag_id, envelope.intendo_id, log.now + HOUR))


# --- withdrawals -----------------------------------------------------------------------------


def test_withdrawal_rules(log: Log) -> None:
    alice, mallory = people(2)
    envelope = log.submit(alice, level=2)
    intendo = envelope.intendo_id
    by_mallory = Withdrawal.sign(mallory, log.stag_id, intendo, log.now + HOUR)
    log.expect_refused(InvalidInput, EntryKind.WITHDRAWAL, by_mallory)  # only the signer
    forged = dataclasses.replace(by_mallory, statement=dataclasses.replace(by_mallory.statement, participant=alice.verify_key))
    log.expect_refused(InvalidSignature, EntryKind.WITHDRAWAL, forged)
    log.expect_refused(NotFound, EntryKind.WITHDRAWAL, Withdrawal.sign(alice, log.stag_id, bytes(32), log.now + HOUR))
    log.expect_refused(InvalidInput, EntryKind.WITHDRAWAL, Withdrawal.sign(alice, log.stag_id, intendo, log.now - 1))
    log.expect_refused(InvalidInput, EntryKind.WITHDRAWAL, Withdrawal.sign(alice, bytes(32), intendo, log.now + HOUR))
    withdrawal = log.withdraw(alice, intendo)
    assert log.state.record(intendo).status is IntendoStatus.WITHDRAWN
    assert log.state.reserved_weight == 0 and alice.verify_key not in log.state.live_by_participant
    log.expect_refused(AlreadyExists, EntryKind.WITHDRAWAL, withdrawal)  # replay
    log.expect_refused(WrongPhase, EntryKind.WITHDRAWAL, Withdrawal.sign(alice, log.stag_id, intendo, log.now + HOUR))  # already withdrawn


def test_withdrawing_a_counted_intendo_subtracts_it_from_the_pack_sum(log: Log) -> None:
    members = people(3)
    envelopes = [log.submit(person, level=level) for person, level in zip(members, (1, 2, 5))]
    log.validate(valid=[envelope.intendo_id for envelope in envelopes])
    assert log.state.counted == 3
    log.counted_sum_matches()
    log.withdraw(members[1], envelopes[1].intendo_id)
    assert log.state.counted == 2 and log.state.reserved_weight == 2
    log.counted_sum_matches()
    assert [key for key, _ in log.state.pending()] == [envelopes[0].intendo_id, envelopes[2].intendo_id]


# --- validation certificates -----------------------------------------------------------------


def test_validation_counts_valid_intendos_and_rejects_invalid_ones(log: Log) -> None:
    members = people(5)
    envelopes = [log.submit(person, level=level) for person, level in zip(members, (1, 2, 3, 7, 4))]
    ids = [envelope.intendo_id for envelope in envelopes]
    log.withdraw(members[4], ids[4])
    log.validate(valid=[ids[0], ids[2], ids[4]], invalid=[ids[1], ids[3]])
    statuses = [log.state.record(key).status for key in ids]
    assert statuses == [IntendoStatus.COUNTED, IntendoStatus.REJECTED, IntendoStatus.COUNTED, IntendoStatus.REJECTED, IntendoStatus.WITHDRAWN]
    assert log.state.rejections == {members[1].verify_key: 1, members[3].verify_key: 1}
    assert log.state.reserved_weight == 2 and log.state.counted == 2 and log.state.validation_batches == 1
    assert members[1].verify_key not in log.state.live_by_participant  # a rejected identity may resubmit
    log.counted_sum_matches()
    snapshot = log.state.snapshot()
    assert [key for key, _ in snapshot.pending] == [ids[0], ids[2]] and snapshot.batch == ()


def test_validation_certificates_need_t_valid_keyholder_signatures(log: Log) -> None:
    person = SigningIdentity()
    intendo = log.submit(person).intendo_id
    stranger = KeyholderIdentity("not-in-the-committee")
    good = log.validation(valid=[intendo])
    digest = good.outcome.digest()
    one = log.validation(valid=[intendo], signers=(3,))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, one)
    forged = ValidationCertificate(good.outcome, (good.signatures[0], KeyholderSignature(2, stranger.sign("validation", digest))))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, forged)
    all_forged = ValidationCertificate(good.outcome, tuple(KeyholderSignature(i, stranger.sign("validation", digest)) for i in (1, 2, 3)))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, all_forged)
    twice = ValidationCertificate(good.outcome, (good.signatures[0], good.signatures[0]))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, twice)
    unknown = ValidationCertificate(good.outcome, (*good.signatures, KeyholderSignature(4, good.signatures[0].signature)))
    log.expect_refused(InvalidInput, EntryKind.VALIDATION, unknown)
    wrong_domain = ValidationCertificate(good.outcome, log.signatures("hunt", digest))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, wrong_domain)
    other_outcome = dataclasses.replace(good.outcome, valid=(), invalid=(intendo,))
    log.expect_refused(InvalidSignature, EntryKind.VALIDATION, ValidationCertificate(other_outcome, good.signatures))
    log.apply(EntryKind.VALIDATION, log.validation(valid=[intendo], signers=(1, 2, 3)))
    assert log.state.record(intendo).status is IntendoStatus.COUNTED


def test_validation_certificates_must_fit_the_log(log: Log) -> None:
    alice, bob = people(2)
    first = log.submit(alice).intendo_id
    log.validate(valid=[first])
    second = log.submit(bob).intendo_id
    for certificate in (
        log.validation(valid=[second], batch=1),  # batch numbers run in sequence
        log.validation(valid=[second], batch=3),
        log.validation(valid=[second, second]),
        log.validation(valid=[second], invalid=[second]),
        log.validation(),  # decides nothing
        log.validation(valid=[bytes(32)]),  # unknown intendo
        log.validation(valid=[second], height=log.state.height - 1),  # submitted after the batch
        log.validation(valid=[first]),  # already decided
        log.validation(valid=[second], stag_id=bytes(32)),
    ):
        log.expect_refused(IntegrityFailure, EntryKind.VALIDATION, certificate)
    log.validate(invalid=[second])
    assert log.state.validation_batches == 2


def test_rejections_are_rate_limited(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3, limits=PackLimits(max_rejections=2)).genesis()
    repeat_offender, bystander = people(2)
    for _ in range(2):
        envelope = log.submit(repeat_offender, level=2)
        log.validate(invalid=[envelope.intendo_id])
    assert log.state.rejections[repeat_offender.verify_key] == 2
    ciphertext = log.encrypt(Threshold(2, 1))
    log.expect_refused(RateLimited, EntryKind.SUBMISSION, log.envelope(repeat_offender, ciphertext), ciphertext)
    log.submit(bystander, level=2)  # others are unaffected
    counts = log.state.count_by_status()
    assert counts[IntendoStatus.REJECTED.value] == 2 and counts[IntendoStatus.AWAITING.value] == 1


def test_validation_batches_follow_log_order_and_the_limit(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3, limits=PackLimits(validation_batch=2)).genesis()
    ids = [log.submit(person).intendo_id for person in people(3)]
    assert log.state.validation_batch() == ids[:2]
    assert log.state.snapshot().batch == ((ids[0], 1), (ids[1], 1))


def test_every_submission_and_withdrawal_counts_against_the_identitys_budget(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """PackLimits.action_budget (4 by default) bounds the submissions and withdrawals one
    identity makes in a stag, valid or not: each submission may probe the validity bit. A
    refused entry costs nothing, and other identities are unaffected."""
    assert PackLimits().action_budget == 4
    log = Log(committee2of3).genesis()
    prober, bystander = people(2)
    first = log.submit(prober, level=2)  # 1
    log.withdraw(prober, first.intendo_id)  # 2
    second = log.submit(prober, level=3)  # 3
    log.validate(invalid=[second.intendo_id])  # rejected: still counted
    ciphertext = log.encrypt(Threshold(4, 1))
    expired = log.envelope(prober, ciphertext, expires=log.now - 1)
    log.expect_refused(InvalidInput, EntryKind.SUBMISSION, expired, ciphertext)  # refused: not counted
    third = log.submit(prober, level=4)  # 4
    assert log.state.actions[prober.verify_key] == 4
    log.expect_refused(RateLimited, EntryKind.WITHDRAWAL, Withdrawal.sign(prober, log.stag_id, third.intendo_id, log.now + HOUR))
    log.validate(invalid=[third.intendo_id])
    again = log.encrypt(Threshold(5, 1))
    log.expect_refused(RateLimited, EntryKind.SUBMISSION, log.envelope(prober, again), again)
    log.submit(bystander, level=2)
    assert log.state.actions == {prober.verify_key: 4, bystander.verify_key: 1}
    # The budget is a replica rule like any other limit.
    tight = Log(committee2of3, limits=PackLimits(action_budget=1)).genesis()
    envelope = tight.submit(prober)
    tight.expect_refused(RateLimited, EntryKind.WITHDRAWAL, Withdrawal.sign(prober, tight.stag_id, envelope.intendo_id, tight.now + HOUR))


def test_a_batch_whose_noise_test_failed_is_deferred_and_its_intendos_validated_alone(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """A validation certificate may defer a whole batch of several intendos (its noise test
    failed: nothing was learned about any one). Each is then validated alone, in log order,
    before any new batch, so only the noisy one is rejected."""
    log = Log(committee2of3, limits=PackLimits(validation_batch=3)).genesis()
    ids = [log.submit(person, level=level).intendo_id for person, level in zip(people(4), (1, 2, 3, 4))]
    assert log.state.validation_batch() == ids[:3]
    log.validate(deferred=ids[:3])
    assert [log.state.record(key).status for key in ids] == [IntendoStatus.AWAITING] * 4
    assert [log.state.record(key).deferred for key in ids] == [True, True, True, False]
    assert log.state.counted == 0 and log.state.reserved_weight == 4 and log.state.validation_batches == 1
    assert log.state.validation_batch() == [ids[0]]
    assert log.state.snapshot().batch == ((ids[0], 1),)
    log.validate(valid=[ids[0]])
    assert log.state.validation_batch() == [ids[1]]
    log.validate(invalid=[ids[1]])  # the noisy one, blamed alone
    assert log.state.validation_batch() == [ids[2]]
    log.validate(valid=[ids[2]])
    assert log.state.validation_batch() == [ids[3]]  # no deferred left: batches again
    assert log.state.rejections == {log.state.record(ids[1]).envelope.statement.participant: 1}
    log.counted_sum_matches()


def _validation_session(log: Log, noisy_masks: dict[int, int] | None = None) -> SessionComputation:
    """The next validation session over the replica's batch, with every keyholder of the
    committee contributing its committed ciphertexts (fresh encryptions of uniform vectors;
    `noisy_masks` adds κ to a keyholder's first mask) — the computation every party runs."""
    context = log.context
    snapshot = log.state.snapshot()
    session = SessionRef(log.stag_id, SessionKind.VALIDATION, log.state.validation_batches + 1, snapshot.height, snapshot.head)
    rng = np.random.default_rng(session.number)
    commitments, reveals = [], []
    for keyholder in (1, 2, 3):
        masks = [
            context.ciphertext_to_bytes(context.encrypt(context.joint_key, rng.integers(0, context.plaintext_modulus, context.slot_count)))
            for _ in range(committed_count(SessionKind.VALIDATION))
        ]
        if noisy_masks and keyholder in noisy_masks:
            masks[Committed.FIRST_MASK] = context.with_added_noise(masks[Committed.FIRST_MASK], noisy_masks[keyholder])
        commitment = MaskCommitment(session, keyholder, tuple(hashlib.sha256(mask).digest() for mask in masks))
        commitments.append(SignedCommitment(commitment, log.committee.identities[keyholder - 1].sign("mask-commitment", codec.encode(commitment))))
        reveals.append(MaskReveal(keyholder, tuple(masks)))
    return SessionComputation(context, snapshot, log.source, session, commitments, reveals, log.info)


def _read_noise_steps(log: Log, computation: SessionComputation) -> tuple[list[Step], SessionFacts, list[SignedPartial]]:
    """Run the session's steps up to its validity check, as the aggregator drives them: every
    keyholder's signed partials for the prescribed family, read by `read_step`."""
    committee, info = log.committee, log.info
    facts, partials, taken = computation.initial_facts(), [], []
    while (step := next_step(facts)) is not None and step not in (Step.BATCH, Step.EACH):
        ciphertexts = computation.ciphertexts(step, facts)
        digests = computation.digests(ciphertexts)
        family = prescribed_family(info, set(computation.contributors))
        for party, identity in zip(committee.parties, committee.identities):
            shares = [party.partials(ciphertext, family) for ciphertext in ciphertexts]
            partials.extend(sign_partials(identity.sign, computation.session, step, digests, shares))
        facts = read_step(computation, info, step, facts, partials)
        taken.append(step)
    return taken, facts, partials


def test_a_noisy_intendo_defers_its_batch_and_is_rejected_alone(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Through SessionComputation and the step readers (what the aggregator and every keyholder
    run), on real signed partials: a session whose noise test fails tests each contributor and
    the intendos alone; a contributor with a noisy mask is left out of the masks of later
    steps; a batch of several whose intendos are noisy is deferred, and each intendo is then
    tested alone, the noisy one rejected without a validity check and counted against its
    signer — each outcome applied by the pack."""
    log = Log(committee2of3, limits=PackLimits(validation_batch=3)).genesis()
    honest = [log.submit(person, level=level) for person, level in zip(people(2), (2, 5))]
    noisy_person = SigningIdentity()
    crafted = log.context.with_added_noise(log.encrypt(Threshold(3, 1)), 1 << 100)
    log.plain[hashlib.sha256(crafted).digest()] = layout_of(log.context).thermometer(Threshold(3, 1), log.spec.levels)
    noisy = log.envelope(noisy_person, crafted)
    log.submit_envelope(noisy, crafted)
    ids = [honest[0].intendo_id, honest[1].intendo_id, noisy.intendo_id]

    computation = _validation_session(log, noisy_masks={3: 1 << 100})
    initial = computation.initial_facts()
    assert (initial.contributors, initial.noise_test, initial.batch_size) == ((1, 2, 3), True, 3)
    taken, facts, partials = _read_noise_steps(log, computation)
    assert taken == [Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE]
    assert facts.noise_passed is False and facts.clean == (1, 2) and facts.mask_contributors == (1, 2)  # keyholder 3 crafted its mask
    assert facts.inputs_clean is False and next_step(facts) is None
    outcome = session_outcome(computation, log.info, partials)
    assert isinstance(outcome, ValidationOutcome)
    assert (outcome.valid, outcome.invalid, outcome.deferred) == ((), (), tuple(ids))
    log.apply(EntryKind.VALIDATION, ValidationCertificate(outcome, log.signatures("validation", outcome.digest())))
    assert all(log.state.record(key).deferred for key in ids)

    # Each alone: an honest one passes the one noise test and goes on to the validity check;
    # the noisy one is rejected without one.
    for key in ids:
        assert log.state.validation_batch() == [key]
        alone = _validation_session(log)
        taken, facts, partials = _read_noise_steps(log, alone)
        if key == noisy.intendo_id:
            assert taken == [Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE] and facts.clean == (1, 2, 3)
            outcome = session_outcome(alone, log.info, partials)
            assert isinstance(outcome, ValidationOutcome)
            assert (outcome.valid, outcome.invalid, outcome.deferred) == ((), (key,), ())
            log.apply(EntryKind.VALIDATION, ValidationCertificate(outcome, log.signatures("validation", outcome.digest())))
        else:
            assert taken == [Step.NOISE] and facts.noise_passed is True and facts.inputs_clean is True
            assert next_step(facts) is Step.BATCH
            log.validate(valid=[key])
    assert [log.state.record(key).status for key in ids] == [IntendoStatus.COUNTED, IntendoStatus.COUNTED, IntendoStatus.REJECTED]
    assert log.state.rejections == {noisy_person.verify_key: 1}
    log.counted_sum_matches()


def test_deferring_certificates_must_defer_a_whole_batch(log: Log) -> None:
    ids = [log.submit(person).intendo_id for person in people(3)]
    for certificate in (
        log.validation(deferred=[ids[0]]),  # one intendo alone is decided, not deferred
        log.validation(valid=[ids[0]], deferred=ids[1:]),  # deferring decides nothing else
        log.validation(invalid=[ids[0]], deferred=ids[1:]),
        log.validation(deferred=[ids[0], ids[0]]),
        log.validation(valid=[ids[0]], deferred=[ids[0], ids[1]]),
        log.validation(deferred=[ids[0], bytes(32)]),
    ):
        log.expect_refused(IntegrityFailure, EntryKind.VALIDATION, certificate)
    assert not any(record.deferred for record in log.state.intendos.values())
    log.validate(deferred=ids)
    assert all(record.deferred for record in log.state.intendos.values())


def test_the_pack_sum_and_the_pending_intendos_are_at_the_evaluation_level(log: Log) -> None:
    """A validated intendo is counted compressed (its noise was tested at the input level); the
    hunt reads the pending intendos compressed too."""
    members = people(3)
    envelopes = [log.submit(person, level=level) for person, level in zip(members, (1, 2, 6))]
    log.validate(valid=[envelope.intendo_id for envelope in envelopes])
    context = log.context
    assert log.state.counted_sum is not None and log.state.counted_sum.towers == context.evaluation_towers
    log.counted_sum_matches()
    pending = log.state.snapshot().pending_ciphertexts(context, log.source)
    assert [weight for _, weight in pending] == [1, 1, 1]
    for (ciphertext, _), envelope in zip(pending, envelopes):
        assert ciphertext.towers == context.evaluation_towers
        assert np.array_equal(decrypt(log.committee, ciphertext, (2, 3)), log.plain[envelope.statement.ciphertext_digest])


# --- hunt certificates -----------------------------------------------------------------------


def _counted(log: Log, levels_and_weights) -> tuple[list[SigningIdentity], list[IntendoEnvelope]]:  # type: ignore[no-untyped-def]
    identities = people(len(levels_and_weights))
    envelopes = [log.submit(person, level, weight) for person, (level, weight) in zip(identities, levels_and_weights)]
    log.validate(valid=[envelope.intendo_id for envelope in envelopes])
    return identities, envelopes


def test_a_hunt_executes_its_members(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3, kind=StagKind.CAPITAL, levels=20).genesis()
    identities, envelopes = _counted(log, [(3, 1), (3, 2), (9, 4), (12, 5)])
    log.apply(EntryKind.HUNT, log.hunt(envelopes[:2]))  # fixed point 3
    assert log.state.executed_level == 3 and log.state.last_hunt_epoch == 1 and len(log.state.hunts) == 1
    assert [log.state.record(e.intendo_id).status for e in envelopes] == [IntendoStatus.EXECUTED] * 2 + [IntendoStatus.COUNTED] * 2
    log.counted_sum_matches()  # executed members stay counted
    log.expect_refused(WrongPhase, EntryKind.WITHDRAWAL, Withdrawal.sign(identities[0], log.stag_id, envelopes[0].intendo_id, log.now + HOUR))
    log.apply(EntryKind.HUNT, log.hunt(envelopes[2:], epoch=5))  # 3 + 4 + 5 = 12
    assert log.state.executed_level == 12 and log.state.last_hunt_epoch == 5
    assert log.state.pending() == []


def test_hunt_certificates_need_t_valid_keyholder_signatures(log: Log) -> None:
    _, envelopes = _counted(log, [(1, 1), (2, 1)])
    good = log.hunt(envelopes)
    digest = good.outcome.digest()
    stranger = KeyholderIdentity("stranger")
    for certificate in (
        log.hunt(envelopes, signers=(2,)),
        HuntCertificate(good.outcome, (good.signatures[0], KeyholderSignature(3, stranger.sign("hunt", digest)))),
        HuntCertificate(good.outcome, (good.signatures[1], good.signatures[1])),
        HuntCertificate(good.outcome, log.signatures("validation", digest)),
        HuntCertificate(dataclasses.replace(good.outcome, epoch=2), good.signatures),
    ):
        log.expect_refused(InvalidSignature, EntryKind.HUNT, certificate)
    log.apply(EntryKind.HUNT, good)
    assert log.state.executed_level == 2


def test_hunt_certificates_must_be_consistent_and_in_sequence(log: Log) -> None:
    identities, envelopes = _counted(log, [(1, 1), (2, 1), (5, 1)])
    awaiting = log.submit(SigningIdentity(), level=4)
    other_stag = IntendoEnvelope.sign(identities[0], hashlib.sha256(b"another stag").digest(), bytes(32), 1, log.now + HOUR)
    log.expect_refused(InvalidInput, EntryKind.HUNT, log.hunt(envelopes[:2], level=3))  # weights do not add up to m
    log.expect_refused(InvalidInput, EntryKind.HUNT, log.hunt([], level=1))
    log.expect_refused(InvalidInput, EntryKind.HUNT, log.hunt([envelopes[0], envelopes[0]], level=2))
    log.expect_refused(InvalidInput, EntryKind.HUNT, log.hunt([envelopes[0], other_stag], level=2))
    log.expect_refused(InvalidInput, EntryKind.HUNT, log.hunt(envelopes, level=20))  # outside the levels
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt([envelopes[0], awaiting]))  # not pending
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt(envelopes[:2], executed_weight=1, level=3))
    log.apply(EntryKind.HUNT, log.hunt(envelopes[:2], epoch=3))
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt(envelopes[2:], epoch=3))  # epoch must increase
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt(envelopes[:1], epoch=4))  # already executed
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt(envelopes[2:], epoch=4, level=2, executed_weight=1))
    log.apply(EntryKind.HUNT, log.hunt(envelopes[2:], epoch=4))
    assert log.state.executed_level == 3



# --- voids (multiplexing, DESIGN.md §10.1) ---------------------------------------------------------


def test_a_void_cites_a_certified_hunt_that_spent_the_same_account(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Replicas check every void against what the certificate it cites says: another stag's
    hunt, signed by t keyholders, that executed an intendo backed by the voided intendo's
    escrow account. Anything else stops the replica (and so never reaches the log)."""
    first = Log(committee2of3, kind=StagKind.CAPITAL, levels=20).genesis()
    second = Log(committee2of3, kind=StagKind.CAPITAL, levels=20).genesis()
    alice, bob, carol = people(3)
    spending = first.submit(alice, level=3, weight=3)
    first.validate(valid=[spending.intendo_id])
    certificate = first.hunt([spending])
    first.apply(EntryKind.HUNT, certificate)
    backed = second.submit(alice, level=5, weight=4)  # alice's "main" account backs both
    other_tag = second.encrypt(Threshold(5, 2))
    bobs = second.envelope(bob, other_tag, 2, tag="savings")
    second.submit_envelope(bobs, other_tag)
    carols = second.submit(carol, level=5, weight=1)
    second.validate(valid=[backed.intendo_id, bobs.intendo_id, carols.intendo_id])
    forged = HuntCertificate(certificate.outcome, (certificate.signatures[0],))  # one signature short of t
    stranger = KeyholderIdentity("stranger")
    impostor = HuntCertificate(certificate.outcome, (certificate.signatures[0], KeyholderSignature(2, stranger.sign("hunt", certificate.outcome.digest()))))
    spec = first.spec
    foreign_committee = dataclasses.replace(spec, committee=bytes(32))
    for error, void in (
        (InvalidSignature, Void(backed.intendo_id, forged, spec)),
        (InvalidSignature, Void(backed.intendo_id, impostor, spec)),
        (InvalidInput, Void(bobs.intendo_id, certificate, spec)),  # the hunt spent alice's account, not bob's
        (InvalidInput, Void(carols.intendo_id, certificate, spec)),
        (InvalidInput, Void(bytes(32), certificate, spec)),
        (InvalidInput, Void(backed.intendo_id, certificate, second.spec)),  # the spec is not the hunt's stag
        (InvalidInput, Void(backed.intendo_id, certificate, foreign_committee)),  # nor of this committee
    ):
        second.expect_refused(error, EntryKind.VOID, void)
    own = second.hunt([carols], level=None, epoch=1)  # the stag's own hunt executes, it does not void
    second.expect_refused(InvalidInput, EntryKind.VOID, Void(carols.intendo_id, own, second.spec))
    before = second.state.reserved_weight
    second.apply(EntryKind.VOID, Void(backed.intendo_id, certificate, spec))
    record = second.state.record(backed.intendo_id)
    assert record.status is IntendoStatus.VOIDED and second.state.reserved_weight == before - 4
    assert backed.intendo_id not in [intendo_id for intendo_id, _ in second.state.pending()]
    second.counted_sum_matches()  # uncounted like a withdrawal
    second.expect_refused(WrongPhase, EntryKind.VOID, Void(backed.intendo_id, certificate, spec))  # voided once


def test_a_count_intendo_is_never_voided(committee2of3) -> None:  # type: ignore[no-untyped-def]
    capital = Log(committee2of3, kind=StagKind.CAPITAL, levels=20).genesis()
    count = Log(committee2of3, levels=20).genesis()
    alice = SigningIdentity()
    spending = capital.submit(alice, level=2, weight=2)
    capital.validate(valid=[spending.intendo_id])
    certificate = capital.hunt([spending])
    counted = count.submit(alice, level=1)
    count.validate(valid=[counted.intendo_id])
    count.expect_refused(InvalidInput, EntryKind.VOID, Void(counted.intendo_id, certificate, capital.spec))


# --- settlements (dominant-assurance refunds, DESIGN.md §10.3) ----------------------------------


def _refund_log(committee, mode: RefundMode = RefundMode.PRO_RATA) -> Log:  # type: ignore[no-untyped-def]
    """A capital stag (epochs of 1 s from T0) with a pool of 100 and its deadline at 3.5 s: its
    closing epoch is 4, due at T0 + 4 s."""
    funder = Account(SigningIdentity().verify_key, "bonus")
    terms = RefundTerms(funder, 100, mode, 5 if mode is RefundMode.FIXED else 0, funder)
    return Log(committee, kind=StagKind.CAPITAL, levels=20, deadline=T0 + 3_500, refund=terms).genesis()


def test_a_settlement_pays_exactly_what_the_replica_derives_after_the_closing_epoch(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Pro rata: 100 shared by weights 1, 2 and 4 of the counted intendos (a withdrawn one gets
    nothing) is 14, 28 and 57, and 1 goes back. Replicas refuse a settlement before the closing
    epoch is due, one that pays anything else, one certified by fewer than t keyholders or under
    another domain, and an unsigned one that pays a bonus; the good one closes the stag."""
    log = _refund_log(committee2of3)
    assert log.spec.closing_epoch == 4
    identities, envelopes = _counted(log, [(9, 1), (9, 2), (9, 4)])
    dana = SigningIdentity()
    leaving = log.submit(dana, level=9, weight=3)
    log.validate(valid=[leaving.intendo_id])
    log.withdraw(dana, leaving.intendo_id)
    outcome = log.state.settlement_outcome()
    assert [refund.amount for refund in outcome.refunds] == [100 * w // 7 for w in (1, 2, 4)] == [14, 28, 57]
    assert outcome.returned == 1 and outcome.epoch == 4
    assert [refund.account for refund in outcome.refunds] == [Account(i.verify_key, "main") for i in identities]
    good = SettlementCertificate(outcome, log.signatures("settlement", outcome.digest()))
    log.expect_refused(WrongPhase, EntryKind.SETTLEMENT, good)  # before the closing epoch is due
    log.now = T0 + 4_000
    richer = dataclasses.replace(outcome, refunds=(dataclasses.replace(outcome.refunds[0], amount=15),) + outcome.refunds[1:], returned=0)
    fewer = dataclasses.replace(outcome, refunds=outcome.refunds[1:], returned=15)
    for error, certificate in (
        (InvalidInput, SettlementCertificate(richer, log.signatures("settlement", richer.digest()))),
        (InvalidInput, SettlementCertificate(fewer, log.signatures("settlement", fewer.digest()))),
        (InvalidSignature, SettlementCertificate(outcome, log.signatures("settlement", outcome.digest(), signers=(1,)))),
        (InvalidSignature, SettlementCertificate(outcome, log.signatures("hunt", outcome.digest()))),
        (InvalidSignature, SettlementCertificate(outcome, ())),
    ):
        log.expect_refused(error, EntryKind.SETTLEMENT, certificate)
    log.apply(EntryKind.SETTLEMENT, good)
    assert [log.state.record(e.intendo_id).status for e in envelopes] == [IntendoStatus.REFUNDED] * 3
    assert log.state.settlement == good and log.state.finished(log.now)
    log.expect_refused(AlreadyExists, EntryKind.SETTLEMENT, good)
    log.expect_refused(IntegrityFailure, EntryKind.HUNT, log.hunt(envelopes[:1], epoch=4))  # nothing hunts after it


def test_no_settlement_for_a_stag_that_hunted_or_has_no_pool(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = _refund_log(committee2of3, RefundMode.FIXED)
    _, envelopes = _counted(log, [(1, 1), (9, 2)])
    log.apply(EntryKind.HUNT, log.hunt(envelopes[:1]))
    log.now = T0 + 4_000
    outcome = log.state.settlement_outcome()
    log.expect_refused(WrongPhase, EntryKind.SETTLEMENT, SettlementCertificate(outcome, log.signatures("settlement", outcome.digest())))
    plain = Log(committee2of3, kind=StagKind.CAPITAL, levels=20, deadline=T0 + 3_500).genesis()
    plain.now = T0 + 10_000
    pretend = dataclasses.replace(outcome, stag_id=plain.stag_id, refunds=(), returned=0)
    plain.expect_refused(InvalidInput, EntryKind.SETTLEMENT, SettlementCertificate(pretend, ()))


def test_a_stag_that_counted_nobody_settles_without_signatures_and_waits_for_validation(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """Nothing counted at the deadline: nobody is owed a bonus, so the settlement returns the
    whole pool and needs no certificate — but only once nothing awaits validation (an intendo
    submitted in time might still count)."""
    log = _refund_log(committee2of3, RefundMode.FIXED)
    awaiting = log.submit(SigningIdentity(), level=9, weight=2)
    log.now = T0 + 4_000
    empty = log.state.settlement_outcome()
    assert empty.refunds == () and empty.returned == 100
    log.expect_refused(WrongPhase, EntryKind.SETTLEMENT, SettlementCertificate(empty, ()))
    log.validate(invalid=[awaiting.intendo_id])
    empty = log.state.settlement_outcome()
    log.expect_refused(InvalidInput, EntryKind.SETTLEMENT, SettlementCertificate(empty, log.signatures("settlement", empty.digest())))
    log.apply(EntryKind.SETTLEMENT, SettlementCertificate(empty, ()))
    assert log.state.settlement is not None


def test_escrow_is_held_until_the_stag_can_execute_no_more(committee2of3) -> None:  # type: ignore[no-untyped-def]
    """A live capital intendo holds its weight while its stag may still hunt: for a stag with a
    deadline, until its last epoch is over (plus the clock skew keyholders allow); for a refund
    stag that never hunted, until its settlement (its closing epoch stays current until run)."""
    skew = PackLimits().max_clock_skew_millis
    log = Log(committee2of3, kind=StagKind.CAPITAL, levels=20, deadline=T0 + 3_500).genesis()  # last epoch 3
    alice = SigningIdentity()
    log.validate(valid=[log.submit(alice, level=9, weight=4).intendo_id])
    account = Account(alice.verify_key, "main")
    assert log.state.held(account, T0 + 4_000 + skew - 1) == 4
    assert log.state.held(account, T0 + 4_000 + skew) == 0 and log.state.finished(T0 + 4_000 + skew)
    refunding = _refund_log(committee2of3)  # closing epoch 4
    bob = SigningIdentity()
    refunding.validate(valid=[refunding.submit(bob, level=9, weight=2).intendo_id])
    later = T0 + 10 * HOUR
    assert refunding.state.held(Account(bob.verify_key, "main"), later) == 2 and not refunding.state.finished(later)
    assert refunding.state.closing_pending(4) and not refunding.state.closing_pending(3)
    refunding.now = later
    outcome = refunding.state.settlement_outcome()
    refunding.apply(EntryKind.SETTLEMENT, SettlementCertificate(outcome, refunding.signatures("settlement", outcome.digest())))
    assert refunding.state.held(Account(bob.verify_key, "main"), later) == 0 and not refunding.state.closing_pending(4)


# --- triggers (DESIGN.md §10.2) ----------------------------------------------------------------


def _hunted_trigger(committee) -> tuple[Log, HuntCertificate]:  # type: ignore[no-untyped-def]
    """A stag whose first hunt (one member, weight 1) is certified: what arms its dependents."""
    trigger = Log(committee).genesis()
    alice = SigningIdentity()
    envelope = trigger.submit(alice)
    trigger.validate([envelope.intendo_id])
    certificate = trigger.hunt([envelope])
    trigger.apply(EntryKind.HUNT, certificate)
    return trigger, certificate


def test_a_trigger_entry_arms_a_stag_once_with_its_triggers_first_hunt(committee2of3) -> None:  # type: ignore[no-untyped-def]
    trigger, first = _hunted_trigger(committee2of3)
    dependent = Log(committee2of3, trigger=trigger.stag_id).genesis()
    unrelated = Log(committee2of3).genesis()
    bob = SigningIdentity()
    envelope = trigger.submit(bob, 2)
    trigger.validate([envelope.intendo_id])
    second = trigger.hunt([envelope], level=2)
    trigger.apply(EntryKind.HUNT, second)
    dependent.expect_refused(InvalidInput, EntryKind.TRIGGER, Trigger(second, trigger.spec))  # a later hunt, not the first
    dependent.expect_refused(InvalidInput, EntryKind.TRIGGER, Trigger(first, unrelated.spec))  # another stag's spec
    forged = HuntCertificate(first.outcome, tuple(
        KeyholderSignature(i, KeyholderIdentity(f"k{i}").sign("hunt", first.outcome.digest())) for i in (1, 2)
    ))
    dependent.expect_refused(InvalidSignature, EntryKind.TRIGGER, Trigger(forged, trigger.spec))
    dependent.expect_refused(InvalidSignature, EntryKind.TRIGGER, Trigger(dataclasses.replace(first, signatures=first.signatures[:1]), trigger.spec))
    unrelated.expect_refused(InvalidInput, EntryKind.TRIGGER, Trigger(first, trigger.spec))  # it names no trigger
    assert not dependent.state.may_hunt()
    entry = dependent.apply(EntryKind.TRIGGER, Trigger(first, trigger.spec))
    assert dependent.state.may_hunt() and dependent.state.armed == first and dependent.state.armed_at == entry.height
    dependent.expect_refused(AlreadyExists, EntryKind.TRIGGER, Trigger(first, trigger.spec))


def test_a_stag_with_a_trigger_hunts_only_once_armed_and_its_first_hunt_names_the_cause(committee2of3) -> None:  # type: ignore[no-untyped-def]
    trigger, first = _hunted_trigger(committee2of3)
    dependent = Log(committee2of3, trigger=trigger.stag_id).genesis()
    carol, dave = SigningIdentity(), SigningIdentity()
    envelope = dependent.submit(carol)
    dependent.validate([envelope.intendo_id])
    dependent.expect_refused(IntegrityFailure, EntryKind.HUNT, dependent.hunt([envelope]))  # not armed
    dependent.apply(EntryKind.TRIGGER, Trigger(first, trigger.spec))
    assert dependent.state.cause == first.outcome.digest() == dependent.state.snapshot().cause
    dependent.expect_refused(IntegrityFailure, EntryKind.HUNT, dependent.hunt([envelope], cause=b""))
    dependent.expect_refused(IntegrityFailure, EntryKind.HUNT, dependent.hunt([envelope], cause=os.urandom(32)))
    dependent.apply(EntryKind.HUNT, dependent.hunt([envelope]))
    assert dependent.state.cause == b""  # only the first hunt names it
    later = dependent.submit(dave)
    dependent.validate([later.intendo_id])
    dependent.expect_refused(InvalidInput, EntryKind.HUNT, dependent.hunt([later], cause=first.outcome.digest()))
    dependent.apply(EntryKind.HUNT, dependent.hunt([later]))
    independent = Log(committee2of3).genesis()
    erin = SigningIdentity()
    other = independent.submit(erin)
    independent.validate([other.intendo_id])
    independent.expect_refused(InvalidInput, EntryKind.HUNT, independent.hunt([other], cause=first.outcome.digest()))


def test_a_trigger_spec_is_a_stag_id_and_carries_no_refund_pool(committee2of3) -> None:  # type: ignore[no-untyped-def]
    log = Log(committee2of3)
    with pytest.raises(InvalidInput, match="32-byte"):
        dataclasses.replace(log.spec, trigger=b"short").validate(log.context.row_width, log.info.committee_id)
    refund = RefundTerms(Account(SigningIdentity().verify_key, "pool"), 30, RefundMode.FIXED, 1, Account(SigningIdentity().verify_key, "pool"))
    capital = Log(committee2of3, kind=StagKind.CAPITAL, deadline=T0 + HOUR, refund=refund)
    with pytest.raises(InvalidInput, match="refund pool"):
        dataclasses.replace(capital.spec, trigger=os.urandom(32)).validate(log.context.row_width, log.info.committee_id)
