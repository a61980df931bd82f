"""The keyholder decryption policy (DESIGN.md §4) against a malicious aggregator.

Every request here goes straight to a keyholder (through `LocalKeyholder`, so every record
crosses its byte encoding), built by hand from `stagpack.session` records the way a dishonest
operator could build them: valid session prefixes made with the real protocol pieces, then one
thing wrong. Each must be refused with the right error, the refusal logged, and nothing released:
no partials come back and the keyholder's session record shows no served step for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pytest

from stagpack import codec
from stagpack.decrypt import quorum_family
from stagpack.decrypt.computation import SessionComputation, facts_so_far, read_step
from stagpack.decrypt.steps import SessionFacts, steps
from stagpack.encoding import StagKind
from stagpack.errors import CommitteeUnavailable, InvalidInput, InvalidSignature, PolicyRefusal, StagpackError, WrongPhase
from stagpack.fhe import Ciphertext
from stagpack.app.inprocess import InProcessDeployment
from stagpack.keyholder.local import LocalKeyholder, intercepting
from stagpack.keyholder.node import KeyholderNode
from stagpack.keyholder.store import SessionRecord
from stagpack.log import HuntOutcome
from stagpack.session import (
    CERTIFY,
    DECRYPT,
    OPEN_SESSION,
    REVEAL_MASKS,
    CertifyRequest,
    DecryptRequest,
    MaskCommitment,
    MaskReveal,
    RevealRequest,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
)
from stagpack.stag import ManualClock
from support.faults import MaskScript, scripted_masks, unreachable_for
from support.protocol import DictSource, MirroredStag, replay_log, served_steps, start_deployment

KEYHOLDER_LOG = "stagpack.keyholder"


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def masks() -> MaskScript:
    """Every keyholder's mask source: random, unless a test forces a chance zero."""
    return scripted_masks(3)


@pytest.fixture(scope="module")
def deployment(scratch: Callable[[str], Path], clock: ManualClock, masks: MaskScript) -> Iterator[InProcessDeployment]:
    deployment = start_deployment(scratch("policy"), 3, 2, clock, masks=masks.masks())
    masks.bind(deployment.context)
    yield deployment


@pytest.fixture(scope="module")
def quiet(deployment: InProcessDeployment, clock: ManualClock) -> MirroredStag:
    """A validated pack that never fires (three intendos that each need ten others). Tests that
    only need refusals share it, each in an epoch of its own (the clock only moves forward)."""
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, 16, title="quiet")
    for _ in range(3):
        stag.submit_count(10)
    stag.validate()
    return stag


@pytest.fixture(autouse=True)
def keyholder_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger=KEYHOLDER_LOG)
    return caplog


# Every session first tests the noise of everything a party chose (DESIGN.md §3a); in the tests
# below it passes (honest masks and intendos), which reveals nothing an operator could use, and
# the steps that find whom to blame after a failed test never run. The policy tests are about
# what comes after.
BLAME_STEPS = (Step.NOISE_EACH, Step.INPUT_NOISE)


