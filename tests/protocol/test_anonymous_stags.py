"""Anonymous stags on a whole deployment (DESIGN.md §10.5): intendos ring-signed over the
eligibility list, nothing the aggregator logs or reports names a signer, one live intendo and
one withdrawal authority per member through the key image, and a hunt that names exactly its
members — every one of them — by the keyholders' proven decryptions.

The oracle is the plaintext PackSolver on the same thresholds, and the test's own record of who
signed which intendo (the test holds every member's key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from stagpack import codec
from stagpack.accounts import Account
from stagpack.aggregator.sessions import SessionProgress, SessionRunner
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import AlreadyExists, CommitteeUnavailable, InvalidInput, InvalidSignature
from stagpack.identity import SigningIdentity
from stagpack.log import CertificateBundle, EntryKind, HuntCertificate, HuntOutcome, decode_body
from stagpack.participant.sdk import count_threshold, prepare_intendo, prepare_withdrawal
from stagpack.shield.ring import Ring
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec
from support.protocol import EPOCH_MILLIS, replay_log, start_deployment

pytestmark = pytest.mark.protocol


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def deployment(scratch: Callable[[str], Path], clock: ManualClock):  # type: ignore[no-untyped-def]
    return start_deployment(scratch("anonymous"), 3, 2, clock)


class AnonymousStag:
    """An anonymous count stag, its eligible members, and the solver mirroring it."""

    def __init__(self, deployment, clock: ManualClock, members: int, levels: int = 8) -> None:  # type: ignore[no-untyped-def]
        self.deployment, self.clock = deployment, clock
        self.members = [SigningIdentity() for _ in range(members)]
        self.spec = StagSpec.new(
            committee=deployment.aggregator.committee.committee_id, kind=StagKind.COUNT, levels=levels,
            eligibility=tuple(member.verify_key for member in self.members), epoch_millis=EPOCH_MILLIS,
            opens_at_millis=clock(), anonymous=True,
        )
        deployment.aggregator.create_stag(self.spec)
        self.identity_key = deployment.aggregator.committee.require_identity_key().public_key
        self.solver = PackSolver(levels)
        self.signer_of: dict[bytes, SigningIdentity] = {}
        self.ciphertexts: dict[bytes, bytes] = {}

    def prepare(self, member: SigningIdentity, others: int):  # type: ignore[no-untyped-def]
        context = self.deployment.context
        return prepare_intendo(
            context, context.joint_key, self.spec, member, count_threshold(self.spec, others), identity_key=self.identity_key
        )

    def submit(self, member: SigningIdentity, others: int) -> bytes:
        prepared = self.prepare(member, others)
        self.deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
        self.solver.insert(prepared.intendo_id, others + 1, 1)
        self.signer_of[prepared.intendo_id] = member
        self.ciphertexts[prepared.intendo_id] = prepared.ciphertext
        return prepared.intendo_id

    def withdraw(self, member: SigningIdentity, intendo_id: bytes) -> None:
        self.deployment.aggregator.withdraw(prepare_withdrawal(member, self.spec.stag_id, intendo_id, spec=self.spec))
        self.solver.withdraw(intendo_id)

    def log_bytes(self) -> list[tuple[EntryKind, bytes]]:
        aggregator = self.deployment.aggregator
        height = aggregator.status(self.spec.stag_id).height
        return [(entry.kind, codec.encode(entry)) for entry, _ in aggregator.read_log(self.spec.stag_id, 0, height)]


def test_an_anonymous_hunt_names_nobody_before_and_exactly_its_members_after(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    stag = AnonymousStag(deployment, clock, members=6)
    aggregator = deployment.aggregator
    ann, bea, cai, dov, eli, fay = stag.members
    firing = [stag.submit(member, 2) for member in (ann, bea, cai)]  # "if at least 2 others do": these three fire
    stag.submit(dov, 5)  # never reached
    eli_intendo = stag.submit(eli, 1)  # would fire too, but withdraws first

    # One live intendo per member: the key image is the same whatever the intendo.
    with pytest.raises(AlreadyExists, match="already has a live intendo"):
        prepared = stag.prepare(ann, 3)
        aggregator.submit(prepared.envelope, prepared.ciphertext)
    # Only eli can withdraw eli's intendo: fay's ring signature shows another key image.
    with pytest.raises(InvalidInput, match="only the intendo's signer"):
        aggregator.withdraw(prepare_withdrawal(fay, stag.spec.stag_id, eli_intendo, spec=stag.spec))
    stag.withdraw(eli, eli_intendo)

    # Nothing the aggregator logs or reports names a member.
    keys = [member.verify_key for member in stag.members]
    for kind, encoded in stag.log_bytes():
        if kind is not EntryKind.GENESIS:  # the genesis is the spec, which lists who is eligible
            assert not any(key in encoded for key in keys), kind
    for intendo_id in stag.signer_of:
        assert aggregator.intendo(stag.spec.stag_id, intendo_id).envelope.statement.participant not in keys

    clock.advance(EPOCH_MILLIS)
    aggregator.run_due(stag.spec.stag_id)
    expected = stag.solver.hunt()
    assert expected is not None and expected.members == tuple(firing)
    (certificate,) = aggregator.hunts(stag.spec.stag_id)
    assert certificate.outcome.member_ids == expected.members
    # The hunt names exactly its members, every one, in order: the test knows who signed what.
    assert certificate.revealed == tuple(stag.signer_of[intendo_id].verify_key for intendo_id in expected.members)
    assert dov.verify_key not in codec.encode(certificate) and eli.verify_key not in codec.encode(certificate)
    CertificateBundle(certificate, stag.spec, deployment.bundle.transcript).verify()
    # An independent replica of the public log accepts every entry, the hunt included.
    replica = replay_log(deployment, stag.spec.stag_id, stag.ciphertexts)
    assert replica.hunts == [certificate]
    stag.solver.execute(expected)

    # A certificate that leaves one member unnamed, or names someone else, is refused.
    committee = aggregator.committee
    short = HuntCertificate(certificate.outcome, certificate.signatures, certificate.attestations, certificate.identities[:-1])
    with pytest.raises(InvalidInput, match="names every member"):
        short.verify(committee, stag.spec)
    first = certificate.identities[0]
    lying = type(first)(first.intendo_id, fay.verify_key, first.shares)
    with pytest.raises(InvalidInput, match="not what the member's intendo encrypted"):
        HuntCertificate(certificate.outcome, certificate.signatures, certificate.attestations,
                        (lying, *certificate.identities[1:])).verify(committee, stag.spec)


def test_outsiders_and_forged_rings_are_refused(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    stag = AnonymousStag(deployment, clock, members=3)
    aggregator = deployment.aggregator
    outsider = SigningIdentity()
    with pytest.raises(InvalidInput, match="not a member of the ring"):
        stag.prepare(outsider, 1)
    # The outsider signs in a ring of its own making that includes itself: refused, and the log
    # does not move.
    widened = Ring(stag.spec.stag_id, [*stag.spec.eligibility[:2], outsider.verify_key])
    prepared = stag.prepare(stag.members[0], 1)
    forged = IntendoEnvelope.sign_anonymously(
        widened, outsider, stag.identity_key, prepared.envelope.statement.ciphertext_digest, prepared.envelope.statement.expires_at_millis
    )
    height = aggregator.status(stag.spec.stag_id).height
    with pytest.raises(InvalidSignature):
        aggregator.submit(forged, prepared.ciphertext)
    # A member's envelope whose identity ciphertext was swapped for another member's is refused.
    other = stag.prepare(stag.members[1], 1)
    signature = prepared.envelope.ring_signature()
    swapped = type(signature)(signature.key_image, other.envelope.ring_signature().identity, signature.challenge,
                              signature.key_responses, signature.encryption_responses)
    with pytest.raises(InvalidSignature):
        aggregator.submit(IntendoEnvelope(prepared.envelope.statement, codec.encode(swapped)), prepared.ciphertext)
    assert aggregator.status(stag.spec.stag_id).height == height


def test_keyholders_release_no_identity_outside_the_hunt_they_certify(deployment, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A malicious aggregator asks the keyholders to certify a hunt that also names a member
    who did not fire, to learn who signed that intendo: every keyholder recomputes the outcome
    itself and refuses, so no identity share of anyone leaves."""
    stag = AnonymousStag(deployment, clock, members=4)
    ann, bea, cai, dov = stag.members
    stag.submit(ann, 1)
    stag.submit(bea, 1)
    hidden = stag.submit(cai, 3)  # does not fire with two others
    certify = SessionRunner._certify
    released: list[object] = []

    def widen(self: SessionRunner, progress: SessionProgress, outcome: object, live: set[int]) -> object:
        if not (isinstance(outcome, HuntOutcome) and outcome.stag_id == stag.spec.stag_id):
            return certify(self, progress, outcome, live)  # type: ignore[arg-type]
        extra = deployment.aggregator.intendo(stag.spec.stag_id, hidden).envelope
        widened = HuntOutcome(outcome.stag_id, outcome.epoch, outcome.height, outcome.head, outcome.level + 1,
                              outcome.executed_weight, (*outcome.members, extra), outcome.cause)
        result = certify(self, progress, widened, live)
        released.append(result)  # reached only if t keyholders certified the widened hunt
        return result

    monkeypatch.setattr(SessionRunner, "_certify", widen)
    clock.advance(EPOCH_MILLIS)
    with pytest.raises(CommitteeUnavailable, match="differs from what this keyholder fused"):
        deployment.aggregator.run_due(stag.spec.stag_id)
    assert released == [] and deployment.aggregator.hunts(stag.spec.stag_id) == []
    monkeypatch.undo()
    deployment.aggregator.run_due(stag.spec.stag_id)  # the honest hunt: ann and bea, named; cai stays hidden
    (certificate,) = deployment.aggregator.hunts(stag.spec.stag_id)
    assert certificate.revealed == (ann.verify_key, bea.verify_key)
    entries = [decode_body(entry, HuntCertificate) for entry, _ in deployment.aggregator.read_log(
        stag.spec.stag_id, 0, deployment.aggregator.status(stag.spec.stag_id).height) if entry.kind is EntryKind.HUNT]
    assert entries == [certificate] and cai.verify_key not in codec.encode(certificate)


