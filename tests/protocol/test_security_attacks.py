"""The attacks of the security review, end to end (docs/threat-model.md, "Malicious minority").

Each attack runs twice on a real in-process deployment: against the protocol with its defences
switched off (no noise test, fault bound f = 0: what the code did before), where it must
succeed, and against the defended protocol, where it must fail. The attacker is the operator
colluding with one keyholder; every dishonest byte goes through the production hooks (a
keyholder's mask or partial source, the transport's interceptors) and every honest party runs
the production code. The oracle is the plaintext solver.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import numpy.typing as npt
import pytest

from stagpack.app.inprocess import InProcessDeployment
from stagpack.bench.attacks import (
    DEFENDED, UNDEFENDED, CheckTap, CraftedNoiseMasks, Forger, Relay, StepWatch, read_check_noise,
)
from stagpack.decrypt import DecryptingParty
from stagpack.encoding import StagKind, Threshold
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, PolicyRefusal
from stagpack.identity import SigningIdentity
from stagpack.keyholder.local import LocalKeyholder, intercepting
from stagpack.participant.sdk import prepare_intendo
from stagpack.session import DECRYPT, Step
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

# UNDEFENDED is the protocol as it was: no noise test, and a step decrypted by any t keyholders.

LEVELS = 16
EPOCH_MILLIS = 1_000


class Stag:
    """One COUNT stag of a deployment, mirrored in the plaintext solver."""

    def __init__(self, deployment: InProcessDeployment, clock: ManualClock) -> None:
        self.deployment, self.clock = deployment, clock
        aggregator = deployment.aggregator
        self.spec = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=LEVELS,
            epoch_millis=EPOCH_MILLIS, opens_at_millis=clock(),
        )
        aggregator.create_stag(self.spec)
        self.solver = PackSolver(LEVELS)
        self.ids: list[bytes] = []

    @property
    def stag_id(self) -> bytes:
        return self.spec.stag_id

    def submit(self, others: int) -> bytes:
        context = self.deployment.context
        prepared = prepare_intendo(context, context.joint_key, self.spec, SigningIdentity(), Threshold.count(others, levels=LEVELS))
        self.deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
        self.solver.insert(prepared.intendo_id, others + 1)
        self.ids.append(prepared.intendo_id)
        return prepared.intendo_id

    def results(self) -> dict[int, str]:
        return {result.epoch: result.result.value for result in self.deployment.aggregator.status(self.stag_id).epochs}

    def distance(self) -> npt.NDArray[np.int64]:
        """What the hunt check must hide: d[ℓ] = c[ℓ] − ℓ over the window, mod p."""
        counts = np.asarray(self.solver.counts(), dtype=np.int64)
        distance = np.zeros(LEVELS, dtype=np.int64)
        distance[1:] = counts[1:] - np.arange(1, LEVELS)
        return np.mod(distance, self.deployment.context.plaintext_modulus).astype(np.int64)


# -- 1. a mask whose noise carries a known constant ------------------------------------------------


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_crafted_mask_noise_reads_how_close_the_pack_is(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock, defended: bool
) -> None:
    masks = CraftedNoiseMasks()
    deployment = deployment_factory(3, 2, clock=clock, masks={3: masks}, **(DEFENDED if defended else UNDEFENDED))
    masks.context = deployment.context
    stag = Stag(deployment, clock)
    for others in (3, 5, 5, 9):  # no level is a fixed point: the pack does not fire
        stag.submit(others)
    deployment.aggregator.run_due(stag.stag_id)  # validation (the crafted mask is only in hunts)
    clock.advance(EPOCH_MILLIS)
    snapshot = deployment.aggregator.snapshot(stag.stag_id)  # the height the hunt will run at
    tap = CheckTap()
    with intercepting(deployment.keyholders, tap):
        deployment.aggregator.run_due(stag.stag_id)

    assert stag.solver.hunt() is None and stag.results() == {1: "no-hunt"}
    width = deployment.context.row_width
    distance = stag.distance()
    assert np.any(distance[1:]), "the test needs a pack whose distance is not zero"
    readings = read_check_noise(deployment, snapshot, tap)
    leaked = [np.array_equal(reading[:LEVELS], distance) and np.array_equal(reading[width : width + LEVELS], distance) for reading in readings]
    if not defended:
        # The attack works: every quorum's check leaks d exactly — how many more intendos each
        # level needs — though the check itself only said "nothing fires".
        assert all(leaked)
        assert deployment.aggregator.misbehaving_keyholders == {}
    else:
        # The noise test caught the crafted mask before the check: keyholder 3's masks are out
        # of the session, the check's noise is an honest one, and the reading is flooding.
        assert not any(leaked)
        assert set(deployment.aggregator.misbehaving_keyholders) == {3}
        (request,) = tap.requests.values()
        assert any(partial.statement.step is Step.NOISE for partial in request.prior)


# -- 2. a forged hunt, with the quorum family narrowed to the attacker's ---------------------------

FORGED_LEVEL = 2  # the hunt the attacker forges: the first two intendos, at level 2


def forging_deployment(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock, options: dict[str, object]
) -> tuple[InProcessDeployment, Stag, StepWatch, Relay]:
    tracker, relay = StepWatch(), Relay(source=2)
    forgers: list[Forger] = []

    def forger(party: DecryptingParty) -> Forger:
        forgers.append(Forger(party, tracker, relay, FORGED_LEVEL))
        return forgers[-1]

    deployment = deployment_factory(3, 2, clock=clock, partials={1: forger}, **options)
    for made in forgers:
        made.context = deployment.context
    stag = Stag(deployment, clock)
    for _ in range(4):
        stag.submit(9)  # each waits for nine others: nothing may fire
    deployment.aggregator.run_due(stag.stag_id)
    assert deployment.aggregator.status(stag.stag_id).counted == 4
    return deployment, stag, tracker, relay


def test_undefended_a_narrowed_family_forges_a_hunt(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock
) -> None:
    """With f = 0 the operator leaves keyholder 3 out ("offline"): the family is the single
    quorum (1, 2), no quorum checks keyholder 1, and its shifted partials fire a hunt that the
    intendos' thresholds never allowed. The ledger executes it."""
    deployment, stag, tracker, relay = forging_deployment(deployment_factory, clock, UNDEFENDED)
    deployment.keyholders[2].online = False
    clock.advance(EPOCH_MILLIS)
    with intercepting(deployment.keyholders, tracker), intercepting(deployment.keyholders, relay):
        deployment.aggregator.run_due(stag.stag_id)
    assert stag.solver.hunt() is None
    (certificate,) = deployment.aggregator.hunts(stag.stag_id)
    assert certificate.outcome.level == FORGED_LEVEL
    assert certificate.outcome.member_ids == tuple(stag.ids[:FORGED_LEVEL])
    assert [execution.intendo_id for execution in deployment.ledger.executions(stag.stag_id)] == stag.ids[:FORGED_LEVEL]


