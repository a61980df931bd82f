"""The plaintext reference for capital across stags: escrow, multiplexing, voids, deadlines,
dominant-assurance refunds and fees.

`MarketReference` keeps one `PackSolver` per capital stag, the escrow accounts, the refund pools
and which accounts hunts have spent, and applies the rules of DESIGN.md §10.1 and §10.3 and
docs/protocol.md §6a–§6b with no cryptography at all, so that an encrypted run can be compared
with it exactly. It is written apart from the code it checks (`stagpack.terms`, the ledger):

- a capital intendo names an escrow account (owner, tag); it enters only while its stag accepts
  submissions, while its signer has no other live (or executed) intendo in the stag, while no
  hunt has spent the account, and while the account, after the stag's submission fee, still
  holds the intendo's weight plus the stag's fee per executed member and whatever its other
  live intendos hold;
- a live intendo holds its weight plus its stag's member fee until its stag is finished; an
  account's intendos are mutually exclusive, so it holds the largest of them, and a release may
  not leave less;
- a stag with a refund pool takes it from the funder's account at creation (never below what
  the funder's account holds);
- an epoch evaluates the stags in the order they were created: each first voids its live
  intendos whose account a hunt of another stag has spent, then hunts — or, at a refund stag's
  closing epoch (the first after its deadline) with no hunt so far, pays every live intendo its
  refund bonus and returns the rest of the pool;
- a hunt pays each member's weight from its account to the stag's beneficiary and the member fee
  to the fee accounts, spends the member's account, and returns a refund pool whole;
- a fee charged in one action is split: the committee gets ⌊fee · percent / 100⌋;
- a stag may name a trigger, an earlier stag that has not hunted (DESIGN.md §10.2): it is not
  evaluated until the trigger's first hunt arms it; that hunt then checks each stag it armed at
  once (in creation order, depth first), and the hunt and every armed stag's hunt that fired on
  it — transitively — form one bundle. An armed stag checked that way is not evaluated again in
  the same epoch; when its turn comes, it only voids the intendos whose account was spent since.

Time is counted in epochs: `epoch(n)` runs at the moment epoch n is due, and what is submitted
after it happens before epoch n + 1. A stag's `last_epoch` is the last one due at or before its
deadline, so it accepts submissions until epoch `last_epoch + 1` is due (the harness sets each
deadline between those two).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

from stagpack.accounts import Account
from stagpack.errors import AlreadyExists, InsufficientFunds, InvalidInput, NotFound, WrongPhase

from .pack import Hunt, PackSolver

MAX_DEPTH = 8  # the longest chain of triggers above a stag


@dataclass(frozen=True)
class Refunds:
    """A refund pool's terms, as the reference reads them."""

    funder: Account
    pool: int
    bonus: int  # > 0: a fixed bonus per counted intendo; 0: the pool shared by weight
    returns_to: Account


@dataclass(frozen=True)
class Fees:
    submission: int
    member: int
    committee: Account
    operator: Account
    committee_percent: int


@dataclass
class _Intendo:
    stag: Hashable
    account: Account | None  # None: a count stag's intendo, which no account backs
    weight: int
    status: str = "live"  # live, withdrawn, voided, executed, refunded
    owner: bytes = b""  # the signer


@dataclass
class _Stag:
    solver: PackSolver
    beneficiary: Account
    last_epoch: int  # 0: no deadline
    refunds: Refunds | None
    fees: Fees | None
    trigger: Hashable | None = None
    capital: bool = True  # False: a count stag (no accounts, no money)
    armed: bool = False
    dependents: list[Hashable] = field(default_factory=list)  # stags naming this one as trigger, in creation order
    intendos: list[Hashable] = field(default_factory=list)
    pool: int = 0  # what its refund pool holds
    hunted_at: list[int] = field(default_factory=list)
    settled: bool = False

    @property
    def member_fee(self) -> int:
        return self.fees.member if self.fees else 0

    @property
    def closing_epoch(self) -> int:
        return self.last_epoch + 1 if self.refunds else 0


