"""A keyholder process whose partial decryptions are dishonest (test only).

    python faulty_keyholder.py keyholder serve --config FILE

STAGPACK_TEST_FAULT: `shift` adds a plaintext of its choice to its own partials (a crafted
attack: every partial stays well-formed and a fusion reveals exactly that much more);
`garbage` flips bits in its partials' coefficients (a faulty machine).
STAGPACK_TEST_FAULT_SCOPE: `sessions` (default) misbehaves only in decryption sessions, after an
honest key ceremony; `everything` also during the ceremony's self-test.
Everything else is the real keyholder.
"""

from __future__ import annotations

import os
import random

import numpy as np

from stagpack.app.cli import main
from stagpack.decrypt import threshold
from stagpack.fhe import Ciphertext, FheContext, PartialDecryption
from stagpack.keyholder import node

FAULT = os.environ.get("STAGPACK_TEST_FAULT", "shift")
SCOPE = os.environ.get("STAGPACK_TEST_FAULT_SCOPE", "sessions")


def shifted(context: FheContext, data: bytes) -> bytes:
    """Add Δ·m' to a partial: the lead term of the trivial ciphertext (Δ·m', 0) is Δ·m' plus
    noise, and partials add up. m' = 1 in every slot, so every revealed value moves by one."""
    native = context._context
    base = context.encrypt(context.joint_key, np.zeros(context.slot_count, dtype=np.int64))._native
    trivial = native.EvalAdd(native.EvalSub(base, base), context._plaintext(np.ones(context.slot_count, dtype=np.int64)))
    bump = context.public_lead_partial(Ciphertext(trivial))
    partial = context.partial_from_bytes(data)
    return context.partial_to_bytes(PartialDecryption(native.EvalAdd(partial._native, bump._native)))


def garbled(data: bytes) -> bytes:
    damaged = bytearray(data)
    for _ in range(8):
        position = random.randrange(len(damaged) // 4, len(damaged) - 400)
        damaged[position] ^= 1 << random.randrange(4)
    return bytes(damaged)


def corrupt(context: FheContext, share: threshold.PartialShare) -> threshold.PartialShare:
    if share.on_behalf_of != share.producer:
        return share  # only its own partials: the stand-ins stay honest
    data = shifted(context, share.data) if FAULT == "shift" else garbled(share.data)
    return threshold.PartialShare(share.producer, share.on_behalf_of, share.quorum, data)


if SCOPE == "everything":
    honest_partials = threshold.DecryptingParty.partials

    def dishonest_partials(self, ciphertext, family, *, own=True):  # type: ignore[no-untyped-def]
        return [corrupt(self._context, share) for share in honest_partials(self, ciphertext, family, own=own)]

    threshold.DecryptingParty.partials = dishonest_partials  # type: ignore[method-assign]
else:
    honest_sign = node.sign_partials
    contexts: list[FheContext] = []

    def dishonest_sign(sign, session, step, digests, shares_per_item):  # type: ignore[no-untyped-def]
        context = contexts[0]
        return honest_sign(sign, session, step, digests, [[corrupt(context, s) for s in shares] for shares in shares_per_item])

    original_init = node.KeyholderNode.__init__

    def remember_context(self, context, *args, **kwargs):  # type: ignore[no-untyped-def]
        contexts.append(context)
        original_init(self, context, *args, **kwargs)

    node.KeyholderNode.__init__ = remember_context  # type: ignore[method-assign]
    node.sign_partials = dishonest_sign

raise SystemExit(main())
