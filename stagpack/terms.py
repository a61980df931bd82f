"""A capital stag's money terms (DESIGN.md §10.3): a dominant-assurance refund pool and fees.

Both are part of the public, immutable stag spec, so participants read them before they join and
every keyholder replica computes the same payouts from its own log.

Refunds. The stag's creator escrows a pool when the stag is created, from an account it owns
(it signs the stag id to authorize that). If the stag reaches its deadline without executing an
intendo, every intendo counted at the deadline is paid its bonus from the pool in one settlement
that keyholders certify (`stagpack.log.Settlement`): a fixed bonus per intendo, or the whole pool
shared in proportion to weight. Whatever the settlement does not pay — or the whole pool, as
soon as a hunt executes — goes to the account the terms name (by default the funder's).

Fees. A fee per submission is charged from the intendo's escrow account when its submission is
logged (each submission is also a probe of the validity bit, DESIGN.md §7: the fee prices it);
a fee per executed member is charged with the member's weight when its hunt executes, so a
capital intendo holds its weight plus that fee. Every fee is split between the committee's and
the operator's accounts: the committee gets `committee_percent` of it, rounded down.

All amounts are integers of the stag's unit; the arithmetic below is the one definition of it
(the plaintext reference, `stagpack.solver.market`, is a separate implementation of the same rules).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

from stagpack.accounts import MAX_AMOUNT, Account, check_amount
from stagpack.errors import InvalidInput


class RefundMode(str, enum.Enum):
    FIXED = "fixed"  # each intendo counted at the deadline gets `bonus`
    PRO_RATA = "pro-rata"  # the whole pool, shared by weight among the intendos counted at the deadline


@dataclass(frozen=True)
class RefundTerms:
    """A dominant-assurance refund pool, escrowed from `funder` when the stag is created."""

    WIRE_NAME = "stagpack.RefundTerms.v1"

    funder: Account  # pays the pool; its owner signs the stag id (`pool_funding_message`)
    pool: int
    mode: RefundMode
    bonus: int  # FIXED: per counted intendo; PRO_RATA: 0
    returns_to: Account  # what the settlement leaves, or the whole pool once a hunt executes

    def check(self, levels: int) -> None:
        self.funder.check("refund funder")
        self.returns_to.check("refund return account")
        check_amount(self.pool, "the refund pool")
        if not isinstance(self.mode, RefundMode):
            raise InvalidInput("unknown refund mode")
        if self.mode is RefundMode.FIXED:
            check_amount(self.bonus, "the fixed refund bonus")
            # at most levels - 1 intendos can be counted (each weighs at least 1): all are funded
            if self.bonus * (levels - 1) > self.pool:
                raise InvalidInput(
                    f"a fixed bonus of {self.bonus} for up to {levels - 1} counted intendos needs a pool of at least "
                    f"{self.bonus * (levels - 1)}, not {self.pool}: every promised bonus must be funded"
                )
        elif self.bonus != 0:
            raise InvalidInput("a pro-rata refund shares the whole pool: its fixed bonus must be 0")

    def payouts(self, weights: Sequence[int]) -> tuple[tuple[int, ...], int]:
        """The bonus of each counted intendo (by weight, in log order) and what is left."""
        if not weights:
            return (), self.pool
        if self.mode is RefundMode.FIXED:
            amounts = tuple(self.bonus for _ in weights)
        else:
            total = sum(weights)
            amounts = tuple(self.pool * weight // total for weight in weights)
        return amounts, self.pool - sum(amounts)

    def describe(self) -> str:
        if self.mode is RefundMode.FIXED:
            return f"refund pool {self.pool}: if the deadline passes without a hunt, {self.bonus} to each counted intendo"
        return f"refund pool {self.pool}: if the deadline passes without a hunt, shared by weight among the counted intendos"


@dataclass(frozen=True)
class FeeTerms:
    """Fees per submission and per executed member, split between committee and operator."""

    WIRE_NAME = "stagpack.FeeTerms.v1"

    submission: int  # charged when a submission is logged, valid or not
    member: int  # charged with the weight when a member executes
    committee: Account
    operator: Account
    committee_percent: int  # 0..100: the committee's share of every fee, rounded down

    def check(self) -> None:
        for amount, what in ((self.submission, "the submission fee"), (self.member, "the member fee")):
            if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
                raise InvalidInput(f"{what} must be an integer in 0..{MAX_AMOUNT}; got {amount!r}")
        if self.submission == 0 and self.member == 0:
            raise InvalidInput("fee terms with no fee: leave the fees out")
        self.committee.check("committee fee account")
        self.operator.check("operator fee account")
        if type(self.committee_percent) is not int or not 0 <= self.committee_percent <= 100:
            raise InvalidInput(f"the committee's share must be a percentage in 0..100; got {self.committee_percent!r}")

    def split(self, fee: int) -> tuple[int, int]:
        """(committee's part, operator's part) of a fee charged in one action."""
        committee = fee * self.committee_percent // 100
        return committee, fee - committee


def pool_funding_message(stag_id: bytes) -> bytes:
    """What a refund pool's funder signs (domain "refund-pool"): the stag id, which pins the
    whole spec — pool, bonus, return account — so the signature funds exactly that stag, once."""
    return stag_id
