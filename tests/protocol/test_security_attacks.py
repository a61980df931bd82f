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
import threading
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from support.faults import StepTracker

from stagpack.app.inprocess import InProcessDeployment
from stagpack.decrypt import DecryptingParty, PartialShare, Quorum
from stagpack.decrypt.circuit import membership_slot
from stagpack.decrypt.computation import SessionComputation, collect_step, facts_so_far
from stagpack.decrypt.threshold import fuse, quorum_partials
from stagpack.encoding import StagKind, Threshold
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, PolicyRefusal
from stagpack.fhe import Ciphertext, FheContext
from stagpack.identity import SigningIdentity
from stagpack.keyholder.local import LocalKeyholder, intercepting
from stagpack.keyholder.node import RandomMasks
from stagpack.participant.sdk import prepare_intendo
from stagpack.pack import PackSnapshot
from stagpack.session import DECRYPT, Committed, DecryptRequest, DecryptResponse, SessionKind, SessionRef, Step
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

# The protocol as it was: no noise test, and a step decrypted by any t keyholders.
UNDEFENDED: dict[str, object] = {"fault_bound": 0, "noise_test": False, "allow_insecure": True}
DEFENDED: dict[str, object] = {}  # the defaults: f = 1 where n > t, the noise test on

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

    def distance(self) -> np.ndarray:
        """What the hunt check must hide: d[ℓ] = c[ℓ] − ℓ over the window, mod p."""
        counts = np.asarray(self.solver.counts(), dtype=np.int64)
        distance = np.zeros(LEVELS, dtype=np.int64)
        distance[1:] = counts[1:] - np.arange(1, LEVELS)
        return np.mod(distance, self.deployment.context.plaintext_modulus)


# -- 1. a mask whose noise carries a known constant ------------------------------------------------

READ_BITS = 39  # the attacker reads the check's noise this far below the plaintext


class CraftedNoiseMasks:
    """Keyholder 3's mask source: honest masks, except that the first mask of every hunt (the
    check's) carries the constant κ = Δ/2^39 in its noise. The check is (d ⊙ window) ⊗ R, so its
    noise then holds κ·(d ⊙ window): whoever fuses the check's partials scaled by 2^39 reads d,
    how close every level is to firing, in the clear. The mask still decrypts to a uniform
    vector: nothing about it looks wrong to a keyholder that only checks bytes."""

    def __init__(self) -> None:
        self.context: FheContext | None = None

    def mask(self, session: SessionRef, which: int) -> bytes:
        context = self.context
        assert context is not None, "bind the deployment's context first"
        honest = RandomMasks(context).mask(session, which)
        if session.kind is not SessionKind.HUNT or which != Committed.FIRST_MASK:
            return honest
        modulus = 1
        for tower in context.tower_moduli[: context.input_towers]:
            modulus *= tower
        kappa = round(modulus / (context.plaintext_modulus * 2**READ_BITS))
        return context.with_added_noise(honest, kappa)


class CheckTap:
    """The operator's interceptor: keeps the CHECK step's request and every partial it fetches."""

    def __init__(self) -> None:
        self.request: DecryptRequest | None = None
        self.partials: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        response = forward(request)
        if call is DECRYPT and request.step is Step.CHECK:
            with self._lock:
                self.request = request
                self.partials.extend(response.partials)
        return response


class _Logged:
    """The ciphertext source the operator reads its own store through."""

    def __init__(self, deployment: InProcessDeployment, stag_id: bytes) -> None:
        self._aggregator, self._stag_id = deployment.aggregator, stag_id

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self._aggregator.ciphertext(self._stag_id, intendo_id)


