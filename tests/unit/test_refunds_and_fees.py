"""Refund pools and fees (DESIGN.md §10.3): the terms in a stag spec, and the SQLite ledger
that funds, settles, returns and charges them.

Oracles: amounts worked by hand, and a plain dict of balances beside the ledger; after every
operation, applied or refused, every account holds what the dict says and the ledger conserves
money (deposited = held + pooled + released). Refused operations change nothing.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate, HuntOutcome, Refund, SettlementCertificate, SettlementOutcome
from stagpack.solver.market import MarketReference, Refunds
from stagpack.stag import StagSpec
from stagpack.terms import FeeTerms, RefundMode, RefundTerms

NOW = 1_790_000_000_000
LATER = NOW + 3_600_000
COMMITTEE = bytes(32)


def account(tag: str = "main") -> Account:
    return Account(SigningIdentity().verify_key, tag)


def refund_spec(terms: RefundTerms | None, fees: FeeTerms | None = None, levels: int = 20) -> StagSpec:
    return StagSpec.new(
        committee=COMMITTEE, kind=StagKind.CAPITAL, levels=levels, epoch_millis=1000, opens_at_millis=NOW,
        deadline_millis=NOW + 10_000, beneficiary=account("fund"), refund=terms, fees=fees,
    )


# --- the terms -------------------------------------------------------------------------------


def test_terms_that_promise_more_than_they_fund_or_make_no_sense_are_refused() -> None:
    funder = account("bonus")
    good = RefundTerms(funder, 38, RefundMode.FIXED, 2, funder)
    refund_spec(good).validate(100, COMMITTEE)  # 2 × 19 possible intendos = 38: funded
    fees = FeeTerms(1, 2, account("fees"), account("fees"), 50)
    for spec, phrase in (
        (refund_spec(dataclasses.replace(good, pool=37)), "pool of at least 38"),
        (refund_spec(RefundTerms(funder, 10, RefundMode.PRO_RATA, 1, funder)), "pro-rata"),
        (refund_spec(dataclasses.replace(good, pool=0)), "refund pool"),
        (refund_spec(dataclasses.replace(good, funder=Account(b"\x01" * 32, "bonus"))), "funder"),
        (dataclasses.replace(refund_spec(good), deadline_millis=0), "needs one"),
        (dataclasses.replace(refund_spec(good), kind=StagKind.COUNT, beneficiary=None), "only a capital stag"),
        (refund_spec(None, dataclasses.replace(fees, submission=0, member=0)), "no fee"),
        (refund_spec(None, dataclasses.replace(fees, committee_percent=101)), "percentage"),
        (refund_spec(None, dataclasses.replace(fees, member=-1)), "member fee"),
        (refund_spec(None, dataclasses.replace(fees, operator=Account(SigningIdentity().verify_key, "bad tag"))), "operator"),
    ):
        with pytest.raises(InvalidInput, match=phrase):
            spec.validate(100, COMMITTEE)


@given(st.lists(st.integers(1, 50), max_size=12), st.integers(1, 10_000))
def test_pro_rata_payouts_share_the_whole_pool_by_weight(weights: list[int], pool: int) -> None:
    """Each gets ⌊pool · w / Σw⌋, nothing is paid twice and the rest (less than one unit per
    intendo) goes back: checked against the plaintext reference's own arithmetic."""
    funder = account()
    terms = RefundTerms(funder, pool, RefundMode.PRO_RATA, 0, funder)
    amounts, returned = terms.payouts(weights)
    assert sum(amounts) + returned == pool and 0 <= returned <= max(len(weights), pool * (not weights))
    reference = MarketReference()
    reference.deposit(funder, pool)
    people = [account() for _ in weights]
    reference.create_stag("s", 1000, account(), last_epoch=1, refunds=Refunds(funder, pool, 0, funder))
    for number, (person, weight) in enumerate(zip(people, weights)):
        reference.deposit(person, weight)
        reference.submit("s", number, person, 999, weight)  # never fires
    reference.epoch(1)
    reference.epoch(2)  # the closing epoch: settles
    assert [reference.balance(person) - weight for person, weight in zip(people, weights)] == list(amounts)
    assert reference.balance(funder) == returned and reference.conserved


def test_fees_split_rounds_the_committee_share_down() -> None:
    fees = FeeTerms(3, 0, account(), account(), 33)
    assert fees.split(3) == (0, 3) and fees.split(10) == (3, 7) and fees.split(100) == (33, 67)


# --- the ledger ------------------------------------------------------------------------------


class Books:
    """The ledger with a dict of expected balances beside it."""

    def __init__(self, path: Path) -> None:
        self.ledger = SqliteLedger(path)
        self.expected: dict[Account, int] = {}
        self.pooled = 0

    def deposit(self, account: Account, identity: SigningIdentity, amount: int) -> None:
        transfer = Transfer.sign(identity, COMMITTEE, TransferKind.DEPOSIT, account.tag, amount, LATER)
        self.ledger.transfer(transfer, 0, NOW)
        self.expected[account] = self.expected.get(account, 0) + amount

    def check(self) -> None:
        for acct, amount in self.expected.items():
            assert self.ledger.balance(acct) == amount, acct.describe()
        totals = self.ledger.totals()
        assert totals.conserved and totals.pooled == self.pooled


def hunt(spec: StagSpec, members: list[tuple[SigningIdentity, int]]) -> HuntCertificate:
    envelopes = tuple(IntendoEnvelope.sign(identity, spec.stag_id, os.urandom(32), weight, LATER, "main") for identity, weight in members)
    return HuntCertificate(HuntOutcome(spec.stag_id, 1, 10, os.urandom(32), sum(w for _, w in members), 0, envelopes), ())


