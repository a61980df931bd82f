"""What a session decrypts, computed the same way by the aggregator and by every keyholder.

`SessionComputation` derives every ciphertext of a session from a pack state at the session's
height and the revealed masks; `read_step` verifies a complete set of signed partials for one
step against those ciphertexts and fuses it into facts. A keyholder uses both to refuse anything
it did not recompute, and to re-derive what earlier steps revealed before it takes part in the
next; the aggregator uses them to drive the session.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

from stagpack import circuit, codec
from stagpack.decrypt import (
    PartialShare,
    Quorum,
    quorum_family,
    reveal_confirmation,
    reveal_hunt_check,
    reveal_membership,
    reveal_validity,
)
from stagpack.errors import IntegrityFailure, InvalidInput, PolicyRefusal
from stagpack.fhe import Ciphertext, FheContext
from stagpack.identity import verify_signature
from stagpack.log import CommitteeInfo, HuntOutcome, ValidationOutcome
from stagpack.pack import CiphertextSource, PackSnapshot
from stagpack.session import (
    MASKS_PER_SESSION,
    MaskReveal,
    PartialStatement,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
)


def check_commitments(committee: CommitteeInfo, session: SessionRef, commitments: Sequence[SignedCommitment]) -> None:
    """Signed by distinct committee members, for this very session and log position, at least t."""
    seen = set()
    for signed in commitments:
        commitment = signed.commitment
        if commitment.session != session:
            raise PolicyRefusal(
                "a mask commitment is for another session or log position (the aggregator may be "
                "showing keyholders different logs)"
            )
        if commitment.keyholder in seen:
            raise InvalidInput(f"two mask commitments from keyholder {commitment.keyholder}")
        if len(commitment.masks) != MASKS_PER_SESSION or any(len(mask) != 32 for mask in commitment.masks):
            raise InvalidInput("a mask commitment has the wrong shape")
        verify_signature(committee.verify_key(commitment.keyholder), "mask-commitment", signed.message(), signed.signature)
        seen.add(commitment.keyholder)
    if len(seen) < committee.threshold:
        raise PolicyRefusal(f"masks from {len(seen)} keyholders; at least t = {committee.threshold} must contribute")


class SessionComputation:
    """The ciphertexts of one session (cached), from a replica at the session's height."""

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
            raise PolicyRefusal(
                f"the replica is at height {state.height}, not at the session's height {session.height}"
            )
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
                raise PolicyRefusal(f"keyholder {reveal.keyholder}'s masks do not match its commitment")
            by_keyholder[reveal.keyholder] = reveal
        if set(by_keyholder) != set(committed):
            raise InvalidInput("every committed keyholder must reveal its masks")
        ordered = [by_keyholder[index] for index in sorted(by_keyholder)]
        self._reveals = ordered
        self._commitment_digests = [codec.encode(committed[index]) for index in sorted(committed)]
        self._masks: dict[int, Ciphertext] = {}
        self._cache: dict[tuple[Step, tuple[int, ...]], list[Ciphertext]] = {}
        self._validity_terms: list[list[Ciphertext]] | None = None

    def mask(self, which: int) -> Ciphertext:
        if which not in self._masks:
            masks = [self.context.ciphertext_from_bytes(reveal.masks[which]) for reveal in self._reveals]
            self._masks[which] = circuit.sum_masks(self.context, masks)
        return self._masks[which]

    # -- hunt ---------------------------------------------------------------------------------

    def _pack_sum(self) -> Ciphertext:
        if self.state.counted_sum is None or self.state.counted == 0:
            raise PolicyRefusal("the pack has no counted intendos to evaluate")
        return self.state.counted_sum

    def check(self) -> list[Ciphertext]:
        key = (Step.CHECK, ())
        if key not in self._cache:
            self._cache[key] = [
                circuit.hunt_check(self.context, self._pack_sum(), self.mask(0), self.spec.levels, self.state.executed_level)
            ]
        return self._cache[key]

    def confirm(self, candidates: tuple[int, ...]) -> list[Ciphertext]:
        key = (Step.CONFIRM, candidates)
        if key not in self._cache:
            self._cache[key] = [
                circuit.hunt_confirmation(self.context, self._pack_sum(), self.mask(1), self.spec.levels, candidates)
            ]
        return self._cache[key]

    def membership(self, level: int) -> list[Ciphertext]:
        key = (Step.MEMBERSHIP, (level,))
        if key not in self._cache:
            pending = self.state.pending_ciphertexts(self.context, self.source)
            self._cache[key] = [circuit.membership_ciphertext(self.context, pending, level, self.spec.levels)]
        return self._cache[key]

    # -- validation ---------------------------------------------------------------------------

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

    def batch(self) -> list[Ciphertext]:
        key = (Step.BATCH, ())
        if key not in self._cache:
            if not self.batch_ids():
                raise PolicyRefusal("no intendos await validation")
            self._cache[key] = [circuit.validity_check(self.context, [self._terms()], self.mask(0))]
        return self._cache[key]

    def each(self) -> list[Ciphertext]:
        key = (Step.EACH, ())
        if key not in self._cache:
            self._cache[key] = [circuit.validity_check(self.context, [[terms] for terms in self._terms()], self.mask(1))]
        return self._cache[key]

    def digests(self, ciphertexts: Sequence[Ciphertext]) -> tuple[bytes, ...]:
        return tuple(self.context.ciphertext_digest(ciphertext) for ciphertext in ciphertexts)