class MarketReference:
    def __init__(self, expiry_epochs: int = 30) -> None:
        """`expiry_epochs`: how many epochs after its last one a stag's epoch may still run
        (the keyholders' clock skew, in epochs); a stag without refunds is finished then."""
        self._stags: dict[Hashable, _Stag] = {}  # in creation order
        self._intendos: dict[Hashable, _Intendo] = {}
        self._expiry = expiry_epochs
        self.now = 0  # the last epoch run
        self.balances: dict[Account, int] = {}
        self.spent: dict[Account, tuple[Hashable, int]] = {}  # account -> (stag, epoch) of the hunt that spent it
        self.deposited = 0
        self.released = 0
        self.bundles: list[tuple[tuple[Hashable, int], ...]] = []  # every bundle executed, in order: (stag, epoch) of each hunt

    # -- stags and accounts -------------------------------------------------------------------

    def create_stag(
        self, stag: Hashable, levels: int, beneficiary: Account, *, last_epoch: int = 0,
        refunds: Refunds | None = None, fees: Fees | None = None, trigger: Hashable | None = None, capital: bool = True,
    ) -> None:
        """A stag; `beneficiary` is ignored for a count stag (capital False), whose intendos
        move no money."""
        if stag in self._stags:
            raise AlreadyExists(f"stag {stag!r} exists")
        if trigger is not None:
            if trigger not in self._stags or self._stags[trigger].hunted_at:
                raise InvalidInput(f"stag {trigger!r} is unknown or has hunted: it cannot trigger {stag!r}")
            depth, above = 1, self._stags[trigger].trigger
            while above is not None:
                depth, above = depth + 1, self._stags[above].trigger
            if depth > MAX_DEPTH:
                raise InvalidInput(f"a trigger chain {depth} deep")
        if refunds is not None:
            assert last_epoch, "a refund stag has a deadline"
            if self.balance(refunds.funder) - refunds.pool < self.held(refunds.funder):
                raise InsufficientFunds(f"{refunds.funder.describe()} cannot fund a pool of {refunds.pool}")
            self.balances[refunds.funder] -= refunds.pool
        self._stags[stag] = _Stag(PackSolver(levels), beneficiary, last_epoch, refunds, fees, trigger, capital)
        if trigger is not None:
            self._stags[trigger].dependents.append(stag)
        if refunds is not None:
            self._stags[stag].pool = refunds.pool

    def balance(self, account: Account) -> int:
        return self.balances.get(account, 0)

    def _finished(self, stag: _Stag) -> bool:
        if stag.settled:
            return True
        if not stag.last_epoch:
            return False
        last = stag.closing_epoch or stag.last_epoch
        if stag.hunted_at and stag.hunted_at[-1] >= last:
            return True
        if stag.refunds and not stag.hunted_at:
            return False
        return self.now > last + self._expiry

    def held(self, account: Account) -> int:
        return max(
            (
                i.weight + self._stags[i.stag].member_fee
                for i in self._intendos.values()
                if i.account == account and i.status == "live" and not self._finished(self._stags[i.stag])
            ),
            default=0,
        )

    def deposit(self, account: Account, amount: int) -> None:
        self.balances[account] = self.balance(account) + amount
        self.deposited += amount

    def release(self, account: Account, amount: int) -> None:
        if self.balance(account) - amount < self.held(account):
            raise InsufficientFunds(f"{account.describe()}: at most {self.balance(account) - self.held(account)} may be released")
        self.balances[account] -= amount
        self.released += amount

    def _pay(self, account: Account, amount: int) -> None:
        self.balances[account] = self.balance(account) - amount
        assert self.balances[account] >= 0, f"{account.describe()} paid more than it held"

    def _credit(self, account: Account, amount: int) -> None:
        if amount:
            self.balances[account] = self.balance(account) + amount

    def _charge(self, fees: Fees, payers: list[Account], fee: int) -> None:
        """Each payer pays `fee`; the total is split between committee and operator."""
        for payer in payers:
            self._pay(payer, fee)
        total = fee * len(payers)
        committee = total * fees.committee_percent // 100
        self._credit(fees.committee, committee)
        self._credit(fees.operator, total - committee)

    # -- intendos -----------------------------------------------------------------------------

    def accepting(self, stag: Hashable) -> bool:
        last = self._stags[stag].last_epoch
        return not last or self.now <= last

    def submit(self, stag: Hashable, intendo: Hashable, account: Account, threshold: int, weight: int) -> None:
        """A capital intendo backed by `account`; in a count stag, `account` only names the
        signer (its owner)."""
        record = self._stags[stag]
        if not self.accepting(stag):
            raise WrongPhase("the stag's deadline has passed")
        for other in record.intendos:  # one live (or executed) intendo per signer and stag
            earlier = self._intendos[other]
            if earlier.owner == account.owner and earlier.status in ("live", "executed"):
                raise AlreadyExists("this identity already has a live intendo in the stag")
        if not record.capital:
            record.solver.insert(intendo, threshold, weight)
            record.intendos.append(intendo)
            self._intendos[intendo] = _Intendo(stag, None, weight, owner=account.owner)
            return
        if account in self.spent:
            raise WrongPhase(f"{account.describe()} was spent by a hunt")
        fee = record.fees.submission if record.fees else 0
        if self.balance(account) - fee < max(weight + record.member_fee, self.held(account)):
            raise InsufficientFunds(f"{account.describe()} holds {self.balance(account)}, not enough")
        if record.fees and fee:
            self._charge(record.fees, [account], fee)
        record.solver.insert(intendo, threshold, weight)
        record.intendos.append(intendo)
        self._intendos[intendo] = _Intendo(stag, account, weight, owner=account.owner)

    def withdraw(self, intendo: Hashable) -> None:
        record = self._intendos.get(intendo)
        if record is None:
            raise NotFound(f"no intendo {intendo!r}")
        if not self.accepting(record.stag):
            raise WrongPhase("the stag's deadline has passed")
        if record.status != "live":
            raise WrongPhase(f"intendo {intendo!r} is {record.status}")
        self._stags[record.stag].solver.withdraw(intendo)
        record.status = "withdrawn"

    def status(self, intendo: Hashable) -> str:
        return self._intendos[intendo].status

    def pool(self, stag: Hashable) -> int:
        return self._stags[stag].pool

    # -- epochs -------------------------------------------------------------------------------

    def epoch(self, number: int) -> dict[Hashable, Hunt | None]:
        """Evaluate every stag once, in creation order (a stag armed by a hunt is checked at
        once instead); return each stag's hunt (or None)."""
        self.now = number
        hunts: dict[Hashable, Hunt | None] = {}
        for stag_id, stag in self._stags.items():
            if stag_id in hunts:  # checked at once when a hunt armed it; its turn still voids what was spent since
                self._void_spent(stag_id, stag)
            else:
                self._check(stag_id, number, hunts, None)
        return hunts

    def _check(self, stag_id: Hashable, number: int, hunts: dict[Hashable, Hunt | None], bundle: list[tuple[Hashable, int]] | None) -> None:
        """One stag's evaluation; a hunt joins `bundle` (its trigger's), or starts its own."""
        stag = self._stags[stag_id]
        hunts[stag_id] = None
        self._void_spent(stag_id, stag)
        if stag.trigger is not None and not stag.armed:
            return
        closing = stag.refunds is not None and number == stag.closing_epoch and not stag.hunted_at
        if stag.settled or (stag.last_epoch and number > max(stag.last_epoch, stag.closing_epoch)):
            return
        hunt = stag.solver.hunt()
        if hunt is None:
            if closing:
                self._settle(stag)
            return
        self._execute(stag_id, stag, hunt, number)
        hunts[stag_id] = hunt
        own = bundle is None
        bundle = [] if bundle is None else bundle
        bundle.append((stag_id, number))
        if len(stag.hunted_at) == 1:  # its first hunt arms its dependents, each checked at once
            for dependent in stag.dependents:
                self._stags[dependent].armed = True
                self._check(dependent, number, hunts, bundle)
        if own:
            self.bundles.append(tuple(bundle))

    def _execute(self, stag_id: Hashable, stag: _Stag, hunt: Hunt, number: int) -> None:
        stag.solver.execute(hunt)
        stag.hunted_at.append(number)
        payers = []
        for member, weight in zip(hunt.members, hunt.weights):
            record = self._intendos[member]
            record.status = "executed"
            if record.account is None:
                continue  # a count stag moves no money
            self._pay(record.account, weight)
            self._credit(stag.beneficiary, weight)
            self.spent.setdefault(record.account, (stag_id, number))
            payers.append(record.account)
        if stag.fees is not None and stag.fees.member:
            self._charge(stag.fees, payers, stag.fees.member)
        if stag.refunds is not None and stag.pool:  # it hunted: no refund will be due
            self._credit(stag.refunds.returns_to, stag.pool)
            stag.pool = 0

    def _settle(self, stag: _Stag) -> None:
        assert stag.refunds is not None
        live = [self._intendos[i] for i in stag.intendos if self._intendos[i].status == "live"]
        total = sum(record.weight for record in live)
        for record in live:
            bonus = stag.refunds.bonus if stag.refunds.bonus else stag.refunds.pool * record.weight // total
            assert record.account is not None  # refund stags are capital stags
            self._credit(record.account, bonus)
            stag.pool -= bonus
            record.status = "refunded"
        assert stag.pool >= 0
        self._credit(stag.refunds.returns_to, stag.pool)
        stag.pool = 0
        stag.settled = True

    def _void_spent(self, stag_id: Hashable, stag: _Stag) -> None:
        for intendo in stag.intendos:
            record = self._intendos[intendo]
            if record.account is None:
                continue
            spent = self.spent.get(record.account)
            if record.status == "live" and spent is not None and spent[0] != stag_id and not stag.settled:
                stag.solver.withdraw(intendo)
                record.status = "voided"

    @property
    def held_total(self) -> int:
        return sum(self.balances.values())

    @property
    def pooled(self) -> int:
        return sum(stag.pool for stag in self._stags.values())

    @property
    def conserved(self) -> bool:
        return self.deposited == self.held_total + self.pooled + self.released
