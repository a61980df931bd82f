"""The malicious minority of the security review, as code: the attacks the protocol must stop.

Used by the attack tests (`tests/protocol/test_security_attacks.py`) and by the benchmark's
malicious-minority game (`stagpack.bench.minority`). Every dishonest byte goes through the hooks
an in-process deployment offers — a keyholder's mask source or partial source, the transport's
interceptors — so every honest party runs the production code.

- `CraftedNoiseMasks`: a keyholder whose check mask carries κ = Δ/2^39 in its noise;
  `CheckTap` + `read_check_noise`: the operator reading the check's noise from its partials.
- `Forger` + `Relay` + `StepWatch`: a keyholder that, handed another keyholder's partials by the
  operator, shifts its own so that a single quorum reveals a hunt of the attacker's choosing.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

from stagpack.app.inprocess import InProcessDeployment
from stagpack.decrypt import DecryptingParty, PartialShare, Quorum
from stagpack.decrypt.circuit import membership_slot
from stagpack.decrypt.computation import SessionComputation, collect_step, facts_so_far
from stagpack.decrypt.threshold import fuse, quorum_partials
from stagpack.fhe import Ciphertext, FheContext, SlotVector
from stagpack.keyholder.local import LocalKeyholder
from stagpack.keyholder.node import RandomMasks
from stagpack.pack import PackSnapshot
from stagpack.session import DECRYPT, Committed, DecryptRequest, DecryptResponse, SessionKind, SessionRef, SignedPartial, Step

READ_BITS = 39  # the operator reads the check's noise this far below the plaintext

# The protocol with its defences off — no noise test, any t decrypt — for benchmarks and the
# attack tests only (`allow_insecure`: production configuration refuses it).
UNDEFENDED: dict[str, Any] = {"fault_bound": 0, "noise_test": False, "allow_insecure": True}
DEFENDED: dict[str, Any] = {}  # the defaults: f = 1 where n > t, the noise test on


class CraftedNoiseMasks:
    """A keyholder's mask source: honest masks, except that the first mask of every hunt (the
    check's) carries the constant κ = Δ/2^39 in its noise (Δ of the input level). The check is
    (d ⊙ window) ⊗ R, so after the modulus switch its noise holds about Δ'/2^39 · (d ⊙ window):
    whoever fuses the check's partials scaled by 2^39 reads d, how close every level is to
    firing. The mask still decrypts to a uniform vector. `InProcessDeployment.start` makes the
    context itself, so the source learns it afterwards (`context`)."""

    def __init__(self) -> None:
        self.context: FheContext | None = None
        self.armed = True  # False: honest masks only

    def mask(self, session: SessionRef, which: int) -> bytes:
        context = self.context
        assert context is not None, "give the mask source the deployment's context first"
        honest = RandomMasks(context).mask(session, which)
        if not self.armed or session.kind is not SessionKind.HUNT or which != Committed.FIRST_MASK:
            return honest
        modulus = 1
        for tower in context.tower_moduli[: context.input_towers]:
            modulus *= tower
        return context.with_added_noise(honest, round(modulus / (context.plaintext_modulus * 2**READ_BITS)))


class CheckTap:
    """The operator's interceptor: keeps each hunt's CHECK request and every partial fetched for it."""

    def __init__(self) -> None:
        self.requests: dict[SessionRef, DecryptRequest] = {}
        self.partials: dict[SessionRef, list[SignedPartial]] = {}
        self._lock = threading.Lock()

    def __call__(self, keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        response = forward(request)
        if call is DECRYPT and request.step is Step.CHECK:
            with self._lock:
                self.requests[request.session] = request
                self.partials.setdefault(request.session, []).extend(response.partials)
        return response


class _Logged:
    """The ciphertext source the operator reads its own store through."""

    def __init__(self, deployment: InProcessDeployment, stag_id: bytes) -> None:
        self._aggregator, self._stag_id = deployment.aggregator, stag_id

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self._aggregator.ciphertext(self._stag_id, intendo_id)


def read_check_noise(deployment: InProcessDeployment, snapshot: PackSnapshot, tap: CheckTap) -> list[SlotVector]:
    """What the operator reads from the last tapped check of `snapshot`'s stag, per quorum: the
    fusion of the partials each scaled by 2^39, minus 2^39 times the ordinary fusion — the
    check's noise, rounded 39 bits below the plaintext (`FheContext.fuse_scaled`)."""
    context, aggregator = deployment.context, deployment.aggregator
    sessions = [ref for ref in tap.requests if ref.stag_id == snapshot.spec.stag_id and ref.height == snapshot.height]
    if not sessions:
        raise LookupError("no check of this stag at this height was decrypted")
    request = tap.requests[sessions[-1]]
    computation = SessionComputation(
        context, snapshot, _Logged(deployment, snapshot.spec.stag_id), request.session, request.commitments,
        request.reveals, aggregator.committee,
    )
    facts = facts_so_far(computation, aggregator.committee, request.prior)
    (check,) = computation.ciphertexts(Step.CHECK, facts)
    collected = collect_step(aggregator.committee, request.session, Step.CHECK, computation.digests([check]), tap.partials[request.session])
    p = context.plaintext_modulus
    readings = []
    for quorum in collected.family:
        partials = quorum_partials(context, check, quorum, collected.items[0])
        readings.append(np.mod(context.fuse_scaled(partials, READ_BITS) - pow(2, READ_BITS, p) * context.fuse(partials), p))
    return readings


