"""The greatest satisfying subset of a pack, straight from the definition (DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Iterable

from stagpack.errors import InvalidInput

from .validation import require_int


def greatest_satisfying_subset(intendos: Iterable[tuple[int, int]]) -> int:
    """Return the total of the greatest satisfying subset of (threshold, weight) pairs, 0 if none.

    With c[l] = sum of the weights whose threshold is <= l, this is the largest m >= 1 with
    c[m] == m (no execution has happened). Computed directly in O(n + total weight), without
    the segment tree, so that it can check `PackSolver`.
    """
    pairs: list[tuple[int, int]] = []
    for pair in intendos:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError("each intendo must be a (threshold, weight) tuple")
        threshold = require_int("threshold", pair[0])
        weight = require_int("weight", pair[1])
        if threshold < 1:
            raise InvalidInput(f"threshold must be at least 1, got {threshold}")
        if weight < 1:
            raise InvalidInput(f"weight must be at least 1, got {weight}")
        pairs.append((threshold, weight))
    total = sum(weight for _, weight in pairs)
    # c[m] <= total for every m, so no fixed point lies above the total.
    weight_at = [0] * (total + 1)
    for threshold, weight in pairs:
        if threshold <= total:
            weight_at[threshold] += weight
    best = 0
    satisfied = 0
    for level in range(1, total + 1):
        satisfied += weight_at[level]
        if satisfied == level:
            best = level
    return best

