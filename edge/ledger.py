"""The default executor: an embedded SQLite ledger (`stagpack.aggregator.ledger.Executor`).

It records each hunt and its members' executions and, for a capital stag, moves each member's
weight from its escrow account to the stag's beneficiary — one transaction per hunt, exactly
once. It keeps the escrow accounts, owner-signed deposits and releases, and a journal of every
movement of money, from which `totals` shows that money is conserved: what was deposited is what
the accounts hold plus what was released.

A deposit here stands in for a payment rail: the ledger takes the owner's signed word that the
money arrived. A settlement backend on a chain holds real tokens instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from stagpack.accounts import MAX_AMOUNT, Account, Transfer, TransferKind
from stagpack.aggregator.ledger import Execution
from stagpack.edge.sqlite import Database, blob, integer, text
from stagpack.encoding import StagKind
from stagpack.errors import AlreadyExists, InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.log import HuntCertificate
from stagpack.stag import StagSpec, now_millis

SCHEMA = """
CREATE TABLE IF NOT EXISTS hunts (
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    level INTEGER NOT NULL,
    payload BLOB NOT NULL,
    certificate_digest BLOB NOT NULL,
    executed_at_millis INTEGER NOT NULL,
    PRIMARY KEY (stag_id, epoch)
);
CREATE TABLE IF NOT EXISTS executions (
    stag_id BLOB NOT NULL,
    intendo_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    participant BLOB NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (stag_id, intendo_id),
    FOREIGN KEY (stag_id, epoch) REFERENCES hunts (stag_id, epoch)
);
CREATE TABLE IF NOT EXISTS accounts (
    owner BLOB NOT NULL,
    tag TEXT NOT NULL,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (owner, tag)
);
CREATE TABLE IF NOT EXISTS movements (
    owner BLOB NOT NULL,
    tag TEXT NOT NULL,
    kind TEXT NOT NULL,          -- deposit, release, paid (a hunt member's weight), received (a beneficiary's)
    amount INTEGER NOT NULL CHECK (amount > 0),
    reference BLOB NOT NULL,     -- the transfer's nonce, or the hunt's certificate digest
    at_millis INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transfer_nonces (
    owner BLOB NOT NULL,
    nonce BLOB NOT NULL,
    PRIMARY KEY (owner, nonce)
);
"""


MAX_BALANCE = 2**62  # what a beneficiary may accumulate from hunts


@dataclass(frozen=True)
class LedgerTotals:
    """Every unit that entered and left the ledger, and what its accounts hold."""

    deposited: int
    released: int
    held: int  # the sum of all balances

    @property
    def conserved(self) -> bool:
        return self.deposited == self.held + self.released


class SqliteLedger:
    """The default executor: hunts, executions and escrow accounts in one SQLite database."""

    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        outcome = certificate.outcome
        digest = outcome.digest()
        at = now_millis()
        with self._database.transaction() as connection:
            existing = connection.execute(
                "SELECT certificate_digest FROM hunts WHERE stag_id = ? AND epoch = ?", (outcome.stag_id, outcome.epoch)
            ).fetchone()
            if existing is not None:
                if blob(existing[0]) != digest:
                    raise IntegrityFailure("a different hunt was already executed for this stag and epoch")
                return False
            connection.execute(
                "INSERT INTO hunts VALUES (?, ?, ?, ?, ?, ?)",
                (outcome.stag_id, outcome.epoch, outcome.level, spec.payload, digest, at),
            )
            connection.executemany(
                "INSERT INTO executions VALUES (?, ?, ?, ?, ?)",
                [
                    (outcome.stag_id, member.intendo_id, outcome.epoch, member.statement.participant, member.statement.weight)
                    for member in outcome.members
                ],
            )
            if spec.kind is StagKind.CAPITAL:
                assert spec.beneficiary is not None  # StagSpec.validate
                total = 0
                for member in outcome.members:
                    statement = member.statement
                    payer = Account(statement.participant, statement.capital_tag)
                    _move(connection, payer, -statement.weight, "paid", digest, at)
                    total += statement.weight
                if total:
                    _move(connection, spec.beneficiary, total, "received", digest, at)
        return True

    def balance(self, account: Account) -> int:
        row = self._database.query_one(_BALANCE, (account.owner, account.tag))
        return integer(row[0]) if row else 0

    def transfer(self, transfer: Transfer, held: int, at_millis: int) -> int:
        statement = transfer.statement
        account = statement.account
        with self._database.transaction() as connection:
            try:
                connection.execute("INSERT INTO transfer_nonces VALUES (?, ?)", (account.owner, statement.nonce))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"this {statement.kind.value} was already applied (replay)") from None
            if statement.kind is TransferKind.DEPOSIT:
                return _move(connection, account, statement.amount, "deposit", statement.nonce, at_millis)
            balance = _balance(connection, account)
            if balance - statement.amount < held:
                raise InsufficientFunds(
                    f"account {account.describe()} holds {balance}, of which {held} backs a live intendo: "
                    f"at most {max(balance - held, 0)} may be released, not {statement.amount}"
                )
            return _move(connection, account, -statement.amount, "release", statement.nonce, at_millis)

    def movements(self, account: Account) -> list[tuple[str, int]]:
        """(kind, signed amount) of every movement of an account's money, oldest first."""
        rows = self._database.query(
            "SELECT kind, amount FROM movements WHERE owner = ? AND tag = ? ORDER BY rowid", (account.owner, account.tag)
        )
        return [(text(r[0]), integer(r[1])) for r in rows]

    def totals(self) -> LedgerTotals:
        def total(sql: str) -> int:
            row = self._database.query_one(sql)
            return integer(row[0]) if row and row[0] is not None else 0

        return LedgerTotals(
            deposited=total("SELECT SUM(amount) FROM movements WHERE kind = 'deposit'"),
            released=total("SELECT SUM(amount) FROM movements WHERE kind = 'release'"),
            held=total("SELECT SUM(balance) FROM accounts"),
        )

    def executions(self, stag_id: bytes) -> list[Execution]:
        rows = self._database.query(
            "SELECT stag_id, intendo_id, epoch, participant, weight FROM executions WHERE stag_id = ? ORDER BY epoch, rowid",
            (stag_id,),
        )
        return [Execution(blob(r[0]), blob(r[1]), integer(r[2]), blob(r[3]), integer(r[4])) for r in rows]

    def hunt_count(self) -> int:
        row = self._database.query_one("SELECT COUNT(*) FROM hunts")
        return integer(row[0]) if row else 0

    def close(self) -> None:
        self._database.close()


_BALANCE = "SELECT balance FROM accounts WHERE owner = ? AND tag = ?"


def _balance(connection: sqlite3.Connection, account: Account) -> int:
    row = connection.execute(_BALANCE, (account.owner, account.tag)).fetchone()
    return integer(row[0]) if row else 0


def _move(connection: sqlite3.Connection, account: Account, change: int, kind: str, reference: bytes, at_millis: int) -> int:
    """Change an account's balance by `change` and journal it; inside the caller's transaction."""
    balance = _balance(connection, account) + change
    if balance < 0:
        raise IntegrityFailure(f"account {account.describe()} cannot pay {-change}: it holds {balance - change}")
    # Deposits stop at MAX_AMOUNT; what a hunt pays a beneficiary is never refused for size
    # (a certified hunt must execute), and 2^62 is far above anything hunts can pay (each pays
    # less than its stag's levels) while every sum still fits 64 bits.
    if balance > (MAX_AMOUNT if kind == "deposit" else MAX_BALANCE):
        raise InvalidInput(f"account {account.describe()} would hold more than {MAX_AMOUNT}: deposit less")
    connection.execute(
        "INSERT INTO accounts VALUES (?, ?, ?) ON CONFLICT (owner, tag) DO UPDATE SET balance = excluded.balance",
        (account.owner, account.tag, balance),
    )
    connection.execute(
        "INSERT INTO movements VALUES (?, ?, ?, ?, ?, ?)", (account.owner, account.tag, kind, abs(change), reference, at_millis)
    )
    return balance
