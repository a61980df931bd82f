"""A market of capital stags in one in-process deployment, every write mirrored in the plaintext
reference (`stagpack.solver.market.MarketReference`): shared by the protocol tests of capital
across stags (tests/protocol/test_capital_market.py) and of composed hunts
(tests/protocol/test_composed_hunts.py); holds no tests.

After each epoch `Market.run_epoch` checks the deployment against the reference: every hunt
(level and members), every intendo's status, every account's balance and hold, every refund
pool, every bundle the ledger executed (the (stag, epoch) of each of its hunts, in order), and
that the ledger conserves money.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pytest

from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.app.inprocess import InProcessDeployment
from stagpack.committee import CommitteeInfo
from stagpack.edge.chain import ChainLedger
from stagpack.edge.ledger import SqliteLedger
from stagpack.encoding import StagKind, Threshold
from stagpack.aggregator.sessions import SessionProgress, SessionRunner
from stagpack.errors import CommitteeUnavailable, StagpackError, WrongPhase
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate
from stagpack.participant.sdk import prepare_intendo, prepare_withdrawal, sign_pool_funding
from stagpack.session import SessionRef
from stagpack.solver.market import Fees, MarketReference, Refunds
from stagpack.stag import ManualClock, StagSpec
from stagpack.terms import FeeTerms, RefundMode, RefundTerms

from support.protocol import HOUR

EPOCH_MILLIS = 1_000
LEVELS = 24
STATUSES = {
    "awaiting-validation": "live", "counted": "live", "executed": "executed", "withdrawn": "withdrawn", "voided": "voided",
    "refunded": "refunded",
}


@dataclass
class Market:
    """Capital stags of one deployment, every write mirrored in the plaintext reference."""

    deployment: InProcessDeployment
    clock: ManualClock
    reference: MarketReference = field(default_factory=MarketReference)
    stags: list[StagSpec] = field(default_factory=list)
    intendos: dict[bytes, tuple[bytes, SigningIdentity]] = field(default_factory=dict)  # id -> (stag id, signer)
    accounts: set[Account] = field(default_factory=set)
    before: tuple[int, int, int] = (0, 0, 0)  # the ledger's (deposited, released, pooled) when this market began

    def __post_init__(self) -> None:
        totals = self.deployment.ledger.totals()  # a module's tests share the ledger: compare what this market moved
        self.before = (totals.deposited, totals.released, totals.pooled)

    @property
    def aggregator(self):  # type: ignore[no-untyped-def]
        return self.deployment.aggregator

    def create(
        self, *, last_epoch: int = 0, pool: int = 0, bonus: int = 0, fees: tuple[int, int] | None = None, opens: int | None = None,
        trigger: StagSpec | None = None, levels: int = LEVELS,
    ) -> StagSpec:
        """A capital stag opening now (or at `opens`). `last_epoch`: its deadline falls half an
        epoch after that epoch is due; `pool`: a refund pool its creator deposits and funds
        (`bonus` per intendo, or pro rata when 0); `fees`: (per submission, per member);
        `trigger`: the stag whose first hunt arms it."""
        beneficiary = Account(SigningIdentity().verify_key, "fund")
        opens = self.clock() if opens is None else opens
        refund = funder = None
        if pool:
            creator = SigningIdentity()
            funder = Account(creator.verify_key, "bonus-pool")
            self.deposit(creator, funder.tag, pool)
            refund = RefundTerms(funder, pool, RefundMode.FIXED if bonus else RefundMode.PRO_RATA, bonus, funder)
        fee_terms = None
        if fees is not None:
            fee_terms = FeeTerms(fees[0], fees[1], Account(SigningIdentity().verify_key, "fees"), Account(SigningIdentity().verify_key, "fees"), 30)
            self.accounts.update((fee_terms.committee, fee_terms.operator))
        spec = StagSpec.new(
            committee=self.aggregator.committee.committee_id, kind=StagKind.CAPITAL, levels=levels,
            epoch_millis=EPOCH_MILLIS, opens_at_millis=opens, beneficiary=beneficiary,
            deadline_millis=opens + last_epoch * EPOCH_MILLIS + EPOCH_MILLIS // 2 if last_epoch else 0,
            refund=refund, fees=fee_terms, trigger=b"" if trigger is None else trigger.stag_id,
        )
        self.aggregator.create_stag(spec, sign_pool_funding(creator, spec) if pool else b"")
        self.reference.create_stag(
            spec.stag_id, levels, beneficiary, last_epoch=last_epoch, trigger=None if trigger is None else trigger.stag_id,
            refunds=Refunds(funder, pool, bonus, funder) if funder is not None else None,
            fees=Fees(fee_terms.submission, fee_terms.member, fee_terms.committee, fee_terms.operator, 30) if fee_terms else None,
        )
        self.stags.append(spec)
        self.accounts.add(beneficiary)
        return spec

    def signed(self, person: SigningIdentity, kind: TransferKind, tag: str, amount: int) -> Transfer:
        return Transfer.sign(person, self.aggregator.committee.committee_id, kind, tag, amount, self.clock() + HOUR)

    def deposit(self, person: SigningIdentity, tag: str, amount: int) -> None:
        self.aggregator.transfer(self.signed(person, TransferKind.DEPOSIT, tag, amount))
        self.reference.deposit(Account(person.verify_key, tag), amount)
        self.accounts.add(Account(person.verify_key, tag))

    def release(self, person: SigningIdentity, tag: str, amount: int) -> bool:
        """Both refuse or both apply."""
        account = Account(person.verify_key, tag)
        try:
            self.reference.release(account, amount)
        except StagpackError:
            with pytest.raises(WrongPhase):
                self.aggregator.transfer(self.signed(person, TransferKind.RELEASE, tag, amount))
            return False
        self.aggregator.transfer(self.signed(person, TransferKind.RELEASE, tag, amount))
        return True

    def submit(self, spec: StagSpec, person: SigningIdentity, tag: str, weight: int, total: int) -> bytes | None:
        """Submit; the reference and the aggregator must agree on whether escrow admits it."""
        context = self.deployment.context
        prepared = prepare_intendo(
            context, context.joint_key, spec, person, Threshold.capital(weight, total, levels=spec.levels), capital_tag=tag
        )
        try:
            self.reference.submit(spec.stag_id, prepared.intendo_id, Account(person.verify_key, tag), total, weight)
        except StagpackError as expected:
            with pytest.raises(type(expected)):
                self.aggregator.submit(prepared.envelope, prepared.ciphertext)
            return None
        self.aggregator.submit(prepared.envelope, prepared.ciphertext)
        self.intendos[prepared.intendo_id] = (spec.stag_id, person)
        return prepared.intendo_id

    def withdraw(self, intendo_id: bytes) -> bool:
        """Both refuse (after the deadline) or both apply."""
        stag_id, person = self.intendos[intendo_id]
        withdrawal = prepare_withdrawal(person, stag_id, intendo_id)
        try:
            self.reference.withdraw(intendo_id)
        except StagpackError as expected:
            with pytest.raises(type(expected)):
                self.aggregator.withdraw(withdrawal)
            return False
        self.aggregator.withdraw(withdrawal)
        return True

    def run_epoch(self) -> dict[bytes, HuntCertificate | None]:
        """One epoch of every stag in creation order (as the scheduler runs them), checked
        against the reference: hunts, statuses, balances, conservation."""
        self.clock.advance(EPOCH_MILLIS)
        epoch = self.stags[0].current_epoch(self.clock())
        for spec in self.stags:
            self.aggregator.run_due(spec.stag_id)
        expected = self.reference.epoch(epoch)
        certified: dict[bytes, HuntCertificate | None] = {}
        for spec in self.stags:
            hunts = [c for c in self.aggregator.hunts(spec.stag_id) if c.outcome.epoch == epoch]
            hunt = expected[spec.stag_id]
            if hunt is None:
                assert hunts == [], (epoch, spec.title)
                certified[spec.stag_id] = None
                continue
            (certificate,) = hunts
            assert (certificate.outcome.level, certificate.outcome.member_ids) == (hunt.level, hunt.members)
            certified[spec.stag_id] = certificate
        for intendo_id, (stag_id, _) in self.intendos.items():
            status = self.aggregator.intendo(stag_id, intendo_id).status.value
            assert STATUSES[status] == self.reference.status(intendo_id), (intendo_id.hex()[:8], status, self.reference.status(intendo_id), epoch)
        ledger = self.deployment.ledger
        for account in self.accounts:
            assert ledger.balance(account) == self.reference.balance(account), account.describe()
            balance = self.aggregator.balance(account)
            assert balance.held == self.reference.held(account)
        for spec in self.stags:
            pool = ledger.pool(spec.stag_id)
            assert (pool.remaining if pool is not None else 0) == self.reference.pool(spec.stag_id)
        mine = {spec.stag_id for spec in self.stags}  # the module's other tests share the ledger
        bundles = [bundle for bundle in ledger.bundles() if bundle[0][0] in mine]
        assert bundles == self.reference.bundles, (bundles, self.reference.bundles)
        if isinstance(ledger, ChainMirroredLedger):  # the settlement contract agrees too
            chain = ledger.chain
            assert [bundle for bundle in chain.bundles() if bundle[0][0] in mine] == self.reference.bundles
            for account in self.accounts:
                assert chain.balance(account) == self.reference.balance(account), account.describe()
            assert chain.totals().conserved
        totals = ledger.totals()
        assert totals.conserved and self.reference.conserved
        moved = (totals.deposited - self.before[0], totals.released - self.before[1], totals.pooled - self.before[2])
        assert moved == (self.reference.deposited, self.reference.released, self.reference.pooled)
        return certified


class ChainMirroredLedger(SqliteLedger):
    """The SQLite ledger, with every bundle, deposit and release applied to the committee's
    settlement contract as well (on an embedded EVM): one encrypted run checks both executors
    against the reference (`Market.run_epoch`). Both must accept or refuse alike."""

    def __init__(self, directory: Path, committee: CommitteeInfo) -> None:
        super().__init__(directory / "ledger.db")
        self.chain = ChainLedger.embedded(committee)

    def check_spec(self, spec: StagSpec) -> None:
        super().check_spec(spec)
        self.chain.check_spec(spec)

    def execute_bundle(self, hunts: Sequence[tuple[StagSpec, HuntCertificate]]) -> bool:
        applied = super().execute_bundle(hunts)
        assert self.chain.execute_bundle(hunts) is applied
        return applied

    def transfer(self, transfer: Transfer, held: int, at_millis: int) -> int:
        balance = super().transfer(transfer, held, at_millis)
        statement = transfer.statement
        if statement.kind is TransferKind.DEPOSIT:  # a payment into the contract, from a funded EVM account
            self.chain.deposit(statement.account, statement.amount, self.chain.web3.eth.accounts[1])
        else:
            self.chain.transfer(transfer, held, at_millis)
        return balance


@dataclass
class RandomRun:
    """A seeded population acting on a `Market` at random: eight people with one or two escrow
    accounts each, who submit, withdraw, release and deposit between epochs — in the deployment
    and the reference alike (the run depends on the seed only, never on stag ids)."""

    world: Market
    rng: random.Random
    people: list[SigningIdentity]
    tags: dict[bytes, list[str]]  # person -> the tags of their accounts
    live: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)  # (person, stag) -> live intendo
    actions: dict[tuple[bytes, bytes], int] = field(default_factory=lambda: defaultdict(int))  # submissions and withdrawals

    @classmethod
    def start(cls, world: Market, rng: random.Random, deposit: tuple[int, int]) -> RandomRun:
        people = [SigningIdentity(rng.randbytes(32)) for _ in range(8)]
        tags = {person.verify_key: ["main"] + (["side"] if rng.random() < 0.5 else []) for person in people}
        for person in people:
            for tag in tags[person.verify_key]:
                world.deposit(person, tag, rng.randint(*deposit))
        return cls(world, rng, people, tags)

    def submissions(self, stags: list[StagSpec], count: tuple[int, int], terms: Callable[[StagSpec], tuple[int, int]]) -> None:
        """Between `count` attempts: a random person submits to a random stag (unless they are
        live there or used three actions) from a random account, (weight, total) = terms(stag)."""
        rng = self.rng
        for _ in range(rng.randint(*count)):
            person, spec = rng.choice(self.people), rng.choice(stags)
            key = (person.verify_key, spec.stag_id)
            if key in self.live or self.actions[key] >= 3:
                continue
            tag = rng.choice(self.tags[person.verify_key])
            weight, total = terms(spec)
            intendo = self.world.submit(spec, person, tag, weight, total)
            self.actions[key] += 1
            if intendo is not None:
                self.live[key] = intendo

    def churn(self, withdraw_chance: float, release_max: int) -> None:
        """Perhaps one live intendo is withdrawn; someone releases from an account, someone deposits."""
        rng = self.rng
        if self.live and rng.random() < withdraw_chance:
            key = rng.choice(list(self.live))  # insertion order: stag ids are random, the run must not depend on them
            if self.world.reference.status(self.live[key]) == "live" and self.world.withdraw(self.live[key]):
                del self.live[key]
                self.actions[key] += 1
        person = rng.choice(self.people)
        self.world.release(person, rng.choice(self.tags[person.verify_key]), rng.randint(1, release_max))
        self.world.deposit(rng.choice(self.people), "main", rng.randint(1, 3))

    def closed(self) -> list[str]:
        """Forget the live intendos the last epoch closed; their statuses (executed, voided, …)."""
        statuses = []
        for key, intendo in list(self.live.items()):
            status = self.world.reference.status(intendo)
            if status != "live":
                statuses.append(status)
                del self.live[key]
        return statuses


def withhold_certification(monkeypatch: pytest.MonkeyPatch, reason: str, withheld: Callable[[SessionRef], bool]) -> Callable[..., object]:
    """Make the aggregator's certification of the sessions `withheld` selects fail with
    CommitteeUnavailable(`reason`) (an operator or an outage stopping there); returns the real
    `SessionRunner._certify`, to put back."""
    certify: Callable[..., object] = SessionRunner._certify

    def withholding(self: SessionRunner, progress: SessionProgress, *args: object) -> object:
        if withheld(progress.session):
            raise CommitteeUnavailable(reason)
        return certify(self, progress, *args)

    monkeypatch.setattr(SessionRunner, "_certify", withholding)
    return certify
