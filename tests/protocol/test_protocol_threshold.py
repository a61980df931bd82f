"""t-of-n at protocol level (DESIGN.md §6): offline keyholders, lost quorums, corrupt partials.

n=3, t=2 and n=5, t=3 in-process deployments, each committee with a fault bound f (DESIGN.md §4):
every step is decrypted by t + f keyholders, all among the session's mask contributors.

Liveness with keyholders offline is the business of committees with f = 0 (honest-but-curious
keyholders; t live suffice): for every pattern of up to n-t keyholders offline, validation and
hunts still resolve exactly as the plaintext solver says, each step decrypted by the family of
quorums of the live keyholders (stagpack.decrypt.quorum); below quorum an epoch ends
"committee-unavailable" with nothing revealed and is retried once the keyholders are back. With
the default f = 1 a 2-of-3 committee needs all three live: with one offline it waits the same way.

A keyholder whose partial decryptions are wrong — corrupt (still structurally valid, so only
fusion can tell) or crafted to shift what is revealed plausibly — is found and left out only
while the others can still cross-check each other without it (at least t + f and more than t of
them, e.g. 3-of-5 with all live). Otherwise (2-of-3, or 3-of-5 with one offline, or n-of-n) the
epoch ends "integrity-failure" with nothing revealed: a single quorum could carry a shift unseen.
A corrupt keyholder garbles the first step it is asked for, the noise test of the masks.
"""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

import numpy as np

from stagpack.decrypt import circuit
from stagpack.decrypt import quorum_family
from stagpack.encoding import StagKind
from stagpack.errors import CommitteeUnavailable, IntegrityFailure
from stagpack.app.inprocess import InProcessDeployment
from stagpack.keyholder.local import intercepting
from stagpack.session import DECRYPT, REVEAL_MASKS, SessionKind, Step
from stagpack.stag import ManualClock
from support.faults import DropOn, PartialSources, StepTracker, garbling, shifting_own, unreachable_for
from support.protocol import MirroredStag, served_steps, start_deployment

# Every keyholder's partial source is switchable: honest until a test makes one faulty.
SOURCES: dict[int, PartialSources] = {}


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


def switchable(
    directory: Path, parties: int, threshold: int, clock: Callable[[], int], fault_bound: int | None = None
) -> Iterator[InProcessDeployment]:
    """A deployment whose keyholders' partial sources a test can switch (SOURCES), for a fixture
    to yield from; with no `fault_bound` the committee takes the default f = 1."""
    sources = PartialSources()
    deployment = start_deployment(
        directory, parties, threshold, clock, partials=sources.factories(parties), fault_bound=fault_bound  # type: ignore[arg-type]
    )
    assert deployment.aggregator.committee.fault_bound == (1 if fault_bound is None else fault_bound)
    SOURCES[id(deployment)] = sources
    yield deployment
    SOURCES.pop(id(deployment))


@pytest.fixture(scope="module")
def three(scratch: Callable[[str], Path], clock: ManualClock) -> Iterator[InProcessDeployment]:
    """n=3, t=2, f=1 (the default): every step needs all three."""
    yield from switchable(scratch("three"), 3, 2, clock)


@pytest.fixture(scope="module")
def three_lenient(scratch: Callable[[str], Path], clock: ManualClock) -> Iterator[InProcessDeployment]:
    """n=3, t=2, f=0: any two decrypt."""
    yield from switchable(scratch("three-lenient"), 3, 2, clock, fault_bound=0)


@pytest.fixture(scope="module")
def five(scratch: Callable[[str], Path], clock: ManualClock) -> Iterator[InProcessDeployment]:
    """n=5, t=3, f=1 (the default): every step needs four."""
    yield from switchable(scratch("five"), 5, 3, clock)


@pytest.fixture(scope="module")
def five_lenient(scratch: Callable[[str], Path], clock: ManualClock) -> Iterator[InProcessDeployment]:
    """n=5, t=3, f=0: any three decrypt."""
    yield from switchable(scratch("five-lenient"), 5, 3, clock, fault_bound=0)


@contextmanager
def offline(deployment: InProcessDeployment, indices: Sequence[int]) -> Iterator[None]:
    for index in indices:
        deployment.keyholders[index - 1].online = False
    try:
        yield
    finally:
        for keyholder in deployment.keyholders:
            keyholder.online = True


