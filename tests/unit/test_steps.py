"""Unit tests for the session step graph (stagpack.decrypt.steps, DESIGN.md §3, §3a, §7): the one
table that keyholders, the aggregator and readers follow.

Oracle: the graph written out below as the sequences of steps a session may take, for each kind,
each outcome of every step and both committee settings (noise test on, or off in benchmarks);
`next_step` must walk exactly those, and `require_step` must allow exactly the next one —
refusing the others with PolicyRefusal (its condition fails) or InvalidInput (out of order).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from stagpack.decrypt.steps import SessionFacts, binding, binds, next_step, require_step, steps
from stagpack.errors import InvalidInput, PolicyRefusal
from stagpack.session import SessionKind, Step

HUNT, VALIDATION = SessionKind.HUNT, SessionKind.VALIDATION
CONTRIBUTORS = (1, 2, 3)


def _after(facts: SessionFacts, step: Step, **revealed: object) -> SessionFacts:
    """The facts once `step` has been read (it must be the next one)."""
    assert next_step(facts) is step, (facts.through, step)
    require_step(facts, step)
    return replace(facts, through=step, **revealed)


def _walk(facts: SessionFacts, outcomes: dict[Step, dict[str, object]]) -> list[Step]:
    """Follow next_step from `facts`, revealing `outcomes[step]` after each step."""
    taken = []
    while (step := next_step(facts)) is not None:
        taken.append(step)
        facts = _after(facts, step, **outcomes.get(step, {}))
        assert len(taken) < 10
    return taken


def _start(kind: SessionKind, noise_test: bool = True, batch_size: int = 0) -> SessionFacts:
    return SessionFacts(kind, CONTRIBUTORS, noise_test, batch_size=batch_size)


PASSED = {Step.NOISE: {"noise_passed": True, "clean": CONTRIBUTORS}}  # an honest session: one noise test
FAILED = {Step.NOISE: {"noise_passed": False}}  # something in the session is noisy: test each part alone


def test_the_graph_lists_the_noise_tests_first() -> None:
    assert steps(HUNT) == (Step.NOISE, Step.NOISE_EACH, Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP)
    assert steps(VALIDATION) == (Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE, Step.BATCH, Step.EACH)
    assert Step.INPUT_NOISE not in steps(HUNT)


HUNT_OUTCOMES = [
    ({Step.CHECK: {"candidates": ()}}, [Step.CHECK]),  # quiet: the check did not fire
    ({Step.CHECK: {"candidates": (3, 7)}, Step.CONFIRM: {"level": None}}, [Step.CHECK, Step.CONFIRM]),
    (
        {Step.CHECK: {"candidates": (3, 7)}, Step.CONFIRM: {"level": 7}, Step.MEMBERSHIP: {"members": (True, False)}},
        [Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP],
    ),
]


@pytest.mark.parametrize("outcomes, expected", HUNT_OUTCOMES, ids=["quiet", "not-confirmed", "fired"])
@pytest.mark.parametrize(
    "noise, tests",
    [
        (PASSED, [Step.NOISE]),
        ({**FAILED, Step.NOISE_EACH: {"clean": (1, 3)}}, [Step.NOISE, Step.NOISE_EACH]),
        ({}, []),
    ],
    ids=["noise-passed", "noise-failed", "no-noise-test"],
)
def test_hunt_sessions(
    outcomes: dict[Step, dict[str, object]], expected: list[Step], noise: dict[Step, dict[str, object]], tests: list[Step]
) -> None:
    """NOISE opens every hunt of a committee that tests noise; only when it fails does
    NOISE_EACH follow (to find whose masks are noisy); without the noise test both are skipped."""
    taken = _walk(_start(HUNT, noise_test=bool(tests)), {**noise, **outcomes})
    assert taken == tests + expected


@pytest.mark.parametrize(
    "batch_size, outcomes, expected",
    [
        (5, {**PASSED, Step.BATCH: {"batch_valid": True}}, [Step.NOISE, Step.BATCH]),
        (
            5,
            {**PASSED, Step.BATCH: {"batch_valid": False}, Step.EACH: {"verdicts": (True,) * 4 + (False,)}},
            [Step.NOISE, Step.BATCH, Step.EACH],
        ),
        (1, {**PASSED, Step.BATCH: {"batch_valid": False}}, [Step.NOISE, Step.BATCH]),
        (
            5,
            {**FAILED, Step.NOISE_EACH: {"clean": (2, 3)}, Step.INPUT_NOISE: {"inputs_clean": True}, Step.BATCH: {"batch_valid": True}},
            [Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE, Step.BATCH],
        ),
        (  # noisy intendos: no validity check runs
            5,
            {**FAILED, Step.NOISE_EACH: {"clean": CONTRIBUTORS}, Step.INPUT_NOISE: {"inputs_clean": False}},
            [Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE],
        ),
    ],
    ids=["valid-batch", "invalid-batch", "invalid-single", "noisy-mask", "noisy-batch"],
)
def test_validation_sessions(batch_size: int, outcomes: dict[Step, dict[str, object]], expected: list[Step]) -> None:
    if outcomes[Step.NOISE].get("noise_passed"):
        outcomes = {**outcomes, Step.NOISE: {**outcomes[Step.NOISE], "inputs_clean": True}}
    assert _walk(_start(VALIDATION, batch_size=batch_size), outcomes) == expected


def test_without_the_noise_test_a_validation_goes_straight_to_the_batch_check() -> None:
    outcomes = {Step.BATCH: {"batch_valid": False}, Step.EACH: {"verdicts": (False, True)}}
    assert _walk(_start(VALIDATION, noise_test=False, batch_size=2), outcomes) == [Step.BATCH, Step.EACH]
    for step in (Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE):
        with pytest.raises(InvalidInput):
            require_step(_start(VALIDATION, noise_test=False, batch_size=2), step)
    with pytest.raises(InvalidInput):
        require_step(_start(HUNT, noise_test=False), Step.NOISE)


def test_the_masks_of_later_steps_are_the_clean_contributors_only() -> None:
    tested = _after(_after(_start(HUNT), Step.NOISE, noise_passed=False), Step.NOISE_EACH, clean=(1, 3))
    assert tested.mask_contributors == (1, 3)
    assert _after(_start(HUNT), Step.NOISE, noise_passed=True, clean=CONTRIBUTORS).mask_contributors == CONTRIBUTORS
    assert _start(HUNT, noise_test=False).mask_contributors == CONTRIBUTORS


def test_out_of_order_steps_are_invalid_input() -> None:
    start = _start(VALIDATION, batch_size=4)
    for step in (Step.NOISE_EACH, Step.INPUT_NOISE, Step.BATCH):  # the noise test comes first
        with pytest.raises(InvalidInput, match="does not come after the start"):
            require_step(start, step)
    passed = _after(start, Step.NOISE, noise_passed=True, clean=CONTRIBUTORS, inputs_clean=True)
    for step in (Step.NOISE, Step.NOISE_EACH, Step.INPUT_NOISE):  # no repeat, no tests alone after a pass
        with pytest.raises(InvalidInput, match="does not come after noise"):
            require_step(passed, step)
    failed = _after(start, Step.NOISE, noise_passed=False)
    for step in (Step.INPUT_NOISE, Step.BATCH):  # a failed test must find its culprits first
        with pytest.raises(InvalidInput, match="does not come after noise"):
            require_step(failed, step)
    each = _after(failed, Step.NOISE_EACH, clean=CONTRIBUTORS)
    with pytest.raises(InvalidInput, match="does not come after noise-each"):  # nor skip the intendos' own test
        require_step(each, Step.BATCH)
    with pytest.raises(InvalidInput, match="does not come after"):
        require_step(_start(HUNT), Step.CHECK)
    with pytest.raises(InvalidInput, match="does not come after"):
        require_step(_after(_start(HUNT), Step.NOISE, noise_passed=False), Step.CHECK)
    checked = _after(_after(_start(HUNT), Step.NOISE, noise_passed=True, clean=CONTRIBUTORS), Step.CHECK, candidates=(4,))
    for step in (Step.NOISE, Step.NOISE_EACH, Step.CHECK):
        with pytest.raises(InvalidInput):
            require_step(checked, step)
    # A step of the other kind of session belongs nowhere.
    for facts, step in ((_start(HUNT), Step.INPUT_NOISE), (_start(HUNT), Step.BATCH), (start, Step.CHECK), (start, Step.MEMBERSHIP)):
        with pytest.raises(InvalidInput, match="does not belong"):
            require_step(facts, step)


def test_steps_whose_condition_fails_are_policy_refusals_with_the_graphs_reason() -> None:
    hunt = _after(_start(HUNT), Step.NOISE, noise_passed=True, clean=CONTRIBUTORS)
    with pytest.raises(PolicyRefusal, match="did not fire"):
        require_step(replace(hunt, through=Step.CHECK, candidates=()), Step.CONFIRM)
    with pytest.raises(PolicyRefusal, match="no candidate level was confirmed"):
        require_step(replace(hunt, through=Step.CONFIRM, candidates=(2,), level=None), Step.MEMBERSHIP)
    with pytest.raises(PolicyRefusal, match="no membership"):  # skipping the confirmation
        require_step(replace(hunt, through=Step.CHECK, candidates=(2,)), Step.MEMBERSHIP)
    failed = _after(_start(VALIDATION, batch_size=3), Step.NOISE, noise_passed=False)
    validation = _after(_after(failed, Step.NOISE_EACH, clean=CONTRIBUTORS), Step.INPUT_NOISE, inputs_clean=False)
    with pytest.raises(PolicyRefusal, match="noise test failed"):
        require_step(validation, Step.BATCH)
    assert next_step(validation) is None
    checked = _after(replace(validation, inputs_clean=True), Step.BATCH, batch_valid=True)
    with pytest.raises(PolicyRefusal, match="already decided"):
        require_step(checked, Step.EACH)
    with pytest.raises(PolicyRefusal, match="already decided"):
        require_step(replace(checked, batch_valid=False, batch_size=1), Step.EACH)


def test_only_the_membership_binds_and_the_confirmation_may_precede_it() -> None:
    assert [step for step in steps(HUNT) if binds(HUNT, step)] == [Step.MEMBERSHIP]
    assert not any(binds(VALIDATION, step) for step in steps(VALIDATION))
    assert not binding(HUNT, {Step.NOISE, Step.CHECK})
    assert binding(HUNT, {Step.NOISE, Step.CHECK, Step.CONFIRM})
    assert binding(HUNT, {Step.MEMBERSHIP})
    assert not binding(VALIDATION, set(steps(VALIDATION)))