class HandSession:
    """One session driven by hand, as the aggregator (honest or not) would drive it. `start`
    opens it, fixes the masks and serves its noise steps honestly (`noise_partials`), which
    every later request carries among its prior partials."""

    def __init__(
        self,
        deployment: InProcessDeployment,
        stag: MirroredStag,
        kind: SessionKind,
        number: int,
    ) -> None:
        self.deployment = deployment
        self.stag = stag
        self.context = deployment.context
        self.committee = deployment.aggregator.committee
        replica = replay_log(deployment, stag.stag_id, stag.ciphertexts)  # the operator's own view
        self.snapshot = replica.snapshot()
        self.session = SessionRef(stag.stag_id, kind, number, self.snapshot.height, self.snapshot.head)
        self.commitments: tuple[SignedCommitment, ...] = ()
        self.reveals: tuple[MaskReveal, ...] = ()
        self.noise_partials: tuple[SignedPartial, ...] = ()
        self._computation: SessionComputation | None = None

    @property
    def keyholders(self) -> list[LocalKeyholder]:
        return self.deployment.keyholders

    @property
    def everyone(self) -> tuple[int, ...]:
        return tuple(keyholder.index for keyholder in self.keyholders)

    def family(self, members: Sequence[int] | None = None) -> tuple[tuple[int, ...], ...]:
        """The prescribed family of quorums when `members` (default everyone) take part."""
        committee = self.committee
        family = quorum_family(committee.parties, committee.threshold, frozenset(members or self.everyone), committee.fault_bound)
        return tuple(quorum.members for quorum in family)

    def open(self) -> HandSession:
        self.commitments = tuple(keyholder.call(OPEN_SESSION, self.session) for keyholder in self.keyholders)
        return self

    def reveal(self) -> HandSession:
        request = RevealRequest(self.session, self.commitments)
        self.reveals = tuple(keyholder.call(REVEAL_MASKS, request) for keyholder in self.keyholders)
        return self

    def noise(self) -> HandSession:
        """Serve the session's noise test honestly (everything passes)."""
        computation = self.computation()
        facts = computation.initial_facts()
        request = self.request(Step.NOISE, computation.ciphertexts(Step.NOISE, facts))
        self.noise_partials = tuple(partial for keyholder in self.keyholders for partial in keyholder.call(DECRYPT, request).partials)
        facts = read_step(computation, self.committee, Step.NOISE, facts, self.noise_partials)
        assert facts.noise_passed and facts.clean == computation.contributors
        return self

    def start(self) -> HandSession:
        return self.open().reveal().noise()

    def computation(self) -> SessionComputation:
        if self._computation is None:
            self._computation = SessionComputation(
                self.context, self.snapshot, DictSource(self.stag.ciphertexts), self.session, self.commitments, self.reveals,
                self.committee,
            )
        return self._computation

    def facts(self, step: Step, **revealed: object) -> SessionFacts:
        """The facts `step` would run after if the steps before it revealed `revealed`
        (candidates, level, batch_valid), whether they did or not, and the noise test passed."""
        computation = self.computation()
        order = [each for each in steps(self.session.kind) if each not in BLAME_STEPS]
        before = order[order.index(step) - 1] if order.index(step) else None
        facts = computation.initial_facts()
        inputs_clean = True if self.session.kind is SessionKind.VALIDATION else None
        return replace(
            facts, through=before, noise_passed=True, clean=facts.contributors, inputs_clean=inputs_clean, **revealed  # type: ignore[arg-type]
        )

    def ciphertexts(self, step: Step, **revealed: object) -> list[Ciphertext]:
        """What `step` decrypts if the steps before it revealed `revealed`: the operator can
        compute anything."""
        return self.computation().ciphertexts(step, self.facts(step, **revealed))

    def read(self, partials: tuple[SignedPartial, ...]) -> SessionFacts:
        """What the noise steps and `partials` reveal, read in the graph's order."""
        return facts_so_far(self.computation(), self.committee, self.noise_partials + partials)

    def request(
        self,
        step: Step,
        claimed: Sequence[Ciphertext] | tuple[bytes, ...],
        prior: tuple[SignedPartial, ...] = (),
        *,
        commitments: tuple[SignedCommitment, ...] | None = None,
        reveals: tuple[MaskReveal, ...] | None = None,
        quorums: tuple[tuple[int, ...], ...] | None = None,
    ) -> DecryptRequest:
        digests = tuple(
            item if isinstance(item, bytes) else self.context.ciphertext_digest(item) for item in claimed  # type: ignore[arg-type]
        )
        if step is not Step.NOISE:
            prior = self.noise_partials + prior
        return DecryptRequest(
            self.session,
            step,
            self.family() if quorums is None else quorums,
            self.commitments if commitments is None else commitments,
            self.reveals if reveals is None else reveals,
            prior,
            digests,
        )

    def serve(
        self,
        step: Step,
        ciphertexts: Sequence[Ciphertext],
        prior: tuple[SignedPartial, ...] = (),
        quorums: tuple[tuple[int, ...], ...] | None = None,
    ) -> tuple[SignedPartial, ...]:
        """An honest step: every keyholder of the family decrypts what it recomputes too (the
        noise steps' partials go along as prior partials)."""
        request = self.request(step, ciphertexts, prior, quorums=quorums)
        members = {member for quorum in request.quorums for member in quorum}
        return tuple(partial for keyholder in self.keyholders if keyholder.index in members for partial in keyholder.call(DECRYPT, request).partials)

    def certify_request(self, partials: tuple[SignedPartial, ...], outcome: object) -> CertifyRequest:
        return CertifyRequest(self.session, self.commitments, self.reveals, self.noise_partials + partials, codec.encode(outcome))

    def served(self, node: KeyholderNode) -> list[Step]:
        return [step for number, step in served_steps(node, self.stag.stag_id, self.session.kind) if number == self.session.number]


def session_record(node: KeyholderNode, session: SessionRef) -> SessionRecord:
    """The keyholder's durable record of `session` (opened at whatever height)."""
    (record,) = [record for record in node.session_records(session.stag_id) if record.session.session_id == session.session_id]
    return record


def refused(
    caplog: pytest.LogCaptureFixture,
    call: Callable[[], object],
    error: type[StagpackError],
    match: str,
) -> StagpackError:
    """`call` must raise exactly `error` (matching `match`), and the keyholder must log it."""
    caplog.clear()
    with pytest.raises(StagpackError, match=match) as raised:
        call()
    assert type(raised.value) is error, f"{type(raised.value).__name__}: {raised.value}"
    messages = [record.getMessage() for record in caplog.records if record.name == KEYHOLDER_LOG]
    assert any("refused" in message for message in messages), messages
    return raised.value