def test_a_keyholder_with_a_false_identity_share_cannot_name_the_wrong_member(deployment, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A malicious keyholder (one of f) releases shares computed with a wrong secret, to make the
    hunt name someone else: the aggregator checks every share's Chaum–Pedersen proof, drops that
    keyholder's, and names the members from the honest t; replicas would refuse any other."""
    stag = AnonymousStag(deployment, clock, members=3)
    ann, bea, cai = stag.members
    stag.submit(ann, 1)
    stag.submit(bea, 1)
    liar = deployment.nodes[0]
    honest_release = type(liar)._release_identities

    def lie(self, outcome):  # type: ignore[no-untyped-def]
        shares = honest_release(self, outcome)
        if self is not liar:
            return shares
        # a share of another ciphertext: well-formed, with a valid proof for the wrong statement
        other = stag.prepare(cai, 1).envelope.identity_ciphertext()
        from stagpack.shield import elgamal

        forged = elgamal.decryption_share(self.index, self._identity_secret, other)
        return tuple(type(share)(share.keyholder, forged.share, forged.proof_challenge, forged.proof_response) for share in shares)

    monkeypatch.setattr(type(liar), "_release_identities", lie)
    clock.advance(EPOCH_MILLIS)
    deployment.aggregator.run_due(stag.spec.stag_id)
    (certificate,) = deployment.aggregator.hunts(stag.spec.stag_id)
    assert certificate.revealed == (ann.verify_key, bea.verify_key)
    assert all(share.keyholder != liar.index for release in certificate.identities for share in release.shares)


def test_an_ordinary_stag_names_every_signer_in_its_log(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    """The attack anonymous stags exist for, on an ordinary stag: the operator's log names every
    signer the moment it submits (the professor's colleagues would know she signed)."""
    members = [SigningIdentity() for _ in range(3)]
    spec = StagSpec.new(
        committee=deployment.aggregator.committee.committee_id, kind=StagKind.COUNT, levels=8,
        eligibility=tuple(member.verify_key for member in members), epoch_millis=EPOCH_MILLIS, opens_at_millis=clock(),
    )
    deployment.aggregator.create_stag(spec)
    context = deployment.context
    prepared = prepare_intendo(context, context.joint_key, spec, members[0], count_threshold(spec, 4))
    deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
    height = deployment.aggregator.status(spec.stag_id).height
    (entry, _), = [item for item in deployment.aggregator.read_log(spec.stag_id, 0, height) if item[0].kind is EntryKind.SUBMISSION]
    assert members[0].verify_key in codec.encode(entry)


def test_the_shielded_demo_names_the_members_and_forges_a_proof(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`stagpack demo --shielded` (the end of `make demo`) agrees with the solver and the true signers."""
    import time

    from stagpack.app.shield_demo import shielded_scene

    assert shielded_scene(time.monotonic(), tmp_path) == []
    out = capsys.readouterr().out
    assert "its log names: nobody" in out and "names, by 2 keyholders' proven decryptions each: prof, ana, ben, cho" in out
    assert "still hidden: dev" in out and "checks exactly like" in out


def test_refusals_cost_no_ring_verification(deployment, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: a garbage anonymous envelope (an expired one, a random key image) cost a
    full ring verification, under the stag's write lock, before it was refused; and a hunt
    certificate's members were ring-checked before its keyholder signatures. Cheap checks now
    come first, so neither costs one."""
    from stagpack.shield import ring as ring_module

    stag = AnonymousStag(deployment, clock, members=4)
    good = stag.prepare(stag.members[0], 1)
    verified: list[int] = []
    real_verify = ring_module.verify

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        verified.append(1)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(ring_module, "verify", counting)
    statement = good.envelope.statement
    expired = IntendoEnvelope(type(statement)(statement.stag_id, statement.participant, statement.ciphertext_digest, 1, "",
                                              statement.nonce, clock() - 1), good.envelope.signature)
    with pytest.raises(InvalidInput, match="expired"):
        deployment.aggregator.submit(expired, good.ciphertext)
    assert verified == []
    deployment.aggregator.submit(good.envelope, good.ciphertext)
    assert len(verified) == 1  # once, although it was checked before the lock, under it, and when applied
    for member in stag.members[1:3]:
        stag.submit(member, 1)
    clock.advance(EPOCH_MILLIS)
    deployment.aggregator.run_due(stag.spec.stag_id)
    (certificate,) = deployment.aggregator.hunts(stag.spec.stag_id)
    verified.clear()
    unsigned = HuntCertificate(certificate.outcome, (), certificate.attestations, certificate.identities)
    with pytest.raises(InvalidSignature, match="hunt: 0 keyholder signatures"):
        unsigned.verify(deployment.aggregator.committee, stag.spec)
    assert verified == []


def test_a_hunt_naming_two_intendos_of_one_member_is_inconsistent(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    """One member's key image on two members of a hunt: one of them was never live at once."""
    stag = AnonymousStag(deployment, clock, members=3)
    first, second = stag.prepare(stag.members[0], 1), stag.prepare(stag.members[0], 1)
    outcome = HuntOutcome(stag.spec.stag_id, 1, 3, bytes(32), 2, 0, (first.envelope, second.envelope))
    with pytest.raises(InvalidInput, match="two intendos of one member"):
        outcome.check_consistency(stag.spec, deployment.aggregator.committee)


def test_an_anonymous_stag_is_sized_so_its_certificates_fit_a_message(deployment) -> None:  # type: ignore[no-untyped-def]
    """Review finding: at a ring of 1,024 each member adds about 77 kB to its hunt's certificate,
    and 56 members overflowed the 4 MiB status message (876 the 64 MiB record limit): the
    levels of an anonymous stag are bounded by its ring."""
    from stagpack.stag import max_anonymous_members

    keys = tuple(sorted(SigningIdentity().verify_key for _ in range(1024)))
    committee = deployment.aggregator.committee.committee_id
    most = max_anonymous_members(1024)
    StagSpec.new(committee=committee, kind=StagKind.COUNT, levels=most + 1, eligibility=keys, anonymous=True).validate(8192, committee)
    with pytest.raises(InvalidInput, match=f"holds at most {most} members"):
        StagSpec.new(committee=committee, kind=StagKind.COUNT, levels=most + 2, eligibility=keys, anonymous=True).validate(8192, committee)
    with pytest.raises(InvalidInput, match="only count stags can be anonymous"):
        StagSpec.new(committee=committee, kind=StagKind.CAPITAL, levels=8, eligibility=keys[:4], anonymous=True,
                     beneficiary=Account(keys[0], "fund")).validate(8192, committee)
