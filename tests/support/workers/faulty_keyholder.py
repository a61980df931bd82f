"""A keyholder process whose partial decryptions are dishonest (test only).

    python faulty_keyholder.py keyholder serve --config FILE

It runs the real `KeyholderService` (real node, store, policy, gRPC servicer) and injects the
fault through the service's `partials` hook: the keyholder's partial source wraps its honest
`DecryptingParty` and rewrites its own partials (never the stand-ins) before the node signs them.

STAGPACK_TEST_FAULT: `shift` adds Δ·1 to its own partials (a crafted attack: every partial stays
well-formed and a fusion reveals every value plus one); `garbage` replaces a tower of its own
partials by random coefficients (a faulty machine: structurally valid, wrong to any fusion).
STAGPACK_TEST_FAULT_SCOPE: `sessions` (default) misbehaves only in decryption sessions, after an
honest key ceremony; `everything` also in the ceremony's self-test.

The ceremony's self-test is decrypted by a `DecryptingParty` that `DkgParty.handle_self_test`
builds itself, and `KeyholderNode` builds the `DkgParty`: no hook reaches it. In the `everything`
scope the process therefore serves the real service on a private port and puts a forwarding
front on the configured address, which passes every call through unchanged except the answer to
the self-test round, whose own partials it rewrites with the same fault: on the wire, exactly
what a keyholder whose self-test decryption is dishonest would send.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Any, Callable, Sequence

import grpc
import numpy as np

from stagpack import codec
from stagpack.decrypt import DecryptingParty, PartialShare, Quorum
from stagpack.dkg.messages import QuorumPartials, SelfTestResponse
from stagpack.dkg.party import evaluate_self_test
from stagpack.dkg.rounds import SELF_TEST
from stagpack.edge.config import KeyholderConfig, configure_logging, load
from stagpack.edge.keyholder_service import SERVICE_NAME, KeyholderService
from stagpack.edge.rpc import INTERNAL_MESSAGE_LIMIT, channel, new_server, serve_until_signalled
from stagpack.fhe import Ciphertext, FheContext
from stagpack.v1 import keyholder_pb2

FAULT = os.environ.get("STAGPACK_TEST_FAULT", "shift")
SCOPE = os.environ.get("STAGPACK_TEST_FAULT_SCOPE", "sessions")


class Fault:
    """What the keyholder does to one of its own partial decryptions of `ciphertext`."""

    def __init__(self, context: FheContext, kind: str) -> None:
        if kind not in ("shift", "garbage"):
            raise SystemExit(f"unknown STAGPACK_TEST_FAULT {kind!r}")
        self.context = context
        self.kind = kind
        self._seeds = itertools.count(1)

    def __call__(self, data: bytes, ciphertext: Ciphertext) -> bytes:
        context = self.context
        if self.kind == "shift":
            return context.shifted_partial(data, ciphertext, np.ones(context.slot_count, dtype=np.int64))
        return context.garbled_partial(data, next(self._seeds))


class FaultyPartials:
    """The keyholder's partial source in decryption sessions: honest stand-ins, faulty own
    partial (the node signs whatever it gets)."""

    def __init__(self, party: DecryptingParty, fault: Fault) -> None:
        self.party = party
        self.fault = fault

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        return [
            PartialShare(share.producer, share.on_behalf_of, share.quorum, self.fault(share.data, ciphertext))
            if share.quorum == ()
            else share
            for share in self.party.partials(ciphertext, family, own=own)
        ]


# -- the `everything` scope: a front that rewrites the self-test answer ---------------------------

SELF_TEST_METHOD = f"/{SERVICE_NAME}/{SELF_TEST.rpc}"


def faulty_self_test(request: bytes, response: bytes, fault: Fault) -> bytes:
    """The keyholder's self-test answer with its own partials (not its stand-ins) rewritten."""
    asked = SELF_TEST.decode_request(bytes(keyholder_pb2.Record.FromString(request).body))
    answer = SELF_TEST.decode_response(bytes(keyholder_pb2.Record.FromString(response).body))
    output = evaluate_self_test(fault.context, asked.test_ciphertexts)  # what every partial decrypts
    results = tuple(
        QuorumPartials(
            result.members, result.producer, result.on_behalf_of,
            tuple(
                fault(data, output) if on_behalf_of == result.producer else data
                for on_behalf_of, data in zip(result.on_behalf_of, result.partials)
            ),
        )
        for result in answer.partials
    )
    tampered = SelfTestResponse(answer.ceremony_id, answer.index, results)
    return keyholder_pb2.Record(body=codec.encode(tampered)).SerializeToString()


class Front(grpc.GenericRpcHandler):
    """Forwards every unary call (the keyholder's RPCs, health checks) to the real service."""

    def __init__(self, backend: str, fault: Fault) -> None:
        self._channel = channel(backend, INTERNAL_MESSAGE_LIMIT)
        self._fault = fault

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]
        if method.endswith("/Watch") or method.startswith("/grpc.reflection."):
            return None  # streaming: not needed by any caller of a test keyholder
        forward = self._channel.unary_unary(method)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                response: bytes = forward(request, timeout=context.time_remaining())
            except grpc.RpcError as error:
                context.abort(error.code(), error.details() or "")  # type: ignore[attr-defined]
            if method == SELF_TEST_METHOD:
                response = faulty_self_test(request, response, self._fault)
            return response

        return grpc.unary_unary_rpc_method_handler(handle)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="faulty_keyholder.py")
    parser.add_argument("kind", choices=["keyholder"])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--config", required=True)
    options = parser.parse_args(argv)
    config = load(KeyholderConfig, options.config, "STAGPACK_KEYHOLDER")
    configure_logging(config.logging, f"keyholder[{config.name}]")
    context = FheContext()
    fault = Fault(context, FAULT)
    partials: Callable[[DecryptingParty], Any] = lambda party: FaultyPartials(party, fault)  # noqa: E731
    if SCOPE == "sessions":
        service = KeyholderService(config, context, partials=partials)
        service.start()
        serve_until_signalled(service.server, service.close)
        return 0
    if SCOPE != "everything":
        raise SystemExit(f"unknown STAGPACK_TEST_FAULT_SCOPE {SCOPE!r}")
    front_address, config.listen = config.listen, "127.0.0.1:0"
    service = KeyholderService(config, context, partials=partials)
    service.start()
    front, _ = new_server(front_address, INTERNAL_MESSAGE_LIMIT)
    front.add_generic_rpc_handlers((Front(f"127.0.0.1:{service.port}", fault),))
    front.start()

    def stop() -> None:
        service.server.stop(5).wait()
        service.close()

    serve_until_signalled(front, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
