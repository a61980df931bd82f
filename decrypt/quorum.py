"""Who decrypts: the quorum of live keyholders and the roles in one threshold decryption.

With all n keyholders live the quorum is all of them and every partial is a party's own. With
some offline (DESIGN.md §6) the quorum S is exactly t live keyholders: each member produces its
own partial and, for every offline keyholder k, a stand-in partial under the weighted key
λ_j^S · share_kj. The smallest member is the *lead* (its own partial carries c0).
"""

from __future__ import annotations

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
    def lead(self) -> int:
        return self.members[0]

    @property
    def offline(self) -> tuple[int, ...]:
        return tuple(party for party in range(1, self.parties + 1) if party not in self.members)

    def expected_partials(self) -> tuple[tuple[int, int], ...]:
        """(producer, on behalf of) for every partial a complete fusion needs."""
        own = tuple((member, member) for member in self.members)
        stand_ins = tuple((member, absent) for absent in self.offline for member in self.members)
        return own + stand_ins