def each_keyholder_refuses(
    caplog: pytest.LogCaptureFixture,
    hand: HandSession,
    request: DecryptRequest,
    error: type[StagpackError],
    match: str,
) -> None:
    """Every keyholder refuses `request` and serves nothing for its step."""
    for keyholder in hand.keyholders:
        refused(caplog, lambda: keyholder.call(DECRYPT, request), error, match)
        assert request.step not in hand.served(keyholder.node)


def next_epoch(stag: MirroredStag) -> int:
    stag.clock.advance(stag.spec.epoch_millis)
    return stag.current_epoch()


def flip_one_byte(data: bytes, position: int) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 0x01
    return bytes(flipped)


# With all three of the 2-of-3 committee taking part, the family is (2,3), (1,3), (1,2): each
# keyholder releases its own partial and one stand-in in each of its two quorums.
FAMILY_PARTIALS = 3 + 3 * 2


# -- only what the keyholder recomputed itself ------------------------------------------------


CLAIMS = ["raw intendo", "forged digest", "one byte off", "pack sum", "unmasked distance", "raw mask"]


@pytest.mark.parametrize("claim", CLAIMS)
def test_only_the_recomputed_check_is_decrypted(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture, claim: str
) -> None:
    hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    (check,) = hand.ciphertexts(Step.CHECK)
    context = deployment.context
    if claim == "raw intendo":  # how an operator would read someone's threshold
        intendo_id = next(iter(quiet.ciphertexts))
        claimed: tuple[bytes, ...] = (hashlib.sha256(quiet.ciphertexts[intendo_id]).digest(),)
    elif claim == "forged digest":
        claimed = (os.urandom(32),)
    elif claim == "one byte off":  # the correct canonical bytes with one byte flipped
        correct = context.ciphertext_to_bytes(check)
        claimed = (hashlib.sha256(flip_one_byte(correct, len(correct) // 2)).digest(),)
    elif claim == "pack sum":  # c[l] itself
        claimed = (context.ciphertext_digest(hand.snapshot.counted_sum),)  # type: ignore[arg-type]
    elif claim == "unmasked distance":  # d = c - ramp without the masks
        from stagpack.decrypt.circuit import fixed_point_distance

        claimed = (context.ciphertext_digest(fixed_point_distance(context, hand.snapshot.counted_sum, quiet.levels)),)  # type: ignore[arg-type]
    else:  # a mask on its own would let the operator unmask the check
        claimed = (hashlib.sha256(hand.reveals[0].masks[0]).digest(),)
    request = hand.request(Step.CHECK, claimed)
    each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "differs from this keyholder's recomputation")
    # the honest request is served (the refusals consumed nothing)
    assert len(hand.serve(Step.CHECK, [check])) == FAMILY_PARTIALS


def test_a_validation_batch_decrypts_only_its_own_check(
    deployment: InProcessDeployment, clock: ManualClock, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    stag = MirroredStag.create(deployment, clock, StagKind.CAPITAL, 32)
    stag.submit_capital(3, 20)
    stag.submit_capital(4, 25)
    hand = HandSession(deployment, stag, SessionKind.VALIDATION, 1).start()
    raw = hashlib.sha256(next(iter(stag.ciphertexts.values()))).digest()
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.BATCH, (raw,)), PolicyRefusal, "recomputation")
    batch = hand.serve(Step.BATCH, hand.ciphertexts(Step.BATCH))
    # the batch is valid: a per-intendo check would reveal more than the policy allows
    each = hand.request(Step.EACH, hand.ciphertexts(Step.EACH, batch_valid=False), batch)
    each_keyholder_refuses(keyholder_warnings, hand, each, PolicyRefusal, "already decided every intendo")
    # a batch number out of sequence is refused at the door
    later = SessionRef(stag.stag_id, SessionKind.VALIDATION, 2, hand.session.height, hand.session.head)
    refused(keyholder_warnings, lambda: hand.keyholders[0].call(OPEN_SESSION, later), PolicyRefusal, "next validation batch is 1")


# -- heights and epochs -----------------------------------------------------------------------


def test_a_stale_evaluation_is_refused_after_the_replica_moved_on(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    epoch = next_epoch(quiet)
    # opened and its masks fixed, nothing decrypted yet (not even the noise test: a session that
    # served any step is evaluated, and never opens again elsewhere; the next test)
    stale = HandSession(deployment, quiet, SessionKind.HUNT, epoch).open().reveal()
    (check,) = stale.ciphertexts(Step.CHECK)
    quiet.submit_count(11)  # the log grows ...
    batch = replay_log(deployment, quiet.stag_id, quiet.ciphertexts).validation_batches + 1
    moving = HandSession(deployment, quiet, SessionKind.VALIDATION, batch).open()  # ... and every replica follows it
    assert moving.session.height == stale.session.height + 1
    each_keyholder_refuses(keyholder_warnings, stale, stale.request(Step.CHECK, [check]), PolicyRefusal, "stale session")
    # the epoch's check opened again at the new height replaces the old one on every keyholder
    again = HandSession(deployment, quiet, SessionKind.HUNT, epoch).open()
    assert again.session.height == moving.session.height
    reopened = f"stale session: hunt {epoch} was opened again"
    each_keyholder_refuses(keyholder_warnings, stale, stale.request(Step.CHECK, [check]), WrongPhase, reopened)
    # nor can a session be opened at the old height any more
    old = SessionRef(quiet.stag_id, SessionKind.HUNT, next_epoch(quiet), stale.session.height, stale.session.head)
    for keyholder in stale.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, old), PolicyRefusal, "stale request")


