"""A keyholder: takes part in the key ceremony, then decrypts only what its policy allows.

`KeyholderNode` is one keyholder's protocol logic behind whatever transport serves it
(`stagpack.keyholder.local` in-process, `stagpack.edge.keyholder_service` over gRPC): every
request arrives through `dispatch` as one of the calls of `stagpack.dkg.rounds` (the ceremony)
or `stagpack.session.SESSION_CALLS` (decryption sessions). The rules it enforces are
`stagpack.keyholder.policy`, applied in that module's order; every refusal is logged.

Two sources are injectable, so that tests and benchmarks can play a dishonest keyholder through
the production code path: where masks come from (`MaskSource`) and how partial decryptions are
produced (`PartialSource`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from stagpack import codec
from stagpack.calls import Call, ReplayGuard, Request, Response, SignedCredential, serve
from stagpack.decrypt import DecryptingParty
from stagpack.decrypt.threshold import PartialSource, PartialSourceFactory, honest
from stagpack.decrypt.computation import SessionComputation, outcome_domain, session_outcome, sign_partials
from stagpack.decrypt.steps import binds
from stagpack.dkg import DkgParty
from stagpack.committee import Transcript
from stagpack.dkg.rounds import CEREMONY_ROUNDS, COMPLETE, PLAN
from stagpack.dkg.messages import Acknowledgement, CeremonyPlan, CompleteRequest
from stagpack.errors import IntegrityFailure, PolicyRefusal, StagpackError, UnverifiedEvidence, WrongPhase
from stagpack.fhe import Ciphertext, FheContext, KeyMaterial
from stagpack.identity import KeyholderIdentity, PublicIdentity, Sealer
from stagpack.keyholder import policy
from stagpack.keyholder.replica import LogSource, Replicas
from stagpack.keyholder.store import BindingHunt, KeyholderStore, ServedStep, SessionRecord, StoredCommittee, StoreFootprint
from stagpack.encoding import StagKind
from stagpack.log import EntryKind, HuntCertificate, HuntOutcome, decode_body
from stagpack.committee import CommitteeInfo
from stagpack.pack import PackLimits, PackState
from stagpack.session import (
    SESSION_CALLS,
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
    committed_count,
)
from stagpack.shield import elgamal
from stagpack.shield.elgamal import DecryptionShare
from stagpack.shield.group import Point, Scalar
from stagpack.stag import now_millis

log = logging.getLogger("stagpack.keyholder")

CATCH_UP_ENTRIES = 4096  # how far past an unfinished hunt's height a keyholder looks for its certificate


class MaskSource(Protocol):
    """Where a keyholder's masks come from: canonical bytes of a fresh encryption, under the
    joint key, of a vector uniform in Z_p (DESIGN.md §3 step 2)."""

    def mask(self, session: SessionRef, which: int) -> bytes: ...


class RandomMasks:
    """The production mask source: fresh randomness from the operating system."""

    def __init__(self, context: FheContext) -> None:
        self._context = context

    def mask(self, session: SessionRef, which: int) -> bytes:
        context = self._context
        randomness = np.frombuffer(os.urandom(4 * context.slot_count), dtype="<u4")
        values = (randomness.astype(np.int64) % context.plaintext_modulus).astype(np.int64)
        return context.ciphertext_to_bytes(context.encrypt(context.joint_key, values))


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
        masks: MaskSource | None = None,
        partials: PartialSourceFactory | None = None,
        coordinator_key: bytes | None = None,
        allow_insecure: bool = False,
    ) -> None:
        self.context = context
        self.identity = identity
        self._store = store
        self._sealer = sealer
        self._source = source
        self._limits = limits or PackLimits()
        self._clock = clock
        self._masks = masks or RandomMasks(context)
        self._partial_source = partials or honest
        self._coordinator_key = coordinator_key  # who may run a ceremony with this keyholder
        self._allow_insecure = allow_insecure  # benchmarks only: accept a committee without the noise test
        self._replays = ReplayGuard(self._limits.max_clock_skew_millis)
        self._ceremony: DkgParty | None = None
        self._ceremony_lock = threading.Lock()
        self.transcript: Transcript | None = None
        self.committee: CommitteeInfo | None = None
        self.index = 0
        self._identity_secret: Scalar | None = None  # its share of the committee's identity key (stagpack.shield)
        self._party: PartialSource | None = None
        self._replicas: Replicas | None = None
        self._computations: dict[tuple[bytes, bytes], SessionComputation] = {}
        self._escrow_lock = threading.RLock()  # escrow checks and what they record, across stags
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

    def session_records(self, stag_id: bytes) -> list[SessionRecord]:
        """This keyholder's durable records of a stag's sessions (what its policy reads)."""
        return self._store.sessions(stag_id)

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
        sealed_backups = codec.decode(SealedBackups, stored.sealed_backups)
        backups = {
            item.index: context.backup_share_from_bytes(self._sealer.unseal(item.sealed)) for item in sealed_backups.items
        }
        self.transcript = transcript
        self.committee = committee
        self.index = index
        self._identity_secret = Scalar.from_bytes(self._sealer.unseal(stored.sealed_identity_secret), "identity-key share")
        if Point.base_times(self._identity_secret).to_bytes() != committee.require_identity_key().verification_keys[index - 1]:
            raise IntegrityFailure("the stored identity-key share does not match this keyholder's verification key")
        party = DecryptingParty(context, index, secret, backups, committee.parties, committee.threshold)
        self._party = self._partial_source(party)
        self._replicas = Replicas(
            context, committee, self._store, self._source, self._limits, self._clock, on_hunt=self._note_hunt
        )
        log.info(
            "keyholder %s ready: keyholder %d of %d (t=%d) in committee %s",
            self.identity.name, index, committee.parties, committee.threshold, committee.committee_id.hex()[:12],
        )

    def _require_ready(self) -> tuple[CommitteeInfo, PartialSource, Replicas]:
        if self.committee is None or self._party is None or self._replicas is None:
            raise WrongPhase("this keyholder has no key yet: run the key ceremony first")
        return self.committee, self._party, self._replicas

    # -- every request ------------------------------------------------------------------------

    def dispatch(self, call: Call[Request, Response], request: Request, credential: SignedCredential) -> Response:
        """Answer one call of the ceremony's rounds or of a session, from the one caller that
        may make it (policy rule 0: the coordinator it is configured with, or the aggregator its
        committee transcript names)."""
        callers = policy.callers_for(call, self.committee, self._coordinator_key)
        caller_error: StagpackError | None = None
        try:
            self._replays.admit(credential, call.rpc, self.identity.verify_key, codec.encode(request), callers, self._clock())
        except StagpackError as error:
            caller_error = error
        if caller_error is not None:
            log.warning("keyholder %s refused %s: %s", self.identity.name, call.rpc, caller_error)
            raise caller_error
        if call in CEREMONY_ROUNDS:
            return self._ceremony_call(call, request)
        return serve(self, call, request)

    # -- ceremony -----------------------------------------------------------------------------

    def _ceremony_call(self, call: Call[Request, Response], request: Request) -> Response:
        if call is COMPLETE:
            assert isinstance(request, CompleteRequest)
            return call.check_response(self._complete(request))
        with self._ceremony_lock:
            party = self._ceremony
            if call is PLAN:
                assert isinstance(request, CeremonyPlan)
                if party is None or (party.plan is not None and party.plan != request):
                    if self.ready:
                        raise WrongPhase("this keyholder already holds a committee key; it takes part in no new ceremony")
                    party = self._ceremony = DkgParty(
                        self.context, self.identity, coordinator_key=self._coordinator_key,
                        allow_insecure=self._allow_insecure, partials=self._partial_source,
                    )
            if party is None:
                raise WrongPhase("no ceremony in progress on this keyholder")
        return party.dispatch(call, request)

    def _complete(self, request: CompleteRequest) -> Acknowledgement:
        if self.ready and self.transcript == request.transcript:
            return Acknowledgement(request.transcript.body.ceremony_id, self.index)
        party = self._ceremony
        if party is None:
            raise WrongPhase("no ceremony in progress on this keyholder")
        acknowledgement = party.dispatch(COMPLETE, request)
        outcome = party.outcome
        assert outcome is not None
        sealed_backups = SealedBackups(
            tuple(
                SealedBackup(holder, self._sealer.seal(self.context.backup_share_to_bytes(share)))
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
            sealed_identity_secret=self._sealer.seal(outcome.identity_secret),
        )
        self._store.save_committee(stored)
        self._load_committee(stored)
        return acknowledgement

    # -- sessions -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _applying_policy(self, session: SessionRef, what: str = "") -> Iterator[None]:
        """Log every refusal (with the session it concerns) and pass it on unchanged."""
        try:
            yield
        except StagpackError as error:
            reason = f"{what}: {error}" if what else str(error)
            log.warning("keyholder %s refused %s: %s", self.identity.name, session.describe(), reason)
            raise type(error)(reason) from None

    def open_session(self, session: SessionRef) -> SignedCommitment:
        """Sync to the session's log position, check that the session may open, commit to masks."""
        _, _, replicas = self._require_ready()
        with replicas.lock(session.stag_id), self._applying_policy(session):
            self._hold_for_unrecorded_hunt(session, replicas)
            state = replicas.sync(session.stag_id, session.height)
            policy.require_head(state, session)
            existing = self._store.load_session(session.session_id)
            if existing is not None and existing.session == session:
                return existing.commitment
            policy.require_not_reevaluated(existing, session)
            records = self._store.sessions(session.stag_id)  # decoded once for both
            policy.may_open(session, state, records, self._clock(), self._dead_hunts(session.stag_id))
            with self._escrow_lock:
                self._check_escrow(session, state)
            self._erase_finished_sessions(session, records)
            masks = tuple(self._masks.mask(session, which) for which in range(committed_count(session.kind)))
            commitment = MaskCommitment(session, self.index, tuple(hashlib.sha256(mask).digest() for mask in masks))
            signed = SignedCommitment(commitment, self.identity.sign("mask-commitment", codec.encode(commitment)))
            self._store.save_session(SessionRecord(session, masks, signed, (), (), 0, b"", erased=False))
            return signed

    # -- escrow (multiplexing, DESIGN.md §10.1) ------------------------------------------------

    def _note_hunt(self, certificate: HuntCertificate) -> None:
        """A hunt this keyholder certified or saw in a log: the escrow accounts its members
        spent, and it is no longer an unfinished binding hunt. Idempotent."""
        outcome = certificate.outcome
        with self._escrow_lock:
            for account in outcome.spent_accounts():
                self._store.record_spent(account, outcome.stag_id, outcome.epoch)
            self._store.clear_binding(outcome.stag_id, outcome.epoch)

    def _dead(self, binding: BindingHunt) -> bool:
        """A bound hunt that can never finish: it counts an account another stag's hunt spent."""
        for account in binding.accounts:
            spent = self._store.spent_by(account)
            if spent is not None and spent[0] != binding.stag_id:
                return True
        return False

    def _dead_hunts(self, stag_id: bytes) -> frozenset[int]:
        return frozenset(b.epoch for b in self._store.binding_hunts() if b.stag_id == stag_id and self._dead(b))

    def _live_bindings(self, stag_id: bytes) -> list[BindingHunt]:
        """Other stags' bound, unfinished hunts that can still finish."""
        return [b for b in self._store.binding_hunts() if b.stag_id != stag_id and not self._dead(b)]

    def _check_escrow(self, session: SessionRef, state: PackState, *, bound: bool = False) -> bool:
        """Policy rule 1's escrow rules for a capital stag's hunt (`bound`: this hunt is itself
        bound already, only the spent accounts are checked); False for any other session. Call
        with the escrow lock."""
        if session.kind is not SessionKind.HUNT or state.require_spec().kind is not StagKind.CAPITAL:
            return False
        policy.require_unspent(state, self._store.spent_by)
        if bound:
            return True
        bindings = self._live_bindings(session.stag_id)
        if bindings:
            self._catch_up(bindings)
            bindings = self._live_bindings(session.stag_id)
            policy.require_unspent(state, self._store.spent_by)
        policy.require_no_binding_overlap(state, bindings)
        return True

    def _catch_up(self, bindings: Sequence[BindingHunt]) -> None:
        """Look ahead in the logs of other stags' unfinished binding hunts for their certificates
        (this keyholder may not have been asked to certify): entries are read, not applied — the
        replica stays at the hunt's height so that an unfinished session can still finish — and
        a certificate counts once the committee's signatures on it verify."""
        committee, _, replicas = self._require_ready()
        for binding in bindings:
            lock = replicas.lock(binding.stag_id)
            if not lock.acquire(blocking=False):
                continue  # busy: left for the next attempt
            try:
                height = replicas.state(binding.stag_id).height
                for ahead in range(height, height + CATCH_UP_ENTRIES):  # until the log ends (NotFound)
                    ((entry, _),) = list(self._source.read_log(binding.stag_id, ahead, ahead + 1))
                    if entry.kind is not EntryKind.HUNT:
                        continue
                    certificate = decode_body(entry, HuntCertificate)
                    outcome = certificate.outcome
                    if outcome.stag_id == binding.stag_id and outcome.epoch == binding.epoch:
                        committee.check_quorum_signatures("hunt", outcome.digest(), certificate.signatures)
                        self._note_hunt(certificate)
                        break
            except (StagpackError, ValueError) as error:  # the log ends there, or a bad entry: still unfinished
                log.info("keyholder %s: the hunt of stag %s at epoch %d is not recorded yet (%s)",
                         self.identity.name, binding.stag_id.hex()[:12], binding.epoch, error)
            finally:
                lock.release()

    def _hold_for_unrecorded_hunt(self, session: SessionRef, replicas: Replicas) -> None:
        """Before syncing past a fired hunt's height, the log range must record the hunt."""
        state = replicas.state(session.stag_id)
        if session.height <= state.height:
            return
        fired = policy.unrecorded_fired_hunts(self._store.sessions(session.stag_id), state.last_hunt_epoch, self._dead_hunts(session.stag_id))
        if not fired:
            return
        recorded = set()
        for entry, _ in self._source.read_log(session.stag_id, state.height, session.height):
            if entry.kind is EntryKind.HUNT:
                recorded.add(decode_body(entry, HuntCertificate).outcome.epoch)
        policy.require_hunts_recorded(fired, recorded)

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
            ended = {record.session.session_id for record in finished}
            for key in list(self._computations):
                if key[0] in ended:
                    self._computations.pop(key, None)
            log.info("keyholder %s erased the masks and partials of %d finished session(s)", self.identity.name, len(finished))

    def reveal(self, request: RevealRequest) -> MaskReveal:
        """Reveal this keyholder's masks once the set of commitments is fixed."""
        committee, _, replicas = self._require_ready()
        session = request.session
        with replicas.lock(session.stag_id), self._applying_policy(session):
            record = policy.require_servable(self._store.load_session(session.session_id), session)
            policy.check_commitments(committee, session, request.commitments)
            policy.require_own_commitment(record, self.index, request.commitments)
            ordered = tuple(sorted(request.commitments, key=lambda signed: signed.commitment.keyholder))
            policy.may_fix_commitments(record, ordered)
            if record.fixed_commitments != ordered:
                self._store.save_session(replace(record, fixed_commitments=ordered))
            return MaskReveal(self.index, record.masks)

    def _computation(self, request: DecryptRequest | CertifyRequest, record: SessionRecord) -> SessionComputation:
        """The session's ciphertexts from this keyholder's replica (cached across its steps)."""
        committee, _, replicas = self._require_ready()
        ordered = tuple(sorted(request.commitments, key=lambda signed: signed.commitment.keyholder))
        policy.require_fixed_masks(record, ordered)
        state = replicas.state(request.session.stag_id)
        policy.require_replica_at(state, request.session)
        key = (request.session.session_id, codec.encode(ordered))
        computation = self._computations.get(key)
        if computation is None:
            try:
                computation = SessionComputation(
                    self.context, state.snapshot(), replicas.ciphertexts(request.session.stag_id), request.session,
                    ordered, request.reveals, committee,
                )
            except UnverifiedEvidence as error:
                raise PolicyRefusal(str(error)) from None
            self._computations[key] = computation
            while len(self._computations) > 4:
                self._computations.pop(next(iter(self._computations)))
        return computation

    def decrypt(self, request: DecryptRequest) -> DecryptResponse:
        """Partially decrypt one step of a session, if and only if the policy allows it."""
        committee, party, replicas = self._require_ready()
        session, step = request.session, request.step
        with replicas.lock(session.stag_id), self._applying_policy(session, step.value):
            record = policy.require_servable(self._store.load_session(session.session_id), session)
            family = policy.require_prescribed_family(committee, request.quorums, self.index, record)
            computation = self._computation(request, record)
            facts = policy.derive_facts(computation, committee, request.prior, step)
            ciphertexts = computation.ciphertexts(step, facts)
            digests = computation.digests(ciphertexts)
            policy.require_recomputed(request.claimed, digests)
            served = record.served_step(step, tuple(request.quorums))
            if served is not None:
                return DecryptResponse(served.partials)
            if binds(session.kind, step) and not record.fired_level:
                # Durable before any binding partial leaves: the hunt can no longer be a dry run.
                assert facts.level is not None
                state = replicas.state(session.stag_id)
                with self._escrow_lock:  # check and record at once: no other hunt binds in between
                    if self._check_escrow(session, state):
                        self._store.mark_binding(BindingHunt(session.stag_id, session.number, policy.pending_accounts(state)))
                    record = replace(record, fired_level=facts.level)
                    self._store.save_session(record)
            released = record.own_partials(step)  # one own partial per ciphertext, ever
            shares = [party.partials(ciphertext, family, own=not released) for ciphertext in ciphertexts]
            partials = released + sign_partials(self.identity.sign, session, step, digests, shares)
            self._store.save_session(replace(record, served=record.served + (ServedStep(step, tuple(request.quorums), partials),)))
            log.info("keyholder %s decrypted %s step %s", self.identity.name, session.describe(), step.value)
            return DecryptResponse(partials)

    def certify(self, request: CertifyRequest) -> CertifyResponse:
        """Fuse the session's partials, rebuild its outcome, and sign it if it matches."""
        committee, _, replicas = self._require_ready()
        session = request.session
        with replicas.lock(session.stag_id), self._applying_policy(session, "certify"):
            record = policy.require_servable(self._store.load_session(session.session_id), session)
            computation = self._computation(request, record)
            try:
                outcome = session_outcome(computation, committee, request.prior)
            except UnverifiedEvidence as error:
                raise PolicyRefusal(str(error)) from None
            policy.require_outcome(None if outcome is None else codec.encode(outcome), request.outcome)
            assert outcome is not None
            digest = outcome.digest()
            domain = outcome_domain(outcome)
            attestation = b""
            identity_shares: tuple[DecryptionShare, ...] = ()
            with self._escrow_lock:  # sign a hunt only if no account it may spend was spent meanwhile
                if isinstance(outcome, HuntOutcome) and record.fired_level:
                    self._check_escrow(session, replicas.state(session.stag_id), bound=True)
                self._store.save_session(replace(record, certified=digest))
                if isinstance(outcome, HuntOutcome):
                    self._note_hunt(HuntCertificate(outcome, ()))
                    # the same hunt for a settlement contract (stagpack.attestation)
                    spec = replicas.state(session.stag_id).require_spec()
                    attestation = self.identity.chain_key.sign(outcome.chain_facts(spec).digest(committee.committee_id))
                    if spec.anonymous:
                        identity_shares = self._release_identities(outcome)
            return CertifyResponse(self.index, self.identity.sign(domain, digest), attestation, identity_shares)

    def _release_identities(self, outcome: HuntOutcome) -> tuple[DecryptionShare, ...]:
        """Policy rule (DESIGN.md §10.5): an anonymous member's identity is decrypted only as a
        member of a hunt this keyholder certifies, and then every member's at once. Each share
        carries its proof of correct decryption."""
        assert self._identity_secret is not None
        return tuple(
            elgamal.decryption_share(self.index, self._identity_secret, member.identity_ciphertext()) for member in outcome.members
        )


@dataclass(frozen=True)
class SealedBackup:
    """One backup share held for keyholder `index`, sealed under this keyholder's passphrase."""

    WIRE_NAME = "_SealedBackup"

    index: int
    sealed: bytes


@dataclass(frozen=True)
class SealedBackups:
    WIRE_NAME = "stagpack.keyholder.SealedBackups.v1"

    items: tuple[SealedBackup, ...]
