"""Executing fired hunts and holding escrow: the interface every settlement backend implements.

The aggregator hands every certified hunt to an `Executor`, which applies the whole hunt atomically,
exactly once: every member's execution is recorded and, in a capital stag, each member's weight
moves from the escrow account its intendo names to the stag's beneficiary — all of it or none.
A retry of a hunt already applied changes nothing. The executor also keeps the accounts
(DESIGN.md §10.1): signed deposits and releases, and balances the aggregator checks before a
capital intendo enters a stag. The default, an embedded SQLite ledger, is
`stagpack.edge.ledger.SqliteLedger`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stagpack.accounts import Account, Transfer
from stagpack.log import HuntCertificate
from stagpack.stag import StagSpec


class Executor(Protocol):
    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        """Apply the hunt atomically; return False if it had already been applied. Raises
        IntegrityFailure (and applies nothing) if an account cannot pay its member's weight."""
        ...

    def balance(self, account: Account) -> int:
        """The money in an account (0 for one never used)."""
        ...

    def transfer(self, transfer: Transfer, held: int, at_millis: int) -> int:
        """Apply a verified owner-signed deposit or release, once per nonce; a release may not
        leave less than `held` in the account. Returns the new balance."""
        ...


@dataclass(frozen=True)
class Execution:
    stag_id: bytes
    intendo_id: bytes
    epoch: int
    participant: bytes
    weight: int
