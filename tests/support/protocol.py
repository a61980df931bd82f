"""Shared machinery for the protocol-level tests (tests/test_protocol_*.py); holds no tests.

`MirroredStag` drives one stag of an in-process deployment (real protocol code, every record
byte-encoded between parties) and mirrors every submission, withdrawal and hunt in the plaintext
`PackSolver`, the independent oracle: after each epoch the FHE result must equal the solver's
exactly (hunt level, members in log order, executed weight), the certificate must verify on its
own, and the ledger must have applied the hunt exactly once. In a capital stag every intendo is
backed by an escrow deposit of its weight; after each epoch every account must hold its deposits
less what its executed intendos paid, the beneficiary what the solver executed, and the ledger
must conserve money.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from collections import defaultdict

from stagpack.committee import CommitteeInfo
from stagpack.edge.chain import ChainLedger
from stagpack.edge.ledger import SqliteLedger
from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.decrypt import DecryptingParty
from stagpack.decrypt.computation import DecryptionObserver
from stagpack.encoding import StagKind, Threshold
from stagpack.identity import SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.decrypt.threshold import PartialSource
from stagpack.keyholder.node import KeyholderNode, MaskSource
from stagpack.log import CertificateBundle, EntryKind, HuntCertificate, LogEntry, decode_body
from stagpack.pack import MemoryCiphertexts, PackState
from stagpack.participant.sdk import capital_threshold, count_threshold, prepare_intendo, prepare_withdrawal
from stagpack.session import SessionKind, Step
from stagpack.solver import Hunt, PackSolver
from stagpack.stag import ManualClock, StagSpec, now_millis


EPOCH_MILLIS = 1_000
TAG = "main"  # the escrow account that backs every capital intendo of the mirrored stags
HOUR = 3_600_000


def deposit(aggregator: object, identity: SigningIdentity, amount: int, tag: str = TAG) -> None:
    """Deposit `amount` into the identity's escrow account `tag` (what a participant does before
    submitting a capital intendo)."""
    committee = aggregator.committee.committee_id  # type: ignore[attr-defined]
    aggregator.transfer(Transfer.sign(identity, committee, TransferKind.DEPOSIT, tag, amount, now_millis() + HOUR))  # type: ignore[attr-defined]


def start_deployment(
    directory: Path,
    parties: int,
    threshold: int,
    clock: ManualClock,
    *,
    masks: Mapping[int, MaskSource] | None = None,
    partials: Mapping[int, Callable[[DecryptingParty], PartialSource]] | None = None,
    observer: DecryptionObserver | None = None,
    fault_bound: int | None = None,
    executor: str | Callable[[Path, CommitteeInfo], SqliteLedger | ChainLedger] = "sqlite",
) -> InProcessDeployment:
    """A whole deployment (real ceremony) whose parties all read the test's clock; `masks`,
    `partials` and `observer` are the deployment's injection hooks (see `support.faults`).
    `fault_bound` is the committee's f (default 1 where n > t: every step then needs t + 1
    keyholders live); tests of t-of-n liveness with keyholders offline pass 0. `executor`:
    "sqlite", "chain" (the settlement contract on an embedded EVM) or a factory (`support.market`'s
    `ChainMirroredLedger`: both at once)."""
    return InProcessDeployment.start(
        directory, parties, threshold, clock=clock, masks=masks, partials=partials, observer=observer,
        fault_bound=fault_bound, executor=executor,
    )


@dataclass
class EpochReport:
    """What one epoch of one stag produced, next to what the solver said it must produce."""

    epoch: int
    result: str
    expected: Hunt | None
    certificate: HuntCertificate | None


@dataclass
class MirroredStag:
    deployment: InProcessDeployment
    clock: ManualClock
    stag_id: bytes
    solver: PackSolver
    identities: dict[bytes, SigningIdentity] = field(default_factory=dict)
    ciphertexts: dict[bytes, bytes] = field(default_factory=dict)
    reports: list[EpochReport] = field(default_factory=list)
    deposited: dict[bytes, int] = field(default_factory=lambda: defaultdict(int))  # owner -> units deposited under TAG

    @classmethod
    def create(
        cls,
        deployment: InProcessDeployment,
        clock: ManualClock,
        kind: StagKind,
        levels: int,
        *,
        epoch_millis: int = EPOCH_MILLIS,
        title: str = "",
    ) -> MirroredStag:
        aggregator = deployment.aggregator
        spec = StagSpec.new(
            committee=aggregator.committee.committee_id,
            kind=kind,
            levels=levels,
            title=title,
            epoch_millis=epoch_millis,
            opens_at_millis=clock(),
            beneficiary=Account(SigningIdentity().verify_key, "proceeds") if kind is StagKind.CAPITAL else None,
        )
        stag_id = aggregator.create_stag(spec)
        return cls(deployment, clock, stag_id, PackSolver(levels))

    # -- views ----------------------------------------------------------------------------------

    @property
    def aggregator(self):  # type: ignore[no-untyped-def]
        return self.deployment.aggregator

    @property
    def spec(self):  # type: ignore[no-untyped-def]
        return self.aggregator.spec(self.stag_id)

    @property
    def levels(self) -> int:
        return int(self.spec.levels)

    def current_epoch(self) -> int:
        return int(self.spec.current_epoch(self.clock()))

    def epoch_results(self) -> dict[int, str]:
        return {result.epoch: result.result.value for result in self.aggregator.status(self.stag_id).epochs}

    # -- writes, mirrored in the solver ---------------------------------------------------------

    def submit(self, threshold: Threshold, identity: SigningIdentity | None = None) -> bytes:
        """Encrypt, sign and submit an intendo; the solver learns its plaintext."""
        identity = identity or SigningIdentity()
        deployment = self.deployment
        capital = self.spec.kind is StagKind.CAPITAL
        if capital:
            deposit(self.aggregator, identity, threshold.weight)
            self.deposited[identity.verify_key] += threshold.weight
        prepared = prepare_intendo(
            deployment.context, deployment.context.joint_key, self.spec, identity, threshold, capital_tag=TAG if capital else ""
        )
        self.aggregator.submit(prepared.envelope, prepared.ciphertext)
        self.solver.insert(prepared.intendo_id, threshold.level, threshold.weight)
        self.identities[prepared.intendo_id] = identity
        self.ciphertexts[prepared.intendo_id] = prepared.ciphertext
        return prepared.intendo_id

    def submit_count(self, others: int) -> bytes:
        return self.submit(count_threshold(self.spec, others))

    def submit_capital(self, amount: int, total: int) -> bytes:
        return self.submit(capital_threshold(self.spec, amount, total))

    def withdraw(self, intendo_id: bytes) -> int:
        height = self.aggregator.withdraw(prepare_withdrawal(self.identities[intendo_id], self.stag_id, intendo_id))
        self.solver.withdraw(intendo_id)
        return int(height)

    # -- epochs ---------------------------------------------------------------------------------

    def validate(self) -> None:
        """Validate what awaits validation without starting a hunt check (the current epoch
        must already have a final result, or none be due yet)."""
        epoch = self.current_epoch()
        final = {epoch for epoch, result in self.epoch_results().items() if result != "committee-unavailable"}
        assert epoch == 0 or epoch in final, "validate() would start a hunt check"
        self.aggregator.run_due(self.stag_id)
        status = self.aggregator.status(self.stag_id)
        assert status.awaiting_validation == 0 and status.rejected == 0

    def run_epoch(self, *, advance: bool = True) -> EpochReport:
        """Move to the next epoch, run what is due, and check the result against the solver."""
        if advance:
            self.clock.advance(self.spec.epoch_millis)
        self.aggregator.run_due(self.stag_id)
        return self.check_epoch()

    def check_epoch(self) -> EpochReport:
        """Compare the current epoch's result with the solver, then mirror the hunt."""
        epoch = self.current_epoch()
        results = self.epoch_results()
        assert epoch in results, f"epoch {epoch} has no result"
        expected = self.solver.hunt()
        hunts = [certificate for certificate in self.aggregator.hunts(self.stag_id) if certificate.outcome.epoch == epoch]
        if expected is None:
            assert results[epoch] == "no-hunt", (epoch, results[epoch])
            assert hunts == []
            report = EpochReport(epoch, results[epoch], None, None)
        else:
            assert results[epoch] == "hunt", (epoch, results[epoch], expected.level)
            (certificate,) = hunts
            self.check_certificate(certificate, expected)
            self.solver.execute(expected)
            report = EpochReport(epoch, results[epoch], expected, certificate)
        self.check_counts()
        self.reports.append(report)
        return report

    def check_certificate(self, certificate: HuntCertificate, expected: Hunt) -> None:
        outcome = certificate.outcome
        assert outcome.level == expected.level
        assert outcome.member_ids == expected.members  # both in log (insertion) order
        assert tuple(member.statement.weight for member in outcome.members) == expected.weights
        assert outcome.executed_weight == self.solver.executed_level
        CertificateBundle(certificate, self.spec, self.deployment.bundle.transcript).verify()
        ledger = self.deployment.ledger
        executed = [execution for execution in ledger.executions(self.stag_id) if execution.epoch == outcome.epoch]
        assert tuple(execution.intendo_id for execution in executed) == expected.members
        assert [execution.weight for execution in executed] == list(expected.weights)
        assert ledger.execute(self.spec, certificate) is False  # applied exactly once
        # the certificate in the log is the one the aggregator reports
        logged = [
            decode_body(entry, HuntCertificate)
            for entry, _ in self.aggregator.read_log(self.stag_id, 0, self.aggregator.status(self.stag_id).height)
            if entry.kind is EntryKind.HUNT
        ]
        assert certificate in logged

    def check_counts(self) -> None:
        status = self.aggregator.status(self.stag_id)
        assert status.executed_level == self.solver.executed_level
        assert status.executed == len(self.solver.executed_ids())
        assert status.counted == len(self.solver.pending_ids())
        # live: awaiting validation, counted or executed, each once (executed ones were counted twice)
        assert status.live_intendos == status.awaiting_validation + len(self.solver.pending_ids()) + len(self.solver.executed_ids())
        assert status.remaining_capacity == self.levels - 1 - self.solver.total_weight
        ledger_ids = [execution.intendo_id for execution in self.deployment.ledger.executions(self.stag_id)]
        assert sorted(ledger_ids) == sorted(self.solver.executed_ids())  # type: ignore[type-var]
        if self.spec.kind is StagKind.CAPITAL:
            self.check_money()

    def check_money(self) -> None:
        """Every account holds its deposits less what its executed intendos paid; the
        beneficiary holds what the solver executed; the ledger conserves money."""
        ledger = self.deployment.ledger
        paid: dict[bytes, int] = defaultdict(int)
        for intendo_id in self.solver.executed_ids():
            statement = self.aggregator.intendo(self.stag_id, intendo_id).envelope.statement
            paid[statement.participant] += statement.weight
        for owner, deposited in self.deposited.items():
            assert ledger.balance(Account(owner, TAG)) == deposited - paid[owner]
        beneficiary = self.spec.beneficiary
        assert ledger.balance(beneficiary) == self.solver.executed_level
        assert ledger.totals().conserved


