"""A malicious aggregator, talking gRPC straight to real keyholder processes.

The keyholders run as processes (3 of them, any 2 decrypt, fault bound 1: every step is
decrypted by all three); the test plays the aggregator: it serves the log the keyholders
replicate and sends them whatever it likes, signing its calls with the deployment's aggregator
identity (the one the committee transcript names, from the launcher's identity file).
Everything that would let an operator read a threshold or probe a pack must be refused
(PERMISSION_DENIED or FAILED_PRECONDITION), logged by the keyholder, and reveal nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import pytest

from stagpack.aggregator.core import Aggregator
from stagpack.edge.aggregator_service import AggregatorService
from stagpack.edge.config import AggregatorConfig, load
from stagpack.edge.remote import RemoteKeyholder
from stagpack.decrypt import quorum_family
from stagpack.encoding import StagKind, Threshold
from stagpack.errors import PolicyRefusal, StagpackError, WrongPhase
from stagpack.decrypt.computation import SessionComputation, facts_so_far, read_step
from stagpack.identity import SigningIdentity
from stagpack.app.launcher import LocalDeployment
from stagpack.participant.identity_file import AGGREGATOR, read_identity_file
from stagpack.participant.sdk import prepare_intendo
from stagpack.session import (
    DECRYPT, OPEN_SESSION, REVEAL_MASKS, DecryptRequest, RevealRequest, SessionKind, SessionRef, SignedPartial, Step,
)
from stagpack.stag import StagSpec, now_millis

from support.services import wait_for

pytestmark = [pytest.mark.processes]


class Operator:
    """The test's aggregator: a real `AggregatorService` whose scheduler never runs on its own,
    plus direct gRPC clients to the keyholder processes."""

    def __init__(self, deployment: LocalDeployment, service: AggregatorService) -> None:
        self.deployment = deployment
        self.service = service
        assert service.aggregator is not None
        self.aggregator: Aggregator = service.aggregator
        # the operator signs as the aggregator the committee serves (what a dishonest operator holds)
        identity = read_identity_file(deployment.aggregator_identity_path, AGGREGATOR)
        committee = self.aggregator.committee
        assert committee.aggregator_key == identity.verify_key and committee.fault_bound == 1
        self.keyholders = [
            RemoteKeyholder(kh.address, identity, index, verify_key=committee.verify_key(index))
            for index, kh in enumerate(deployment.keyholders, start=1)
        ]
        self.noise: dict[SessionRef, tuple[SignedPartial, ...]] = {}
        self.family = tuple(q.members for q in quorum_family(3, 2, frozenset({1, 2, 3}), committee.fault_bound))

    def stag(self, thresholds: list[int], epoch_millis: int = 300) -> StagSpec:
        spec = StagSpec.new(
            committee=self.aggregator.committee.committee_id, kind=StagKind.COUNT, levels=30,
            epoch_millis=epoch_millis, opens_at_millis=now_millis() - 10 * epoch_millis,
        )
        self.aggregator.create_stag(spec)
        for level in thresholds:
            self.submit(spec, level)
        self.aggregator.run_due(spec.stag_id)  # validation (and one legitimate check)
        return spec

    def submit(self, spec: StagSpec, level: int) -> None:
        context = self.aggregator.context
        prepared = prepare_intendo(context, context.joint_key, spec, SigningIdentity(), Threshold(level, 1))
        self.aggregator.submit(prepared.envelope, prepared.ciphertext)

    def next_due_epoch(self, spec: StagSpec) -> int:
        done = max([result.epoch for result in self.aggregator.status(spec.stag_id).epochs], default=0)
        wait_for(lambda: spec.current_epoch(now_millis()) > done, "a new epoch to come due", 30)
        return spec.current_epoch(now_millis())

    def session(self, spec: StagSpec, epoch: int) -> tuple[SessionRef, SessionComputation, tuple, tuple]:
        """Open and reveal a hunt session honestly and run its noise test (the first step, which
        reveals nothing; `self.noise` keeps its partials, which every later request carries);
        return what a decrypt request needs."""
        snapshot = self.aggregator.snapshot(spec.stag_id)
        ref = SessionRef(spec.stag_id, SessionKind.HUNT, epoch, snapshot.height, snapshot.head)
        commitments = tuple(keyholder.call(OPEN_SESSION, ref) for keyholder in self.keyholders)
        reveals = tuple(keyholder.call(REVEAL_MASKS, RevealRequest(ref, commitments)) for keyholder in self.keyholders)
        computation = SessionComputation(
            self.aggregator.context, snapshot, _Source(self.aggregator, spec.stag_id), ref, commitments, reveals,
            self.aggregator.committee,
        )
        claimed = computation.digests(computation.ciphertexts(Step.NOISE, computation.initial_facts()))
        noise: tuple[SignedPartial, ...] = ()
        for index in (1, 2, 3):
            noise += self.decrypt(ref, Step.NOISE, commitments, reveals, claimed, keyholder=index).partials
        facts = read_step(computation, self.aggregator.committee, Step.NOISE, computation.initial_facts(), noise)
        assert facts.noise_passed and facts.clean == (1, 2, 3)
        self.noise[ref] = noise
        return ref, computation, commitments, reveals

    def decrypt(self, ref: SessionRef, step: Step, commitments: tuple, reveals: tuple, claimed: tuple[bytes, ...], prior: tuple = (), keyholder: int = 1):
        """Ask one keyholder for `step`; the session's noise-test partials go along with `prior`."""
        if step is not Step.NOISE:
            prior = self.noise[ref] + tuple(prior)
        request = DecryptRequest(ref, step, self.family, commitments, reveals, prior, claimed)
        return self.keyholders[keyholder - 1].call(DECRYPT, request)

    def check_partials(self, ref: SessionRef, computation: SessionComputation, commitments: tuple, reveals: tuple) -> tuple:
        """The check step's partials from every keyholder."""
        claimed = computation.digests(check(computation))
        partials: tuple = ()
        for index in (1, 2, 3):
            partials += self.decrypt(ref, Step.CHECK, commitments, reveals, claimed, keyholder=index).partials
        return partials


