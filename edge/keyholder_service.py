"""The keyholder service: a `KeyholderNode` behind gRPC, in its own process.

The servicer is built from the call tables (`stagpack.dkg.rounds.CEREMONY_ROUNDS`,
`stagpack.session.SESSION_CALLS`): each RPC decodes its request record, hands it to the node's
`dispatch`, and encodes the answer; errors go through the table in `stagpack.edge.rpc`. The
health service reports NOT_SERVING until a ceremony has completed and the sealed key share is
loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import grpc

from stagpack import codec
from stagpack.calls import Call, read_credential
from stagpack.decrypt import DecryptingParty
from stagpack.dkg.rounds import CEREMONY_ROUNDS
from stagpack.edge.config import KeyholderConfig
from stagpack.edge.keyholder_store import SqliteKeyholderStore
from stagpack.edge.remote import RemoteLog
from stagpack.edge.rpc import INTERNAL_MESSAGE_LIMIT, HealthReporter, add_servicer, enable_reflection, new_server, servicer_method
from stagpack.errors import InvalidInput
from stagpack.fhe import FheContext, release_memory
from stagpack.identity import KeyholderIdentity, Sealer, SealingCost
from stagpack.decrypt.threshold import PartialSource
from stagpack.keyholder.node import KeyholderNode, MaskSource
from stagpack.session import CERTIFY, DECRYPT, SESSION_CALLS
from stagpack.v1 import keyholder_pb2, keyholder_pb2_grpc

log = logging.getLogger("stagpack.keyholder")

SERVICE_NAME = "stagpack.v1.Keyholder"
# A step's request carries every earlier partial (tens of megabytes with seven keyholders) and
# builds ciphertexts in C++ memory that Python's collector does not weigh: a service process
# frees them after each such call (stagpack.fhe.release_memory) instead of growing by hundreds
# of megabytes per session.
RELEASING_CALLS = (DECRYPT, CERTIFY)


class KeyholderServicer(keyholder_pb2_grpc.KeyholderServicer):
    """Every RPC of `stagpack.v1.Keyholder`: one method per call of the tables, and identity."""

    def __init__(self, node: KeyholderNode, on_ready: Callable[[], None]) -> None:
        self._node = node
        self._on_ready = on_ready
        for call in (*CEREMONY_ROUNDS, *SESSION_CALLS):
            setattr(self, call.rpc, self._method(call))

    def _method(self, call: Call[Any, Any]) -> Callable[[keyholder_pb2.Record, grpc.ServicerContext], keyholder_pb2.Record]:
        node, on_ready = self._node, self._on_ready

        @servicer_method
        def handle(_: object, request: keyholder_pb2.Record, context: grpc.ServicerContext) -> keyholder_pb2.Record:
            was_ready = node.ready
            credential = read_credential(call.rpc, bytes(request.credential))
            try:
                response = node.dispatch(call, call.decode_request(bytes(request.body)), credential)
            finally:
                if call in RELEASING_CALLS:
                    release_memory()
            if node.ready and not was_ready:
                on_ready()
            return keyholder_pb2.Record(body=codec.encode(response))

        return lambda request, context: handle(self, request, context)

    @servicer_method
    def GetIdentity(self, request: keyholder_pb2.GetIdentityRequest, context: grpc.ServicerContext) -> keyholder_pb2.KeyholderInfo:
        node = self._node
        public = node.public_identity
        committee_id = node.committee.committee_id if node.committee is not None else b""
        return keyholder_pb2.KeyholderInfo(
            name=public.name, verify_key=public.verify_key, box_key=public.box_key, ready=node.ready,
            committee_id=committee_id, index=node.index, chain_address=public.chain_address,
        )


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
    """A running keyholder: node, store and gRPC server. `masks` and `partials` replace the
    node's sources (tests run a dishonest keyholder this way; production passes neither)."""

    def __init__(
        self,
        config: KeyholderConfig,
        context: FheContext | None = None,
        *,
        masks: MaskSource | None = None,
        partials: Callable[[DecryptingParty], PartialSource] | None = None,
        allow_insecure: bool = False,
    ) -> None:
        context = context or FheContext(allow_insecure=allow_insecure)
        context.check_threshold_support()  # fail loudly before serving if OpenFHE misbehaves
        cost = SealingCost.interactive() if config.sealing == "interactive" else SealingCost()
        sealer = Sealer(config.passphrase(), cost)
        data = Path(config.data_dir)
        identity = load_or_create_identity(data / "identity.sealed", config.name, sealer)
        self.store = SqliteKeyholderStore(data / "keyholder.db")
        self._log = RemoteLog(config.aggregator, identity)
        self.node = KeyholderNode(
            context, identity, self.store, sealer, self._log, masks=masks, partials=partials,
            coordinator_key=config.coordinator(), allow_insecure=allow_insecure,
        )
        self.server, self.port = new_server(config.listen, INTERNAL_MESSAGE_LIMIT)
        self.health = HealthReporter(self.server, [SERVICE_NAME])
        add_servicer(
            self.server, KeyholderServicer(self.node, self._on_ready), keyholder_pb2.DESCRIPTOR.services_by_name["Keyholder"]
        )
        enable_reflection(self.server, [SERVICE_NAME])
        if self.node.ready:
            self._on_ready()

    def _on_ready(self) -> None:
        """The committee is known: pull logs as its keyholder, from its aggregator; serve."""
        assert self.node.committee is not None
        self._log.aggregator_key = self.node.committee.aggregator_key
        self.health.serving()

    def start(self) -> None:
        self.server.start()
        log.info("keyholder %s listening on port %d (%s)", self.node.identity.name, self.port,
                 "ready" if self.node.ready else "waiting for a key ceremony")

    def close(self) -> None:
        self.store.close()
