"""The aggregator service: the public API for market front-ends, log replication for the
keyholders and the epoch scheduler, around an `Aggregator` (it reaches the keyholders through
`stagpack.edge.remote`). Servicers are thin: decode, call the aggregator, encode.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc

from stagpack import codec
from stagpack.aggregator.core import Aggregator
from stagpack.calls import ReplayGuard, read_credential
from stagpack.committee import CommitteeInfo
from stagpack.edge.aggregator_store import SqliteAggregatorStore
from stagpack.edge.chain import ChainLedger
from stagpack.edge.config import AggregatorConfig
from stagpack.edge.ledger import SqliteLedger
from stagpack.edge.remote import connect_committee
from stagpack.edge.rpc import (
    INTERNAL_MESSAGE_LIMIT,
    PUBLIC_MESSAGE_LIMIT,
    HealthReporter,
    add_servicer,
    enable_reflection,
    new_server,
    reject_malformed,
    servicer_method,
    status_code,
)
from stagpack.edge.wire import (
    account_from_proto,
    balance_to_proto,
    bundle_exists,
    envelope_from_proto,
    hunt_to_proto,
    load_bundle_files,
    spec_from_proto,
    settlement_to_proto,
    spec_to_proto,
    transfer_from_proto,
    withdrawal_from_proto,
)
from stagpack.errors import CommitteeUnavailable, InvalidInput, StagpackError
from stagpack.fhe import FheContext, release_memory
from stagpack.log import LogRange
from stagpack.pack import PackLimits
from stagpack.participant.identity_file import AGGREGATOR, load_or_create_identity_file
from stagpack.stag import now_millis
from stagpack.v1 import aggregator_pb2, aggregator_pb2_grpc, keyholder_pb2, keyholder_pb2_grpc

log = logging.getLogger("stagpack.aggregator")

PUBLIC_SERVICE = "stagpack.v1.Aggregator"
REPLICATION_SERVICE = "stagpack.v1.Replication"
WATCH_POLL_SECONDS = 1.0


# --- serving the public API ------------------------------------------------------------------


class AggregatorServicer(aggregator_pb2_grpc.AggregatorServicer):
    def __init__(self, service: AggregatorService) -> None:
        self._service = service

    def _aggregator(self) -> Aggregator:
        aggregator = self._service.aggregator
        if aggregator is None:
            raise CommitteeUnavailable("the aggregator is waiting for the committee's key ceremony")
        return aggregator

    @servicer_method
    def GetEncryptionContext(self, request: aggregator_pb2.GetEncryptionContextRequest, context: grpc.ServicerContext) -> aggregator_pb2.EncryptionContext:
        aggregator = self._aggregator()
        encryption = aggregator.encryption_context()
        return aggregator_pb2.EncryptionContext(
            parameters=encryption.parameters, joint_public_key=encryption.joint_public_key,
            transcript=encryption.transcript, committee_id=aggregator.committee.committee_id,
        )

    @servicer_method
    def CreateStag(self, request: aggregator_pb2.CreateStagRequest, context: grpc.ServicerContext) -> aggregator_pb2.CreateStagResponse:
        if not request.HasField("spec"):
            raise InvalidInput("spec is missing")
        stag_id = self._aggregator().create_stag(spec_from_proto(request.spec), bytes(request.funding_signature))
        return aggregator_pb2.CreateStagResponse(stag_id=stag_id)

    @servicer_method
    def ListStags(self, request: aggregator_pb2.ListStagsRequest, context: grpc.ServicerContext) -> aggregator_pb2.ListStagsResponse:
        aggregator = self._aggregator()
        summaries = []
        for stag_id in aggregator.stag_ids():
            spec = aggregator.spec(stag_id)
            summaries.append(
                aggregator_pb2.StagSummary(stag_id=stag_id, kind=spec_to_proto(spec).kind, levels=spec.levels, title=spec.title)
            )
        return aggregator_pb2.ListStagsResponse(stags=summaries)

    @servicer_method
    def GetStagStatus(self, request: aggregator_pb2.GetStagStatusRequest, context: grpc.ServicerContext) -> aggregator_pb2.StagStatus:
        aggregator = self._aggregator()
        status = aggregator.status(bytes(request.stag_id))
        transcript = aggregator.bundle.transcript
        return aggregator_pb2.StagStatus(
            stag_id=request.stag_id, spec=spec_to_proto(status.spec), log_height=status.height,
            live_intendos=status.live_intendos, awaiting_validation=status.awaiting_validation, counted=status.counted,
            executed=status.executed, withdrawn=status.withdrawn, rejected=status.rejected, voided=status.voided,
            cost=aggregator_pb2.SessionCost(
                sessions=status.cost.sessions, steps=status.cost.steps, keyholder_calls=status.cost.calls,
                partial_decryptions=status.cost.partials, partial_decryption_bytes=status.cost.partial_bytes,
            ),
            remaining_capacity=status.remaining_capacity, executed_level=status.executed_level,
            epochs=[
                aggregator_pb2.EpochResult(epoch=e.epoch, result=e.result.value, at_millis=e.at_millis, log_height=e.height)
                for e in status.epochs
            ],
            hunts=[hunt_to_proto(certificate, status.spec, transcript) for certificate in status.hunts],
            accepting=status.accepting, next_epoch_at_millis=status.next_epoch_at_millis, committee=status.committee.describe(),
            pool=None if status.pool is None else aggregator_pb2.RefundPool(
                funded=status.pool.funded, remaining=status.pool.remaining, state=status.pool.state
            ),
            settlement=None if status.settlement is None else settlement_to_proto(status.settlement),
            refunded=status.refunded, armed=status.armed, awaiting_bundle=status.awaiting_bundle,
        )

    @servicer_method
    def SubmitIntendo(self, request: aggregator_pb2.SubmitIntendoRequest, context: grpc.ServicerContext) -> aggregator_pb2.SubmitIntendoResponse:
        if not request.HasField("envelope"):
            raise InvalidInput("envelope is missing")
        receipt = self._aggregator().submit(envelope_from_proto(request.envelope), bytes(request.ciphertext))
        return aggregator_pb2.SubmitIntendoResponse(intendo_id=receipt.intendo_id, log_height=receipt.height)

    @servicer_method
    def WithdrawIntendo(self, request: aggregator_pb2.WithdrawIntendoRequest, context: grpc.ServicerContext) -> aggregator_pb2.WithdrawIntendoResponse:
        if not request.HasField("withdrawal"):
            raise InvalidInput("withdrawal is missing")
        height = self._aggregator().withdraw(withdrawal_from_proto(request.withdrawal))
        return aggregator_pb2.WithdrawIntendoResponse(log_height=height)

    @servicer_method
    def GetIntendoStatus(self, request: aggregator_pb2.GetIntendoStatusRequest, context: grpc.ServicerContext) -> aggregator_pb2.IntendoStatus:
        record = self._aggregator().intendo(bytes(request.stag_id), bytes(request.intendo_id))
        statement = record.envelope.statement
        return aggregator_pb2.IntendoStatus(
            intendo_id=request.intendo_id, status=record.status.value, participant=statement.participant,
            weight=statement.weight, submitted_at_height=record.height, counted_at_height=record.counted_at,
            closed_at_height=record.closed_at,
        )

    @servicer_method
    def Transfer(self, request: aggregator_pb2.TransferRequest, context: grpc.ServicerContext) -> aggregator_pb2.AccountBalance:
        return balance_to_proto(self._aggregator().transfer(transfer_from_proto(request)))

    @servicer_method
    def GetBalance(self, request: aggregator_pb2.GetBalanceRequest, context: grpc.ServicerContext) -> aggregator_pb2.AccountBalance:
        if not request.HasField("account"):
            raise InvalidInput("account is missing")
        return balance_to_proto(self._aggregator().balance(account_from_proto(request.account)))

    def WatchHunts(self, request: aggregator_pb2.WatchHuntsRequest, context: grpc.ServicerContext) -> Iterator[aggregator_pb2.Hunt]:
        reject_malformed(request, context)
        try:
            aggregator = self._aggregator()
            stag_id = bytes(request.stag_id)
            spec = aggregator.spec(stag_id)
        except StagpackError as error:
            context.abort(status_code(error), str(error))
        after = int(request.after_epoch)
        transcript = aggregator.bundle.transcript
        while context.is_active() and not self._service.stopping.is_set():
            for certificate in aggregator.wait_for_hunts(stag_id, after, WATCH_POLL_SECONDS):
                yield hunt_to_proto(certificate, spec, transcript)
                after = certificate.outcome.epoch
            if spec.deadline_millis and time.time() * 1000 > spec.deadline_millis + spec.epoch_millis:
                return


class ReplicationServicer(keyholder_pb2_grpc.ReplicationServicer):
    """The log, for the committee's keyholders only: every request carries a credential signed
    by one of the keyholders the transcript names, for this aggregator, never replayed. It is
    served on the internal port, never beside the public API."""

    def __init__(self, service: AggregatorService) -> None:
        self._service = service

    def ReadLog(self, request: keyholder_pb2.ReadLogRequest, context: grpc.ServicerContext) -> Iterator[keyholder_pb2.LogRecord]:
        reject_malformed(request, context)
        aggregator = self._service.aggregator
        try:
            if aggregator is None:
                raise CommitteeUnavailable("the aggregator has no committee yet")
            wanted = LogRange(bytes(request.stag_id), int(request.after_height), int(request.up_to_height))
            credential = read_credential("ReadLog", bytes(request.credential))
            self._service.replays.admit(
                credential, "ReadLog", self._service.identity.verify_key, codec.encode(wanted),
                frozenset(aggregator.committee.verify_keys), now_millis(),
            )
            entries = list(aggregator.read_log(wanted.stag_id, wanted.after_height, wanted.up_to_height))
        except StagpackError as error:
            context.abort(status_code(error), str(error))
        for entry, ciphertext in entries:
            yield keyholder_pb2.LogRecord(entry=codec.encode(entry), ciphertext=ciphertext or b"")


class AggregatorService:
    """A running aggregator: waits for the committee bundle, then serves and schedules epochs."""

    def __init__(self, config: AggregatorConfig, context: FheContext | None = None) -> None:
        self.config = config
        self.context = context or FheContext()
        self.aggregator: Aggregator | None = None
        self.stopping = threading.Event()
        self.identity = load_or_create_identity_file(config.identity_path(), AGGREGATOR)
        self.replays = ReplayGuard(PackLimits().max_clock_skew_millis)
        self.server, self.port = new_server(config.listen, PUBLIC_MESSAGE_LIMIT, workers=16)
        self.health = HealthReporter(self.server, [PUBLIC_SERVICE])
        add_servicer(self.server, AggregatorServicer(self), aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"])
        enable_reflection(self.server, [PUBLIC_SERVICE])
        self.replication_server, self.replication_port = new_server(config.replication_listen, INTERNAL_MESSAGE_LIMIT)
        self.replication_health = HealthReporter(self.replication_server, [REPLICATION_SERVICE])
        add_servicer(self.replication_server, ReplicationServicer(self), keyholder_pb2.DESCRIPTOR.services_by_name["Replication"])
        self._threads: list[threading.Thread] = []
        self._store: SqliteAggregatorStore | None = None
        self._ledger: SqliteLedger | ChainLedger | None = None

    def start(self) -> None:
        self.server.start()
        self.replication_server.start()
        log.info(
            "aggregator %s listening on port %d (public) and %d (replication, keyholders only)",
            self.identity.verify_key.hex()[:16], self.port, self.replication_port,
        )
        thread = threading.Thread(target=self._run, name="epoch-scheduler", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _load(self) -> bool:
        directory = self.config.committee_path()
        if not bundle_exists(directory):
            return False
        bundle = load_bundle_files(directory)
        clients = connect_committee(self.config.keyholders, bundle, self.identity, self.config.keyholder_timeout_seconds)
        data = Path(self.config.data_dir)
        self._store = SqliteAggregatorStore(data / "aggregator.db")
        self._ledger = open_executor(self.config, data, CommitteeInfo.from_transcript(bundle.transcript))
        self.aggregator = Aggregator(
            self.context, bundle, self._store, clients, self._ledger, recheck_unchanged=self.config.recheck_unchanged,
            after_session=release_memory,
        )
        self.health.serving()
        self.replication_health.serving()
        return True

    def _run(self) -> None:
        waiting_logged = False
        while not self.stopping.is_set() and self.aggregator is None:
            try:
                if self._load():
                    break
            except StagpackError as error:
                log.error("cannot load the committee: %s", error)
            if not waiting_logged:
                log.info("waiting for a committee in %s (run `stagpack ceremony`)", self.config.committee_path())
                waiting_logged = True
            self.stopping.wait(1.0)
        interval = self.config.tick_millis / 1000
        while not self.stopping.wait(interval):
            assert self.aggregator is not None
            self.aggregator.tick()

    def close(self) -> None:
        self.stopping.set()
        self.replication_server.stop(5)
        for thread in self._threads:
            thread.join(timeout=60)
        if self._store is not None:
            self._store.close()
        if self._ledger is not None:
            self._ledger.close()


def open_executor(config: AggregatorConfig, data: Path, committee: CommitteeInfo) -> SqliteLedger | ChainLedger:
    """The executor the configuration names: the SQLite ledger (default) or the committee's
    settlement contract on a node."""
    if config.executor == "sqlite":
        return SqliteLedger(data / "ledger.db")
    if config.executor != "chain":
        raise InvalidInput(f"executor must be sqlite or chain, not {config.executor!r}")
    missing = [name for name in ("chain_rpc_url", "chain_contract", "chain_operator") if not getattr(config, name)]
    if missing:
        raise InvalidInput(f"the chain executor needs {', '.join(missing)}")
    return ChainLedger.connect(ChainLedger.node(config.chain_rpc_url), config.chain_contract, config.chain_operator, committee)
