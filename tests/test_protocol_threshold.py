"""t-of-n at protocol level (DESIGN.md §6): offline keyholders, lost quorums, corrupt partials.

n=3, t=2 and n=5, t=3 in-process deployments. For every pattern of up to n-t keyholders offline
(the lead, keyholder 1, included) validation and hunts still resolve exactly as the plaintext
solver says; below quorum an epoch ends "committee-unavailable" with nothing revealed and is
retried once the keyholders are back; a keyholder whose partial decryptions are corrupt (still
structurally valid, so only fusion can tell) is found and left out when a spare keyholder exists,
and with no spare the epoch ends "integrity-failure" with nothing revealed.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from stagpack.aggregator.committee import KeyholderUnreachable, LocalKeyholder
from stagpack.encoding import StagKind
from stagpack.errors import CommitteeUnavailable, IntegrityFailure
from stagpack.inprocess import InProcessDeployment
from stagpack.session import DecryptRequest, SessionKind, Step
from test_protocol_support import FakeClock, MirroredStag, corrupting, served_steps, start_deployment


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, clock: FakeClock) -> InProcessDeployment:
    """n=3, t=2."""
    return start_deployment(Path(tmp_path_factory.mktemp("three")), 3, 2, clock)


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory, clock: FakeClock) -> InProcessDeployment:
    """n=5, t=3 (only the slow tests start it)."""
    return start_deployment(Path(tmp_path_factory.mktemp("five")), 5, 3, clock)


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
def corrupt(deployment: InProcessDeployment, index: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keyholder `index` perturbs every partial decryption before it signs it."""
    party = deployment.nodes[index - 1]._party  # test-only: the node's DecryptingParty
    assert party is not None
    with monkeypatch.context() as patch:
        patch.setattr(party, "partials", corrupting(deployment.context, party.partials))
        yield


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
    keyholders are offline, and both equal the solver."""
    everyone = {keyholder.index for keyholder in deployment.keyholders}
    threshold = deployment.aggregator.committee.threshold
    for number, pattern in enumerate(patterns):
        submit_a_firing_round(stag, extra=stag.levels - 2 - number)
        with offline(deployment, pattern):
            report = stag.run_epoch()
        assert report.expected is not None, pattern  # each pattern decrypts membership too
        assert deployment.aggregator.live_keyholders == everyone - set(pattern)
        # all keyholders decrypt when all are live, otherwise the t smallest live ones (standing
        # in for the others); every live one certifies
        live = sorted(everyone - set(pattern))
        quorum = set(live) if not pattern else set(live[:threshold])
        served = steps_served_in(deployment, stag, report.epoch)
        for index in everyone:
            expected = [Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP] if index in quorum else []
            assert served[index] == expected, (pattern, index)
        assert report.certificate is not None
        assert {signature.index for signature in report.certificate.signatures} == everyone - set(pattern)


def test_every_offline_pattern_of_three_resolves_like_the_solver(three: InProcessDeployment, clock: FakeClock) -> None:
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 32)
    run_patterns(three, stag, [(), (1,), (2,), (3,)])


def test_keyholders_dropping_out_mid_session(three: InProcessDeployment, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """One drops right after committing (before revealing its masks), the lead drops in the
    middle of a hunt (after the check, before membership): the session continues without them."""
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)

    def drop_on(keyholder: LocalKeyholder, method: str, when: Step | None) -> None:
        original = getattr(keyholder, method)

        def dropping(request):  # type: ignore[no-untyped-def]
            if when is None or (isinstance(request, DecryptRequest) and request.step is when):
                keyholder.online = False
                raise KeyholderUnreachable(f"keyholder {keyholder.index} dropped")
            return original(request)

        monkeypatch.setattr(keyholder, method, dropping)

    submit_a_firing_round(stag, extra=12)
    drop_on(three.keyholders[1], "reveal", None)
    try:
        assert stag.run_epoch().expected is not None
    finally:
        monkeypatch.undo()
        three.keyholders[1].online = True
    submit_a_firing_round(stag, extra=13)
    stag.validate()
    drop_on(three.keyholders[0], "decrypt", Step.MEMBERSHIP)
    try:
        report = stag.run_epoch()
    finally:
        monkeypatch.undo()
        three.keyholders[0].online = True
    assert report.expected is not None
    served = steps_served_in(three, stag, report.epoch)
    assert served[1] == [Step.CHECK, Step.CONFIRM]  # the lead left before membership
    assert served[2][-1] is Step.MEMBERSHIP and served[3][-1] is Step.MEMBERSHIP


def test_below_quorum_nothing_is_revealed_and_the_epoch_is_retried(three: InProcessDeployment, clock: FakeClock) -> None:
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    stag.submit_count(1)
    stag.submit_count(1)
    stag.validate()
    aggregator = three.aggregator
    for pattern in [(1, 2), (2, 3)]:  # the lead among them, then not
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


def test_a_corrupt_keyholder_is_found_and_left_out_when_a_spare_exists(
    three: InProcessDeployment, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    try:
        # keyholder 2 corrupts its hunt partials (validation happened honestly)
        submit_a_firing_round(stag, extra=12)
        stag.validate()
        with corrupt(three, 2, monkeypatch):
            report = stag.run_epoch()
        assert report.expected is not None
        assert aggregator.suspect_keyholders == {2}
        assert 2 not in {signature.index for signature in report.certificate.signatures}  # type: ignore[union-attr]
        aggregator._runner.suspects.clear()  # test-only: forgive it, so the next case starts whole
        # the lead corrupts everything, validation included
        submit_a_firing_round(stag, extra=13)
        with corrupt(three, 1, monkeypatch):
            report = stag.run_epoch()
        assert report.expected is not None
        assert aggregator.suspect_keyholders == {1}
    finally:
        aggregator._runner.suspects.clear()


def test_a_corrupt_keyholder_without_a_spare_ends_the_epoch_with_nothing_revealed(
    three: InProcessDeployment, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n=3, t=2 with one keyholder offline: the two left are exactly t, no spare."""
    aggregator = three.aggregator
    stag = MirroredStag.create(three, clock, StagKind.COUNT, 16)
    submit_a_firing_round(stag)
    stag.validate()
    with offline(three, (3,)), corrupt(three, 2, monkeypatch):
        stag.clock.advance(stag.spec.epoch_millis)
        with pytest.raises(IntegrityFailure, match="no spare keyholder"):
            aggregator.run_due(stag.stag_id)
    epoch = stag.current_epoch()
    assert stag.epoch_results()[epoch] == "integrity-failure"
    assert aggregator.suspect_keyholders == set()
    served = steps_served_in(three, stag, epoch)
    assert all(Step.CONFIRM not in steps and Step.MEMBERSHIP not in steps for steps in served.values())
    assert aggregator.hunts(stag.stag_id) == [] and three.ledger.executions(stag.stag_id) == []
    aggregator.run_due(stag.stag_id)  # the epoch is over: not retried within it
    assert stag.epoch_results()[epoch] == "integrity-failure"
    # honest again: the next epoch fires as the solver says
    assert stag.run_epoch().expected is not None


def test_a_corrupt_keyholder_in_an_n_of_n_committee_ends_the_epoch_with_nothing_revealed(
    deployment_factory, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    clock = FakeClock()
    deployment = deployment_factory(2, 2, clock=clock)
    stag = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 16)
    stag.submit_capital(3, 5)
    stag.submit_capital(2, 5)
    stag.validate()
    with corrupt(deployment, 2, monkeypatch):
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
    five: InProcessDeployment, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 16 patterns of at most two of five keyholders offline on one stag sequence; then
    three offline (below quorum) and back; then a corrupt keyholder beside an offline one."""
    stag = MirroredStag.create(five, clock, StagKind.COUNT, 64)
    patterns = [()] + [tuple(pattern) for size in (1, 2) for pattern in itertools.combinations(range(1, 6), size)]
    assert len(patterns) == 16
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
    try:
        with offline(five, (5,)), corrupt(five, 2, monkeypatch):
            report = stag.run_epoch()
        assert report.expected is not None
        assert aggregator.suspect_keyholders == {2}
    finally:
        aggregator._runner.suspects.clear()
