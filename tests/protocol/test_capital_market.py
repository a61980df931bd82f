"""Capital across stags, end to end: escrow, one account backing several stags, voids,
deadlines, dominant-assurance refunds and fees.

The oracle is `solver.market.MarketReference`, the plaintext reference of DESIGN.md §10.1 and
§10.3: a randomized run of several capital stags — some with fees, some with deadlines and
refund pools, some that never fire — whose participants back intendos in more than one stag
with the same escrow account must agree with it exactly after every epoch — every hunt (level
and members), every intendo's status (voided and refunded ones included), every account's
balance (beneficiaries', funders' and fee accounts' too), every refund pool — and the ledger
must conserve money throughout.

The attacks are the operator's: skip the voids so that an account pays twice, or run a second
capital hunt while one that may spend the same accounts is bound but unfinished. Each runs
with the keyholders' escrow rule switched off, where the account is asked to pay twice, and
with it on, where the second hunt waits and nothing is spent twice.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

import pytest

from stagpack.accounts import Account, TransferKind
from stagpack.aggregator.sessions import SessionProgress, SessionRunner
from stagpack.decrypt.computation import SessionComputation
from stagpack.app.inprocess import InProcessDeployment
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, InvalidSignature, WrongPhase
from stagpack.identity import SigningIdentity
from stagpack.keyholder import policy
from stagpack.log import EntryKind, HuntOutcome, SettlementCertificate, Void, decode_body
from stagpack.participant.sdk import prepare_withdrawal
from stagpack.session import SessionKind
from stagpack.stag import ManualClock, StagSpec

from support.market import EPOCH_MILLIS, Market, RandomRun, withhold_certification
from support.protocol import start_deployment


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessDeployment, ManualClock]]:
    """One committee for the whole module: every test works on stags and accounts of its own
    (an attack's undefended run leaves an unpaid certificate behind, in its own stag only)."""
    clock = ManualClock()
    yield start_deployment(tmp_path_factory.mktemp("market"), 3, 2, clock), clock


def test_one_account_backing_several_stags_matches_the_reference(market: tuple[InProcessDeployment, ManualClock]) -> None:
    """Four capital stags — one plain, one with fees, two with deadlines and refund pools (fixed
    and pro rata); eight people, each with one or two escrow accounts that back intendos in
    several stags at once; random deposits, releases and withdrawals between epochs. Every epoch
    equals the reference — which hunts fire, with which members, which intendos the first hunt
    to spend an account voids elsewhere, which refund stags settle and what they pay — and so
    does every balance and pool."""
    deployment, clock = market
    rng = random.Random(1284)  # a seed whose run reaches every path asserted at the end (found on the reference alone)
    world = Market(deployment, clock)
    opens = clock()
    stags = [
        world.create(opens=opens),
        world.create(opens=opens, fees=(1, 1)),
        world.create(opens=opens, last_epoch=2, pool=46, bonus=2),
        world.create(opens=opens, last_epoch=3, pool=10),
    ]
    run = RandomRun.start(world, rng, deposit=(2, 6))
    closed: list[str] = []
    for _ in range(4):  # epochs 1-4: the refund stags close at 3 and 4
        # a refund stag's intendos aim higher: some of these stags never fire and settle
        run.submissions(stags, (4, 7), lambda spec: (rng.randint(1, 4), rng.randint(8, 20) if spec.refund else rng.randint(3, 12)))
        run.churn(withdraw_chance=0.5, release_max=3)
        world.run_epoch()
        closed += run.closed()
    assert "executed" in closed and "voided" in closed, "the run exercised hunts and voids"
    refunded = [i for i in world.intendos if world.reference.status(i) == "refunded"]
    statuses = [deployment.aggregator.status(spec.stag_id) for spec in stags]
    assert refunded and statuses[3].settlement is not None, "the pro-rata stag reached its deadline without a hunt and paid bonuses"
    assert statuses[2].hunts and statuses[2].pool is not None and statuses[2].pool.state == "returned", "a refund stag hunted"
    assert statuses[1].hunts, "the stag with fees hunted: its members paid the member fee"
    # every void in a log cites the certificate that spent the same account
    for spec in stags:
        height = deployment.aggregator.status(spec.stag_id).height
        for entry, _ in deployment.aggregator.read_log(spec.stag_id, 0, height):
            if entry.kind is EntryKind.VOID:
                void = decode_body(entry, Void)
                _, person = world.intendos[void.intendo_id]
                assert any(m.statement.participant == person.verify_key for m in void.certificate.outcome.members)


# --- the operator's attacks ------------------------------------------------------------------


def _two_stags_one_account(world: Market) -> tuple[StagSpec, StagSpec, SigningIdentity]:
    """Alice's "main" account (5) backs an intendo of weight 3 in each of two stags; alone, each
    is a fixed point at 3: both stags would fire in the first epoch."""
    first, second = world.create(), world.create()
    alice = SigningIdentity()
    world.deposit(alice, "main", 5)
    world.submit(first, alice, "main", 3, 3)
    world.submit(second, alice, "main", 3, 3)
    return first, second, alice


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_skipping_the_void_cannot_spend_an_account_twice(
    defended: bool, market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator does not void: the second stag's pack still counts alice's intendo after the
    first stag's hunt spent her account. Without the keyholders' rule the committee certifies a
    second hunt that the account cannot pay; with it, the second stag waits for the void."""
    deployment, clock = market
    world = Market(deployment, clock)
    first, second, alice = _two_stags_one_account(world)
    monkeypatch.setattr(type(deployment.aggregator), "_void_spent", lambda self, pack: None)
    if not defended:
        monkeypatch.setattr(policy, "require_unspent", lambda state, spent_by: None)
    clock.advance(EPOCH_MILLIS)
    deployment.aggregator.run_due(first.stag_id)
    assert len(deployment.aggregator.hunts(first.stag_id)) == 1
    account = Account(alice.verify_key, "main")
    assert deployment.ledger.balance(account) == 2
    if not defended:
        with pytest.raises(IntegrityFailure, match="cannot pay 3"):
            deployment.aggregator.run_due(second.stag_id)
        (double,) = deployment.aggregator.hunts(second.stag_id)  # certified, and unpayable
        assert double.outcome.members[0].statement.participant == alice.verify_key
        return
    with pytest.raises(CommitteeUnavailable, match="spent"):
        deployment.aggregator.run_due(second.stag_id)
    assert deployment.aggregator.hunts(second.stag_id) == []
    assert deployment.ledger.balance(account) == 2 and deployment.ledger.totals().conserved
    monkeypatch.undo()  # the operator voids after all: the second stag goes on without alice
    clock.advance(EPOCH_MILLIS)
    deployment.aggregator.run_due(second.stag_id)
    assert deployment.aggregator.hunts(second.stag_id) == []
    (intendo_id,) = [i for i, (stag_id, _) in world.intendos.items() if stag_id == second.stag_id]
    assert deployment.aggregator.intendo(second.stag_id, intendo_id).status.value == "voided"


@pytest.mark.parametrize("rules", ["none", "spent accounts only", "both"])
def test_a_second_hunt_waits_while_one_sharing_its_accounts_is_bound(
    rules: str, market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first stag's hunt reveals its members but its certificate is not collected (the
    operator stops there); the operator then runs the second stag, which counts an intendo
    backed by the same account. With neither keyholder rule both hunts certify alice's intendo:
    an account asked to pay twice. With only the spent-account rule the second hunt executes,
    and the first — which can now never be signed — is dropped and its stag goes on without
    alice. With both, the second hunt waits until the first is finished, and then goes on
    without the voided intendo."""
    deployment, clock = market
    world = Market(deployment, clock)
    first, second, alice = _two_stags_one_account(world)
    certify = withhold_certification(
        monkeypatch, "the operator withholds the certification", lambda session: session.kind is SessionKind.HUNT
    )
    if rules != "both":
        monkeypatch.setattr(policy, "require_no_binding_overlap", lambda state, bindings: None)
    if rules == "none":  # and the operator resumes the first hunt although it spends a spent account
        monkeypatch.setattr(policy, "require_unspent", lambda state, spent_by: None)
        monkeypatch.setattr(type(deployment.aggregator), "_spent_elsewhere", lambda self, stag_id, snapshot: None)
        monkeypatch.setattr(type(deployment.aggregator), "_void_spent", lambda self, pack: None)
    clock.advance(EPOCH_MILLIS)
    with pytest.raises(CommitteeUnavailable, match="withholds"):
        deployment.aggregator.run_due(first.stag_id)  # bound: membership revealed, not certified
    (alices_first,) = [i for i, (stag_id, _) in world.intendos.items() if stag_id == first.stag_id]
    with pytest.raises(WrongPhase, match="being certified"):  # its members stay until it is certified
        deployment.aggregator.withdraw(prepare_withdrawal(alice, first.stag_id, alices_first))
    monkeypatch.setattr(SessionRunner, "_certify", certify)
    account = Account(alice.verify_key, "main")
    if rules == "none":
        deployment.aggregator.run_due(second.stag_id)
        assert len(deployment.aggregator.hunts(second.stag_id)) == 1  # alice paid here
        with pytest.raises(IntegrityFailure, match="cannot pay 3"):
            deployment.aggregator.run_due(first.stag_id)  # the bound hunt finishes: she pays again
        return
    if rules == "spent accounts only":
        deployment.aggregator.run_due(second.stag_id)
        assert len(deployment.aggregator.hunts(second.stag_id)) == 1  # alice paid here
        deployment.aggregator.run_due(first.stag_id)  # dead: dropped, and alice's intendo voided
        assert deployment.aggregator.hunts(first.stag_id) == []
        assert deployment.aggregator.intendo(first.stag_id, alices_first).status.value == "voided"
        eli = SigningIdentity()
        world.deposit(eli, "main", 4)
        world.submit(first, eli, "main", 4, 10)
        clock.advance(EPOCH_MILLIS)
        deployment.aggregator.run_due(first.stag_id)  # keyholders no longer hold the stag for the dead hunt
        assert [r.result.value for r in deployment.aggregator.status(first.stag_id).epochs][-1] == "no-hunt"
        assert deployment.ledger.balance(account) == 2 and deployment.ledger.totals().conserved
        return
    with pytest.raises(CommitteeUnavailable, match="not finished"):
        deployment.aggregator.run_due(second.stag_id)
    assert deployment.aggregator.hunts(second.stag_id) == []
    deployment.aggregator.run_due(first.stag_id)  # the bound hunt is finished first
    assert len(deployment.aggregator.hunts(first.stag_id)) == 1
    clock.advance(EPOCH_MILLIS)
    deployment.aggregator.run_due(second.stag_id)
    assert deployment.aggregator.hunts(second.stag_id) == []
    assert deployment.ledger.balance(account) == 2
    assert deployment.ledger.totals().conserved


# --- refunds: the operator's attacks on the settlement -----------------------------------------


def _refund_stag_that_fires(world: Market) -> tuple[StagSpec, SigningIdentity]:
    """A fixed-bonus refund stag (pool 46, 2 per intendo) whose deadline falls in epoch 1, so its
    closing epoch is 2; alice's intendo (weight 3, total 3) makes its every check fire."""
    spec = world.create(last_epoch=1, pool=46, bonus=2)
    alice = SigningIdentity()
    world.deposit(alice, "main", 5)
    world.submit(spec, alice, "main", 3, 3)
    return spec, alice


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_a_pack_that_fires_at_the_deadline_cannot_be_settled_as_refunds(
    defended: bool, market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The closing check fires, and the operator — colluding with participants who would rather
    take the bonus than execute — wants the creator's pool paid out as refunds instead. Without
    the rule that a settlement is the outcome only of a closing check that did not fire (the
    keyholders derive it from the facts they read), the committee certifies the settlement and
    the pool is paid out for a stag that fired. With it, the keyholders fuse a hunt: they refuse
    to certify a settlement the operator puts to them, and the hunt executes, returning the pool."""
    deployment, clock = market
    world = Market(deployment, clock)
    spec, alice = _refund_stag_that_fires(world)
    aggregator = deployment.aggregator
    account = Account(alice.verify_key, "main")
    clock.advance(2 * EPOCH_MILLIS)  # the closing epoch
    if not defended:
        outcome = SessionComputation.outcome
        monkeypatch.setattr(
            SessionComputation, "outcome",
            lambda self, facts: self.state.settlement_outcome() if self.spec.is_closing(self.session.number) else outcome(self, facts),
        )
        aggregator.run_due(spec.stag_id)
        status = aggregator.status(spec.stag_id)
        assert status.hunts == () and status.settlement is not None  # certified by t keyholders
        assert deployment.ledger.balance(account) == 5 + 2  # alice keeps her 3 and takes the bonus
        return
    certify: Callable[..., object] = SessionRunner._certify
    put: list[str] = []

    def settle_instead(self: SessionRunner, progress: SessionProgress, outcome: object, live: set[int]) -> object:
        if isinstance(outcome, HuntOutcome) and outcome.stag_id == spec.stag_id:
            put.append("settlement")
            return certify(self, progress, aggregator._pack(spec.stag_id).settlement_outcome(), live)
        return certify(self, progress, outcome, live)

    monkeypatch.setattr(SessionRunner, "_certify", settle_instead)
    with pytest.raises(CommitteeUnavailable, match="differs from what this keyholder fused"):
        aggregator.run_due(spec.stag_id)
    assert put and aggregator.status(spec.stag_id).settlement is None
    monkeypatch.undo()
    aggregator.run_due(spec.stag_id)  # the hunt, binding on the keyholders, is finished
    (hunt,) = aggregator.hunts(spec.stag_id)
    assert hunt.outcome.epoch == spec.closing_epoch and [m.statement.participant for m in hunt.outcome.members] == [alice.verify_key]
    status = aggregator.status(spec.stag_id)
    assert status.settlement is None and status.pool is not None and status.pool.state == "returned"
    assert deployment.ledger.balance(account) == 2 and deployment.ledger.totals().conserved


def test_the_closing_check_is_refused_before_it_is_due(
    market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator that settles early — while intendos may still join and fire the stag — must
    run the closing check before its time: every keyholder refuses it, and an unsigned
    settlement of a pack that counts intendos is refused by the log itself."""
    deployment, clock = market
    world = Market(deployment, clock)
    spec, _ = _refund_stag_that_fires(world)
    aggregator = deployment.aggregator
    pack = aggregator._pack(spec.stag_id)
    aggregator.run_due(spec.stag_id)  # validate alice's intendo (no epoch is due yet)
    monkeypatch.setattr(type(pack), "settlement_due", lambda self, at: True)
    with pytest.raises(CommitteeUnavailable, match="not due until"):
        aggregator.run_due(spec.stag_id)
    write, _ = aggregator._locks(spec.stag_id)
    for certificate in (SettlementCertificate(pack.settlement_outcome(), ()),):
        with write, pytest.raises((InvalidSignature, WrongPhase)):
            aggregator._append(pack, EntryKind.SETTLEMENT, certificate)
    assert aggregator.status(spec.stag_id).settlement is None
    pool = deployment.ledger.pool(spec.stag_id)
    assert pool is not None and (pool.remaining, pool.state) == (46, "open")


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_a_hunt_bound_in_the_last_epoch_keeps_its_escrow_past_the_expiry(
    defended: bool, market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stag past its last epoch (and the keyholders' clock skew) can open no new session, so
    its live intendos stop holding escrow — but a hunt that opened in time and bound may still
    finish. If the clock alone released the escrow, a member could take its money out between
    the membership and the certificate, and the certified hunt could not be paid (and would be
    replayed, unpayable, on every restart). The aggregator keeps holding while the stag has an
    unfinished hunt session."""
    deployment, clock = market
    world = Market(deployment, clock)
    spec = world.create(last_epoch=1)
    alice = SigningIdentity()
    world.deposit(alice, "main", 5)
    world.submit(spec, alice, "main", 3, 3)
    aggregator = deployment.aggregator
    certify = withhold_certification(
        monkeypatch, "a keyholder outage between the membership and the certificate",
        lambda session: session.kind is SessionKind.HUNT,
    )
    clock.advance(EPOCH_MILLIS)
    with pytest.raises(CommitteeUnavailable, match="outage"):
        aggregator.run_due(spec.stag_id)  # bound: the membership is out
    clock.advance(40 * EPOCH_MILLIS)  # past epoch 2 and the 30 s of clock skew
    pack = aggregator._pack(spec.stag_id)
    assert pack.finished(clock())
    if not defended:  # the clock alone decides
        monkeypatch.setattr(
            type(aggregator), "_held",
            lambda self, account: max((p.held(account, self._clock()) for p in self._packs.values()), default=0),
        )
        aggregator.transfer(world.signed(alice, TransferKind.RELEASE, "main", 3))  # taken out from under the hunt
        monkeypatch.setattr(SessionRunner, "_certify", certify)
        with pytest.raises(IntegrityFailure, match="cannot pay 3"):
            aggregator.run_due(spec.stag_id)  # certified, and unpayable
        return
    assert aggregator.balance(Account(alice.verify_key, "main")).held == 3
    with pytest.raises(WrongPhase, match="at most 2"):
        aggregator.transfer(world.signed(alice, TransferKind.RELEASE, "main", 3))
    monkeypatch.setattr(SessionRunner, "_certify", certify)
    aggregator.run_due(spec.stag_id)  # the bound hunt finishes and pays
    (hunt,) = aggregator.hunts(spec.stag_id)
    assert [m.statement.participant for m in hunt.outcome.members] == [alice.verify_key]
    assert deployment.ledger.balance(Account(alice.verify_key, "main")) == 2 and deployment.ledger.totals().conserved
    assert aggregator.balance(Account(alice.verify_key, "main")).held == 0


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_a_void_waits_for_an_unfinished_closing_check(
    defended: bool, market: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refund stag's closing check is interrupted after its steps were decrypted (here: the
    certification does not reach t keyholders), and meanwhile another stag's hunt spends the
    account of one of its intendos. Keyholders evaluate an epoch at one log height only, and
    the closing epoch has no successor: voiding the intendo now would move the log and leave the
    stag unable ever to settle — its pool and every participant's escrow locked for good. The
    aggregator lets the void wait while the closing check is unfinished; the check finishes at
    its height, and the settlement pays the intendo that was counted at the deadline."""
    deployment, clock = market
    world = Market(deployment, clock)
    refunding = world.create(last_epoch=1, pool=10)  # pro rata; closing epoch 2
    other = world.create(opens=refunding.opens_at_millis)
    alice, bob = SigningIdentity(), SigningIdentity()
    world.deposit(alice, "main", 5)
    world.deposit(bob, "main", 1)
    alices = world.submit(refunding, alice, "main", 2, 20)
    bobs = world.submit(refunding, bob, "main", 1, 20)
    world.submit(other, alice, "main", 3, 3)  # fires: spends alice's account
    aggregator = deployment.aggregator
    for spec in (refunding, other):
        aggregator.run_due(spec.stag_id)  # validates (no epoch is due yet)
    certify = withhold_certification(
        monkeypatch, "too few keyholders answered the certification", lambda session: session.stag_id == refunding.stag_id
    )
    clock.advance(2 * EPOCH_MILLIS)  # the closing epoch of the refund stag
    with pytest.raises(CommitteeUnavailable, match="certification"):
        aggregator.run_due(refunding.stag_id)
    monkeypatch.setattr(SessionRunner, "_certify", certify)
    aggregator.run_due(other.stag_id)  # spends alice's account
    assert len(aggregator.hunts(other.stag_id)) == 1
    if not defended:
        monkeypatch.setattr(type(aggregator), "_unfinished", lambda self, stag_id, number: None)
        for _ in range(2):
            with pytest.raises(CommitteeUnavailable, match="already evaluated"):
                aggregator.run_due(refunding.stag_id)  # voided, then refused at the new height: for ever
            clock.advance(EPOCH_MILLIS)
        assert aggregator.status(refunding.stag_id).settlement is None
        assert aggregator.balance(Account(bob.verify_key, "main")).held == 1  # bob's escrow stays locked
        return
    aggregator.run_due(refunding.stag_id)
    status = aggregator.status(refunding.stag_id)
    assert status.settlement is not None and status.pool is not None and status.pool.state == "settled"
    assert [(r.intendo_id, r.amount) for r in status.settlement.outcome.refunds] == [(alices, 6), (bobs, 3)]  # 10 · 2/3, 10 · 1/3
    ledger = deployment.ledger
    assert ledger.balance(Account(alice.verify_key, "main")) == 5 - 3 + 6 and ledger.balance(Account(bob.verify_key, "main")) == 1 + 3
    assert ledger.totals().conserved and aggregator.balance(Account(bob.verify_key, "main")).held == 0
