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
    reveal_noise,
    reveal_validity,
)
from stagpack.decrypt import circuit
from stagpack.decrypt.steps import SessionFacts, next_step, require_step
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, InvalidInput, UnverifiedEvidence
from stagpack.fhe import Ciphertext, FheContext, SlotVector
from stagpack.identity import verify_signature
from stagpack.log import HuntOutcome, SettlementOutcome, ValidationOutcome
from stagpack.committee import CommitteeInfo
from stagpack.pack import CiphertextSource, PackSnapshot
from stagpack.session import (
    Committed,
    MaskReveal,
    PartialStatement,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
)

Outcome = HuntOutcome | ValidationOutcome | SettlementOutcome


def outcome_domain(outcome: Outcome) -> str:
    """The signature domain keyholders certify an outcome under."""
    if isinstance(outcome, HuntOutcome):
        return "hunt"
    return "settlement" if isinstance(outcome, SettlementOutcome) else "validation"


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
        committee: CommitteeInfo,
    ) -> None:
        if state.height != session.height or state.head != session.head:
            raise InvalidInput(f"the pack is at height {state.height}, not at the session's height {session.height}")
        self.context = context
        self.state = state
        self.source = source
        self.session = session
        self.committee = committee
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
        self.contributors = tuple(sorted(by_keyholder))
        self._reveals = by_keyholder
        self.seed = circuit.session_seed(session.session_id, [codec.encode(committed[index]) for index in self.contributors])
        self._parsed: dict[tuple[int, Committed], Ciphertext] = {}
        self._cache: dict[tuple[object, ...], list[Ciphertext]] = {}
        self._batch_intendos: list[Ciphertext] | None = None
        self._validity_terms: list[circuit.ValidityTerms] | None = None
        self.read_cache: dict[tuple[object, ...], SessionFacts] = {}  # see read_step

    def initial_facts(self) -> SessionFacts:
        """The facts before any step: only what the log and the commitments make public."""
        return SessionFacts(
            self.session.kind, self.contributors, self.committee.noise_test, batch_size=len(self.state.batch)
        )

    def committed(self, keyholder: int, which: Committed) -> Ciphertext:
        """One ciphertext a contributor committed to (input level)."""
        key = (keyholder, which)
        if key not in self._parsed:
            self._parsed[key] = self.context.ciphertext_from_bytes(self._reveals[keyholder].masks[which])
        return self._parsed[key]

    def _mask(self, which: Committed, facts: SessionFacts) -> Ciphertext:
        """R = Σ of the clean contributors' masks: uniform if one of them is honest."""
        return circuit.sum_masks(self.context, [self.committed(keyholder, which) for keyholder in facts.mask_contributors])

    def ciphertexts(self, step: Step, facts: SessionFacts) -> list[Ciphertext]:
        """What `step` decrypts, given the facts of the steps before it."""
        key: tuple[object, ...] = (step, facts.mask_contributors, facts.candidates, facts.level)
        if key not in self._cache:
            self._cache[key] = self._build(step, facts)
        return self._cache[key]

    def _build(self, step: Step, facts: SessionFacts) -> list[Ciphertext]:
        context, levels = self.context, self.spec.levels
        if step is Step.NOISE:
            return [self._session_noise_test()]
        if step is Step.NOISE_EACH:
            return [self._contributor_noise_test(keyholder) for keyholder in self.contributors]
        if step is Step.INPUT_NOISE:
            intendos = self._intendos()
            pad = circuit.sum_masks(context, [self.committed(keyholder, Committed.INPUT_PAD) for keyholder in facts.mask_contributors])
            scalars = circuit.noise_scalars(self.seed, b"input-noise", len(intendos) + 1)
            return [circuit.noise_test(context, intendos, pad, scalars)]
        if step is Step.CHECK:
            mask = context.compress(self._mask(Committed.FIRST_MASK, facts))
            return [circuit.hunt_check(context, self._pack_sum(), mask, levels, self.state.executed_level)]
        if step is Step.CONFIRM:
            mask = context.compress(self._mask(Committed.SECOND_MASK, facts))
            return [circuit.hunt_confirmation(context, self._pack_sum(), mask, levels, facts.candidates)]
        if step is Step.MEMBERSHIP:
            assert facts.level is not None
            pending = self.state.pending_ciphertexts(context, self.source)
            return [circuit.membership_ciphertext(context, pending, facts.level, levels)]
        if step is Step.BATCH:
            return [circuit.validity_check(context, [self._terms()], self._mask(Committed.FIRST_MASK, facts))]
        return [circuit.validity_check(context, [[terms] for terms in self._terms()], self._mask(Committed.SECOND_MASK, facts))]

    def _masks_of(self, keyholder: int) -> list[Ciphertext]:
        """Every ciphertext keyholder j committed to except its pad (which pads their test)."""
        tested = [self.committed(keyholder, Committed.FIRST_MASK), self.committed(keyholder, Committed.SECOND_MASK)]
        if self.session.kind is SessionKind.VALIDATION:
            tested.append(self.committed(keyholder, Committed.INPUT_PAD))
        return tested

    def _session_noise_test(self) -> Ciphertext:
        """One test of everything: Σ ρ·(every contributor's masks, every pad but the last, and a
        validation's intendos) + ρ_pad·(the last pad). Each term has its own scalar, so no
        contributor can cancel another's noise; the plaintext is padded as long as one pad is
        honest (each scalar is invertible mod p)."""
        tested = [mask for keyholder in self.contributors for mask in self._masks_of(keyholder)]
        pads = [self.committed(keyholder, Committed.PAD) for keyholder in self.contributors]
        tested += pads[:-1]
        if self.session.kind is SessionKind.VALIDATION:
            tested += self._intendos()
        scalars = circuit.noise_scalars(self.seed, b"noise", len(tested) + 1)
        return circuit.noise_test(self.context, tested, pads[-1], scalars)

    def _contributor_noise_test(self, keyholder: int) -> Ciphertext:
        """Y_j = Σ ρ·(keyholder j's masks) + ρ_pad·(its pad): every ciphertext j committed to."""
        tested = self._masks_of(keyholder)
        scalars = circuit.noise_scalars(self.seed, b"noise/%d" % keyholder, len(tested) + 1)
        return circuit.noise_test(self.context, tested, self.committed(keyholder, Committed.PAD), scalars)

    def _intendos(self) -> list[Ciphertext]:
        """The batch's intendos (input level), read and parsed once for the noise test and the
        validity terms."""
        if self._batch_intendos is None:
            self._batch_intendos = [
                self.context.ciphertext_from_bytes(self.source.ciphertext(intendo_id)) for intendo_id, _ in self._batch()
            ]
        return self._batch_intendos

    def _pack_sum(self) -> Ciphertext:
        if self.state.counted_sum is None or self.state.counted == 0:
            raise InvalidInput("the pack has no counted intendos to evaluate")
        return self.state.counted_sum

    def _batch(self) -> tuple[tuple[bytes, int], ...]:
        if not self.state.batch:
            raise InvalidInput("no intendos await validation")
        return self.state.batch

    def batch_ids(self) -> list[bytes]:
        return [intendo_id for intendo_id, _ in self.state.batch]

    def _terms(self) -> list[circuit.ValidityTerms]:
        """Each batch intendo's validity terms (input level)."""
        if self._validity_terms is None:
            self._validity_terms = [
                circuit.validity_terms(self.context, intendo, weight, self.spec.levels, self.seed, intendo_id)
                for intendo, (intendo_id, weight) in zip(self._intendos(), self._batch())
            ]
        return self._validity_terms

    def digests(self, ciphertexts: Sequence[Ciphertext]) -> tuple[bytes, ...]:
        return tuple(self.context.ciphertext_digest(ciphertext) for ciphertext in ciphertexts)

    def outcome(self, facts: SessionFacts) -> Outcome | None:
        """The outcome of a session whose steps are all read: a hunt (None when it did not fire,
        or, at a refund stag's closing epoch before any hunt, the settlement of its refunds) or
        a validation verdict. A batch whose noise test failed is decided without a validity
        check: one intendo alone is rejected (recorded against its signer); a larger batch is
        deferred, so that each of its intendos is tested alone and only the noisy one is blamed."""
        session, state = self.session, self.state
        if session.kind is SessionKind.HUNT:
            if facts.members is None or facts.level is None:
                if self.spec.is_closing(session.number) and state.executed_level == 0:
                    return state.settlement_outcome()
                return None
            members = tuple(envelope for (_, envelope), bit in zip(state.pending, facts.members) if bit)
            return HuntOutcome(
                session.stag_id, session.number, session.height, session.head, facts.level, state.executed_level, members,
                state.cause,
            )
        batch = tuple(self.batch_ids())
        if facts.inputs_clean is False:
            if len(batch) == 1:
                return ValidationOutcome(session.stag_id, session.number, session.height, session.head, (), batch, ())
            return ValidationOutcome(session.stag_id, session.number, session.height, session.head, (), (), batch)
        verdicts = facts.verdicts if facts.verdicts is not None else (bool(facts.batch_valid),) * len(batch)
        valid = tuple(intendo for intendo, ok in zip(batch, verdicts) if ok)
        invalid = tuple(intendo for intendo, ok in zip(batch, verdicts) if not ok)
        return ValidationOutcome(session.stag_id, session.number, session.height, session.head, valid, invalid, ())


