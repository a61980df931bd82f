"""Known-answer vectors (tests/vectors/records.json) for every record kind that is signed,
hashed or stored: a change to a record's fields, order, types or wire name changes the bytes
keyholders sign and store, and must show up here rather than silently.

The vectors were written by tools/generate_vectors.py; the same records encode identically
under the code before the layers were restructured (checked when they were written). They were
written again for the security changes (TranscriptBody.v2, CeremonyPlan.v2, ValidationOutcome.v2,
call credentials, log ranges, the self-test's records); every record kind whose wire name did
not change was checked to encode its old vector's fields to the old bytes first. The records
that changed values (a stag names its committee, whose id is the v2 transcript body's digest)
changed only through the ones that changed version. They were written again for shielded participation (StagSpec.v5's
`anonymous`, TranscriptBody.v3's identity key, HuntCertificate.v3's released identities), under
the same rule, checked the same way; the randomized shielded proofs have their own vectors in
tests/vectors/shield.json.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from support.vectors import from_json, to_json

from stagpack import codec
from stagpack.calls import ReplayGuard, SignedCredential
from stagpack.committee import CommitteeInfo, Transcript
from stagpack.dkg.messages import QuorumPartials, SelfTestCiphertexts, SelfTestCommitment
from stagpack.dkg.party import partials_digest, self_test_digest, self_test_quorums
from stagpack.accounts import Transfer
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.errors import Unauthenticated
from stagpack.log import CertificateBundle, HuntCertificate, LogRange, SettlementCertificate, ValidationCertificate
from stagpack.stag import StagSpec

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "records.json").read_text())


def record_type(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{index}-{vector['wire_name']}" for index, vector in enumerate(VECTORS)])
def test_known_answer(vector: dict[str, Any]) -> None:
    cls = record_type(vector["type"])
    record = from_json(cls, vector["fields"])
    encoding = bytes.fromhex(vector["encoding"])
    assert codec.record_name(cls) == vector["wire_name"]
    assert codec.encode(record) == encoding
    assert codec.decode(cls, encoding) == record
    assert to_json(record) == vector["fields"]
    for attribute in ("digest", "stag_id", "intendo_id", "committee_id", "session_id"):
        if attribute in vector:
            value = getattr(record, attribute)
            assert (value() if callable(value) else value).hex() == vector[attribute], attribute


def test_the_signatures_in_the_vectors_verify() -> None:
    """The vectors carry real Ed25519 signatures under fixed keys, so they also pin the signing
    domains: a participant's envelope and withdrawal, the committee transcript, certificates."""
    by_type: dict[type, list[Any]] = {}
    for vector in VECTORS:
        cls = record_type(vector["type"])
        by_type.setdefault(cls, []).append(from_json(cls, vector["fields"]))
    count_envelope, capital_envelope, refund_envelope = by_type[IntendoEnvelope]
    for envelope in (count_envelope, capital_envelope, refund_envelope):
        envelope.verify()
    assert (count_envelope.statement.capital_tag, capital_envelope.statement.capital_tag) == ("", "savings")
    (transfer,) = by_type[Transfer]
    transfer.verify(transfer.statement.expires_at_millis, transfer.statement.committee)  # an owner-signed deposit, signed under "transfer"
    (withdrawal,) = by_type[Withdrawal]
    withdrawal.verify()
    (transcript,) = by_type[Transcript]
    transcript.verify()
    committee = CommitteeInfo.from_transcript(transcript)
    (certificate,) = by_type[ValidationCertificate]
    certificate.verify(committee)
    (bundle,) = by_type[CertificateBundle]
    bundle.verify()
    # A settlement of refunds, certified by keyholders 2 and 3 under "settlement"; its refund
    # stag's spec validates and pays the fixed bonus it promises.
    (settlement,) = by_type[SettlementCertificate]
    settlement.verify(committee)
    refund_spec = next(spec for spec in by_type[StagSpec] if spec.refund is not None)
    refund_spec.validate(8192, committee.committee_id)
    assert refund_spec.stag_id == settlement.outcome.stag_id == refund_envelope.statement.stag_id
    assert refund_spec.refund is not None and refund_spec.refund.payouts([3]) == ((2,), 38)
    (hunt,) = by_type[HuntCertificate]
    assert hunt == bundle.certificate
    # A call credential: keyholder 2, a replica, reading the log from the aggregator the
    # transcript names. The callee's own check admits it once, for exactly that range.
    (signed,) = by_type[SignedCredential]
    (wanted,) = by_type[LogRange]
    credential = signed.credential
    assert credential.caller == committee.verify_key(2) and credential.audience == committee.aggregator_key
    guard = ReplayGuard(30_000)
    request = codec.encode(wanted)
    assert guard.admit(signed, "ReadLog", committee.aggregator_key, request, frozenset(committee.verify_keys), credential.issued_at_millis) == credential.caller
    with pytest.raises(Unauthenticated, match="replay"):
        guard.admit(signed, "ReadLog", committee.aggregator_key, request, frozenset(committee.verify_keys), credential.issued_at_millis)


