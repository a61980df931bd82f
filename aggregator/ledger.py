"""Executing fired hunts and holding escrow: the interface every settlement backend implements.

The aggregator hands every certified hunt to an `Executor`, which applies the whole hunt atomically,
exactly once: every member's execution is recorded and, in a capital stag, each member's weight
moves from the escrow account its intendo names to the stag's beneficiary — all of it or none.
A retry of a hunt already applied changes nothing. The executor also keeps the accounts
(DESIGN.md §10.1): signed deposits and releases, and balances the aggregator checks before a
capital intendo enters a stag, and a refund stag's pool (DESIGN.md §10.3), escrowed from its
funder when the stag is created and paid out by the settlement or returned when a hunt
executes; and it charges fees with the action they price. Composed hunts (a trigger's hunt and the
hunts of the stags it armed that fired on it) are applied as one bundle, in one transaction. The default, an embedded SQLite
ledger, is `stagpack.edge.ledger.SqliteLedger`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from stagpack.accounts import Account, Transfer
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import InvalidInput
from stagpack.log import HuntCertificate, SettlementCertificate
from stagpack.stag import StagSpec


class Executor(Protocol):
    def check_spec(self, spec: StagSpec) -> None:
        """Raise InvalidInput unless this executor can settle the stag's hunts (asked when the
        stag is created: a term it cannot honour is refused then, not when a hunt fires)."""
        ...

    def execute_bundle(self, hunts: Sequence[tuple[StagSpec, HuntCertificate]]) -> bool:
        """Apply a bundle of hunts in one transaction, all or nothing (DESIGN.md §10.2): in each,
        every member pays its weight to the beneficiary and the stag's fee per member to the fee
        accounts, and a refund pool goes back to its return account. The first hunt is the
        bundle's root: it names no cause, or one already executed; every later one names as its
        cause an earlier hunt of the bundle, of the stag its spec names as trigger. Return False
        if the same bundle was already applied. Raises IntegrityFailure (and applies nothing) if
        the bundle breaks those rules, overlaps one already applied, or an account cannot pay."""
        ...

    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        """Apply one hunt as a bundle of its own (`execute_bundle`)."""
        ...

    def executed(self, outcome_digest: bytes) -> bool:
        """Whether the hunt with this outcome digest was applied."""
        ...

    def fund_pool(self, spec: StagSpec, held: int, at_millis: int) -> Pool:
        """Move a refund stag's pool from its funder's account into escrow, leaving at least
        `held` there; once per stag (a retried creation finds it funded)."""
        ...

    def settle(self, spec: StagSpec, certificate: SettlementCertificate) -> bool:
        """Pay a settlement's refunds from the pool and return the rest, atomically; False if
        already applied."""
        ...

    def charge_submission(self, spec: StagSpec, envelope: IntendoEnvelope, at_millis: int) -> bool:
        """Charge the stag's submission fee from the intendo's account to the fee accounts,
        once per intendo; False if already charged."""
        ...

    def pool(self, stag_id: bytes) -> Pool | None:
        """A refund stag's pool (None for a stag that has none)."""
        ...

    def open_pools(self) -> list[bytes]:
        """The stag ids of the pools still open (funded, neither settled nor returned)."""
        ...

    def return_pool(self, stag_id: bytes) -> int:
        """Return an open pool to its funder (a creation that funded it but never logged its
        stag); the amount returned, 0 if it was not open."""
        ...

    def balance(self, account: Account) -> int:
        """The money in an account (0 for one never used)."""
        ...

    def transfer(self, transfer: Transfer, held: int, at_millis: int) -> int:
        """Apply a verified owner-signed deposit or release, once per nonce; a release may not
        leave less than `held` in the account. Returns the new balance."""
        ...


def bundle_digests(hunts: Sequence[tuple[StagSpec, HuntCertificate]]) -> list[bytes]:
    """The outcome digests of a bundle's hunts, after checking it holds at least one, each with
    its own stag's spec, none twice."""
    if not hunts:
        raise InvalidInput("an empty bundle")
    for spec, certificate in hunts:
        if spec.stag_id != certificate.outcome.stag_id:
            raise InvalidInput("a hunt of the bundle comes with another stag's spec")
    digests = [certificate.outcome.digest() for _, certificate in hunts]
    if len(set(digests)) != len(digests):
        raise InvalidInput("a bundle lists a hunt twice")
    return digests


@dataclass(frozen=True)
class Pool:
    """A refund pool: what was escrowed, what it holds now, and where it stands."""

    funded: int
    remaining: int
    state: str  # "open", "settled" (the refunds were paid) or "returned" (a hunt executed)


@dataclass(frozen=True)
class Execution:
    stag_id: bytes
    intendo_id: bytes
    epoch: int
    participant: bytes
    weight: int
