"""What a session decrypts, and what its steps revealed, computed the same way by everyone.

`SessionComputation` derives the ciphertexts of every step from a pack frozen at the session's
log position and the revealed masks. `read_step` verifies a complete set of signed partials for
one step against those ciphertexts and fuses it into facts; `read_steps` walks the step graph
(`stagpack.decrypt.steps`) from the first step; `session_outcome` turns the facts of a finished
session into its outcome. The aggregator drives a session with these functions, and every
keyholder uses the same ones to recompute what it is asked to decrypt and to re-derive what
earlier steps revealed before it takes part in the next (`stagpack.keyholder.policy`).

Evidence that does not check out (a partial signed for another session, masks that do not match
their commitments, a ciphertext nobody recomputed) raises `UnverifiedEvidence`; quorums whose
fusions disagree raise `IntegrityFailure`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from stagpack import codec
from stagpack.decrypt import (
    PartialShare,
    Quorum,
    quorum_family,
    reveal_confirmation,
    reveal_hunt_check,
    reveal_membership,
    reveal_validity,
)
from stagpack.decrypt import circuit
from stagpack.decrypt.steps import SessionFacts, next_step, require_step, steps
from stagpack.errors import IntegrityFailure, InvalidInput, UnverifiedEvidence
from stagpack.fhe import Ciphertext, FheContext, SlotVector
from stagpack.identity import verify_signature
from stagpack.log import HuntOutcome, ValidationOutcome
from stagpack.committee import CommitteeInfo
from stagpack.pack import CiphertextSource, PackSnapshot
from stagpack.session import (
    MaskReveal,
    PartialStatement,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
)

Outcome = HuntOutcome | ValidationOutcome
# Sees every fused slot vector (session, step, quorum, vector): tests and benchmarks use it to
# observe exactly what whoever fuses learns; production passes none.
DecryptionObserver = Callable[[SessionRef, Step, Quorum, SlotVector], None]


class SessionComputation:
    """The ciphertexts of one session's steps (cached), from a pack at the session's height."""

    def __init__(
        self,
        context: FheContext,
        state: PackSnapshot,
        source: CiphertextSource,
        session: SessionRef,
        commitments: Sequence[SignedCommitment],
        reveals: Sequence[MaskReveal],
    ) -> None:
        if state.height != session.height or state.head != session.head:
            raise InvalidInput(f"the pack is at height {state.height}, not at the session's height {session.height}")
        self.context = context
        self.state = state
        self.source = source
        self.session = session
        self.spec = state.spec
        committed = {signed.commitment.keyholder: signed.commitment for signed in commitments}
        by_keyholder = {}
        for reveal in reveals:
            commitment = committed.get(reveal.keyholder)
            if commitment is None or reveal.keyholder in by_keyholder:
                raise InvalidInput(f"unexpected mask reveal from keyholder {reveal.keyholder}")
            digests = tuple(hashlib.sha256(mask).digest() for mask in reveal.masks)
            if digests != commitment.masks:
                raise UnverifiedEvidence(f"keyholder {reveal.keyholder}'s masks do not match its commitment")
            by_keyholder[reveal.keyholder] = reveal
        if set(by_keyholder) != set(committed):
            raise InvalidInput("every committed keyholder must reveal its masks")
        self._reveals = [by_keyholder[index] for index in sorted(by_keyholder)]
        self._commitment_digests = [codec.encode(committed[index]) for index in sorted(committed)]
        self._masks: dict[int, Ciphertext] = {}
        self._cache: dict[tuple[Step, tuple[int, ...]], list[Ciphertext]] = {}
        self._validity_terms: list[list[Ciphertext]] | None = None

    def initial_facts(self) -> SessionFacts:
        """The facts before any step: only what the log makes public."""
        return SessionFacts(self.session.kind, batch_size=len(self.state.batch))

    def mask(self, which: int) -> Ciphertext:
        if which not in self._masks:
            masks = [self.context.ciphertext_from_bytes(reveal.masks[which]) for reveal in self._reveals]
            self._masks[which] = circuit.sum_masks(self.context, masks)
        return self._masks[which]

    def ciphertexts(self, step: Step, facts: SessionFacts) -> list[Ciphertext]:
        """What `step` decrypts, given the facts of the steps before it."""
        key = (step, facts.candidates if step is Step.CONFIRM else (facts.level or 0,) if step is Step.MEMBERSHIP else ())
        if key not in self._cache:
            self._cache[key] = [self._build(step, facts)]
        return self._cache[key]

    def _build(self, step: Step, facts: SessionFacts) -> Ciphertext:
        levels = self.spec.levels
        if step is Step.CHECK:
            return circuit.hunt_check(self.context, self._pack_sum(), self.mask(0), levels, self.state.executed_level)
        if step is Step.CONFIRM:
            return circuit.hunt_confirmation(self.context, self._pack_sum(), self.mask(1), levels, facts.candidates)
        if step is Step.MEMBERSHIP:
            assert facts.level is not None
            pending = self.state.pending_ciphertexts(self.context, self.source)
            return circuit.membership_ciphertext(self.context, pending, facts.level, levels)
        if step is Step.BATCH:
            if not self.state.batch:
                raise InvalidInput("no intendos await validation")
            return circuit.validity_check(self.context, [self._terms()], self.mask(0))
        return circuit.validity_check(self.context, [[terms] for terms in self._terms()], self.mask(1))

    def _pack_sum(self) -> Ciphertext:
        if self.state.counted_sum is None or self.state.counted == 0:
            raise InvalidInput("the pack has no counted intendos to evaluate")
        return self.state.counted_sum

    def batch_ids(self) -> list[bytes]:
        return [intendo_id for intendo_id, _ in self.state.batch]

    def _terms(self) -> list[list[Ciphertext]]:
        """Each batch intendo's validity terms (one per random combination)."""
        if self._validity_terms is None:
            seed = circuit.validity_seed(self.session.session_id, self._commitment_digests)
            self._validity_terms = [
                circuit.validity_terms(
                    self.context, self.context.ciphertext_from_bytes(self.source.ciphertext(intendo_id)), weight,
                    self.spec.levels, seed, intendo_id,
                )
                for intendo_id, weight in self.state.batch
            ]
        return self._validity_terms

    def digests(self, ciphertexts: Sequence[Ciphertext]) -> tuple[bytes, ...]:
        return tuple(self.context.ciphertext_digest(ciphertext) for ciphertext in ciphertexts)

    def outcome(self, facts: SessionFacts) -> Outcome | None:
        """The outcome of a session whose steps are all read: a hunt (None when it did not fire)
        or a validation verdict."""
        session, state = self.session, self.state
        if session.kind is SessionKind.HUNT:
            if facts.members is None or facts.level is None:
                return None
            members = tuple(envelope for (_, envelope), bit in zip(state.pending, facts.members) if bit)
            return HuntOutcome(
                session.stag_id, session.number, session.height, session.head, facts.level, state.executed_level, members
            )
        batch = self.batch_ids()
        verdicts = facts.verdicts if facts.verdicts is not None else (bool(facts.batch_valid),) * len(batch)
        valid = tuple(intendo for intendo, ok in zip(batch, verdicts) if ok)
        invalid = tuple(intendo for intendo, ok in zip(batch, verdicts) if not ok)
        return ValidationOutcome(session.stag_id, session.number, session.height, session.head, valid, invalid)