# --- reading steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPartials:
    """The verified partials of one step: the family of quorums and the shares per ciphertext."""

    family: tuple[Quorum, ...]
    items: tuple[tuple[PartialShare, ...], ...]


def prescribed_family(committee: CommitteeInfo, members: set[int]) -> tuple[Quorum, ...]:
    """The family of quorums a step must be decrypted by when `members` take part: for every
    set of up to f of them a quorum without them, so that up to f dishonest keyholders cannot
    shift what is revealed unseen (`stagpack.decrypt.quorum`). Fewer than t + f members raise
    CommitteeUnavailable."""
    return quorum_family(committee.parties, committee.threshold, frozenset(members), committee.fault_bound)


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
    producers = {partial.statement.producer for partial in mine}
    try:
        family = prescribed_family(committee, producers)
    except CommitteeUnavailable:
        raise UnverifiedEvidence(
            f"{step.value} partials from {len(producers)} keyholders: with fault bound f = {committee.fault_bound} a step "
            f"is decrypted by t + f = {committee.decrypting}, so that a quorum without any f of them checks the rest"
        ) from None
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
    # A keyholder re-reads earlier steps at every later step (and at certify): the same partials
    # always give the same facts, so they are fused once.
    fingerprint = hashlib.sha256()
    for statement, signature, data in sorted(
        (codec.encode(partial.statement), partial.signature, partial.data) for partial in partials if partial.statement.step is step
    ):
        for part in (statement, signature, hashlib.sha256(data).digest()):
            fingerprint.update(len(part).to_bytes(4, "big") + part)
    memo = (step, facts, fingerprint.digest())
    if observer is None and memo in computation.read_cache:
        return computation.read_cache[memo]
    revealed = _read_step(computation, committee, step, facts, partials, observer)
    computation.read_cache[memo] = revealed
    return revealed


