"""The exact plaintext pack solver (DESIGN.md §2, §3 and §8).

A pack has levels 0..L-1. Intendo i has threshold C_i and weight a_i, both in 1..L-1, and
c[l] = sum of a_i over live intendos (pending or executed) with C_i <= l. A level m >= 1 with
c[m] == m is a fixed point; the greatest one is the total of the greatest satisfying subset,
which is {i : C_i <= m}.

After a hunt at level m executes, its members stay counted in c but are no longer pending, and
m becomes the executed level m_exec. The next hunt fires at the greatest fixed point above
m_exec and takes the pending intendos with C_i <= that level.

**Why the rightmost l in (m_exec, L) with f(l) = c[l] - l >= 0 is the greatest fixed point
above m_exec.** Every fixed point has f = 0 >= 0, so none lies to the right of that l. It
remains to show f(l) = 0. Suppose f(l) > 0, i.e. c[l] >= l + 1 (c is integer). If l < L-1 then
c[l+1] >= c[l] >= l + 1, as c is non-decreasing, so f(l+1) >= 0 and l was not the rightmost.
If l = L-1 then c[L-1] <= total weight <= L-1 (the bound `insert` keeps), so f(L-1) <= 0.
Either way f(l) > 0 is impossible.

**Why the hunt members are never empty.** Executing at m marks every pending intendo with
C_i <= m, and c[m] = m, so afterwards the executed weight is exactly m_exec. A fixed point
m' > m_exec has c[m'] = m' > m_exec, so some pending intendo has C_i <= m'.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from stagpack.errors import AlreadyExists, InvalidInput, NotFound, WrongPhase

from .segment_tree import MaxSegmentTree
from .threshold_index import PendingByThreshold
from .validation import require_int, require_int_in_range

MIN_LEVELS = 2
MAX_LEVELS = 65536


@dataclass(frozen=True)
class Hunt:
    """A hunt that fires at ``level``: its pending members and their weights, in insertion order.

    The members' weights plus the weight already executed add up to ``level``.
    """

    level: int
    members: tuple[Hashable, ...]
    weights: tuple[int, ...]

    def __post_init__(self) -> None:
        require_int("level", self.level)
        if not isinstance(self.members, tuple) or not isinstance(self.weights, tuple):
            raise TypeError("hunt members and weights must be tuples")
        if len(self.members) != len(self.weights):
            raise InvalidInput("a hunt needs exactly one weight per member")


@dataclass
class _Intendo:
    threshold: int
    weight: int
    sequence: int
    executed: bool = False


class PackSolver:
    """The plaintext state of one pack: insert, withdraw, find the hunt, execute it.

    insert, withdraw and greatest_fixed_point cost O(log L); hunt lists its k members in
    O(b log L + k log k) for b distinct member thresholds; execute adds O(k log L).
    """

    def __init__(self, levels: int) -> None:
        """Create an empty pack with levels 0..levels-1 (2 <= levels <= 65536)."""
        self._levels = require_int_in_range("levels", levels, MIN_LEVELS, MAX_LEVELS)
        # f(l) = c[l] - l, and c is all zero at the start.
        self._tree = MaxSegmentTree([-level for level in range(levels)])
        self._pending = PendingByThreshold(levels - 1)
        self._intendos: dict[Hashable, _Intendo] = {}
        self._total_weight = 0
        self._executed_level = 0
        self._next_sequence = 0

    @property
    def levels(self) -> int:
        """L, the number of levels 0..L-1."""
        return self._levels

    @property
    def executed_level(self) -> int:
        """m_exec: the level of the last executed hunt, 0 before any."""
        return self._executed_level

    @property
    def total_weight(self) -> int:
        """The weight of all live intendos, pending and executed (at most L-1)."""
        return self._total_weight

    @property
    def segment_tree_node_visits(self) -> int:
        """Instrumentation: segment-tree nodes visited so far (for complexity checks)."""
        return self._tree.node_visits

    def __len__(self) -> int:
        """The number of live intendos, pending and executed."""
        return len(self._intendos)

    def insert(self, intendo_id: Hashable, threshold: int, weight: int = 1) -> None:
        """Add a pending intendo: c[l] += weight for every l >= threshold.

        Raises TypeError for non-int threshold or weight (bool included), InvalidInput for a
        threshold or weight outside 1..L-1 or when the stag would be full (total > L-1), and
        AlreadyExists for an id that is live. On error nothing changes.
        """
        hash(intendo_id)  # TypeError for an unhashable id, before anything changes
        top = self._levels - 1
        require_int("threshold", threshold)
        require_int("weight", weight)
        require_int_in_range("threshold", threshold, 1, top)
        require_int_in_range("weight", weight, 1, top)
        if intendo_id in self._intendos:
            raise AlreadyExists(f"intendo {intendo_id!r} is already in the pack")
        if self._total_weight + weight > top:
            raise InvalidInput(
                f"stag is full: total weight {self._total_weight} + {weight} "
                f"would exceed {top}"
            )
        self._pending.add(threshold, intendo_id)
        self._tree.range_add(threshold, self._levels, weight)
        self._intendos[intendo_id] = _Intendo(threshold, weight, self._next_sequence)
        self._next_sequence += 1
        self._total_weight += weight

    def withdraw(self, intendo_id: Hashable) -> None:
        """Remove a pending intendo: c[l] -= weight for every l >= its threshold.

        Raises NotFound for an unknown id and WrongPhase for an executed one.
        """
        hash(intendo_id)
        intendo = self._intendos.get(intendo_id)
        if intendo is None:
            raise NotFound(f"intendo {intendo_id!r} is not in the pack")
        if intendo.executed:
            raise WrongPhase(f"intendo {intendo_id!r} has executed and cannot be withdrawn")
        self._pending.remove(intendo.threshold, intendo_id)
        self._tree.range_add(intendo.threshold, self._levels, -intendo.weight)
        del self._intendos[intendo_id]
        self._total_weight -= intendo.weight

    def greatest_fixed_point(self) -> int | None:
        """Return the largest m in (executed_level, L) with c[m] == m, or None if there is none.

        This is the rightmost l in that range with c[l] - l >= 0; see the module docstring.
        """
        lowest = self._executed_level + 1
        if lowest >= self._levels:
            return None
        return self._tree.rightmost_index_at_least(0, lowest, self._levels)

    def hunt(self) -> Hunt | None:
        """Return the hunt that fires now, or None when no fixed point is above executed_level.

        Its members are the pending intendos with threshold <= the greatest fixed point.
        """
        level = self.greatest_fixed_point()
        if level is None:
            return None
        members = sorted(
            self._pending.ids_at_most(level),
            key=lambda intendo_id: self._intendos[intendo_id].sequence,
        )
        return Hunt(
            level=level,
            members=tuple(members),
            weights=tuple(self._intendos[member].weight for member in members),
        )

    def execute(self, hunt: Hunt) -> None:
        """Mark the members of ``hunt`` executed and set executed_level to its level.

        The hunt must equal what `hunt()` returns now; otherwise (a stale or made-up hunt, or
        no hunt at all) WrongPhase is raised and nothing changes. Executed intendos stay counted.
        """
        if not isinstance(hunt, Hunt):
            raise TypeError(f"execute needs a Hunt, not {type(hunt).__name__}")
        current = self.hunt()
        if current is None:
            raise WrongPhase("no hunt can fire in this pack now")
        if hunt != current:
            raise WrongPhase("the hunt is stale: the pack has changed since it was computed")
        for member in current.members:
            intendo = self._intendos[member]
            self._pending.remove(intendo.threshold, member)
            intendo.executed = True
        self._executed_level = current.level

    def counts(self) -> tuple[int, ...]:
        """Return c[0..L-1], in O(L); for tests and debugging."""
        return tuple(f + level for level, f in enumerate(self._tree.to_list()))

    def pending_ids(self) -> tuple[Hashable, ...]:
        """Return the ids of the pending (not executed) intendos, in insertion order."""
        return tuple(key for key, intendo in self._intendos.items() if not intendo.executed)

    def executed_ids(self) -> tuple[Hashable, ...]:
        """Return the ids of the executed intendos, in insertion order."""
        return tuple(key for key, intendo in self._intendos.items() if intendo.executed)