# --- reading steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPartials:
    """The verified partials of one step: the family of quorums and the shares per ciphertext."""

    family: tuple[Quorum, ...]
    items: tuple[tuple[PartialShare, ...], ...]


def prescribed_family(committee: CommitteeInfo, members: set[int]) -> tuple[Quorum, ...]:
    """The family of quorums a step must be decrypted by when `members` take part: when more
    than t do, one quorum without each of them, so that their facts can be checked against
    each other (see `stagpack.decrypt.quorum`)."""
    return quorum_family(committee.parties, committee.threshold, frozenset(members))


def collect_step(
    committee: CommitteeInfo,
    session: SessionRef,
    step: Step,
    expected: Sequence[bytes],
    partials: Sequence[SignedPartial],
) -> StepPartials:
    """Verify every signed partial of `step` (signature, session, quorum, ciphertext digest) and
    group them per ciphertext. Completeness per quorum is checked when they are fused."""
    mine = [partial for partial in partials if partial.statement.step is step]
    if not mine:
        raise UnverifiedEvidence(f"no partial decryptions of the {step.value} step were presented")
    family = prescribed_family(committee, {partial.statement.producer for partial in mine})
    quorums = {quorum.members for quorum in family}
    if any(partial.statement.quorum and partial.statement.quorum not in quorums for partial in mine):
        raise UnverifiedEvidence(f"{step.value} partials were made for quorums other than the prescribed family")
    items: list[list[PartialShare]] = [[] for _ in expected]
    for partial in mine:
        statement = partial.statement
        if statement.session != session:
            raise UnverifiedEvidence(f"a {step.value} partial belongs to another session")
        if not 0 <= statement.item < len(expected) or statement.ciphertext != expected[statement.item]:
            raise UnverifiedEvidence(f"a {step.value} partial decrypts a ciphertext this keyholder did not compute")
        if statement.quorum and statement.producer not in statement.quorum:
            raise InvalidInput(f"a {step.value} stand-in partial comes from keyholder {statement.producer}, outside its quorum")
        if (statement.quorum == ()) != (statement.on_behalf_of == statement.producer):
            raise InvalidInput(f"a {step.value} partial mixes up own and stand-in roles")
        if hashlib.sha256(partial.data).digest() != statement.partial:
            raise InvalidInput(f"a {step.value} partial does not match its signed digest")
        verify_signature(
            committee.verify_key(statement.producer), "partial-decryption", codec.encode(statement), partial.signature
        )
        items[statement.item].append(PartialShare(statement.producer, statement.on_behalf_of, statement.quorum, partial.data))
    return StepPartials(family, tuple(tuple(shares) for shares in items))


