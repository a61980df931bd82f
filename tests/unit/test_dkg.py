"""Unit tests for the key-generation ceremony (stagpack.dkg): the real driver `run_ceremony`
over in-process peers (`LocalCeremonyPeer(DkgParty(...))`, every record crossing a byte
boundary), the keyholder state machine, plan validation, transcript verification and sealed
backup boxes.

Each ceremony gets its own FheContext (a context binds exactly one committee key). The oracle
for "the keys work" is numpy: the joint key encrypts random vectors, and every quorum of the
parties' outcomes (with stand-in partials for t < n) decrypts them, also after a product and
rotations with the joint evaluation keys.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import os
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterator

import numpy as np
import pytest

from support.committees import AGGREGATOR, COORDINATOR, release_shared_committees, shared_committee
from support.unit import coefficient_regions, decrypt
from stagpack import codec
from stagpack.decrypt import DecryptingParty, Quorum
from stagpack.calls import Call, Request, Response
from stagpack.dkg import CeremonyOutcome, CommitteeBundle, DkgParty, LocalCeremonyPeer, Phase, run_ceremony
from stagpack.dkg.rounds import BACKUP, DELIVER_BACKUPS, PLAN, SELF_TEST_REVEAL, SIGN
from stagpack.committee import Transcript
from stagpack.dkg.messages import (
    Acknowledgement,
    BackupBox,
    BackupRequest,
    BackupResponse,
    CeremonyPlan,
    ChainRequest,
    ChainResponse,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    RoundOneRequest,
    QuorumPartials,
    RoundTwoRequest,
    SelfTestCommitment,
    SelfTestCommitRequest,
    SelfTestRequest,
    SelfTestResponse,
    SelfTestRevealRequest,
    SignRequest,
)
from stagpack.committee import Participant, TranscriptSignature, default_fault_bound
from stagpack.dkg.party import BackupHeader, evaluate_self_test, partials_digest, self_test_quorums
from stagpack.errors import IntegrityFailure, InvalidInput, InvalidSignature, PolicyRefusal, WrongPhase
from stagpack.fhe import FheContext, FheParameters
from stagpack.identity import KeyholderIdentity, SigningIdentity, check_verify_key
from stagpack.committee import CommitteeInfo

P = 65537


# --- running ceremonies ----------------------------------------------------------------------


class RecordingPeer(LocalCeremonyPeer):
    """A local peer that lets the test see every backup box; in the 2-of-3 ceremony, before
    delivering the real boxes to keyholder 1, it tries tampered deliveries and records how each
    was answered."""

    def __init__(self, party: DkgParty, ceremony: Ceremony, position: int) -> None:
        super().__init__(party, ceremony.identities[position].public)
        self._ceremony = ceremony
        self._position = position
        self.dkg_party = party

    @property
    def outcome(self) -> CeremonyOutcome | None:
        return self.dkg_party.outcome

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        if call is DELIVER_BACKUPS and self._position == 0 and (self._ceremony.parties, self._ceremony.threshold) == (3, 2):
            assert isinstance(request, DeliverBackupsRequest)
            self._ceremony.tampered = try_tampered_deliveries(self._ceremony, self.dkg_party, request)
        response = super().call(call, request)
        if call is BACKUP:
            assert isinstance(response, BackupResponse)
            self._ceremony.boxes.extend(response.boxes)
        return response


@dataclass
class Ceremony:
    parties: int
    threshold: int
    context: FheContext
    identities: list
    peers: list = field(default_factory=list)
    boxes: list[BackupBox] = field(default_factory=list)
    tampered: dict[str, str] = field(default_factory=dict)
    bundle: CommitteeBundle | None = None
    progress: list[tuple[int, int]] = field(default_factory=list)  # (done, total) as reported

    def decrypting_parties(self) -> list[DecryptingParty]:
        parties = []
        for index, peer in enumerate(self.peers, start=1):
            assert peer.outcome is not None
            parties.append(DecryptingParty(self.context, index, peer.outcome.secret, peer.outcome.backups, self.parties, self.threshold))
        return parties


@dataclass
class _DecryptionView:
    """The shape `_unit_support.decrypt` expects (like conftest's Committee)."""

    context: FheContext
    parties: list[DecryptingParty]
    threshold: int

    def quorum(self, members: tuple[int, ...] | None = None) -> Quorum:
        count = len(self.parties)
        return Quorum(count, self.threshold, members or tuple(range(1, count + 1)))

    def partials(self, ciphertext, quorum):  # type: ignore[no-untyped-def]
        return [share for party in self.parties if party.index in quorum.members for share in party.partials(ciphertext, [quorum])]


@pytest.fixture(scope="module", autouse=True)
def _release_ceremonies() -> Iterator[None]:
    """The cached ceremonies hold every party's key material and recorded messages (gigabytes
    with n = 7): let them go once this module is done, or the suite runs out of memory."""
    yield
    ceremony.cache_clear()
    gc.collect()


@functools.lru_cache(maxsize=None)
def ceremony(parties: int, threshold: int) -> Ceremony:
    """Run one real ceremony (cached: ceremonies cost seconds)."""
    return _run(parties, threshold)


def _from_shared(parties: int, threshold: int) -> Ceremony:
    """The ceremony test_decrypt's committee came from (support.committees.shared_committee),
    seen as this module's Ceremony."""
    committee = shared_committee(parties, threshold)
    result = Ceremony(parties, threshold, committee.context, list(committee.identities), bundle=committee.bundle)
    result.peers = [RecordingPeer(party, result, position) for position, party in enumerate(committee.dkg_parties)]
    result.progress = list(committee.progress)
    return result


def _run(parties: int, threshold: int) -> Ceremony:
    context = FheContext()
    identities = [KeyholderIdentity(f"dkg-test-{parties}-{threshold}-{index}") for index in range(1, parties + 1)]
    result = Ceremony(parties, threshold, context, identities)
    result.peers = [
        RecordingPeer(DkgParty(context, identity, coordinator_key=COORDINATOR.verify_key), result, position)
        for position, identity in enumerate(identities)
    ]
    result.bundle = run_ceremony(
        context, result.peers, threshold, lambda what, done, total: result.progress.append((done, total)),
        aggregator_key=AGGREGATOR.verify_key, coordinator_key=COORDINATOR.verify_key,
    )
    return result


SHAPES = [(1, 1), (2, 2), (3, 2), (3, 3), (5, 3), pytest.param((7, 4), marks=pytest.mark.slow)]
SHARED = {(1, 1), (2, 2), (3, 2), (3, 3)}  # small ceremonies other tests of this module use too
ACROSS_MODULES = {(5, 3)}  # the same ceremony as test_decrypt's 3-of-5 committee


@pytest.fixture(scope="class", params=SHAPES, ids=lambda shape: f"{shape[0]}-{shape[1]}")
def shaped(request: pytest.FixtureRequest) -> Iterator[Ceremony]:
    """One ceremony per shape. pytest runs every test of the class for one shape before the
    next shape's, so a large committee (gigabytes of key material with n = 7) is let go once
    its tests are done, the last one at the end of the class."""
    parties, threshold = request.param
    if (parties, threshold) in SHARED:
        yield ceremony(parties, threshold)
        return
    across = (parties, threshold) in ACROSS_MODULES
    result = _from_shared(parties, threshold) if across else _run(parties, threshold)
    yield result
    # pytest keeps the fixture's value until its teardown is over: drop what it holds.
    result.peers.clear()
    result.boxes.clear()
    result.bundle = None
    result.context = None  # type: ignore[assignment]
    if across:
        release_shared_committees()
    gc.collect()
    FheContext.release_unused_evaluation_keys()


class TestEveryShape:
    """The ceremony and its keys, for each committee shape."""

    def test_ceremony_produces_a_verified_transcript(self, shaped: Ceremony) -> None:
        _verified_transcript(shaped)

    def test_joint_key_encrypts_and_every_quorum_decrypts(self, shaped: Ceremony) -> None:
        _every_quorum_decrypts(shaped)


def _verified_transcript(shaped: Ceremony) -> None:
    result = shaped
    parties, threshold = result.parties, result.threshold
    assert [done for done, _ in result.progress] == list(range(1, len(result.progress) + 1))
    assert result.progress[-1][0] == result.progress[-1][1]  # progress reaches 100%
    bundle = result.bundle
    assert bundle is not None
    transcript = bundle.transcript
    transcript.verify()
    body = transcript.body
    assert (body.parties, body.threshold) == (parties, threshold)
    # f defaults to 1 where the committee has a keyholder to spare; the noise test is on; the
    # transcript names the coordinator that ran it and the one aggregator it serves.
    assert body.fault_bound == (1 if threshold < parties else 0) == default_fault_bound(parties, threshold)
    assert body.noise_test is True
    assert (body.coordinator_key, body.aggregator_key) == (COORDINATOR.verify_key, AGGREGATOR.verify_key)
    info = CommitteeInfo.from_transcript(transcript)
    assert (info.fault_bound, info.noise_test, info.decrypting) == (body.fault_bound, True, threshold + body.fault_bound)
    assert (info.coordinator_key, info.aggregator_key) == (COORDINATOR.verify_key, AGGREGATOR.verify_key)
    assert len(body.self_test) == 32
    assert len(body.ceremony_id) == 16
    assert FheParameters.from_bytes(body.parameters) == FheParameters()
    assert [(p.index, p.name, p.verify_key, p.box_key) for p in body.participants] == [
        (index, identity.name, identity.public.verify_key, identity.public.box_key)
        for index, identity in enumerate(result.identities, start=1)
    ]
    assert len(body.chain) == parties
    assert body.joint_public_key == hashlib.sha256(bundle.joint_public_key).digest() == body.chain[-1]
    assert body.rotation_steps == result.context.rotation_steps
    assert sorted(signature.index for signature in transcript.signatures) == list(range(1, parties + 1))
    # The committee id is the body digest, stable across encodings and every party's copy.
    assert bundle.committee_id == body.digest() == transcript.committee_id
    assert Transcript.from_bytes(transcript.to_bytes()).committee_id == bundle.committee_id
    assert CommitteeInfo.from_transcript(transcript).committee_id == bundle.committee_id
    assert CommitteeInfo.from_transcript(transcript).verify_keys == tuple(i.public.verify_key for i in result.identities)
    for peer in result.peers:
        assert peer.outcome is not None
        assert peer.outcome.transcript_bytes == transcript.to_bytes()
        assert peer.outcome.joint_public_key == bundle.joint_public_key
        assert peer.party.phase is Phase.COMPLETE
        expected_backups = set(range(1, parties + 1)) - {peer.party.index} if threshold < parties else set()
        assert set(peer.outcome.backups) == expected_backups


def _every_quorum_decrypts(shaped: Ceremony) -> None:
    result = shaped
    parties, threshold = result.parties, result.threshold
    context = result.context
    assert result.bundle is not None
    joint = context.public_key_from_bytes(result.bundle.joint_public_key)
    assert joint.key_tag == context.joint_key.key_tag
    rng = np.random.default_rng(parties * 10 + threshold)
    first = rng.integers(0, P, context.slot_count)
    second = rng.integers(0, P, context.slot_count)
    encrypted_first, encrypted_second = context.encrypt(joint, first), context.encrypt(joint, second)
    view = _DecryptionView(context, result.decrypting_parties(), threshold)
    width = context.row_width
    evaluated = context.add(context.rotate(context.multiply(encrypted_first, encrypted_second), 1), context.rotate(encrypted_first, width))
    product = first * second % P
    expected = (np.concatenate([np.roll(product[:width], -1), np.roll(product[width:], -1)]) + np.concatenate([first[width:], first[:width]])) % P
    quorums = [tuple(range(1, parties + 1))]
    if threshold < parties:
        quorums += _quorums_to_decrypt_with(parties, threshold)
    for members in quorums:
        assert np.array_equal(decrypt(view, encrypted_first, members), first), members
    assert np.array_equal(decrypt(view, evaluated, quorums[-1]), expected)
    assert np.array_equal(decrypt(view, evaluated, quorums[0]), expected)


EVERY_QUORUM_UP_TO = 10  # t-subsets tried one by one; beyond, a set that uses every backup share


def _quorums_to_decrypt_with(parties: int, threshold: int) -> list[tuple[int, ...]]:
    """Every quorum of t for the smaller committees. For 4-of-7 (35 quorums, 420 stand-in keys,
    12 s) the cyclic windows of t keyholders: seven quorums in which every keyholder stands in
    for every other at least once, so that every backup share decrypts; that any t-subset does is
    what the ceremony's own self-test establishes (it passed, or no keyholder would have signed;
    test_self_test_quorums_pin_every_keyholders_shares checks its family)."""
    every = list(combinations(range(1, parties + 1), threshold))
    if len(every) <= EVERY_QUORUM_UP_TO:
        return every
    windows = sorted({tuple(sorted((start + offset) % parties + 1 for offset in range(threshold))) for start in range(parties)})
    for member in range(1, parties + 1):
        for absent in range(1, parties + 1):
            if absent != member:
                assert any(member in window and absent not in window for window in windows), (member, absent)
    return windows


def test_distinct_ceremonies_give_distinct_committees() -> None:
    ids = {ceremony(*shape).bundle.committee_id for shape in ((1, 1), (2, 2), (3, 2), (3, 3))}  # type: ignore[union-attr]
    assert len(ids) == 4


@pytest.mark.parametrize("parties, threshold", [(1, 1), (3, 3), (3, 2), (4, 3), (5, 3), (7, 4), (7, 5), (9, 5)])
def test_self_test_quorums_pin_every_keyholders_shares(parties: int, threshold: int) -> None:
    """The self-test decrypts with all n (own partials), and for each keyholder k with B_k its
    first t − 1 others, with B_k ∪ {j} for every other j: these t-subsets without k interpolate
    k's key from B_k's shares and each further share, which pins every share of k to one
    polynomial, so that every quorum of t decrypts. Brute force over that definition."""
    quorums = self_test_quorums(parties, threshold)
    everyone = tuple(range(1, parties + 1))
    assert quorums[0] == everyone and len(set(quorums)) == len(quorums)
    for quorum in quorums[1:]:
        Quorum(parties, threshold, quorum)
    if threshold == parties:
        assert quorums == (everyone,)
        return
    for absent in everyone:
        others = [party for party in everyone if party != absent]
        base = set(others[: threshold - 1])
        for extra in others[threshold - 1 :]:
            assert tuple(sorted(base | {extra})) in quorums, (absent, extra)
    expected = {tuple(sorted(set([p for p in everyone if p != absent][: threshold - 1]) | {extra}))
                for absent in everyone for extra in [p for p in everyone if p != absent][threshold - 1 :]}
    assert set(quorums[1:]) == expected - {everyone}


KEYS = {"aggregator_key": AGGREGATOR.verify_key, "coordinator_key": COORDINATOR.verify_key}


def test_run_ceremony_refuses_bad_thresholds_and_lying_peers() -> None:
    context = FheContext()
    identities = [KeyholderIdentity(f"refuse-{index}") for index in range(4)]
    peers = [LocalCeremonyPeer(DkgParty(context, identity), identity.public) for identity in identities]
    for threshold in (2, 1, 0, 5):
        with pytest.raises(InvalidInput):
            run_ceremony(context, peers, threshold, **KEYS)
    with pytest.raises(InvalidInput):
        run_ceremony(context, [], 1, **KEYS)
    # The fault bound f is at most n − t (steps need t + f keyholders), and not negative.
    for threshold, fault_bound in ((3, 2), (4, 1), (3, -1)):
        with pytest.raises(InvalidInput, match="fault bound"):
            run_ceremony(context, peers, threshold, fault_bound=fault_bound, **KEYS)
    # The coordinator and aggregator keys are required, and keyword-only.
    with pytest.raises(TypeError):
        run_ceremony(context, peers, 3)  # type: ignore[call-arg]
    # A keyholder refuses a committee without the noise test unless it was started for benchmarks.
    with pytest.raises(InvalidInput, match="noise test"):
        run_ceremony(context, peers, 3, noise_test=False, **KEYS)

    class LyingPeer(LocalCeremonyPeer):
        def call(self, call: Call[Request, Response], request: Request) -> Response:
            response = super().call(call, request)
            if call is PLAN:
                assert isinstance(request, CeremonyPlan)
                return call.check_response(Acknowledgement(request.ceremony_id, 9))
            return response

    identity = KeyholderIdentity("liar")
    with pytest.raises(IntegrityFailure):
        run_ceremony(context, [LyingPeer(DkgParty(context, identity), identity.public)], 1, **KEYS)


# --- the keyholder state machine -------------------------------------------------------------


def _plan(identities: list, threshold: int, **changes: object) -> CeremonyPlan:
    plan = CeremonyPlan(
        ceremony_id=os.urandom(16),
        parameters=FheParameters().to_bytes(),
        parties=len(identities),
        threshold=threshold,
        fault_bound=max(0, min(1, len(identities) - threshold)),
        noise_test=True,
        participants=tuple(
            Participant(index, identity.name, identity.public.verify_key, identity.public.box_key, identity.public.chain_address)
            for index, identity in enumerate(identities, start=1)
        ),
        coordinator_key=COORDINATOR.verify_key,
        aggregator_key=AGGREGATOR.verify_key,
    )
    return dataclasses.replace(plan, **changes)


@pytest.fixture
def fresh_party():  # type: ignore[no-untyped-def]
    """A new keyholder (keyholder 1 of 3) on an unbound context, and the identities."""
    identities = [KeyholderIdentity(f"state-{index}") for index in range(1, 4)]
    return DkgParty(FheContext(), identities[0]), identities


def _transcript_for(ceremony_id: bytes) -> Transcript:
    body = ceremony(1, 1).bundle.transcript.body  # type: ignore[union-attr]
    return Transcript(dataclasses.replace(body, ceremony_id=ceremony_id), ())


def test_rounds_out_of_order_are_wrong_phase(fresh_party) -> None:  # type: ignore[no-untyped-def]
    party, identities = fresh_party
    plan = _plan(identities, 2)
    cid = plan.ceremony_id
    with pytest.raises(InvalidInput):  # no plan yet: every request is for an unknown ceremony
        party.handle_chain(ChainRequest(cid, None))
    party.handle_plan(plan)
    assert party.phase is Phase.PLANNED
    out_of_order = [
        lambda: party.handle_round_one(RoundOneRequest(cid, (b"k",) * 3, None, None)),
        lambda: party.handle_round_two(RoundTwoRequest(cid, (), (), (), ())),
        lambda: party.handle_finalize(FinalizeRequest(cid, ())),
        lambda: party.handle_backup(BackupRequest(cid)),
        lambda: party.handle_deliver_backups(DeliverBackupsRequest(cid, ())),
        lambda: party.handle_self_test(SelfTestRequest(cid)),
        lambda: party.handle_sign(SignRequest(_transcript_for(cid).body, ())),
        lambda: party.handle_complete(CompleteRequest(_transcript_for(cid), b"")),
    ]
    for call in out_of_order:
        with pytest.raises(WrongPhase):
            call()
    assert party.phase is Phase.PLANNED
    party.handle_chain(ChainRequest(cid, None))
    assert party.phase is Phase.CHAINED
    for call in out_of_order[1:]:
        with pytest.raises(WrongPhase):
            call()


def test_requests_for_another_ceremony_are_invalid(fresh_party) -> None:  # type: ignore[no-untyped-def]
    party, identities = fresh_party
    plan = _plan(identities, 2)
    party.handle_plan(plan)
    other = os.urandom(16)
    for call in (
        lambda: party.handle_chain(ChainRequest(other, None)),
        lambda: party.handle_round_one(RoundOneRequest(other, (), None, None)),
        lambda: party.handle_backup(BackupRequest(other)),
        lambda: party.handle_complete(CompleteRequest(_transcript_for(other), b"")),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert party.phase is Phase.PLANNED


def test_repeated_requests_are_answered_identically_and_different_ones_refused(fresh_party) -> None:  # type: ignore[no-untyped-def]
    party, identities = fresh_party
    plan = _plan(identities, 2)
    first_ack = party.handle_plan(plan)
    assert party.handle_plan(plan) == first_ack == Acknowledgement(plan.ceremony_id, 1)
    assert party.handle_plan(codec.decode(CeremonyPlan, codec.encode(plan))) == first_ack
    with pytest.raises(WrongPhase):
        party.handle_plan(_plan(identities, 3))  # another ceremony while one is in progress
    request = ChainRequest(plan.ceremony_id, None)
    first = party.handle_chain(request)
    again = party.handle_chain(ChainRequest(plan.ceremony_id, None))
    assert again == first  # the same key, not a new one
    assert party.phase is Phase.CHAINED
    previous = ceremony(1, 1).bundle.joint_public_key  # type: ignore[union-attr]
    with pytest.raises(WrongPhase):
        party.handle_chain(ChainRequest(plan.ceremony_id, previous))


def test_chain_roles_are_checked() -> None:
    identities = [KeyholderIdentity(f"chain-{index}") for index in range(1, 4)]
    second = DkgParty(FheContext(), identities[1])
    plan = _plan(identities, 2)
    assert second.handle_plan(plan).index == 2
    with pytest.raises(InvalidInput):
        second.handle_chain(ChainRequest(plan.ceremony_id, None))  # only keyholder 1 starts the chain
    with pytest.raises(InvalidInput):
        second.handle_chain(ChainRequest(plan.ceremony_id, b"\x00" * 10))  # not a public key
    assert second.phase is Phase.PLANNED


def _off_the_curve() -> bytes:
    """32 bytes that are not an Ed25519 point (no key signs for them)."""
    for first in range(256):
        candidate = bytes([first]) + b"\x11" * 31
        try:
            check_verify_key(candidate)
        except InvalidInput:
            return candidate
    raise AssertionError("every candidate was a point")


_NOT_A_POINT = _off_the_curve()


def _plan_variants(identities: list, stranger: KeyholderIdentity) -> dict[str, CeremonyPlan]:
    good = _plan(identities, 2)
    participants = good.participants
    return {
        "t <= n/2": _plan(identities, 1),
        "t = 0": _plan(identities, 0),
        "t > n": _plan(identities, 4),
        "duplicate keyholder": dataclasses.replace(good, participants=(participants[0], participants[1], dataclasses.replace(participants[1], index=3))),
        "not in plan": _plan([stranger, identities[1], identities[2]], 2),
        "wrong box key": dataclasses.replace(good, participants=(dataclasses.replace(participants[0], box_key=stranger.public.box_key),) + participants[1:]),
        "wrong chain address": dataclasses.replace(good, participants=(dataclasses.replace(participants[0], chain_address=stranger.public.chain_address),) + participants[1:]),
        "shared chain address": dataclasses.replace(good, participants=participants[:2] + (dataclasses.replace(participants[2], chain_address=participants[1].chain_address),)),
        "short chain address": dataclasses.replace(good, participants=participants[:2] + (dataclasses.replace(participants[2], chain_address=b"\x01" * 19),)),
        "insecure parameters": dataclasses.replace(good, parameters=FheParameters.insecure_fixed_noise_for_benchmarks().to_bytes()),
        "other depth": dataclasses.replace(good, parameters=FheParameters(multiplicative_depth=1).to_bytes()),
        "garbage parameters": dataclasses.replace(good, parameters=b"{not json"),
        "parties mismatch": dataclasses.replace(good, parties=4),
        "indices not 1..n": dataclasses.replace(good, participants=tuple(dataclasses.replace(p, index=p.index + 1) for p in participants)),
        "indices out of order": dataclasses.replace(good, participants=(participants[1], participants[0], participants[2])),
        "short ceremony id": dataclasses.replace(good, ceremony_id=b"\x01" * 8),
        "no parties": dataclasses.replace(good, parties=0, participants=()),
        "fault bound above n - t": dataclasses.replace(good, fault_bound=2),
        "negative fault bound": dataclasses.replace(good, fault_bound=-1),
        "no noise test": dataclasses.replace(good, noise_test=False),
        "coordinator key off the curve": dataclasses.replace(good, coordinator_key=_NOT_A_POINT),
        "aggregator key off the curve": dataclasses.replace(good, aggregator_key=_NOT_A_POINT),
        "aggregator key of small order": dataclasses.replace(good, aggregator_key=bytes(32)),
        "short coordinator key": dataclasses.replace(good, coordinator_key=COORDINATOR.verify_key[:31]),
    }


@pytest.mark.parametrize("variant", list(_plan_variants([KeyholderIdentity(f"v{i}") for i in range(3)], KeyholderIdentity("s"))))
def test_invalid_plans_are_refused_and_leave_the_party_new(fresh_party, variant: str) -> None:  # type: ignore[no-untyped-def]
    party, identities = fresh_party
    plan = _plan_variants(identities, KeyholderIdentity("stranger"))[variant]
    with pytest.raises(InvalidInput):
        party.handle_plan(plan)
    assert party.phase is Phase.NEW
    good = _plan(identities, 2)
    assert party.handle_plan(good) == Acknowledgement(good.ceremony_id, 1)


def test_a_keyholder_serves_only_its_coordinator_and_opts_out_of_the_noise_test_only_for_benchmarks(fresh_party) -> None:  # type: ignore[no-untyped-def]
    """A keyholder configured with a coordinator refuses a plan from another (PolicyRefusal);
    one started for benchmarks (allow_insecure) accepts a committee without the noise test."""
    _, identities = fresh_party
    configured = DkgParty(FheContext(), identities[0], coordinator_key=COORDINATOR.verify_key)
    with pytest.raises(PolicyRefusal, match="coordinator"):
        configured.handle_plan(_plan(identities, 2, coordinator_key=SigningIdentity().verify_key))
    assert configured.phase is Phase.NEW
    assert configured.handle_plan(_plan(identities, 2)).index == 1
    benchmark = DkgParty(FheContext(), identities[0], allow_insecure=True)
    assert benchmark.handle_plan(_plan(identities, 2, noise_test=False)).index == 1


# --- transcripts -----------------------------------------------------------------------------


def _tampered_transcripts(transcript: Transcript, identities: list) -> dict[str, Transcript]:
    body, signatures = transcript.body, transcript.signatures
    flipped = bytearray(signatures[1].signature)
    flipped[10] ^= 0x01
    return {
        "signature bit flipped": Transcript(body, (signatures[0], TranscriptSignature(2, bytes(flipped)), *signatures[2:])),
        "threshold changed": Transcript(dataclasses.replace(body, threshold=body.parties), signatures),
        "joint key changed": Transcript(dataclasses.replace(body, joint_public_key=bytes(32)), signatures),
        "chain changed": Transcript(dataclasses.replace(body, chain=body.chain[::-1]), signatures),
        "parameters changed": Transcript(dataclasses.replace(body, parameters=FheParameters(max_fused_partials=31).to_bytes()), signatures),
        "signature missing": Transcript(body, signatures[:-1]),
        "signature duplicated": Transcript(body, (*signatures, signatures[0])),
        "signatures swapped": Transcript(body, (TranscriptSignature(1, signatures[1].signature), TranscriptSignature(2, signatures[0].signature), *signatures[2:])),
        "unknown signer": Transcript(body, (*signatures[:-1], TranscriptSignature(len(signatures) + 1, signatures[-1].signature))),
        "wrong domain": Transcript(body, (*signatures[:-1], TranscriptSignature(len(signatures), identities[-1].sign("validation", body.digest())))),
        "short signature": Transcript(body, (*signatures[:-1], TranscriptSignature(len(signatures), signatures[-1].signature[:63]))),
        "participants renumbered": Transcript(
            dataclasses.replace(body, participants=tuple(dataclasses.replace(p, index=p.index + 1) for p in body.participants)), signatures
        ),
        "fault bound changed": Transcript(dataclasses.replace(body, fault_bound=0), signatures),
        "noise test turned off": Transcript(dataclasses.replace(body, noise_test=False), signatures),
        "aggregator changed": Transcript(dataclasses.replace(body, aggregator_key=SigningIdentity().verify_key), signatures),
        "coordinator changed": Transcript(dataclasses.replace(body, coordinator_key=SigningIdentity().verify_key), signatures),
        "self-test changed": Transcript(dataclasses.replace(body, self_test=bytes(32)), signatures),
    }


TAMPER_CASES = [
    "signature bit flipped",
    "threshold changed",
    "joint key changed",
    "chain changed",
    "parameters changed",
    "signature missing",
    "signature duplicated",
    "signatures swapped",
    "unknown signer",
    "wrong domain",
    "short signature",
    "participants renumbered",
    "fault bound changed",
    "noise test turned off",
    "aggregator changed",
    "coordinator changed",
    "self-test changed",
]


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_tampered_transcripts_do_not_verify(case: str) -> None:
    result = ceremony(3, 2)
    assert result.bundle is not None
    tampered = _tampered_transcripts(result.bundle.transcript, result.identities)[case]
    with pytest.raises(InvalidInput):
        tampered.verify()
    # ...also after a trip through bytes, and the tampered body names another committee.
    with pytest.raises(InvalidInput):
        Transcript.from_bytes(tampered.to_bytes()).verify()
    if tampered.body != result.bundle.transcript.body:
        assert tampered.committee_id != result.bundle.committee_id


def test_tampered_signatures_are_invalid_signature_errors() -> None:
    result = ceremony(3, 2)
    assert result.bundle is not None
    tampered = _tampered_transcripts(result.bundle.transcript, result.identities)
    assert set(tampered) == set(TAMPER_CASES)
    for case in ("signature bit flipped", "threshold changed", "signatures swapped", "wrong domain", "fault bound changed", "aggregator changed"):
        with pytest.raises(InvalidSignature):
            tampered[case].verify()


def test_transcript_bytes_are_strict() -> None:
    data = ceremony(2, 2).bundle.transcript.to_bytes()  # type: ignore[union-attr]
    for bad in (data[:-1], data + b"\x00", b"", os.urandom(200)):
        with pytest.raises(InvalidInput):
            Transcript.from_bytes(bad)


# --- backup boxes ----------------------------------------------------------------------------


def try_tampered_deliveries(result: Ceremony, party: DkgParty, request: DeliverBackupsRequest) -> dict[str, str]:
    """Called with keyholder 1's real delivery (boxes from 2 and 3) while every box is known:
    try tampered deliveries first and record how each was answered."""
    cid = request.ceremony_id
    mine = sorted(request.boxes, key=lambda box: box.sender)
    from_two, from_three = mine
    to_others = [box for box in result.boxes if box.recipient != 1]
    for_two_from_three = next(box for box in to_others if box.sender == 3 and box.recipient == 2)
    flipped = bytearray(from_two.sealed)
    flipped[40] ^= 0x80
    sender = result.identities[1]  # keyholder 2, sealing forged payloads to keyholder 1
    box_key_of_one = result.identities[0].public.box_key
    share_bytes = result.context.backup_share_to_bytes(
        result.context.share_secret_key(result.context.generate_key_share(None)[0], 3, 2, 2)[1]
    )

    def forged(header: BackupHeader, payload: bytes) -> BackupBox:
        return BackupBox(2, 1, sender.box_to(box_key_of_one, codec.encode(header) + payload))

    attempts = {
        "one box missing": (from_two,),
        "box duplicated": (from_two, from_three, from_two),
        "box addressed to someone else": (from_two, for_two_from_three),
        "box for someone else relabelled": (from_two, dataclasses.replace(for_two_from_three, recipient=1)),
        "sealed bytes flipped": (BackupBox(2, 1, bytes(flipped)), from_three),
        "senders swapped": (dataclasses.replace(from_two, sender=3), dataclasses.replace(from_three, sender=2)),
        "header of another ceremony": (forged(BackupHeader(os.urandom(16), 2, 1), share_bytes), from_three),
        "header for another recipient": (forged(BackupHeader(cid, 2, 3), share_bytes), from_three),
        "header from another sender": (forged(BackupHeader(cid, 3, 1), share_bytes), from_three),
        "garbage share": (forged(BackupHeader(cid, 2, 1), os.urandom(len(share_bytes))), from_three),
        "truncated share": (forged(BackupHeader(cid, 2, 1), share_bytes[:-100]), from_three),
    }
    answers = {}
    for name, boxes in attempts.items():
        try:
            party.handle_deliver_backups(DeliverBackupsRequest(cid, boxes))
            answers[name] = "accepted"
        except InvalidInput:
            answers[name] = "InvalidInput"
        except Exception as error:  # recorded for the assertion message
            answers[name] = type(error).__name__
    answers["phase afterwards"] = party.phase.name
    return answers


def test_tampered_backup_boxes_do_not_open_and_the_real_ones_still_do() -> None:
    result = ceremony(3, 2)
    answers = dict(result.tampered)
    assert answers.pop("phase afterwards") == Phase.BACKED_UP.name
    assert len(answers) == 11
    assert answers == {name: "InvalidInput" for name in answers}
    # The real boxes were then delivered and the ceremony completed (its self-test decrypted).
    assert result.peers[0].party.phase is Phase.COMPLETE
    assert len(result.boxes) == 3 * 2
    assert {(box.sender, box.recipient) for box in result.boxes} == {(s, r) for s in (1, 2, 3) for r in (1, 2, 3) if s != r}


def test_a_box_opens_only_for_its_recipient_from_its_sender() -> None:
    result = ceremony(3, 2)
    one, two, three = result.identities
    box = next(box for box in result.boxes if (box.sender, box.recipient) == (2, 1))
    assert one.open_box(two.public.box_key, box.sealed)  # the intended recipient can
    with pytest.raises(InvalidInput):
        three.open_box(two.public.box_key, box.sealed)
    with pytest.raises(InvalidInput):
        one.open_box(three.public.box_key, box.sealed)
    with pytest.raises(InvalidInput):
        one.open_box(two.public.box_key, box.sealed[:-1])


# --- a dishonest keyholder in the self-test ----------------------------------------------------
#
# The self-test is what ties the last link of the key chain to the rest: each keyholder encrypts
# secret vectors of its own under the final joint key, commits to its partial decryptions before
# any is revealed, and signs only if its own vectors come back through every self-test quorum.


class SubstitutesTheLastLink(DkgParty):
    """Keyholder n publishing a fresh standalone key instead of extending the chain: the joint
    key is then its key alone, so it could decrypt every intendo. It plays every later round as
    the protocol says (and keeps its key, as an attacker would)."""

    own_secret = None

    def handle_chain(self, request: ChainRequest) -> ChainResponse:
        plan = self._require_ceremony(request.ceremony_id)
        if self.index != plan.parties:
            return super().handle_chain(request)

        def run() -> ChainResponse:
            secret, public = self._context.generate_key_share(None)  # not generate_key_share(previous)
            self.own_secret = secret
            self._secret, self._previous, self._chain_output = secret, request.previous, public.to_bytes()
            self.phase = Phase.CHAINED
            return ChainResponse(plan.ceremony_id, self.index, self._chain_output)

        return self._step("chain", request, Phase.PLANNED, run)


def _partial_sum(context: FheContext, plus: bytes, minus: list[bytes]) -> bytes:
    """plus − Σ minus, coefficient by coefficient in each RNS tower, on the serialized partials
    (what a keyholder can compute from bytes it holds: a partial's coefficient blocks, found
    from cereal's layout, run tower by tower)."""
    regions = coefficient_regions(plus, minus[0], context.ring_dimension)
    assert len(regions) == context.input_towers
    result = bytearray(plus)
    for tower, (start, length) in enumerate(regions):
        modulus = np.uint64(context.tower_moduli[tower])
        total = np.frombuffer(plus[start : start + length], dtype="<u8").copy()
        for other in minus:
            total = (total + modulus - np.frombuffer(other[start : start + length], dtype="<u8")) % modulus
        result[start : start + length] = total.astype("<u8").tobytes()
    return bytes(result)


class ShapesItsPartialsAfterTheOthers(SubstitutesTheLastLink):
    """The same keyholder with a colluding coordinator, which shows it the others' self-test
    partials before it reveals its own (it is revealed last). With the substituted key it can
    decrypt every test vector, so it knows what the self-test must decrypt to; it reveals the
    partial that makes the fusion exactly that — the lead term of a trivial encryption of the
    expected vector, minus the lead term of the output and every other partial. The decryption
    check alone (all the self-test had while the coordinator chose the test and nobody
    committed first) passes in every slot."""

    def __init__(self, context: FheContext, identity: KeyholderIdentity, seen: list[QuorumPartials], **options: object) -> None:
        super().__init__(context, identity, **options)  # type: ignore[arg-type]
        self.context = context
        self.seen = seen  # what the colluding coordinator passes on
        self.tests: tuple = ()
        self.crafted_fusion: np.ndarray | None = None
        self.expected: np.ndarray | None = None

    def handle_self_test_commit(self, request: SelfTestCommitRequest) -> SelfTestCommitment:
        self.tests = request.ciphertexts
        return super().handle_self_test_commit(request)

    def handle_self_test_reveal(self, request: SelfTestRevealRequest) -> SelfTestResponse:
        response = super().handle_self_test_reveal(request)
        context, everyone = self.context, tuple(range(1, len(self.tests) + 1))

        def decrypted(data: bytes) -> np.ndarray:  # the joint key is its own key
            ciphertext = context.ciphertext_from_bytes(data)
            return context.fuse([context.public_lead_partial(ciphertext), context.partial_decrypt(ciphertext, self.own_secret, lead=False)])

        first = sum(decrypted(test.ciphertexts[0]) for test in self.tests) % P
        second = sum(decrypted(test.ciphertexts[1]) for test in self.tests) % P
        width = context.row_width
        product = first * second % P
        self.expected = (np.concatenate([np.roll(product[:width], -1), np.roll(product[width:], -1)]) + np.concatenate([first[width:], first[:width]])) % P
        output = evaluate_self_test(context, self.tests)
        others = [result.partials[0] for result in self.seen if result.members == everyone]
        trivial = context.add_plain(context.subtract(output, output), self.expected)  # (Δ·expected, 0)
        target = context.partial_to_bytes(context.public_lead_partial(trivial))
        crafted = _partial_sum(context, target, [context.partial_to_bytes(context.public_lead_partial(output)), *others])
        # What any keyholder's fusion (with its own lead term) now reads:
        self.crafted_fusion = context.fuse(
            [context.public_lead_partial(output), *(context.partial_from_bytes(data) for data in [*others, crafted])]
        )
        (own,) = [result for result in response.partials if result.members == everyone]
        return dataclasses.replace(response, partials=(dataclasses.replace(own, partials=(crafted,)),))


class ColludingCoordinatorPeer(LocalCeremonyPeer):
    """Records every self-test reveal into `seen` and the sign request the coordinator sends."""

    def __init__(self, party: DkgParty, identity: KeyholderIdentity, seen: list[QuorumPartials], signs: list[SignRequest]) -> None:
        super().__init__(party, identity.public)
        self.dkg_party = party
        self._seen, self._signs = seen, signs

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        if call is SIGN:
            assert isinstance(request, SignRequest)
            self._signs.append(request)
        response = super().call(call, request)
        if call is SELF_TEST_REVEAL:
            assert isinstance(response, SelfTestResponse)
            self._seen.extend(response.partials)
        return response


@pytest.fixture
def free_ceremony() -> Iterator[None]:
    """A failed ceremony's parties stay reachable through the exception's frames until the
    collector runs, and it runs by object counts, not by the gigabytes OpenFHE holds: collect
    after the test (and hand the memory back to the system)."""
    yield
    FheContext.release_unused_evaluation_keys()


def _dishonest_ceremony(parties: int, threshold: int, dishonest: type, name: str) -> tuple[list[ColludingCoordinatorPeer], SignRequest, IntegrityFailure]:
    """A ceremony whose last keyholder is `dishonest`: it must fail at the signatures. Returns
    the peers, the sign request and the error the first keyholder refused with."""
    context = FheContext()
    identities = [KeyholderIdentity(f"{name}-{index}") for index in range(1, parties + 1)]
    seen: list[QuorumPartials] = []
    signs: list[SignRequest] = []
    options = {"coordinator_key": COORDINATOR.verify_key}
    parties_ = [DkgParty(context, identity, **options) for identity in identities[:-1]]  # type: ignore[arg-type]
    last = dishonest(context, identities[-1], seen, **options) if dishonest is ShapesItsPartialsAfterTheOthers else dishonest(context, identities[-1], **options)
    peers = [ColludingCoordinatorPeer(party, identity, seen, signs) for party, identity in zip([*parties_, last], identities)]
    with pytest.raises(IntegrityFailure) as refused:
        run_ceremony(context, peers, threshold, **KEYS)
    (request,) = signs  # keyholder 1 refused to sign; nobody was asked after it
    return peers, request, refused.value


def _every_honest_keyholder_refuses(peers: list[ColludingCoordinatorPeer], request: SignRequest, match: str) -> None:
    for peer in peers[:-1]:
        with pytest.raises(IntegrityFailure, match=match):
            peer.call(SIGN, request)
        assert peer.dkg_party.phase is Phase.SELF_TEST_REVEALED  # it signed nothing
        assert peer.dkg_party.outcome is None


@pytest.mark.parametrize("parties, threshold", [(3, 3), (3, 2)])
@pytest.mark.usefixtures("free_ceremony")
def test_a_substituted_last_link_of_the_key_chain_is_caught_by_the_self_test(parties: int, threshold: int) -> None:
    """The joint key is keyholder n's own: the others' secret vectors do not come back through
    any quorum, so no honest keyholder signs the transcript."""
    peers, request, refused = _dishonest_ceremony(parties, threshold, SubstitutesTheLastLink, f"substitute-{parties}-{threshold}")
    assert "does not decrypt correctly" in str(refused)
    # The substitution is real: the published joint key is the attacker's own key alone.
    attacker = peers[-1].dkg_party
    assert attacker.own_secret is not None
    _every_honest_keyholder_refuses(peers, request, "does not decrypt correctly")


@pytest.mark.usefixtures("free_ceremony")
def test_a_substituted_last_link_with_a_colluding_coordinator_is_caught_by_the_commitments() -> None:
    """n-of-n, the attacker revealed last, the coordinator showing it the others' partials: its
    shaped partial makes the fusion decrypt every slot to what every keyholder expects (the
    decryption check alone would pass, as it did when the coordinator ran the self-test), but
    it is not the partial it committed to before seeing the others'; every honest keyholder
    refuses to sign."""
    peers, request, refused = _dishonest_ceremony(3, 3, ShapesItsPartialsAfterTheOthers, "collusion")
    attacker = peers[-1].dkg_party
    assert attacker.expected is not None and attacker.crafted_fusion is not None
    assert np.array_equal(attacker.crafted_fusion, attacker.expected)  # the decryption check would pass
    assert "keyholder 3's self-test partials are not the ones it committed to" in str(refused)
    _every_honest_keyholder_refuses(peers, request, "not the ones it committed to")


class CommitsToOtherPartials(DkgParty):
    """Keyholder n committing to a digest of partials other than the ones it then reveals (it
    reveals its honest partials)."""

    def handle_self_test_commit(self, request: SelfTestCommitRequest) -> SelfTestCommitment:
        honest = super().handle_self_test_commit(request)
        self.honest_commitment = honest
        return dataclasses.replace(honest, digest=partials_digest(()))

    def handle_self_test_reveal(self, request: SelfTestRevealRequest) -> SelfTestResponse:
        # Its own check would notice the lie: it answers as if it had told the truth.
        commitments = tuple(self.honest_commitment if item.index == self.index else item for item in request.commitments)
        return super().handle_self_test_reveal(dataclasses.replace(request, commitments=commitments))


class RevealsOtherPartials(DkgParty):
    """Keyholder n committing honestly and then revealing other partials — freshly drawn and
    decrypting correctly (the flooding differs), just not the ones committed to."""

    def __init__(self, context: FheContext, identity: KeyholderIdentity, **options: object) -> None:
        super().__init__(context, identity, **options)  # type: ignore[arg-type]
        self.context = context
        self.tests: tuple = ()

    def handle_self_test_commit(self, request: SelfTestCommitRequest) -> SelfTestCommitment:
        self.tests = request.ciphertexts
        return super().handle_self_test_commit(request)

    def handle_self_test_reveal(self, request: SelfTestRevealRequest) -> SelfTestResponse:
        response = super().handle_self_test_reveal(request)
        output = evaluate_self_test(self.context, self.tests)
        zero = np.zeros(self.context.slot_count, dtype=np.int64)
        first = response.partials[0]
        redrawn = self.context.shifted_partial(first.partials[0], output, zero)  # + a fresh flooding of 0
        assert redrawn != first.partials[0]
        return dataclasses.replace(response, partials=(dataclasses.replace(first, partials=(redrawn, *first.partials[1:])), *response.partials[1:]))


@pytest.mark.parametrize("liar", [CommitsToOtherPartials, RevealsOtherPartials], ids=["commitment", "reveal"])
@pytest.mark.usefixtures("free_ceremony")
def test_a_keyholder_whose_self_test_partials_do_not_match_its_commitment_is_caught(liar: type) -> None:
    """Whether the commitment or the reveal is the lie — even with partials that decrypt
    correctly — every honest keyholder refuses to sign."""
    peers, request, refused = _dishonest_ceremony(2, 2, liar, f"liar-{liar.__name__}")
    assert "keyholder 2's self-test partials are not the ones it committed to" in str(refused)
    _every_honest_keyholder_refuses(peers, request, "not the ones it committed to")