def test_the_signed_transcript_commits_to_the_self_test_records() -> None:
    """The transcript's self_test field is the digest of every keyholder's test ciphertexts and
    the quorums tested; a keyholder's commitment is the digest of its partials."""
    by_type: dict[type, list[Any]] = {}
    for vector in VECTORS:
        cls = record_type(vector["type"])
        by_type.setdefault(cls, []).append(from_json(cls, vector["fields"]))
    (transcript,) = by_type[Transcript]
    body = transcript.body
    tests = by_type[SelfTestCiphertexts]
    assert [test.index for test in tests] == list(range(1, body.parties + 1))
    assert body.self_test == self_test_digest(tests, self_test_quorums(body.parties, body.threshold))
    (commitment,) = by_type[SelfTestCommitment]
    mine = [partials for partials in by_type[QuorumPartials] if partials.producer == commitment.index]
    assert commitment.ceremony_id == body.ceremony_id and commitment.digest == partials_digest(mine)


def test_every_signed_or_stored_record_kind_has_a_vector() -> None:
    covered = {vector["wire_name"] for vector in VECTORS}
    for wire_name in (
        "stagpack.StagSpec.v5", "stagpack.HuntOutcome.v2", "stagpack.HuntCertificate.v3", "stagpack.Trigger.v1", "stagpack.IntendoEnvelope.v2", "stagpack.Transfer.v1", "stagpack.Void.v1",
        "stagpack.RefundTerms.v1", "stagpack.FeeTerms.v1", "stagpack.SettlementOutcome.v1", "stagpack.SettlementCertificate.v1",
            "stagpack.keyholder.BindingHunt.v1", "stagpack.Withdrawal.v1", "stagpack.LogEntry.v1",
        "stagpack.MaskCommitment.v1", "stagpack.PartialStatement.v1",
        "stagpack.ValidationOutcome.v2", "stagpack.ValidationCertificate.v1", "stagpack.TranscriptBody.v3", "stagpack.IdentityKey.v1", "stagpack.IdentityShareHeader.v1",
        "stagpack.Transcript.v1", "stagpack.CertificateBundle.v1", "stagpack.CeremonyPlan.v2",
        "stagpack.keyholder.SessionRecord.v2", "stagpack.aggregator.SessionProgress.v1", "stagpack.keyholder.SealedBackups.v1",
        "stagpack.CallCredential.v1", "stagpack.SignedCredential.v1", "stagpack.LogRange.v1",
        "stagpack.SelfTestCiphertexts.v1", "stagpack.SelfTestCommitment.v1", "QuorumPartials",
    ):
        assert wire_name in covered, wire_name
    # A deferring validation outcome is pinned too (its deferred field non-empty).
    assert any(vector["wire_name"] == "stagpack.ValidationOutcome.v2" and vector["fields"]["deferred"] for vector in VECTORS)