def test_a_session_the_log_left_behind_is_erased_but_still_binds_the_policy(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    epoch = next_epoch(quiet)
    old = HandSession(deployment, quiet, SessionKind.HUNT, epoch).start()
    (check,) = old.ciphertexts(Step.CHECK)
    old.serve(Step.CHECK, [check])
    for node in deployment.nodes:  # while the replica stands at its height, the session is whole
        (record,) = [r for r in node.session_records(quiet.stag_id) if r.session == old.session]
        assert record.masks and record.served[0].partials and not record.erased
    quiet.submit_count(13)
    batch = replay_log(deployment, quiet.stag_id, quiet.ciphertexts).validation_batches + 1
    HandSession(deployment, quiet, SessionKind.VALIDATION, batch).open()  # every replica moves on
    for node in deployment.nodes:
        (record,) = [r for r in node.session_records(quiet.stag_id) if r.session == old.session]
        assert record.erased and record.masks == ()
        assert [step.step for step in record.served] == [Step.NOISE, Step.CHECK]
        assert all(step.partials == () for step in record.served)
    # nothing of it can be served again, not even the partials already released ...
    request, reveal = old.request(Step.CHECK, [check]), RevealRequest(old.session, old.commitments)
    for keyholder in old.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(DECRYPT, request), PolicyRefusal, "masks were erased")
        refused(keyholder_warnings, lambda: keyholder.call(REVEAL_MASKS, reveal), PolicyRefusal, "masks were erased")
    # ... and what it served still binds: the epoch may not be checked again at the new height
    again = HandSession(deployment, quiet, SessionKind.HUNT, epoch)
    for keyholder in old.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, again.session), PolicyRefusal, "already evaluated at height")


def test_an_earlier_epochs_hunt_is_erased_when_a_later_one_opens_at_the_same_height(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    earlier = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    (check,) = earlier.ciphertexts(Step.CHECK)
    earlier.serve(Step.CHECK, [check])
    later = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).open()  # nothing changed in the log
    assert later.session.height == earlier.session.height
    for node in deployment.nodes:
        records = {record.session.number: record for record in node.session_records(quiet.stag_id)}
        assert records[earlier.session.number].erased and records[earlier.session.number].masks == ()
        assert not records[later.session.number].erased and records[later.session.number].masks
    request = earlier.request(Step.CHECK, [check])
    for keyholder in earlier.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(DECRYPT, request), PolicyRefusal, "masks were erased")
    later.reveal().noise()  # the later epoch's session goes on
    (check,) = later.ciphertexts(Step.CHECK)
    later.serve(Step.CHECK, [check])
    assert all(later.served(node) == [Step.NOISE, Step.CHECK] for node in deployment.nodes)


def test_one_hunt_check_per_epoch_and_only_once_due(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    next_epoch(quiet)  # skipped: nobody has checked it, so only the order of epochs refuses it below
    epoch = next_epoch(quiet)
    first = HandSession(deployment, quiet, SessionKind.HUNT, epoch).start()
    (check,) = first.ciphertexts(Step.CHECK)
    partials = first.serve(Step.CHECK, [check])
    # asking again for the same step of the same session returns the very same partials
    again = first.serve(Step.CHECK, [check])
    assert {partial.data for partial in again} == {partial.data for partial in partials}
    # reopening the same session gives the same commitments: no fresh masks for a second look
    assert tuple(keyholder.call(OPEN_SESSION, first.session) for keyholder in first.keyholders) == first.commitments
    # a second check of the same epoch at another height (after one more intendo) is refused
    quiet.submit_count(12)
    second = SessionRef(quiet.stag_id, SessionKind.HUNT, epoch, first.session.height + 1, replay_log(deployment, quiet.stag_id, quiet.ciphertexts).head)
    for keyholder in first.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, second), PolicyRefusal, "already evaluated at height")
    # an earlier epoch, now due, is not after the last checked one
    earlier = replace(second, number=epoch - 1)
    refused(keyholder_warnings, lambda: first.keyholders[0].call(OPEN_SESSION, earlier), PolicyRefusal, "not after the last checked epoch")
    # an epoch that is not due yet, and epoch 0, are refused
    early = replace(second, number=epoch + 1)
    for keyholder in first.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, early), PolicyRefusal, "is not due until")
    refused(keyholder_warnings, lambda: first.keyholders[0].call(OPEN_SESSION, replace(second, number=0)), PolicyRefusal, "not an epoch of this stag")
    for node in deployment.nodes:
        assert [number for number, _ in served_steps(node, quiet.stag_id, SessionKind.HUNT) if number > epoch] == []


