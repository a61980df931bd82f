"""Malformed intendos through the whole protocol (DESIGN.md §7).

Hand-crafted ciphertexts, encrypted under the committee's real key and properly signed, go
through the aggregator like any submission. The keyholders' batched, masked well-formedness
check must reject every one of them (revealing only valid/invalid), count every valid one, record
rejections against the signer and rate-limit it — and the hunts must still equal the plaintext
solver's over the valid intendos alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from stagpack.accounts import Account
from stagpack.encoding import SlotLayout, StagKind, Threshold
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import RateLimited
from stagpack.fhe import SlotVector
from stagpack.identity import SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

from support.protocol import TAG, deposit, start_deployment

P = 65537


@pytest.fixture(scope="module")
def deployment(scratch: Callable[[str], Path]) -> Iterator[tuple[InProcessDeployment, ManualClock]]:
    clock = ManualClock()
    yield start_deployment(scratch("inputs"), 3, 2, clock), clock


def malformed(layout: SlotLayout, levels: int) -> dict[str, tuple[SlotVector, int]]:
    """name -> (slot vector, weight stated in the envelope); each breaks one rule."""
    def thermometer(level: int, weight: int) -> SlotVector:
        return layout.thermometer(Threshold(level, weight), levels)

    width = layout.row_width
    cases: dict[str, tuple[SlotVector, int]] = {}
    vector = thermometer(5, 3); vector[[8, width + 8]] = 2 * 3
    cases["a value of twice the weight"] = (vector, 3)
    vector = thermometer(5, 3); vector[[2, width + 2]] = P - 1
    cases["a -1"] = (vector, 3)
    vector = thermometer(5, 3); vector[[9, width + 9]] = 0
    cases["non-monotone"] = (vector, 3)
    cases["weight differs from the envelope"] = (thermometer(5, 4), 3)
    vector = thermometer(5, 3); vector[width + 3] = 3
    cases["rows disagreeing"] = (vector, 3)
    vector = thermometer(5, 3); vector[[levels + 2, width + levels + 2]] = 3
    cases["levels beyond L"] = (vector, 3)
    cases["nothing at all (a threshold beyond L)"] = (layout.zeros(), 3)
    vector = thermometer(1, 3); vector[[0, width]] = 3
    cases["threshold 0 (counts before anyone joins)"] = (vector, 3)
    vector = thermometer(5, 3); vector[[12, width + 12]] = 9; vector[[13, width + 13]] = 9
    cases["a fake crowd: a larger step in the middle"] = (vector, 3)
    return cases


def submit_vector(deployment: InProcessDeployment, clock: ManualClock, spec: StagSpec, identity: SigningIdentity, vector: SlotVector, weight: int) -> bytes:
    context = deployment.context
    ciphertext = context.ciphertext_to_bytes(context.encrypt(context.joint_key, vector))
    tag = ""
    if spec.kind is StagKind.CAPITAL:
        tag = TAG
        deposit(deployment.aggregator, identity, weight)
    envelope = IntendoEnvelope.sign(identity, spec.stag_id, hashlib.sha256(ciphertext).digest(), weight, clock() + 600_000, tag)
    return deployment.aggregator.submit(envelope, ciphertext).intendo_id


def test_malformed_ciphertexts_are_rejected_and_hunts_still_match_the_solver(
    deployment: tuple[InProcessDeployment, ManualClock],
) -> None:
    system, clock = deployment
    aggregator = system.aggregator
    levels = 40
    spec = StagSpec.new(
        committee=aggregator.committee.committee_id, kind=StagKind.CAPITAL, levels=levels, epoch_millis=1000, opens_at_millis=clock(),
        beneficiary=Account(SigningIdentity().verify_key, "proceeds"),
    )
    aggregator.create_stag(spec)
    layout = SlotLayout(system.context.slot_count, P)
    solver = PackSolver(levels)
    valid_conditions = [Threshold(3, 3), Threshold(6, 3), Threshold(9, 3), Threshold(30, 2), Threshold(9, 1)]
    valid, bad = {}, {}
    rng = np.random.default_rng(5)
    cases = list(malformed(layout, levels).items())
    order = [("valid", index) for index in range(len(valid_conditions))] + [("bad", index) for index in range(len(cases))]
    for kind, index in [order[i] for i in rng.permutation(len(order))]:
        identity = SigningIdentity()
        if kind == "valid":
            threshold = valid_conditions[index]
            intendo = submit_vector(system, clock, spec, identity, layout.thermometer(threshold, levels), threshold.weight)
            valid[intendo] = threshold
            solver.insert(intendo, threshold.level, threshold.weight)
        else:
            name, (vector, weight) = cases[index]
            bad[submit_vector(system, clock, spec, identity, vector, weight)] = name
    clock.advance(spec.epoch_millis)
    aggregator.run_due(spec.stag_id)

    for intendo, name in bad.items():
        assert aggregator.intendo(spec.stag_id, intendo).status.value == "rejected", name
    for intendo in valid:
        assert aggregator.intendo(spec.stag_id, intendo).status.value in ("counted", "executed")
    status = aggregator.status(spec.stag_id)
    assert status.rejected == len(bad) and status.counted + status.executed == len(valid)
    expected = solver.hunt()
    assert expected is not None
    (certificate,) = status.hunts
    assert certificate.outcome.level == expected.level
    assert set(certificate.outcome.member_ids) == set(expected.members)


def test_an_identity_that_keeps_submitting_malformed_intendos_is_rate_limited(
    deployment: tuple[InProcessDeployment, ManualClock],
) -> None:
    system, clock = deployment
    aggregator = system.aggregator
    levels = 20
    spec = StagSpec.new(committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=levels, epoch_millis=1000, opens_at_millis=clock())
    aggregator.create_stag(spec)
    layout = SlotLayout(system.context.slot_count, P)
    mallory = SigningIdentity()
    limit = aggregator.limits.max_rejections
    for attempt in range(limit):
        vector = layout.thermometer(Threshold(2, 1), levels)
        vector[[5, layout.row_width + 5]] = 2  # a 2 where only 0 or 1 belong
        intendo = submit_vector(system, clock, spec, mallory, vector, 1)
        aggregator.run_due(spec.stag_id)
        assert aggregator.intendo(spec.stag_id, intendo).status.value == "rejected", attempt
    height = aggregator.status(spec.stag_id).height
    with pytest.raises(RateLimited):
        submit_vector(system, clock, spec, mallory, layout.thermometer(Threshold(2, 1), levels), 1)
    assert aggregator.status(spec.stag_id).height == height, "a refused submission changes nothing"