def sign_partials(
    identity_sign: Callable[[str, bytes], bytes],
    session: SessionRef,
    step: Step,
    ciphertext_digests: Sequence[bytes],
    shares_per_item: Sequence[Sequence[PartialShare]],
) -> tuple[SignedPartial, ...]:
    """Wrap a keyholder's partial shares into signed partials."""
    signed = []
    for item, (ciphertext_digest, shares) in enumerate(zip(ciphertext_digests, shares_per_item)):
        for share in shares:
            statement = PartialStatement(
                session=session,
                step=step,
                item=item,
                quorum=share.quorum,
                producer=share.producer,
                on_behalf_of=share.on_behalf_of,
                ciphertext=ciphertext_digest,
                partial=hashlib.sha256(share.data).digest(),
            )
            signed.append(SignedPartial(statement, identity_sign("partial-decryption", codec.encode(statement)), share.data))
    return tuple(signed)


def read_step(
    computation: SessionComputation,
    committee: CommitteeInfo,
    step: Step,
    facts: SessionFacts,
    partials: Sequence[SignedPartial],
    observer: DecryptionObserver | None = None,
) -> SessionFacts:
    """The facts after `step`: check that the graph allows it after `facts`, verify its partials
    against the recomputed ciphertexts, fuse every quorum of the family and read what it
    revealed (the quorums must agree)."""
    require_step(facts, step)
    context, state, session = computation.context, computation.state, computation.session
    ciphertexts = computation.ciphertexts(step, facts)
    collected = collect_step(committee, session, step, computation.digests(ciphertexts), partials)
    (ciphertext,), (shares,) = ciphertexts, collected.items
    observe = None if observer is None else (lambda quorum, vector: observer(session, step, quorum, vector))
    levels = computation.spec.levels
    if step is Step.CHECK:
        check = reveal_hunt_check(context, ciphertext, collected.family, shares, levels, state.executed_level, observe)
        return replace(facts, through=step, candidates=check.candidates)
    if step is Step.CONFIRM:
        confirmation = reveal_confirmation(context, ciphertext, collected.family, shares, levels, facts.candidates, observe)
        return replace(facts, through=step, level=confirmation.level)
    if step is Step.MEMBERSHIP:
        assert facts.level is not None
        members = reveal_membership(context, ciphertext, collected.family, shares, facts.level, len(state.pending), observe)
        check_membership_total(computation, facts.level, members)
        return replace(facts, through=step, members=members)
    if step is Step.BATCH:
        (batch_valid,) = reveal_validity(context, ciphertext, collected.family, shares, 1, observe)
        return replace(facts, through=step, batch_valid=batch_valid)
    verdicts = reveal_validity(context, ciphertext, collected.family, shares, facts.batch_size, observe)
    return replace(facts, through=step, verdicts=verdicts)


def read_steps(
    computation: SessionComputation,
    committee: CommitteeInfo,
    partials: Sequence[SignedPartial],
    through: Step,
    observer: DecryptionObserver | None = None,
) -> SessionFacts:
    """Re-derive the facts of a session's steps, in the graph's order, up to and including
    `through`."""
    facts = computation.initial_facts()
    for step in steps(computation.session.kind):
        facts = read_step(computation, committee, step, facts, partials, observer)
        if step is through:
            return facts
    raise InvalidInput(f"step {through.value} does not belong to a {computation.session.kind.value} session")


def check_membership_total(computation: SessionComputation, level: int, members: tuple[bool, ...]) -> None:
    """executed weight + Σ member weights must equal the fixed point m."""
    pending = computation.state.pending
    total = computation.state.executed_level + sum(
        envelope.statement.weight for (_, envelope), bit in zip(pending, members) if bit
    )
    if total != level:
        raise IntegrityFailure(
            f"decrypted membership totals {total}, not the confirmed level {level} (corrupted partial decryption)"
        )


def session_outcome(
    computation: SessionComputation,
    committee: CommitteeInfo,
    partials: Sequence[SignedPartial],
    observer: DecryptionObserver | None = None,
) -> Outcome | None:
    """The outcome of a session from the complete partial sets of its steps (see
    `SessionComputation.outcome`). Aggregator and keyholders both call this; a keyholder signs
    only the outcome it derived itself."""
    decrypted = {partial.statement.step for partial in partials}
    order = steps(computation.session.kind)
    through = [step for step in order if step in decrypted]
    if not through:
        raise UnverifiedEvidence(f"no partial decryptions of the {order[0].value} step were presented")
    facts = read_steps(computation, committee, partials, through[-1], observer)
    remaining = next_step(facts)
    if remaining is not None:
        raise UnverifiedEvidence(f"the {remaining.value} step must run before the session has an outcome")
    return computation.outcome(facts)