@dataclass(frozen=True)
class StepPartials:
    """The verified partials of one step: the family of quorums and the shares per ciphertext."""

    family: tuple[Quorum, ...]
    items: tuple[tuple[PartialShare, ...], ...]


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
        raise PolicyRefusal(f"no partial decryptions of the {step.value} step were presented")
    family = prescribed_family(committee, {partial.statement.producer for partial in mine})
    quorums = {quorum.members for quorum in family}
    if any(partial.statement.quorum and partial.statement.quorum not in quorums for partial in mine):
        raise PolicyRefusal(f"{step.value} partials were made for quorums other than the prescribed family")
    items: list[list[PartialShare]] = [[] for _ in expected]
    for partial in mine:
        statement = partial.statement
        if statement.session != session:
            raise PolicyRefusal(f"a {step.value} partial belongs to another session")
        if not 0 <= statement.item < len(expected) or statement.ciphertext != expected[statement.item]:
            raise PolicyRefusal(f"a {step.value} partial decrypts a ciphertext this keyholder did not compute")
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


def prescribed_family(committee: CommitteeInfo, members: set[int]) -> tuple[Quorum, ...]:
    """The family of quorums a step must be decrypted by when `members` take part: when more
    than t do, one quorum without each of them, so that their facts can be checked against
    each other (see `stagpack.decrypt.quorum`)."""
    return quorum_family(committee.parties, committee.threshold, frozenset(members))


def sign_partials(
    identity_sign: Callable[[str, bytes], bytes],
    session: SessionRef,
    step: Step,
    ciphertext_digests: Sequence[bytes],
    shares_per_item: Sequence[Sequence[PartialShare]],
) -> tuple[SignedPartial, ...]:
    """Wrap this keyholder's partial shares into signed partials."""
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


@dataclass
class HuntFacts:
    candidates: tuple[int, ...] = ()
    level: int | None = None
    members: tuple[bool, ...] | None = None


