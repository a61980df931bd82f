"""Known-answer vectors (tests/vectors/records.json) for every record kind that is signed,
hashed or stored: a change to a record's fields, order, types or wire name changes the bytes
keyholders sign and store, and must show up here rather than silently.

The vectors were written by tools/generate_vectors.py; the same records encode identically
under the code before the layers were restructured (checked when they were written).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from support.vectors import from_json, to_json

from stagpack import codec
from stagpack.committee import CommitteeInfo, Transcript
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.log import CertificateBundle, HuntCertificate, ValidationCertificate

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
    (envelope,) = by_type[IntendoEnvelope]
    envelope.verify()
    (withdrawal,) = by_type[Withdrawal]
    withdrawal.verify()
    (transcript,) = by_type[Transcript]
    transcript.verify()
    committee = CommitteeInfo.from_transcript(transcript)
    (certificate,) = by_type[ValidationCertificate]
    certificate.verify(committee)
    (bundle,) = by_type[CertificateBundle]
    bundle.verify()
    (hunt,) = by_type[HuntCertificate]
    assert hunt == bundle.certificate


def test_every_signed_or_stored_record_kind_has_a_vector() -> None:
    covered = {vector["wire_name"] for vector in VECTORS}
    for wire_name in (
        "stagpack.StagSpec.v1", "stagpack.IntendoEnvelope.v1", "stagpack.Withdrawal.v1", "stagpack.LogEntry.v1",
        "stagpack.MaskCommitment.v1", "stagpack.PartialStatement.v1", "stagpack.HuntCertificate.v1",
        "stagpack.ValidationCertificate.v1", "stagpack.Transcript.v1", "stagpack.CertificateBundle.v1",
        "stagpack.keyholder.SessionRecord.v2", "stagpack.aggregator.SessionProgress.v1", "stagpack.keyholder.SealedBackups.v1",
    ):
        assert wire_name in covered