@contextmanager
def corrupt(deployment: InProcessDeployment, index: int) -> Iterator[None]:
    """Keyholder `index` replaces every partial decryption (own and stand-in) by structurally
    valid garbage before it signs it."""
    with SOURCES[id(deployment)].faulty(index, garbling(deployment.context)):
        yield


@contextmanager
def crafted_membership(deployment: InProcessDeployment, index: int, shift: np.ndarray) -> Iterator[None]:
    """Keyholder `index` adds Δ·shift to its own membership partial before it signs it (every
    other step, and its stand-ins, stay honest): a shift aimed at a plausible wrong membership."""
    tracker = StepTracker()
    fault = tracker.only_in(index, Step.MEMBERSHIP, shifting_own(deployment.context, shift))
    with intercepting(deployment.keyholders, tracker), SOURCES[id(deployment)].faulty(index, fault):
        yield


def member_swap(stag: MirroredStag) -> np.ndarray:
    """The membership shift that moves the last member of the coming hunt out and the first
    pending non-member in (count stag: the weight total still equals the level)."""
    expected = stag.solver.hunt()
    assert expected is not None
    pending = list(stag.solver.pending_ids())
    inside = pending.index(expected.members[-1])
    outside = next(position for position, intendo in enumerate(pending) if intendo not in expected.members)
    assert max(inside, outside) < circuit.MEMBERS_PER_SLOT  # group 0, row 0: slot `level`
    context = stag.deployment.context
    shift = np.zeros(context.slot_count, dtype=np.int64)
    shift[expected.level] = ((1 << outside) - (1 << inside)) % context.plaintext_modulus
    return shift


