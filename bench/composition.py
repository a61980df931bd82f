"""What composition costs (DESIGN.md §10.2): cascade latency against the shape of a trigger DAG,
and the settlement contract's gas against the size of a bundle.

- cascade latency: in the in-process deployment, from the root's hunt certificate to its bundle
  executed — arming each dependent, its immediate check (a hunt session of the committee, with
  its membership and certification when it fires), and the one executor transaction — for a
  chain of d dependents below the root (depth) and for w dependents beside each other (width);
  every stag holds one intendo that fires alone, so every check binds. The baseline is the
  root's own hunt-to-certificate time measured in the same run: a cascade costs about one hunt
  per stag it reaches.
- gas: `execute` of the Vyper contract on an embedded EVM for one hunt of m members and for
  bundles of k composed hunts, attested by 2 of 3 keyholders; the baseline is one hunt of one
  member, measured in the same run.

`python -m stagpack.bench.composition` prints both tables.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from stagpack.accounts import Account
from stagpack.app.inprocess import InProcessDeployment
from stagpack.attestation import ChainKey
from stagpack.committee import CommitteeInfo, KeyholderSignature
from stagpack.edge.chain import ChainLedger
from stagpack.encoding import StagKind, Threshold
from stagpack.envelope import IntendoEnvelope
from stagpack.identity import SigningIdentity
from stagpack.log import HuntCertificate, HuntOutcome
from stagpack.participant.sdk import prepare_intendo
from stagpack.stag import ManualClock, StagSpec, now_millis

from stagpack.bench.harness import EPOCH_MILLIS, Progress


@dataclass(frozen=True)
class CascadeCost:
    shape: str  # "depth d" or "width w"
    hunts: int  # in the bundle: the root and every dependent that fired
    root_seconds: float  # the root's run: its hunt certified (the baseline)
    cascade_seconds: float  # root certificate → bundle executed


@dataclass(frozen=True)
class GasCost:
    hunts: int  # in the bundle
    members: int  # per hunt
    gas: int


def measure_cascades(deployment: InProcessDeployment, clock: ManualClock, shapes: tuple[tuple[str, int], ...], progress: Progress) -> list[CascadeCost]:
    """One cascade per shape: ("depth", d) a chain of d dependents, ("width", w) w dependents of
    the root; each stag a count stag with one intendo that fires alone."""
    aggregator = deployment.aggregator
    costs = []
    for kind, size in shapes:
        progress.note(f"cascade: {kind} {size}")
        root = _stag(deployment, clock, None)
        stags = [root]
        for _ in range(size):
            stags.append(_stag(deployment, clock, stags[-1] if kind == "depth" else root))
        for spec in stags:
            prepared = prepare_intendo(deployment.context, deployment.context.joint_key, spec, SigningIdentity(), Threshold.count(0, levels=spec.levels))
            aggregator.submit(prepared.envelope, prepared.ciphertext)
        for spec in stags[1:]:
            aggregator.run_due(spec.stag_id)  # validated before the root fires (not checked: not armed)
        clock.advance(EPOCH_MILLIS)
        started = time.perf_counter()
        aggregator.run_due(root.stag_id)
        total = time.perf_counter() - started
        (timing,) = [t for t in aggregator.cascades if t.root == root.stag_id]
        costs.append(CascadeCost(f"{kind} {size}", timing.hunts, total - timing.seconds, timing.seconds))
    return costs


def _stag(deployment: InProcessDeployment, clock: ManualClock, trigger: StagSpec | None) -> StagSpec:
    spec = StagSpec.new(
        committee=deployment.aggregator.committee.committee_id, kind=StagKind.COUNT, levels=8, epoch_millis=EPOCH_MILLIS,
        opens_at_millis=clock(), trigger=b"" if trigger is None else trigger.stag_id, title="cascade",
    )
    deployment.aggregator.create_stag(spec)
    return spec


def measure_gas(members: tuple[int, ...], bundles: tuple[int, ...]) -> list[GasCost]:
    """Gas of one `execute` on a fresh contract of a 2-of-3 committee: one hunt of each member
    count, then chains of each bundle length with one member per hunt."""
    keys = [ChainKey.derive(os.urandom(32)) for _ in range(3)]
    committee = CommitteeInfo(
        os.urandom(32), 3, 2, 1, True, tuple(SigningIdentity().verify_key for _ in keys), SigningIdentity().verify_key,
        SigningIdentity().verify_key, tuple(key.address for key in keys),
    )
    chain = ChainLedger.embedded(committee)
    payer = chain.web3.eth.accounts[1]

    def hunt(spec: StagSpec, count: int, cause: HuntCertificate | None) -> HuntCertificate:
        people = [SigningIdentity() for _ in range(count)]
        for person in people:
            chain.deposit(Account(person.verify_key, "main"), 1, payer)
        envelopes = tuple(IntendoEnvelope.sign(p, spec.stag_id, os.urandom(32), 1, now_millis() + 60_000, "main") for p in people)
        outcome = HuntOutcome(spec.stag_id, 1, 5, os.urandom(32), count, 0, envelopes, b"" if cause is None else cause.outcome.digest())
        digest = outcome.chain_facts(spec).digest(committee.committee_id)
        return HuntCertificate(outcome, (), tuple(KeyholderSignature(i, keys[i - 1].sign(digest)) for i in (1, 2)))

    def spec(trigger: StagSpec | None) -> StagSpec:
        return StagSpec.new(
            committee=committee.committee_id, kind=StagKind.CAPITAL, levels=1000, beneficiary=Account(SigningIdentity().verify_key, "b"),
            trigger=b"" if trigger is None else trigger.stag_id,
        )

    costs = []
    for count in members:
        single = spec(None)
        chain.execute(single, hunt(single, count, None))
        costs.append(GasCost(1, count, chain.last_gas))
    for length in bundles:
        specs = [spec(None)]
        for _ in range(length - 1):
            specs.append(spec(specs[-1]))
        certificates: list[HuntCertificate] = []
        for each in specs:
            certificates.append(hunt(each, 1, certificates[-1] if certificates else None))
        chain.execute_bundle(list(zip(specs, certificates)))
        costs.append(GasCost(length, 1, chain.last_gas))
    return costs


def main() -> None:
    import tempfile

    from stagpack.app.inprocess import InProcessDeployment

    progress = Progress(quiet=False)
    gas = measure_gas((1, 8, 32, 128), (2, 4, 8))
    base = gas[0].gas
    print("| hunts in the bundle | members per hunt | gas | gas per member | × one hunt of one member |")
    print("|---|---|---|---|---|")
    for row in gas:
        print(f"| {row.hunts} | {row.members} | {row.gas:,} | {row.gas / (row.hunts * row.members):,.0f} | {row.gas / base:.2f} |")
    with tempfile.TemporaryDirectory(prefix="stagpack-cascade-") as scratch:
        clock = ManualClock()
        deployment = InProcessDeployment.start(scratch, 3, 2, clock=clock)
        cascades = measure_cascades(deployment, clock, (("depth", 1), ("depth", 2), ("depth", 4), ("width", 2), ("width", 4)), progress)
    print("| shape | hunts in the bundle | root: its run to the certificate, validation and hunt (s) | root certificate → bundle executed (s) | × root |")
    print("|---|---|---|---|---|")
    for cost in cascades:
        print(f"| {cost.shape} | {cost.hunts} | {cost.root_seconds:.1f} | {cost.cascade_seconds:.1f} | {cost.cascade_seconds / cost.root_seconds:.2f} |")


if __name__ == "__main__":
    main()
