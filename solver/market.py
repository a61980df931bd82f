"""The plaintext reference for capital across stags: escrow, multiplexing and voids.

`MarketReference` keeps one `PackSolver` per capital stag, the escrow accounts and which
accounts hunts have spent, and applies the rules of DESIGN.md §10.1 and docs/protocol.md §6a
with no cryptography at all, so that an encrypted run can be compared with it exactly:

- a capital intendo names an escrow account (owner, tag); it enters only while the account
  holds its weight and no hunt has spent the account, and while its signer has no other live
  (or executed) intendo in the stag;
- a release may not leave less than the largest weight among the live intendos the account
  backs (they are mutually exclusive: at most one of them executes);
- an epoch evaluates the stags in the order they were created: each first voids its live
  intendos whose account a hunt (of another stag) has spent, then hunts; a hunt pays each
  member's weight from its account to the stag's beneficiary and spends the member's account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

from stagpack.accounts import Account
from stagpack.errors import AlreadyExists, InsufficientFunds, NotFound, WrongPhase

from .pack import Hunt, PackSolver


@dataclass
class _Intendo:
    stag: Hashable
    account: Account
    weight: int
    status: str = "live"  # live, withdrawn, voided, executed


@dataclass
class _Stag:
    solver: PackSolver
    beneficiary: Account
    intendos: list[Hashable] = field(default_factory=list)


class MarketReference:
    def __init__(self) -> None:
        self._stags: dict[Hashable, _Stag] = {}  # in creation order
        self._intendos: dict[Hashable, _Intendo] = {}
        self.balances: dict[Account, int] = {}
        self.spent: dict[Account, tuple[Hashable, int]] = {}  # account -> (stag, epoch) of the hunt that spent it
        self.deposited = 0
        self.released = 0

    # -- stags and accounts -------------------------------------------------------------------

    def create_stag(self, stag: Hashable, levels: int, beneficiary: Account) -> None:
        if stag in self._stags:
            raise AlreadyExists(f"stag {stag!r} exists")
        self._stags[stag] = _Stag(PackSolver(levels), beneficiary)

    def balance(self, account: Account) -> int:
        return self.balances.get(account, 0)

    def held(self, account: Account) -> int:
        return max((i.weight for i in self._intendos.values() if i.account == account and i.status == "live"), default=0)

    def deposit(self, account: Account, amount: int) -> None:
        self.balances[account] = self.balance(account) + amount
        self.deposited += amount

    def release(self, account: Account, amount: int) -> None:
        if self.balance(account) - amount < self.held(account):
            raise InsufficientFunds(f"{account.describe()}: at most {self.balance(account) - self.held(account)} may be released")
        self.balances[account] -= amount
        self.released += amount

    # -- intendos -----------------------------------------------------------------------------

    def submit(self, stag: Hashable, intendo: Hashable, account: Account, threshold: int, weight: int) -> None:
        for other in self._stags[stag].intendos:  # one live (or executed) intendo per signer and stag
            record = self._intendos[other]
            if record.account.owner == account.owner and record.status in ("live", "executed"):
                raise AlreadyExists("this identity already has a live intendo in the stag")
        if account in self.spent:
            raise WrongPhase(f"{account.describe()} was spent by a hunt")
        if self.balance(account) < weight:
            raise InsufficientFunds(f"{account.describe()} holds {self.balance(account)}, less than {weight}")
        self._stags[stag].solver.insert(intendo, threshold, weight)
        self._stags[stag].intendos.append(intendo)
        self._intendos[intendo] = _Intendo(stag, account, weight)

    def withdraw(self, intendo: Hashable) -> None:
        record = self._intendos.get(intendo)
        if record is None:
            raise NotFound(f"no intendo {intendo!r}")
        if record.status != "live":
            raise WrongPhase(f"intendo {intendo!r} is {record.status}")
        self._stags[record.stag].solver.withdraw(intendo)
        record.status = "withdrawn"

    def status(self, intendo: Hashable) -> str:
        return self._intendos[intendo].status

    # -- epochs -------------------------------------------------------------------------------

    def epoch(self, number: int) -> dict[Hashable, Hunt | None]:
        """Evaluate every stag once, in creation order; return each stag's hunt (or None)."""
        hunts: dict[Hashable, Hunt | None] = {}
        for stag_id, stag in self._stags.items():
            self._void_spent(stag_id, stag)
            hunt = stag.solver.hunt()
            if hunt is not None:
                stag.solver.execute(hunt)
                for member, weight in zip(hunt.members, hunt.weights):
                    record = self._intendos[member]
                    record.status = "executed"
                    self.balances[record.account] -= weight
                    assert self.balances[record.account] >= 0, "a hunt paid more than an account held"
                    self.balances[stag.beneficiary] = self.balance(stag.beneficiary) + weight
                    self.spent.setdefault(record.account, (stag_id, number))
            hunts[stag_id] = hunt
        return hunts

    def _void_spent(self, stag_id: Hashable, stag: _Stag) -> None:
        for intendo in stag.intendos:
            record = self._intendos[intendo]
            spent = self.spent.get(record.account)
            if record.status == "live" and spent is not None and spent[0] != stag_id:
                stag.solver.withdraw(intendo)
                record.status = "voided"

    @property
    def held_total(self) -> int:
        return sum(self.balances.values())

    @property
    def conserved(self) -> bool:
        return self.deposited == self.held_total + self.released
