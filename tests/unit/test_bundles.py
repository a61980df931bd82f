"""Atomic bundles of composed hunts in the SQLite ledger (DESIGN.md §10.2).

A bundle is a trigger's hunt with the hunts that fired on it: the ledger applies it in one
transaction or not at all, and refuses (changing nothing) a bundle whose hunts do not hang
together — a dependent naming a hunt outside the bundle, or a hunt of a stag other than its
trigger, as its cause; a hunt whose cause has not executed; part of a bundle already applied.
The oracle is a dict of balances kept beside the ledger, and the ledger's own totals.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import IntegrityFailure, InvalidInput
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate, HuntOutcome
from stagpack.stag import StagSpec

NOW = 1_790_000_000_000
LATER = NOW + 3_600_000


def deposit(identity: SigningIdentity, amount: int) -> Transfer:
    return Transfer.sign(identity, bytes(32), TransferKind.DEPOSIT, "main", amount, LATER)


def stag(trigger: StagSpec | None = None) -> StagSpec:
    beneficiary = Account(SigningIdentity().verify_key, "fund")
    return StagSpec.new(
        committee=bytes(32), kind=StagKind.CAPITAL, levels=100, epoch_millis=1000, beneficiary=beneficiary,
        trigger=b"" if trigger is None else trigger.stag_id,
    )


def hunt(spec: StagSpec, member: SigningIdentity, weight: int, cause: HuntCertificate | None = None, epoch: int = 1) -> HuntCertificate:
    """A first hunt of `spec` with one member (account "main"); `cause`: the hunt it fired on.
    The ledger does not check signatures (the aggregator hands it verified certificates)."""
    envelope = IntendoEnvelope.sign(member, spec.stag_id, os.urandom(32), weight, LATER, "main")
    outcome = HuntOutcome(
        spec.stag_id, epoch, 10, os.urandom(32), weight, 0, (envelope,), b"" if cause is None else cause.outcome.digest()
    )
    return HuntCertificate(outcome, ())


class Market:
    """Three stags in a chain (root → middle → leaf) and a stray one, with a funded member each."""

    def __init__(self, ledger: SqliteLedger) -> None:
        self.ledger = ledger
        self.root = stag()
        self.middle = stag(self.root)
        self.leaf = stag(self.middle)
        self.stray = stag()
        self.people = [SigningIdentity() for _ in range(4)]
        for person in self.people:
            ledger.transfer(deposit(person, 5), 0, NOW)
        self.balances = {self.account(i): 5 for i in range(4)}

    def account(self, index: int) -> Account:
        return Account(self.people[index].verify_key, "main")

    def unchanged(self) -> None:
        for account, balance in self.balances.items():
            assert self.ledger.balance(account) == balance
        assert self.ledger.totals().conserved


@pytest.fixture
def market(tmp_path: Path) -> Market:
    return Market(SqliteLedger(tmp_path / "ledger.db"))


def test_a_bundle_executes_in_one_transaction_and_once(market: Market) -> None:
    root = hunt(market.root, market.people[0], 2)
    middle = hunt(market.middle, market.people[1], 3, cause=root)
    leaf = hunt(market.leaf, market.people[2], 4, cause=middle)
    bundle = [(market.root, root), (market.middle, middle), (market.leaf, leaf)]
    assert market.ledger.execute_bundle(bundle) is True
    assert market.ledger.execute_bundle(bundle) is False  # a retry changes nothing
    assert [market.ledger.balance(market.account(i)) for i in range(3)] == [3, 2, 1]
    assert [market.ledger.balance(spec.beneficiary) for spec in (market.root, market.middle, market.leaf)] == [2, 3, 4]  # type: ignore[arg-type]
    assert market.ledger.bundles()[-1] == ((market.root.stag_id, 1), (market.middle.stag_id, 1), (market.leaf.stag_id, 1))
    assert all(market.ledger.executed(c.outcome.digest()) for _, c in bundle)
    later = hunt(market.leaf, market.people[3], 1, epoch=2)  # a later hunt of a dependent executes alone
    assert market.ledger.execute(market.leaf, dataclasses.replace(later, outcome=dataclasses.replace(later.outcome, executed_weight=4, level=5)))


def test_a_bundle_one_account_cannot_pay_applies_nothing(market: Market) -> None:
    root = hunt(market.root, market.people[0], 2)
    middle = hunt(market.middle, market.people[1], 6, cause=root)  # holds 5
    with pytest.raises(IntegrityFailure, match="cannot pay 6"):
        market.ledger.execute_bundle([(market.root, root), (market.middle, middle)])
    market.unchanged()
    assert not market.ledger.executed(root.outcome.digest())


def test_a_dependent_naming_another_trigger_is_refused(market: Market) -> None:
    """The operator bundles a root with a dependent certificate that fired on another hunt —
    one outside the bundle, or one of a stag that is not its trigger."""
    root = hunt(market.root, market.people[0], 2)
    stray = hunt(market.stray, market.people[3], 1)
    elsewhere = hunt(market.middle, market.people[1], 3, cause=stray)
    with pytest.raises(IntegrityFailure, match="does not name a hunt of this bundle"):
        market.ledger.execute_bundle([(market.root, root), (market.middle, elsewhere)])
    wrong_trigger = hunt(market.leaf, market.people[2], 4, cause=root)  # the leaf's trigger is the middle stag
    with pytest.raises(IntegrityFailure, match="not its trigger"):
        market.ledger.execute_bundle([(market.root, root), (market.leaf, wrong_trigger)])
    uncaused = hunt(market.middle, market.people[1], 3)
    with pytest.raises(IntegrityFailure, match="does not name a hunt of this bundle"):
        market.ledger.execute_bundle([(market.root, root), (market.middle, uncaused)])
    market.unchanged()


def test_a_dependent_alone_waits_for_its_cause(market: Market) -> None:
    root = hunt(market.root, market.people[0], 2)
    middle = hunt(market.middle, market.people[1], 3, cause=root)
    with pytest.raises(IntegrityFailure, match="has not executed"):
        market.ledger.execute(market.middle, middle)
    market.unchanged()
    assert market.ledger.execute(market.root, root)
    assert market.ledger.execute(market.middle, middle)  # once its cause executed, alone is fine


def test_part_of_an_applied_bundle_cannot_be_applied_again_elsewhere(market: Market) -> None:
    root = hunt(market.root, market.people[0], 2)
    middle = hunt(market.middle, market.people[1], 3, cause=root)
    leaf = hunt(market.leaf, market.people[2], 4, cause=middle)
    market.ledger.execute_bundle([(market.root, root), (market.middle, middle)])
    after = {account: market.ledger.balance(account) for account in market.balances}
    with pytest.raises(IntegrityFailure, match="already executed"):
        market.ledger.execute_bundle([(market.root, root), (market.middle, middle), (market.leaf, leaf)])
    assert {account: market.ledger.balance(account) for account in market.balances} == after


def test_malformed_bundles_are_refused(market: Market) -> None:
    root = hunt(market.root, market.people[0], 2)
    with pytest.raises(InvalidInput, match="empty"):
        market.ledger.execute_bundle([])
    with pytest.raises(InvalidInput, match="twice"):
        market.ledger.execute_bundle([(market.root, root), (market.root, root)])
    with pytest.raises(InvalidInput, match="another stag's spec"):
        market.ledger.execute_bundle([(market.stray, root)])
    market.unchanged()
