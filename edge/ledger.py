"""The default executor: an embedded SQLite ledger (`stagpack.aggregator.ledger.Executor`).

It records each hunt and its members' executions and, for a capital stag, moves each member's
weight from its escrow account to the stag's beneficiary — one transaction per hunt or bundle of
composed hunts (a trigger's hunt with the hunts that fired on it), exactly once. It keeps the
escrow accounts, owner-signed deposits and releases, refund pools (funded when their stag is
created; paid out by its settlement, or returned when it hunts), the fees
each action is charged, and a journal of every movement of money, from which `totals` shows
that money is conserved: what was deposited is what the accounts and open pools hold plus what
was released.

A deposit here stands in for a payment rail: the ledger takes the owner's signed word that the
money arrived. A settlement backend on a chain holds real tokens instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stagpack.accounts import MAX_AMOUNT, Account, Transfer, TransferKind
from stagpack.aggregator.ledger import Execution, Pool, bundle_digests
from stagpack.envelope import IntendoEnvelope
from stagpack.edge.sqlite import Database, blob, integer, text
from stagpack.encoding import StagKind
from stagpack.errors import AlreadyExists, InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.log import HuntCertificate, SettlementCertificate
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
CREATE TABLE IF NOT EXISTS bundles (
    hunt BLOB PRIMARY KEY,       -- a hunt's certificate digest
    root BLOB NOT NULL,          -- the digest of the bundle's first hunt (the hunt itself when alone)
    position INTEGER NOT NULL,   -- its place in the bundle, from 0
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL
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
    kind TEXT NOT NULL,          -- deposit, release, paid (a hunt member's weight), received (a beneficiary's),
                                 -- pool (into a refund pool), bonus (a refund), returned (from a pool), fee, fee-income
    amount INTEGER NOT NULL CHECK (amount > 0),
    reference BLOB NOT NULL,     -- the transfer's nonce, the certificate digest, the stag or intendo id
    at_millis INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pools (
    stag_id BLOB PRIMARY KEY,
    funded INTEGER NOT NULL CHECK (funded > 0),
    remaining INTEGER NOT NULL CHECK (remaining >= 0),
    state TEXT NOT NULL,         -- open, settled, returned
    funder_owner BLOB NOT NULL,
    funder_tag TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settlements (
    stag_id BLOB PRIMARY KEY,
    certificate_digest BLOB NOT NULL,
    settled_at_millis INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS submission_fees (
    intendo_id BLOB PRIMARY KEY,
    stag_id BLOB NOT NULL,
    amount INTEGER NOT NULL
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
    """Every unit that entered and left the ledger, and what its accounts and pools hold."""

    deposited: int
    released: int
    held: int  # the sum of all balances (fees included: they are credited to accounts)
    pooled: int  # what open refund pools hold

    @property
    def conserved(self) -> bool:
        return self.deposited == self.held + self.pooled + self.released


class SqliteLedger:
    """The default executor: hunts, executions and escrow accounts in one SQLite database."""

    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    def check_spec(self, spec: StagSpec) -> None:
        if spec.hook:
            raise InvalidInput("a hook is a contract the chain executor calls: this deployment settles in its SQLite ledger")

    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        return self.execute_bundle([(spec, certificate)])

    def execute_bundle(self, hunts: Sequence[tuple[StagSpec, HuntCertificate]]) -> bool:
        digests = bundle_digests(hunts)
        at = now_millis()
        with self._database.transaction() as connection:
            marks = "?, " * (len(digests) - 1) + "?"
            applied = {
                blob(row[0]): (blob(row[1]), integer(row[2]))
                for row in connection.execute(f"SELECT hunt, root, position FROM bundles WHERE hunt IN ({marks})", digests)
            }
            if applied:
                if applied == {digest: (digests[0], position) for position, digest in enumerate(digests)}:
                    return False  # the same bundle, applied before
                raise IntegrityFailure("part of this bundle was already executed, alone or in another bundle")
            for position, (spec, certificate) in enumerate(hunts):
                self._check_cause(connection, hunts, position)
                self._apply_hunt(connection, spec, certificate, at)
                outcome = certificate.outcome
                connection.execute(
                    "INSERT INTO bundles VALUES (?, ?, ?, ?, ?)", (digests[position], digests[0], position, outcome.stag_id, outcome.epoch)
                )
        return True

    def executed(self, outcome_digest: bytes) -> bool:
        return self._database.query_one("SELECT 1 FROM bundles WHERE hunt = ?", (outcome_digest,)) is not None

    def bundles(self) -> list[tuple[tuple[bytes, int], ...]]:
        """Every bundle applied, in order: the (stag id, epoch) of each of its hunts, root first."""
        rows = self._database.query("SELECT root, stag_id, epoch FROM bundles ORDER BY rowid")
        grouped: dict[bytes, list[tuple[bytes, int]]] = {}
        for row in rows:
            grouped.setdefault(blob(row[0]), []).append((blob(row[1]), integer(row[2])))
        return [tuple(hunts) for hunts in grouped.values()]

    @staticmethod
    def _check_cause(connection: sqlite3.Connection, hunts: Sequence[tuple[StagSpec, HuntCertificate]], position: int) -> None:
        """The bundle's first hunt names no cause or one already executed; every later hunt
        names an earlier hunt of the bundle — of the stag its spec names as trigger."""
        spec, certificate = hunts[position]
        outcome = certificate.outcome
        where = f"the hunt of stag {outcome.stag_id.hex()[:12]} at epoch {outcome.epoch}"
        if position == 0:
            if not outcome.cause:
                return
            row = connection.execute("SELECT stag_id FROM bundles WHERE hunt = ?", (outcome.cause,)).fetchone()
            if row is None:
                raise IntegrityFailure(f"{where} fired on a trigger hunt that has not executed: it executes in that hunt's bundle")
            cause_stag = blob(row[0])
        else:
            earlier = {c.outcome.digest(): c.outcome.stag_id for _, c in hunts[:position]}
            if outcome.cause not in earlier:
                raise IntegrityFailure(
                    f"{where} does not name a hunt of this bundle as its cause: a bundle holds one hunt and the hunts that fired on it"
                )
            cause_stag = earlier[outcome.cause]
        if cause_stag != spec.trigger:
            raise IntegrityFailure(f"{where} names a hunt of stag {cause_stag.hex()[:12]} as its cause, which is not its trigger")

    def _apply_hunt(self, connection: sqlite3.Connection, spec: StagSpec, certificate: HuntCertificate, at: int) -> None:
        """Record one hunt and move its money, inside the bundle's transaction."""
        outcome = certificate.outcome
        digest = outcome.digest()
        existing = connection.execute(
            "SELECT certificate_digest FROM hunts WHERE stag_id = ? AND epoch = ?", (outcome.stag_id, outcome.epoch)
        ).fetchone()
        if existing is not None:
            raise IntegrityFailure("a different hunt was already executed for this stag and epoch")
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
            member_fee = spec.fees.member if spec.fees is not None else 0
            total = 0
            for member in outcome.members:
                statement = member.statement
                payer = Account(statement.participant, statement.capital_tag)
                _move(connection, payer, -statement.weight, "paid", digest, at)
                if member_fee:
                    _move(connection, payer, -member_fee, "fee", digest, at)
                total += statement.weight
            if total:
                _move(connection, spec.beneficiary, total, "received", digest, at)
            if spec.fees is not None:
                _credit_fee(connection, spec, member_fee * len(outcome.members), digest, at)
            if spec.refund is not None:  # the stag hunted: no refund will ever be due
                pool = _pool(connection, outcome.stag_id)
                if pool is not None and pool.state == "open":
                    _close_pool(connection, outcome.stag_id, "returned")
                    if pool.remaining:
                        _move(connection, spec.refund.returns_to, pool.remaining, "returned", outcome.stag_id, at)

    def fund_pool(self, spec: StagSpec, held: int, at_millis: int) -> Pool:
        refund = spec.refund
        if refund is None:
            raise InvalidInput("the stag has no refund pool")
        with self._database.transaction() as connection:
            existing = _pool(connection, spec.stag_id)
            if existing is not None and existing.state == "open":
                return existing  # a retried creation: funded once
            if existing is not None:
                raise InvalidInput(
                    "this stag's refund pool was returned after a creation that did not finish: create the stag "
                    "again with a new nonce"
                )
            balance = _balance(connection, refund.funder)
            if balance - refund.pool < held:
                raise InsufficientFunds(
                    f"the funder's account {refund.funder.describe()} holds {balance}"
                    + (f", of which {held} backs live intendos" if held else "")
                    + f": it cannot fund a refund pool of {refund.pool}; deposit first"
                )
            _move(connection, refund.funder, -refund.pool, "pool", spec.stag_id, at_millis)
            connection.execute(
                "INSERT INTO pools VALUES (?, ?, ?, 'open', ?, ?)",
                (spec.stag_id, refund.pool, refund.pool, refund.funder.owner, refund.funder.tag),
            )
        return Pool(refund.pool, refund.pool, "open")

    def open_pools(self) -> list[bytes]:
        return [blob(row[0]) for row in self._database.query("SELECT stag_id FROM pools WHERE state = 'open'")]

    def return_pool(self, stag_id: bytes) -> int:
        at = now_millis()
        with self._database.transaction() as connection:
            row = connection.execute(
                "SELECT remaining, funder_owner, funder_tag FROM pools WHERE stag_id = ? AND state = 'open'", (stag_id,)
            ).fetchone()
            if row is None:
                return 0
            _close_pool(connection, stag_id, "returned")
            remaining = integer(row[0])
            if remaining:
                _move(connection, Account(blob(row[1]), text(row[2])), remaining, "returned", stag_id, at)
        return remaining

    def settle(self, spec: StagSpec, certificate: SettlementCertificate) -> bool:
        outcome = certificate.outcome
        digest = outcome.digest()
        if spec.refund is None or outcome.stag_id != spec.stag_id:
            raise InvalidInput("the settlement is not of this refund stag")
        at = now_millis()
        with self._database.transaction() as connection:
            existing = connection.execute("SELECT certificate_digest FROM settlements WHERE stag_id = ?", (outcome.stag_id,)).fetchone()
            if existing is not None:
                if blob(existing[0]) != digest:
                    raise IntegrityFailure("a different settlement was already applied for this stag")
                return False
            pool = _pool(connection, outcome.stag_id)
            if pool is None or pool.state != "open":
                raise IntegrityFailure(f"the stag's refund pool is {'missing' if pool is None else pool.state}: nothing to settle")
            if sum(refund.amount for refund in outcome.refunds) + outcome.returned != pool.remaining:
                raise IntegrityFailure("the settlement does not add up to the pool")
            connection.execute("INSERT INTO settlements VALUES (?, ?, ?)", (outcome.stag_id, digest, at))
            _close_pool(connection, outcome.stag_id, "settled")
            for refund in outcome.refunds:
                if refund.amount:
                    _move(connection, refund.account, refund.amount, "bonus", digest, at)
            if outcome.returned:
                _move(connection, spec.refund.returns_to, outcome.returned, "returned", digest, at)
        return True

    def charge_submission(self, spec: StagSpec, envelope: IntendoEnvelope, at_millis: int) -> bool:
        fee = spec.fees.submission if spec.fees is not None else 0
        if not fee:
            return False
        statement = envelope.statement
        with self._database.transaction() as connection:
            try:
                connection.execute("INSERT INTO submission_fees VALUES (?, ?, ?)", (envelope.intendo_id, spec.stag_id, fee))
            except sqlite3.IntegrityError:
                return False  # charged once
            _move(connection, Account(statement.participant, statement.capital_tag), -fee, "fee", envelope.intendo_id, at_millis)
            _credit_fee(connection, spec, fee, envelope.intendo_id, at_millis)
        return True

    def pool(self, stag_id: bytes) -> Pool | None:
        row = self._database.query_one(_POOL, (stag_id,))
        return None if row is None else Pool(integer(row[0]), integer(row[1]), text(row[2]))

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
            pooled=total("SELECT SUM(remaining) FROM pools WHERE state = 'open'"),
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


_POOL = "SELECT funded, remaining, state FROM pools WHERE stag_id = ?"


def _pool(connection: sqlite3.Connection, stag_id: bytes) -> Pool | None:
    row = connection.execute(_POOL, (stag_id,)).fetchone()
    return None if row is None else Pool(integer(row[0]), integer(row[1]), text(row[2]))


def _close_pool(connection: sqlite3.Connection, stag_id: bytes, state: str) -> None:
    connection.execute("UPDATE pools SET remaining = 0, state = ? WHERE stag_id = ?", (state, stag_id))


def _credit_fee(connection: sqlite3.Connection, spec: StagSpec, fee: int, reference: bytes, at_millis: int) -> None:
    """Split a fee charged in one action between the committee's and the operator's accounts."""
    assert spec.fees is not None
    for account, part in zip((spec.fees.committee, spec.fees.operator), spec.fees.split(fee)):
        if part:
            _move(connection, account, part, "fee-income", reference, at_millis)


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
