"""The keyholder decryption policy (DESIGN.md §4), probed the way a malicious operator would.

Against an in-process deployment, the benchmark plays the aggregator: it opens an honest hunt
session on a quiet pack (one that does not fire), then asks every keyholder directly (through
`LocalKeyholder`, so every record crosses its byte encoding) for decryptions the policy forbids.
Each row records how many keyholders refused, with which error, and whether the refusal was
logged. Control rows (the honest check of the same session) must be served, which shows the
refusals are the policy and not a broken session. Besides what is asked, the probe tries who
asks: a credential with a forged signature, one from a caller the committee does not name, and
an accepted credential presented again (every keyholder serves only the aggregator its
transcript names, each credential once).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from stagpack import codec
from stagpack.calls import SignedCredential, sign_call
from stagpack.decrypt import circuit
from stagpack.identity import SigningIdentity
from stagpack.keyholder.local import LocalKeyholder
from stagpack.decrypt import quorum_family
from stagpack.errors import StagpackError
from stagpack.decrypt.computation import SessionComputation, read_step
from stagpack.app.inprocess import InProcessDeployment
from stagpack.log import EntryKind, LogEntry
from stagpack.pack import MemoryCiphertexts, PackSnapshot, PackState
from stagpack.session import (
    DECRYPT,
    OPEN_SESSION,
    REVEAL_MASKS,
    DecryptRequest,
    DecryptResponse,
    MaskReveal,
    RevealRequest,
    Committed,
    SessionKind,
    SessionRef,
    SignedPartial,
    Step,
)
from stagpack.stag import ManualClock

from stagpack.bench.harness import EPOCH_MILLIS, BenchStag

KEYHOLDER_LOG = "stagpack.keyholder"


@dataclass(frozen=True)
class PolicyRow:
    """One request sent to every keyholder, and what they answered."""

    request: str
    would_reveal: str
    asked: int
    refused_by: int
    errors: tuple[str, ...]  # distinct error types
    message: str  # the first refusal's message
    logged: int  # keyholder log lines saying "refused" while it was asked
    control: bool = False  # an honest request that must be served

    @property
    def as_expected(self) -> bool:
        return self.refused_by == 0 if self.control else self.refused_by == self.asked


class _RefusalLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "refused" in record.getMessage():
            self.count += 1


def replay_snapshot(deployment: InProcessDeployment, stag: BenchStag) -> PackSnapshot:
    """The operator's own replica of the stag, from the aggregator's public log."""
    aggregator = deployment.aggregator
    state = PackState(deployment.context, aggregator.committee, stag.stag_id)
    height = aggregator.status(stag.stag_id).height
    entries: list[tuple[LogEntry, bytes | None]] = list(aggregator.read_log(stag.stag_id, 0, height))
    for entry, ciphertext in entries:
        state.apply(entry, ciphertext if entry.kind is EntryKind.SUBMISSION else None, MemoryCiphertexts(stag.ciphertexts))
    return state.snapshot()


class _Prober:
    """Sends one request to every keyholder and tabulates the answers."""

    def __init__(self, keyholders: list[LocalKeyholder]) -> None:
        self.keyholders = keyholders
        self.rows: list[PolicyRow] = []
        self._log = _RefusalLog()
        logging.getLogger(KEYHOLDER_LOG).addHandler(self._log)

    def close(self) -> None:
        logging.getLogger(KEYHOLDER_LOG).removeHandler(self._log)

    def ask(self, request: str, would_reveal: str, call: Callable[[LocalKeyholder], object], *, control: bool = False) -> list[object]:
        before = self._log.count
        answers: list[object] = []
        errors: list[StagpackError] = []
        for keyholder in self.keyholders:
            try:
                answers.append(call(keyholder))
            except StagpackError as error:
                errors.append(error)
        first = str(errors[0]) if errors else "served"
        self.rows.append(
            PolicyRow(
                request, would_reveal, len(self.keyholders), len(errors),
                tuple(sorted({type(error).__name__ for error in errors})), first, self._log.count - before, control,
            )
        )
        return answers


def quiet_stag(deployment: InProcessDeployment, clock: ManualClock) -> BenchStag:
    """A validated pack that never fires: three intendos that each need ten others."""
    stag = BenchStag.create(deployment, clock, 16, "policy probe")
    for _ in range(3):
        stag.submit_count(10)
    stag.validate()
    return stag


def run_policy_checks(deployment: InProcessDeployment, clock: ManualClock, stag: BenchStag | None = None) -> list[PolicyRow]:
    """Every kind of policy-violating request, each sent to every keyholder, in a new epoch of
    `stag` (a validated pack that does not fire; by default a fresh one). The probe leaves the
    stag with one more intendo awaiting validation and its epoch checked."""
    context = deployment.context
    committee = deployment.aggregator.committee
    keyholders = deployment.keyholders
    stag = stag or quiet_stag(deployment, clock)
    if stag.solver.hunt() is not None:
        raise ValueError("the policy probe needs a pack that does not fire")
    clock.advance(EPOCH_MILLIS)
    epoch = stag.spec.current_epoch(clock())
    snapshot = replay_snapshot(deployment, stag)
    session = SessionRef(stag.stag_id, SessionKind.HUNT, epoch, snapshot.height, snapshot.head)
    prober = _Prober(keyholders)
    try:
        commitments = tuple(keyholder.call(OPEN_SESSION, session) for keyholder in keyholders)
        reveals = tuple(keyholder.call(REVEAL_MASKS, RevealRequest(session, commitments)) for keyholder in keyholders)
        computation = SessionComputation(
            context, snapshot, MemoryCiphertexts(stag.ciphertexts), session, commitments, reveals, committee
        )
        family = tuple(
            quorum.members
            for quorum in quorum_family(committee.parties, committee.threshold, frozenset(k.index for k in keyholders), committee.fault_bound)
        )

        def decrypt(step: Step, claimed: bytes | tuple[bytes, ...], prior: tuple[SignedPartial, ...] = (), masks: tuple[MaskReveal, ...] = reveals, quorums: tuple[tuple[int, ...], ...] = family) -> Callable[[LocalKeyholder], object]:
            request = DecryptRequest(session, step, quorums, commitments, masks, prior, claimed if isinstance(claimed, tuple) else (claimed,))
            return lambda keyholder: keyholder.call(DECRYPT, request)

        def signed_by(
            identity: SigningIdentity, request: DecryptRequest, forge: bool = False, sent: dict[int, SignedCredential] | None = None
        ) -> Callable[[LocalKeyholder], object]:
            """The request with a credential made by `identity` (its signature replaced by another
            key's when `forge`), handed to the keyholder as its transport would; `sent` keeps
            each credential (to present it again)."""
            body = codec.encode(request)

            def call(keyholder: LocalKeyholder) -> object:
                node = keyholder.node
                credential = sign_call(identity, DECRYPT.rpc, node.identity.verify_key, body, clock())
                if forge:
                    forged = sign_call(SigningIdentity(), DECRYPT.rpc, node.identity.verify_key, body, clock())
                    credential = replace(credential, signature=forged.signature)
                if sent is not None:
                    credential = sent.setdefault(keyholder.index, credential)
                return node.dispatch(DECRYPT, DECRYPT.decode_request(body), credential)

            return call

        # the noise test of every contributor's masks runs first, honestly (it reveals nothing)
        start = computation.initial_facts()
        noise_request = DecryptRequest(
            session, Step.NOISE, family, commitments, reveals, (), computation.digests(computation.ciphertexts(Step.NOISE, start))
        )
        noise_partials = tuple(
            partial for keyholder in keyholders for partial in keyholder.call(DECRYPT, noise_request).partials
        )
        start = read_step(computation, committee, Step.NOISE, start, noise_partials)
        (check,) = computation.ciphertexts(Step.CHECK, start)
        honest = context.ciphertext_to_bytes(check)
        assert snapshot.counted_sum is not None
        one_intendo = next(iter(stag.ciphertexts.values()))
        without_one = context.subtract(snapshot.counted_sum, context.compress(context.ciphertext_from_bytes(one_intendo)))
        committed_mask = context.compress(
            circuit.sum_masks(context, [computation.committed(keyholder, Committed.FIRST_MASK) for keyholder in computation.contributors])
        )
        forged = circuit.hunt_check(context, without_one, committed_mask, stag.spec.levels, snapshot.executed_level)
        flipped = bytearray(honest)
        flipped[len(flipped) // 2] ^= 0x01
        # the mask R_1' = Enc(1) − R_2 − … − R_n makes R = 1: the check would decrypt d itself
        others = [context.ciphertext_from_bytes(reveal.masks[0]) for reveal in reveals[1:]]
        cancelling = context.encrypt(context.joint_key, np.ones(context.slot_count, dtype=np.int64))
        for mask in others:
            cancelling = context.subtract(cancelling, mask)
        chosen_masks = (replace(reveals[0], masks=(context.ciphertext_to_bytes(cancelling), *reveals[0].masks[1:])),) + reveals[1:]
        chosen_sum = context.compress(circuit.sum_masks(context, [cancelling, *others]))
        chosen = circuit.hunt_check(context, snapshot.counted_sum, chosen_sum, stag.spec.levels, snapshot.executed_level)

        # first, before any request has made the keyholders compute this session's ciphertexts
        prober.ask("the check with a mask that cancels the others (R = 1), not the committed one", "d = c − ℓ, unmasked",
                   decrypt(Step.CHECK, context.ciphertext_digest(chosen), noise_partials, masks=chosen_masks))
        prober.ask("a raw intendo (someone's encrypted thermometer)", "that participant's threshold",
                   decrypt(Step.CHECK, hashlib.sha256(one_intendo).digest(), noise_partials))
        prober.ask("the pack sum c = Σ w_i, unmasked", "how close the pack is to firing",
                   decrypt(Step.CHECK, context.ciphertext_digest(snapshot.counted_sum), noise_partials))
        prober.ask("the distance d = c − ramp, unmasked", "c − ℓ at every level",
                   decrypt(Step.CHECK, context.ciphertext_digest(circuit.fixed_point_distance(context, snapshot.counted_sum, stag.spec.levels)), noise_partials))
        prober.ask("a forged evaluation: the check over the pack minus one intendo", "the fixed points of a pack the log never held",
                   decrypt(Step.CHECK, context.ciphertext_digest(forged), noise_partials))
        prober.ask("a forged evaluation: random digest", "whatever the operator computed",
                   decrypt(Step.CHECK, os.urandom(32), noise_partials))
        prober.ask("the honest check with one byte off", "a ciphertext the keyholder did not derive",
                   decrypt(Step.CHECK, hashlib.sha256(bytes(flipped)).digest(), noise_partials))
        if committee.decrypting > 1:  # keyholders 1 .. t + f − 1: a family one keyholder short of t + f
            narrowed = (tuple(range(1, committee.decrypting)),)
            prober.ask(f"the honest check, by a family narrowed to {len(narrowed[0])} keyholders (below t + f = {committee.decrypting})",
                       "a shift by up to f dishonest keyholders, unchecked",
                       decrypt(Step.CHECK, context.ciphertext_digest(check), noise_partials, quorums=narrowed))
        honest_request = DecryptRequest(session, Step.CHECK, family, commitments, reveals, noise_partials, (context.ciphertext_digest(check),))
        prober.ask("the honest check with a forged credential (the aggregator's key, another key's signature)",
                   "whatever anyone who can reach a keyholder asks", signed_by(deployment.aggregator_identity, honest_request, forge=True))
        prober.ask("the honest check from a caller the committee does not name (a valid credential of its own key)",
                   "whatever anyone who can reach a keyholder asks", signed_by(SigningIdentity(), honest_request))
        accepted: dict[int, SignedCredential] = {}
        answers = prober.ask("control: the honest check of this session", "no hunt (the pack does not fire)",
                             signed_by(deployment.aggregator_identity, honest_request, sent=accepted), control=True)
        prober.ask("the control's accepted credential presented again (a replay)", "a recorded call, played back",
                   signed_by(deployment.aggregator_identity, honest_request, sent=accepted))
        check_partials = noise_partials + tuple(
            partial for answer in answers if isinstance(answer, DecryptResponse) for partial in answer.partials
        )
        level = int(np.argmax(stag.counts() > 0)) or 1  # the lowest threshold in the pack
        prober.ask("a confirmation after a check that did not fire", "whether level ℓ is a fixed point",
                   decrypt(Step.CONFIRM, context.ciphertext_digest(computation.ciphertexts(Step.CONFIRM, replace(start, through=Step.CHECK, candidates=(level,)))[0]), check_partials))
        prober.ask("membership without a fired hunt", "who would join at level ℓ",
                   decrypt(Step.MEMBERSHIP, context.ciphertext_digest(computation.ciphertexts(Step.MEMBERSHIP, replace(start, through=Step.CONFIRM, level=level))[0]), check_partials))
        stag.submit_count(stag.spec.levels - 2)  # the log moves on by one entry ...
        moved = replay_snapshot(deployment, stag)
        second = SessionRef(stag.stag_id, SessionKind.HUNT, epoch, moved.height, moved.head)
        prober.ask("a second check in the same epoch (after one more submission)", "the new intendo's effect, by differencing",
                   lambda keyholder: keyholder.call(OPEN_SESSION, second))
        early = SessionRef(stag.stag_id, SessionKind.HUNT, epoch + 1, moved.height, moved.head)
        prober.ask("a check of the next epoch before it is due", "an extra look at the pack",
                   lambda keyholder: keyholder.call(OPEN_SESSION, early))
    finally:
        prober.close()
    return prober.rows