def disagreements(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The steps the aggregator logged as failing because the family's quorums disagreed."""
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "stagpack.aggregator" and "did not fuse consistently" in message:
            assert "quorums disagree" in message, message  # nothing else was wrong
            found.append(message.split()[1])
    return found


HUNT_STEPS = [Step.NOISE, Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP]


def steps_served_in(deployment: InProcessDeployment, stag: MirroredStag, epoch: int) -> dict[int, list[Step]]:
    return {
        node.index: [step for number, step in served_steps(node, stag.stag_id, SessionKind.HUNT) if number == epoch]
        for node in deployment.nodes
    }


def submit_a_firing_round(stag: MirroredStag, extra: int | None = None) -> None:
    """Two newcomers that fire together two levels above what executed (executed members stay
    counted), and optionally one that waits for `extra` others."""
    level = stag.solver.executed_level + 2
    stag.submit_count(level - 1)
    stag.submit_count(level - 1)
    if extra is not None:
        stag.submit_count(extra)


def run_patterns(deployment: InProcessDeployment, stag: MirroredStag, patterns: Sequence[tuple[int, ...]]) -> None:
    """One epoch per offline pattern: new intendos are validated and a hunt fires while those
    keyholders are offline, and both equal the solver (a committee with f = 0)."""
    everyone = {keyholder.index for keyholder in deployment.keyholders}
    threshold = deployment.aggregator.committee.threshold
    assert deployment.aggregator.committee.fault_bound == 0
    for number, pattern in enumerate(patterns):
        submit_a_firing_round(stag, extra=stag.levels - 2 - number)
        with offline(deployment, pattern):
            report = stag.run_epoch()
        assert report.expected is not None, pattern  # each pattern decrypts membership too
        assert deployment.aggregator.live_keyholders == everyone - set(pattern)
        # every live keyholder decrypts every step once (the noise test passes: no step to find
        # whom to blame), for the family prescribed for the live ones (standing in for the
        # others), and releases one own partial per step; every live one certifies
        live = everyone - set(pattern)
        family = tuple(quorum.members for quorum in quorum_family(len(everyone), threshold, live))
        served = steps_served_in(deployment, stag, report.epoch)
        for node in deployment.nodes:
            expected = HUNT_STEPS if node.index in live else []
            assert served[node.index] == expected, (pattern, node.index)
            for record in node.session_records(stag.stag_id):
                if record.session.kind is SessionKind.HUNT and record.session.number == report.epoch:
                    for step in record.served:
                        assert step.quorums == family, (pattern, node.index)
                        assert len([p for p in step.partials if p.statement.quorum == ()]) == 1
        assert report.certificate is not None
        assert {signature.index for signature in report.certificate.signatures} == everyone - set(pattern)


def test_every_offline_pattern_of_three_resolves_like_the_solver(three_lenient: InProcessDeployment, clock: ManualClock) -> None:
    stag = MirroredStag.create(three_lenient, clock, StagKind.COUNT, 32)
    run_patterns(three_lenient, stag, [(), (1,), (2,), (3,)])


def test_with_fault_bound_one_a_2_of_3_committee_waits_for_every_keyholder(
    three: InProcessDeployment, clock: ManualClock
) -> None:
    """f = 1: every step needs t + f = 3, so with any one keyholder offline nothing opens and the
    epoch ends "committee-unavailable" with nothing served (as below quorum); once it is back
    the same epoch is retried and resolves like the solver. A keyholder that drops in the middle
    of a hunt (before membership) stops the session the same way; back, the session resumes
    where it stopped and every keyholder certifies. (One offline pattern: which keyholder is
    offline does not matter to the count; the f = 0 test above visits each.)"""
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    aggregator = three.aggregator
    for pattern in [(1,)]:
        submit_a_firing_round(stag)
        with offline(three, pattern):
            stag.clock.advance(stag.spec.epoch_millis)
            with pytest.raises(CommitteeUnavailable, match=r"t \+ f = 3 are needed"):
                aggregator.run_due(stag.stag_id)
            assert aggregator.status(stag.stag_id).awaiting_validation == 2  # not even validated
        epoch = stag.current_epoch()
        assert stag.epoch_results()[epoch] == "committee-unavailable"
        assert all(steps == [] for steps in steps_served_in(three, stag, epoch).values())
        report = stag.run_epoch(advance=False)
        assert report.expected is not None and report.epoch == epoch
        assert {signature.index for signature in report.certificate.signatures} == {1, 2, 3}  # type: ignore[union-attr]
    submit_a_firing_round(stag)
    stag.validate()
    try:
        with intercepting(three.keyholders[0:1], DropOn(DECRYPT, Step.MEMBERSHIP)):
            stag.clock.advance(stag.spec.epoch_millis)
            with pytest.raises(CommitteeUnavailable, match=r"t \+ f = 3"):
                aggregator.run_due(stag.stag_id)
    finally:
        three.keyholders[0].online = True
    epoch = stag.current_epoch()
    served = steps_served_in(three, stag, epoch)
    assert served[1] == [Step.NOISE, Step.CHECK, Step.CONFIRM] and served[2] == served[3] == HUNT_STEPS
    assert aggregator.hunts(stag.stag_id)[-1].outcome.epoch < epoch
    # Keyholder 1 back, in the next epoch: the binding session resumes where it stopped and is
    # certified by all three, then the next epoch's check runs. (Resumed within the same epoch,
    # the aggregator would certify it and then open that epoch's check again at the new height,
    # which every keyholder refuses: see the report of this change.)
    clock.advance(stag.spec.epoch_millis)
    aggregator.run_due(stag.stag_id)
    (certificate,) = [hunt for hunt in aggregator.hunts(stag.stag_id) if hunt.outcome.epoch == epoch]
    expected = stag.solver.hunt()
    assert expected is not None
    stag.check_certificate(certificate, expected)
    assert steps_served_in(three, stag, epoch)[1] == HUNT_STEPS
    assert {signature.index for signature in certificate.signatures} == {1, 2, 3}
    stag.solver.execute(expected)
    assert stag.check_epoch().expected is None  # the next epoch ran after it, as the solver says


def test_keyholders_dropping_out_mid_session(three_lenient: InProcessDeployment, clock: ManualClock) -> None:
    """One drops right after committing (before revealing its masks), keyholder 1 drops in the
    middle of a hunt (after the check, before membership): the session continues without them
    (the membership step is asked again of the two left, who reuse their own partials). f = 0:
    two live suffice."""
    three = three_lenient
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag, extra=12)
    try:
        with intercepting(three.keyholders[1:2], DropOn(REVEAL_MASKS)):
            assert stag.run_epoch().expected is not None
    finally:
        three.keyholders[1].online = True
    submit_a_firing_round(stag, extra=13)
    stag.validate()
    try:
        with intercepting(three.keyholders[0:1], DropOn(DECRYPT, Step.MEMBERSHIP)):
            report = stag.run_epoch()
    finally:
        three.keyholders[0].online = True
    assert report.expected is not None
    served = steps_served_in(three, stag, report.epoch)
    assert served[1] == [Step.NOISE, Step.CHECK, Step.CONFIRM]  # keyholder 1 left before membership
    assert served[2][-1] is Step.MEMBERSHIP and served[3][-1] is Step.MEMBERSHIP
    for node in three.nodes[1:]:
        (record,) = [r for r in node.session_records(stag.stag_id) if r.session.kind is SessionKind.HUNT and r.session.number == report.epoch]
        memberships = [served for served in record.served if served.step is Step.MEMBERSHIP]
        assert [served.quorums for served in memberships][-1] == ((2, 3),)
        own = {partial.data for served in memberships for partial in served.partials if partial.statement.quorum == ()}
        assert len(own) == 1  # one own membership partial, whatever the family


