"""Pending intendo ids grouped by threshold, for listing the members of a hunt.

A hunt at level m takes every pending intendo with threshold <= m. Ids sit in one bucket per
threshold; a Fenwick tree over the bucket sizes finds the non-empty buckets in threshold order,
so listing k ids from b buckets costs O(b log L + k) instead of a scan over all L levels.
"""

from __future__ import annotations

from collections.abc import Hashable

from stagpack.errors import InvalidInput, NotFound


class PendingByThreshold:
    """A multiset of (threshold, intendo id) pairs with thresholds in 1..max_threshold."""

    __slots__ = ("_max_threshold", "_fenwick", "_buckets", "_count", "_top_step")

    def __init__(self, max_threshold: int) -> None:
        """Create an empty index for thresholds 1..max_threshold (at least 1)."""
        if max_threshold < 1:
            raise InvalidInput("the largest threshold must be at least 1")
        self._max_threshold = max_threshold
        self._fenwick = [0] * (max_threshold + 1)  # 1-based; slot 0 unused
        self._buckets: dict[int, dict[Hashable, None]] = {}
        self._count = 0
        self._top_step = 1 << (max_threshold.bit_length() - 1)

    def __len__(self) -> int:
        return self._count

    def add(self, threshold: int, intendo_id: Hashable) -> None:
        """Record ``intendo_id`` under ``threshold``; O(log L)."""
        if not 1 <= threshold <= self._max_threshold:
            raise InvalidInput(f"threshold {threshold} is not within 1..{self._max_threshold}")
        bucket = self._buckets.setdefault(threshold, {})
        if intendo_id in bucket:
            raise InvalidInput("the intendo is already indexed under this threshold")
        bucket[intendo_id] = None
        self._count += 1
        self._update(threshold, 1)

    def remove(self, threshold: int, intendo_id: Hashable) -> None:
        """Forget ``intendo_id`` recorded under ``threshold``; O(log L)."""
        bucket = self._buckets.get(threshold)
        if bucket is None or intendo_id not in bucket:
            raise NotFound("the intendo is not indexed under this threshold")
        del bucket[intendo_id]
        if not bucket:
            del self._buckets[threshold]
        self._count -= 1
        self._update(threshold, -1)

    def ids_at_most(self, threshold: int) -> list[Hashable]:
        """Return every id recorded under a threshold <= ``threshold`` (in threshold order)."""
        wanted = self._prefix(min(threshold, self._max_threshold)) if threshold >= 1 else 0
        out: list[Hashable] = []
        while len(out) < wanted:
            # The smallest threshold whose prefix count exceeds what we have taken is the next
            # non-empty bucket; all buckets below it are already in ``out``.
            next_threshold = self._first_reaching(len(out) + 1)
            out.extend(self._buckets[next_threshold])
        return out

    def _update(self, index: int, delta: int) -> None:
        while index <= self._max_threshold:
            self._fenwick[index] += delta
            index += index & -index

    def _prefix(self, index: int) -> int:
        total = 0
        while index > 0:
            total += self._fenwick[index]
            index -= index & -index
        return total

    def _first_reaching(self, count: int) -> int:
        """Return the smallest t with (number of ids under thresholds <= t) >= count."""
        position = 0
        step = self._top_step
        while step:
            candidate = position + step
            if candidate <= self._max_threshold and self._fenwick[candidate] < count:
                position = candidate
                count -= self._fenwick[candidate]
            step >>= 1
        return position + 1
