"""The plaintext oracle for a running stag: what the hunt at log height h should have been.

A hunt check evaluates the pack as it stood at one log height: the intendos the committee had
counted by then, minus those withdrawn by then, with earlier hunts executed. `HeightOracle`
records those events with their heights (participants learn them from the public intendo
status) and replays them into a `PackSolver` up to each hunt's height, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

from .pack import Hunt, PackSolver


@dataclass
class HeightOracle:
    levels: int
    solver: PackSolver = field(init=False)
    _conditions: dict[Hashable, tuple[int, int]] = field(default_factory=dict)  # id -> (threshold, weight)
    _events: list[tuple[int, int, str, Hashable]] = field(default_factory=list)  # (height, order, kind, id)
    _applied_to: int = 0

    def __post_init__(self) -> None:
        self.solver = PackSolver(self.levels)

    def intendo(self, intendo_id: Hashable, threshold: int, weight: int = 1) -> None:
        """Remember an intendo's plaintext condition (only the simulation knows it)."""
        self._conditions[intendo_id] = (threshold, weight)

    def counted(self, intendo_id: Hashable, height: int) -> None:
        """The committee's validation counted the intendo at `height`."""
        self._record(height, "count", intendo_id)

    def withdrawn(self, intendo_id: Hashable, height: int) -> None:
        """A counted intendo was withdrawn at `height` (do not report withdrawals of intendos
        that were never counted)."""
        self._record(height, "withdraw", intendo_id)

    def _record(self, height: int, kind: str, intendo_id: Hashable) -> None:
        if height <= self._applied_to:
            raise ValueError(f"an event at height {height} arrived after the oracle replayed to {self._applied_to}")
        self._events.append((height, len(self._events), kind, intendo_id))

    def replay_to(self, height: int) -> None:
        if height < self._applied_to:
            raise ValueError(f"the oracle already stands at height {self._applied_to}, past {height}")
        pending = sorted((event for event in self._events if self._applied_to < event[0] <= height), key=lambda e: (e[0], e[1]))
        for _, _, kind, intendo_id in pending:
            if kind == "count":
                threshold, weight = self._conditions[intendo_id]
                self.solver.insert(intendo_id, threshold, weight)
            else:
                self.solver.withdraw(intendo_id)
        self._applied_to = height

    def expected_hunt(self, height: int) -> Hunt | None:
        """The hunt the plaintext solver finds on the pack as it stood at `height`."""
        self.replay_to(height)
        return self.solver.hunt()

    def execute(self, hunt: Hunt) -> None:
        self.solver.execute(hunt)
