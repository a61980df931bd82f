"""The keyholder service: a `KeyholderNode` behind gRPC, in its own process.

Servicers are thin: decode the record, call the node, encode the answer; errors go through the
table in `stagpack.grpc_common`. The health service reports NOT_SERVING until a ceremony has
completed and the sealed key share is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import grpc

from stagpack import codec
from stagpack.config import KeyholderConfig
from stagpack.dkg.messages import (
    BackupRequest,
    CeremonyPlan,
    ChainRequest,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    RoundOneRequest,
    RoundTwoRequest,
    SelfTestRequest,
    SignRequest,
)
from stagpack.errors import InvalidInput
from stagpack.fhe import FheContext
from stagpack.grpc_common import (
    INTERNAL_MESSAGE_LIMIT,
    HealthReporter,
    add_servicer,
    channel,
    enable_reflection,
    error_from_rpc,
    new_server,
    servicer_method,
)
from stagpack.identity import KeyholderIdentity, Sealer, SealingCost
from stagpack.keyholder.node import KeyholderNode
from stagpack.keyholder.store import KeyholderStore
from stagpack.log import LogEntry
from stagpack.session import CertifyRequest, DecryptRequest, RevealRequest, SessionRef
from stagpack.v1 import keyholder_pb2, keyholder_pb2_grpc

log = logging.getLogger("stagpack.keyholder")

SERVICE_NAME = "stagpack.v1.Keyholder"


class RemoteLog:
    """Pulls stag log entries from the aggregator's Replication service."""

    def __init__(self, address: str, timeout_seconds: float = 120.0) -> None:
        self._stub = keyholder_pb2_grpc.ReplicationStub(channel(address, INTERNAL_MESSAGE_LIMIT))
        self._timeout = timeout_seconds

    def read_log(self, stag_id: bytes, after_height: int, up_to_height: int) -> Iterable[tuple[LogEntry, bytes | None]]:
        request = keyholder_pb2.ReadLogRequest(stag_id=stag_id, after_height=after_height, up_to_height=up_to_height)
        try:
            records = list(self._stub.ReadLog(request, timeout=self._timeout))
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        return [(codec.decode(LogEntry, record.entry), record.ciphertext or None) for record in records]


def _record_call(handler: Callable[[Any], Any], request_type: type) -> Callable[..., keyholder_pb2.Record]:
    @servicer_method
    def call(self: Any, request: keyholder_pb2.Record, context: grpc.ServicerContext) -> keyholder_pb2.Record:
        return keyholder_pb2.Record(body=codec.encode(handler(codec.decode(request_type, request.body))))

    return call


class KeyholderServicer(keyholder_pb2_grpc.KeyholderServicer):
    def __init__(self, node: KeyholderNode, on_ready: Callable[[], None]) -> None:
        self._node = node
        self._on_ready = on_ready
        node_call = self._node
        bindings = {
            "CeremonyPlan": (node_call.handle_plan, CeremonyPlan),
            "CeremonyChain": (node_call.handle_chain, ChainRequest),
            "CeremonyRoundOne": (node_call.handle_round_one, RoundOneRequest),
            "CeremonyRoundTwo": (node_call.handle_round_two, RoundTwoRequest),
            "CeremonyFinalize": (node_call.handle_finalize, FinalizeRequest),
            "CeremonyBackup": (node_call.handle_backup, BackupRequest),
            "CeremonyDeliverBackups": (node_call.handle_deliver_backups, DeliverBackupsRequest),
            "CeremonySelfTest": (node_call.handle_self_test, SelfTestRequest),
            "CeremonySign": (node_call.handle_sign, SignRequest),
            "OpenSession": (node_call.open_session, SessionRef),
            "RevealMasks": (node_call.reveal, RevealRequest),
            "Decrypt": (node_call.decrypt, DecryptRequest),
            "Certify": (node_call.certify, CertifyRequest),
        }
        for name, (handler, request_type) in bindings.items():
            bound = _record_call(handler, request_type).__get__(self)
            setattr(self, name, bound)

    @servicer_method
    def GetIdentity(self, request: keyholder_pb2.GetIdentityRequest, context: grpc.ServicerContext) -> keyholder_pb2.KeyholderInfo:
        node = self._node
        public = node.public_identity
        committee_id = node.committee.committee_id if node.committee is not None else b""
        return keyholder_pb2.KeyholderInfo(
            name=public.name, verify_key=public.verify_key, box_key=public.box_key, ready=node.ready,
            committee_id=committee_id, index=node.index,
        )

    @servicer_method
    def CeremonyComplete(self, request: keyholder_pb2.Record, context: grpc.ServicerContext) -> keyholder_pb2.Record:
        response = self._node.handle_complete(codec.decode(CompleteRequest, request.body))
        if self._node.ready:
            self._on_ready()
        return keyholder_pb2.Record(body=codec.encode(response))


def load_or_create_identity(path: Path, name: str, sealer: Sealer) -> KeyholderIdentity:
    """The keyholder's long-term identity, sealed at rest under its passphrase."""
    if path.exists():
        identity = KeyholderIdentity.from_json(sealer.unseal(path.read_bytes()))
        if identity.name != name:
            raise InvalidInput(f"{path} belongs to keyholder {identity.name!r}, not {name!r}")
        return identity
    identity = KeyholderIdentity(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(sealer.seal(identity.to_json()))
    temporary.replace(path)
    log.info("created keyholder identity %s (%s)", name, identity.verify_key.hex()[:16])
    return identity


class KeyholderService:
    """A running keyholder: node, store and gRPC server."""

    def __init__(self, config: KeyholderConfig, context: FheContext | None = None) -> None:
        context = context or FheContext()
        context.check_threshold_support()  # fail loudly before serving if OpenFHE misbehaves
        cost = SealingCost.interactive() if config.sealing == "interactive" else SealingCost()
        sealer = Sealer(config.passphrase(), cost)
        data = Path(config.data_dir)
        identity = load_or_create_identity(data / "identity.sealed", config.name, sealer)
        self.store = KeyholderStore(data / "keyholder.db")
        self.node = KeyholderNode(context, identity, self.store, sealer, RemoteLog(config.aggregator))
        self.server, self.port = new_server(config.listen, INTERNAL_MESSAGE_LIMIT)
        self.health = HealthReporter(self.server, [SERVICE_NAME])
        add_servicer(
            self.server, KeyholderServicer(self.node, self.health.serving), keyholder_pb2.DESCRIPTOR.services_by_name["Keyholder"]
        )
        enable_reflection(self.server, [SERVICE_NAME])
        if self.node.ready:
            self.health.serving()

    def start(self) -> None:
        self.server.start()
        log.info("keyholder %s listening on port %d (%s)", self.node.identity.name, self.port,
                 "ready" if self.node.ready else "waiting for a key ceremony")

    def close(self) -> None:
        self.store.close()