def read_hunt_steps(
    computation: SessionComputation, committee: CommitteeInfo, partials: Sequence[SignedPartial], through: Step
) -> HuntFacts:
    """Re-derive the facts of a hunt session's steps up to and including `through`."""
    context, spec, state, session = computation.context, computation.spec, computation.state, computation.session
    facts = HuntFacts()
    (check,) = computation.check()
    collected = collect_step(committee, session, Step.CHECK, computation.digests([check]), partials)
    facts.candidates = reveal_hunt_check(context, check, collected.family, collected.items[0], spec.levels, state.executed_level).candidates
    if through is Step.CHECK:
        return facts
    if not facts.candidates:
        raise PolicyRefusal("the hunt check did not fire: nothing may be confirmed or revealed")
    (confirm,) = computation.confirm(facts.candidates)
    collected = collect_step(committee, session, Step.CONFIRM, computation.digests([confirm]), partials)
    facts.level = reveal_confirmation(context, confirm, collected.family, collected.items[0], spec.levels, facts.candidates).level
    if through is Step.CONFIRM:
        return facts
    if facts.level is None:
        raise PolicyRefusal("no candidate level was confirmed: no membership may be revealed")
    (membership,) = computation.membership(facts.level)
    collected = collect_step(committee, session, Step.MEMBERSHIP, computation.digests([membership]), partials)
    facts.members = reveal_membership(context, membership, collected.family, collected.items[0], facts.level, len(state.pending))
    return facts


def read_validation_steps(
    computation: SessionComputation, committee: CommitteeInfo, partials: Sequence[SignedPartial], through: Step
) -> tuple[bool, tuple[bool, ...] | None]:
    """(batch valid, per-intendo validity or None) up to and including `through`."""
    context, session = computation.context, computation.session
    (batch,) = computation.batch()
    collected = collect_step(committee, session, Step.BATCH, computation.digests([batch]), partials)
    (batch_valid,) = reveal_validity(context, batch, collected.family, collected.items[0], 1)
    if through is Step.BATCH:
        return batch_valid, None
    if batch_valid or len(computation.batch_ids()) == 1:
        raise PolicyRefusal("the batch check already decided every intendo: no per-intendo check is allowed")
    (each,) = computation.each()
    collected = collect_step(committee, session, Step.EACH, computation.digests([each]), partials)
    verdicts = reveal_validity(context, each, collected.family, collected.items[0], len(computation.batch_ids()))
    return batch_valid, verdicts


def ensure_kind(session: SessionRef, kind: SessionKind) -> None:
    if session.kind is not kind:
        raise InvalidInput(f"expected a {kind.value} session")


def integrity_check_membership(computation: SessionComputation, level: int, members: tuple[bool, ...]) -> None:
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
    computation: SessionComputation, committee: CommitteeInfo, partials: Sequence[SignedPartial]
) -> HuntOutcome | ValidationOutcome | None:
    """The outcome of a session from the complete partial sets of its steps: a hunt (None when
    the check or the confirmation did not fire) or a validation verdict. Aggregator and
    keyholders both call this; a keyholder signs only the outcome it derived itself."""
    session, state = computation.session, computation.state
    steps = {partial.statement.step for partial in partials}
    if session.kind is SessionKind.HUNT:
        through = Step.MEMBERSHIP if Step.MEMBERSHIP in steps else Step.CONFIRM if Step.CONFIRM in steps else Step.CHECK
        facts = read_hunt_steps(computation, committee, partials, through)
        if facts.members is None:
            if facts.candidates and (through is Step.CHECK or facts.level is not None):
                raise PolicyRefusal("the hunt fired; its remaining steps must run before it has an outcome")
            return None
        assert facts.level is not None
        integrity_check_membership(computation, facts.level, facts.members)
        members = tuple(envelope for (_, envelope), bit in zip(state.pending, facts.members) if bit)
        return HuntOutcome(
            session.stag_id, session.number, session.height, session.head, facts.level, state.executed_level, members
        )
    batch = computation.batch_ids()
    through = Step.EACH if Step.EACH in steps else Step.BATCH
    batch_valid, each = read_validation_steps(computation, committee, partials, through)
    if each is None and not batch_valid and len(batch) > 1:
        raise PolicyRefusal("an invalid batch needs its per-intendo step before it has an outcome")
    verdicts = each if each is not None else (batch_valid,) * len(batch)
    valid = tuple(intendo for intendo, ok in zip(batch, verdicts) if ok)
    invalid = tuple(intendo for intendo, ok in zip(batch, verdicts) if not ok)
    return ValidationOutcome(session.stag_id, session.number, session.height, session.head, valid, invalid)
