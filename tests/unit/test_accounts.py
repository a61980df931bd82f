"""Escrow accounts in the SQLite ledger (stagpack.accounts, stagpack.edge.ledger).

The oracle is a plain dict of balances kept beside the ledger: after every operation, accepted
or refused, every account the test touched must hold what the dict says, and the ledger's own
totals must conserve money (deposited = held + released). Refused operations change nothing.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagpack.accounts import MAX_AMOUNT, Account, Transfer, TransferKind, check_tag
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import AlreadyExists, InsufficientFunds, IntegrityFailure, InvalidInput, InvalidSignature
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate, HuntOutcome
from stagpack.stag import StagSpec

NOW = 1_790_000_000_000
LATER = NOW + 3_600_000
COMMITTEE = bytes(range(32))
DEPOSIT, RELEASE = TransferKind.DEPOSIT, TransferKind.RELEASE


def transfer(identity: SigningIdentity, kind: TransferKind, amount: int, tag: str = "main") -> Transfer:
    transfer = Transfer.sign(identity, COMMITTEE, kind, tag, amount, LATER)
    transfer.verify(NOW, COMMITTEE)
    return transfer


def capital_spec(beneficiary: Account) -> StagSpec:
    return StagSpec.new(committee=bytes(32), kind=StagKind.CAPITAL, levels=100, epoch_millis=1000, beneficiary=beneficiary)


def hunt(spec: StagSpec, epoch: int, members: list[tuple[SigningIdentity, int, str]]) -> HuntCertificate:
    """A hunt certificate of `spec` whose members commit (weight, tag); the ledger does not check
    signatures (the aggregator hands it verified certificates), so none are made."""
    envelopes = tuple(
        IntendoEnvelope.sign(identity, spec.stag_id, os.urandom(32), weight, LATER, tag) for identity, weight, tag in members
    )
    total = sum(weight for _, weight, _ in members)
    return HuntCertificate(HuntOutcome(spec.stag_id, epoch, 10, os.urandom(32), total, 0, envelopes), ())


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.db")


def test_deposits_and_releases_move_exactly_their_amounts(ledger: SqliteLedger) -> None:
    alice = SigningIdentity()
    account = Account(alice.verify_key, "main")
    assert ledger.balance(account) == 0
    assert ledger.transfer(transfer(alice, DEPOSIT, 70), 0, NOW) == 70
    assert ledger.transfer(transfer(alice, DEPOSIT, 30), 0, NOW) == 100
    assert ledger.transfer(transfer(alice, RELEASE, 40), 0, NOW) == 60
    assert ledger.balance(Account(alice.verify_key, "other")) == 0  # tags are separate accounts
    assert ledger.movements(account) == [("deposit", 70), ("deposit", 30), ("release", 40)]
    totals = ledger.totals()
    assert (totals.deposited, totals.released, totals.held, totals.conserved) == (100, 40, 60, True)


def test_refused_transfers_change_nothing(ledger: SqliteLedger) -> None:
    alice, mallory = SigningIdentity(), SigningIdentity()
    account = Account(alice.verify_key, "main")
    deposit = transfer(alice, DEPOSIT, 50)
    ledger.transfer(deposit, 0, NOW)
    with pytest.raises(AlreadyExists, match="replay"):
        ledger.transfer(deposit, 0, NOW)
    with pytest.raises(InsufficientFunds, match="at most 50"):
        ledger.transfer(transfer(alice, RELEASE, 51), 0, NOW)
    with pytest.raises(InsufficientFunds, match="20 backs a live intendo: at most 30"):
        ledger.transfer(transfer(alice, RELEASE, 31), 20, NOW)
    ledger.transfer(transfer(alice, DEPOSIT, MAX_AMOUNT - 50), 0, NOW)
    with pytest.raises(InvalidInput, match="more than"):
        ledger.transfer(transfer(alice, DEPOSIT, 1), 0, NOW)
    assert ledger.balance(account) == MAX_AMOUNT
    # a release refused for want of money does not burn its nonce: signed again later, it applies
    release = transfer(alice, RELEASE, 10)
    with pytest.raises(InsufficientFunds):
        ledger.transfer(release, MAX_AMOUNT, NOW)
    assert ledger.transfer(release, 0, NOW) == MAX_AMOUNT - 10
    # what is signed is what moves: another owner's key, another amount, an expired statement
    stolen = dataclasses.replace(release, statement=dataclasses.replace(release.statement, account=Account(mallory.verify_key, "main")))
    with pytest.raises(InvalidSignature):
        stolen.verify(NOW, COMMITTEE)
    inflated = dataclasses.replace(release, statement=dataclasses.replace(release.statement, amount=1000))
    with pytest.raises(InvalidSignature):
        inflated.verify(NOW, COMMITTEE)
    with pytest.raises(InvalidInput, match="expired"):
        release.verify(LATER + 1, COMMITTEE)
    # a statement moves money in one committee's ledger, and is valid for a day at most
    with pytest.raises(InvalidInput, match="another committee"):
        release.verify(NOW, bytes(32))
    with pytest.raises(InvalidInput, match="more than a day"):
        Transfer.sign(alice, COMMITTEE, RELEASE, "main", 1, NOW + 25 * 3_600_000).verify(NOW, COMMITTEE)
    assert ledger.totals().conserved


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1, 2**64, True])
def test_amounts_outside_the_range_are_refused(amount: int) -> None:
    with pytest.raises(InvalidInput, match="amount|fit 64 bits"):  # 2^64 does not even encode
        Transfer.sign(SigningIdentity(), COMMITTEE, DEPOSIT, "main", amount, LATER).verify(NOW, COMMITTEE)


@pytest.mark.parametrize("tag", ["", "-lead", "a b", "x" * 65, "tab\t", "ünï"])
def test_tags_outside_the_alphabet_are_refused(tag: str) -> None:
    with pytest.raises(InvalidInput, match="tag"):
        check_tag(tag)
    with pytest.raises(InvalidInput, match="tag"):
        Transfer.sign(SigningIdentity(), COMMITTEE, DEPOSIT, tag, 1, LATER).verify(NOW, COMMITTEE)


def test_a_hunt_pays_each_member_weight_to_the_beneficiary_once(ledger: SqliteLedger) -> None:
    alice, bob, fund = SigningIdentity(), SigningIdentity(), SigningIdentity()
    beneficiary = Account(fund.verify_key, "roof")
    spec = capital_spec(beneficiary)
    ledger.transfer(transfer(alice, DEPOSIT, 30, "savings"), 0, NOW)
    ledger.transfer(transfer(bob, DEPOSIT, 12), 0, NOW)
    certificate = hunt(spec, 1, [(alice, 25, "savings"), (bob, 12, "main")])
    assert ledger.execute(spec, certificate) is True
    assert ledger.balance(Account(alice.verify_key, "savings")) == 5
    assert ledger.balance(Account(bob.verify_key, "main")) == 0
    assert ledger.balance(beneficiary) == 37
    assert ledger.execute(spec, certificate) is False  # exactly once
    assert ledger.balance(beneficiary) == 37 and ledger.totals().conserved


def test_a_hunt_an_account_cannot_pay_applies_nothing(ledger: SqliteLedger) -> None:
    alice, bob, fund = SigningIdentity(), SigningIdentity(), SigningIdentity()
    spec = capital_spec(Account(fund.verify_key, "roof"))
    ledger.transfer(transfer(alice, DEPOSIT, 30), 0, NOW)
    ledger.transfer(transfer(bob, DEPOSIT, 5), 0, NOW)
    with pytest.raises(IntegrityFailure, match="cannot pay 6"):
        ledger.execute(spec, hunt(spec, 1, [(alice, 25, "main"), (bob, 6, "main")]))
    assert ledger.hunt_count() == 0 and ledger.executions(spec.stag_id) == []
    assert ledger.balance(Account(alice.verify_key, "main")) == 30  # alice's debit was rolled back
    assert ledger.balance(Account(fund.verify_key, "roof")) == 0


def test_a_count_hunt_moves_no_money(ledger: SqliteLedger) -> None:
    alice = SigningIdentity()
    spec = StagSpec.new(committee=bytes(32), kind=StagKind.COUNT, levels=10, epoch_millis=1000)
    ledger.transfer(transfer(alice, DEPOSIT, 3), 0, NOW)
    assert ledger.execute(spec, hunt(spec, 1, [(alice, 1, "")]))
    assert ledger.balance(Account(alice.verify_key, "main")) == 3 and ledger.totals().held == 3


def test_balances_survive_reopening(tmp_path: Path) -> None:
    alice = SigningIdentity()
    first = SqliteLedger(tmp_path / "ledger.db")
    first.transfer(transfer(alice, DEPOSIT, 9), 0, NOW)
    first.close()
    again = SqliteLedger(tmp_path / "ledger.db")
    assert again.balance(Account(alice.verify_key, "main")) == 9 and again.totals().deposited == 9


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([DEPOSIT, RELEASE]), st.integers(1, 60), st.integers(0, 30)), max_size=25))
def test_random_transfers_agree_with_a_dict_and_conserve_money(operations: list[tuple[int, TransferKind, int, int]]) -> None:
    import tempfile

    owners = [SigningIdentity(bytes([index + 1]) * 32) for index in range(3)]
    model = {index: 0 for index in range(3)}
    with tempfile.TemporaryDirectory() as directory:
        ledger = SqliteLedger(Path(directory) / "ledger.db")
        for owner, kind, amount, held in operations:
            accepted = kind is DEPOSIT or model[owner] - amount >= held
            try:
                ledger.transfer(transfer(owners[owner], kind, amount), held, NOW)
            except InsufficientFunds:
                assert not accepted
            else:
                assert accepted
                model[owner] += amount if kind is DEPOSIT else -amount
            for index, identity in enumerate(owners):
                assert ledger.balance(Account(identity.verify_key, "main")) == model[index]
            assert ledger.totals().conserved
        ledger.close()


def test_random_hunts_and_transfers_conserve_money(ledger: SqliteLedger) -> None:
    """Deposits, releases and hunts in a random order: deposited = held + released throughout,
    and the beneficiary holds what the hunts paid."""
    rng = random.Random(4)
    people = [SigningIdentity() for _ in range(6)]
    fund = Account(SigningIdentity().verify_key, "fund")
    spec = capital_spec(fund)
    paid = 0
    for epoch in range(1, 40):
        person = rng.choice(people)
        balance = ledger.balance(Account(person.verify_key, "main"))
        if rng.random() < 0.5:
            ledger.transfer(transfer(person, DEPOSIT, rng.randint(1, 50)), 0, NOW)
        elif balance and rng.random() < 0.5:
            ledger.transfer(transfer(person, RELEASE, rng.randint(1, balance)), 0, NOW)
        elif balance:
            weight = rng.randint(1, balance)
            ledger.execute(spec, hunt(spec, epoch, [(person, weight, "main")]))
            paid += weight
        totals = ledger.totals()
        assert totals.conserved and ledger.balance(fund) == paid


def test_a_full_beneficiary_account_cannot_make_a_certified_hunt_unpayable(ledger: SqliteLedger) -> None:
    """The creator of a stag fills its beneficiary account to the deposit limit, hoping the
    hunt's payment is refused for size after the hunt is certified (members' escrow would then
    be released while the certificate stands). What a hunt pays is never refused for size."""
    creator, alice = SigningIdentity(), SigningIdentity()
    beneficiary = Account(creator.verify_key, "main")
    spec = capital_spec(beneficiary)
    ledger.transfer(transfer(creator, DEPOSIT, MAX_AMOUNT), 0, NOW)
    ledger.transfer(transfer(alice, DEPOSIT, 5), 0, NOW)
    assert ledger.execute(spec, hunt(spec, 1, [(alice, 5, "main")]))
    assert ledger.balance(beneficiary) == MAX_AMOUNT + 5 and ledger.balance(Account(alice.verify_key, "main")) == 0
    with pytest.raises(InvalidInput, match="deposit less"):
        ledger.transfer(transfer(creator, DEPOSIT, 1), 0, NOW)
    assert ledger.totals().conserved
