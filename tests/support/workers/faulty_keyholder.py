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

The same `partials` hook decrypts the ceremony's self-test (the node hands it to its
`DkgParty`), so in the `everything` scope the self-test partials are faulty too.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Callable, Sequence

import numpy as np

from stagpack.decrypt import DecryptingParty, PartialShare, Quorum
from stagpack.edge.config import KeyholderConfig, configure_logging, load
from stagpack.edge.keyholder_service import KeyholderService
from stagpack.edge.rpc import serve_until_signalled
from stagpack.fhe import Ciphertext, FheContext

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

    def __init__(self, party: DecryptingParty, fault: Fault, active: Callable[[], bool]) -> None:
        self.party = party
        self.fault = fault
        self.active = active

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        if not self.active():
            return self.party.partials(ciphertext, family, own=own)
        return [
            PartialShare(share.producer, share.on_behalf_of, share.quorum, self.fault(share.data, ciphertext))
            if share.quorum == ()
            else share
            for share in self.party.partials(ciphertext, family, own=own)
        ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="faulty_keyholder.py")
    parser.add_argument("kind", choices=["keyholder"])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--config", required=True)
    options = parser.parse_args(argv)
    config = load(KeyholderConfig, options.config, "STAGPACK_KEYHOLDER")
    configure_logging(config.logging, f"keyholder[{config.name}]")
    if SCOPE not in ("sessions", "everything"):
        raise SystemExit(f"unknown STAGPACK_TEST_FAULT_SCOPE {SCOPE!r}")
    context = FheContext()
    fault = Fault(context, FAULT)
    holder: list[KeyholderService] = []

    def partials(party: DecryptingParty) -> FaultyPartials:
        # the same hook serves the ceremony's self-test and the sessions; in the `sessions`
        # scope the keyholder is honest until its key is loaded
        return FaultyPartials(party, fault, lambda: SCOPE == "everything" or bool(holder and holder[0].node.ready))

    service = KeyholderService(config, context, partials=partials)
    holder.append(service)
    service.start()
    serve_until_signalled(service.server, service.close)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