# -- families of quorums ----------------------------------------------------------------------


def test_only_the_prescribed_family_of_quorums_is_served(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    """With all three keyholders named, only the family that leaves out each of them in turn is
    served: a family that keeps one keyholder in every quorum (its shift would go unchecked), a
    single quorum of all three (own partials only, nothing cross-checked), a t-quorum padded
    with another, the right quorums in another order or repeated — all refused, logged, and
    nothing released. The committee's fault bound is f = 1, so a family narrowed to two
    keyholders (t, below t + f: one of them could shift unseen) is refused too, and so is one
    naming a keyholder whose masks are not in the session."""
    hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    (check,) = hand.ciphertexts(Step.CHECK)
    assert hand.family() == ((2, 3), (1, 3), (1, 2))
    for quorums in (
        ((1, 2), (1, 3)),
        ((1, 2, 3),),
        ((1, 2), (1, 2, 3)),
        ((1, 2), (1, 3), (2, 3)),
        ((2, 3), (1, 3), (1, 2), (1, 2)),
        ((2, 3), (1, 3)),
    ):
        request = hand.request(Step.CHECK, [check], quorums=quorums)
        each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "not the prescribed family")
    # a family narrowed below t + f, whichever keyholders it keeps (the asked one among them or not)
    assert hand.committee.fault_bound == 1
    for quorums in (((1, 2),), ((2, 3),), ((1, 3),)):
        request = hand.request(Step.CHECK, [check], quorums=quorums)
        each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, r"t \+ f = 3")
    # quorums outside the committee (no masks of theirs in the session)
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.CHECK, [check], quorums=((1, 4),)), PolicyRefusal, "masks are not in the session")
    first = hand.keyholders[0]
    with pytest.raises(StagpackError):
        first.call(DECRYPT, hand.request(Step.CHECK, [check], quorums=()))
    assert Step.CHECK not in hand.served(first.node)
    # the prescribed family is served (the refusals consumed nothing)
    assert len(hand.serve(Step.CHECK, [check])) == FAMILY_PARTIALS


