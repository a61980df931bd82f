"""An in-process transport for the ceremony: every record crosses a byte boundary (encode, then
decode) exactly as it would over the network, so tests exercise the production protocol code."""

from __future__ import annotations

from stagpack.calls import Call, Dispatcher, Request, Response
from stagpack.codec import across
from stagpack.identity import PublicIdentity


class LocalCeremonyPeer:
    """Carries the rounds of `stagpack.dkg.rounds` to a party in this process: a bare
    `DkgParty`, or a keyholder node that persists the outcome."""

    def __init__(self, party: Dispatcher, identity: PublicIdentity) -> None:
        self.party = party
        self._identity = identity

    def identity(self) -> PublicIdentity:
        return self._identity

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        return across(self.party.dispatch(call, across(request)))
