"""Protocol-level hunts: randomized packs through submit → validation → epochs on an in-process
deployment (real ceremony, real keyholder policy, byte-encoded records), each epoch's FHE result
compared exactly with the plaintext PackSolver (DESIGN.md §2, §3, §8).

Every epoch is checked by `MirroredStag.check_epoch`: "no-hunt" exactly when the solver has no
fixed point above the executed level; otherwise the certificate's level, members (in log order),
weights and executed weight equal the solver's hunt, the certificate verifies on its own
(CertificateBundle), the ledger holds exactly its members, and applying it again changes nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import pytest

from stagpack.encoding import StagKind, Threshold
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.identity import SigningIdentity
from stagpack.participant.sdk import prepare_intendo, prepare_withdrawal
from stagpack.stag import ManualClock
from support.protocol import MirroredStag, run_epochs, start_deployment


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def deployment(scratch: Callable[[str], Path], clock: ManualClock):  # type: ignore[no-untyped-def]
    return start_deployment(scratch("hunts"), 3, 2, clock)


# -- random packs ---------------------------------------------------------------------------------


def random_count_others(rng: random.Random, stag: MirroredStag, distribution: str) -> int:
    """'At least N others' for a count stag, drawn from one of the threshold distributions."""
    top = stag.levels - 2
    if distribution == "uniform":
        return rng.randint(0, top)
    if distribution == "clustered":  # around the current pack size: packs close to firing
        size = stag.solver.total_weight
        return max(0, min(top, size + rng.randint(-2, 3)))
    assert distribution == "high"  # beyond anything the pack can reach in the test
    return rng.randint(top - 3, top)


def random_capital(rng: random.Random, stag: MirroredStag, distribution: str) -> tuple[int, int]:
    """(amount, total) for a capital stag."""
    top = stag.levels - 1
    amount = rng.randint(1, 6)
    if distribution == "uniform":
        return amount, rng.randint(1, top)
    if distribution == "clustered":
        total = stag.solver.total_weight + amount + rng.randint(-4, 6)
        return amount, max(1, min(top, total))
    assert distribution == "high"
    return amount, rng.randint(top - 3, top)


def room_for(stag: MirroredStag, weight: int) -> bool:
    return stag.solver.total_weight + weight <= stag.levels - 1


def random_round(rng: random.Random, stag: MirroredStag, submissions: int, kind: StagKind) -> None:
    """Some submissions from mixed distributions, withdrawals of counted intendos from earlier
    epochs and of intendos still awaiting validation, interleaved."""
    before = list(stag.solver.pending_ids())
    fresh: list[bytes] = []
    for _ in range(submissions):
        distribution = rng.choice(["uniform", "clustered", "clustered", "high"])
        if kind is StagKind.COUNT:
            if room_for(stag, 1):
                fresh.append(stag.submit_count(random_count_others(rng, stag, distribution)))
        else:
            amount, total = random_capital(rng, stag, distribution)
            if room_for(stag, amount):
                fresh.append(stag.submit_capital(amount, total))
        if before and rng.random() < 0.25:  # a counted intendo leaves between two submissions
            stag.withdraw(before.pop(rng.randrange(len(before))))
    if fresh and rng.random() < 0.5:  # one leaves before it was even validated
        stag.withdraw(fresh[rng.randrange(len(fresh))])


def test_random_count_and_capital_packs_equal_the_solver(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(20240601)
    count = MirroredStag.create(deployment, clock, StagKind.COUNT, 24, title="count")
    capital = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 48, title="capital")
    for _ in range(3):
        random_round(rng, count, rng.randint(4, 7), StagKind.COUNT)
        random_round(rng, capital, rng.randint(4, 7), StagKind.CAPITAL)
        run_epochs([count, capital])
    results = [report.result for stag in (count, capital) for report in stag.reports]
    # the draws exercise both outcomes (asserted so that a change of seed cannot hollow out the test)
    assert "hunt" in results and "no-hunt" in results


def test_hunts_in_sequence_count_executed_members_and_fire_only_above_the_executed_level(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, 20)
    # hunt 1: three who each need two others
    for _ in range(3):
        stag.submit_count(2)
    stag.submit_count(15)  # waits far above
    first = stag.run_epoch()
    assert first.expected is not None and len(first.expected.members) == 3
    for member in first.expected.members:  # executed intendos cannot leave, here or in the solver
        with pytest.raises(WrongPhase, match="executed"):
            deployment.aggregator.withdraw(prepare_withdrawal(stag.identities[member], stag.stag_id, member))
        with pytest.raises(WrongPhase):
            stag.solver.withdraw(member)
    # hunt 2: two newcomers who need four others; the three executed members count for them
    stag.submit_count(4)
    stag.submit_count(4)
    second = stag.run_epoch()
    assert second.expected is not None and second.expected.level > first.expected.level
    # a newcomer whose threshold is below the executed level joins on its own, one level up
    stag.submit_count(1)
    third = stag.run_epoch()
    assert third.expected is not None and third.expected.level == second.expected.level + 1
    # nothing new: no hunt (executed levels are masked off, the old fixed points do not refire)
    assert stag.run_epoch().result == "no-hunt"
    levels = [report.certificate.outcome.level for report in stag.reports if report.certificate is not None]
    assert levels == sorted(levels) and len(levels) == 3


def test_capital_hunts_in_sequence(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    stag = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 64)
    stag.submit_capital(5, 12)
    stag.submit_capital(7, 12)  # 5 + 7 = 12: fires at 12
    stag.submit_capital(3, 40)
    assert stag.run_epoch().expected is not None
    stag.submit_capital(10, 22)  # 12 executed + 10 = 22: fires alone at 22
    assert stag.run_epoch().expected is not None
    stag.submit_capital(20, 45)  # 22 + 3 + 20 = 45: the waiting 3 joins at 45
    report = stag.run_epoch()
    assert report.expected is not None and len(report.expected.members) == 2


def test_packs_that_never_fire_report_no_hunt(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    """Two epochs of the same pack (three before the noise test doubled a session's cost: the
    second epoch already shows that an unchanged pack keeps giving "no-hunt")."""
    rng = random.Random(99)
    count = MirroredStag.create(deployment, clock, StagKind.COUNT, 32)
    capital = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 64)
    for _ in range(6):
        count.submit_count(rng.randint(24, 30))  # all high: the pack never reaches them
        capital.submit_capital(rng.randint(1, 4), rng.randint(50, 63))
    for _ in range(2):  # the same pack, epoch after epoch
        reports = run_epochs([count, capital])
        assert [report.result for report in reports] == ["no-hunt", "no-hunt"]
    for stag in (count, capital):
        assert deployment.aggregator.hunts(stag.stag_id) == []
        assert deployment.ledger.executions(stag.stag_id) == []


def test_a_stag_filled_to_its_last_level_refuses_more(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    levels = 8
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, levels)
    for _ in range(levels - 1):
        stag.submit_count(levels - 2)  # all seven need six others: c[7] = 7
    extra = SigningIdentity()
    prepared = prepare_intendo(
        deployment.context, deployment.context.joint_key, stag.spec, extra, Threshold.count(0, levels=levels)
    )
    with pytest.raises(InvalidInput, match="full"):
        deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
    with pytest.raises(InvalidInput, match="full"):
        stag.solver.insert(prepared.intendo_id, 1, 1)
    report = stag.run_epoch()
    assert report.expected is not None and report.expected.level == levels - 1
    # executed members still count against the capacity: still full after the hunt
    with pytest.raises(InvalidInput, match="full"):
        deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
    assert deployment.aggregator.status(stag.stag_id).remaining_capacity == 0


def test_a_full_capital_stag_accepts_again_after_a_withdrawal(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    levels = 16
    stag = MirroredStag.create(deployment, clock, StagKind.CAPITAL, levels)
    big = stag.submit_capital(9, 15)
    stag.submit_capital(6, 15)  # 15 = L - 1: full, and a fixed point
    prepared = prepare_intendo(
        deployment.context, deployment.context.joint_key, stag.spec, SigningIdentity(), Threshold.capital(1, 1, levels=levels),
        capital_tag="main",
    )
    with pytest.raises(InvalidInput, match="full"):
        deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
    stag.withdraw(big)  # before validation: the capacity is free again
    stag.submit_capital(2, 3)
    stag.submit_capital(1, 3)  # 6 + 2 + 1 = 9: {2, 1} fire at 3 (6 needs 15)
    report = stag.run_epoch()
    assert report.expected is not None and report.expected.level == 3


def reachable_threshold(rng: random.Random, stag: MirroredStag, batch: int, kind: StagKind) -> tuple[int, int]:
    """(threshold level, weight) for a big pack: mostly thresholds the coming batch can reach
    from the executed level (so hunts are large and repeated), some uniform, some out of reach."""
    distribution = rng.choices(["reachable", "uniform", "high"], [6, 2, 2])[0]
    executed = stag.solver.executed_level
    if kind is StagKind.COUNT:
        top = stag.levels - 2
        if distribution == "reachable":
            others = min(top, rng.randint(executed, executed + max(1, batch * 3 // 5)))
        elif distribution == "uniform":
            others = rng.randint(0, top)
        else:
            others = rng.randint(top - 3, top)
        return others + 1, 1
    amount, top = rng.randint(1, 6), stag.levels - 1
    if distribution == "reachable":
        total = min(top, rng.randint(executed + amount, executed + amount + max(1, batch * 2)))
    elif distribution == "uniform":
        total = rng.randint(1, top)
    else:
        total = rng.randint(top - 3, top)
    return max(total, amount), amount


@pytest.mark.slow
def test_hundreds_of_intendos_over_several_epochs(deployment, clock) -> None:  # type: ignore[no-untyped-def]
    """220 intendos across a count and a capital stag: several validation batches per epoch,
    hunts of dozens of members (several membership ciphertexts), withdrawals in between."""
    rng = random.Random(300)
    count = MirroredStag.create(deployment, clock, StagKind.COUNT, 256, title="big count")
    capital = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 1024, title="big capital")
    plan = [(70, 60), (50, 40)]  # submissions per epoch: count, capital
    submitted = 0
    for batches in plan:
        for stag, batch in zip((count, capital), batches):
            for _ in range(batch):
                level, weight = reachable_threshold(rng, stag, batch, stag.spec.kind)
                if room_for(stag, weight):
                    stag.submit(Threshold(level, weight))
                    submitted += 1
            pending = list(stag.solver.pending_ids())  # a few leave (counted or just submitted)
            for intendo_id in rng.sample(pending, min(len(pending), 3)):
                stag.withdraw(intendo_id)
        run_epochs([count, capital])
    assert submitted == 220
    reports = [report for stag in (count, capital) for report in stag.reports]
    assert {report.result for report in reports} == {"hunt", "no-hunt"}
    assert max(len(report.expected.members) for report in reports if report.expected) > 32  # several ciphertexts