def operator_readings(deployment: InProcessDeployment, snapshot: PackSnapshot, tap: CheckTap) -> list[np.ndarray]:
    """What the operator reads from the check's partials, per quorum: the fusion of the partials
    each scaled by 2^39, minus 2^39 times the ordinary fusion — the check's noise, rounded
    39 bits below the plaintext (FheContext.fuse_scaled)."""
    context, aggregator = deployment.context, deployment.aggregator
    request = tap.request
    assert request is not None, "no check step was decrypted"
    computation = SessionComputation(
        context, snapshot, _Logged(deployment, snapshot.spec.stag_id), request.session, request.commitments,
        request.reveals, aggregator.committee,
    )
    facts = facts_so_far(computation, aggregator.committee, request.prior)
    (check,) = computation.ciphertexts(Step.CHECK, facts)
    collected = collect_step(aggregator.committee, request.session, Step.CHECK, computation.digests([check]), tap.partials)
    p = context.plaintext_modulus
    readings = []
    for quorum in collected.family:
        partials = quorum_partials(context, check, quorum, collected.items[0])
        readings.append(np.mod(context.fuse_scaled(partials, READ_BITS) - pow(2, READ_BITS, p) * context.fuse(partials), p))
    return readings


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
    readings = operator_readings(deployment, snapshot, tap)
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
        request = tap.request
        assert request is not None
        assert any(partial.statement.step is Step.NOISE for partial in request.prior)


# -- 2. a forged hunt, with the quorum family narrowed to the attacker's ---------------------------

FORGED_LEVEL = 2  # the hunt the attacker forges: the first two intendos, at level 2


class Forger:
    """Keyholder 1's partial source in a hunt: it waits for keyholder 2's partials of the step
    (the colluding operator passes them on), fuses them with its own honest ones to learn the
    step's plaintext z, and shifts its own partial by target − z, so that the quorum (1, 2)
    reveals the attacker's target — a candidate at FORGED_LEVEL, its confirmation, and a
    membership vector naming the first two intendos. Honest in every other step."""

    def __init__(self, party: DecryptingParty, tracker: StepTracker, relay: Relay) -> None:
        self.party, self.tracker, self.relay = party, tracker, relay
        self.context: FheContext | None = None  # the deployment's, once it exists

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        shares = self.party.partials(ciphertext, family, own=own)
        step = self.tracker.current.get(1)
        if step not in (Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP) or not own:
            return shares
        context = self.context
        assert context is not None
        theirs = self.relay.wait(step)
        quorum = Quorum(3, 2, (1, 2))
        plain = fuse(context, ciphertext, quorum, [*shares, *theirs])
        shift = np.mod(self.target(context, step, plain) - plain, context.plaintext_modulus)
        return [
            replace(share, data=context.shifted_partial(share.data, ciphertext, shift)) if share.quorum == () else share
            for share in shares
        ]

    @staticmethod
    def target(context: FheContext, step: Step, plain: np.ndarray) -> np.ndarray:
        width = context.row_width
        if step is Step.CHECK:  # zero at the forged level in both rows: a candidate
            target = plain.copy()
            target[FORGED_LEVEL] = target[width + FORGED_LEVEL] = 0
            return target
        target = np.zeros_like(plain)  # confirmation: zero at the candidate
        if step is Step.MEMBERSHIP:  # the first FORGED_LEVEL pending intendos, weight 1 each
            target[membership_slot(0).column(FORGED_LEVEL, width)] = (1 << FORGED_LEVEL) - 1
        return target


class Relay:
    """The operator's side of the collusion: keyholder 2's partials of each step, handed to the
    forger as soon as keyholder 2 answers (the forger waits, with a bound, for them)."""

    def __init__(self) -> None:
        self._shares: dict[Step, list[PartialShare]] = {}
        self._arrived = threading.Condition()

    def __call__(self, keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        response = forward(request)
        if call is DECRYPT and keyholder.index == 2:
            assert isinstance(response, DecryptResponse)
            shares = [
                PartialShare(signed.statement.producer, signed.statement.on_behalf_of, signed.statement.quorum, signed.data)
                for signed in response.partials
            ]
            with self._arrived:
                self._shares[request.step] = shares
                self._arrived.notify_all()
        return response

    def wait(self, step: Step) -> list[PartialShare]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: step in self._shares, timeout=300):
                raise TimeoutError(f"keyholder 2's {step.value} partials never arrived")
            return self._shares.pop(step)


def forging_deployment(
    deployment_factory: Callable[..., InProcessDeployment], clock: ManualClock, options: dict[str, object]
) -> tuple[InProcessDeployment, Stag, StepTracker, Relay]:
    tracker, relay = StepTracker(), Relay()
    forgers: list[Forger] = []
    deployment = deployment_factory(
        3, 2, clock=clock, partials={1: lambda party: forgers.append(Forger(party, tracker, relay)) or forgers[-1]}, **options
    )
    for forger in forgers:
        forger.context = deployment.context
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
