"""An in-process transport to a keyholder: every call crosses a byte boundary (encode, then
decode) as it would over the network, so tests and the in-process demo run exactly the
production protocol code. It carries ceremony rounds and session calls alike.

Interceptors see every call on its way (the call, the request as the keyholder will decode it,
and a `forward` that delivers it): benchmarks record traffic with them, and tests use them to
play an unreliable network or a keyholder that drops out mid-session.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Protocol, Sequence

from stagpack import codec
from stagpack.calls import Call, Request, Response, sign_call
from stagpack.codec import across
from stagpack.errors import KeyholderUnreachable
from stagpack.identity import PublicIdentity, SigningIdentity
from stagpack.keyholder.node import KeyholderNode
from stagpack.stag import now_millis


class Interceptor(Protocol):
    """Sees one call to `keyholder` before it is delivered; returns what the caller gets (usually
    `forward(request)`), or raises (`KeyholderUnreachable` to play a dropped connection)."""

    def __call__(self, keyholder: LocalKeyholder, call: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any: ...


class LocalKeyholder:
    """A keyholder in this process, called as `caller` (the aggregator, or the ceremony's
    coordinator): every call carries a credential signed by it, as over the network.
    `online = False` makes the keyholder behave as unreachable."""

    def __init__(self, node: KeyholderNode, caller: SigningIdentity, clock: Callable[[], int] = now_millis) -> None:
        self.node = node
        self.online = True
        self.interceptors: list[Interceptor] = []
        self._caller = caller
        self._clock = clock

    @property
    def index(self) -> int:
        return self.node.index

    def identity(self) -> PublicIdentity:
        return self.node.public_identity

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        def deliver(request: Request) -> Response:
            if not self.online:
                raise KeyholderUnreachable(f"keyholder {self.index} is offline")
            body = codec.encode(request)
            credential = sign_call(self._caller, call.rpc, self.node.identity.verify_key, body, self._clock())
            return across(self.node.dispatch(call, call.decode_request(body), across(credential)))

        forward: Callable[[Any], Any] = deliver
        for interceptor in reversed(self.interceptors):
            forward = _bind(interceptor, self, call, forward)
        return call.check_response(forward(request))


def _bind(interceptor: Interceptor, keyholder: LocalKeyholder, call: Call[Any, Any], forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda request: interceptor(keyholder, call, request, forward)


@contextlib.contextmanager
def intercepting(keyholders: Sequence[LocalKeyholder], interceptor: Interceptor) -> Iterator[None]:
    """Install `interceptor` on every keyholder for the duration of a `with` block."""
    for keyholder in keyholders:
        keyholder.interceptors.append(interceptor)
    try:
        yield
    finally:
        for keyholder in keyholders:
            keyholder.interceptors.remove(interceptor)
