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
from stagpack.calls import Call, Request, Response
from stagpack.dkg import CommitteeBundle
from stagpack.edge.rpc import INTERNAL_MESSAGE_LIMIT, channel, error_from_rpc
from stagpack.errors import IntegrityFailure, InvalidInput, KeyholderUnreachable, StagpackError
from stagpack.identity import PublicIdentity
from stagpack.log import LogEntry
from stagpack.v1 import keyholder_pb2, keyholder_pb2_grpc

log = logging.getLogger("stagpack.edge")

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RemoteKeyholder:
    """A keyholder over gRPC: a `KeyholderClient` for sessions and a `CeremonyPeer`."""

    def __init__(self, address: str, index: int = 0, timeout_seconds: float = 300.0) -> None:
        self.address = address
        self.index = index
        self._stub = keyholder_pb2_grpc.KeyholderStub(channel(address, INTERNAL_MESSAGE_LIMIT))
        self._timeout = timeout_seconds

    def _failure(self, error: grpc.RpcError) -> StagpackError:
        if error.code() in _UNREACHABLE:
            return KeyholderUnreachable(f"keyholder at {self.address}: {error.details()}")
        return error_from_rpc(error)

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        method = getattr(self._stub, call.rpc)
        try:
            response = method(keyholder_pb2.Record(body=codec.encode(request)), timeout=self._timeout)
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
        return PublicIdentity(info.name, bytes(info.verify_key), bytes(info.box_key))


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
