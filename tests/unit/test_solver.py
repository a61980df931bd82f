"""Tests for the plaintext pack solver (stagpack.solver).

The solver is the oracle for the rest of the system, so it is itself checked against a brute
force that enumerates every subset of small packs, through random interleavings of insert,
withdraw and execute, for count stags (weight 1) and capital stags (random weights).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from stagpack.errors import AlreadyExists, InvalidInput, NotFound, WrongPhase
from stagpack.solver import (
    MAX_LEVELS,
    Hunt,
    MaxSegmentTree,
    PackSolver,
    greatest_satisfying_subset,
)
from stagpack.solver.threshold_index import PendingByThreshold

# --------------------------------------------------------------------------------------------
# Brute-force oracle


@dataclass
class PackModel:
    """The pack as plain data: live intendos in insertion order, and the executed level."""

    levels: int
    intendos: dict[Hashable, tuple[int, int]] = field(default_factory=dict)  # id -> (C, a)
    executed: set[Hashable] = field(default_factory=set)
    executed_level: int = 0

    def pending(self) -> dict[Hashable, tuple[int, int]]:
        return {k: v for k, v in self.intendos.items() if k not in self.executed}

    def total_weight(self) -> int:
        return sum(weight for _, weight in self.intendos.values())

    def counts(self) -> tuple[int, ...]:
        return tuple(
            sum(weight for threshold, weight in self.intendos.values() if threshold <= level)
            for level in range(self.levels)
        )


def satisfying_subsets(model: PackModel) -> list[tuple[int, frozenset[Hashable]]]:
    """Every (total, S) with S a set of pending intendos such that S together with the executed
    intendos is satisfying (each member's threshold <= the total) and total > executed level."""
    pending = model.pending()
    executed_weight = sum(model.intendos[i][1] for i in model.executed)
    executed_thresholds = [model.intendos[i][0] for i in model.executed]
    found = []
    ids = list(pending)
    for size in range(len(ids) + 1):
        for subset in combinations(ids, size):
            total = executed_weight + sum(pending[i][1] for i in subset)
            if total <= model.executed_level:
                continue
            thresholds = executed_thresholds + [pending[i][0] for i in subset]
            if all(threshold <= total for threshold in thresholds):
                found.append((total, frozenset(subset)))
    return found


def oracle_hunt(model: PackModel) -> tuple[int, frozenset[Hashable]] | None:
    """The greatest satisfying subset by enumeration, checking on the way that it is unique:
    the union of all satisfying sets is itself satisfying and is the only one of largest total."""
    found = satisfying_subsets(model)
    if not found:
        return None
    union = frozenset().union(*(subset for _, subset in found))
    best_total = max(total for total, _ in found)
    best = [subset for total, subset in found if total == best_total]
    assert best == [union], "the greatest satisfying subset must be unique and be the union"
    return best_total, union


# --------------------------------------------------------------------------------------------
# Solver against the oracle, through random interleavings of operations

INVALID_NUMBERS: list[object] = [True, False, 1.0, "1", None, 2**70]


class PackMachine(RuleBasedStateMachine):
    """Drives a PackSolver and a PackModel side by side and compares them after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.solver = PackSolver(2)
        self.model = PackModel(2)
        self.capital = False
        self.hunts_executed = 0

    @initialize(levels=st.integers(2, 11), capital=st.booleans())
    def create(self, levels: int, capital: bool) -> None:
        self.solver = PackSolver(levels)
        self.model = PackModel(levels)
        self.capital = capital

    def draw_weight(self, data: st.DataObject) -> int:
        top = self.model.levels - 1
        if not self.capital:
            return 1
        return data.draw(st.integers(1, min(3, top)) | st.integers(1, top), label="weight")

    @rule(intendo_id=st.integers(0, 12), data=st.data())
    def insert(self, intendo_id: int, data: st.DataObject) -> None:
        top = self.model.levels - 1
        # Half the time near what the pack already holds, so that hunts fire often.
        near = min(top, self.model.total_weight() + 2)
        threshold = data.draw(st.integers(1, top) | st.integers(1, near), label="threshold")
        weight = self.draw_weight(data)
        if intendo_id in self.model.intendos:
            with pytest.raises(AlreadyExists):
                self.solver.insert(intendo_id, threshold, weight)
        elif self.model.total_weight() + weight > self.model.levels - 1:
            with pytest.raises(InvalidInput, match="stag is full"):
                self.solver.insert(intendo_id, threshold, weight)
        else:
            self.solver.insert(intendo_id, threshold, weight)
            self.model.intendos[intendo_id] = (threshold, weight)

    @rule(
        which=st.sampled_from(["threshold", "weight"]),
        bad=st.sampled_from(["zero", "levels", "negative", "above"] + INVALID_NUMBERS),
    )
    def insert_bad_value(self, which: str, bad: object) -> None:
        levels = self.model.levels
        named: dict[object, int] = {"zero": 0, "levels": levels, "negative": -1}
        named["above"] = levels + 7
        value: Any = named.get(bad, bad)
        expected: type[Exception] = (
            InvalidInput
            if isinstance(value, int) and not isinstance(value, bool)
            else TypeError
        )
        with pytest.raises(expected):
            if which == "threshold":
                self.solver.insert("never", value, 1)
            else:
                self.solver.insert("never", 1, value)

    @rule(intendo_id=st.integers(0, 13))
    def withdraw(self, intendo_id: int) -> None:
        if intendo_id not in self.model.intendos:
            with pytest.raises(NotFound):
                self.solver.withdraw(intendo_id)
        elif intendo_id in self.model.executed:
            with pytest.raises(WrongPhase):
                self.solver.withdraw(intendo_id)
        else:
            self.solver.withdraw(intendo_id)
            del self.model.intendos[intendo_id]

    @precondition(lambda self: self.solver.hunt() is None)
    @rule()
    def execute_when_nothing_fires(self) -> None:
        with pytest.raises(WrongPhase):
            self.solver.execute(Hunt(self.model.levels - 1, (), ()))

    @precondition(lambda self: self.solver.hunt() is not None)
    @rule()
    def execute(self) -> None:
        hunt = self.solver.hunt()
        assert hunt is not None
        self.solver.execute(hunt)
        self.model.executed.update(hunt.members)
        self.model.executed_level = hunt.level
        self.hunts_executed += 1

    @precondition(lambda self: self.solver.hunt() is not None)
    @rule(change=st.sampled_from(["level", "drop member", "weight"]))
    def execute_made_up_hunt(self, change: str) -> None:
        hunt = self.solver.hunt()
        assert hunt is not None
        if change == "level":
            fake = Hunt(hunt.level + 1, hunt.members, hunt.weights)
        elif change == "drop member":
            fake = Hunt(hunt.level, hunt.members[1:], hunt.weights[1:])
        else:
            fake = Hunt(hunt.level, hunt.members, tuple(w + 1 for w in hunt.weights))
        with pytest.raises(WrongPhase):
            self.solver.execute(fake)

    @invariant()
    def matches_oracle(self) -> None:
        solver, model = self.solver, self.model
        assert solver.levels == model.levels
        assert solver.counts() == model.counts()
        assert solver.total_weight == model.total_weight() <= model.levels - 1
        assert solver.executed_level == model.executed_level
        assert len(solver) == len(model.intendos)
        assert solver.pending_ids() == tuple(model.pending())
        assert solver.executed_ids() == tuple(i for i in model.intendos if i in model.executed)
        # Executed weight is exactly the executed level (the hunt members are never empty).
        assert sum(model.intendos[i][1] for i in model.executed) == model.executed_level

        expected = oracle_hunt(model)
        hunt = solver.hunt()
        if expected is None:
            assert hunt is None
            assert solver.greatest_fixed_point() is None
        else:
            level, members = expected
            assert hunt is not None
            assert solver.greatest_fixed_point() == hunt.level == level
            assert set(hunt.members) == members
            assert len(hunt.members) == len(members) > 0
            assert hunt.members == tuple(i for i in model.intendos if i in members)
            assert hunt.weights == tuple(model.intendos[i][1] for i in hunt.members)
            assert model.executed_level + sum(hunt.weights) == hunt.level
        if not model.executed:
            assert greatest_satisfying_subset(model.intendos.values()) == (
                0 if expected is None else expected[0]
            )


PackMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPackAgainstOracle = PackMachine.TestCase


@pytest.mark.parametrize("capital", [False, True], ids=["count", "capital"])
def test_long_random_histories_against_oracle(capital: bool) -> None:
    """Seeded histories that execute whenever a hunt fires, so that many hunts happen in a row
    (the state machine above explores more shapes but executes less often)."""
    for seed in range(60):
        rng = random.Random(seed * 2 + capital)
        machine = PackMachine()
        levels = rng.randint(2, 11)
        machine.create(levels, capital)
        for step in range(50):
            hunt = machine.solver.hunt()
            if hunt is not None and rng.random() < 0.6:
                machine.execute()
            elif machine.model.pending() and rng.random() < 0.2:
                machine.withdraw(rng.choice(list(machine.model.pending())))
            else:
                top = levels - 1
                weight = rng.randint(1, min(3, top)) if capital else 1
                threshold = rng.randint(1, min(top, machine.model.total_weight() + weight + 1))
                intendo_id = f"{seed}-{step}"
                if machine.model.total_weight() + weight <= top:
                    machine.solver.insert(intendo_id, threshold, weight)
                    machine.model.intendos[intendo_id] = (threshold, weight)
            machine.matches_oracle()


# --------------------------------------------------------------------------------------------
# Uniqueness of the greatest satisfying subset, and the direct solver, on fresh packs


def packs(max_levels: int = 12, count_only: bool = False) -> st.SearchStrategy[
    tuple[int, list[tuple[int, int]]]
]:
    """A number of levels and up to 10 (threshold, weight) pairs whose total fits."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
        levels = draw(st.integers(2, max_levels))
        top = levels - 1
        pairs: list[tuple[int, int]] = []
        for _ in range(draw(st.integers(0, 10))):
            weight = 1 if count_only else draw(st.integers(1, top))
            if sum(w for _, w in pairs) + weight > top:
                break
            pairs.append((draw(st.integers(1, top)), weight))
        return levels, pairs

    return build()


@pytest.mark.parametrize("count_only", [True, False], ids=["count", "capital"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_greatest_satisfying_subset_is_unique_union(count_only: bool, data: st.DataObject) -> None:
    levels, pairs = data.draw(packs(count_only=count_only))
    model = PackModel(levels, {i: pair for i, pair in enumerate(pairs)})
    found = satisfying_subsets(model)
    solver = PackSolver(levels)
    for i, (threshold, weight) in enumerate(pairs):
        solver.insert(i, threshold, weight)
    hunt = solver.hunt()
    if not found:
        assert hunt is None
        assert greatest_satisfying_subset(pairs) == 0
        return
    union = frozenset().union(*(subset for _, subset in found))
    union_total = sum(model.intendos[i][1] for i in union)
    assert all(model.intendos[i][0] <= union_total for i in union)  # the union is satisfying
    assert union_total == max(total for total, _ in found)
    assert [subset for total, subset in found if total == union_total] == [union]
    assert greatest_satisfying_subset(pairs) == union_total
    assert union == {i for i, (threshold, _) in enumerate(pairs) if threshold <= union_total}
    assert hunt is not None and hunt.level == union_total and set(hunt.members) == union


def test_greatest_satisfying_subset_examples() -> None:
    assert greatest_satisfying_subset([]) == 0
    assert greatest_satisfying_subset([(1, 1)]) == 1
    assert greatest_satisfying_subset([(2, 1)]) == 0
    assert greatest_satisfying_subset([(3, 1), (3, 1), (3, 1)]) == 3
    assert greatest_satisfying_subset([(3, 1), (3, 1), (4, 1)]) == 0
    # Two fixed points (1 and 3): the greatest wins.
    assert greatest_satisfying_subset([(1, 1), (3, 1), (3, 1)]) == 3
    # Capital: 5 + 3 reaches 8, which both asked for; a third needing 20 is left out.
    assert greatest_satisfying_subset([(8, 5), (8, 3), (20, 4)]) == 8
    assert greatest_satisfying_subset(iter([(2, 2)])) == 2


@pytest.mark.parametrize(
    ("pairs", "error"),
    [
        ([(0, 1)], InvalidInput),
        ([(1, 0)], InvalidInput),
        ([(-1, 1)], InvalidInput),
        ([(True, 1)], TypeError),
        ([(1, 1.0)], TypeError),
        ([(1, 1, 1)], TypeError),
        ([[1, 1]], TypeError),
    ],
)
def test_greatest_satisfying_subset_rejects_bad_input(
    pairs: Iterable[tuple[int, int]], error: type[Exception]
) -> None:
    with pytest.raises(error):
        greatest_satisfying_subset(pairs)


# --------------------------------------------------------------------------------------------
# The segment tree against a plain list


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_segment_tree_matches_list(data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(-50, 50), min_size=1, max_size=40), label="values")
    tree = MaxSegmentTree(values)
    model = list(values)
    size = len(model)
    bounds = st.tuples(st.integers(0, size), st.integers(0, size)).map(sorted)
    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        lo, hi = data.draw(bounds, label="range")
        kind = data.draw(st.sampled_from(["add", "rightmost", "max", "at"]), label="kind")
        if kind == "add":
            delta = data.draw(st.integers(-20, 20), label="delta")
            tree.range_add(lo, hi, delta)
            for i in range(lo, hi):
                model[i] += delta
        elif kind == "rightmost":
            value = data.draw(st.integers(-60, 60), label="value")
            hits = [i for i in range(lo, hi) if model[i] >= value]
            assert tree.rightmost_index_at_least(value, lo, hi) == (hits[-1] if hits else None)
        elif kind == "max" and lo < hi:
            assert tree.range_max(lo, hi) == max(model[lo:hi])
        elif kind == "at" and lo < size:
            assert tree.value_at(lo) == model[lo]
        assert tree.max() == max(model)
        assert tree.to_list() == model
        assert len(tree) == size


def test_segment_tree_rejects_bad_ranges() -> None:
    tree = MaxSegmentTree([0, 1, 2])
    for lo, hi in [(-1, 2), (2, 1), (0, 4)]:
        with pytest.raises(InvalidInput):
            tree.range_add(lo, hi, 1)
        with pytest.raises(InvalidInput):
            tree.rightmost_index_at_least(0, lo, hi)
    with pytest.raises(InvalidInput):
        tree.range_max(1, 1)
    with pytest.raises(InvalidInput):
        tree.value_at(3)
    with pytest.raises(InvalidInput):
        MaxSegmentTree([])
    assert tree.rightmost_index_at_least(0, 2, 2) is None
    assert tree.to_list() == [0, 1, 2]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_pending_by_threshold_matches_list(data: st.DataObject) -> None:
    max_threshold = data.draw(st.integers(1, 40), label="max_threshold")
    index = PendingByThreshold(max_threshold)
    model: dict[int, int] = {}  # id -> threshold
    for step in range(data.draw(st.integers(0, 40), label="steps")):
        if len(model) > 0 and data.draw(st.booleans(), label="remove"):
            victim = data.draw(st.sampled_from(sorted(model)), label="victim")
            index.remove(model.pop(victim), victim)
        else:
            threshold = data.draw(st.integers(1, max_threshold), label="threshold")
            index.add(threshold, step)
            model[step] = threshold
        query = data.draw(st.integers(-1, max_threshold + 1), label="query")
        listed = index.ids_at_most(query)
        assert sorted(listed) == sorted(i for i, t in model.items() if t <= query)
        assert [model[i] for i in listed] == sorted(model[i] for i in listed)
        assert len(index) == len(model)
    with pytest.raises(NotFound):
        index.remove(1, "absent")
    with pytest.raises(InvalidInput):
        index.add(max_threshold + 1, "too high")


# --------------------------------------------------------------------------------------------
# Edge cases


def snapshot(solver: PackSolver) -> tuple[object, ...]:
    return (
        solver.counts(),
        solver.pending_ids(),
        solver.executed_ids(),
        solver.total_weight,
        solver.executed_level,
        len(solver),
        solver.hunt(),
    )


@pytest.mark.parametrize("levels", [1, 0, -5, MAX_LEVELS + 1])
def test_levels_out_of_range(levels: int) -> None:
    with pytest.raises(InvalidInput):
        PackSolver(levels)


@pytest.mark.parametrize("levels", [True, 8.0, "8", None])
def test_levels_wrong_type(levels: Any) -> None:
    with pytest.raises(TypeError):
        PackSolver(levels)


def test_smallest_and_largest_packs() -> None:
    solver = PackSolver(2)
    assert solver.hunt() is None
    solver.insert("only", 1)
    hunt = solver.hunt()
    assert hunt == Hunt(1, ("only",), (1,))
    solver.execute(hunt)
    assert solver.executed_level == 1 and solver.hunt() is None
    with pytest.raises(InvalidInput, match="stag is full"):
        solver.insert("more", 1)
    big = PackSolver(MAX_LEVELS)
    assert big.levels == MAX_LEVELS and big.counts() == (0,) * MAX_LEVELS
    big.insert("whale", MAX_LEVELS - 1, MAX_LEVELS - 1)
    assert big.hunt() == Hunt(MAX_LEVELS - 1, ("whale",), (MAX_LEVELS - 1,))


@pytest.mark.parametrize("weights", [[1, 1, 1, 1], [2, 2], [4], [1, 3]], ids=str)
def test_stag_full_at_top_level(weights: list[int]) -> None:
    solver = PackSolver(5)  # full at 4
    for i, weight in enumerate(weights):
        solver.insert(i, 4, weight)
    assert solver.total_weight == 4
    assert solver.hunt() == Hunt(4, tuple(range(len(weights))), tuple(weights))
    before = snapshot(solver)
    for weight in (1, 2, 4):
        with pytest.raises(InvalidInput, match="stag is full"):
            solver.insert("late", 1, weight)
    assert snapshot(solver) == before
    # Withdrawing makes room again.
    solver.withdraw(0)
    solver.insert("late", 1, weights[0])
    assert solver.total_weight == 4


def test_capital_insert_that_would_overflow_changes_nothing() -> None:
    solver = PackSolver(10)
    solver.insert("a", 9, 6)
    before = snapshot(solver)
    with pytest.raises(InvalidInput, match="stag is full"):
        solver.insert("b", 9, 4)
    assert snapshot(solver) == before
    solver.insert("b", 9, 3)
    assert solver.hunt() == Hunt(9, ("a", "b"), (6, 3))


@pytest.mark.parametrize(
    ("threshold", "weight", "error"),
    [
        (0, 1, InvalidInput),
        (8, 1, InvalidInput),  # threshold == L
        (9, 1, InvalidInput),
        (-1, 1, InvalidInput),
        (1, 0, InvalidInput),
        (1, -2, InvalidInput),
        (1, 8, InvalidInput),  # weight == L
        (True, 1, TypeError),  # bool is not an int here
        (False, 1, TypeError),
        (1, True, TypeError),
        (2.0, 1, TypeError),
        ("2", 1, TypeError),
        (None, 1, TypeError),
        (1, 1.5, TypeError),
        (0, 1.5, TypeError),  # wrong types are reported before wrong values
    ],
)
def test_bad_threshold_or_weight_changes_nothing(
    threshold: Any, weight: Any, error: type[Exception]
) -> None:
    solver = PackSolver(8)
    solver.insert("a", 3)
    solver.insert("b", 2)
    before = snapshot(solver)
    with pytest.raises(error):
        solver.insert("c", threshold, weight)
    assert snapshot(solver) == before


def test_unhashable_id_is_a_type_error() -> None:
    solver = PackSolver(8)
    with pytest.raises(TypeError):
        solver.insert(["a"], 1)
    with pytest.raises(TypeError):
        solver.withdraw(["a"])
    assert len(solver) == 0


def test_duplicate_id() -> None:
    solver = PackSolver(8)
    solver.insert("a", 3)
    before = snapshot(solver)
    with pytest.raises(AlreadyExists):
        solver.insert("a", 5)
    with pytest.raises(AlreadyExists):  # checked before "full"
        solver.insert("a", 5, 7)
    assert snapshot(solver) == before
    # An executed intendo is still live: its id cannot be reused either.
    solver.insert("b", 2)
    solver.insert("c", 1)
    hunt = solver.hunt()
    assert hunt is not None
    solver.execute(hunt)
    with pytest.raises(AlreadyExists):
        solver.insert("a", 1)
    # A withdrawn id may come back, and joins at the end of the insertion order.
    solver.insert("d", 7)
    solver.insert("e", 7)
    solver.withdraw("d")
    solver.insert("d", 7)
    assert solver.pending_ids() == ("e", "d")


def test_withdraw_unknown_and_executed() -> None:
    solver = PackSolver(8)
    with pytest.raises(NotFound):
        solver.withdraw("ghost")
    solver.insert("a", 1)
    solver.insert("b", 5)
    hunt = solver.hunt()
    assert hunt == Hunt(1, ("a",), (1,))
    solver.execute(hunt)
    before = snapshot(solver)
    with pytest.raises(WrongPhase):
        solver.withdraw("a")
    assert snapshot(solver) == before
    solver.withdraw("b")
    with pytest.raises(NotFound):
        solver.withdraw("b")
    assert solver.counts() == (0, 1, 1, 1, 1, 1, 1, 1)


def test_hunts_in_sequence_see_executed_members() -> None:
    """Count stag: "if at least N others" is threshold N + 1, and executed members count."""
    solver = PackSolver(10)
    for name in ("ann", "bob", "cat"):
        solver.insert(name, 2 + 1)  # at least 2 others
    solver.insert("dan", 3 + 1)  # at least 3 others
    # ann, bob, cat fire at 3; with dan the pack reaches 4 too, and the greatest fixed point wins.
    assert solver.hunt() == Hunt(4, ("ann", "bob", "cat", "dan"), (1, 1, 1, 1))
    solver.withdraw("dan")
    first = solver.hunt()
    assert first == Hunt(3, ("ann", "bob", "cat"), (1, 1, 1))
    solver.execute(first)
    assert solver.executed_level == 3 and solver.hunt() is None
    # dan joins later: the three executed members are the "3 others" he needs.
    solver.insert("dan", 3 + 1)
    second = solver.hunt()
    assert second == Hunt(4, ("dan",), (1,))
    solver.execute(second)
    # Two who each need 5 others fire together at 6; one who needs 8 others waits.
    solver.insert("eve", 5 + 1)
    solver.insert("fay", 8 + 1)
    assert solver.hunt() is None
    solver.insert("gus", 5 + 1)
    third = solver.hunt()
    assert third == Hunt(6, ("eve", "gus"), (1, 1))
    solver.execute(third)
    assert solver.executed_ids() == ("ann", "bob", "cat", "dan", "eve", "gus")
    assert solver.pending_ids() == ("fay",)
    assert solver.counts() == (0, 0, 0, 3, 4, 4, 6, 6, 6, 7)
    assert solver.total_weight == 7 and len(solver) == 7


def test_late_joiner_with_low_threshold_fires_alone() -> None:
    solver = PackSolver(10)
    for name in "abcde":
        solver.insert(name, 5)
    hunt = solver.hunt()
    assert hunt is not None and hunt.level == 5
    solver.execute(hunt)
    solver.insert("z", 2)  # already satisfied by the executed five
    assert solver.hunt() == Hunt(6, ("z",), (1,))


def test_capital_hunts_in_sequence() -> None:
    solver = PackSolver(101)
    solver.insert("fund", 50, 30)
    solver.insert("angel", 40, 20)
    solver.insert("whale", 100, 45)
    first = solver.hunt()
    assert first == Hunt(50, ("fund", "angel"), (30, 20))
    solver.execute(first)
    assert solver.hunt() is None
    solver.insert("minnow", 60, 5)
    second = solver.hunt()
    assert second == Hunt(100, ("whale", "minnow"), (45, 5))
    solver.execute(second)
    assert solver.executed_level == 100 and solver.hunt() is None
    assert solver.greatest_fixed_point() is None


def test_packs_that_never_fire() -> None:
    solver = PackSolver(20)
    for i in range(5):
        solver.insert(i, 6 + i)  # everybody wants one more than the pack will ever have
    assert solver.hunt() is None and solver.greatest_fixed_point() is None
    with pytest.raises(WrongPhase):
        solver.execute(Hunt(5, tuple(range(5)), (1,) * 5))
    capital = PackSolver(20)
    capital.insert("a", 19, 9)
    capital.insert("b", 19, 9)
    assert capital.hunt() is None
    assert capital.executed_level == 0


def test_stale_hunt_is_refused_and_an_equal_one_is_not() -> None:
    solver = PackSolver(10)
    solver.insert("a", 2)
    solver.insert("b", 2)
    hunt = solver.hunt()
    assert hunt == Hunt(2, ("a", "b"), (1, 1))
    solver.insert("c", 9)  # does not change the hunt
    assert solver.hunt() == hunt
    solver.insert("d", 3)  # now the pack reaches 3
    before = snapshot(solver)
    with pytest.raises(WrongPhase, match="stale"):
        solver.execute(hunt)
    assert snapshot(solver) == before
    solver.withdraw("d")
    solver.execute(hunt)  # equal to the current hunt again
    with pytest.raises(WrongPhase):
        solver.execute(hunt)  # already executed
    assert solver.executed_level == 2


def test_execute_type_and_hunt_shape() -> None:
    solver = PackSolver(4)
    solver.insert("a", 1)
    not_a_hunt: Any = (1, ("a",), (1,))
    with pytest.raises(TypeError):
        solver.execute(not_a_hunt)
    with pytest.raises(InvalidInput):
        Hunt(1, ("a",), ())
    a_list: Any = ["a"]
    with pytest.raises(TypeError):
        Hunt(1, a_list, (1,))
    with pytest.raises(TypeError):
        Hunt(True, ("a",), (1,))


# --------------------------------------------------------------------------------------------
# Complexity sanity check: counts visited tree nodes, never time


def test_operations_visit_logarithmically_many_nodes() -> None:
    levels = 2**16
    log_levels = math.log2(levels)
    solver = PackSolver(levels)
    rng = random.Random(2024)
    worst = {"insert": 0, "withdraw": 0, "query": 0}

    def measure(kind: str, before: int) -> None:
        worst[kind] = max(worst[kind], solver.segment_tree_node_visits - before)

    live: list[int] = []
    for step in range(3000):
        before = solver.segment_tree_node_visits
        if live and rng.random() < 0.3:
            solver.withdraw(live.pop(rng.randrange(len(live))))
            measure("withdraw", before)
        else:
            # Thresholds clustered near the total keep several fixed points in play.
            threshold = max(1, min(levels - 1, solver.total_weight + rng.randint(-50, 50)))
            solver.insert(step, threshold, rng.randint(1, 20))
            live.append(step)
            measure("insert", before)
        before = solver.segment_tree_node_visits
        solver.greatest_fixed_point()
        measure("query", before)
    # A suffix update touches at most 2 nodes per tree level; a rightmost search at most ~4.
    assert worst["insert"] <= 2 * log_levels + 2, worst
    assert worst["withdraw"] <= 2 * log_levels + 2, worst
    assert worst["query"] <= 4 * log_levels + 4, worst