def estimate_counts(context: FheContext, reading: SlotVector, levels: int) -> npt.NDArray[np.int64]:
    """The operator's estimate of c[ℓ] from one reading: d[ℓ] + ℓ (d read modulo p, centred)."""
    p = context.plaintext_modulus
    distance = reading[:levels].astype(np.int64)
    distance = np.where(distance > p // 2, distance - p, distance)
    return distance + np.arange(levels)


class StepWatch:
    """An interceptor that remembers, per keyholder, the step it is decrypting right now (a
    partial source does not see the step)."""

    def __init__(self) -> None:
        self.current: dict[int, Step] = {}

    def __call__(self, keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        if call is not DECRYPT:
            return forward(request)
        self.current[keyholder.index] = request.step
        try:
            return forward(request)
        finally:
            self.current.pop(keyholder.index, None)


class Relay:
    """The operator's side of the collusion: keyholder `source`'s partials of each step, handed
    to the forger as soon as they arrive (the forger waits for them, with a bound)."""

    def __init__(self, source: int = 2, timeout_seconds: float = 300.0) -> None:
        self.source = source
        self.timeout = timeout_seconds
        self._shares: dict[Step, list[PartialShare]] = {}
        self._arrived = threading.Condition()

    def __call__(self, keyholder: LocalKeyholder, call: Any, request: Any, forward: Callable[[Any], Any]) -> Any:
        response = forward(request)
        if call is DECRYPT and keyholder.index == self.source:
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
            if not self._arrived.wait_for(lambda: step in self._shares, timeout=self.timeout):
                raise TimeoutError(f"keyholder {self.source}'s {step.value} partials never arrived")
            return self._shares.pop(step)


class Forger:
    """A keyholder's partial source in a hunt (keyholder `index` of a committee of `parties`,
    threshold 2): it waits for the relayed partials of the step, fuses them with its own honest
    ones to learn the step's plaintext z, and shifts its own partial by target − z, so that the
    quorum (index, relay source) reveals a candidate at `level`, its confirmation, and a
    membership vector naming the first `level` pending intendos (weight 1 each). Honest in every
    other step, and when `armed` is False."""

    def __init__(self, party: DecryptingParty, watch: StepWatch, relay: Relay, level: int = 2) -> None:
        self.party, self.watch, self.relay, self.level = party, watch, relay, level
        self.context: FheContext | None = None  # the deployment's, once it exists
        self.armed = True

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        shares = self.party.partials(ciphertext, family, own=own)
        step = self.watch.current.get(self.party.index)
        if not self.armed or not own or step not in (Step.CHECK, Step.CONFIRM, Step.MEMBERSHIP):
            return shares
        context = self.context
        assert context is not None, "give the forger the deployment's context first"
        theirs = self.relay.wait(step)
        quorum = Quorum(self.party.parties, self.party.threshold, tuple(sorted({self.party.index, self.relay.source})))
        plain = fuse(context, ciphertext, quorum, [*shares, *theirs])
        shift = np.mod(self.target(context, step, plain) - plain, context.plaintext_modulus)
        return [
            replace(share, data=context.shifted_partial(share.data, ciphertext, shift)) if share.quorum == () else share
            for share in shares
        ]

    def target(self, context: FheContext, step: Step, plain: SlotVector) -> SlotVector:
        width = context.row_width
        if step is Step.CHECK:  # zero at the forged level in both rows: a candidate
            target = plain.copy()
            target[self.level] = target[width + self.level] = 0
            return target
        target = np.zeros_like(plain)  # confirmation: zero at the candidate
        if step is Step.MEMBERSHIP:
            target[membership_slot(0).column(self.level, width)] = (1 << self.level) - 1
        return target
