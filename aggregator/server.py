"""The aggregator service: the public API for market front-ends, log replication for the
keyholders, the epoch scheduler, and the gRPC clients it uses to reach the keyholders.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc

from stagpack import codec
from stagpack.aggregator.committee import KeyholderUnreachable
from stagpack.aggregator.core import Aggregator
from stagpack.aggregator.ledger import SqliteLedger
from stagpack.aggregator.store import AggregatorStore
from stagpack.config import AggregatorConfig
from stagpack.dkg import CommitteeBundle
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
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, InvalidInput, StagpackError
from stagpack.fhe import FheContext
from stagpack.grpc_common import (
    INTERNAL_MESSAGE_LIMIT,
    PUBLIC_MESSAGE_LIMIT,
    HealthReporter,
    channel,
    enable_reflection,
    error_from_rpc,
    add_servicer,
    new_server,
    reject_malformed,
    servicer_method,
    status_code,
)
from stagpack.identity import PublicIdentity
from stagpack.session import (
    CertifyRequest,
    CertifyResponse,
    DecryptRequest,
    DecryptResponse,
    MaskReveal,
    RevealRequest,
    SessionRef,
    SignedCommitment,
)
from stagpack.v1 import aggregator_pb2, aggregator_pb2_grpc, keyholder_pb2, keyholder_pb2_grpc
from stagpack.wire import (
    bundle_exists,
    envelope_from_proto,
    hunt_to_proto,
    load_bundle_files,
    spec_from_proto,
    spec_to_proto,
    withdrawal_from_proto,
)

log = logging.getLogger("stagpack.aggregator")

SERVICE_NAMES = ["stagpack.v1.Aggregator", "stagpack.v1.Replication"]
WATCH_POLL_SECONDS = 1.0


# --- reaching keyholders ---------------------------------------------------------------------


class RemoteKeyholder:
    """A keyholder over gRPC, for sessions (`KeyholderClient`) and the ceremony (`CeremonyPeer`)."""

    def __init__(self, address: str, index: int = 0, timeout_seconds: float = 300.0) -> None:
        self.address = address
        self.index = index
        self._stub = keyholder_pb2_grpc.KeyholderStub(channel(address, INTERNAL_MESSAGE_LIMIT))
        self._timeout = timeout_seconds

    def _call(self, method: str, record: object, response_type: type) -> object:
        try:
            response = getattr(self._stub, method)(keyholder_pb2.Record(body=codec.encode(record)), timeout=self._timeout)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):  # type: ignore[attr-defined]
                raise KeyholderUnreachable(f"keyholder at {self.address}: {error.details()}") from None  # type: ignore[attr-defined]
            raise error_from_rpc(error) from None
        return codec.decode(response_type, response.body)

    def info(self) -> keyholder_pb2.KeyholderInfo:
        try:
            return self._stub.GetIdentity(keyholder_pb2.GetIdentityRequest(), timeout=30)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):  # type: ignore[attr-defined]
                raise KeyholderUnreachable(f"keyholder at {self.address}: {error.details()}") from None  # type: ignore[attr-defined]
            raise error_from_rpc(error) from None

    # sessions
    def open_session(self, session: SessionRef) -> SignedCommitment:
        return self._call("OpenSession", session, SignedCommitment)  # type: ignore[return-value]

    def reveal(self, request: RevealRequest) -> MaskReveal:
        return self._call("RevealMasks", request, MaskReveal)  # type: ignore[return-value]

    def decrypt(self, request: DecryptRequest) -> DecryptResponse:
        return self._call("Decrypt", request, DecryptResponse)  # type: ignore[return-value]

    def certify(self, request: CertifyRequest) -> CertifyResponse:
        return self._call("Certify", request, CertifyResponse)  # type: ignore[return-value]

    # ceremony
    def identity(self) -> PublicIdentity:
        info = self.info()
        return PublicIdentity(info.name, bytes(info.verify_key), bytes(info.box_key))

    def plan(self, request: CeremonyPlan) -> Acknowledgement:
        return self._call("CeremonyPlan", request, Acknowledgement)  # type: ignore[return-value]

    def chain(self, request: ChainRequest) -> ChainResponse:
        return self._call("CeremonyChain", request, ChainResponse)  # type: ignore[return-value]

    def round_one(self, request: RoundOneRequest) -> RoundOneResponse:
        return self._call("CeremonyRoundOne", request, RoundOneResponse)  # type: ignore[return-value]

    def round_two(self, request: RoundTwoRequest) -> RoundTwoResponse:
        return self._call("CeremonyRoundTwo", request, RoundTwoResponse)  # type: ignore[return-value]

    def finalize(self, request: FinalizeRequest) -> FinalizeResponse:
        return self._call("CeremonyFinalize", request, FinalizeResponse)  # type: ignore[return-value]

    def backup(self, request: BackupRequest) -> BackupResponse:
        return self._call("CeremonyBackup", request, BackupResponse)  # type: ignore[return-value]

    def deliver_backups(self, request: DeliverBackupsRequest) -> Acknowledgement:
        return self._call("CeremonyDeliverBackups", request, Acknowledgement)  # type: ignore[return-value]

    def self_test(self, request: SelfTestRequest) -> SelfTestResponse:
        return self._call("CeremonySelfTest", request, SelfTestResponse)  # type: ignore[return-value]

    def sign(self, request: SignRequest) -> TranscriptSignature:
        return self._call("CeremonySign", request, TranscriptSignature)  # type: ignore[return-value]

    def complete(self, request: CompleteRequest) -> Acknowledgement:
        return self._call("CeremonyComplete", request, Acknowledgement)  # type: ignore[return-value]


def connect_committee(addresses: list[str], bundle: CommitteeBundle, timeout_seconds: float) -> list[RemoteKeyholder]:
    """Clients for every keyholder, each tagged with its index in the committee. A keyholder
    that is down now gets its index from the transcript by address order once it answers; the
    configured address order must be the ceremony's order."""
    participants = bundle.transcript.body.participants
    if len(addresses) != len(participants):
        raise InvalidInput(f"{len(addresses)} keyholder addresses configured for a committee of {len(participants)}")
    clients = []
    for index, address in enumerate(addresses, start=1):
        client = RemoteKeyholder(address, index, timeout_seconds)
        try:
            info = client.info()
            if bytes(info.verify_key) != participants[index - 1].verify_key:
                raise IntegrityFailure(f"the keyholder at {address} is not keyholder {index} of the committee")
        except KeyholderUnreachable:
            log.warning("keyholder %d at %s is not reachable yet", index, address)
        clients.append(client)
    return clients


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
        return aggregator_pb2.CreateStagResponse(stag_id=self._aggregator().create_stag(spec_from_proto(request.spec)))

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
            executed=status.executed, withdrawn=status.withdrawn, rejected=status.rejected,
            remaining_capacity=status.remaining_capacity, executed_level=status.executed_level,
            epochs=[
                aggregator_pb2.EpochResult(epoch=e.epoch, result=e.result, at_millis=e.at_millis, log_height=e.height)
                for e in status.epochs
            ],
            hunts=[hunt_to_proto(certificate, status.spec, transcript) for certificate in status.hunts],
            accepting=status.accepting, next_epoch_at_millis=status.next_epoch_at_millis, committee=status.committee,
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
    def __init__(self, service: AggregatorService) -> None:
        self._service = service

    def ReadLog(self, request: keyholder_pb2.ReadLogRequest, context: grpc.ServicerContext) -> Iterator[keyholder_pb2.LogRecord]:
        reject_malformed(request, context)
        aggregator = self._service.aggregator
        if aggregator is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the aggregator has no committee yet")
        try:
            entries = list(aggregator.read_log(bytes(request.stag_id), int(request.after_height), int(request.up_to_height)))
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
        self.server, self.port = new_server(config.listen, PUBLIC_MESSAGE_LIMIT, workers=16)
        self.health = HealthReporter(self.server, SERVICE_NAMES)
        add_servicer(self.server, AggregatorServicer(self), aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"])
        add_servicer(self.server, ReplicationServicer(self), keyholder_pb2.DESCRIPTOR.services_by_name["Replication"])
        enable_reflection(self.server, SERVICE_NAMES)
        self._threads: list[threading.Thread] = []
        self._store: AggregatorStore | None = None
        self._ledger: SqliteLedger | None = None

    def start(self) -> None:
        self.server.start()
        log.info("aggregator listening on port %d", self.port)
        thread = threading.Thread(target=self._run, name="epoch-scheduler", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _load(self) -> bool:
        directory = self.config.committee_path()
        if not bundle_exists(directory):
            return False
        bundle = load_bundle_files(directory)
        clients = connect_committee(self.config.keyholders, bundle, self.config.keyholder_timeout_seconds)
        data = Path(self.config.data_dir)
        self._store = AggregatorStore(data / "aggregator.db")
        self._ledger = SqliteLedger(data / "ledger.db")
        self.aggregator = Aggregator(
            self.context, bundle, self._store, clients, self._ledger, recheck_unchanged=self.config.recheck_unchanged
        )
        self.health.serving()
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
        for thread in self._threads:
            thread.join(timeout=60)
        if self._store is not None:
            self._store.close()
        if self._ledger is not None:
            self._ledger.close()