def test_one_own_partial_per_step_whatever_the_family(
    deployment_factory: Callable[..., InProcessDeployment], keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    """Asked for one step with several prescribed families (all three live, then only two), a
    keyholder releases its own partial once and reuses it, adding the stand-ins the new family
    needs; asking again with a family already served returns exactly what it returned before.

    Several families are prescribed only where fewer than all keyholders may decrypt a step: a
    2-of-3 committee with fault bound f = 0 (t live suffice; the module's committee has f = 1
    and admits the one family of all three)."""
    clock = ManualClock()
    lenient = deployment_factory(3, 2, clock=clock, fault_bound=0)
    quiet = MirroredStag.create(lenient, clock, StagKind.COUNT, 16, title="quiet, f = 0")
    for _ in range(3):
        quiet.submit_count(10)
    quiet.validate()
    hand = HandSession(lenient, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    (check,) = hand.ciphertexts(Step.CHECK)
    first = hand.keyholders[0]
    # t commitments are enough with f = 0, but never a set without the asked keyholder's own
    others = (hand.commitments[1], hand.commitments[2])
    refused(keyholder_warnings, lambda: first.call(REVEAL_MASKS, RevealRequest(hand.session, others)), PolicyRefusal, "own commitment")
    # a family that leaves the asked keyholder out is refused by it
    refused(keyholder_warnings, lambda: first.call(DECRYPT, hand.request(Step.CHECK, [check], quorums=((2, 3),))), InvalidInput, "not in any quorum")
    families = [hand.family(), hand.family((1, 2)), hand.family((1, 3))]
    assert families[1:] == [((1, 2),), ((1, 3),)]
    responses = [first.call(DECRYPT, hand.request(Step.CHECK, [check], quorums=family)).partials for family in families]
    assert first.call(DECRYPT, hand.request(Step.CHECK, [check], quorums=families[0])).partials == responses[0]
    for family, partials in zip(families, responses):
        own = [partial for partial in partials if partial.statement.quorum == ()]
        assert own == [partial for partial in responses[0] if partial.statement.quorum == ()] and len(own) == 1
        stand_ins = sorted((partial.statement.quorum, partial.statement.on_behalf_of) for partial in partials if partial.statement.quorum)
        assert stand_ins == sorted((quorum, absent) for quorum in family if 1 in quorum for absent in (1, 2, 3) if absent not in quorum)
    record = session_record(first.node, hand.session)
    assert [(served.step, served.quorums) for served in record.served] == [(Step.NOISE, families[0])] + [(Step.CHECK, family) for family in families]
    released_own = {
        (partial.statement.item, partial.data)
        for served in record.served if served.step is Step.CHECK
        for partial in served.partials if partial.statement.quorum == ()
    }
    assert len(released_own) == 1
    assert record.own_partials(Step.CHECK) == tuple(partial for partial in responses[0] if partial.statement.quorum == ())
    # The reused own partial fuses with the stand-ins made for the later family: keyholders 1
    # and 2 alone reveal the same check facts as all three.
    everyone = hand.serve(Step.CHECK, [check])
    pair = hand.serve(Step.CHECK, [check], quorums=families[1])
    full = hand.read(everyone)
    assert full.through is Step.CHECK
    assert hand.read(pair).candidates == full.candidates == ()


# -- the order of steps -----------------------------------------------------------------------


def test_confirm_needs_the_check_partials(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    confirm = hand.ciphertexts(Step.CONFIRM, candidates=(5,))
    request = hand.request(Step.CONFIRM, confirm, ())  # the noise step's partials only
    each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "no partial decryptions of the check step")


def test_nothing_is_confirmed_or_revealed_when_the_check_did_not_fire(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    check = hand.serve(Step.CHECK, hand.ciphertexts(Step.CHECK))
    for level in (5, 11):  # any level: a non-fixed point, and where the intendos' thresholds are
        confirm = hand.request(Step.CONFIRM, hand.ciphertexts(Step.CONFIRM, candidates=(level,)), check)
        each_keyholder_refuses(keyholder_warnings, hand, confirm, PolicyRefusal, "did not fire")
        membership = hand.request(Step.MEMBERSHIP, hand.ciphertexts(Step.MEMBERSHIP, level=level), check)
        # refused by membership's own condition: with no candidate, no level was confirmed
        each_keyholder_refuses(keyholder_warnings, hand, membership, PolicyRefusal, "no candidate level was confirmed")
    # nothing to certify either
    for keyholder in hand.keyholders:
        outcome = HuntOutcome(quiet.stag_id, hand.session.number, hand.session.height, hand.session.head, 11, 0, ())
        refused(keyholder_warnings, lambda: keyholder.call(CERTIFY, hand.certify_request(check, outcome)), PolicyRefusal, "nothing to certify")
    for node in deployment.nodes:
        assert all(record.fired_level == 0 for record in node.session_records(quiet.stag_id))


def test_no_membership_after_a_candidate_failed_its_confirmation(
    deployment: InProcessDeployment,
    quiet: MirroredStag,
    masks: MaskScript,
    keyholder_warnings: pytest.LogCaptureFixture,
) -> None:
    false_level = 7  # not a fixed point of the quiet pack
    with masks.zero_at(false_level):  # every keyholder's check mask is zero there
        hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    check = hand.serve(Step.CHECK, hand.ciphertexts(Step.CHECK))
    confirm = hand.serve(Step.CONFIRM, hand.ciphertexts(Step.CONFIRM, candidates=(false_level,)), check)  # the check "fired"
    membership = hand.request(Step.MEMBERSHIP, hand.ciphertexts(Step.MEMBERSHIP, level=false_level), check + confirm)
    each_keyholder_refuses(keyholder_warnings, hand, membership, PolicyRefusal, "no candidate level was confirmed")
    for node in deployment.nodes:
        assert all(record.fired_level == 0 for record in node.session_records(quiet.stag_id))


@pytest.fixture
def firing(deployment: InProcessDeployment, clock: ManualClock) -> MirroredStag:
    """A validated pack with a fixed point at 3 (three who need two others; one who needs nine)."""
    stag = MirroredStag.create(deployment, clock, StagKind.COUNT, 16, title="firing")
    for _ in range(3):
        stag.submit_count(2)
    stag.submit_count(9)
    stag.validate()
    return stag


def test_membership_only_at_the_confirmed_level_and_only_the_fused_outcome_is_signed(
    deployment: InProcessDeployment, firing: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    hand = HandSession(deployment, firing, SessionKind.HUNT, next_epoch(firing)).start()
    check = hand.serve(Step.CHECK, hand.ciphertexts(Step.CHECK))
    confirm = hand.serve(Step.CONFIRM, hand.ciphertexts(Step.CONFIRM, candidates=(3,)), check)
    for level in (2, 10):  # below the fixed point, and at the fourth intendo's threshold
        request = hand.request(Step.MEMBERSHIP, hand.ciphertexts(Step.MEMBERSHIP, level=level), check + confirm)
        each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "differs from this keyholder's recomputation")
    membership = hand.serve(Step.MEMBERSHIP, hand.ciphertexts(Step.MEMBERSHIP, level=3), check + confirm)
    partials = check + confirm + membership
    expected = firing.solver.hunt()
    assert expected is not None and expected.level == 3
    members = tuple(envelope for key, envelope in hand.snapshot.pending if key in expected.members)
    honest = HuntOutcome(firing.stag_id, hand.session.number, hand.session.height, hand.session.head, 3, 0, members)
    forged = replace(honest, members=members[:2], level=2)  # drop a member (and fake the level to match)
    for keyholder in hand.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(CERTIFY, hand.certify_request(partials, forged)), PolicyRefusal, "differs from what this keyholder fused")
        response = keyholder.call(CERTIFY, hand.certify_request(partials, honest))
        assert response.keyholder == keyholder.index


# -- masks and commitments --------------------------------------------------------------------


def test_masks_must_match_their_commitments(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    """The reveals are checked against the commitments when a keyholder first computes the
    session's ciphertexts, i.e. at its first step, the noise test (it keeps that computation,
    from the masks that matched, for the session's later steps)."""
    hand = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).open().reveal()
    computation = hand.computation()
    noise = computation.ciphertexts(Step.NOISE, computation.initial_facts())
    context = deployment.context
    own_mask = context.ciphertext_to_bytes(context.encrypt(context.joint_key, np.zeros(context.slot_count, dtype=np.int64)))
    chosen = replace(hand.reveals[1], masks=(own_mask, *hand.reveals[1].masks[1:]))  # the operator's own "mask" (zero)
    swapped = replace(hand.reveals[1], masks=hand.reveals[2].masks)  # another keyholder's masks
    for reveals in ((hand.reveals[0], chosen, hand.reveals[2]), (hand.reveals[0], swapped, hand.reveals[2])):
        request = hand.request(Step.NOISE, noise, reveals=reveals)
        each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "do not match its commitment")
    hand.noise()  # the genuine reveals are served (the refusals consumed nothing)


def test_commitments_must_be_for_this_log_position_and_at_least_t(
    deployment: InProcessDeployment, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    epoch = next_epoch(quiet)
    hand = HandSession(deployment, quiet, SessionKind.HUNT, epoch)
    keyholders = hand.keyholders
    # a session at the right height with another head: the operator shows another log
    other_head = replace(hand.session, head=os.urandom(32))
    for keyholder in keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, other_head), PolicyRefusal, "log head differs")
    hand.open()
    # keyholder 2 was shown another log (equivocation): its genuine signature, another head
    deceived = MaskCommitment(other_head, 2, hand.commitments[1].commitment.masks)
    signed = SignedCommitment(deceived, deployment.nodes[1].identity.sign("mask-commitment", codec.encode(deceived)))
    mixed = (hand.commitments[0], signed, hand.commitments[2])
    for keyholder in keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(REVEAL_MASKS, RevealRequest(hand.session, mixed)), PolicyRefusal, "another session or log position")
    # fewer than t contributors, or t but fewer than t + f (the committee's fault bound is 1),
    # and padding with a duplicate
    assert hand.committee.fault_bound == 1
    for contributors in ((hand.commitments[0],), hand.commitments[:2]):
        refused(keyholder_warnings, lambda: keyholders[0].call(REVEAL_MASKS, RevealRequest(hand.session, contributors)), PolicyRefusal, r"at least t \+ f = 3")
    doubled = (hand.commitments[0], hand.commitments[0])
    refused(keyholder_warnings, lambda: keyholders[0].call(REVEAL_MASKS, RevealRequest(hand.session, doubled)), InvalidInput, "two mask commitments")
    # a commitment set without the keyholder's own: with f = 1 it is short of t + f as well
    # (test_one_own_partial_per_step_whatever_the_family asks a committee with f = 0)
    others = (hand.commitments[1], hand.commitments[2])
    refused(keyholder_warnings, lambda: keyholders[0].call(REVEAL_MASKS, RevealRequest(hand.session, others)), PolicyRefusal, r"at least t \+ f = 3")
    # a forged signature on a commitment
    forged = (hand.commitments[0], replace(hand.commitments[1], signature=flip_one_byte(hand.commitments[1].signature, 0)), hand.commitments[2])
    refused(keyholder_warnings, lambda: keyholders[0].call(REVEAL_MASKS, RevealRequest(hand.session, forged)), InvalidSignature, "mask-commitment signature does not verify")
    for node in deployment.nodes:  # nothing was fixed, so no mask was revealed
        (record,) = [record for record in node.session_records(quiet.stag_id) if record.session.number == epoch]
        assert record.fixed_commitments == () and record.served == ()
    # once fixed, decrypting with any other commitment set is refused
    hand.reveal().noise()
    (check,) = hand.ciphertexts(Step.CHECK)
    request = hand.request(Step.CHECK, [check], commitments=hand.commitments[:2], reveals=hand.reveals[:2])
    each_keyholder_refuses(keyholder_warnings, hand, request, PolicyRefusal, "not the ones whose commitments this keyholder fixed")


