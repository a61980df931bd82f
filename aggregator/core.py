"""The aggregator: orders each stag's log, keeps the encrypted packs, runs the epochs.

It sees ciphertexts only. Every write is checked with the same rules the keyholders replay
(`PackState`), then made durable, then acknowledged. Epochs run validation sessions for new
intendos and one hunt check per stag; fired hunts are appended to the log as certificates,
handed to the executor and announced to watchers.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from stagpack import codec
from stagpack.accounts import Account, Balance, Transfer
from stagpack.aggregator.committee import KeyholderClient
from stagpack.aggregator.ledger import Executor, Pool
from stagpack.aggregator.sessions import SessionProgress, SessionRunner
from stagpack.aggregator.store import AggregatorStore, EpochOutcome, EpochResult, SessionCost
from stagpack.decrypt.computation import DecryptionObserver
from stagpack.decrypt.steps import binding
from stagpack.dkg import CommitteeBundle
from stagpack.envelope import IntendoEnvelope, Withdrawal
from stagpack.encoding import StagKind
from stagpack.errors import AlreadyExists, CommitteeUnavailable, InsufficientFunds, IntegrityFailure, InvalidInput, NotFound, StagpackError, WrongPhase
from stagpack.fhe import FheContext, KeyMaterial
from stagpack.log import (
    EntryKind,
    HuntCertificate,
    HuntOutcome,
    LogEntry,
    SettlementCertificate,
    SettlementOutcome,
    Trigger,
    ValidationCertificate,
    ValidationOutcome,
    Void,
    decode_body,
)
from stagpack.committee import CommitteeInfo
from stagpack.pack import IntendoRecord, IntendoStatus, PackLimits, PackSnapshot, PackState
from stagpack.session import SessionKind
from stagpack.identity import verify_signature
from stagpack.stag import MAX_BUNDLE, MAX_TRIGGER_DEPTH, StagSpec, now_millis
from stagpack.terms import pool_funding_message

log = logging.getLogger("stagpack.aggregator")


@dataclass(frozen=True)
class EncryptionContext:
    """What a client needs to encrypt an intendo, and to check it encrypts to the committee."""

    parameters: bytes
    joint_public_key: bytes
    transcript: bytes


@dataclass(frozen=True)
class SubmitReceipt:
    intendo_id: bytes
    height: int


@dataclass(frozen=True)
class StagStatus:
    """Public facts about a stag. Deliberately nothing about how close the pack is to firing."""

    spec: StagSpec
    height: int
    live_intendos: int
    awaiting_validation: int
    counted: int
    executed: int
    withdrawn: int
    rejected: int
    voided: int
    refunded: int
    cost: SessionCost  # what the committee has spent on the stag's sessions
    remaining_capacity: int
    executed_level: int
    epochs: tuple[EpochResult, ...]
    hunts: tuple[HuntCertificate, ...]
    pool: Pool | None  # a refund stag's pool: what it holds and whether it was settled or returned
    settlement: SettlementCertificate | None
    armed: bool  # a stag with a trigger: the trigger's first hunt armed it
    awaiting_bundle: bool  # a hunt of it is certified and waits to execute with its bundle
    accepting: bool
    next_epoch_at_millis: int
    committee: CommitteeStatus


@dataclass(frozen=True)
class CascadeTiming:
    """A bundle executed: its root stag, how many hunts it held, and the seconds from the root's
    certificate to the bundle's execution (the dependents' checks in between)."""

    root: bytes
    hunts: int
    seconds: float


@dataclass(frozen=True)
class CommitteeStatus:
    """Whether the last session reached a quorum, and if not, why."""

    available: bool
    reason: str = ""

    def describe(self) -> str:
        return "available" if self.available else f"unavailable: {self.reason}"


class TickLog:
    """Logs what the scheduler's runs of each stag fail with, without flooding the log.

    A stag whose session cannot finish (too few keyholders reachable, a faulty keyholder nobody
    is spare to leave out) is retried on every tick, a few times a second. The first failure and
    every change of reason are logged at once; the same reason again only once a minute, with how
    many runs it failed meanwhile; the first success after failures says the stag recovered.
    """

    REPEAT_MILLIS = 60_000

    @dataclass
    class _Failing:
        reason: str = ""
        logged_at: int = 0
        unlogged: int = 0  # runs that failed with the same reason since it was last logged
        runs: int = 0  # runs that failed since the last success

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._failing: dict[bytes, TickLog._Failing] = {}

    def failed(self, stag_id: bytes, reason: str) -> None:
        now = self._clock()
        failing = self._failing.setdefault(stag_id, TickLog._Failing())
        failing.runs += 1
        if reason != failing.reason:
            log.warning("stag %s: %s", stag_id.hex()[:12], reason)
        elif now - failing.logged_at >= self.REPEAT_MILLIS:
            log.warning("stag %s: %s (%d more failed runs for this reason)", stag_id.hex()[:12], reason, failing.unlogged + 1)
        else:
            failing.unlogged += 1
            return
        failing.reason, failing.logged_at, failing.unlogged = reason, now, 0

    def succeeded(self, stag_id: bytes) -> None:
        failing = self._failing.pop(stag_id, None)
        if failing is not None:
            log.info("stag %s: runs succeed again after %d failed", stag_id.hex()[:12], failing.runs)


class _Stored:
    """Ciphertext source backed by the aggregator's store, for one stag."""

    def __init__(self, store: AggregatorStore, stag_id: bytes) -> None:
        self._store = store
        self._stag_id = stag_id

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self._store.ciphertext(self._stag_id, intendo_id)