def _read_step(
    computation: SessionComputation,
    committee: CommitteeInfo,
    step: Step,
    facts: SessionFacts,
    partials: Sequence[SignedPartial],
    observer: DecryptionObserver | None,
) -> SessionFacts:
    context, state, session = computation.context, computation.state, computation.session
    ciphertexts = computation.ciphertexts(step, facts)
    outsiders = {partial.statement.producer for partial in partials if partial.statement.step is step} - set(computation.contributors)
    if outsiders:
        raise UnverifiedEvidence(f"{step.value} partials from keyholders {sorted(outsiders)}, whose masks are not in the session")
    collected = collect_step(committee, session, step, computation.digests(ciphertexts), partials)
    observe = None if observer is None else (lambda quorum, vector: observer(session, step, quorum, vector))
    family = collected.family
    if step is Step.NOISE:
        (ciphertext,), (shares,) = ciphertexts, collected.items
        if not reveal_noise(context, ciphertext, family, shares, observe):
            return replace(facts, through=step, noise_passed=False)
        inputs_clean = True if computation.session.kind is SessionKind.VALIDATION else None
        return replace(facts, through=step, noise_passed=True, clean=computation.contributors, inputs_clean=inputs_clean)
    if step is Step.NOISE_EACH:
        clean = tuple(
            keyholder
            for keyholder, ciphertext, shares in zip(computation.contributors, ciphertexts, collected.items)
            if reveal_noise(context, ciphertext, family, shares, observe)
        )
        if len(clean) <= committee.fault_bound:
            raise IntegrityFailure(
                f"the masks of only {len(clean)} contributors passed the noise test: more keyholders misbehave than "
                f"the committee's fault bound f = {committee.fault_bound} allows; nothing is revealed"
            )
        return replace(facts, through=step, clean=clean)
    (ciphertext,), (shares,) = ciphertexts, collected.items
    levels = computation.spec.levels
    if step is Step.INPUT_NOISE:
        return replace(facts, through=step, inputs_clean=reveal_noise(context, ciphertext, family, shares, observe))
    if step is Step.CHECK:
        check = reveal_hunt_check(context, ciphertext, family, shares, levels, state.executed_level, observe)
        return replace(facts, through=step, candidates=check.candidates)
    if step is Step.CONFIRM:
        confirmation = reveal_confirmation(context, ciphertext, family, shares, levels, facts.candidates, observe)
        return replace(facts, through=step, level=confirmation.level)
    if step is Step.MEMBERSHIP:
        assert facts.level is not None
        members = reveal_membership(context, ciphertext, family, shares, facts.level, len(state.pending), observe)
        check_membership_total(computation, facts.level, members)
        return replace(facts, through=step, members=members)
    if step is Step.BATCH:
        (batch_valid,) = reveal_validity(context, ciphertext, family, shares, 1, observe)
        return replace(facts, through=step, batch_valid=batch_valid)
    verdicts = reveal_validity(context, ciphertext, family, shares, facts.batch_size, observe)
    return replace(facts, through=step, verdicts=verdicts)