def test_defended_the_forger_is_outvoted_or_the_committee_waits(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock
) -> None:
    """With f = 1 the same attack fails both ways: with keyholder 3 left out, two keyholders are
    fewer than t + f = 3 and nothing is decrypted; with everyone in, the quorum (2, 3) contradicts
    the forged plaintext and the session aborts with nothing revealed. No hunt, ever. (Three
    keyholders cannot also say which one lied: leaving any one out leaves fewer than t + f. That
    takes n ≥ t + f + 1; docs/threat-model.md lists the stall this leaves.)"""
    deployment, stag, tracker, relay = forging_deployment(deployment_factory, clock, DEFENDED)
    deployment.keyholders[2].online = False
    clock.advance(EPOCH_MILLIS)
    with intercepting(deployment.keyholders, tracker), intercepting(deployment.keyholders, relay):
        with pytest.raises(CommitteeUnavailable):
            deployment.aggregator.run_due(stag.stag_id)
        assert stag.results() == {1: "committee-unavailable"}
        deployment.keyholders[2].online = True
        clock.advance(EPOCH_MILLIS)
        with pytest.raises(IntegrityFailure):
            deployment.aggregator.run_due(stag.stag_id)
    assert stag.results() == {1: "committee-unavailable", 2: "integrity-failure"}
    assert deployment.aggregator.hunts(stag.stag_id) == []
    assert list(deployment.ledger.executions(stag.stag_id)) == []


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_keyholders_refuse_a_narrowed_family(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock, defended: bool
) -> None:
    """A malicious operator sends an honest keyholder a check request whose family is the
    single quorum (1, 2) though all three keyholders contribute masks. With f = 1 the keyholder
    refuses it (a step is decrypted by t + f); with f = 0 it is served — the old behaviour."""
    deployment = deployment_factory(3, 2, clock=clock, **(DEFENDED if defended else UNDEFENDED))
    stag = Stag(deployment, clock)
    for others in (1, 4):
        stag.submit(others)
    deployment.aggregator.run_due(stag.stag_id)
    outcomes: list[str] = []

    def narrowing(keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        if call is DECRYPT and request.step is Step.CHECK and keyholder.index == 2 and not outcomes:
            try:
                forward(replace(request, quorums=((1, 2),)))
                outcomes.append("served")
            except PolicyRefusal as refusal:
                outcomes.append(f"refused: {refusal}")
        return forward(request)

    clock.advance(EPOCH_MILLIS)
    with intercepting(deployment.keyholders, narrowing):
        deployment.aggregator.run_due(stag.stag_id)
    if defended:
        (outcome,) = outcomes
        assert outcome.startswith("refused") and "t + f" in outcome
    else:
        assert outcomes == ["served"]
    assert stag.results() == {1: "no-hunt"} and stag.solver.hunt() is None  # the honest run goes on


# -- 3. one flipped bit in an intendo --------------------------------------------------------------


def submit_with_flipped_bit(stag: Stag) -> bytes:
    """An intendo whose ciphertext has one bit of one coefficient flipped, under an envelope the
    attacker signs for exactly those bytes: every byte-layout check passes, and the noise is
    about 2^40 times too large for anything computed from it to decrypt."""
    context = stag.deployment.context
    attacker = SigningIdentity()
    honest = prepare_intendo(context, context.joint_key, stag.spec, attacker, Threshold.count(1, levels=LEVELS))
    flipped = context.with_flipped_bit(honest.ciphertext, 5, 40)
    envelope = IntendoEnvelope.sign(
        attacker, stag.stag_id, hashlib.sha256(flipped).digest(), 1, honest.envelope.statement.expires_at_millis
    )
    stag.deployment.aggregator.submit(envelope, flipped)
    return envelope.intendo_id


@pytest.mark.parametrize("defended", [False, True], ids=["undefended", "defended"])
def test_a_flipped_bit_does_not_stall_the_stag(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock, defended: bool
) -> None:
    deployment = deployment_factory(3, 2, clock=clock, **(DEFENDED if defended else UNDEFENDED))
    stag = Stag(deployment, clock)
    stag.submit(1)
    stag.submit(1)  # together, a fixed point at level 2
    submit_with_flipped_bit(stag)
    aggregator = deployment.aggregator
    if not defended:
        # The validity check of the batch cannot decrypt, every quorum reads garbage, and the
        # same batch comes up again on every run: the stag never counts anything.
        for _ in range(3):
            with pytest.raises(IntegrityFailure):
                aggregator.run_due(stag.stag_id)
        status = aggregator.status(stag.stag_id)
        assert status.counted == 0 and status.awaiting_validation == 3
        return
    # The batch's input noise test fails, so its intendos are validated one at a time: the
    # flipped one fails its own noise test and is rejected; the honest ones are counted; no
    # keyholder is blamed for an intendo's noise.
    for _ in range(4):
        aggregator.run_due(stag.stag_id)
        if aggregator.status(stag.stag_id).awaiting_validation == 0:
            break
    status = aggregator.status(stag.stag_id)
    assert (status.counted, status.rejected, status.awaiting_validation) == (2, 1, 0)
    assert aggregator.suspect_keyholders == set() and aggregator.misbehaving_keyholders == {}
    clock.advance(EPOCH_MILLIS)
    aggregator.run_due(stag.stag_id)
    hunt = stag.solver.hunt()  # the solver holds the honest intendos only
    assert hunt is not None and stag.results()[1] == "hunt"
    (certificate,) = aggregator.hunts(stag.stag_id)
    assert certificate.outcome.level == hunt.level and certificate.outcome.member_ids == hunt.members