def load_bundle(context: FheContext, bundle: CommitteeBundle) -> CommitteeInfo:
    """Install a committee's joint keys into `context` after checking the transcript."""
    bundle.transcript.verify()
    joint = context.public_key_from_bytes(bundle.joint_public_key)
    if joint.digest() != bundle.transcript.body.joint_public_key:
        raise IntegrityFailure("the joint public key does not match the committee transcript")
    context.install_evaluation_keys(
        context.key_material_from_bytes(bundle.relinearization_key, KeyMaterial.RELINEARIZATION),
        context.key_material_from_bytes(bundle.rotation_keys, KeyMaterial.ROTATION),
        joint.key_tag,
    )
    context.bind_joint_key(joint)
    return CommitteeInfo.from_transcript(bundle.transcript)


class Aggregator:
    def __init__(
        self,
        context: FheContext,
        bundle: CommitteeBundle,
        store: AggregatorStore,
        clients: Sequence[KeyholderClient],
        executor: Executor,
        *,
        limits: PackLimits | None = None,
        clock: Callable[[], int] = now_millis,
        recheck_unchanged: bool = False,
        observer: DecryptionObserver | None = None,
        after_session: Callable[[], None] | None = None,
    ) -> None:
        """`after_session` runs after every session, finished or not: a service process frees
        the session's ciphertexts there (stagpack.fhe.release_memory)."""
        self.context = context
        self._recheck_unchanged = recheck_unchanged  # evaluate every epoch even if nothing changed
        self._after_session = after_session
        self.bundle = bundle
        self.committee = load_bundle(context, bundle)
        self._store = store
        self._executor = executor
        self._limits = limits or PackLimits()
        self._clock = clock
        self._runner = SessionRunner(context, self.committee, clients, store, observer)
        self._packs: dict[bytes, PackState] = {}
        self._write_locks: dict[bytes, threading.Lock] = {}
        self._session_locks: dict[bytes, threading.Lock] = {}
        self._guard = threading.Lock()
        # Escrow checks and the writes they guard (capital submissions, releases, a hunt's
        # certificate and its execution) run under one lock, taken before any stag's write lock.
        self._accounts = threading.Lock()
        self._hunts_changed = threading.Condition()
        self.committee_status = CommitteeStatus(True)  # or why the last session could not reach a quorum
        self._tick_log = TickLog(clock)
        # escrow account -> the hunt certificate that spent it
        self._spent: dict[Account, HuntCertificate] = {}
        # composed hunts (DESIGN.md §10.2): each stag's dependents in creation order, and the
        # certified hunts that wait for their bundle to execute (outcome digest -> spec, certificate)
        self._dependents: dict[bytes, list[bytes]] = {}
        self._unpaid: dict[bytes, tuple[StagSpec, HuntCertificate]] = {}
        self._certified_at: dict[bytes, float] = {}  # a bundle root's certificate: when it was logged (monotonic)
        self.cascades: collections.deque[CascadeTiming] = collections.deque(maxlen=64)  # the last bundles executed
        for stag_id in store.stag_ids():
            pack = self._packs[stag_id] = self._replay(stag_id)
            self._add_dependent(pack.require_spec())
        for pack in self._packs.values():
            # What the log records, the executor applies (it may have missed some before a
            # crash; each is applied once): submission fees, hunts, the settlement. A hunt that
            # executes in a bundle waits for it: `run_due` of the bundle's root completes it.
            self._charge_fees(pack)
            for certificate in pack.hunts:
                self._note_spent(certificate)
                if self._executor.executed(certificate.outcome.digest()):
                    continue
                if self._bundled(certificate):
                    self._unpaid[certificate.outcome.digest()] = (pack.require_spec(), certificate)
                else:
                    self._executor.execute(pack.require_spec(), certificate)
            if pack.settlement is not None:
                self._executor.settle(pack.require_spec(), pack.settlement)
        for stag_id in self._executor.open_pools():  # funded by a creation that crashed before its genesis was logged
            if stag_id not in self._packs:
                returned = self._executor.return_pool(stag_id)
                log.warning("returned the refund pool (%d) of stag %s, whose creation did not finish", returned, stag_id.hex()[:12])
        log.info("aggregator ready: %d stags, committee %s", len(self._packs), self.committee.committee_id.hex()[:12])

    # -- plumbing -----------------------------------------------------------------------------

    def _replay(self, stag_id: bytes, up_to_height: int | None = None) -> PackState:
        state = PackState(self.context, self.committee, stag_id, self._limits)
        source = _Stored(self._store, stag_id)
        for entry in self._store.entries(stag_id, 0, up_to_height):
            ciphertext = None
            if entry.kind is EntryKind.SUBMISSION:
                ciphertext = self._store.ciphertext(stag_id, decode_body(entry, IntendoEnvelope).intendo_id)
            state.apply(entry, ciphertext, source)
        return state

    def _locks(self, stag_id: bytes) -> tuple[threading.Lock, threading.Lock]:
        with self._guard:
            return (
                self._write_locks.setdefault(stag_id, threading.Lock()),
                self._session_locks.setdefault(stag_id, threading.Lock()),
            )

    def _pack(self, stag_id: bytes) -> PackState:
        pack = self._packs.get(stag_id)
        if pack is None:
            raise NotFound("no such stag")
        return pack

    def _append(self, pack: PackState, kind: EntryKind, body: object, intendo_id: bytes | None = None, ciphertext: bytes | None = None) -> LogEntry:
        """Apply to the in-memory pack, then make durable. Call with the stag's write lock held."""
        at = max(self._clock(), pack.last_accepted_at)
        entry = LogEntry(pack.stag_id, pack.height + 1, pack.head, at, kind, codec.encode(body))
        pack.apply(entry, ciphertext, _Stored(self._store, pack.stag_id))
        try:
            self._store.append(entry, intendo_id, ciphertext)  # one transaction: entry and ciphertext
        except BaseException:
            if pack.stag_id in self._packs:  # the write failed: forget the in-memory change
                self._packs[pack.stag_id] = self._replay(pack.stag_id)
            raise
        return entry

    # -- the public API -----------------------------------------------------------------------

    def encryption_context(self) -> EncryptionContext:
        return EncryptionContext(
            self.context.parameters.to_bytes(), self.bundle.joint_public_key, self.bundle.transcript.to_bytes()
        )

    def create_stag(self, spec: StagSpec, funding_signature: bytes = b"") -> bytes:
        """Log a new stag. A stag with a refund pool needs its funder's signature on the stag id
        (`stagpack.terms.pool_funding_message`): the pool moves from the funder's account into
        escrow before the stag exists, and a retried creation does not fund it twice. A stag with
        a trigger names a stag of this committee that exists and has not hunted yet, at most
        `MAX_TRIGGER_DEPTH` triggers deep (a cycle cannot be named: a stag's id is the digest of
        its spec, which names its trigger, and the trigger must exist first)."""
        spec.validate(self.context.row_width, self.committee.committee_id)
        self._executor.check_spec(spec)
        stag_id = spec.stag_id
        refund = spec.refund
        if refund is not None:
            verify_signature(refund.funder.owner, "refund-pool", pool_funding_message(stag_id), funding_signature)
        elif funding_signature:
            raise InvalidInput("a funding signature for a stag without a refund pool")
        write, _ = self._locks(stag_id)
        # the trigger's write lock orders this creation against its first hunt: a dependent
        # created before that hunt is logged is armed by it; after, it is refused
        trigger_write = self._locks(spec.trigger)[0] if spec.trigger in self._packs else contextlib.nullcontext()
        with self._accounts if refund is not None else contextlib.nullcontext():
            held = self._held(refund.funder) if refund is not None else 0  # before the write lock, which `_held` takes
            with trigger_write, write:
                if stag_id in self._packs:
                    raise AlreadyExists("a stag with this exact spec already exists")
                self._check_trigger(spec)
                pack = PackState(self.context, self.committee, stag_id, self._limits)
                if refund is not None:
                    pack.check_genesis(spec, self._clock())  # nothing is funded for a stag that cannot open
                    self._executor.fund_pool(spec, held, self._clock())
                self._append(pack, EntryKind.GENESIS, spec)
                self._packs[stag_id] = pack
                self._add_dependent(spec)
        log.info(
            "created %s stag %s (%d levels)%s", spec.kind.value, stag_id.hex()[:12], spec.levels,
            f", triggered by stag {spec.trigger.hex()[:12]}" if spec.trigger else "",
        )
        return stag_id

    def _check_trigger(self, spec: StagSpec) -> None:
        """A trigger must be a stag of this committee that has not hunted yet, with fewer than
        `MAX_TRIGGER_DEPTH` triggers above it. Call with the trigger's write lock."""
        if not spec.trigger:
            return
        trigger = self._packs.get(spec.trigger)
        if trigger is None:
            raise InvalidInput(f"the trigger {spec.trigger.hex()[:12]} is not a stag of this committee")
        if trigger.hunts:
            raise InvalidInput(
                f"the trigger {spec.trigger.hex()[:12]} has already hunted: nothing would arm this stag "
                "(create it without a trigger)"
            )
        depth, top = 1, spec.trigger
        while self._packs[top].require_spec().trigger:
            depth += 1
            top = self._packs[top].require_spec().trigger
        if depth > MAX_TRIGGER_DEPTH:
            raise InvalidInput(f"the trigger chain above this stag is {depth} stags deep; at most {MAX_TRIGGER_DEPTH}")
        tree, below = 1, [top]
        while below:
            children = self._dependents.get(below.pop(), [])
            tree += len(children)
            below.extend(children)
        if tree + 1 > MAX_BUNDLE:
            raise InvalidInput(
                f"the trigger tree this stag would join already holds {tree} stags; at most {MAX_BUNDLE} (its hunts may "
                "have to execute as one bundle)"
            )

    def _add_dependent(self, spec: StagSpec) -> None:
        if spec.trigger:
            self._dependents.setdefault(spec.trigger, []).append(spec.stag_id)

    def submit(self, envelope: IntendoEnvelope, ciphertext: bytes) -> SubmitReceipt:
        """Check and durably log a signed intendo; it counts once a validation session passed it.
        A capital intendo enters only while the escrow account it names covers its weight."""
        stag_id = envelope.statement.stag_id
        pack = self._pack(stag_id)
        write, _ = self._locks(stag_id)
        spec = pack.require_spec()
        capital = spec.kind is StagKind.CAPITAL
        statement = envelope.statement
        account = Account(statement.participant, statement.capital_tag) if capital else None
        # every check, the (costly, for a ring) signature last, before any lock is taken; the
        # signature is remembered, and the checks run again under the lock
        pack.admit_submission(envelope, ciphertext, self._clock())
        with self._accounts if capital else contextlib.nullcontext():  # count stags move no money
            # what the account's live intendos hold (read before this stag's write lock, which
            # `_held` takes; with the accounts lock held it can only shrink meanwhile)
            held = self._held(account) if account is not None and statement.capital_tag else 0
            with write:
                pack.check_submission(envelope, ciphertext, self._clock())
                if account is not None:
                    self._require_escrow(account, statement.weight, pack.member_fee, pack.submission_fee, held)
                entry = self._append(pack, EntryKind.SUBMISSION, envelope, envelope.intendo_id, ciphertext)
                if pack.submission_fee:  # due once the submission is logged (charged on restart if a crash came between)
                    self._executor.charge_submission(spec, envelope, self._clock())
        return SubmitReceipt(envelope.intendo_id, entry.height)

    def _require_escrow(self, account: Account, weight: int, member_fee: int, fee: int, held: int) -> None:
        """After paying the submission `fee`, the account still covers what the new intendo may
        take (its weight and the fee per executed member) and `held` (what its other live
        intendos hold: at most one of them executes); and no hunt has spent it yet. Call with
        the accounts lock."""
        spent = self._spent.get(account)
        if spent is not None:
            raise WrongPhase(
                f"account {account.describe()} was spent by the hunt of stag {spent.outcome.stag_id.hex()[:12]} at epoch "
                f"{spent.outcome.epoch}: a capital tag backs intendos until one of them executes; back new ones with another tag"
            )
        balance = self._executor.balance(account)
        hold = weight + member_fee
        if balance < fee + max(hold, held):
            what = f"the intendo's weight {weight}" + (f" and the fee per executed member {member_fee}" if member_fee else "")
            if held > hold:
                what = f"what its live intendos hold, {held}"
            raise InsufficientFunds(
                f"account {account.describe()} holds {balance}, less than "
                + (f"the submission fee {fee} plus " if fee else "") + f"{what}: deposit first"
            )

    def _charge_fees(self, pack: PackState) -> None:
        """Charge the submission fee of every logged submission the executor has not charged
        yet (after a crash between the log and the executor; idempotent)."""
        spec = pack.require_spec()
        if pack.submission_fee:
            for record in pack.intendos.values():
                self._executor.charge_submission(spec, record.envelope, self._clock())

    def _note_spent(self, certificate: HuntCertificate) -> None:
        for account in certificate.outcome.spent_accounts():
            self._spent.setdefault(account, certificate)

    def _spent_by_another(self, account: Account | None, stag_id: bytes) -> HuntCertificate | None:
        """The certificate of another stag's hunt that spent `account`, if any."""
        certificate = None if account is None else self._spent.get(account)
        return certificate if certificate is not None and certificate.outcome.stag_id != stag_id else None

    def _spent_elsewhere(self, stag_id: bytes, snapshot: PackSnapshot) -> tuple[Account, HuntCertificate] | None:
        """An account a pending intendo of `snapshot` names that another stag's hunt spent."""
        for _, envelope in snapshot.pending:
            statement = envelope.statement
            account = Account(statement.participant, statement.capital_tag) if statement.capital_tag else None
            certificate = self._spent_by_another(account, stag_id)
            if account is not None and certificate is not None:
                return account, certificate
        return None

    def _void_spent(self, pack: PackState) -> None:
        """Void the stag's live intendos whose escrow account another stag's hunt spent, each by
        a log entry citing that hunt's certificate (DESIGN.md §10.1). Runs before anything of
        the stag is evaluated (`run_due`, with its session lock), so its next session counts
        without them. Call without the accounts lock."""
        spec = pack.require_spec()
        closing = spec.closing_epoch
        if (
            pack.closing_pending(closing)
            and self._clock() >= spec.epoch_due_at(closing)  # no closing check exists before: spare the store read
            and self._unfinished(pack.stag_id, closing) is not None
        ):
            # The closing check is under way at its height and can run only there (keyholders
            # never evaluate an epoch at two heights): a void now would leave the stag unable to
            # settle. The intendo was counted at the deadline; the settlement pays it its bonus.
            return
        write, _ = self._locks(pack.stag_id)
        with self._accounts, write:
            voids = []
            for intendo_id, record in pack.intendos.items():
                if record.status not in (IntendoStatus.AWAITING, IntendoStatus.COUNTED):
                    continue
                certificate = self._spent_by_another(record.backing, pack.stag_id)
                if certificate is not None:
                    voids.append(Void(intendo_id, certificate, self._pack(certificate.outcome.stag_id).require_spec()))
            for void in voids:
                self._append(pack, EntryKind.VOID, void)
                log.info(
                    "stag %s: intendo %s voided: its escrow account was spent by the hunt of stag %s at epoch %d",
                    pack.stag_id.hex()[:12], void.intendo_id.hex()[:12], void.certificate.outcome.stag_id.hex()[:12],
                    void.certificate.outcome.epoch,
                )

    def _held(self, account: Account) -> int:
        """The most any live intendo `account` backs may take from it (weight plus member fee;
        they are mutually exclusive: at most one of them executes). A stag past its last epoch
        holds nothing — unless a hunt session of it is still unfinished: one that opened in time
        may still bind and must find its members' escrow. Exact only under the accounts lock."""
        now = self._clock()
        open_hunts: set[bytes] | None = None  # read only for a stag past its last epoch (rare)
        held = 0
        for stag_id, pack in list(self._packs.items()):
            write, _ = self._locks(stag_id)
            with write:
                amount = pack.held(account, None)
                if amount and pack.finished(now):
                    if open_hunts is None:
                        open_hunts = {u.stag_id for u in self._store.unfinished_sessions() if u.kind is SessionKind.HUNT}
                    if stag_id not in open_hunts:
                        amount = 0
            held = max(held, amount)
        for spec, certificate in list(self._unpaid.values()):  # certified, waiting for its bundle
            fee = spec.fees.member if spec.fees is not None else 0
            for member in certificate.outcome.members:
                statement = member.statement
                if Account(statement.participant, statement.capital_tag) == account:
                    held = max(held, statement.weight + fee)
        return held

    # -- accounts -----------------------------------------------------------------------------

    def balance(self, account: Account) -> Balance:
        """An account's escrow and how much of it live intendos hold."""
        account.check()  # read-only: no accounts lock (a query must not hold up submissions and payments)
        return Balance(account, self._executor.balance(account), self._held(account))

    def transfer(self, transfer: Transfer) -> Balance:
        """Apply an owner-signed deposit or release; a release may not touch what a live
        intendo holds. Durable before it returns."""
        transfer.verify(self._clock(), self.committee.committee_id)
        account = transfer.statement.account
        with self._accounts:
            held = self._held(account)
            balance = self._executor.transfer(transfer, held, self._clock())
        log.info("%s of %d on account %s", transfer.statement.kind.value, transfer.statement.amount, account.describe())
        return Balance(account, balance, held)

    def withdraw(self, withdrawal: Withdrawal) -> int:
        """Durably log a signed withdrawal. Waits while a session of the stag is running (a
        hunt's members may not leave between the decryption and the certificate)."""
        stag_id = withdrawal.statement.stag_id
        pack = self._pack(stag_id)
        write, session = self._locks(stag_id)
        pack.check_withdrawal(withdrawal, self._clock())  # the signature checked outside the locks, then remembered
        with session, write:
            pack.check_withdrawal(withdrawal, self._clock())
            bound = [u.number for u in self._store.unfinished_sessions()
                     if u.stag_id == stag_id and u.kind is SessionKind.HUNT and _binding(codec.decode(SessionProgress, u.progress))]
            if bound:
                # its members may already be known to keyholders: the certificate must still find them pending
                raise WrongPhase(f"the hunt of epoch {bound[0]} of this stag is being certified; withdraw after it")
            return self._append(pack, EntryKind.WITHDRAWAL, withdrawal).height

    def stag_ids(self) -> list[bytes]:
        return list(self._packs)

    @property
    def limits(self) -> PackLimits:
        return self._limits

    def snapshot(self, stag_id: bytes) -> PackSnapshot:
        """The stag's pack frozen at its current log height (what a session would evaluate)."""
        pack = self._pack(stag_id)
        write, _ = self._locks(stag_id)
        with write:
            return pack.snapshot()

    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes:
        """An intendo's ciphertext as logged (keyholders' replicas pull the same bytes)."""
        self._pack(stag_id).record(intendo_id)
        return self._store.ciphertext(stag_id, intendo_id)

    def spec(self, stag_id: bytes) -> StagSpec:
        return self._pack(stag_id).require_spec()

    def status(self, stag_id: bytes) -> StagStatus:
        pack = self._pack(stag_id)
        write, _ = self._locks(stag_id)
        with write:
            spec = pack.require_spec()
            counts = pack.count_by_status()
            now = self._clock()
            return StagStatus(
                spec=spec,
                height=pack.height,
                live_intendos=counts["awaiting-validation"] + counts["counted"] + counts["executed"],
                awaiting_validation=counts["awaiting-validation"],
                counted=counts["counted"],
                executed=counts["executed"],
                withdrawn=counts["withdrawn"],
                rejected=counts["rejected"],
                voided=counts["voided"],
                refunded=counts["refunded"],
                cost=self._store.cost(stag_id),
                remaining_capacity=spec.levels - 1 - pack.reserved_weight,
                executed_level=pack.executed_level,
                epochs=tuple(self._store.epochs(stag_id)),
                hunts=tuple(pack.hunts),
                pool=self._executor.pool(stag_id) if spec.refund is not None else None,
                settlement=pack.settlement,
                armed=pack.armed is not None,
                awaiting_bundle=self._awaits_bundle(stag_id),
                accepting=spec.accepts_submissions(now),
                next_epoch_at_millis=spec.epoch_due_at(spec.current_epoch(now) + 1),
                committee=self.committee_status,
            )

    def intendo(self, stag_id: bytes, intendo_id: bytes) -> IntendoRecord:
        """An intendo's public record (status and the log heights at which it changed)."""
        pack = self._pack(stag_id)
        write, _ = self._locks(stag_id)
        with write:
            record = pack.record(intendo_id)
            return IntendoRecord(record.envelope, record.height, record.status, record.counted_at, record.closed_at)

    def hunts(self, stag_id: bytes, after_epoch: int = 0) -> list[HuntCertificate]:
        return [certificate for certificate in self._pack(stag_id).hunts if certificate.outcome.epoch > after_epoch]

    def wait_for_hunts(self, stag_id: bytes, after_epoch: int, timeout: float) -> list[HuntCertificate]:
        """Block until a hunt after `after_epoch` exists (or the timeout passes)."""
        with self._hunts_changed:
            self._hunts_changed.wait_for(lambda: bool(self.hunts(stag_id, after_epoch)), timeout=timeout)
        return self.hunts(stag_id, after_epoch)

    def read_log(self, stag_id: bytes, after_height: int, up_to_height: int) -> Iterator[tuple[LogEntry, bytes | None]]:
        """Entries (after_height, up_to_height] with submissions' ciphertexts: what replicas pull."""
        pack = self._pack(stag_id)
        if up_to_height > pack.height:
            raise NotFound(f"the log of this stag ends at height {pack.height}")
        for entry in self._store.entries(stag_id, after_height, up_to_height):
            ciphertext = None
            if entry.kind is EntryKind.SUBMISSION:
                ciphertext = self._store.ciphertext(stag_id, decode_body(entry, IntendoEnvelope).intendo_id)
            yield entry, ciphertext

    # -- epochs -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run whatever is due on every stag (called by the scheduler)."""
        for stag_id in list(self._packs):
            try:
                self.run_due(stag_id)
            except StagpackError as error:
                self._tick_log.failed(stag_id, str(error))
            else:
                self._tick_log.succeeded(stag_id)

    def run_due(self, stag_id: bytes) -> None:
        """Resume unfinished sessions, validate new intendos, then run the hunt check if due."""
        pack = self._pack(stag_id)
        _, session_lock = self._locks(stag_id)
        with session_lock:
            spec = pack.require_spec()
            epoch = pack.hunt_epoch(self._clock())

            def due() -> bool:  # asked again after resuming: a resumed hunt may have been this epoch's
                if not pack.may_hunt() or self._awaits_bundle(stag_id):
                    return False  # a dependent waits for its trigger; a stag's next hunt for its last one's bundle
                done = {r.epoch for r in self._store.epochs(stag_id) if r.result is not EpochOutcome.COMMITTEE_UNAVAILABLE}
                return epoch >= 1 and spec.epoch_allowed(epoch) and epoch not in done and epoch > pack.last_hunt_epoch

            try:
                self._void_spent(pack)
                self._resume(pack)
                while pack.validation_batch():
                    self._run_session(pack, SessionKind.VALIDATION, pack.validation_batches + 1, pack.snapshot(), None)
            except CommitteeUnavailable:
                if due():  # the epoch's check cannot run either: say so, and retry later
                    self._record_epoch(stag_id, epoch, EpochOutcome.COMMITTEE_UNAVAILABLE, pack.height)
                raise
            root = self._bundle_root(stag_id)
            if root is not None:  # a hunt of this stag armed others: its bundle executes once their checks are done
                self._complete_bundle(*root)
            if pack.settlement_due(self._clock()):
                self._settle(pack)
                return
            if not due():
                return
            results = self._store.epochs(stag_id)
            # Nothing happened since the last evaluation: the same pack gives the same answer (a
            # fixed point always shows), so the epoch passes without a session — less work, and
            # fewer decryptions of the same pack (the log height is public anyway).
            if not self._recheck_unchanged and any(result.checked and result.height == pack.height for result in results):
                return
            if pack.counted == 0:
                self._record_epoch(stag_id, epoch, EpochOutcome.EMPTY, pack.height)
                return
            self._run_session(pack, SessionKind.HUNT, epoch, pack.snapshot(), None)

    def _settle(self, pack: PackState) -> None:
        """A refund stag's closing epoch (DESIGN.md §10.3): its check either fires — a last hunt,
        and the pool goes back — or the committee certifies the settlement of the refunds. A
        stag that counted no intendo at its deadline owes no bonus: its settlement is logged
        without a session (every replica checks it from the log), and the pool goes back."""
        spec = pack.require_spec()
        if pack.counted:
            self._run_session(pack, SessionKind.HUNT, spec.closing_epoch, pack.snapshot(), None)
            return
        write, _ = self._locks(pack.stag_id)
        with write:
            outcome = pack.settlement_outcome()
        self._log_and_pay(pack, EntryKind.SETTLEMENT, SettlementCertificate(outcome, ()), spec.closing_epoch, outcome.height)
        log.info("stag %s: deadline passed with no intendo counted; the refund pool went back", pack.stag_id.hex()[:12])

    def _resume(self, pack: PackState) -> None:
        for unfinished in self._store.unfinished_sessions():
            if unfinished.stag_id != pack.stag_id:
                continue
            progress = codec.decode(SessionProgress, unfinished.progress)
            # Once a confirmation was decrypted, keyholders may have revealed membership before
            # this process stopped: such a hunt is binding and must be finished. Earlier, an
            # unfinished check of a past epoch or height is simply dropped (it revealed nothing
            # about members) and the next epoch checks afresh.
            number = unfinished.number
            spec = pack.require_spec()
            current = number == pack.hunt_epoch(self._clock()) or pack.closing_pending(number)
            outdated = not current or progress.session.height < pack.height
            if unfinished.kind is SessionKind.HUNT and not _binding(progress) and outdated:
                self._store.delete_session(pack.stag_id, unfinished.kind, number)
                continue
            snapshot = pack.snapshot() if progress.session.height == pack.height else self._replay(pack.stag_id, progress.session.height).snapshot()
            spent = self._spent_elsewhere(pack.stag_id, snapshot) if unfinished.kind is SessionKind.HUNT else None
            if spent is not None:
                # Keyholders refuse every step of a hunt that counts an account another stag's
                # hunt spent (docs/protocol.md §6a), so this one can never finish; fewer than t
                # of them can have served its membership (any two families of t + f share an
                # honest keyholder), so nothing was revealed. The next epoch checks afresh, after
                # the void.
                account, certificate = spent
                log.warning("%s can never finish: it counts account %s, spent by stag %s; dropped",
                            progress.session.describe(), account.describe(), certificate.outcome.stag_id.hex()[:12])
                self._store.delete_session(pack.stag_id, unfinished.kind, number)
                continue
            log.info("resuming %s", progress.session.describe())
            self._run_session(pack, unfinished.kind, number, snapshot, progress)

    def _record_epoch(self, stag_id: bytes, epoch: int, outcome: EpochOutcome, height: int) -> None:
        self._store.record_epoch(stag_id, EpochResult(epoch, outcome, self._clock(), height))

    def _run_session(
        self, pack: PackState, kind: SessionKind, number: int, snapshot: PackSnapshot, progress: SessionProgress | None
    ) -> None:
        stag_id = pack.stag_id
        try:
            result = self._runner.run(snapshot, _Stored(self._store, stag_id), kind, number, progress)
            self.committee_status = CommitteeStatus(True)
        except CommitteeUnavailable as error:
            self.committee_status = CommitteeStatus(False, str(error))
            if kind is SessionKind.HUNT:
                self._record_epoch(stag_id, number, EpochOutcome.COMMITTEE_UNAVAILABLE, snapshot.height)
            log.warning("%s %d of stag %s postponed: %s", kind.value, number, stag_id.hex()[:12], error)
            raise
        except IntegrityFailure as error:
            if kind is SessionKind.HUNT:
                self._record_epoch(stag_id, number, EpochOutcome.INTEGRITY_FAILURE, snapshot.height)
                if self._binding_session(stag_id, number):
                    # The keyholders hold this hunt as binding and serve nothing else for the
                    # stag until it is certified: keep it, and resume it on every run (it
                    # succeeds once the faulty keyholder is stopped or left out).
                    log.error(
                        "hunt %d of stag %s is binding but its decryptions disagree; it is retried on every run "
                        "until the faulty keyholder is stopped: %s", number, stag_id.hex()[:12], error,
                    )
                    raise
                self._store.delete_session(stag_id, kind, number)
            log.error("%s %d of stag %s aborted, nothing revealed: %s", kind.value, number, stag_id.hex()[:12], error)
            raise
        finally:
            self._store.add_cost(stag_id, self._runner.cost)
            if self._after_session is not None:
                self._after_session()
        write, _ = self._locks(stag_id)
        if kind is SessionKind.VALIDATION:
            assert isinstance(result.outcome, ValidationOutcome)
            with write:
                self._append(pack, EntryKind.VALIDATION, ValidationCertificate(result.outcome, result.signatures))
            self._store.delete_session(stag_id, kind, number)
            if result.outcome.invalid:
                log.warning("stag %s: rejected %d malformed intendo(s)", stag_id.hex()[:12], len(result.outcome.invalid))
            return
        if result.outcome is None:
            self._record_epoch(stag_id, number, EpochOutcome.NO_HUNT, snapshot.height)
            self._store.delete_session(stag_id, kind, number)
            return
        if isinstance(result.outcome, SettlementOutcome):
            settlement = SettlementCertificate(result.outcome, result.signatures)
            self._log_and_pay(pack, EntryKind.SETTLEMENT, settlement, number, snapshot.height)
            log.info("stag %s: deadline passed without a hunt; %d refund bonuses paid", stag_id.hex()[:12], len(result.outcome.refunds))
            return
        assert isinstance(result.outcome, HuntOutcome)
        certificate = HuntCertificate(result.outcome, result.signatures, result.attestations, result.identities)
        self._log_and_pay(pack, EntryKind.HUNT, certificate, number, snapshot.height)
        log.info(
            "stag %s: hunt at epoch %d, level %d, %d members",
            stag_id.hex()[:12], number, result.outcome.level, len(result.outcome.members),
        )
        with self._hunts_changed:
            self._hunts_changed.notify_all()
        root = self._bundle_root(stag_id)
        if root is not None:
            self._complete_bundle(*root)

    def _log_and_pay(
        self, pack: PackState, kind: EntryKind, certificate: HuntCertificate | SettlementCertificate, epoch: int, height: int
    ) -> None:
        """Log a certificate that moves money (a hunt or a settlement), record its epoch, forget
        its session and have the executor apply it — all under the accounts lock, so that no
        release slips between a certificate and its payment (after a crash in between, the
        aggregator applies every logged certificate again before it serves anything)."""
        spec = pack.require_spec()
        write, _ = self._locks(pack.stag_id)
        with self._accounts:
            with write:
                self._append(pack, kind, certificate)
            self._store.delete_session(pack.stag_id, SessionKind.HUNT, epoch)
            if isinstance(certificate, HuntCertificate):
                self._record_epoch(pack.stag_id, epoch, EpochOutcome.HUNT, height)
                self._note_spent(certificate)  # spent once certified, whatever the executor does next
                if self._bundled(certificate):  # executes with its bundle (`_complete_bundle`)
                    self._unpaid[certificate.outcome.digest()] = (spec, certificate)
                    self._certified_at[certificate.outcome.digest()] = time.monotonic()
                else:
                    self._executor.execute(spec, certificate)
            else:
                self._record_epoch(pack.stag_id, epoch, EpochOutcome.SETTLED, height)
                self._executor.settle(spec, certificate)

    # -- composed hunts (DESIGN.md §10.2) -------------------------------------------------------

    def _bundled(self, certificate: HuntCertificate) -> bool:
        """Whether a certified hunt executes in a bundle rather than alone: it is the first hunt
        of a stag that others name as their trigger, or it fired on a hunt (its cause) that has
        not executed yet."""
        outcome = certificate.outcome
        if outcome.cause and not self._executor.executed(outcome.cause):
            return True
        return outcome.executed_weight == 0 and bool(self._dependents.get(outcome.stag_id))

    def _awaits_bundle(self, stag_id: bytes) -> bool:
        """Whether a hunt of the stag is certified and waits for its bundle to execute: the
        stag checks again only after it (its hunts execute in order)."""
        return any(spec.stag_id == stag_id for spec, _ in list(self._unpaid.values()))

    def _bundle_root(self, stag_id: bytes) -> tuple[StagSpec, HuntCertificate] | None:
        """The stag's certified hunt that waits for its bundle and roots it (its own cause, if
        any, has executed)."""
        for spec, certificate in list(self._unpaid.values()):
            cause = certificate.outcome.cause
            if spec.stag_id == stag_id and (not cause or self._executor.executed(cause)):
                return spec, certificate
        return None

    def _complete_bundle(self, spec: StagSpec, certificate: HuntCertificate) -> None:
        """Arm the stags the hunt triggers, run each one's immediate check, and execute the hunt
        with every hunt that fired on it — transitively — as one bundle, in one executor
        transaction. Raises (and executes nothing) while a dependent's check cannot finish: the
        bundle waits, and the next run of this stag tries again. Call with its session lock."""
        hunts = self._gather(spec, certificate)
        with self._accounts:
            self._executor.execute_bundle(hunts)
            for _, executed in hunts:
                self._unpaid.pop(executed.outcome.digest(), None)
        now = time.monotonic()
        seconds = now - self._certified_at.pop(certificate.outcome.digest(), now)  # (0 for a root logged before a restart)
        self.cascades.append(CascadeTiming(spec.stag_id, len(hunts), seconds))
        log.info(
            "stag %s: bundle of %d hunts executed %.1f s after its root's certificate (%s)", spec.stag_id.hex()[:12], len(hunts),
            seconds, ", ".join(f"{c.outcome.stag_id.hex()[:8]}@{c.outcome.epoch}" for _, c in hunts),
        )

    def _gather(self, spec: StagSpec, certificate: HuntCertificate) -> list[tuple[StagSpec, HuntCertificate]]:
        """The hunt and, depth first in creation order, every dependent's hunt that fired on it."""
        hunts = [(spec, certificate)]
        if certificate.outcome.executed_weight:
            return hunts  # only a stag's first hunt arms its dependents
        cause = certificate.outcome.digest()
        for dependent_id in self._dependents.get(spec.stag_id, ()):
            dependent = self._packs[dependent_id]
            self._arm(dependent, spec, certificate)
            fired = self._fired_on(dependent, cause)
            if fired is None and not self._first_check_done(dependent):
                self.run_due(dependent_id)  # the immediate check at the armed height (raises while it cannot finish)
                fired = self._fired_on(dependent, cause)
                if fired is None and not self._first_check_done(dependent):
                    raise WrongPhase(
                        f"the bundle of stag {spec.stag_id.hex()[:12]}'s hunt waits for the first check of stag "
                        f"{dependent_id.hex()[:12]}, which it armed"
                    )
            if fired is not None:
                hunts.extend(self._gather(dependent.require_spec(), fired))
        return hunts

    def _arm(self, pack: PackState, trigger: StagSpec, certificate: HuntCertificate) -> None:
        """Log the trigger's first hunt in a dependent's log (once): it may hunt from then on."""
        write, _ = self._locks(pack.stag_id)
        with write:
            if pack.armed is None:
                self._append(pack, EntryKind.TRIGGER, Trigger(certificate, trigger))
                log.info("stag %s armed by the hunt of its trigger %s", pack.stag_id.hex()[:12], trigger.stag_id.hex()[:12])

    @staticmethod
    def _fired_on(pack: PackState, cause: bytes) -> HuntCertificate | None:
        """The dependent's hunt that fired on `cause` (its first hunt names it)."""
        return pack.hunts[0] if pack.hunts and pack.hunts[0].outcome.cause == cause else None

    def _first_check_done(self, pack: PackState) -> bool:
        """Whether an armed dependent has been checked since it was armed (or can never hunt
        again: past its last epoch); until then the bundle of its trigger's hunt waits."""
        if pack.hunts:
            return True
        now = self._clock()
        if pack.finished(now) or not pack.require_spec().epoch_allowed(pack.hunt_epoch(now)):
            return True
        return any(result.checked and result.height >= pack.armed_at for result in self._store.epochs(pack.stag_id))

    def _unfinished(self, stag_id: bytes, number: int) -> SessionProgress | None:
        """The saved progress of the stag's unfinished hunt session of epoch `number`."""
        for unfinished in self._store.unfinished_sessions():
            if (unfinished.stag_id, unfinished.kind, unfinished.number) == (stag_id, SessionKind.HUNT, number):
                return codec.decode(SessionProgress, unfinished.progress)
        return None

    def _binding_session(self, stag_id: bytes, number: int) -> bool:
        progress = self._unfinished(stag_id, number)
        return progress is not None and _binding(progress)

    @property
    def live_keyholders(self) -> set[int]:
        return set(self._runner.last_live)

    @property
    def misbehaving_keyholders(self) -> dict[int, str]:
        """Keyholders caught misbehaving (a mask whose noise failed the test), and how."""
        return dict(self._runner.misbehaving)

    @property
    def suspect_keyholders(self) -> set[int]:
        """Keyholders left out of sessions because their partial decryptions were corrupt."""
        return set(self._runner.suspects)

    def readmit_keyholders(self) -> None:
        """Let suspect keyholders take part again (an operator replaced or repaired them)."""
        self._runner.suspects.clear()


def _binding(progress: SessionProgress) -> bool:
    """Whether keyholders may already have served a binding step of this session: they then
    serve nothing else for the stag until its outcome is certified (`decrypt.steps.binding`)."""
    return binding(progress.session.kind, {partial.statement.step for partial in progress.partials})