class _Source:
    def __init__(self, aggregator: Aggregator, stag_id: bytes) -> None:
        self._aggregator = aggregator
        self._stag_id = stag_id

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self._aggregator.ciphertext(self._stag_id, intendo_id)


def check(computation: SessionComputation) -> list:
    """The session's hunt-check ciphertexts (after the noise test, which every contributor's
    masks pass)."""
    facts = computation.initial_facts()
    return computation.ciphertexts(Step.CHECK, replace(facts, through=Step.NOISE, noise_passed=True, clean=facts.contributors))


@pytest.fixture(scope="module")
def operator(scratch: Callable[[str], Path]) -> Iterator[Operator]:
    deployment = LocalDeployment.create(scratch("policy"), 3, 2)
    deployment.start(aggregator=False)
    assert deployment.aggregator is not None
    config = load(AggregatorConfig, str(deployment.aggregator.config_path), "STAGPACK_TEST_UNUSED")
    config.tick_millis = 10**9  # the test decides what runs
    service = AggregatorService(config)
    service.start()
    wait_for(lambda: service.aggregator is not None, "the aggregator to load the committee", 120)
    try:
        yield Operator(deployment, service)
    finally:
        service.server.stop(0)
        service.close()
        deployment.stop()


def refused(call: object, *errors: type[StagpackError]) -> StagpackError:
    with pytest.raises(errors or (PolicyRefusal, WrongPhase)) as raised:
        call()  # type: ignore[operator]
    return raised.value


def keyholder_log(operator: Operator, index: int = 1) -> str:
    return operator.deployment.keyholders[index - 1].log_path.read_text()


