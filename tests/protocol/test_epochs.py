"""Epoch scheduling: an epoch in which nothing changed passes without a session.

The same pack gives the same answer (a fixed point always shows in the check), so the service
evaluates a stag again only after its log moved. Fewer decryptions of the same pack, and idle
stags cost nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stagpack.aggregator.core import TickLog
from stagpack.encoding import StagKind, Threshold
from stagpack.identity import SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.participant.sdk import prepare_intendo
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec


def test_unchanged_packs_are_evaluated_once_and_changes_are_evaluated_again(tmp_path: Path) -> None:
    clock = ManualClock()
    system = InProcessDeployment.start(tmp_path, 3, 3, clock=clock, recheck_unchanged=False)
    aggregator = system.aggregator
    spec = StagSpec.new(committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=20, epoch_millis=1000, opens_at_millis=clock())
    aggregator.create_stag(spec)
    solver = PackSolver(20)

    def submit(level: int) -> None:
        prepared = prepare_intendo(system.context, system.context.joint_key, spec, SigningIdentity(), Threshold(level, 1))
        aggregator.submit(prepared.envelope, prepared.ciphertext)
        solver.insert(prepared.intendo_id, level, 1)

    def served_checks() -> int:
        return sum(
            1 for record in system.nodes[0].session_records(spec.stag_id) for step in record.served if step.step.value == "check"
        )

    for level in (3, 5, 9):
        submit(level)
    clock.advance(1000)
    aggregator.run_due(spec.stag_id)
    first = aggregator.status(spec.stag_id)
    assert [result.result.value for result in first.epochs] == ["no-hunt"] and solver.hunt() is None
    assert first.epochs[0].height == first.height and served_checks() == 1

    for _ in range(3):  # nothing changes: no session, no new result
        clock.advance(1000)
        aggregator.run_due(spec.stag_id)
    assert len(aggregator.status(spec.stag_id).epochs) == 1 and served_checks() == 1

    for level in (2, 3):  # now {2, 3, 3} reach a fixed point at 3
        submit(level)
    clock.advance(1000)
    aggregator.run_due(spec.stag_id)
    status = aggregator.status(spec.stag_id)
    expected = solver.hunt()
    assert expected is not None and [result.result.value for result in status.epochs] == ["no-hunt", "hunt"]
    assert status.hunts[0].outcome.level == expected.level and set(status.hunts[0].outcome.member_ids) == set(expected.members)
    solver.execute(expected)
    clock.advance(1000)
    aggregator.run_due(spec.stag_id)  # the hunt entry changed the log: the pack is evaluated once more
    after = aggregator.status(spec.stag_id)
    assert [result.result.value for result in after.epochs] == ["no-hunt", "hunt", "no-hunt"] and solver.hunt() is None
    assert after.epochs[-1].height == after.height


def test_a_stag_failing_every_tick_is_logged_when_its_reason_changes_and_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    ticks = TickLog(clock)
    stalled, other = b"\x01" * 32, b"\x02" * 32
    caplog.set_level(logging.INFO, logger="stagpack.aggregator")

    def logged() -> list[str]:
        messages = [record.getMessage() for record in caplog.records]
        caplog.clear()
        return messages

    for _ in range(5):  # five ticks in a row, half a second apart
        ticks.failed(stalled, "only 1 keyholder reachable, 2 needed")
        clock.advance(500)
    ticks.failed(other, "only 1 keyholder reachable, 2 needed")  # another stag's failure is its own
    assert logged() == [
        f"stag {stalled.hex()[:12]}: only 1 keyholder reachable, 2 needed",
        f"stag {other.hex()[:12]}: only 1 keyholder reachable, 2 needed",
    ]
    clock.advance(TickLog.REPEAT_MILLIS)
    ticks.failed(stalled, "only 1 keyholder reachable, 2 needed")
    assert logged() == [f"stag {stalled.hex()[:12]}: only 1 keyholder reachable, 2 needed (5 more failed runs for this reason)"]
    ticks.failed(stalled, "keyholder 3 refused: stale session")  # a new reason is news at once
    assert logged() == [f"stag {stalled.hex()[:12]}: keyholder 3 refused: stale session"]
    ticks.succeeded(stalled)
    ticks.succeeded(stalled)  # a success after a success says nothing
    assert logged() == [f"stag {stalled.hex()[:12]}: runs succeed again after 7 failed"]
    ticks.failed(stalled, "keyholder 3 refused: stale session")  # after a success, the same reason is news again
    assert logged() == [f"stag {stalled.hex()[:12]}: keyholder 3 refused: stale session"]


def test_the_committees_work_on_a_stag_is_metered_as_the_keyholders_record_it(tmp_path: Path) -> None:
    """`stag status` reports what the committee spent on a stag — sessions, decryption steps,
    keyholder calls, partial decryptions and their bytes — so that fees can be set from
    measurements. The oracle is the keyholders' own durable records of what they served."""
    clock = ManualClock()
    system = InProcessDeployment.start(tmp_path, 3, 2, clock=clock)  # f = 1: every keyholder decrypts every step
    aggregator = system.aggregator
    spec = StagSpec.new(committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=20, epoch_millis=1000, opens_at_millis=clock())
    aggregator.create_stag(spec)
    served: dict[tuple[int, bytes, str], tuple[int, int]] = {}  # (keyholder, session, step) -> (partials, bytes)
    certified: set[bytes] = set()

    def absorb() -> None:
        """Read the records before a later session erases their partials."""
        for node in system.nodes:
            for record in node.session_records(spec.stag_id):
                if record.certified:
                    certified.add(record.session.session_id)
                for step in record.served:
                    if step.partials:
                        served[(node.index, record.session.session_id, step.step.value)] = (
                            len(step.partials), sum(len(partial.data) for partial in step.partials)
                        )

    for level in (9, 12, 15):  # never fires
        prepared = prepare_intendo(system.context, system.context.joint_key, spec, SigningIdentity(), Threshold(level, 1))
        aggregator.submit(prepared.envelope, prepared.ciphertext)
    aggregator.run_due(spec.stag_id)  # epoch 0: the validation session only
    absorb()
    clock.advance(1000)
    aggregator.run_due(spec.stag_id)  # epoch 1: the hunt check
    absorb()
    assert [result.result.value for result in aggregator.status(spec.stag_id).epochs] == ["no-hunt"]
    sessions = {session for _, session, _ in served}
    steps = {(session, step) for _, session, step in served}
    n = len(system.nodes)
    assert all(len({k for k, s, t in served if (s, t) == pair}) == n for pair in steps)  # everyone served every step
    cost = aggregator.status(spec.stag_id).cost
    assert (cost.sessions, cost.steps) == (len(sessions), len(steps)) == (2, len(steps))
    assert cost.partials == sum(count for count, _ in served.values())
    assert cost.partial_bytes == sum(size for _, size in served.values()) > 0
    # per session: open and reveal on every keyholder, every step on every keyholder, and a
    # certification where there was an outcome (the validation; the quiet hunt has none)
    assert len(certified) == 1
    assert cost.calls == len(sessions) * 2 * n + len(steps) * n + len(certified) * n
