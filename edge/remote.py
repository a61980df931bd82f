"""gRPC clients between the parties: the aggregator's (and the ceremony coordinator's) client
of a keyholder, and a keyholder's client of the aggregator's log.

`RemoteKeyholder.call` carries any call of the tables (`stagpack.dkg.rounds`,
`stagpack.session.SESSION_CALLS`) as the canonical bytes of its request record, and decodes the
typed response; a keyholder that does not answer raises `KeyholderUnreachable`.
"""

from __future__ import annotations

import logging
from typing import Iterable

import grpc

from stagpack import codec
from stagpack.calls import Call, Request, Response, sign_call
from stagpack.dkg import CommitteeBundle
from stagpack.edge.rpc import INTERNAL_MESSAGE_LIMIT, channel, error_from_rpc
from stagpack.errors import IntegrityFailure, InvalidInput, KeyholderUnreachable, StagpackError
from stagpack.identity import PublicIdentity, SigningIdentity
from stagpack.log import LogEntry, LogRange
from stagpack.stag import now_millis
from stagpack.v1 import keyholder_pb2, keyholder_pb2_grpc

log = logging.getLogger("stagpack.edge")

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RemoteKeyholder:
    """A keyholder over gRPC, called as `caller` (the aggregator for sessions, the coordinator
    for the ceremony): a `KeyholderClient` and a `CeremonyPeer`. Every call carries a credential
    signed by the caller for this keyholder (its key is read from the transcript, or asked once)."""

    def __init__(
        self,
        address: str,
        caller: SigningIdentity,
        index: int = 0,
        timeout_seconds: float = 300.0,
        verify_key: bytes | None = None,
    ) -> None:
        self.address = address
        self.index = index
        self._caller = caller
        self._verify_key = verify_key
        self._stub = keyholder_pb2_grpc.KeyholderStub(channel(address, INTERNAL_MESSAGE_LIMIT))
        self._timeout = timeout_seconds

    def _failure(self, error: grpc.RpcError) -> StagpackError:
        if error.code() in _UNREACHABLE:
            return KeyholderUnreachable(f"keyholder at {self.address}: {error.details()}")
        return error_from_rpc(error)

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        if self._verify_key is None:
            self._verify_key = self.identity().verify_key
        body = codec.encode(request)
        credential = sign_call(self._caller, call.rpc, self._verify_key, body, now_millis())
        method = getattr(self._stub, call.rpc)
        try:
            response = method(keyholder_pb2.Record(body=body, credential=codec.encode(credential)), timeout=self._timeout)
        except grpc.RpcError as error:
            raise self._failure(error) from None
        return call.decode_response(bytes(response.body))

    def info(self) -> keyholder_pb2.KeyholderInfo:
        try:
            info: keyholder_pb2.KeyholderInfo = self._stub.GetIdentity(keyholder_pb2.GetIdentityRequest(), timeout=30)
        except grpc.RpcError as error:
            raise self._failure(error) from None
        return info

    def identity(self) -> PublicIdentity:
        info = self.info()
        return PublicIdentity(info.name, bytes(info.verify_key), bytes(info.box_key), bytes(info.chain_address))


def connect_committee(
    addresses: list[str], bundle: CommitteeBundle, identity: SigningIdentity, timeout_seconds: float
) -> list[RemoteKeyholder]:
    """Clients for every keyholder, called as the aggregator `identity` (the key the transcript
    names), each tagged with its index in the committee. The configured address order must be
    the ceremony's order; a keyholder that does not answer now is used once it does."""
    body = bundle.transcript.body
    participants = body.participants
    if len(addresses) != len(participants):
        raise InvalidInput(f"{len(addresses)} keyholder addresses configured for a committee of {len(participants)}")
    if identity.verify_key != body.aggregator_key:
        raise IntegrityFailure("this aggregator's identity is not the one the committee serves (transcript's aggregator key)")
    clients = []
    for index, address in enumerate(addresses, start=1):
        client = RemoteKeyholder(address, identity, index, timeout_seconds, participants[index - 1].verify_key)
        try:
            info = client.info()
            if bytes(info.verify_key) != participants[index - 1].verify_key:
                raise IntegrityFailure(f"the keyholder at {address} is not keyholder {index} of the committee")
        except KeyholderUnreachable:
            log.warning("keyholder %d at %s is not reachable yet", index, address)
        clients.append(client)
    return clients


class RemoteLog:
    """Pulls stag log entries from the aggregator's Replication service (its internal port), as
    keyholder `identity`; the aggregator key comes from the transcript once there is one."""

    def __init__(self, address: str, identity: SigningIdentity, timeout_seconds: float = 120.0) -> None:
        self._stub = keyholder_pb2_grpc.ReplicationStub(channel(address, INTERNAL_MESSAGE_LIMIT))
        self._identity = identity
        self.aggregator_key = b""  # set when the keyholder learns its committee
        self._timeout = timeout_seconds

    def read_log(self, stag_id: bytes, after_height: int, up_to_height: int) -> Iterable[tuple[LogEntry, bytes | None]]:
        body = codec.encode(LogRange(stag_id, after_height, up_to_height))
        credential = sign_call(self._identity, "ReadLog", self.aggregator_key, body, now_millis())
        request = keyholder_pb2.ReadLogRequest(
            stag_id=stag_id, after_height=after_height, up_to_height=up_to_height, credential=codec.encode(credential)
        )
        try:
            records = list(self._stub.ReadLog(request, timeout=self._timeout))
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        return [(codec.decode(LogEntry, record.entry), record.ciphertext or None) for record in records]