def run_epochs(stags: Sequence[MirroredStag]) -> list[EpochReport]:
    """One clock step for several stags of one deployment, each checked against its solver."""
    assert len({id(stag.clock) for stag in stags}) == 1
    stags[0].clock.advance(max(stag.spec.epoch_millis for stag in stags))
    return [stag.run_epoch(advance=False) for stag in stags]


# -- keyholder-side inspection ------------------------------------------------------------------


def served_steps(node: KeyholderNode, stag_id: bytes, kind: SessionKind | None = None) -> list[tuple[int, Step]]:
    """(session number, step) of every step this keyholder released partials for."""
    records = node.session_records(stag_id)
    return [
        (record.session.number, served.step)
        for record in records
        if kind is None or record.session.kind is kind
        for served in record.served
    ]


def replay_log(deployment: InProcessDeployment, stag_id: bytes, ciphertexts: dict[bytes, bytes]) -> PackState:
    """An independent replica of the stag built from the aggregator's public log."""
    aggregator = deployment.aggregator
    state = PackState(deployment.context, aggregator.committee, stag_id)
    height = aggregator.status(stag_id).height
    entries: list[tuple[LogEntry, bytes | None]] = list(aggregator.read_log(stag_id, 0, height))
    source = DictSource(ciphertexts)
    for entry, ciphertext in entries:
        state.apply(entry, ciphertext, source)
    return state


DictSource = MemoryCiphertexts  # the name the protocol tests use
