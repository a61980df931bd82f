"""Typed calls between parties: one table entry per verb, read by every transport.

A `Call` names a verb once: the party's handler method, the RPC that carries it, and the record
types of its request and response. The ceremony's rounds (`stagpack.dkg.rounds`) and a
session's verbs (`stagpack.session.SESSION_CALLS`) are tables of calls; the in-process
transports, the gRPC client and the gRPC servicer are all driven from those tables, so a verb is
written down in one place and every caller gets a typed response.

Every call between parties carries a `SignedCredential`: the caller's key, the callee it is
meant for, the time, a nonce and the digest of the request, signed by the caller. A callee
serves only the callers its committee transcript (or configuration) names, and a `ReplayGuard`
refuses a credential presented twice (DESIGN.md §4, who may ask).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from stagpack import codec
from stagpack.errors import InvalidInput, InvalidSignature, Unauthenticated
from stagpack.identity import SigningIdentity, verify_signature

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


# --- who is calling --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCredential:
    """Who sends a call, to whom and when, bound to the exact request: the caller signs it."""

    WIRE_NAME = "stagpack.CallCredential.v1"

    rpc: str
    caller: bytes  # the caller's Ed25519 verify key
    audience: bytes  # the callee's Ed25519 verify key: a credential serves one callee only
    issued_at_millis: int
    nonce: bytes
    request: bytes  # SHA-256 of the request's canonical bytes


@dataclass(frozen=True)
class SignedCredential:
    WIRE_NAME = "stagpack.SignedCredential.v1"

    credential: CallCredential
    signature: bytes


CREDENTIAL_NONCE_BYTES = 16


def sign_call(identity: SigningIdentity, rpc: str, audience: bytes, request: bytes, now_millis: int) -> SignedCredential:
    """The credential `identity` attaches to a call of `rpc` carrying the canonical `request`."""
    credential = CallCredential(
        rpc, identity.verify_key, audience, now_millis, os.urandom(CREDENTIAL_NONCE_BYTES), hashlib.sha256(request).digest()
    )
    return SignedCredential(credential, identity.sign("call", codec.encode(credential)))


def read_credential(rpc: str, data: bytes) -> SignedCredential:
    """The credential a call carried, as sent: none, or bytes that are not one, is a caller that
    did not authenticate (Unauthenticated, not a malformed request)."""
    if not data:
        raise Unauthenticated(f"{rpc}: a call without a credential")
    try:
        return codec.decode(SignedCredential, data)
    except InvalidInput as error:
        raise Unauthenticated(f"{rpc}: the credential does not decode ({error})") from None


class ReplayGuard:
    """Remembers the credentials a callee accepted while they could still be presented again
    (their issue time within the clock skew), and refuses a second use."""

    def __init__(self, skew_millis: int) -> None:
        self._skew = skew_millis
        self._seen: dict[tuple[bytes, bytes], int] = {}
        self._lock = threading.Lock()

    def admit(self, signed: SignedCredential, rpc: str, audience: bytes, request: bytes, callers: frozenset[bytes], now_millis: int) -> bytes:
        """Verify the credential of a call of `rpc` to `audience` carrying `request`, from one of
        `callers`; return the caller's key. Raises Unauthenticated."""
        credential = signed.credential
        if credential.caller not in callers:
            raise Unauthenticated(f"{rpc}: the caller is not one this service serves")
        if credential.rpc != rpc or credential.audience != audience:
            raise Unauthenticated(f"{rpc}: the credential was issued for another call or callee")
        if credential.request != hashlib.sha256(request).digest():
            raise Unauthenticated(f"{rpc}: the credential signs another request")
        if abs(now_millis - credential.issued_at_millis) > self._skew:
            raise Unauthenticated(f"{rpc}: the credential is stale or from the future (clock skew above {self._skew} ms)")
        if len(credential.nonce) != CREDENTIAL_NONCE_BYTES:
            raise Unauthenticated(f"{rpc}: malformed credential nonce")
        try:
            verify_signature(credential.caller, "call", codec.encode(credential), signed.signature)
        except InvalidSignature:
            raise Unauthenticated(f"{rpc}: the credential's signature does not verify") from None
        key = (credential.caller, credential.nonce)
        with self._lock:
            for seen, expiry in list(self._seen.items()):
                if expiry < now_millis:
                    del self._seen[seen]
            if key in self._seen:
                raise Unauthenticated(f"{rpc}: this credential was already used (replay)")
            self._seen[key] = credential.issued_at_millis + 2 * self._skew
        return credential.caller