# -- prior partials -----------------------------------------------------------------------------


def test_prior_partials_must_be_genuine(
    deployment: InProcessDeployment, firing: MirroredStag, quiet: MirroredStag, keyholder_warnings: pytest.LogCaptureFixture
) -> None:
    hand = HandSession(deployment, firing, SessionKind.HUNT, next_epoch(firing)).start()
    check = hand.serve(Step.CHECK, hand.ciphertexts(Step.CHECK))
    confirm = hand.ciphertexts(Step.CONFIRM, candidates=(3,))
    signature = replace(check[1], signature=flip_one_byte(check[1].signature, 5))
    data = replace(check[1], data=flip_one_byte(check[1].data, len(check[1].data) - 9))
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.CONFIRM, confirm, (check[0], signature) + check[2:]), InvalidSignature, "partial-decryption signature")
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.CONFIRM, confirm, (check[0], data) + check[2:]), InvalidInput, "does not match its signed digest")
    assert (check[0].statement.producer, check[0].statement.quorum) == (1, ())  # keyholder 1's own partial
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.CONFIRM, confirm, check[1:]), InvalidInput, "incomplete")
    # check partials of another session (the quiet stag's) cannot stand in for this one's
    other = HandSession(deployment, quiet, SessionKind.HUNT, next_epoch(quiet)).start()
    foreign = other.serve(Step.CHECK, other.ciphertexts(Step.CHECK))
    each_keyholder_refuses(keyholder_warnings, hand, hand.request(Step.CONFIRM, confirm, foreign), PolicyRefusal, "another session")
    # the genuine partials still work
    assert len(hand.serve(Step.CONFIRM, confirm, check)) == FAMILY_PARTIALS


