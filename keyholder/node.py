"""A keyholder: takes part in the key ceremony, then decrypts only what the policy allows.

The decryption policy (DESIGN.md §4) is enforced here, not trusted to the aggregator. A keyholder
partially decrypts only ciphertexts it recomputed itself from its own replica of the stag's log
at the session's height, with the masks every contributor committed to before any was revealed:

* nothing else, ever (a raw intendo, a forged or stale evaluation, a ciphertext one byte off);
* one hunt check per stag and epoch, and only once the epoch is due;
* confirmation only after that check fired, membership only after a level was confirmed, and
  only for the intendos pending at that height;
* after membership was revealed, nothing further for the stag until the hunt is in the log
  (hunts are binding: there are no dry runs).

Every refusal raises `PolicyRefusal` (or `WrongPhase`) with a clear reason and is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from stagpack import codec
from stagpack.decrypt import DecryptingParty
from stagpack.dkg import DkgParty, Transcript
from stagpack.dkg.messages import (
    Acknowledgement,
    BackupRequest,
    BackupResponse,
    CeremonyPlan,
    ChainRequest,
    ChainResponse,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    FinalizeResponse,
    RoundOneRequest,
    RoundOneResponse,
    RoundTwoRequest,
    RoundTwoResponse,
    SelfTestRequest,
    SelfTestResponse,
    SignRequest,
    TranscriptSignature,
)
from stagpack.errors import InvalidInput, PolicyRefusal, StagpackError, WrongPhase
from stagpack.evaluation import (
    SessionComputation,
    check_commitments,
    prescribed_family,
    read_hunt_steps,
    read_validation_steps,
    session_outcome,
    sign_partials,
)
from stagpack.fhe import Ciphertext, FheContext, KeyMaterial
from stagpack.identity import KeyholderIdentity, PublicIdentity, Sealer
from stagpack.keyholder.replica import LogSource, Replicas
from stagpack.keyholder.store import KeyholderStore, ServedStep, SessionRecord, StoredCommittee, StoreFootprint
from stagpack.log import CommitteeInfo, EntryKind, HuntCertificate, decode_body
from stagpack.pack import PackLimits, PackState
from stagpack.session import (
    MASKS_PER_SESSION,
    CertifyRequest,
    CertifyResponse,
    DecryptRequest,
    DecryptResponse,
    MaskCommitment,
    MaskReveal,
    RevealRequest,
    SessionKind,
    SessionRef,
    SignedCommitment,
    Step,
)
from stagpack.stag import now_millis

log = logging.getLogger("stagpack.keyholder")


class KeyholderNode:
    """One keyholder's protocol logic, behind whatever transport serves it."""

    def __init__(
        self,
        context: FheContext,
        identity: KeyholderIdentity,
        store: KeyholderStore,
        sealer: Sealer,
        source: LogSource,
        *,
        limits: PackLimits | None = None,
        clock: Callable[[], int] = now_millis,
    ) -> None:
        self.context = context
        self.identity = identity
        self._store = store
        self._sealer = sealer
        self._source = source
        self._limits = limits or PackLimits()
        self._clock = clock
        self._ceremony: DkgParty | None = None
        self._ceremony_lock = threading.Lock()
        self.transcript: Transcript | None = None
        self.committee: CommitteeInfo | None = None
        self.index = 0
        self._party: DecryptingParty | None = None
        self._replicas: Replicas | None = None
        self._computations: dict[tuple[bytes, bytes], SessionComputation] = {}
        stored = store.load_committee()
        if stored is not None:
            self._load_committee(stored)

    # -- state --------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once a ceremony has completed and the key share is loaded."""
        return self._party is not None

    @property
    def public_identity(self) -> PublicIdentity:
        return self.identity.public

    def footprint(self) -> StoreFootprint:
        """How much this keyholder's store holds (for operators and benchmarks)."""
        return self._store.footprint()

    def _load_committee(self, stored: StoredCommittee) -> None:
        transcript = Transcript.from_bytes(stored.transcript)
        transcript.verify()
        committee = CommitteeInfo.from_transcript(transcript)
        if self.identity.verify_key not in committee.verify_keys:
            raise WrongPhase("the stored committee does not include this keyholder's identity")
        index = committee.verify_keys.index(self.identity.verify_key) + 1
        context = self.context
        joint = context.public_key_from_bytes(stored.joint_public_key)
        context.install_evaluation_keys(
            context.key_material_from_bytes(stored.relinearization, KeyMaterial.RELINEARIZATION),
            context.key_material_from_bytes(stored.rotation, KeyMaterial.ROTATION),
            joint.key_tag,
        )
        context.bind_joint_key(joint)
        secret = context.secret_key_from_bytes(self._sealer.unseal(stored.sealed_secret))
        sealed_backups = codec.decode(_SealedBackups, stored.sealed_backups)
        backups = {
            item.index: context.backup_share_from_bytes(self._sealer.unseal(item.sealed)) for item in sealed_backups.items
        }
        self.transcript = transcript
        self.committee = committee
        self.index = index
        self._party = DecryptingParty(context, index, secret, backups, committee.parties, committee.threshold)
        self._replicas = Replicas(context, committee, self._store, self._source, self._limits, self._clock)
        log.info(
            "keyholder %s ready: keyholder %d of %d (t=%d) in committee %s",
            self.identity.name, index, committee.parties, committee.threshold, committee.committee_id.hex()[:12],
        )

    def _require_ready(self) -> tuple[CommitteeInfo, DecryptingParty, Replicas]:
        if self.committee is None or self._party is None or self._replicas is None:
            raise WrongPhase("this keyholder has no key yet: run the key ceremony first")
        return self.committee, self._party, self._replicas

    # -- ceremony -----------------------------------------------------------------------------

    def _ceremony_party(self, create: bool = False) -> DkgParty:
        with self._ceremony_lock:
            if create and (self._ceremony is None or self._ceremony.plan is not None):
                if self.ready:
                    raise WrongPhase("this keyholder already holds a committee key; it takes part in no new ceremony")
                self._ceremony = DkgParty(self.context, self.identity)
            if self._ceremony is None:
                raise WrongPhase("no ceremony in progress on this keyholder")
            return self._ceremony

    def handle_plan(self, request: CeremonyPlan) -> Acknowledgement:
        current = self._ceremony
        if current is not None and current.plan == request:
            return current.handle_plan(request)
        return self._ceremony_party(create=True).handle_plan(request)

    def handle_chain(self, request: ChainRequest) -> ChainResponse:
        return self._ceremony_party().handle_chain(request)

    def handle_round_one(self, request: RoundOneRequest) -> RoundOneResponse:
        return self._ceremony_party().handle_round_one(request)

    def handle_round_two(self, request: RoundTwoRequest) -> RoundTwoResponse:
        return self._ceremony_party().handle_round_two(request)

    def handle_finalize(self, request: FinalizeRequest) -> FinalizeResponse:
        return self._ceremony_party().handle_finalize(request)

    def handle_backup(self, request: BackupRequest) -> BackupResponse:
        return self._ceremony_party().handle_backup(request)

    def handle_deliver_backups(self, request: DeliverBackupsRequest) -> Acknowledgement:
        return self._ceremony_party().handle_deliver_backups(request)

    def handle_self_test(self, request: SelfTestRequest) -> SelfTestResponse:
        return self._ceremony_party().handle_self_test(request)

    def handle_sign(self, request: SignRequest) -> TranscriptSignature:
        return self._ceremony_party().handle_sign(request)

    def handle_complete(self, request: CompleteRequest) -> Acknowledgement:
        party = self._ceremony_party()
        if self.ready and self.transcript == request.transcript:
            return Acknowledgement(request.transcript.body.ceremony_id, self.index)
        outcome = party.handle_complete(request)
        sealed_backups = _SealedBackups(
            tuple(
                _SealedBackup(holder, self._sealer.seal(self.context.backup_share_to_bytes(share)))
                for holder, share in sorted(outcome.backups.items())
            )
        )
        stored = StoredCommittee(
            transcript=outcome.transcript_bytes,
            joint_public_key=outcome.joint_public_key,
            relinearization=outcome.relinearization,
            rotation=outcome.rotation,
            sealed_secret=self._sealer.seal(outcome.secret.to_bytes()),
            sealed_backups=codec.encode(sealed_backups),
        )
        self._store.save_committee(stored)
        self._load_committee(stored)
        return Acknowledgement(request.transcript.body.ceremony_id, party.index)

    # -- sessions -----------------------------------------------------------------------------

    def _refuse(self, session: SessionRef, reason: str, error: type[StagpackError] = PolicyRefusal) -> StagpackError:
        log.warning("keyholder %s refused %s: %s", self.identity.name, session.describe(), reason)
        return error(reason)

    def open_session(self, session: SessionRef) -> SignedCommitment:
        """Sync to the session's log position, check that the session may run, commit to masks."""
        committee, _, replicas = self._require_ready()
        with replicas.lock(session.stag_id):
            try:
                self._hold_for_unrecorded_hunt(session, replicas)
                state = replicas.sync(session.stag_id, session.height)
            except StagpackError as error:
                raise self._refuse(session, str(error), type(error)) from None
            if state.head != session.head:
                raise self._refuse(session, "the log head differs from this keyholder's replica (equivocating aggregator?)")
            existing = self._store.load_session(session.session_id)
            if existing is not None:
                if existing.session == session:
                    return existing.commitment
                if existing.served:
                    raise self._refuse(
                        session,
                        f"{session.kind.value} {session.number} was already evaluated at height {existing.session.height}",
                    )
            records = self._store.sessions(session.stag_id)  # decoded once for both
            self._check_may_open(session, state, records)
            self._erase_finished_sessions(session, records)
            masks = tuple(self._fresh_mask() for _ in range(MASKS_PER_SESSION))
            commitment = MaskCommitment(session, self.index, tuple(_sha256(mask) for mask in masks))
            signed = SignedCommitment(commitment, self.identity.sign("mask-commitment", codec.encode(commitment)))
            self._store.save_session(SessionRecord(session, masks, signed, (), (), 0, b"", erased=False))
            return signed

    def _erase_finished_sessions(self, session: SessionRef, records: list[SessionRecord]) -> None:
        """Erase the masks and partials of the stag's sessions that can never be served again
        now that `session` opens: those below its height (the replica has moved past them) and,
        when a hunt opens, earlier epochs' hunts (a fired one would have stopped it opening).
        What the policy reads stays (`SessionRecord.erase`)."""
        finished = [
            record
            for record in records
            if not record.erased
            and record.session.session_id != session.session_id
            and (
                record.session.height < session.height
                or (
                    session.kind is SessionKind.HUNT
                    and record.session.kind is SessionKind.HUNT
                    and record.session.number < session.number
                )
            )
        ]
        if finished:
            self._store.erase_sessions(finished)
            log.info("keyholder %s erased the masks and partials of %d finished session(s)", self.identity.name, len(finished))

    def _hold_for_unrecorded_hunt(self, session: SessionRef, replicas: Replicas) -> None:
        """A fired hunt is certified at its own height, so while it is not in the log the replica
        must not move past that height: refuse (before syncing) a session whose log range does
        not record the hunt, or the hunt could never be certified."""
        state = replicas.state(session.stag_id)
        if session.height <= state.height:
            return
        fired = [
            record.session.number
            for record in self._store.sessions(session.stag_id)
            if record.fired_level and record.session.kind is SessionKind.HUNT and record.session.number > state.last_hunt_epoch
        ]
        if not fired:
            return
        recorded = set()
        for entry, _ in self._source.read_log(session.stag_id, state.height, session.height):
            if entry.kind is EntryKind.HUNT:
                certificate = decode_body(entry)
                assert isinstance(certificate, HuntCertificate)
                recorded.add(certificate.outcome.epoch)
        for number in fired:
            if number not in recorded:
                raise WrongPhase(f"the hunt of epoch {number} fired and must be recorded in the log first")

    def _check_may_open(self, session: SessionRef, state: PackState, records: list[SessionRecord]) -> None:
        spec = state.require_spec()
        for record in records:
            if record.fired_level and record.session.number > state.last_hunt_epoch and record.session.kind is SessionKind.HUNT:
                raise self._refuse(
                    session,
                    f"the hunt of epoch {record.session.number} fired and must be recorded in the log first",
                    WrongPhase,
                )
        if session.kind is SessionKind.HUNT:
            if not spec.epoch_allowed(session.number):
                raise self._refuse(session, f"epoch {session.number} is not an epoch of this stag")
            due = spec.epoch_due_at(session.number)
            if self._clock() < due:
                raise self._refuse(session, f"epoch {session.number} is not due until {due} (it is {self._clock()})")
            served = [r.session.number for r in records if r.session.kind is SessionKind.HUNT and r.served]
            if served and session.number <= max(served):
                raise self._refuse(session, f"epoch {session.number} is not after the last checked epoch {max(served)}")
            if state.counted == 0:
                raise self._refuse(session, "the pack has no counted intendos", WrongPhase)
        else:
            if session.number != state.validation_batches + 1:
                raise self._refuse(session, f"the next validation batch is {state.validation_batches + 1}, not {session.number}")
            if not state.validation_batch():
                raise self._refuse(session, "no intendos await validation", WrongPhase)

    def _fresh_mask(self) -> bytes:
        randomness = np.frombuffer(os.urandom(4 * self.context.slot_count), dtype="<u4")
        values = (randomness.astype(np.int64) % self.context.plaintext_modulus).astype(np.int64)
        return self.context.ciphertext_to_bytes(self.context.encrypt(self.context.joint_key, values))

    def reveal(self, request: RevealRequest) -> MaskReveal:
        """Reveal this keyholder's masks once the set of commitments is fixed."""
        committee, _, replicas = self._require_ready()
        session = request.session
        with replicas.lock(session.stag_id):
            record = self._load_record(session)
            try:
                check_commitments(committee, session, request.commitments)
            except StagpackError as error:
                raise self._refuse(session, str(error), type(error)) from None
            mine = [signed for signed in request.commitments if signed.commitment.keyholder == self.index]
            if mine != [record.commitment]:
                raise self._refuse(session, "the commitments do not include this keyholder's own commitment")
            ordered = tuple(sorted(request.commitments, key=lambda signed: signed.commitment.keyholder))
            if record.fixed_commitments and record.fixed_commitments != ordered:
                # A contributor that went offline before revealing may be dropped, but only before
                # anything was decrypted, and no commitment may be added once masks were revealed.
                shrinking = set(ordered) < set(record.fixed_commitments)
                if not shrinking or record.served:
                    raise self._refuse(session, "a different set of mask commitments was already fixed for this session")
            if record.fixed_commitments != ordered:
                self._store.save_session(replace(record, fixed_commitments=ordered))
            return MaskReveal(self.index, record.masks)

    def _load_record(self, session: SessionRef) -> SessionRecord:
        record = self._store.load_session(session.session_id)
        if record is None:
            raise self._refuse(session, "no such session was opened on this keyholder", WrongPhase)
        if record.session != session:
            raise self._refuse(
                session,
                f"stale session: {session.kind.value} {session.number} was opened again at height "
                f"{record.session.height}, and only that one may be served",
                WrongPhase,
            )
        if record.erased:
            raise self._refuse(session, "stale session: a later session has opened, and this one's masks were erased")
        return record

    def _computation(self, request: DecryptRequest | CertifyRequest, record: SessionRecord) -> SessionComputation:
        """The session's ciphertexts from this keyholder's replica (cached across its steps)."""
        _, _, replicas = self._require_ready()
        ordered = tuple(sorted(request.commitments, key=lambda signed: signed.commitment.keyholder))
        if not record.fixed_commitments or ordered != record.fixed_commitments:
            raise PolicyRefusal("the masks are not the ones whose commitments this keyholder fixed")
        state = replicas.state(request.session.stag_id)
        if state.height != request.session.height:
            raise PolicyRefusal(
                f"stale session: this keyholder's replica is at height {state.height}, not {request.session.height}"
            )
        key = (request.session.session_id, codec.encode(ordered))
        computation = self._computations.get(key)
        if computation is None:
            computation = SessionComputation(
                self.context, state.snapshot(), replicas.ciphertexts(request.session.stag_id), request.session, ordered, request.reveals
            )
            self._computations[key] = computation
            while len(self._computations) > 4:
                self._computations.pop(next(iter(self._computations)))
        return computation

    def decrypt(self, request: DecryptRequest) -> DecryptResponse:
        """Partially decrypt one step of a session, if and only if the policy allows it."""
        committee, party, replicas = self._require_ready()
        session = request.session
        with replicas.lock(session.stag_id):
            record = self._load_record(session)
            try:
                members = {member for quorum in request.quorums for member in quorum}
                family = prescribed_family(committee, members)
                if tuple(quorum.members for quorum in family) != tuple(request.quorums):
                    raise PolicyRefusal(
                        f"the quorums {request.quorums} are not the prescribed family for keyholders {sorted(members)}"
                    )
                if self.index not in members:
                    raise InvalidInput(f"keyholder {self.index} is not in any quorum of {request.quorums}")
                computation = self._computation(request, record)
                ciphertexts = self._step_ciphertexts(computation, committee, request, record)
            except StagpackError as error:
                raise self._refuse(session, f"{request.step.value}: {error}", type(error)) from None
            digests = computation.digests(ciphertexts)
            if tuple(request.claimed) != digests:
                raise self._refuse(
                    session, f"{request.step.value}: the ciphertext to decrypt differs from this keyholder's recomputation"
                )
            record = self._store.load_session(session.session_id) or record
            served = record.served_step(request.step, tuple(request.quorums))
            if served is not None:
                return DecryptResponse(served.partials)
            released = record.own_partials(request.step)  # one own partial per ciphertext, ever
            shares = [party.partials(ciphertext, family, own=not released) for ciphertext in ciphertexts]
            partials = released + sign_partials(self.identity.sign, session, request.step, digests, shares)
            served_step = ServedStep(request.step, tuple(request.quorums), partials)
            self._store.save_session(replace(record, served=record.served + (served_step,)))
            log.info("keyholder %s decrypted %s step %s", self.identity.name, session.describe(), request.step.value)
            return DecryptResponse(partials)

    def _step_ciphertexts(
        self, computation: SessionComputation, committee: CommitteeInfo, request: DecryptRequest, record: SessionRecord
    ) -> list[Ciphertext]:
        session, step = request.session, request.step
        if session.kind is SessionKind.HUNT:
            if step is Step.CHECK:
                return computation.check()
            if step is Step.CONFIRM:
                facts = read_hunt_steps(computation, committee, request.prior, Step.CHECK)
                if not facts.candidates:
                    raise PolicyRefusal("the hunt check did not fire: nothing may be confirmed or revealed")
                return computation.confirm(facts.candidates)
            if step is Step.MEMBERSHIP:
                facts = read_hunt_steps(computation, committee, request.prior, Step.CONFIRM)
                if facts.level is None:
                    raise PolicyRefusal("no candidate level was confirmed: no membership may be revealed")
                ciphertexts = computation.membership(facts.level)
                if not record.fired_level:
                    # Durable before any membership partial leaves: this hunt is now binding.
                    self._store.save_session(replace(record, fired_level=facts.level))
                return ciphertexts
        else:
            if step is Step.BATCH:
                return computation.batch()
            if step is Step.EACH:
                batch_valid, _ = read_validation_steps(computation, committee, request.prior, Step.BATCH)
                if batch_valid or len(computation.batch_ids()) == 1:
                    raise PolicyRefusal("the batch check already decided every intendo: no per-intendo check is allowed")
                return computation.each()
        raise InvalidInput(f"step {step.value} does not belong to a {session.kind.value} session")

    def certify(self, request: CertifyRequest) -> CertifyResponse:
        """Fuse the session's partials, rebuild its outcome, and sign it if it matches."""
        committee, _, replicas = self._require_ready()
        session = request.session
        with replicas.lock(session.stag_id):
            record = self._load_record(session)
            try:
                computation = self._computation(request, record)
                outcome = session_outcome(computation, committee, request.prior)
            except StagpackError as error:
                raise self._refuse(session, f"certify: {error}", type(error)) from None
            if outcome is None:
                raise self._refuse(session, "certify: the session revealed no hunt; there is nothing to certify")
            if codec.encode(outcome) != request.outcome:
                raise self._refuse(session, "certify: the outcome differs from what this keyholder fused")
            digest = outcome.digest()
            domain = "hunt" if session.kind is SessionKind.HUNT else "validation"
            self._store.save_session(replace(record, certified=digest))
            return CertifyResponse(self.index, self.identity.sign(domain, digest))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class _SealedBackup:
    index: int
    sealed: bytes


@dataclass(frozen=True)
class _SealedBackups:
    WIRE_NAME = "stagpack.keyholder.SealedBackups.v1"

    items: tuple[_SealedBackup, ...]
