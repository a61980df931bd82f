"""Typed calls between parties: one table entry per verb, read by every transport.

A `Call` names a verb once: the party's handler method, the RPC that carries it, and the record
types of its request and response. The ceremony's rounds (`stagpack.dkg.rounds`) and a
session's verbs (`stagpack.session.SESSION_CALLS`) are tables of calls; the in-process
transports, the gRPC client and the gRPC servicer are all driven from those tables, so a verb is
written down in one place and every caller gets a typed response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from stagpack import codec

Request = TypeVar("Request")
Response = TypeVar("Response")


@dataclass(frozen=True)
class Call(Generic[Request, Response]):
    """One verb: `handler` is the method a party implements, `rpc` the gRPC method name."""

    handler: str
    rpc: str
    request: type[Request]
    response: type[Response]

    def check_response(self, response: object) -> Response:
        """The handler's answer, checked to be this call's response type."""
        if not isinstance(response, self.response):
            raise TypeError(f"{self.handler} answered {type(response).__name__}, not {self.response.__name__}")
        return response

    def decode_request(self, data: bytes) -> Request:
        return codec.decode(self.request, data)

    def decode_response(self, data: bytes) -> Response:
        return codec.decode(self.response, data)


def serve(party: object, call: Call[Request, Response], request: Request) -> Response:
    """Run `call` on a party object that implements its handler."""
    handler = getattr(party, call.handler)
    return call.check_response(handler(request))


class Caller(Protocol):
    """Anything that carries calls to one party (in-process or over gRPC)."""

    def call(self, call: Call[Request, Response], request: Request) -> Response: ...


class Dispatcher(Protocol):
    """A party that answers calls: transports hand every request to `dispatch`."""

    def dispatch(self, call: Call[Request, Response], request: Request) -> Response: ...
