"""Accounts and escrow (DESIGN.md §10.1): what a capital intendo's "I commit a" is backed by.

Money is held by the executor in accounts named by an owner (an Ed25519 key) and a capital tag
the owner chooses ("main", "lp-2026"). A capital intendo names the tag that backs it; it may
enter a stag only while that account holds at least its weight, and the account cannot be
released below the weight of the live intendo it backs. When the hunt executes, each member's
weight moves from its account to the stag's beneficiary, atomically with the hunt.

Deposits and releases are statements the owner signs (domain-separated, with a fresh nonce and
an expiry, each nonce accepted once), so nobody else can move an owner's money in or out.
Amounts are positive integers of the stag's unit, at most `MAX_AMOUNT`; no balance may exceed
it either, so every sum the ledger forms fits a 64-bit integer.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass

from stagpack import codec
from stagpack.envelope import NONCE_SIZE
from stagpack.errors import InvalidInput
from stagpack.identity import SigningIdentity, check_verify_key, verify_signature

MAX_AMOUNT = 2**53  # exact in every JSON reader; balances stay below it too
MAX_VALIDITY_MILLIS = 24 * 3_600_000  # a signed transfer expires within a day of being applied
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_tag(tag: str, what: str = "capital tag") -> str:
    """A tag is 1–64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise InvalidInput(f"{what} must be 1-64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit); got {tag!r}")
    return tag


def check_amount(amount: int, what: str = "amount") -> int:
    if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT:
        raise InvalidInput(f"{what} must be an integer in 1..{MAX_AMOUNT}; got {amount!r}")
    return amount


@dataclass(frozen=True)
class Account:
    """One escrow account: an owner's money under one capital tag."""

    WIRE_NAME = "stagpack.Account.v1"

    owner: bytes  # Ed25519 public key
    tag: str

    def check(self, what: str = "account") -> Account:
        check_verify_key(self.owner, f"{what} owner")
        check_tag(self.tag, f"{what} tag")
        return self

    def describe(self) -> str:
        return f"{self.owner.hex()[:12]}:{self.tag}"


class TransferKind(str, enum.Enum):
    DEPOSIT = "deposit"  # money comes into the account from outside
    RELEASE = "release"  # money leaves the account to its owner


@dataclass(frozen=True)
class TransferStatement:
    """What an owner signs to move money into or out of one of its accounts."""

    WIRE_NAME = "stagpack.TransferStatement.v1"

    kind: TransferKind
    committee: bytes  # the committee whose executor keeps the account: a statement moves money in one ledger
    account: Account
    amount: int
    nonce: bytes
    expires_at_millis: int


@dataclass(frozen=True)
class Transfer:
    WIRE_NAME = "stagpack.Transfer.v1"

    statement: TransferStatement
    signature: bytes

    @classmethod
    def sign(
        cls, identity: SigningIdentity, committee: bytes, kind: TransferKind, tag: str, amount: int, expires_at_millis: int
    ) -> Transfer:
        statement = TransferStatement(
            kind, committee, Account(identity.verify_key, tag), amount, os.urandom(NONCE_SIZE), expires_at_millis
        )
        return cls(statement, identity.sign("transfer", codec.encode(statement)))

    def verify(self, at_millis: int, committee: bytes) -> None:
        """Check every field and the owner's signature, for the ledger of `committee` at time
        `at_millis` (not yet whether the nonce is fresh: the ledger remembers nonces)."""
        statement = self.statement
        if not isinstance(statement.kind, TransferKind):
            raise InvalidInput("unknown transfer kind")
        if statement.committee != committee:
            raise InvalidInput(f"the {statement.kind.value} is signed for another committee's ledger")
        statement.account.check()
        check_amount(statement.amount)
        if len(statement.nonce) != NONCE_SIZE:
            raise InvalidInput(f"the nonce must be {NONCE_SIZE} bytes")
        if statement.expires_at_millis < at_millis:
            raise InvalidInput(f"the {statement.kind.value} has expired")
        if statement.expires_at_millis > at_millis + MAX_VALIDITY_MILLIS:
            raise InvalidInput(f"the {statement.kind.value} is valid for more than a day: sign one that expires sooner")
        verify_signature(statement.account.owner, "transfer", codec.encode(statement), self.signature)


@dataclass(frozen=True)
class Balance:
    """An account's escrow and what its live intendos hold of it."""

    account: Account
    balance: int  # money in the account
    held: int  # the largest weight among live intendos the account backs: not releasable

    @property
    def releasable(self) -> int:
        return self.balance - self.held
