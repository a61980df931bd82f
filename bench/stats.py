"""Statistics for the distinguishing game, with numpy only.

An adversary sees one observation (say, one epoch of one pack) and guesses which of two packs
produced it. We estimate its *accuracy* by stratified k-fold cross-validation: a distinguisher
is fitted on the other folds (a threshold and a direction on one scalar feature, or the two
class centroids of a vector feature) and scored on the held-out fold, so a rule that merely
fits noise scores about 1/2. The *advantage* is 2·accuracy − 1 (= P[guess A | A] − P[guess A | B]
for balanced classes): 0 is chance, 1 a perfect distinguisher. Its 95 % interval is the Wilson
score interval of the accuracy, mapped through the same formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[Any]  # observations: numbers of any dtype

Z_95 = 1.959964
BUCKETS = 16
# Chi-square critical value for 15 degrees of freedom at significance 0.001 (standard tables).
CHI_SQUARE_CRITICAL_15 = 37.697


@dataclass(frozen=True)
class Accuracy:
    """Held-out guesses of a distinguisher: how many were right out of how many."""

    correct: int
    trials: int

    @property
    def rate(self) -> float:
        return self.correct / self.trials if self.trials else float("nan")

    @property
    def advantage(self) -> float:
        return 2 * self.rate - 1

    def interval(self, z: float = Z_95) -> tuple[float, float]:
        return wilson_interval(self.correct, self.trials, z)

    def advantage_interval(self, z: float = Z_95) -> tuple[float, float]:
        low, high = self.interval(z)
        return 2 * low - 1, 2 * high - 1


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _folds(count: int, folds: int, rng: np.random.Generator) -> Samples:
    """A fold number for each of `count` samples of one class (shuffled, balanced)."""
    assignment = np.arange(count) % folds
    rng.shuffle(assignment)
    return assignment


def fit_threshold(values: Samples, labels: Samples) -> tuple[float, int]:
    """The threshold t and direction s (predict class 1 iff s·(x − t) > 0) with the best
    training accuracy; among equally good thresholds, the middle one."""
    unique = np.unique(values)
    candidates = np.concatenate([[unique[0] - 1.0], (unique[:-1] + unique[1:]) / 2]) if unique.size else np.array([0.0])
    above = values[None, :] > candidates[:, None]
    accuracy_up = (above == (labels[None, :] == 1)).mean(axis=1)
    accuracy_down = 1 - accuracy_up
    best = max(accuracy_up.max(), accuracy_down.max())
    direction = 1 if accuracy_up.max() >= accuracy_down.max() else -1
    scores = accuracy_up if direction == 1 else accuracy_down
    tied = np.nonzero(np.isclose(scores, best))[0]
    return float(candidates[tied[len(tied) // 2]]), direction


def threshold_accuracy(first: Samples, second: Samples, folds: int, rng: np.random.Generator) -> Accuracy:
    """Cross-validated accuracy of a threshold on one scalar feature (class 0 = `first`)."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    values = np.concatenate([first, second])
    labels = np.concatenate([np.zeros(first.size, dtype=int), np.ones(second.size, dtype=int)])
    folds = max(2, min(folds, first.size, second.size))
    assignment = np.concatenate([_folds(first.size, folds, rng), _folds(second.size, folds, rng)])
    correct = 0
    for fold in range(folds):
        train, test = assignment != fold, assignment == fold
        threshold, direction = fit_threshold(values[train], labels[train])
        predicted = (direction * (values[test] - threshold) > 0).astype(int)
        correct += int((predicted == labels[test]).sum())
    return Accuracy(correct, int(values.size))


def centroid_accuracy(first: Samples, second: Samples, folds: int, rng: np.random.Generator) -> Accuracy:
    """Cross-validated accuracy of a nearest-centroid rule on vector observations (rows)."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    vectors = np.vstack([first, second])
    labels = np.concatenate([np.zeros(len(first), dtype=int), np.ones(len(second), dtype=int)])
    folds = max(2, min(folds, len(first), len(second)))
    assignment = np.concatenate([_folds(len(first), folds, rng), _folds(len(second), folds, rng)])
    correct = 0
    for fold in range(folds):
        train, test = assignment != fold, assignment == fold
        centroids = [vectors[train & (labels == label)].mean(axis=0) for label in (0, 1)]
        distances = np.stack([np.linalg.norm(vectors[test] - centroid, axis=1) for centroid in centroids])
        predicted = (distances[1] < distances[0]).astype(int)
        correct += int((predicted == labels[test]).sum())
    return Accuracy(correct, len(vectors))


Scorer = Callable[[Samples, Samples, int, np.random.Generator], Accuracy]


@dataclass(frozen=True)
class NullRange:
    """What the same distinguisher scores when the labels carry no information: the central
    95 % of its advantage over label permutations, and the one-sided p-value of the observed
    advantage (the fraction of permutations scoring at least as high)."""

    low: float
    high: float
    p_value: float


def permutation_null(
    first: Samples, second: Samples, scorer: Scorer, folds: int, rounds: int, observed: float, rng: np.random.Generator
) -> NullRange:
    """Re-score `scorer` on `rounds` random relabellings of the pooled observations. This
    calibrates the cross-validated estimate itself (its spread is wider than a binomial's,
    because the folds share training data)."""
    pooled = np.concatenate([np.asarray(first), np.asarray(second)])
    count = len(first)
    advantages = np.empty(rounds)
    for round_index in range(rounds):
        shuffled = pooled[rng.permutation(len(pooled))]
        advantages[round_index] = scorer(shuffled[:count], shuffled[count:], folds, rng).advantage
    low, high = np.percentile(advantages, [2.5, 97.5]) if rounds else (float("nan"), float("nan"))
    p_value = (1 + int(np.count_nonzero(advantages >= observed - 1e-12))) / (rounds + 1)
    return NullRange(float(low), float(high), p_value)


# -- uniformity -------------------------------------------------------------------------------


def bucket_counts(values: Samples, modulus: int, buckets: int = BUCKETS) -> Samples:
    """Histogram of the non-zero values over Z_p* = 1..p−1 in `buckets` equal buckets."""
    nonzero = np.asarray(values, dtype=np.int64)
    nonzero = nonzero[nonzero != 0]
    width = (modulus - 1) // buckets
    return np.bincount(np.minimum((nonzero - 1) // width, buckets - 1), minlength=buckets)


def chi_square_uniform(counts: Samples) -> float:
    """Pearson's statistic against equal expected counts (df = buckets − 1)."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() == 0:
        return 0.0
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_two_samples(first: Samples, second: Samples) -> float:
    """Pearson's test of homogeneity on a 2 × buckets table (df = buckets − 1)."""
    table = np.vstack([first, second]).astype(float)
    if table.sum(axis=1).min() == 0:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    return float(terms.sum())


def bootstrap_mean_difference(
    first: Samples, second: Samples, rng: np.random.Generator, resamples: int = 2000
) -> tuple[float, float, float]:
    """mean(second) − mean(first) with a 95 % percentile bootstrap interval."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    difference = float(second.mean() - first.mean())
    draws_first = rng.choice(first, size=(resamples, first.size)).mean(axis=1)
    draws_second = rng.choice(second, size=(resamples, second.size)).mean(axis=1)
    low, high = np.percentile(draws_second - draws_first, [2.5, 97.5])
    return difference, float(low), float(high)
