"""How the aggregator reaches keyholders: one client per keyholder, carrying the calls of
`stagpack.session.SESSION_CALLS`.

Implementations: `stagpack.keyholder.local.LocalKeyholder` (in-process) and
`stagpack.edge.remote.RemoteKeyholder` (gRPC). Either raises `KeyholderUnreachable` when the
keyholder does not answer, and the keyholder's own error (a policy refusal, say) otherwise.
"""

from __future__ import annotations

from typing import Protocol

from stagpack.calls import Call, Request, Response


class KeyholderClient(Protocol):
    @property
    def index(self) -> int: ...

    def call(self, call: Call[Request, Response], request: Request) -> Response: ...
