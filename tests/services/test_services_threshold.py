"""t-of-n with real processes: hunts keep resolving when keyholders are killed with kill -9.

For 2-of-3 and 3-of-5, every pattern of up to n − t killed keyholders (the lead, keyholder 1,
included) is visited in an order that kills or restarts one keyholder at a time (4-of-7 is in
test_services_seven.py); in each, a new
batch of intendos creates a fixed point above the executed level, and the hunt that follows
must equal the plaintext solver's. Below quorum the epoch is "committee-unavailable", nothing
is revealed, and it resolves once keyholders return. Those committees have fault bound f = 0
(t live keyholders suffice); with the default f = 1 every step needs t + 1 (tests/protocol has
that waiting). A keyholder whose partial decryptions are dishonest is caught (committees with
the default f = 1, and one with f = 0 and no spare).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from stagpack.encoding import Threshold
from stagpack.errors import IntegrityFailure
from stagpack.app.launcher import LocalDeployment

from support.services import Services, covering_walk, deployment_fixture, fire_next_hunt, patterns, visit_every_pattern, wait_for

pytestmark = [pytest.mark.processes]
FAULTY_KEYHOLDER = Path(__file__).resolve().parents[1] / "support" / "workers" / "faulty_keyholder.py"


@pytest.fixture(scope="module")
def two_of_three(scratch: Callable[[str], Path]) -> Iterator[Services]:
    yield from deployment_fixture(scratch("t2of3"), 3, 2, fault_bound=0)


def test_every_pattern_of_one_killed_keyholder_of_three(two_of_three: Services) -> None:
    """Each keyholder killed in turn (all live is what every other test runs)."""
    assert visit_every_pattern(two_of_three, 3, 2, patterns(3, 2)[1:]) == 3


def test_below_quorum_the_epoch_waits_and_nothing_is_lost(two_of_three: Services) -> None:
    services = two_of_three
    deployment = services.deployment
    stag = services.new_stag(levels=20, epoch_millis=800)
    fire_next_hunt(services, stag, batch=2)
    deployment.service("keyholder-1").kill()
    deployment.service("keyholder-3").kill()
    executed = int(services.client.status(stag.stag_id).executed_level)
    for _ in range(2):
        services.submit(stag, Threshold.count(executed + 1, levels=20))  # acknowledged while below quorum
    wait_for(
        lambda: any(epoch.result == "committee-unavailable" for epoch in services.client.status(stag.stag_id).epochs),
        "an epoch reported as committee-unavailable",
    )
    status = services.client.status(stag.stag_id)
    assert status.committee.startswith("unavailable")
    assert status.awaiting_validation == 2 and len(status.hunts) == 1, "nothing new was decided below quorum"
    deployment.restart("keyholder-3")
    wait_for(lambda: stag.check_new_hunts(services.client) or stag.hunts_checked == 2, "the postponed hunt", 240)
    deployment.restart("keyholder-1")


@pytest.fixture(scope="module")
def three_of_five(scratch: Callable[[str], Path]) -> Iterator[Services]:
    yield from deployment_fixture(scratch("t3of5"), 5, 3, fault_bound=0)


@pytest.mark.slow
def test_every_pattern_of_up_to_two_killed_keyholders_of_five(three_of_five: Services) -> None:
    """By default a walk of 4 patterns, {1}, {1, 2}, {3, 4}, {5, 1}: every size from 1 to n − t,
    the lead first, every keyholder killed (all live is what every other test runs; all 16 took
    8 minutes on 2 cores once the noise test doubled a session's cost; tests/protocol visits
    three in process, and every committee's ceremony decrypts its self-test with every quorum);
    STAGPACK_EVERY_PATTERN=1 visits all 16 in both tiers."""
    every = os.environ.get("STAGPACK_EVERY_PATTERN") == "1"
    walk = patterns(5, 3) if every else covering_walk(5, 3)[1:]
    assert {len(pattern) for pattern in walk} >= {1, 2} and set().union(*walk) == set(range(1, 6))
    assert visit_every_pattern(three_of_five, 5, 3, walk) == len(walk) == (16 if every else 4)


def test_a_keyholder_shifting_its_partials_is_caught_and_left_out(tmp_path: Path) -> None:
    """A crafted attack: keyholder 3 decrypts ct + 1 instead of ct. With all five live the
    quorums disagree; the aggregator finds the keyholder by leaving each out in turn (four remain:
    t + f with the default f = 1, still cross-checking each other) and the hunt equals the
    solver's."""
    deployment = LocalDeployment.create(
        tmp_path, 5, 3, tick_millis=150, extra_environment={"STAGPACK_TEST_FAULT": "shift"}
    )
    deployment.service("keyholder-3").program = [sys.executable, str(FAULTY_KEYHOLDER)]
    deployment.start()
    try:
        services = Services(deployment)
        stag = services.new_stag(levels=30, epoch_millis=800)
        fire_next_hunt(services, stag)
        fire_next_hunt(services, stag)
        log = deployment.service("aggregator").log_path.read_text()
        assert "did not fuse consistently" in log and "excluding keyholder(s) [3]" in log
    finally:
        deployment.stop()


def test_a_keyholder_that_decrypts_wrongly_fails_the_ceremony_self_test(tmp_path: Path) -> None:
    """The ceremony's self-test decrypts known vectors with every prescribed quorum: a member
    whose partials are wrong stops the committee from ever being formed."""
    deployment = LocalDeployment.create(
        tmp_path, 3, 2,
        extra_environment={"STAGPACK_TEST_FAULT": "shift", "STAGPACK_TEST_FAULT_SCOPE": "everything"},
    )
    deployment.service("keyholder-2").program = [sys.executable, str(FAULTY_KEYHOLDER)]
    try:
        with pytest.raises(IntegrityFailure, match="self-test"):
            deployment.start()
        assert not (deployment.committee_directory / "transcript.bin").exists()
    finally:
        deployment.stop()


@pytest.mark.parametrize("fault_bound", [0, 1])
def test_garbage_partials_with_no_spare_keyholder_reveal_nothing(tmp_path: Path, fault_bound: int) -> None:
    """A faulty keyholder in a committee with no spare: with f = 0, 2 of 3 live (keyholder 3
    killed), one of them faulty; with f = 1, all three live, one faulty (leaving it out would
    leave t, not t + f). The corruption is detected, the epoch ends in an integrity failure, and
    no hunt is revealed."""
    deployment = LocalDeployment.create(
        tmp_path, 3, 2, tick_millis=150, extra_environment={"STAGPACK_TEST_FAULT": "garbage"}, fault_bound=fault_bound
    )
    deployment.service("keyholder-2").program = [sys.executable, str(FAULTY_KEYHOLDER)]
    deployment.start()
    try:
        services = Services(deployment)
        if fault_bound == 0:
            deployment.service("keyholder-3").kill()
        stag = services.new_stag(levels=20, epoch_millis=800)
        for _ in range(2):
            services.submit(stag, Threshold.count(1, levels=20))
        log_path = deployment.service("aggregator").log_path
        wait_for(lambda: "nothing was revealed" in log_path.read_text(), "an integrity failure with nothing revealed")
        status = services.client.status(stag.stag_id)
        assert len(status.hunts) == 0 and status.counted == 0
    finally:
        deployment.stop()