def test_a_resumed_session_leaves_out_a_keyholder_that_missed_its_opening(three_lenient: InProcessDeployment, clock: ManualClock) -> None:
    """A validation session opens while keyholder 3 is offline, and the aggregator stops before
    decrypting anything. Keyholder 3 is back when the session resumes, but it holds no record of
    the session and none of its masks are in it: the session finishes with the two whose masks
    it fixed, and keyholder 3 takes part again from the next session on. f = 0 (with f = 1 no
    session opens with two: the test above)."""
    three = three_lenient
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag)

    # the aggregator stops before decrypting: no decryption request reaches keyholder 1 or 2
    with offline(three, (3,)), intercepting(three.keyholders[:2], unreachable_for(DECRYPT)):
        with pytest.raises(CommitteeUnavailable):
            three.aggregator.run_due(stag.stag_id)
    opened = {node.index: [record.session.kind for record in node.session_records(stag.stag_id)] for node in three.nodes}
    assert opened == {1: [SessionKind.VALIDATION], 2: [SessionKind.VALIDATION], 3: []}
    stag.validate()  # resumes the saved session with keyholders 1 and 2 only
    assert served_steps(three.nodes[2], stag.stag_id) == []
    report = stag.run_epoch()
    assert report.expected is not None
    assert steps_served_in(three, stag, report.epoch)[3] == HUNT_STEPS


def test_below_quorum_nothing_is_revealed_and_the_epoch_is_retried(three_lenient: InProcessDeployment, clock: ManualClock) -> None:
    """f = 0, so below quorum means fewer than t = 2 live (with f = 1 one offline is enough: the
    test of the fault bound above)."""
    three = three_lenient
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    stag.submit_count(1)
    stag.submit_count(1)
    stag.validate()
    aggregator = three.aggregator
    for pattern in [(1, 2), (2, 3)]:  # keyholder 1 among them, then not
        epoch_before = stag.current_epoch()
        with offline(three, pattern):
            stag.clock.advance(stag.spec.epoch_millis)
            with pytest.raises(CommitteeUnavailable, match="2 are needed"):
                aggregator.run_due(stag.stag_id)
        epoch = stag.current_epoch()
        assert epoch > epoch_before and stag.epoch_results()[epoch] == "committee-unavailable"
        assert all(steps == [] for steps in steps_served_in(three, stag, epoch).values())
        assert aggregator.hunts(stag.stag_id) == [] and three.ledger.executions(stag.stag_id) == []
    # everyone is back: the same epoch is retried and resolves
    report = stag.run_epoch(advance=False)
    assert report.expected is not None and report.epoch == stag.current_epoch()
    # below quorum during validation: the newcomers wait, then are validated and counted
    submit_a_firing_round(stag)
    with offline(three, (1, 3)):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(CommitteeUnavailable):
            aggregator.run_due(stag.stag_id)
        assert aggregator.status(stag.stag_id).awaiting_validation == 2
    assert stag.run_epoch(advance=False).expected is not None


def assert_nothing_revealed(deployment: InProcessDeployment, stag: MirroredStag, epoch: int) -> None:
    """The epoch ended "integrity-failure": nobody was suspected, no hunt of that epoch was
    certified or executed, and the stag's counts still equal the solver's."""
    assert stag.epoch_results()[epoch] == "integrity-failure"
    assert deployment.aggregator.suspect_keyholders == set()
    assert [hunt for hunt in deployment.aggregator.hunts(stag.stag_id) if hunt.outcome.epoch == epoch] == []
    assert [execution for execution in deployment.ledger.executions(stag.stag_id) if execution.epoch == epoch] == []
    stag.check_counts()
    deployment.aggregator.run_due(stag.stag_id)  # the epoch is over: not retried within it
    assert stag.epoch_results()[epoch] == "integrity-failure"