# -- a fired hunt is binding --------------------------------------------------------------------


def test_after_membership_nothing_opens_until_the_hunt_is_in_the_log(
    deployment: InProcessDeployment,
    firing: MirroredStag,
    keyholder_warnings: pytest.LogCaptureFixture,
) -> None:
    aggregator = deployment.aggregator
    lost = unreachable_for(CERTIFY)  # every certify request is lost in transit: the session stops right after membership
    epoch = next_epoch(firing)
    with intercepting(deployment.keyholders, lost), pytest.raises(CommitteeUnavailable):
        aggregator.run_due(firing.stag_id)
    assert firing.epoch_results()[epoch] == "committee-unavailable"
    for node in deployment.nodes:
        assert Step.MEMBERSHIP in [step for number, step in served_steps(node, firing.stag_id) if number == epoch]
    height = aggregator.status(firing.stag_id).height
    head = replay_log(deployment, firing.stag_id, firing.ciphertexts).head
    # the next epoch's check at the same height: refused
    later = SessionRef(firing.stag_id, SessionKind.HUNT, next_epoch(firing), height, head)
    for keyholder in deployment.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, later), WrongPhase, "must be recorded in the log first")
    # a newcomer arrives; validating it (a session at a greater height) is refused too
    newcomer = firing.submit_count(12)
    batch = SessionRef(firing.stag_id, SessionKind.VALIDATION, 2, height + 1, replay_log(deployment, firing.stag_id, firing.ciphertexts).head)
    for keyholder in deployment.keyholders:
        refused(keyholder_warnings, lambda: keyholder.call(OPEN_SESSION, batch), WrongPhase, "must be recorded in the log first")
    # the aggregator resumes: the hunt is certified and logged, and equals the solver's
    aggregator.run_due(firing.stag_id)
    expected = firing.solver.hunt()
    assert expected is not None and newcomer not in expected.members
    (certificate,) = aggregator.hunts(firing.stag_id)
    assert certificate.outcome.epoch == epoch and firing.epoch_results()[epoch] == "hunt"
    firing.check_certificate(certificate, expected)
    firing.solver.execute(expected)
    # ... after which sessions open again: the newcomer is validated and the current epoch checked
    firing.check_epoch()
    assert aggregator.status(firing.stag_id).awaiting_validation == 0
