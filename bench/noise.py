"""What a crafted noise that passes the noise test can still do (docs/parameters.md).

Builds the production circuits on a one-keyholder committee (so a whole key can measure noise,
which no deployment ever holds) and adds a constant κ to one input's c0 — a mask, or an
intendo — for κ at the bounds the noise test certifies (docs/protocol.md §3a). Prints the noise
of the hunt check and of the validity check next to the flooding of their level.

    python -m stagpack.bench.noise [--intendos 20] [--levels 64]
"""

from __future__ import annotations

import argparse

import numpy as np
import numpy.typing as npt

from stagpack.decrypt import circuit
from stagpack.dkg import DkgParty, LocalCeremonyPeer, run_ceremony
from stagpack.encoding import SlotLayout, Threshold
from stagpack.fhe import Ciphertext, FheContext, SecretKeyShare
from stagpack.identity import KeyholderIdentity, SigningIdentity

CRAFTED_BITS = (74, 93, 107, 133)


def solo_key(context: FheContext) -> SecretKeyShare:
    """The whole secret key of a one-keyholder committee, from a real (one-party) ceremony."""
    coordinator, aggregator = SigningIdentity(), SigningIdentity()
    identity = KeyholderIdentity("noise-bench")
    party = DkgParty(context, identity, coordinator_key=coordinator.verify_key)
    run_ceremony(
        context, [LocalCeremonyPeer(party, identity.public)], 1, aggregator_key=aggregator.verify_key,
        coordinator_key=coordinator.verify_key,
    )
    assert party.outcome is not None
    return party.outcome.secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intendos", type=int, default=20, help="counted intendos in the pack (default 20)")
    parser.add_argument("--levels", type=int, default=64, help="levels L of the stag (default 64)")
    options = parser.parse_args(argv)
    context = FheContext()
    secret = solo_key(context)
    layout = SlotLayout(context.slot_count, context.plaintext_modulus)
    levels = options.levels
    rng = np.random.default_rng(5)

    def encrypt(values: npt.NDArray[np.int64]) -> Ciphertext:
        return context.encrypt(context.joint_key, values)

    def mask() -> Ciphertext:
        return encrypt(rng.integers(1, context.plaintext_modulus, context.slot_count))

    def crafted(ciphertext: Ciphertext, bits: int) -> Ciphertext:
        return context.ciphertext_from_bytes(context.with_added_noise(context.ciphertext_to_bytes(ciphertext), 1 << bits))

    intendos = [
        encrypt(layout.thermometer(Threshold.count(int(rng.integers(0, levels - 2)), levels=levels), levels))
        for _ in range(options.intendos)
    ]
    seed = circuit.session_seed(b"noise bench", [b"commitment"])

    def noise(output: Ciphertext) -> float:
        return context.measure_noise_bits(output, secret)

    def hunt_check(pack: list[Ciphertext], check_mask: Ciphertext) -> Ciphertext:
        return circuit.hunt_check(context, context.compress(context.add_many(pack)), context.compress(check_mask), levels, 0)

    def validity(batch: list[Ciphertext]) -> Ciphertext:
        terms = [circuit.validity_terms(context, item, 1, levels, seed, b"%d" % index) for index, item in enumerate(batch)]
        return circuit.validity_check(context, [terms], mask())

    print(f"flooding: {context.flooding_bits(context.evaluation_towers):.1f} bits at {context.evaluation_towers} towers, "
          f"{context.flooding_bits(context.input_towers):.1f} at {context.input_towers}")
    print("| κ in one input | hunt check, κ in a mask | hunt check, κ in an intendo | validity batch, κ in an intendo |")
    print("|---|---|---|---|")
    batch = intendos[:4]
    print(f"| none (honest) | {noise(hunt_check(intendos, mask())):.1f} | {noise(hunt_check(intendos, mask())):.1f} "
          f"| {noise(validity(batch)):.1f} |")
    for bits in CRAFTED_BITS:
        noisy = crafted(intendos[0], bits)
        print(f"| 2^{bits} | {noise(hunt_check(intendos, crafted(mask(), bits))):.1f} "
              f"| {noise(hunt_check([noisy, *intendos[1:]], mask())):.1f} | {noise(validity([noisy, *batch[1:]])):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