def test_a_corrupt_keyholder_among_three_ends_the_epoch_with_nothing_revealed(
    three: InProcessDeployment, clock: ManualClock
) -> None:
    """n=3, t=2 (f=1) with all live: the family's quorums disagree (on the first step, the
    noise test), and leaving one keyholder out would leave a single quorum that nothing
    cross-checks, so the faulty keyholder is not identified (it was, before families: a
    2-quorum without it was trusted as is)."""
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    # keyholder 2 corrupts its hunt partials (validation happened honestly)
    submit_a_firing_round(stag, extra=12)
    stag.validate()
    with corrupt(three, 2):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    served = steps_served_in(three, stag, epoch)
    assert all(steps == [Step.NOISE] for steps in served.values())  # asked once: no retry without anyone
    assert_nothing_revealed(three, stag, epoch)
    # honest again: the next epoch (a new session) fires as the solver says
    assert stag.run_epoch().expected is not None


def corrupt_validation_among_three(three: InProcessDeployment, clock: ManualClock) -> MirroredStag:
    """A stag whose second validation batch keyholder 1 corrupted (2-of-3, all live; with f = 1
    or f = 0 alike: either way nobody may be left out)."""
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag, extra=12)
    stag.validate()
    submit_a_firing_round(stag, extra=13)
    with corrupt(three, 1):
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            aggregator.run_due(stag.stag_id)
    return stag


def test_a_corrupt_validation_partial_among_three_validates_nothing(
    three: InProcessDeployment, clock: ManualClock
) -> None:
    """f = 1: stopping the faulty keyholder (the remedy of a committee with f = 0, next test)
    does not help here: the two others are t but not t + f, so the batch waits."""
    stag = corrupt_validation_among_three(three, clock)
    aggregator = three.aggregator
    status = aggregator.status(stag.stag_id)
    assert status.awaiting_validation == 3 and status.rejected == 0 and status.counted == 3
    assert aggregator.suspect_keyholders == set()
    with offline(three, (1,)):
        with pytest.raises(CommitteeUnavailable, match=r"t \+ f = 3"):
            aggregator.run_due(stag.stag_id)
    assert aggregator.status(stag.stag_id).awaiting_validation == 3


def test_after_a_corrupt_validation_partial_among_three_stopping_the_faulty_keyholder_unblocks_the_stag(
    three_lenient: InProcessDeployment, clock: ManualClock
) -> None:
    """A keyholder releases one own partial per step, ever, so even once keyholder 1 is honest
    again its corrupt validation partial is served on every retry of the batch, and with 2-of-3
    nobody may be left out (a single quorum is not cross-checked): the batch, and every hunt
    after it, waits. The operator's remedy is to stop the faulty keyholder: the two others are
    exactly t and form the one quorum; they serve the batch again (their own partials as
    released, stand-ins for the new quorum), it validates, and the stag fires as the solver
    says. That needs a committee with f = 0 (with f = 1 the batch waits: the test above)."""
    three = three_lenient
    stag = corrupt_validation_among_three(three, clock)
    for _ in range(2):
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            three.aggregator.run_due(stag.stag_id)
    assert three.aggregator.status(stag.stag_id).awaiting_validation == 3
    with offline(three, (1,)):
        stag.validate()
        report = stag.run_epoch()
    assert report.expected is not None
    assert {signature.index for signature in report.certificate.signatures} == {2, 3}  # type: ignore[union-attr]
    assert stag.run_epoch().expected is None  # keyholder 1 back: nothing new, nothing fires

def test_a_corrupt_keyholder_is_found_and_left_out_when_more_than_t_remain(
    five: InProcessDeployment, clock: ManualClock
) -> None:
    """n=5, t=3 (f=1) with all live: the family fails, the runner leaves out one keyholder at
    a time (four remain: t + f, still cross-checked) and keeps the first family that agrees."""
    aggregator = five.aggregator
    stag = MirroredStag.create(five, clock, StagKind.COUNT, 32)
    try:
        submit_a_firing_round(stag, extra=20)
        stag.validate()
        with corrupt(five, 2):
            report = stag.run_epoch()
        assert report.expected is not None
        assert aggregator.suspect_keyholders == {2}
        assert 2 not in {signature.index for signature in report.certificate.signatures}  # type: ignore[union-attr]
        aggregator.readmit_keyholders()  # forgive it, so the next case starts whole
        # keyholder 1 corrupts everything, validation included
        submit_a_firing_round(stag, extra=21)
        with corrupt(five, 1):
            report = stag.run_epoch()
        assert report.expected is not None
        assert aggregator.suspect_keyholders == {1}
    finally:
        aggregator.readmit_keyholders()


