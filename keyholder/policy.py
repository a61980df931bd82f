"""The keyholder's decryption policy (DESIGN.md §4): every rule a keyholder enforces, in order.

A keyholder partially decrypts only a ciphertext that it recomputed itself from its own replica
of the stag's signed log at the session's log position, with masks that every contributor
committed to before any was revealed, in a step that the step graph (`stagpack.decrypt.steps`)
allows after what the earlier steps revealed — and it reads what they revealed itself, from
their signed partials. Each rule below raises `PolicyRefusal` (or `WrongPhase` when waiting
will help) with its reason; `KeyholderNode` applies them in this order and logs every refusal.

0. Who may ask
   - ceremony calls only from the coordinator this keyholder is configured with (before it
     holds a key); session calls only from the aggregator its committee transcript names; each
     with a fresh credential for this very call and keyholder, never replayed.
1. Opening a session
   - a fired hunt is recorded in the log before anything else is served for its stag (hunts
     are binding: no dry runs);
   - the aggregator shows this keyholder the log head its replica holds (no equivocation);
   - a hunt check only for the current epoch of the stag (due, and not yet superseded beyond the
     clock skew), after the last epoch checked, on a pack with counted intendos; a validation
     session only for the next batch; nothing once the stag's refunds are settled;
   - a stag with a trigger is checked only once the trigger's first hunt armed it (a trigger
     entry in its log); armed before its first epoch is due, it is checked at once as epoch 1,
     only then (DESIGN.md §10.2: the trigger's certificate makes it due, never a free probe);
   - a refund stag's closing epoch (the first after its deadline) stays current until it runs,
     and only once every intendo submitted in time was validated: if it does not fire and the
     stag never hunted, its outcome is the settlement of the refunds (DESIGN.md §10.3);
   - a session that was already evaluated is not opened again at another height;
   - a capital stag's hunt only on a pack that counts no intendo whose escrow account a hunt
     of another stag spent (the log must void it first), and not while another capital hunt
     that may execute intendos backed by the same accounts is bound but unfinished on this
     keyholder (multiplexing, DESIGN.md §10.1: no escrow is spent twice).
2. Masks
   - the commitments come from at least t + f distinct committee members (f: the committee's
     fault bound), all for this session and log position, with this keyholder's own among them;
   - once fixed, the set of commitments may only shrink (a contributor that went away), and
     only before anything was decrypted.
3. What may be decrypted
   - only sessions that can still be served: not superseded, not erased;
   - the family of quorums is the prescribed one for the keyholders it names, at least t + f of
     them and all among the session's mask contributors (families the operator cannot narrow);
   - the masks are the ones whose commitments this keyholder fixed, and its replica is at the
     session's height;
   - earlier steps' facts come only from their complete, verified partials, each step's from
     t + f keyholders; the noise test comes first and must show every contributor's masks and
     pads bounded (or, tested alone, that contributor's masks are left out of everything after
     it) and a validation's intendos bounded before any product of them is decrypted;
   - the step graph allows the step after those facts;
   - the ciphertext the aggregator claims is exactly this keyholder's recomputation.
4. One own partial per ciphertext, ever: every fresh partial is another flooding sample.
5. A binding step (membership) is recorded durably before its partials leave — for a capital
   stag with the escrow accounts the hunt may spend, after checking rule 1's escrow rules again.
6. Certify only the outcome this keyholder fused itself.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from stagpack.decrypt.computation import SessionComputation, facts_before
from stagpack.decrypt.quorum import Quorum, quorum_family
from stagpack.decrypt.steps import SessionFacts
from stagpack.calls import Call
from stagpack.dkg.rounds import CEREMONY_ROUNDS
from stagpack.errors import CommitteeUnavailable, InvalidInput, PolicyRefusal, Unauthenticated, UnverifiedEvidence, WrongPhase
from stagpack.identity import verify_signature
from stagpack.accounts import Account
from stagpack.keyholder.store import BindingHunt, SessionRecord
from stagpack.committee import CommitteeInfo
from stagpack.pack import PackState
from stagpack.session import SESSION_CALLS, SessionKind, SessionRef, SignedCommitment, SignedPartial, Step, committed_count

# -- 0. who may ask --------------------------------------------------------------------------


def callers_for(call: Call[Any, Any], committee: CommitteeInfo | None, coordinator_key: bytes | None) -> frozenset[bytes]:
    """The callers a keyholder serves `call` to."""
    if call in CEREMONY_ROUNDS:
        if coordinator_key is None:
            raise Unauthenticated("this keyholder has no coordinator configured: it takes part in no ceremony")
        return frozenset((coordinator_key,))
    if call in SESSION_CALLS:
        if committee is None:
            raise WrongPhase("this keyholder has no key yet: run the key ceremony first")
        return frozenset((committee.aggregator_key,))
    raise InvalidInput(f"a keyholder does not serve {call.rpc}")


# -- 1. opening a session ---------------------------------------------------------------------


def unrecorded_fired_hunts(records: Sequence[SessionRecord], last_recorded_epoch: int, dead: frozenset[int] = frozenset()) -> list[int]:
    """Epochs whose hunt this keyholder served membership for and the log does not record yet
    — except `dead` ones: capital hunts that count an escrow account another stag's certified
    hunt spent. Keyholders refuse every further step of those, so they never finish, and fewer
    than t keyholders can have served their membership (docs/protocol.md §6a): they hold
    nothing back."""
    return [
        record.session.number
        for record in records
        if record.fired_level and record.session.kind is SessionKind.HUNT and record.session.number > last_recorded_epoch
        and record.session.number not in dead
    ]


def require_hunts_recorded(fired: Sequence[int], recorded: set[int]) -> None:
    """A fired hunt must be in the log before the replica moves past its height (it is certified
    at that height) and before anything else is served for the stag."""
    for number in fired:
        if number not in recorded:
            raise WrongPhase(f"the hunt of epoch {number} fired and must be recorded in the log first")


def require_head(state: PackState, session: SessionRef) -> None:
    if state.head != session.head:
        raise PolicyRefusal("the log head differs from this keyholder's replica (equivocating aggregator?)")


def require_not_reevaluated(existing: SessionRecord | None, session: SessionRef) -> None:
    """A session that served a step at one log position is never opened at another."""
    if existing is not None and existing.session != session and existing.served:
        raise PolicyRefusal(
            f"{session.kind.value} {session.number} was already evaluated at height {existing.session.height}"
        )


def may_open(
    session: SessionRef, state: PackState, records: Sequence[SessionRecord], now_millis: int, dead: frozenset[int] = frozenset()
) -> None:
    """Whether `session` may open on the replica `state` (synced to the session's height);
    `dead`: the stag's bound hunts that can never finish (`unrecorded_fired_hunts`)."""
    spec = state.require_spec()
    require_hunts_recorded(unrecorded_fired_hunts(records, state.last_hunt_epoch, dead), set())
    if state.settlement is not None:
        raise PolicyRefusal("the stag's refunds are settled: it is closed")
    if session.kind is SessionKind.HUNT:
        require_armed(state)
        if not spec.epoch_allowed(session.number):
            raise PolicyRefusal(f"epoch {session.number} is not an epoch of this stag")
        served = [record.session.number for record in records if record.session.kind is SessionKind.HUNT and record.served]
        due = spec.epoch_due_at(session.number)
        if now_millis < due and not immediate_check(state, session, served):
            raise PolicyRefusal(f"epoch {session.number} is not due until {due} (it is {now_millis})")
        closing = state.closing_pending(session.number)
        if not closing and now_millis >= spec.epoch_due_at(session.number + 1) + state.limits.max_clock_skew_millis:
            # only the current epoch runs: past ones are not a backlog of extra checks
            raise PolicyRefusal(f"epoch {session.number} is over: the current epoch is {spec.current_epoch(now_millis)}")
        if closing and state.awaiting():
            # the closing check decides the refunds: it counts every intendo submitted in time
            raise WrongPhase("intendos submitted before the deadline await validation: the closing check waits for them")
        if served and session.number <= max(served):
            raise PolicyRefusal(f"epoch {session.number} is not after the last checked epoch {max(served)}")
        if state.counted == 0:
            raise WrongPhase("the pack has no counted intendos")
    else:
        if session.number != state.validation_batches + 1:
            raise PolicyRefusal(f"the next validation batch is {state.validation_batches + 1}, not {session.number}")
        if not state.validation_batch():
            raise WrongPhase("no intendos await validation")


def require_armed(state: PackState) -> None:
    """A stag with a trigger is checked only once its trigger's first hunt is in its log: before,
    a check would be a free probe of whether it would fire — and a hunt that executes without
    the condition its intendos were signed under."""
    spec = state.require_spec()
    if not state.may_hunt():
        raise WrongPhase(f"the stag's trigger {spec.trigger.hex()[:12]} has not hunted: its hunts wait for it")


def immediate_check(state: PackState, session: SessionRef, served: Sequence[int]) -> bool:
    """Whether `session` is the check a trigger's hunt makes due at once (DESIGN.md §10.2): a
    stag armed before its first epoch is due is checked as epoch 1 — once, as its first check
    (epoch 1 is then checked, and the next check waits for epoch 2 to be due)."""
    return state.armed is not None and session.number == 1 and not served


def require_unspent(state: PackState, spent_by: Callable[[Account], tuple[bytes, int] | None]) -> None:
    """A capital hunt does not evaluate a pack that still counts an intendo whose escrow account
    a hunt of another stag spent (by `spent_by`, what this keyholder has seen): the aggregator
    must void it in the log first, or the account would pay twice."""
    for intendo_id, record in state.pending():
        account = record.backing
        spent = None if account is None else spent_by(account)
        if account is not None and spent is not None and spent[0] != state.stag_id:
            raise WrongPhase(
                f"intendo {intendo_id.hex()[:12]} is backed by account {account.describe()}, which the hunt of stag "
                f"{spent[0].hex()[:12]} at epoch {spent[1]} spent: the log must void it before this stag hunts"
            )


def pending_accounts(state: PackState) -> tuple[Account, ...]:
    """The escrow accounts backing the intendos a hunt of `state` could execute."""
    return tuple(sorted({record.backing for _, record in state.pending() if record.backing is not None}, key=lambda a: (a.owner, a.tag)))


def require_no_binding_overlap(state: PackState, bindings: Sequence[BindingHunt]) -> None:
    """Two capital hunts that could execute intendos backed by the same escrow account are
    never bound at once on this keyholder: the second waits until the first is finished (and
    its spent accounts voided). Any two families of t + f keyholders share an honest one, so
    two such hunts cannot both reveal their members."""
    accounts = set(pending_accounts(state))
    for binding in bindings:
        if binding.stag_id != state.stag_id and accounts.intersection(binding.accounts):
            raise WrongPhase(
                f"the hunt of stag {binding.stag_id.hex()[:12]} at epoch {binding.epoch} may execute intendos backed by "
                "the same escrow accounts and is not finished: this hunt waits for it"
            )


# -- 2. masks ---------------------------------------------------------------------------------


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
        if len(commitment.masks) != committed_count(session.kind) or any(len(mask) != 32 for mask in commitment.masks):
            raise InvalidInput("a mask commitment has the wrong shape")
        verify_signature(committee.verify_key(commitment.keyholder), "mask-commitment", signed.message(), signed.signature)
        seen.add(commitment.keyholder)
    if len(seen) < committee.decrypting:
        needed = f"t = {committee.threshold}" if committee.fault_bound == 0 else f"t + f = {committee.decrypting}"
        raise PolicyRefusal(f"masks from {len(seen)} keyholders; at least {needed} must contribute")


def require_own_commitment(record: SessionRecord, index: int, commitments: Sequence[SignedCommitment]) -> None:
    mine = [signed for signed in commitments if signed.commitment.keyholder == index]
    if mine != [record.commitment]:
        raise PolicyRefusal("the commitments do not include this keyholder's own commitment")


def may_fix_commitments(record: SessionRecord, ordered: tuple[SignedCommitment, ...]) -> None:
    """The first reveal fixes the set of commitments. A contributor that went offline before
    revealing may be dropped, but only before anything was decrypted; none may be added."""
    if record.fixed_commitments and record.fixed_commitments != ordered:
        shrinking = set(ordered) < set(record.fixed_commitments)
        if not shrinking or record.served:
            raise PolicyRefusal("a different set of mask commitments was already fixed for this session")


# -- 3. what may be decrypted -----------------------------------------------------------------


def require_servable(record: SessionRecord | None, session: SessionRef) -> SessionRecord:
    """The stored record of a session that can still be served."""
    if record is None:
        raise WrongPhase("no such session was opened on this keyholder")
    if record.session != session:
        raise WrongPhase(
            f"stale session: {session.kind.value} {session.number} was opened again at height "
            f"{record.session.height}, and only that one may be served"
        )
    if record.erased:
        raise PolicyRefusal("stale session: a later session has opened, and this one's masks were erased")
    return record


def require_prescribed_family(
    committee: CommitteeInfo, quorums: Sequence[tuple[int, ...]], index: int, record: SessionRecord
) -> tuple[Quorum, ...]:
    """The family must be exactly the prescribed one for the keyholders it names, name this
    keyholder, name only keyholders whose masks the session fixed, and name at least t + f of
    them (DESIGN.md §4): then, for every f keyholders, one quorum without them cross-checks the
    rest, and narrowing the family gains the operator nothing."""
    members = {member for quorum in quorums for member in quorum}
    contributors = {signed.commitment.keyholder for signed in record.fixed_commitments}
    if not members <= contributors:
        raise PolicyRefusal(f"the family names keyholders {sorted(members - contributors)}, whose masks are not in the session")
    try:
        family = quorum_family(committee.parties, committee.threshold, frozenset(members), committee.fault_bound)
    except CommitteeUnavailable:
        raise PolicyRefusal(
            f"a family of {len(members)} keyholders: with fault bound f = {committee.fault_bound} every step is "
            f"decrypted by at least t + f = {committee.decrypting}, so that no f of them go unchecked"
        ) from None
    if tuple(quorum.members for quorum in family) != tuple(quorums):
        raise PolicyRefusal(f"the quorums {tuple(quorums)} are not the prescribed family for keyholders {sorted(members)}")
    if index not in members:
        raise InvalidInput(f"keyholder {index} is not in any quorum of {tuple(quorums)}")
    return family


def require_fixed_masks(record: SessionRecord, ordered: tuple[SignedCommitment, ...]) -> None:
    if not record.fixed_commitments or ordered != record.fixed_commitments:
        raise PolicyRefusal("the masks are not the ones whose commitments this keyholder fixed")


def require_replica_at(state: PackState, session: SessionRef) -> None:
    if state.height != session.height:
        raise PolicyRefusal(f"stale session: this keyholder's replica is at height {state.height}, not {session.height}")


def derive_facts(
    computation: SessionComputation, committee: CommitteeInfo, prior: Sequence[SignedPartial], step: Step
) -> SessionFacts:
    """What the steps before `step` revealed, read by this keyholder itself from their signed
    partials (decrypted by t + f keyholders, so that up to f dishonest ones cannot have shifted
    them unseen); then the step graph's verdict on `step`. Evidence that does not verify is
    refused."""
    try:
        return facts_before(computation, committee, prior, step)
    except UnverifiedEvidence as error:
        raise PolicyRefusal(str(error)) from None


def require_recomputed(claimed: Sequence[bytes], recomputed: Sequence[bytes]) -> None:
    """Decrypt only this keyholder's own recomputation, byte for byte."""
    if tuple(claimed) != tuple(recomputed):
        raise PolicyRefusal("the ciphertext to decrypt differs from this keyholder's recomputation")


# -- 6. certify -------------------------------------------------------------------------------


def require_outcome(fused: bytes | None, claimed: bytes) -> None:
    """Sign only an outcome this keyholder fused itself from the session's partials."""
    if fused is None:
        raise PolicyRefusal("the session revealed no hunt; there is nothing to certify")
    if fused != claimed:
        raise PolicyRefusal("the outcome differs from what this keyholder fused")
