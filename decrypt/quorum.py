"""Who decrypts: quorums of live keyholders, and families of quorums that check each other.

A quorum is either all n keyholders (every partial a party's own) or exactly t of them: each
member contributes its own partial and, for every keyholder k outside the quorum, a stand-in
partial under the weighted key λ_j^S · share_kj (DESIGN.md §6). No partial carries c0: the
"lead" term needs no secret and whoever fuses computes it (`FheContext.public_lead_partial`).

Nothing proves that a partial decryption is honest: a keyholder could add a chosen plaintext
to its share and shift what is revealed. A step is therefore decrypted by a *family* of
quorums that, for every set of up to f keyholders (the committee's fault bound), holds a quorum
without them, and the facts must agree across the family: up to f dishonest keyholders are
absent from one quorum, whose facts are then the true ones, so any shift shows up as a
disagreement (and nothing is revealed). That needs t + f keyholders taking part.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from stagpack.errors import CommitteeUnavailable, InvalidInput


@dataclass(frozen=True)
class Quorum:
    """The keyholders (1-based indices) that take part in one decryption."""

    parties: int
    threshold: int
    members: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.parties:
            raise InvalidInput(f"threshold {self.threshold} is not in 1..{self.parties}")
        if self.threshold < self.parties and 2 * self.threshold <= self.parties:
            raise InvalidInput("t-of-n decryption needs t > n/2")
        if tuple(sorted(set(self.members))) != self.members:
            raise InvalidInput("quorum members must be distinct and sorted")
        if any(not 1 <= member <= self.parties for member in self.members):
            raise InvalidInput(f"quorum members must be in 1..{self.parties}")
        complete = len(self.members) == self.parties
        if not complete and len(self.members) != self.threshold:
            raise InvalidInput(
                f"a quorum is either all {self.parties} keyholders or exactly t = {self.threshold} of them"
            )

    @classmethod
    def choose(cls, parties: int, threshold: int, live: set[int] | frozenset[int]) -> Quorum:
        """All keyholders when all are live; otherwise the t smallest live ones."""
        members = tuple(sorted(live))
        if len(members) == parties:
            return cls(parties, threshold, members)
        if len(members) < threshold:
            raise CommitteeUnavailable(
                f"only {len(members)} of {parties} keyholders are reachable; {threshold} are needed"
            )
        return cls(parties, threshold, members[:threshold])

    @property
    def offline(self) -> tuple[int, ...]:
        return tuple(party for party in range(1, self.parties + 1) if party not in self.members)

    def expected_partials(self) -> tuple[tuple[int, int], ...]:
        """(producer, on behalf of) for every partial a complete fusion needs."""
        own = tuple((member, member) for member in self.members)
        stand_ins = tuple((member, absent) for absent in self.offline for member in self.members)
        return own + stand_ins


def quorum_family(
    parties: int, threshold: int, live: set[int] | frozenset[int], fault_bound: int = 0
) -> tuple[Quorum, ...]:
    """The quorums that decrypt one step when the keyholders `live` take part, with the
    committee's fault bound f (DESIGN.md §4): for every set of up to f of them, a quorum disjoint
    from it — so whatever up to f dishonest keyholders do, one quorum of honest ones shows the
    truth, and a shift shows as a disagreement. That needs at least t + f taking part; fewer
    raise CommitteeUnavailable (the step waits; it never runs unchecked). With more than t live
    and f = 0, each live keyholder is still left out of one quorum (the cross-check costs
    nothing extra then).

    Construction: the live keyholders, in order, are cut into runs of (live − t) and each quorum
    leaves out one run (the last run wraps around); that leaves out every set of up to
    max(f, 1) keyholders lying in one run. For f = 1 that is every single keyholder:
    ⌈live / (live − t)⌉ quorums (3 for 5 live with t = 3). For f ≥ 2 the left-out sets are
    chosen greedily among all (live − t)-subsets until every f-subset lies in one."""
    members = sorted(live)
    if len(members) < threshold + fault_bound:
        needed = f"{threshold} are needed" if fault_bound == 0 else f"t + f = {threshold + fault_bound} are needed"
        raise CommitteeUnavailable(f"only {len(members)} of {parties} keyholders take part; {needed}")
    if threshold == parties or len(members) == threshold:
        return (Quorum(parties, threshold, tuple(members)),)
    spare = len(members) - threshold
    if fault_bound <= 1:
        left_out_sets = [
            {members[(start + offset) % len(members)] for offset in range(spare)} for start in range(0, len(members), spare)
        ]
    else:
        left_out_sets = _covering(members, spare, fault_bound)
    return tuple(
        Quorum(parties, threshold, tuple(member for member in members if member not in left_out)) for left_out in left_out_sets
    )


def _covering(members: list[int], size: int, fault_bound: int) -> list[set[int]]:
    """Left-out sets of `size` (in a deterministic greedy order) such that every `fault_bound`
    of the members lie together in one of them."""
    uncovered = {frozenset(subset) for subset in itertools.combinations(members, fault_bound)}
    chosen: list[set[int]] = []
    candidates = [set(candidate) for candidate in itertools.combinations(members, size)]
    while uncovered:
        best = max(candidates, key=lambda candidate: sum(1 for subset in uncovered if subset <= candidate))
        chosen.append(best)
        uncovered = {subset for subset in uncovered if not subset <= best}
    return chosen


def family_members(family: tuple[Quorum, ...]) -> tuple[int, ...]:
    return tuple(sorted({member for quorum in family for member in quorum.members}))
