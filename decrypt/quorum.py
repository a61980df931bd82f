"""Who decrypts: quorums of live keyholders, and families of quorums that check each other.

A quorum is either all n keyholders (every partial a party's own) or exactly t of them: each
member contributes its own partial and, for every keyholder k outside the quorum, a stand-in
partial under the weighted key λ_j^S · share_kj (DESIGN.md §6). No partial carries c0: the
"lead" term needs no secret and whoever fuses computes it (`FheContext.public_lead_partial`).

Nothing proves that a partial decryption is honest: a keyholder could add a chosen plaintext
to its share and shift what is revealed. When more than t keyholders are live, a step is
therefore decrypted by a *family* of quorums that leaves out each live keyholder in turn, and
the facts must agree across the family: a single dishonest keyholder is absent from one quorum,
whose facts are then the true ones, so any shift shows up as a disagreement (and nothing is
revealed). With exactly t live there is one quorum and this check is not possible.
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
    def offline(self) -> tuple[int, ...]:
        return tuple(party for party in range(1, self.parties + 1) if party not in self.members)

    def expected_partials(self) -> tuple[tuple[int, int], ...]:
        """(producer, on behalf of) for every partial a complete fusion needs."""
        own = tuple((member, member) for member in self.members)
        stand_ins = tuple((member, absent) for absent in self.offline for member in self.members)
        return own + stand_ins


def quorum_family(parties: int, threshold: int, live: set[int] | frozenset[int]) -> tuple[Quorum, ...]:
    """The quorums that decrypt one step: all n when t = n; exactly the live ones when only t are
    live; otherwise the fewest quorums of t such that every live keyholder is absent from at
    least one: the live keyholders, in order, are cut into runs of (live − t) and each quorum
    leaves out one run (the last run wraps around). ⌈live / (live − t)⌉ quorums: 3 for 5 live
    with t = 3, 3 for 7 live with t = 4."""
    members = sorted(live)
    if len(members) < threshold:
        raise CommitteeUnavailable(f"only {len(members)} of {parties} keyholders are reachable; {threshold} are needed")
    if threshold == parties or len(members) == threshold:
        return (Quorum(parties, threshold, tuple(members)),)
    spare = len(members) - threshold
    family: list[Quorum] = []
    for start in range(0, len(members), spare):
        left_out = {members[(start + offset) % len(members)] for offset in range(spare)}
        family.append(Quorum(parties, threshold, tuple(member for member in members if member not in left_out)))
    return tuple(family)


def family_members(family: tuple[Quorum, ...]) -> tuple[int, ...]:
    return tuple(sorted({member for quorum in family for member in quorum.members}))
