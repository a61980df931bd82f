"""Accumulation opacity at protocol level (DESIGN.md §3): what a hunt check decrypts to.

(a) For packs that do not fire, every used slot of the fused check vector must be uniform on
    Z_p* (apart from chance zeros at rate ≈ 1/p, §3 step 5), every slot outside the window zero,
    and packs 1 and 30 intendos away from firing must give distributions no test tells apart.
    The raw vectors are captured test-only by a decryption observer given to the deployment, which
    sees each vector the aggregator fuses before it is reduced to candidate levels.
(b) A chance zero forced at a non-fixed point (every keyholder's check mask zero there, in both
    rows) makes the check show a false candidate; the confirmation with fresh masks must reject it
    before anything about members is revealed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from stagpack.app.inprocess import InProcessDeployment
from stagpack.encoding import StagKind
from stagpack.session import SessionKind, Step
from stagpack.stag import ManualClock
from support.faults import MaskScript, VectorRecorder, scripted_masks
from support.protocol import MirroredStag, served_steps, start_deployment

PLAINTEXT_MODULUS = 65537
BUCKETS = 16  # Z_p* = 1..65536 splits into 16 buckets of 4096 values
# Chi-square critical value, 15 degrees of freedom, p = 1e-4 (computed from the regularized
# incomplete gamma function; tables give 37.70 at p = 1e-3). Several statistics are tested per
# run, so a stricter level than 1e-3 keeps false alarms below one run in a thousand.
CHI_SQUARE_CRITICAL_15 = 44.263


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def masks() -> MaskScript:
    """Every keyholder's mask source: random, unless a test forces a chance zero."""
    return scripted_masks(3)


@pytest.fixture(scope="module")
def fused() -> VectorRecorder:
    """Sees every vector the aggregator fuses (recording only while a test asks)."""
    return VectorRecorder()


@pytest.fixture(scope="module")
def deployment(scratch: Callable[[str], Path], clock: ManualClock, masks: MaskScript, fused: VectorRecorder) -> InProcessDeployment:
    deployment = start_deployment(scratch("privacy"), 3, 2, clock, masks=masks.masks(), observer=fused)
    masks.bind(deployment.context)
    return deployment


class CheckVectors:
    """Fused hunt-check vectors, each recorded once however many quorums fuse it."""

    def __init__(self, fused: VectorRecorder) -> None:
        self._fused = fused

    def take(self, stag: MirroredStag) -> list[np.ndarray]:
        """The distinct check vectors fused since the last call, every one of them for `stag`'s
        hunt sessions."""
        vectors: list[np.ndarray] = []
        seen: set[bytes] = set()
        for fused in self._fused.take(Step.CHECK):
            assert fused.session.stag_id == stag.stag_id and fused.session.kind is SessionKind.HUNT
            key = fused.vector.tobytes()
            if key not in seen:
                seen.add(key)
                vectors.append(fused.vector)
        return vectors


@pytest.fixture
def check_vectors(fused: VectorRecorder) -> Iterator[CheckVectors]:
    with fused.recorded():
        yield CheckVectors(fused)