def test_a_crafted_membership_partial_is_found_when_more_than_t_remain(
    five: InProcessDeployment, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack families exist for: keyholder 3 shifts only its own membership partial, to
    swap a member for a non-member (plausible: every zero slot stays zero and the weights still
    total m). With all five live the quorum without it disagrees; it is found and left out, and
    the certified hunt is the solver's."""
    aggregator = five.aggregator
    stag = MirroredStag.create(five, clock, StagKind.COUNT, 32)
    try:
        submit_a_firing_round(stag, extra=20)
        stag.validate()
        caplog.clear()
        with crafted_membership(five, 3, member_swap(stag)):
            report = stag.run_epoch()  # checked against the solver: the true members
        assert report.expected is not None
        # the families with keyholder 3 disagreed (all five, then without 1, without 2); the
        # one without 3 agreed
        assert disagreements(caplog) == ["membership"] * 3
        assert aggregator.suspect_keyholders == {3}
        assert 3 not in {signature.index for signature in report.certificate.signatures}  # type: ignore[union-attr]
    finally:
        aggregator.readmit_keyholders()


def crafted_membership_among_three(
    three: InProcessDeployment, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> MirroredStag:
    """n=3, t=2 with all live: keyholder 2 crafts its own membership partial to swap members.
    The family's cross-check catches the shift (before families it went through unseen), but
    the faulty keyholder cannot be identified, so the epoch ends "integrity-failure": no hunt
    is certified or executed, no wrong member is. (The same with f = 1 or f = 0.)"""
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag, extra=12)
    stag.validate()
    caplog.clear()
    with crafted_membership(three, 2, member_swap(stag)):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            aggregator.run_due(stag.stag_id)
    assert disagreements(caplog) == ["membership"]  # only the cross-check could tell
    epoch = stag.current_epoch()
    served = steps_served_in(three, stag, epoch)
    assert all(steps == HUNT_STEPS for steps in served.values())
    assert stag.epoch_results()[epoch] == "integrity-failure"
    assert aggregator.suspect_keyholders == set()
    assert aggregator.hunts(stag.stag_id) == [] and three.ledger.executions(stag.stag_id) == []
    return stag


def test_a_crafted_membership_partial_among_three_reveals_nothing(
    three: InProcessDeployment, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """f = 1: stopping the faulty keyholder (the remedy of a committee with f = 0, next test)
    leaves two, t but not t + f: the binding hunt waits, and nothing is certified."""
    stag = crafted_membership_among_three(three, clock, caplog)
    with offline(three, (2,)):
        with pytest.raises(CommitteeUnavailable, match=r"t \+ f = 3"):
            three.aggregator.run_due(stag.stag_id)
    assert three.aggregator.hunts(stag.stag_id) == [] and three.ledger.executions(stag.stag_id) == []


def test_after_a_crafted_membership_partial_among_three_stopping_the_faulty_keyholder_certifies_the_hunt(
    three_lenient: InProcessDeployment, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Membership was released, so every keyholder holds the hunt as binding and serves nothing
    else for the stag until it is certified; the aggregator keeps the session and retries it on
    every run, and while the faulty keyholder takes part the quorums disagree again (later
    epochs do not run). The operator's remedy is to stop it: the binding session resumes with
    the other two as the one quorum, and the certified hunt is the solver's (the true members,
    not the swapped ones). That needs a committee with f = 0 (with f = 1 the hunt waits: the
    test above)."""
    three = three_lenient
    stag = crafted_membership_among_three(three, clock, caplog)
    epoch = stag.current_epoch()
    clock.advance(stag.spec.epoch_millis)
    with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
        three.aggregator.run_due(stag.stag_id)  # keyholder 2 serves its released partial again
    assert stag.current_epoch() == epoch + 1 and epoch + 1 not in stag.epoch_results()
    assert three.aggregator.hunts(stag.stag_id) == [] and three.ledger.executions(stag.stag_id) == []
    with offline(three, (2,)):
        three.aggregator.run_due(stag.stag_id)  # the binding hunt first, then epoch + 1's check
    (certificate,) = three.aggregator.hunts(stag.stag_id)
    expected = stag.solver.hunt()
    assert expected is not None and certificate.outcome.epoch == epoch
    stag.check_certificate(certificate, expected)
    assert {signature.index for signature in certificate.signatures} == {1, 3}
    executed = three.ledger.executions(stag.stag_id)
    assert {execution.epoch for execution in executed} == {epoch}
    assert sorted(execution.intendo_id for execution in executed) == sorted(expected.members)
    stag.solver.execute(expected)
    assert stag.check_epoch().expected is None  # epoch + 1 ran after it, as the solver says
    assert stag.run_epoch().expected is None  # keyholder 2 back: the stag runs on

def test_a_corrupt_keyholder_without_a_spare_ends_the_epoch_with_nothing_revealed(
    three_lenient: InProcessDeployment, clock: ManualClock
) -> None:
    """n=3, t=2, f=0 with one keyholder offline: the two left are exactly t, no spare (with
    f = 1 the session would not even open)."""
    three = three_lenient
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag)
    stag.validate()
    with offline(three, (3,)), corrupt(three, 2):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    served = steps_served_in(three, stag, epoch)
    assert all(Step.CONFIRM not in steps and Step.MEMBERSHIP not in steps for steps in served.values())
    assert_nothing_revealed(three, stag, epoch)
    # honest again: the next epoch fires as the solver says
    assert stag.run_epoch().expected is not None


def test_a_corrupt_keyholder_in_an_n_of_n_committee_ends_the_epoch_with_nothing_revealed(
    deployment_factory  # type: ignore[no-untyped-def]
) -> None:
    clock = ManualClock()
    sources = PartialSources()
    deployment = deployment_factory(2, 2, clock=clock, partials=sources.factories(2))
    stag = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 16)
    stag.submit_capital(3, 5)
    stag.submit_capital(2, 5)
    stag.validate()
    with sources.faulty(2, garbling(deployment.context)):
        clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure):
            deployment.aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    assert stag.epoch_results()[epoch] == "integrity-failure"
    served = steps_served_in(deployment, stag, epoch)
    assert all(Step.MEMBERSHIP not in steps for steps in served.values())
    assert deployment.aggregator.hunts(stag.stag_id) == [] and deployment.ledger.executions(stag.stag_id) == []
    assert stag.run_epoch().expected is not None


@pytest.mark.slow
def test_every_offline_pattern_of_five_resolves_like_the_solver(
    five_lenient: InProcessDeployment, clock: ManualClock
) -> None:
    """Patterns of at most two of five keyholders offline on one stag sequence: none, the lead
    alone, and a pair that the service tier's walk does not take (every pair's
    quorum decrypts the ceremony's self-test, which every committee of five runs; all 16
    patterns took 3.5 minutes here, STAGPACK_EVERY_PATTERN=1 visits them); then three offline
    (below quorum: 1, 3 and 5) and back; then a corrupt keyholder (2) beside an offline one (5):
    four live, and leaving it out would leave exactly t, so the epoch ends with nothing
    revealed. f = 0 (with f = 1, four live are needed)."""
    five = five_lenient
    stag = MirroredStag.create(five, clock, StagKind.COUNT, 64)
    every = [()] + [tuple(pattern) for size in (1, 2) for pattern in itertools.combinations(range(1, 6), size)]
    patterns = every if os.environ.get("STAGPACK_EVERY_PATTERN") == "1" else [(), (1,), (2, 3)]
    assert len(patterns) in (3, 16) and set(patterns) <= set(every)
    run_patterns(five, stag, patterns)
    aggregator = five.aggregator
    submit_a_firing_round(stag)
    stag.validate()
    with offline(five, (1, 3, 5)):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(CommitteeUnavailable, match="3 are needed"):
            aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    assert stag.epoch_results()[epoch] == "committee-unavailable"
    assert all(steps == [] for steps in steps_served_in(five, stag, epoch).values())
    assert stag.run_epoch(advance=False).expected is not None
    submit_a_firing_round(stag)
    stag.validate()
    with offline(five, (5,)), corrupt(five, 2):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure, match="too few to find the faulty one"):
            aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    served = steps_served_in(five, stag, epoch)
    assert served[5] == [] and all(steps == [Step.NOISE] for index, steps in served.items() if index != 5)
    assert_nothing_revealed(five, stag, epoch)
    assert stag.run_epoch().expected is not None
