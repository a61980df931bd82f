"""How the aggregator reaches keyholders: one client per keyholder.

`KeyholderClient` is the transport interface; `LocalKeyholder` runs a `KeyholderNode` in this
process, passing every record through its byte encoding as a network transport would. The gRPC
client (`stagpack.aggregator.remote`) implements the same interface.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from stagpack import codec
from stagpack.errors import StagpackError
from stagpack.keyholder.node import KeyholderNode
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

Record = TypeVar("Record")


class KeyholderUnreachable(StagpackError):
    """The keyholder did not answer (down, partitioned, timed out). Others may stand in."""


class KeyholderClient(Protocol):
    index: int

    def open_session(self, session: SessionRef) -> SignedCommitment: ...
    def reveal(self, request: RevealRequest) -> MaskReveal: ...
    def decrypt(self, request: DecryptRequest) -> DecryptResponse: ...
    def certify(self, request: CertifyRequest) -> CertifyResponse: ...


def _across(record: Record) -> Record:
    return codec.decode(type(record), codec.encode(record))


class LocalKeyholder:
    """A keyholder in this process. `online = False` makes it behave as unreachable."""

    def __init__(self, node: KeyholderNode) -> None:
        self.node = node
        self.index = node.index
        self.online = True

    def _check(self) -> None:
        if not self.online:
            raise KeyholderUnreachable(f"keyholder {self.index} is offline")

    def open_session(self, session: SessionRef) -> SignedCommitment:
        self._check()
        return _across(self.node.open_session(_across(session)))

    def reveal(self, request: RevealRequest) -> MaskReveal:
        self._check()
        return _across(self.node.reveal(_across(request)))

    def decrypt(self, request: DecryptRequest) -> DecryptResponse:
        self._check()
        return _across(self.node.decrypt(_across(request)))

    def certify(self, request: CertifyRequest) -> CertifyResponse:
        self._check()
        return _across(self.node.certify(_across(request)))
