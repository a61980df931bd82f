"""Composed hunts, end to end (DESIGN.md §10.2): triggers, the immediate check a trigger's hunt
makes due, and atomic bundles.

The oracle is `solver.market.MarketReference` with trigger DAGs: a randomized run of capital
stags in chains and fan-outs — some dependents that never fire, withdrawals, releases and
deposits in between — must agree with it exactly after every epoch: every hunt, every intendo's
status, every balance, and every bundle the ledger executed (which hunts, in which order).

The attacks are the operator's: check a dependent before its trigger has hunted (a free probe of
whether it would fire), check an armed dependent early a second time, and execute part of a
bundle. Each is a clear refusal and changes nothing; the undefended runs show what the rule
stops. A bundle waits, executing nothing, while a dependent's check cannot finish, and a crash
between the certificates and the execution neither loses nor doubles anything.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import pytest

from stagpack.accounts import Account, TransferKind
from stagpack.app.inprocess import InProcessDeployment
from stagpack.edge.ledger import SqliteLedger
from stagpack.errors import CommitteeUnavailable, InsufficientFunds, IntegrityFailure, InvalidInput
from stagpack.identity import SigningIdentity
from stagpack.keyholder import policy
from stagpack.log import EntryKind, HuntCertificate, Trigger, decode_body
from stagpack.session import SessionKind
from stagpack.stag import ManualClock, StagSpec

from support.market import EPOCH_MILLIS, ChainMirroredLedger, Market, RandomRun, withhold_certification
from support.protocol import start_deployment


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessDeployment, ManualClock]]:
    """One committee for the module; every test works on stags and accounts of its own. Its
    executor is the SQLite ledger with the settlement contract beside it: every bundle, deposit
    and release is applied to both (`ChainMirroredLedger`), and `Market.run_epoch` checks both
    against the reference."""
    clock = ManualClock()
    yield start_deployment(tmp_path_factory.mktemp("composed"), 3, 2, clock, executor=ChainMirroredLedger), clock


LEVELS = 16
EPOCHS = 3
SEED = 49  # a seed whose run reaches every path asserted below (chosen on the reference alone)


def drive(world: Market, rng: random.Random, opens: int) -> list[StagSpec]:
    """Six stags — a root; a chain of two below it; a second dependent of the root; a third
    that aims too high to fire; and one without a trigger — and three epochs of random
    submissions, withdrawals, releases and deposits by eight people with one or two accounts."""
    root = world.create(opens=opens, levels=LEVELS)
    child = world.create(opens=opens, levels=LEVELS, trigger=root)
    grandchild = world.create(opens=opens, levels=LEVELS, trigger=child)
    sibling = world.create(opens=opens, levels=LEVELS, trigger=root)
    unreachable = world.create(opens=opens, levels=LEVELS, trigger=root)
    alone = world.create(opens=opens, levels=LEVELS)
    stags = [root, child, grandchild, sibling, unreachable, alone]
    run = RandomRun.start(world, rng, deposit=(3, 6))
    for _ in range(EPOCHS):
        run.submissions(stags, (5, 8), lambda spec: (rng.randint(1, 3), rng.randint(12, 15) if spec is unreachable else rng.randint(2, 8)))
        run.churn(withdraw_chance=0.6, release_max=2)
        world.run_epoch()
        run.closed()
    return stags


@pytest.mark.slow
def test_trigger_dags_match_the_reference(composed: tuple[InProcessDeployment, ManualClock]) -> None:
    """The randomized run equals the reference after every epoch (`Market.run_epoch`), on the
    SQLite ledger and on the settlement contract alike (each bundle executed by both), and
    reaches what composition is for: a bundle of the root's hunt with a chain below it, a
    dependent armed but never firing, and every dependent's first hunt naming the hunt it fired
    on as its cause."""
    deployment, clock = composed
    world = Market(deployment, clock)
    root, child, grandchild, sibling, unreachable, alone = drive(world, random.Random(SEED), clock())
    bundles = world.reference.bundles
    assert any(len(bundle) >= 3 for bundle in bundles), f"a bundle of a chain: {bundles}"
    dependents = {child.stag_id, grandchild.stag_id, sibling.stag_id}
    assert any(len(bundle) == 1 and bundle[0][0] in dependents for bundle in bundles), "a dependent hunted again, alone"
    assert any(world.reference.status(intendo) == "voided" for intendo in world.intendos), "a hunt of the DAG voided elsewhere"
    aggregator = deployment.aggregator
    assert aggregator.hunts(unreachable.stag_id) == [] and aggregator.status(unreachable.stag_id).armed
    first_root = aggregator.hunts(root.stag_id)[0].outcome.digest()
    for dependent in (child, sibling):
        hunts = aggregator.hunts(dependent.stag_id)
        assert not hunts or hunts[0].outcome.cause == first_root
    for spec in (root, child, grandchild, sibling, unreachable):  # armed stags record what armed them
        height = aggregator.status(spec.stag_id).height
        triggers = [decode_body(e, Trigger) for e, _ in aggregator.read_log(spec.stag_id, 0, height) if e.kind is EntryKind.TRIGGER]
        assert len(triggers) == (1 if spec.trigger else 0)
        if triggers:
            assert triggers[0].certificate == aggregator.hunts(spec.trigger)[0]


# --- creation ----------------------------------------------------------------------------------


def test_an_unknown_or_spent_trigger_and_a_dag_too_deep_or_too_large_are_refused(composed: tuple[InProcessDeployment, ManualClock]) -> None:
    deployment, clock = composed
    world = Market(deployment, clock)
    root = world.create()
    unknown = StagSpec.new(
        committee=root.committee, kind=root.kind, levels=LEVELS, beneficiary=root.beneficiary, trigger=bytes(32),
    )
    with pytest.raises(InvalidInput, match="not a stag of this committee"):
        deployment.aggregator.create_stag(unknown)
    chain = [root]
    for _ in range(8):  # eight triggers above the last: the most allowed
        chain.append(world.create(trigger=chain[-1]))
    too_deep = StagSpec.new(
        committee=root.committee, kind=root.kind, levels=LEVELS, beneficiary=root.beneficiary, trigger=chain[-1].stag_id,
    )
    with pytest.raises(InvalidInput, match="9 stags deep"):
        deployment.aggregator.create_stag(too_deep)
    for _ in range(7):  # the tree: the chain of nine and seven more beside it, sixteen in all
        world.create(trigger=root)
    too_wide = StagSpec.new(committee=root.committee, kind=root.kind, levels=LEVELS, beneficiary=root.beneficiary, trigger=root.stag_id)
    with pytest.raises(InvalidInput, match="already holds 16 stags"):
        deployment.aggregator.create_stag(too_wide)
    alice = SigningIdentity()
    world.deposit(alice, "main", 2)
    world.submit(root, alice, "main", 2, 2)
    world.run_epoch()  # the root hunts (and its bundle with the chain, none of which fires)
    late = StagSpec.new(committee=root.committee, kind=root.kind, levels=LEVELS, beneficiary=root.beneficiary, trigger=root.stag_id)
    with pytest.raises(InvalidInput, match="has already hunted"):
        deployment.aggregator.create_stag(late)
    assert {too_deep.stag_id, too_wide.stag_id, late.stag_id}.isdisjoint(deployment.aggregator.stag_ids())


# --- the operator's attacks -------------------------------------------------------------------


def _fired_records(deployment: InProcessDeployment, stag_id: bytes) -> list[int]:
    """The keyholders that served membership of a hunt of the stag (it revealed who fired)."""
    return [node.index for node in deployment.nodes if any(r.fired_level for r in node.session_records(stag_id))]


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_a_dependent_is_not_checked_before_its_trigger_hunts(
    defended: bool, composed: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator runs a dependent's hunt check before its trigger has hunted: a free probe of
    whether the dependent would fire, and a hunt that would execute without the condition its
    intendos were signed under. Undefended, the keyholders serve it — membership is revealed —
    and only the replicas' refusal of the certificate stops the hunt; defended, they refuse to
    open it and nothing is decrypted."""
    deployment, clock = composed
    world = Market(deployment, clock)
    trigger = world.create()
    dependent = world.create(trigger=trigger)
    alice = SigningIdentity()
    world.deposit(alice, "main", 5)
    world.submit(dependent, alice, "main", 3, 3)  # alone a fixed point: it would fire
    clock.advance(EPOCH_MILLIS)
    aggregator = deployment.aggregator
    aggregator.run_due(dependent.stag_id)  # validates; the aggregator itself never checks it yet
    assert aggregator.status(dependent.stag_id).epochs == () and not aggregator.status(dependent.stag_id).armed
    pack = aggregator._pack(dependent.stag_id)
    if not defended:
        monkeypatch.setattr(policy, "require_armed", lambda state: None)
        with pytest.raises(IntegrityFailure, match="trigger has not hunted"):
            aggregator._run_session(pack, SessionKind.HUNT, 1, pack.snapshot(), None)
        assert _fired_records(deployment, dependent.stag_id), "the probe revealed that the dependent fires"
        return
    with pytest.raises(CommitteeUnavailable, match="has not hunted"):
        aggregator._run_session(pack, SessionKind.HUNT, 1, pack.snapshot(), None)
    assert _fired_records(deployment, dependent.stag_id) == []
    assert not any(r.served for node in deployment.nodes for r in node.session_records(dependent.stag_id) if r.session.kind is SessionKind.HUNT)
    assert aggregator.hunts(dependent.stag_id) == []


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_the_immediate_check_of_an_armed_dependent_happens_once(
    defended: bool, composed: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dependent whose first epoch is not due yet is checked at once when its trigger hunts
    (as epoch 1, early). The operator then asks for more early checks at new heights — each one
    a probe of how the pack moved. Undefended, the keyholders serve another; defended, epoch 1
    was checked and epoch 2 is not due: refused."""
    deployment, clock = composed
    world = Market(deployment, clock)
    trigger = world.create()
    dependent = world.create(trigger=trigger, opens=clock() + 5 * EPOCH_MILLIS)  # its epoch 1 is due in six
    alice, bob, carol = SigningIdentity(), SigningIdentity(), SigningIdentity()
    for person in (alice, bob, carol):
        world.deposit(person, "main", 5)
    world.submit(trigger, alice, "main", 2, 2)
    world.submit(dependent, bob, "main", 2, 9)  # does not fire
    clock.advance(EPOCH_MILLIS)
    aggregator = deployment.aggregator
    aggregator.run_due(trigger.stag_id)  # the trigger hunts; the dependent is armed and checked at once
    (checked,) = aggregator.status(dependent.stag_id).epochs
    assert (checked.epoch, checked.result.value) == (1, "no-hunt") and checked.at_millis < dependent.epoch_due_at(1)
    assert deployment.ledger.bundles()[-1] == ((trigger.stag_id, 1),)
    world.submit(dependent, carol, "main", 3, 9)
    aggregator.run_due(dependent.stag_id)  # validates carol's; no check before epoch 2 is due
    assert len(aggregator.status(dependent.stag_id).epochs) == 1
    pack = aggregator._pack(dependent.stag_id)
    if not defended:
        monkeypatch.setattr(policy, "immediate_check", lambda state, session, served: state.armed is not None)
        aggregator._run_session(pack, SessionKind.HUNT, 2, pack.snapshot(), None)  # an extra, early probe
        assert [r.epoch for r in aggregator.status(dependent.stag_id).epochs] == [1, 2]
        return
    with pytest.raises(CommitteeUnavailable, match="hunt 1 was already evaluated"):
        aggregator._run_session(pack, SessionKind.HUNT, 1, pack.snapshot(), None)
    with pytest.raises(CommitteeUnavailable, match="epoch 2 is not due"):
        aggregator._run_session(pack, SessionKind.HUNT, 2, pack.snapshot(), None)
    for node in deployment.nodes:  # each keyholder served the one immediate check, at the armed height, and nothing since
        served = [r.session for r in node.session_records(dependent.stag_id) if r.session.kind is SessionKind.HUNT and r.served]
        assert [(session.number, session.height) for session in served] == [(1, checked.height)]


# --- atomic bundles ----------------------------------------------------------------------------


def _chain(world: Market) -> tuple[list[StagSpec], list[SigningIdentity]]:
    """Three stags in a chain, each with one intendo that fires alone (weight 2, 3 and 4 from
    accounts of 5): the root's hunt arms the second, whose hunt arms the third."""
    root = world.create()
    middle = world.create(trigger=root)
    leaf = world.create(trigger=middle)
    people = [SigningIdentity() for _ in range(3)]
    for person, spec, weight in zip(people, (root, middle, leaf), (2, 3, 4)):
        world.deposit(person, "main", 5)
        world.submit(spec, person, "main", weight, weight)
    return [root, middle, leaf], people


def test_a_bundle_waits_while_a_dependent_check_cannot_finish(
    composed: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root fires but the last stag of the chain cannot be certified: nothing executes —
    no balance moves, the root's members cannot release the escrow their certified hunt will
    take — until it can; then the three hunts execute as one bundle."""
    deployment, clock = composed
    world = Market(deployment, clock)
    (root, middle, leaf), people = _chain(world)
    withhold_certification(monkeypatch, "certification withheld", lambda s: s.stag_id == leaf.stag_id and s.kind is SessionKind.HUNT)
    clock.advance(EPOCH_MILLIS)
    aggregator, ledger = deployment.aggregator, deployment.ledger
    with pytest.raises(CommitteeUnavailable, match="withheld"):
        aggregator.run_due(root.stag_id)
    assert [len(aggregator.hunts(spec.stag_id)) for spec in (root, middle, leaf)] == [1, 1, 0]
    assert aggregator.status(root.stag_id).awaiting_bundle and aggregator.status(middle.stag_id).awaiting_bundle
    assert not ledger.executed(aggregator.hunts(root.stag_id)[0].outcome.digest())
    assert [ledger.balance(Account(p.verify_key, "main")) for p in people] == [5, 5, 5]
    with pytest.raises(InsufficientFunds, match="at most 3 may be released"):  # its certified hunt takes 2
        aggregator.transfer(world.signed(people[0], TransferKind.RELEASE, "main", 4))
    monkeypatch.undo()
    aggregator.run_due(root.stag_id)
    assert ledger.bundles()[-1] == ((root.stag_id, 1), (middle.stag_id, 1), (leaf.stag_id, 1))
    assert [ledger.balance(Account(p.verify_key, "main")) for p in people] == [3, 2, 1]
    assert ledger.totals().conserved and not aggregator.status(root.stag_id).awaiting_bundle


def test_a_crash_between_the_certificates_and_the_bundle_neither_loses_nor_doubles(
    composed: tuple[InProcessDeployment, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator dies in the bundle's transaction, after its first hunt was applied in it
    and all three certificates are logged: the transaction rolls back (nothing half-applied),
    and the aggregator that comes back over the same store executes the whole bundle once."""
    deployment, clock = composed
    world = Market(deployment, clock)
    (root, middle, leaf), people = _chain(world)
    apply_hunt = SqliteLedger._apply_hunt
    calls: list[bytes] = []

    class Killed(BaseException):
        """Stands in for kill -9: nothing after it runs."""

    def dying(self: SqliteLedger, connection: object, spec: StagSpec, certificate: HuntCertificate, at: int) -> None:
        calls.append(certificate.outcome.stag_id)
        apply_hunt(self, connection, spec, certificate, at)  # type: ignore[arg-type]
        if len(calls) == 2:
            raise Killed()

    monkeypatch.setattr(SqliteLedger, "_apply_hunt", dying)
    clock.advance(EPOCH_MILLIS)
    with pytest.raises(Killed):
        deployment.aggregator.run_due(root.stag_id)
    monkeypatch.undo()
    ledger = deployment.ledger
    assert calls == [root.stag_id, middle.stag_id]
    assert [ledger.balance(Account(p.verify_key, "main")) for p in people] == [5, 5, 5], "nothing half-applied"
    assert [len(deployment.aggregator.hunts(spec.stag_id)) for spec in (root, middle, leaf)] == [1, 1, 1]
    aggregator = deployment.restart_aggregator()
    assert aggregator.status(root.stag_id).awaiting_bundle
    aggregator.transfer(world.signed(people[2], TransferKind.RELEASE, "main", 1))  # the leaf's member: 4 of 5 held
    with pytest.raises(InsufficientFunds):  # across the restart
        aggregator.transfer(world.signed(people[2], TransferKind.RELEASE, "main", 1))
    aggregator.run_due(root.stag_id)
    aggregator.run_due(root.stag_id)  # and again: executed once
    assert ledger.bundles()[-1] == ((root.stag_id, 1), (middle.stag_id, 1), (leaf.stag_id, 1))
    assert [ledger.balance(Account(p.verify_key, "main")) for p in people] == [3, 2, 0]
    assert sum(1 for bundle in ledger.bundles() if bundle[0][0] == root.stag_id) == 1
    assert ledger.totals().conserved


@pytest.mark.slow
def test_the_compose_demo_settles_one_bundle_on_the_evm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`stagpack demo --compose`: the migration and the investments it triggers execute as one
    bundle in one EVM transaction, equal to the reference (the scene checks it and returns the
    mismatches), with the balances before and after printed."""
    from stagpack.app.compose_demo import compose_scene

    assert compose_scene(0.0, tmp_path) == []
    out = capsys.readouterr().out
    assert "one bundle of 2 hunts executed in 1 EVM transaction" in out
    assert "balances before: quinn 10, rosa 8, sam 7, treasury 0" in out and "balances after:  quinn 0, rosa 0, sam 0, treasury 25" in out