def test_decrypting_anything_but_the_keyholders_own_recomputation_is_refused(operator: Operator) -> None:
    spec = operator.stag([3, 5, 8, 8, 20])
    epoch = operator.next_due_epoch(spec)
    ref, computation, commitments, reveals = operator.session(spec, epoch)
    (honest,) = check(computation)
    correct = operator.aggregator.context.ciphertext_to_bytes(honest)
    snapshot = operator.aggregator.snapshot(spec.stag_id)
    intendo_id, _ = snapshot.pending[0]
    raw_intendo = hashlib.sha256(operator.aggregator.ciphertext(spec.stag_id, intendo_id)).digest()
    one_byte_off = bytearray(correct)
    one_byte_off[len(correct) // 2] ^= 1
    attempts = {
        "a raw intendo": raw_intendo,
        "a forged evaluation": os.urandom(32),
        "one byte off the recomputation": hashlib.sha256(bytes(one_byte_off)).digest(),
        "the unmasked pack sum": operator.aggregator.context.ciphertext_digest(snapshot.counted_sum),  # type: ignore[arg-type]
    }
    for what, claimed in attempts.items():
        error = refused(lambda: operator.decrypt(ref, Step.CHECK, commitments, reveals, (claimed,)), PolicyRefusal)
        assert "recomputation" in str(error), what
    assert keyholder_log(operator).count("refused") >= len(attempts)
    # the honest request for the very same session is served: nothing was burnt or revealed before
    served = operator.decrypt(ref, Step.CHECK, commitments, reveals, computation.digests([honest]))
    assert served.partials


def test_a_second_check_in_one_epoch_and_a_check_before_its_time_are_refused(operator: Operator) -> None:
    spec = operator.stag([4, 6, 9, 25])
    epoch = operator.next_due_epoch(spec)
    ref, computation, commitments, reveals = operator.session(spec, epoch)
    operator.check_partials(ref, computation, commitments, reveals)
    operator.submit(spec, 2)  # the log moves on: a "second look" at the same epoch
    snapshot = operator.aggregator.snapshot(spec.stag_id)
    height, head = snapshot.height, snapshot.head
    again = SessionRef(spec.stag_id, SessionKind.HUNT, epoch, height, head)
    error = refused(lambda: operator.keyholders[0].call(OPEN_SESSION, again))
    assert "already evaluated" in str(error) or "not after" in str(error)
    future = SessionRef(spec.stag_id, SessionKind.HUNT, epoch + 10_000, height, head)
    error = refused(lambda: operator.keyholders[0].call(OPEN_SESSION, future), PolicyRefusal)
    assert "not due" in str(error)
    assert "not due" in keyholder_log(operator)


def test_a_stale_evaluation_is_refused_after_the_log_moved_on(operator: Operator) -> None:
    spec = operator.stag([5, 7, 22])
    epoch = operator.next_due_epoch(spec)
    ref, computation, commitments, reveals = operator.session(spec, epoch)
    claimed = computation.digests(check(computation))
    operator.submit(spec, 3)
    operator.aggregator.run_due(spec.stag_id)  # validates; the replicas sync past the old height
    later = operator.next_due_epoch(spec)
    operator.session(spec, later)
    error = refused(lambda: operator.decrypt(ref, Step.CHECK, commitments, reveals, claimed, keyholder=2))
    # Refused either because the replica moved past the old height, or (when the aggregator's own
    # check of the same epoch ran in between) because the epoch's session was opened again.
    assert "stale session" in str(error)


def test_membership_without_a_fired_hunt_is_refused(operator: Operator) -> None:
    spec = operator.stag([15, 18, 20, 27])  # nobody's condition can be met: no fixed point
    epoch = operator.next_due_epoch(spec)
    ref, computation, commitments, reveals = operator.session(spec, epoch)
    check_partials = operator.check_partials(ref, computation, commitments, reveals)
    facts = facts_so_far(computation, operator.aggregator.committee, operator.noise[ref] + check_partials)
    assert facts.through is Step.CHECK and facts.candidates == ()
    # membership is refused by its own condition: with no candidate, no level was confirmed
    for step, reason in ((Step.CONFIRM, "did not fire"), (Step.MEMBERSHIP, "no candidate level was confirmed")):
        error = refused(
            lambda: operator.decrypt(ref, step, commitments, reveals, (os.urandom(32),), prior=check_partials), PolicyRefusal
        )
        assert reason in str(error)
        assert reason in keyholder_log(operator)
