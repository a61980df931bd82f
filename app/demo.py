"""`stagpack demo`: a committee, a count stag and a capital stag, hundreds of participants; then
one escrow account backing two stags; then a stag that reaches its deadline and pays refunds;
then composed hunts settled in one transaction on an embedded EVM (`stagpack.app.compose_demo`);
then an anonymous stag and deniable proofs (`stagpack.app.shield_demo`).

Participants with heterogeneous thresholds arrive in waves and some withdraw, epoch after epoch.
Each epoch prints only what an outside observer (or the operator) sees: pack sizes and "no hunt".
When a hunt fires, the demo prints the qualifying subset and checks it against the exact
plaintext solver, which the simulation keeps on the side (it knows every threshold; nobody in
the system does). By default every party runs as its own process, talking gRPC on loopback.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stagpack.accounts import Account, TransferKind
from stagpack.app.compose_demo import compose_scene
from stagpack.app.shield_demo import shielded_scene
from stagpack.aggregator.store import EpochOutcome
from stagpack.encoding import StagKind, Threshold
from stagpack.errors import StagpackError
from stagpack.identity import SigningIdentity
from stagpack.participant.sdk import PreparedIntendo, sign_pool_funding
from stagpack.solver import HeightOracle
from stagpack.solver.market import Fees, MarketReference, Refunds
from stagpack.stag import StagSpec
from stagpack.terms import FeeTerms, RefundMode, RefundTerms

EPOCH_MILLIS = 6000
WAIT_SECONDS = 600
ESCROW_TAG = "savings"  # the escrow account that backs each demo participant's capital intendo


@dataclass
class PublicView:
    live: int
    awaiting: int
    withdrawn: int
    height: int  # the stag's log height
    epochs: list[tuple[int, EpochOutcome, int]]  # (epoch, outcome, log height it evaluated)
    hunts: list[tuple[int, int, int, tuple[bytes, ...]]]  # (epoch, level, log height, member intendo ids)


class Backend(Protocol):
    committee_id: bytes

    def create_stag(self, spec: StagSpec, funding_signature: bytes = b"") -> bytes: ...
    def pool_state(self, stag_id: bytes) -> str | None: ...
    def prepare(self, spec: StagSpec, identity: SigningIdentity, threshold: Threshold, tag: str = "") -> PreparedIntendo: ...
    def submit(self, prepared: PreparedIntendo) -> bytes: ...
    def deposit(self, identity: SigningIdentity, tag: str, amount: int) -> None: ...
    def balance(self, account: Account) -> int: ...
    def intendo_state(self, stag_id: bytes, intendo_id: bytes) -> str: ...
    def withdraw(self, identity: SigningIdentity, stag_id: bytes, intendo_id: bytes) -> int: ...
    def view(self, stag_id: bytes) -> PublicView: ...
    def counted_at(self, stag_id: bytes, intendo_id: bytes) -> int: ...
    def close(self) -> None: ...


class ServiceBackend:
    """Separate processes: 5 keyholders and an aggregator, reached over gRPC."""

    def __init__(self, directory: Path, keyholders: int, threshold: int) -> None:
        from stagpack.app.console import progress_printer
        from stagpack.app.launcher import LocalDeployment
        from stagpack.participant.client import AggregatorClient

        self.deployment = LocalDeployment.create(directory, keyholders, threshold, tick_millis=250)
        print(f"starting {keyholders} keyholder processes and an aggregator process (logs in {directory})")
        self.deployment.start(progress_printer(True))
        assert self.deployment.aggregator is not None
        print(f"aggregator at {self.deployment.aggregator.address}, keyholders at "
              + ", ".join(service.address for service in self.deployment.keyholders))
        self.client = AggregatorClient(self.deployment.aggregator.address)
        self.committee_id = self.client.committee_id

    def create_stag(self, spec: StagSpec, funding_signature: bytes = b"") -> bytes:
        return self.client.create_stag(spec, funding_signature)

    def pool_state(self, stag_id: bytes) -> str | None:
        status = self.client.status(stag_id)
        return str(status.pool.state) if status.HasField("pool") else None

    def prepare(self, spec: StagSpec, identity: SigningIdentity, threshold: Threshold, tag: str = "") -> PreparedIntendo:
        return self.client.prepare(spec, identity, threshold, tag)

    def submit(self, prepared: PreparedIntendo) -> bytes:
        return self.client.submit(prepared)[0]

    def deposit(self, identity: SigningIdentity, tag: str, amount: int) -> None:
        self.client.transfer(identity, TransferKind.DEPOSIT, tag, amount)

    def balance(self, account: Account) -> int:
        return self.client.balance(account).balance

    def intendo_state(self, stag_id: bytes, intendo_id: bytes) -> str:
        return str(self.client.intendo_status(stag_id, intendo_id).status)

    def withdraw(self, identity: SigningIdentity, stag_id: bytes, intendo_id: bytes) -> int:
        return self.client.withdraw(identity, stag_id, intendo_id)

    def counted_at(self, stag_id: bytes, intendo_id: bytes) -> int:
        return int(self.client.intendo_status(stag_id, intendo_id).counted_at_height)

    def view(self, stag_id: bytes) -> PublicView:
        from stagpack.edge.wire import epoch_outcome_from_proto

        status = self.client.status(stag_id)
        return PublicView(
            status.live_intendos, status.awaiting_validation, status.withdrawn, int(status.log_height),
            [(int(e.epoch), epoch_outcome_from_proto(e.result), int(e.log_height)) for e in status.epochs],
            [(int(h.epoch), int(h.level), int(h.log_height), tuple(bytes(m.intendo_id) for m in h.members)) for h in status.hunts],
        )

    def close(self) -> None:
        self.client.close()
        self.deployment.stop()


class InProcessBackend:
    """Every party in this process (same protocol code; records still cross byte boundaries)."""

    def __init__(self, directory: Path, keyholders: int, threshold: int) -> None:
        from stagpack.app.console import progress_printer
        from stagpack.app.inprocess import InProcessDeployment

        print(f"starting {keyholders} keyholders and an aggregator in this process")
        self.deployment = InProcessDeployment.start(directory, keyholders, threshold, progress=progress_printer(True))
        self.aggregator = self.deployment.aggregator
        self.committee_id = self.aggregator.committee.committee_id
        self._stop = threading.Event()
        self._scheduler = threading.Thread(target=self._tick, daemon=True)
        self._scheduler.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self.aggregator.tick()

    def create_stag(self, spec: StagSpec, funding_signature: bytes = b"") -> bytes:
        return self.aggregator.create_stag(spec, funding_signature)

    def pool_state(self, stag_id: bytes) -> str | None:
        pool = self.aggregator.status(stag_id).pool
        return None if pool is None else pool.state

    def prepare(self, spec: StagSpec, identity: SigningIdentity, threshold: Threshold, tag: str = "") -> PreparedIntendo:
        from stagpack.participant.sdk import prepare_intendo

        context = self.deployment.context
        return prepare_intendo(context, context.joint_key, spec, identity, threshold, capital_tag=tag)

    def submit(self, prepared: PreparedIntendo) -> bytes:
        return self.aggregator.submit(prepared.envelope, prepared.ciphertext).intendo_id

    def deposit(self, identity: SigningIdentity, tag: str, amount: int) -> None:
        from stagpack.participant.sdk import prepare_transfer

        self.aggregator.transfer(prepare_transfer(identity, self.committee_id, TransferKind.DEPOSIT, tag, amount))

    def balance(self, account: Account) -> int:
        return self.aggregator.balance(account).balance

    def intendo_state(self, stag_id: bytes, intendo_id: bytes) -> str:
        return self.aggregator.intendo(stag_id, intendo_id).status.value

    def withdraw(self, identity: SigningIdentity, stag_id: bytes, intendo_id: bytes) -> int:
        from stagpack.participant.sdk import prepare_withdrawal

        return self.aggregator.withdraw(prepare_withdrawal(identity, stag_id, intendo_id))

    def counted_at(self, stag_id: bytes, intendo_id: bytes) -> int:
        return self.aggregator.intendo(stag_id, intendo_id).counted_at

    def view(self, stag_id: bytes) -> PublicView:
        status = self.aggregator.status(stag_id)
        return PublicView(
            status.live_intendos, status.awaiting_validation, status.withdrawn, status.height,
            [(e.epoch, e.result, e.height) for e in status.epochs],
            [(h.outcome.epoch, h.outcome.level, h.outcome.height, h.outcome.member_ids) for h in status.hunts],
        )

    def close(self) -> None:
        self._stop.set()
        self._scheduler.join(timeout=120)


@dataclass
class Participant:
    identity: SigningIdentity
    threshold: Threshold
    description: str
    intendo_id: bytes = b""
    state: str = "waiting"  # waiting, live, withdrawn, executed
    counted_at: int = 0  # log height at which the committee's validation counted it
    withdrawn_at: int = 0


@dataclass
class SimulatedStag:
    name: str
    spec: StagSpec
    participants: list[Participant]
    oracle: HeightOracle
    stag_id: bytes = b""
    hunts_seen: int = 0
    epochs_seen: int = 0
    mismatches: list[str] = field(default_factory=list)


def _population(rng: random.Random, kind: StagKind, count: int, levels: int) -> list[tuple[Threshold, str]]:
    people = []
    for _ in range(count):
        if kind is StagKind.COUNT:
            roll = rng.random()  # eager joiners, a broad middle, and sceptics
            others = rng.randint(2, 20) if roll < 0.3 else rng.randint(20, 90) if roll < 0.8 else rng.randint(90, levels - 2)
            people.append((Threshold.count(others, levels=levels), f"if at least {others} others do"))
        else:
            amount = rng.randint(3, 25)
            total = rng.randint(max(amount, 40), levels - 1) if rng.random() < 0.7 else rng.randint(amount, 400)
            people.append((Threshold.capital(amount, total, levels=levels), f"{amount} if the total reaches {total}"))
    return people


def _wait_for_epoch(backend: Backend, stag: SimulatedStag) -> PublicView:
    """Wait until every submission so far is validated and the pack as it stands has been
    evaluated by an epoch (the demo paces itself on the aggregator's public status)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        view = backend.view(stag.stag_id)
        evaluated = any(height == view.height and result.checked for _, result, height in view.epochs)
        if view.awaiting == 0 and evaluated:
            return view
        time.sleep(0.25)
    raise TimeoutError(f"{stag.name}: the pack was not evaluated within {WAIT_SECONDS} s")


def _learn_counted(backend: Backend, stag: SimulatedStag) -> None:
    """Participants ask where their intendo stands (public: validity, never thresholds); the
    oracle learns at which log heights intendos were counted and withdrawn."""
    for participant in stag.participants:
        if participant.intendo_id and not participant.counted_at and participant.state != "waiting":
            participant.counted_at = backend.counted_at(stag.stag_id, participant.intendo_id)
            if participant.counted_at:
                stag.oracle.counted(participant.intendo_id, participant.counted_at)
                if participant.withdrawn_at:
                    stag.oracle.withdrawn(participant.intendo_id, participant.withdrawn_at)


def _report_epochs(stag: SimulatedStag, view: PublicView, elapsed: float) -> None:
    new = [epoch for epoch in view.epochs[stag.epochs_seen:] if epoch[1] is not EpochOutcome.COMMITTEE_UNAVAILABLE]
    stag.epochs_seen = len(view.epochs)
    if not new:
        return
    quiet = [epoch for epoch, result, _ in new if result in (EpochOutcome.NO_HUNT, EpochOutcome.EMPTY)]
    if quiet:
        span = f"{quiet[0]}" if len(quiet) == 1 else f"{quiet[0]}–{quiet[-1]}"
        print(f"[{elapsed:6.1f} s] {stag.name:7} epoch {span:>7}: {view.live:3} live intendos, "
              f"{view.withdrawn} withdrawn so far → no hunt")
    for epoch, result, _ in new:
        if not result.checked:
            print(f"[{elapsed:6.1f} s] {stag.name:7} epoch {epoch:>7}: {result.value}")


def _report_new_hunts(stag: SimulatedStag, view: PublicView) -> None:
    by_id = {participant.intendo_id: participant for participant in stag.participants if participant.intendo_id}
    for epoch, level, height, members in view.hunts[stag.hunts_seen:]:
        expected = stag.oracle.expected_hunt(height)
        print(f"  >>> HUNT on the {stag.name} stag at epoch {epoch}: level {level}, {len(members)} members execute together")
        for intendo_id in members[:5]:
            print(f"        {intendo_id.hex()[:12]}  ({by_id[intendo_id].description})")
        if len(members) > 5:
            print(f"        … and {len(members) - 5} more")
        if expected is None or expected.level != level or set(expected.members) != set(members):
            message = (f"epoch {epoch}: FHE says level {level} with {len(members)} members; the plaintext solver says "
                       f"{'no hunt' if expected is None else f'level {expected.level} with {len(expected.members)} members'}")
            stag.mismatches.append(message)
            print(f"      MISMATCH with the plaintext solver: {message}")
        else:
            print("      cross-check: the plaintext solver, which knows every threshold, finds exactly this subset ✓")
            stag.oracle.execute(expected)
        for intendo_id in members:
            by_id[intendo_id].state = "executed"
        stag.hunts_seen += 1


SCENE_EPOCH_MILLIS = 20_000  # long enough to validate every intendo before the first check


def _multiplexing_scene(backend: Backend, started: float) -> list[str]:
    """Dana backs two stags with the same escrow account; both would fire in the same epoch. The
    stag created first (the liquidity bootstrap) fires and spends her account, so her intendo
    in the supply lock is voided and the lock is evaluated without it. Every figure is checked
    against the plaintext reference (`solver.market.MarketReference`); returns the mismatches."""
    print("\nMultiplexing: one escrow account backs two stags at once; whichever fires first applies.")
    reference = MarketReference()
    now = int(time.time() * 1000)
    stags = {}
    for name, title, opens in (("bootstrap", "Bootstrap the liquidity pool (units of $100)", now),
                               ("lock", "Lock the supply for a year (units of $100)", now + 1000)):
        beneficiary = Account(SigningIdentity().verify_key, name)
        spec = StagSpec.new(committee=backend.committee_id, kind=StagKind.CAPITAL, levels=64, title=title,
                            epoch_millis=SCENE_EPOCH_MILLIS, opens_at_millis=opens, beneficiary=beneficiary)
        backend.create_stag(spec)
        reference.create_stag(spec.stag_id, 64, beneficiary)
        stags[name] = spec
    people = {name: SigningIdentity() for name in ("dana", "eli", "fay", "gus")}
    plan = [  # (who, stag, amount, "if the total reaches")
        ("dana", "bootstrap", 10, 30), ("dana", "lock", 10, 25),
        ("eli", "bootstrap", 12, 30), ("fay", "bootstrap", 8, 30), ("gus", "lock", 15, 25),
    ]
    deposits = {"dana": 10, "eli": 12, "fay": 8, "gus": 15}
    for who, amount in deposits.items():
        backend.deposit(people[who], "treasury", amount)
        reference.deposit(Account(people[who].verify_key, "treasury"), amount)
    intendos = {}
    for who, stag, amount, total in plan:
        prepared = backend.prepare(stags[stag], people[who], Threshold.capital(amount, total, levels=64), "treasury")
        intendos[(who, stag)] = backend.submit(prepared)
        reference.submit(stags[stag].stag_id, intendos[(who, stag)], Account(people[who].verify_key, "treasury"), total, amount)
        print(f"  {who:4} commits {amount:2} to the {stag:9} if its total reaches {total} (escrow: {who}'s treasury account)")
    print("  dana's 10 back both; alone, each stag would fire at its target (10+12+8 = 30, 10+15 = 25)")
    expected = reference.epoch(1)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        bootstrap, lock = backend.view(stags["bootstrap"].stag_id), backend.view(stags["lock"].stag_id)
        if bootstrap.hunts and any(height == lock.height and result.checked for _, result, height in lock.epochs):
            break
        time.sleep(0.25)
    else:
        return ["multiplexing: the first epoch did not complete"]
    mismatches = []
    hunt = expected[stags["bootstrap"].stag_id]
    assert hunt is not None
    if set(bootstrap.hunts[0][3]) != set(hunt.members) or bootstrap.hunts[0][1] != hunt.level or lock.hunts:
        mismatches.append("multiplexing: the hunts differ from the reference")
    print(f"[{time.monotonic() - started:6.1f} s] the bootstrap fires at {bootstrap.hunts[0][1]} with dana, eli and fay; "
          f"dana's intendo in the lock is {backend.intendo_state(stags['lock'].stag_id, intendos[('dana', 'lock')])}; "
          f"the lock does {'' if lock.hunts else 'not '}fire (gus alone: 15 of 25)")
    if backend.intendo_state(stags["lock"].stag_id, intendos[("dana", "lock")]) != reference.status(intendos[("dana", "lock")]):
        mismatches.append("multiplexing: dana's lock intendo is not voided as the reference says")
    for who in people:
        account = Account(people[who].verify_key, "treasury")
        if backend.balance(account) != reference.balance(account):
            mismatches.append(f"multiplexing: {who}'s balance differs from the reference")
    pool = stags["bootstrap"].beneficiary
    assert pool is not None
    print(f"  balances: dana {backend.balance(Account(people['dana'].verify_key, 'treasury'))} (10 paid once), "
          f"gus {backend.balance(Account(people['gus'].verify_key, 'treasury'))} (still backing the lock), "
          f"liquidity pool {backend.balance(pool)}"
          + ("  — the plaintext reference agrees ✓" if not mismatches else "  — MISMATCH with the reference"))
    return mismatches


REFUND_EPOCH_MILLIS = 8_000  # the refund stag's epochs: its deadline falls in the first, the second closes it


def _refund_scene(backend: Backend, started: float) -> list[str]:
    """A dominant-assurance stag: Hana escrows a refund pool when she creates it, promising 3 to
    everyone counted at the deadline if the stag never fires; each submission costs a fee of 2.
    Three people join, the target is not reached, the deadline passes, and the closing check —
    which does not fire — settles: each gets the bonus, Hana gets the rest of her pool back.
    Checked against the plaintext reference; returns the mismatches."""
    print("\nDominant assurance: a stag that pays everyone who joined if it fails by its deadline.")
    reference = MarketReference()
    hana = SigningIdentity()
    funder = Account(hana.verify_key, "bonus-fund")
    committee_fees, operator_fees = Account(SigningIdentity().verify_key, "fees"), Account(SigningIdentity().verify_key, "fees")
    backend.deposit(hana, funder.tag, 60)
    reference.deposit(funder, 60)
    opens = int(time.time() * 1000)
    beneficiary = Account(SigningIdentity().verify_key, "garden")
    spec = StagSpec.new(
        committee=backend.committee_id, kind=StagKind.CAPITAL, levels=16, title="Build the community garden (units of $100)",
        epoch_millis=REFUND_EPOCH_MILLIS, opens_at_millis=opens, deadline_millis=opens + REFUND_EPOCH_MILLIS * 3 // 2,
        beneficiary=beneficiary, refund=RefundTerms(funder, 45, RefundMode.FIXED, 3, funder),
        fees=FeeTerms(2, 0, committee_fees, operator_fees, 50),
    )
    backend.create_stag(spec, sign_pool_funding(hana, spec))
    reference.create_stag(
        spec.stag_id, 16, beneficiary, last_epoch=1, refunds=Refunds(funder, 45, 3, funder),
        fees=Fees(2, 0, committee_fees, operator_fees, 50),
    )
    assert spec.refund is not None
    print(f"  hana escrows a pool of 45 from her account: {spec.refund.describe()}; a fee of 2 per submission, half to the committee")
    people = {name: SigningIdentity() for name in ("ivy", "jon", "kim")}
    intendos = {}
    for (who, person), (amount, total) in zip(people.items(), ((4, 14), (5, 14), (3, 15))):
        account = Account(person.verify_key, "savings")
        backend.deposit(person, "savings", amount + 2)
        reference.deposit(account, amount + 2)
        intendos[who] = backend.submit(backend.prepare(spec, person, Threshold.capital(amount, total, levels=16), "savings"))
        reference.submit(spec.stag_id, intendos[who], account, total, amount)
        print(f"  {who:4} commits {amount} if the total reaches {total} (deposits {amount + 2}: the fee is 2)")
    print(f"  together they commit 12: short of every target; the deadline is {REFUND_EPOCH_MILLIS * 1.5 / 1000:g} s after opening")
    reference.epoch(1)
    reference.epoch(2)  # the closing epoch: no hunt, so the settlement
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and backend.pool_state(spec.stag_id) == "open":
        time.sleep(0.25)
    state = backend.pool_state(spec.stag_id)
    if state != "settled":
        return [f"refunds: the pool is {state}, not settled"]
    mismatches = []
    for who, person in people.items():
        account = Account(person.verify_key, "savings")
        if backend.balance(account) != reference.balance(account) or backend.intendo_state(spec.stag_id, intendos[who]) != "refunded":
            mismatches.append(f"refunds: {who}'s bonus or status differs from the reference")
    for name, account in (("hana", funder), ("the committee's fees", committee_fees), ("the operator's fees", operator_fees)):
        if backend.balance(account) != reference.balance(account):
            mismatches.append(f"refunds: {name} differs from the reference")
    print(f"[{time.monotonic() - started:6.1f} s] the deadline passed and the closing check did not fire: settled. "
          f"ivy {backend.balance(Account(people['ivy'].verify_key, 'savings'))}, "
          f"jon {backend.balance(Account(people['jon'].verify_key, 'savings'))}, "
          f"kim {backend.balance(Account(people['kim'].verify_key, 'savings'))} (each got 3 and keeps the capital), "
          f"hana {backend.balance(funder)} (15 + 45 - 9), fees {backend.balance(committee_fees)} + {backend.balance(operator_fees)}"
          + ("  — the plaintext reference agrees ✓" if not mismatches else "  — MISMATCH with the reference"))
    return mismatches


def run_demo(options: argparse.Namespace) -> int:
    rng = random.Random(options.seed)
    started = time.monotonic()
    if options.compose or options.shielded:
        scene = compose_scene if options.compose else shielded_scene
        mismatches = scene(started, Path(options.dir) if options.dir else None)
        print(f"\ndone in {time.monotonic() - started:.0f} s" + ("" if not mismatches else f"; {len(mismatches)} MISMATCHES"))
        return 0 if not mismatches else 1
    scratch = None
    if options.dir:
        directory = Path(options.dir)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="stagpack-demo-")
        directory = Path(scratch.name)
    backend: Backend = (InProcessBackend if options.in_process else ServiceBackend)(directory, options.keyholders, options.threshold)
    try:
        per_stag = max(options.participants // 2, 1)
        stags = []
        for name, kind, levels, title in (
            ("count", StagKind.COUNT, 160, "Switch the town to the new co-op grid if enough households do"),
            ("capital", StagKind.CAPITAL, 2000, "Fund the community solar roof (units of $100)"),
        ):
            beneficiary = Account(SigningIdentity().verify_key, "roof") if kind is StagKind.CAPITAL else None
            spec = StagSpec.new(
                committee=backend.committee_id, kind=kind, levels=levels, title=title, epoch_millis=EPOCH_MILLIS,
                beneficiary=beneficiary,
            )
            population = [Participant(SigningIdentity(), threshold, description) for threshold, description in _population(rng, kind, per_stag, levels)]
            stag = SimulatedStag(name, spec, population, HeightOracle(levels))
            stag.stag_id = backend.create_stag(spec)
            stags.append(stag)
            print(f"created the {name} stag {stag.stag_id.hex()[:16]}…: {title!r}, {levels} levels, "
                  f"a hunt check every {EPOCH_MILLIS / 1000:g} s")
        waves = max(options.epochs, 1)
        print(f"\n{per_stag * len(stags)} participants arrive over {waves} waves; each encrypts its own threshold locally.")
        print("Each epoch shows what an outside observer (or the operator) sees:\n")
        with ThreadPoolExecutor(max_workers=4) as pool:
            for wave in range(waves + 2):
                arrivals = {}
                for stag in stags:
                    arriving = [p for p in stag.participants if p.state == "waiting"][: len(stag.participants) // waves + 1] if wave < waves else []
                    tag = ESCROW_TAG if stag.spec.kind is StagKind.CAPITAL else ""
                    for participant in arriving if tag else ():  # each backs its amount with an escrow deposit
                        backend.deposit(participant.identity, tag, participant.threshold.weight)
                    prepared = list(pool.map(lambda p, stag=stag, tag=tag: backend.prepare(stag.spec, p.identity, p.threshold, tag), arriving))
                    for participant, intendo in zip(arriving, prepared):
                        participant.intendo_id = backend.submit(intendo)
                        participant.state = "live"
                        stag.oracle.intendo(participant.intendo_id, participant.threshold.level, participant.threshold.weight)
                    live = [p for p in stag.participants if p.state == "live"]
                    leaving = rng.sample(live, k=min(len(live), rng.randint(0, 3))) if wave < waves else []
                    for participant in leaving:
                        try:
                            participant.withdrawn_at = backend.withdraw(participant.identity, stag.stag_id, participant.intendo_id)
                        except StagpackError:
                            continue  # executed in the meantime: executed intendos cannot leave
                        participant.state = "withdrawn"
                        if participant.counted_at:
                            stag.oracle.withdrawn(participant.intendo_id, participant.withdrawn_at)
                    arrivals[stag.name] = (len(arriving), len(leaving))
                if wave < waves:
                    print(f"wave {wave + 1}: " + ", ".join(f"{arrivals[s.name][0]} intendos arrive at the {s.name} stag "
                                                          f"({arrivals[s.name][1]} withdraw)" for s in stags))
                for stag in stags:
                    view = _wait_for_epoch(backend, stag)
                    _learn_counted(backend, stag)
                    _report_epochs(stag, view, time.monotonic() - started)
                    _report_new_hunts(stag, view)
        mismatches = [message for stag in stags for message in stag.mismatches]
        mismatches += _multiplexing_scene(backend, started)
        mismatches += _refund_scene(backend, started)
        mismatches += compose_scene(started, directory / "compose")
        mismatches += shielded_scene(started, directory / "shielded")
        print(f"\ndone in {time.monotonic() - started:.0f} s: "
              + ", ".join(f"{stag.name} stag {stag.hunts_seen} hunt(s)" for stag in stags)
              + ("; every hunt matched the plaintext solver" if not mismatches else f"; {len(mismatches)} MISMATCHES"))
        for stag in stags:
            pending = stag.oracle.expected_hunt(1 << 62)
            if pending is not None:
                mismatches.append(f"{stag.name}: the solver expects a hunt at level {pending.level} that never fired")
                print(f"  {mismatches[-1]}")
        return 0 if not mismatches else 1
    finally:
        backend.close()
        if scratch is not None:
            scratch.cleanup()