def test_a_pool_is_funded_once_and_never_from_what_live_intendos_hold(tmp_path: Path) -> None:
    books = Books(tmp_path / "ledger.db")
    creator = SigningIdentity()
    funder = Account(creator.verify_key, "bonus")
    spec = refund_spec(RefundTerms(funder, 40, RefundMode.FIXED, 2, funder))
    books.deposit(funder, creator, 50)
    with pytest.raises(InsufficientFunds, match="of which 11 backs live intendos"):
        books.ledger.fund_pool(spec, 11, NOW)
    books.check()
    assert books.ledger.pool(spec.stag_id) is None
    books.ledger.fund_pool(spec, 10, NOW)
    books.ledger.fund_pool(spec, 10, NOW)  # a retried creation: funded once
    books.expected[funder] = 10
    books.pooled = 40
    books.check()
    pool = books.ledger.pool(spec.stag_id)
    assert pool is not None and (pool.funded, pool.remaining, pool.state) == (40, 40, "open")


def test_a_hunt_returns_the_pool_and_charges_member_fees_atomically(tmp_path: Path) -> None:
    """Two members of weights 3 and 4 and a member fee of 2 (committee 50 %): each pays weight
    plus fee, the beneficiary gets 7, the committee and the operator 2 each, the whole pool goes
    back. A member that cannot pay its fee makes the whole hunt apply nothing."""
    books = Books(tmp_path / "ledger.db")
    creator, alice, bob = SigningIdentity(), SigningIdentity(), SigningIdentity()
    funder, committee, operator = Account(creator.verify_key, "bonus"), account("fees"), account("fees")
    fees = FeeTerms(0, 2, committee, operator, 50)
    spec = refund_spec(RefundTerms(funder, 40, RefundMode.FIXED, 2, funder), fees)
    books.deposit(funder, creator, 40)
    books.ledger.fund_pool(spec, 0, NOW)
    books.expected[funder], books.pooled = 0, 40
    alices, bobs = Account(alice.verify_key, "main"), Account(bob.verify_key, "main")
    books.deposit(alices, alice, 5)
    books.deposit(bobs, bob, 5)  # 4 + 2 does not fit
    with pytest.raises(IntegrityFailure, match="cannot pay 2"):
        books.ledger.execute(spec, hunt(spec, [(alice, 3), (bob, 4)]))
    books.check()
    books.deposit(bobs, bob, 1)
    certificate = hunt(spec, [(alice, 3), (bob, 4)])
    assert books.ledger.execute(spec, certificate)
    assert not books.ledger.execute(spec, certificate)  # once
    books.expected.update({alices: 0, bobs: 0, spec.beneficiary: 7, committee: 2, operator: 2, funder: 40})  # type: ignore[dict-item]
    books.pooled = 0
    books.check()
    pool = books.ledger.pool(spec.stag_id)
    assert pool is not None and (pool.remaining, pool.state) == (0, "returned")


def test_a_settlement_pays_its_refunds_once_and_only_from_an_open_pool(tmp_path: Path) -> None:
    books = Books(tmp_path / "ledger.db")
    creator = SigningIdentity()
    funder = Account(creator.verify_key, "bonus")
    back = account("returns")
    spec = refund_spec(RefundTerms(funder, 40, RefundMode.FIXED, 2, back))
    books.deposit(funder, creator, 40)
    books.ledger.fund_pool(spec, 0, NOW)
    books.expected[funder], books.pooled = 0, 40
    alice, bob = account(), account()
    outcome = SettlementOutcome(spec.stag_id, spec.closing_epoch, 9, os.urandom(32), (Refund(b"a" * 32, alice, 2), Refund(b"b" * 32, bob, 2)), 36)
    for bad in (dataclasses.replace(outcome, returned=37), dataclasses.replace(outcome, stag_id=bytes(32))):
        with pytest.raises((IntegrityFailure, InvalidInput)):
            books.ledger.settle(spec, SettlementCertificate(bad, ()))
        books.check()
    assert books.ledger.settle(spec, SettlementCertificate(outcome, ()))
    assert not books.ledger.settle(spec, SettlementCertificate(outcome, ()))
    with pytest.raises(IntegrityFailure, match="different settlement"):
        books.ledger.settle(spec, SettlementCertificate(dataclasses.replace(outcome, head=bytes(32)), ()))
    books.expected.update({alice: 2, bob: 2, back: 36})
    books.pooled = 0
    books.check()
    unfunded = refund_spec(spec.refund)  # never created, so never funded: nothing to pay from
    with pytest.raises(IntegrityFailure, match="missing"):
        books.ledger.settle(unfunded, SettlementCertificate(dataclasses.replace(outcome, stag_id=unfunded.stag_id), ()))
    books.check()


def test_a_submission_fee_is_charged_once_per_intendo(tmp_path: Path) -> None:
    books = Books(tmp_path / "ledger.db")
    alice = SigningIdentity()
    alices, committee, operator = Account(alice.verify_key, "main"), account("fees"), account("fees")
    spec = refund_spec(None, FeeTerms(3, 0, committee, operator, 34))
    books.deposit(alices, alice, 10)
    envelope = IntendoEnvelope.sign(alice, spec.stag_id, os.urandom(32), 4, LATER, "main")
    assert books.ledger.charge_submission(spec, envelope, NOW)
    assert not books.ledger.charge_submission(spec, envelope, NOW)  # charged on restart again: once
    books.expected.update({alices: 7, committee: 1, operator: 2})
    books.check()
    free = refund_spec(None, FeeTerms(0, 5, committee, operator, 34))
    assert not books.ledger.charge_submission(free, envelope, NOW)
    books.check()
