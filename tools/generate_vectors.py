"""Write tests/vectors/records.json: known-answer vectors for the canonical encoding of every
record kind that is signed, hashed or stored (the self-test's records are hashed into the
signed transcript and into each keyholder's commitment; a call credential is signed over the
digest of its request, here a LogRange).

Run it only when a record gains a new wire version (its WIRE_NAME changes): the vectors pin the
bytes, and tests/unit/test_vectors.py fails when an edit changes them by accident. Every value is
fixed (Ed25519 signatures are deterministic, keys come from fixed seeds), so a run reproduces
the file exactly.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.vectors import to_json  # noqa: E402

from stagpack import codec  # noqa: E402
from stagpack.accounts import Account, Transfer, TransferKind, TransferStatement  # noqa: E402
from stagpack.aggregator.sessions import SessionProgress  # noqa: E402
from stagpack.calls import CallCredential, SignedCredential  # noqa: E402
from stagpack.committee import CommitteeInfo, KeyholderSignature, Participant, Transcript, TranscriptBody, TranscriptSignature  # noqa: E402
from stagpack.dkg.messages import CeremonyPlan, QuorumPartials, SelfTestCiphertexts, SelfTestCommitment  # noqa: E402
from stagpack.dkg.party import BackupHeader, IdentityShareHeader, partials_digest, self_test_digest, self_test_quorums  # noqa: E402
from stagpack.encoding import StagKind  # noqa: E402
from stagpack.envelope import IntendoEnvelope, IntendoStatement, Withdrawal, WithdrawalStatement  # noqa: E402
from stagpack.identity import KeyholderIdentity, SigningIdentity  # noqa: E402
from stagpack.keyholder.node import SealedBackup, SealedBackups  # noqa: E402
from stagpack.keyholder.store import BindingHunt, ServedStep, SessionRecord  # noqa: E402
from stagpack.log import (  # noqa: E402
    CertificateBundle,
    EntryKind,
    HuntCertificate,
    HuntOutcome,
    LogEntry,
    LogRange,
    Refund,
    SettlementCertificate,
    SettlementOutcome,
    Trigger,
    ValidationCertificate,
    ValidationOutcome,
    Void,
)
from stagpack.session import MaskCommitment, MaskReveal, PartialStatement, SessionKind, SessionRef, SignedCommitment, SignedPartial, Step  # noqa: E402
from stagpack.shield.elgamal import IdentityKey  # noqa: E402
from stagpack.shield.group import Point, Scalar  # noqa: E402
from stagpack.stag import StagSpec  # noqa: E402
from stagpack.terms import FeeTerms, RefundMode, RefundTerms  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "records.json"


def seeded(label: str) -> bytes:
    return hashlib.sha256(b"stagpack-vectors/" + label.encode()).digest()


def identity_key() -> IdentityKey:
    """A 2-of-3 identity key from a fixed polynomial f(z) = a + b·z: K = a·B, X_l = f(l)·B."""
    constant = Scalar.from_int(int.from_bytes(seeded("identity-a"), "little"))
    slope = Scalar.from_int(int.from_bytes(seeded("identity-b"), "little"))
    return IdentityKey(
        2, Point.base_times(constant).to_bytes(),
        tuple(Point.base_times(constant + slope * Scalar.from_int(index)).to_bytes() for index in (1, 2, 3)),
    )


def records() -> list[object]:
    keyholders = [KeyholderIdentity(f"keyholder-{i}", seeded(f"sign-{i}"), seeded(f"box-{i}")) for i in (1, 2, 3)]
    alice, bob = SigningIdentity(seeded("alice")), SigningIdentity(seeded("bob"))
    aggregator, coordinator = SigningIdentity(seeded("aggregator")), SigningIdentity(seeded("coordinator"))
    participants = tuple(
        Participant(i, k.name, k.verify_key, k.public.box_key, k.public.chain_address) for i, k in enumerate(keyholders, start=1)
    )
    ceremony_id = seeded("ceremony")[:16]
    plan = CeremonyPlan(
        ceremony_id=ceremony_id, parameters=b'{"max_fused_partials":32}', parties=3, threshold=2, fault_bound=1, noise_test=True,
        participants=participants, coordinator_key=coordinator.verify_key, aggregator_key=aggregator.verify_key,
    )
    # The self-test: every keyholder's two test ciphertexts (their digests go into the signed
    # transcript) and one keyholder's partials with its commitment to them (placeholder bytes:
    # only their hashes are pinned).
    tests = tuple(
        SelfTestCiphertexts(ceremony_id, i, (b"self-test ciphertext %d/first" % i, b"self-test ciphertext %d/second" % i)) for i in (1, 2, 3)
    )
    quorums = self_test_quorums(3, 2)
    partials = []
    for members in quorums:
        if 2 in members:
            on_behalf_of = (2, *(absent for absent in (1, 2, 3) if absent not in members))  # own, then stand-ins
            partials.append(QuorumPartials(members, 2, on_behalf_of, tuple(b"partial %r for %d" % (members, j) for j in on_behalf_of)))
    partials = tuple(partials)
    commitment_to_partials = SelfTestCommitment(ceremony_id, 2, partials_digest(partials))
    body = TranscriptBody(
        ceremony_id=ceremony_id, parameters=plan.parameters, parties=3, threshold=2, fault_bound=1, noise_test=True,
        participants=participants, coordinator_key=coordinator.verify_key, aggregator_key=aggregator.verify_key,
        chain=tuple(seeded(f"chain-{i}") for i in (1, 2, 3)), joint_public_key=seeded("chain-3"),
        evaluation_keys=seeded("evaluation"), rotation_steps=(1, 16, 256, 4096, 8192), self_test=self_test_digest(tests, quorums),
        identity_key=identity_key(),
    )
    transcript = Transcript(body, tuple(TranscriptSignature(i, k.sign("transcript", body.digest())) for i, k in enumerate(keyholders, start=1)))
    committee = CommitteeInfo.from_transcript(transcript)
    spec = StagSpec(
        committee=committee.committee_id, kind=StagKind.COUNT, levels=16, title="Strike if 9 of us do",
        eligibility=tuple(sorted((alice.verify_key, bob.verify_key))), epoch_millis=10_000,
        opens_at_millis=1_790_000_000_000, deadline_millis=1_790_086_400_000, payload=b"execute: strike", beneficiary=None,
        refund=None, fees=None, trigger=b"", hook=b"", anonymous=False, nonce=seeded("nonce")[:16],
    )
    statement = IntendoStatement(spec.stag_id, alice.verify_key, seeded("ciphertext"), 1, "", seeded("alice-nonce")[:16], 1_790_000_600_000)
    # A capital stag paying its hunts to a cooperative's account, an intendo backed by Bob's
    # "savings" escrow, and the deposit that funds it.
    capital_spec = StagSpec(
        committee=committee.committee_id, kind=StagKind.CAPITAL, levels=2048, title="Fund the solar roof (units of $100)",
        eligibility=(), epoch_millis=60_000, opens_at_millis=1_790_000_000_000, deadline_millis=0, payload=b"",
        beneficiary=Account(alice.verify_key, "roof-fund"), refund=None, fees=None, trigger=b"", hook=b"",
        anonymous=False, nonce=seeded("capital-nonce")[:16],
    )
    # A dominant-assurance stag: Alice escrows a pool of 40 that pays 2 to each intendo counted at
    # the deadline if it passes without a hunt; fees per submission and per executed member.
    refund_spec = StagSpec(
        committee=committee.committee_id, kind=StagKind.CAPITAL, levels=16, title="Bootstrap the pool (refunds if it fails)",
        eligibility=(), epoch_millis=60_000, opens_at_millis=1_790_000_000_000, deadline_millis=1_790_003_630_000,
        payload=b"", beneficiary=Account(alice.verify_key, "pool"),
        refund=RefundTerms(Account(alice.verify_key, "bonus-fund"), 40, RefundMode.FIXED, 2, Account(alice.verify_key, "bonus-fund")),
        fees=FeeTerms(1, 2, Account(keyholders[0].verify_key, "fees"), Account(aggregator.verify_key, "fees"), 60),
        trigger=b"", hook=b"", anonymous=False, nonce=seeded("refund-nonce")[:16],
    )
    refund_statement = IntendoStatement(
        refund_spec.stag_id, bob.verify_key, seeded("refund-ciphertext"), 3, "savings", seeded("bob-refund-nonce")[:16], 1_790_000_600_000
    )
    refund_envelope = IntendoEnvelope(refund_statement, bob.sign("intendo", codec.encode(refund_statement)))
    settlement = SettlementOutcome(
        refund_spec.stag_id, refund_spec.closing_epoch, 4, seeded("head-4"),
        (Refund(refund_envelope.intendo_id, Account(bob.verify_key, "savings"), 2),), 38,
    )
    settlement_certificate = SettlementCertificate(
        settlement, tuple(KeyholderSignature(i, keyholders[i - 1].sign("settlement", settlement.digest())) for i in (2, 3))
    )
    capital_statement = IntendoStatement(
        capital_spec.stag_id, bob.verify_key, seeded("capital-ciphertext"), 10, "savings", seeded("bob-nonce")[:16], 1_790_000_600_000
    )
    capital_envelope = IntendoEnvelope(capital_statement, bob.sign("intendo", codec.encode(capital_statement)))
    transfer_statement = TransferStatement(
        TransferKind.DEPOSIT, committee.committee_id, Account(bob.verify_key, "savings"), 10, seeded("deposit")[:16], 1_790_000_500_000
    )
    transfer = Transfer(transfer_statement, bob.sign("transfer", codec.encode(transfer_statement)))
    envelope = IntendoEnvelope(statement, alice.sign("intendo", codec.encode(statement)))
    withdrawal_statement = WithdrawalStatement(spec.stag_id, envelope.intendo_id, alice.verify_key, seeded("withdraw")[:16], 1_790_000_700_000)
    withdrawal = Withdrawal(withdrawal_statement, alice.sign("withdrawal", codec.encode(withdrawal_statement)))
    genesis = LogEntry(spec.stag_id, 1, bytes(32), 1_790_000_000_001, EntryKind.GENESIS, codec.encode(spec))
    submission = LogEntry(spec.stag_id, 2, genesis.digest(), 1_790_000_000_002, EntryKind.SUBMISSION, codec.encode(envelope))
    session = SessionRef(spec.stag_id, SessionKind.HUNT, 7, 5, seeded("head"))
    commitment = MaskCommitment(session, 2, (seeded("mask-0"), seeded("mask-1")))
    signed_commitment = SignedCommitment(commitment, keyholders[1].sign("mask-commitment", codec.encode(commitment)))
    partial = PartialStatement(session, Step.CHECK, 0, (2, 3), 2, 1, seeded("check"), hashlib.sha256(b"partial").digest())
    signed_partial = SignedPartial(partial, keyholders[1].sign("partial-decryption", codec.encode(partial)), b"partial")
    validation = ValidationOutcome(spec.stag_id, 1, 3, seeded("head-3"), (envelope.intendo_id,), (seeded("malformed"),), ())
    deferral = ValidationOutcome(spec.stag_id, 2, 9, seeded("head-9"), (), (), (seeded("noisy-batch-1"), seeded("noisy-batch-2")))
    validation_certificate = ValidationCertificate(
        validation, tuple(KeyholderSignature(i, keyholders[i - 1].sign("validation", validation.digest())) for i in (1, 3))
    )
    hunt = HuntOutcome(spec.stag_id, 7, 5, seeded("head"), 1, 0, (envelope,))
    hunt_facts = hunt.chain_facts(spec).digest(committee.committee_id)
    hunt_certificate = HuntCertificate(
        hunt, tuple(KeyholderSignature(i, keyholders[i - 1].sign("hunt", hunt.digest())) for i in (1, 2)),
        tuple(KeyholderSignature(i, keyholders[i - 1].chain_key.sign(hunt_facts)) for i in (1, 2)),
    )
    # A stag triggered by the strike stag ("we fund the strike if it happens"): armed by the
    # strike's first hunt (a trigger entry), its first hunt names that hunt as its cause.
    dependent_spec = StagSpec(
        committee=committee.committee_id, kind=StagKind.CAPITAL, levels=64, title="Fund the strike if it happens",
        eligibility=(), epoch_millis=10_000, opens_at_millis=1_790_000_000_000, deadline_millis=0, payload=b"",
        beneficiary=Account(alice.verify_key, "strike-fund"), refund=None, fees=None, trigger=spec.stag_id,
        hook=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"), anonymous=False, nonce=seeded("dependent-nonce")[:16],
    )
    dependent_statement = IntendoStatement(
        dependent_spec.stag_id, bob.verify_key, seeded("dependent-ciphertext"), 5, "savings", seeded("bob-dependent-nonce")[:16],
        1_790_000_600_000,
    )
    dependent_envelope = IntendoEnvelope(dependent_statement, bob.sign("intendo", codec.encode(dependent_statement)))
    composed_hunt = HuntOutcome(dependent_spec.stag_id, 1, 3, seeded("head-dependent"), 5, 0, (dependent_envelope,), hunt.digest())
    record = SessionRecord(
        session, (b"mask-0", b"mask-1"), signed_commitment, (signed_commitment,),
        (ServedStep(Step.CHECK, ((1, 2), (2, 3), (1, 3)), (signed_partial,)),), 0, b"", erased=False,
    )
    progress = SessionProgress(session, (signed_commitment,), (MaskReveal(2, (b"mask-0", b"mask-1")),), (signed_partial,))
    # A replica (keyholder 2) reading the log from the aggregator: the credential signs the
    # range it asks for (fixed nonce and time here; `sign_call` draws a fresh nonce).
    log_range = LogRange(spec.stag_id, 0, 2)
    credential = CallCredential(
        "ReadLog", keyholders[1].verify_key, aggregator.verify_key, 1_790_000_000_500, seeded("nonce-call")[:16],
        hashlib.sha256(codec.encode(log_range)).digest(),
    )
    signed_credential = SignedCredential(credential, keyholders[1].sign("call", codec.encode(credential)))
    anonymous_spec = StagSpec(
        committee=committee.committee_id, kind=StagKind.COUNT, levels=8, title="Come out if 5 colleagues do",
        eligibility=tuple(sorted((alice.verify_key, bob.verify_key))), epoch_millis=10_000,
        opens_at_millis=1_790_000_000_000, deadline_millis=0, payload=b"", beneficiary=None,
        refund=None, fees=None, trigger=b"", hook=b"", anonymous=True, nonce=seeded("anonymous-nonce")[:16],
    )
    return [
        spec, statement, envelope, withdrawal_statement, withdrawal, genesis, submission, session, commitment, signed_commitment,
        partial, signed_partial, validation, validation_certificate, hunt, hunt_certificate, body, transcript,
        CertificateBundle(hunt_certificate, spec, transcript), record, record.erase(), progress,
        SealedBackups((SealedBackup(1, b"sealed share of keyholder 1"), SealedBackup(3, b"sealed share of keyholder 3"))),
        BackupHeader(body.ceremony_id, 1, 2),
        deferral, plan, *tests, *partials, commitment_to_partials, log_range, credential, signed_credential,
        capital_spec, capital_statement, capital_envelope, transfer_statement, transfer,
        Void(capital_envelope.intendo_id, hunt_certificate, spec),
        BindingHunt(capital_spec.stag_id, 4, (Account(bob.verify_key, "savings"),)),
        refund_spec, refund_spec.refund, refund_spec.fees, refund_envelope, settlement, settlement_certificate,
        dependent_spec, Trigger(hunt_certificate, spec), composed_hunt,
        body.identity_key, anonymous_spec, IdentityShareHeader(body.ceremony_id, 1, 2),
    ]


def vector(record: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": f"{type(record).__module__}.{type(record).__qualname__}",
        "wire_name": codec.record_name(type(record)),
        "fields": to_json(record),
        "encoding": codec.encode(record).hex(),
    }
    for attribute in ("digest", "stag_id", "intendo_id", "committee_id", "session_id"):
        value = getattr(record, attribute, None)
        if callable(value):
            value = value()
        if isinstance(value, bytes):
            entry[attribute] = value.hex()
    return entry


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps([vector(record) for record in records()], indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