def split(vector: np.ndarray, levels: int, executed_level: int, row_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values in the window of both rows, every other slot)."""
    window = np.zeros(vector.size, dtype=bool)
    for row in (0, 1):
        window[row * row_width + executed_level + 1 : row * row_width + levels] = True
    return vector[window], vector[~window]


def bucket_counts(values: np.ndarray) -> np.ndarray:
    nonzero = values[values != 0]
    assert nonzero.min() >= 1 and nonzero.max() <= PLAINTEXT_MODULUS - 1
    return np.bincount((nonzero - 1) // ((PLAINTEXT_MODULUS - 1) // BUCKETS), minlength=BUCKETS)


def chi_square_uniform(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_two_samples(first: np.ndarray, second: np.ndarray) -> float:
    """Chi-square test of homogeneity on a 2 x BUCKETS table (df = BUCKETS - 1)."""
    table = np.vstack([first, second]).astype(float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def used_values(stag: MirroredStag, vectors: list[np.ndarray], row_width: int) -> np.ndarray:
    used = []
    levels, executed_level = stag.levels, stag.solver.executed_level  # the window the solver knows
    for vector in vectors:
        inside, outside = split(vector, levels, executed_level, row_width)
        assert not outside.any(), "a slot outside the window (slot 0, executed levels, unused slots) decrypted non-zero"
        used.append(inside)
    return np.concatenate(used)


def test_non_firing_checks_are_uniform_and_independent_of_the_distance_to_firing(
    deployment, clock, check_vectors: CheckVectors  # type: ignore[no-untyped-def]
) -> None:
    """Two epochs per pack (three before the noise test doubled a session's cost): about 8,200
    used values per pack, some 500 per bucket, still far more than the chi-square tests need."""
    levels = 2048
    epochs = 2
    row_width = deployment.context.row_width
    # Pack A: a small hunt executes first (so levels 0..2 are masked off), then ten intendos that
    # each need twelve others: one more such intendo would fire at 13.
    near = MirroredStag.create(deployment, clock, StagKind.COUNT, levels, title="one away")
    near.submit_count(1)
    near.submit_count(1)
    assert near.run_epoch().expected is not None
    check_vectors.take(near)
    for _ in range(10):
        near.submit_count(12)
    near.validate()
    # Pack B: ten intendos that each need 39 others: thirty more are needed.
    far = MirroredStag.create(deployment, clock, StagKind.COUNT, levels, title="thirty away")
    for _ in range(10):
        far.submit_count(39)
    far.validate()
    samples = {}
    around = []  # the levels near the packs' thresholds, where d = c - l is smallest
    for stag in (near, far):
        for _ in range(epochs):
            assert stag.run_epoch().result == "no-hunt"
        vectors = check_vectors.take(stag)
        assert len(vectors) == epochs
        samples[stag.stag_id] = used_values(stag, vectors, row_width)
        executed_level = stag.solver.executed_level
        for vector in vectors:
            for row in (0, 1):
                around.append(vector[row * row_width + executed_level + 1 : row * row_width + 64])
    near_values, far_values = samples[near.stag_id], samples[far.stag_id]
    assert near_values.size == epochs * 2 * (levels - 3) and far_values.size == epochs * 2 * (levels - 1)
    for values in (near_values, far_values):
        # chance zeros happen at rate 1/p per slot (§3 step 5): about 0.2 expected here
        assert np.count_nonzero(values == 0) <= 4
        statistic = chi_square_uniform(bucket_counts(values))
        assert statistic < CHI_SQUARE_CRITICAL_15, statistic
    statistic = chi_square_uniform(bucket_counts(np.concatenate(around)))
    assert statistic < CHI_SQUARE_CRITICAL_15, statistic
    statistic = chi_square_two_samples(bucket_counts(near_values), bucket_counts(far_values))
    assert statistic < CHI_SQUARE_CRITICAL_15, statistic


def test_a_chance_zero_at_a_non_fixed_point_is_rejected_by_the_confirmation(
    deployment: InProcessDeployment, clock: ManualClock, masks: MaskScript, check_vectors: CheckVectors
) -> None:
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, 32)
    for _ in range(5):
        stag.submit_count(9)  # c = 5 from level 10 on: no fixed point anywhere
    stag.validate()
    false_level = 7
    assert stag.solver.counts()[false_level] != false_level
    with masks.zero_at(false_level):  # every keyholder's check mask is zero there, in both rows
        assert stag.run_epoch().result == "no-hunt"
    (vector,) = check_vectors.take(stag)
    row_width = deployment.context.row_width
    assert vector[false_level] == 0 and vector[row_width + false_level] == 0  # the false candidate
    epoch = stag.current_epoch()
    for node in deployment.nodes:
        steps = [step for number, step in served_steps(node, stag.stag_id, SessionKind.HUNT) if number == epoch]
        assert Step.CHECK in steps and Step.CONFIRM in steps  # the candidate was confirmed, and failed
        assert Step.MEMBERSHIP not in steps
        assert all(record.fired_level == 0 for record in node.session_records(stag.stag_id))
    assert deployment.aggregator.hunts(stag.stag_id) == []
    assert deployment.ledger.executions(stag.stag_id) == []


def test_a_chance_zero_above_a_real_fixed_point_does_not_change_the_hunt(
    deployment: InProcessDeployment, clock: ManualClock, masks: MaskScript, check_vectors: CheckVectors
) -> None:
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, 32)
    for _ in range(3):
        stag.submit_count(2)  # a real fixed point at 3
    stag.submit_count(20)
    stag.validate()
    false_level = 12  # above the real one: the greatest candidate of the check
    with masks.zero_at(false_level):
        report = stag.run_epoch()  # compared with the solver: level 3, the three members
    assert report.expected is not None and report.expected.level == 3
    (vector,) = check_vectors.take(stag)
    assert vector[false_level] == 0 and vector[deployment.context.row_width + false_level] == 0
