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

from stagpack.calls import Call, Request, Response
from stagpack.codec import across
from stagpack.errors import KeyholderUnreachable
from stagpack.identity import PublicIdentity
from stagpack.keyholder.node import KeyholderNode


class Interceptor(Protocol):
    """Sees one call to `keyholder` before it is delivered; returns what the caller gets (usually
    `forward(request)`), or raises (`KeyholderUnreachable` to play a dropped connection)."""

    def __call__(self, keyholder: LocalKeyholder, call: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any: ...


class LocalKeyholder:
    """A keyholder in this process. `online = False` makes it behave as unreachable."""

    def __init__(self, node: KeyholderNode) -> None:
        self.node = node
        self.online = True
        self.interceptors: list[Interceptor] = []

    @property
    def index(self) -> int:
        return self.node.index

    def identity(self) -> PublicIdentity:
        return self.node.public_identity

    def call(self, call: Call[Request, Response], request: Request) -> Response:
        def deliver(request: Request) -> Response:
            if not self.online:
                raise KeyholderUnreachable(f"keyholder {self.index} is offline")
            return across(self.node.dispatch(call, across(request)))

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