def facts_before(
    computation: SessionComputation,
    committee: CommitteeInfo,
    partials: Sequence[SignedPartial],
    step: Step,
    observer: DecryptionObserver | None = None,
) -> SessionFacts:
    """What the steps before `step` revealed, read in the graph's order from their partials,
    and the graph's verdict that `step` runs next (raises when it may not)."""
    facts = computation.initial_facts()
    while (upcoming := next_step(facts)) is not None and upcoming is not step:
        if not any(partial.statement.step is upcoming for partial in partials):
            raise UnverifiedEvidence(f"no partial decryptions of the {upcoming.value} step were presented")
        facts = read_step(computation, committee, upcoming, facts, partials, observer)
    require_step(facts, step)
    return facts


def facts_so_far(
    computation: SessionComputation,
    committee: CommitteeInfo,
    partials: Sequence[SignedPartial],
    observer: DecryptionObserver | None = None,
) -> SessionFacts:
    """What the steps with partials among `partials` revealed, in the graph's order (the facts
    a resumed session continues from)."""
    facts = computation.initial_facts()
    while (upcoming := next_step(facts)) is not None and any(partial.statement.step is upcoming for partial in partials):
        facts = read_step(computation, committee, upcoming, facts, partials, observer)
    return facts


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
    facts = facts_so_far(computation, committee, partials, observer)
    remaining = next_step(facts)
    if remaining is not None:
        raise UnverifiedEvidence(f"the {remaining.value} step must run before the session has an outcome")
    return computation.outcome(facts)
