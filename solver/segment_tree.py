"""A max segment tree with lazy range addition over a fixed-length array of integers.

The pack solver keeps f(l) = c[l] - l in one of these (DESIGN.md §8): an intendo adds its weight
to a suffix of levels, and the greatest fixed point is the rightmost level with f >= 0.

Ranges are half-open, ``[lo, hi)``, as with Python slices. Every operation except building and
`to_list` visits O(log n) nodes; `node_visits` counts them so tests can check that without
timing anything.

Laziness without pushing: ``_add[node]`` is an addition applied to the node's whole segment and
not yet to its children; ``_max[node]`` is the segment's maximum counting the additions at the node
and below it, but not those of its ancestors. Queries carry the ancestors' additions down.
"""

from __future__ import annotations

from collections.abc import Sequence

from stagpack.errors import InvalidInput


class MaxSegmentTree:
    """Integers a[0..n-1] with range addition, range maximum and a rightmost-at-least search."""

    __slots__ = ("_size", "_max", "_add", "node_visits")

    def __init__(self, values: Sequence[int]) -> None:
        """Build the tree over ``values`` (at least one) in O(n)."""
        if len(values) < 1:
            raise InvalidInput("a segment tree needs at least one value")
        self._size = len(values)
        self._max = [0] * (4 * self._size)
        self._add = [0] * (4 * self._size)
        self.node_visits = 0
        """Instrumentation: how many tree nodes the operations have visited so far."""
        self._build(1, 0, self._size, values)

    def __len__(self) -> int:
        return self._size

    def _build(self, node: int, node_lo: int, node_hi: int, values: Sequence[int]) -> None:
        if node_hi - node_lo == 1:
            self._max[node] = values[node_lo]
            return
        mid = (node_lo + node_hi) // 2
        self._build(2 * node, node_lo, mid, values)
        self._build(2 * node + 1, mid, node_hi, values)
        self._max[node] = max(self._max[2 * node], self._max[2 * node + 1])

    def _check_range(self, lo: int, hi: int) -> None:
        if not 0 <= lo <= hi <= self._size:
            raise InvalidInput(f"range [{lo}, {hi}) is not within [0, {self._size})")

    def range_add(self, lo: int, hi: int, delta: int) -> None:
        """Add ``delta`` to every a[i] with lo <= i < hi."""
        self._check_range(lo, hi)
        if lo < hi and delta != 0:
            self._range_add(1, 0, self._size, lo, hi, delta)

    def _range_add(
        self, node: int, node_lo: int, node_hi: int, lo: int, hi: int, delta: int
    ) -> None:
        self.node_visits += 1
        if lo <= node_lo and node_hi <= hi:
            self._max[node] += delta
            self._add[node] += delta
            return
        mid = (node_lo + node_hi) // 2
        if lo < mid:
            self._range_add(2 * node, node_lo, mid, lo, hi, delta)
        if hi > mid:
            self._range_add(2 * node + 1, mid, node_hi, lo, hi, delta)
        self._max[node] = max(self._max[2 * node], self._max[2 * node + 1]) + self._add[node]

    def max(self) -> int:
        """Return max(a[0..n-1])."""
        self.node_visits += 1
        return self._max[1]

    def range_max(self, lo: int, hi: int) -> int:
        """Return max(a[lo..hi-1]); the range must not be empty."""
        self._check_range(lo, hi)
        if lo == hi:
            raise InvalidInput("the maximum of an empty range is undefined")
        return self._range_max(1, 0, self._size, lo, hi)

    def _range_max(self, node: int, node_lo: int, node_hi: int, lo: int, hi: int) -> int:
        self.node_visits += 1
        if lo <= node_lo and node_hi <= hi:
            return self._max[node]
        mid = (node_lo + node_hi) // 2
        if hi <= mid:
            best = self._range_max(2 * node, node_lo, mid, lo, hi)
        elif lo >= mid:
            best = self._range_max(2 * node + 1, mid, node_hi, lo, hi)
        else:
            best = max(
                self._range_max(2 * node, node_lo, mid, lo, hi),
                self._range_max(2 * node + 1, mid, node_hi, lo, hi),
            )
        return best + self._add[node]

    def rightmost_index_at_least(self, value: int, lo: int, hi: int) -> int | None:
        """Return the largest i in [lo, hi) with a[i] >= value, or None if there is none.

        O(log n): only the nodes on the two boundary paths of [lo, hi) are partially covered;
        a fully covered node is entered only when its maximum reaches ``value``, and then it
        certainly holds an answer, found on a single path down.
        """
        self._check_range(lo, hi)
        if lo == hi:
            return None
        return self._rightmost(1, 0, self._size, lo, hi, value)

    def _rightmost(
        self, node: int, node_lo: int, node_hi: int, lo: int, hi: int, target: int
    ) -> int | None:
        # ``target`` is ``value`` minus the additions of this node's ancestors.
        self.node_visits += 1
        if self._max[node] < target:
            return None
        if node_hi - node_lo == 1:
            return node_lo
        target -= self._add[node]
        mid = (node_lo + node_hi) // 2
        if hi > mid:
            found = self._rightmost(2 * node + 1, mid, node_hi, lo, hi, target)
            if found is not None:
                return found
        if lo < mid:
            return self._rightmost(2 * node, node_lo, mid, lo, hi, target)
        return None

    def value_at(self, index: int) -> int:
        """Return a[index]."""
        if not 0 <= index < self._size:
            raise InvalidInput(f"index {index} is not within [0, {self._size})")
        node, node_lo, node_hi, total = 1, 0, self._size, 0
        while node_hi - node_lo > 1:
            self.node_visits += 1
            total += self._add[node]
            mid = (node_lo + node_hi) // 2
            if index < mid:
                node, node_hi = 2 * node, mid
            else:
                node, node_lo = 2 * node + 1, mid
        self.node_visits += 1
        return total + self._max[node]

    def to_list(self) -> list[int]:
        """Return a[0..n-1] as a list, in O(n)."""
        out: list[int] = []
        self._collect(1, 0, self._size, 0, out)
        return out

    def _collect(self, node: int, node_lo: int, node_hi: int, offset: int, out: list[int]) -> None:
        if node_hi - node_lo == 1:
            out.append(offset + self._max[node])
            return
        offset += self._add[node]
        mid = (node_lo + node_hi) // 2
        self._collect(2 * node, node_lo, mid, offset, out)
        self._collect(2 * node + 1, mid, node_hi, offset, out)
