"""Per-operation costs of the FHE core for committees of 3, 5 and 7, next to the plaintext solver,
and threshold decryption with 0, 1 and 2 keyholders of a 3-of-5 committee offline.

    python -m stagpack.bench.core [--committees 3 5 7] [--offline 0 1 2] [--repeat 5] [--markdown FILE]

Everything is measured in this run on this machine (one OpenMP thread per process, as the
services run). The plaintext solver doing the same job is timed alongside, so the ratio says
what privacy costs. This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from stagpack.decrypt import circuit
from stagpack.decrypt import DecryptingParty, Quorum, family_members, quorum_family, reveal_hunt_check
from stagpack.dkg import DkgParty, LocalCeremonyPeer, run_ceremony
from stagpack.encoding import SlotLayout, Threshold
from stagpack.fhe import FheContext
from stagpack.identity import KeyholderIdentity, SigningIdentity
from stagpack.solver import PackSolver

LEVELS = 200
PACK = 150


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median wall time of `function` in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


@dataclass
class Row:
    operation: str
    fhe: str
    plaintext: str
    ratio: str


def committee(context: FheContext, parties: int, threshold: int) -> list[DecryptingParty]:
    identities = [KeyholderIdentity(f"bench-{index + 1}") for index in range(parties)]
    dkg_parties = [DkgParty(context, identity) for identity in identities]
    run_ceremony(
        context, [LocalCeremonyPeer(party, identity.public) for party, identity in zip(dkg_parties, identities)], threshold,
        aggregator_key=SigningIdentity().verify_key, coordinator_key=SigningIdentity().verify_key,
    )
    decrypting = []
    for index, party in enumerate(dkg_parties, start=1):
        assert party.outcome is not None
        decrypting.append(DecryptingParty(context, index, party.outcome.secret, party.outcome.backups, parties, threshold))
    return decrypting


def measure(parties: int, repeat: int, rng: np.random.Generator) -> tuple[list[Row], dict[str, float]]:
    context = FheContext()
    started = time.perf_counter()
    decrypting = committee(context, parties, parties)
    ceremony_seconds = time.perf_counter() - started
    layout = SlotLayout(context.slot_count, context.plaintext_modulus)
    joint = context.joint_key
    thresholds = [Threshold.count(int(others), levels=LEVELS) for others in rng.integers(0, LEVELS - 1, PACK)]

    # client: encode + encrypt + compress + canonical bytes
    encrypt_ms = timed(lambda: context.ciphertext_to_bytes(context.encrypt(joint, layout.thermometer(thresholds[0], LEVELS))), repeat)
    ciphertexts = [context.encrypt(joint, layout.thermometer(threshold, LEVELS)) for threshold in thresholds]
    wire_bytes = len(context.ciphertext_to_bytes(ciphertexts[0]))
    solver = PackSolver(LEVELS)
    solver_times = []
    for index, threshold in enumerate(thresholds):
        begun = time.perf_counter()
        solver.insert(index, threshold.level, threshold.weight)
        solver_times.append((time.perf_counter() - begun) * 1000)
    insert_ms = statistics.median(solver_times)

    # aggregator: one addition per submit
    add_ms = timed(lambda: context.add(ciphertexts[0], ciphertexts[1]), repeat * 20)
    pack_sum = context.add_many(ciphertexts)

    # keyholders: masks (two per keyholder per epoch), then the check circuit
    mask_ms = timed(lambda: context.encrypt(joint, rng.integers(0, context.plaintext_modulus, context.slot_count)), repeat)
    masks = [context.encrypt(joint, rng.integers(0, context.plaintext_modulus, context.slot_count)) for _ in range(parties)]
    mask_sum = circuit.sum_masks(context, masks)
    evaluate_ms = timed(lambda: circuit.hunt_check(context, pack_sum, mask_sum, LEVELS, 0), repeat)
    check = circuit.hunt_check(context, pack_sum, mask_sum, LEVELS, 0)
    digest_ms = timed(lambda: context.ciphertext_digest(check), repeat)

    # threshold decryption: partials (per keyholder), fusion into facts
    quorum = Quorum(parties, parties, tuple(range(1, parties + 1)))
    partial_ms = timed(lambda: decrypting[1].partials(check, [quorum]), repeat)
    shares = [share for party in decrypting for share in party.partials(check, [quorum])]
    fuse_ms = timed(lambda: reveal_hunt_check(context, check, [quorum], shares, LEVELS, 0), repeat)
    partial_bytes = len(shares[0].data)
    query_ms = timed(lambda: solver.greatest_fixed_point(), repeat * 20)

    # well-formedness of a new intendo (per intendo, per party) and per batch
    seed = b"bench-seed"
    terms_ms = timed(lambda: circuit.validity_terms(context, ciphertexts[0], 1, LEVELS, seed, b"intendo"), repeat)
    terms = [circuit.validity_terms(context, ciphertext, 1, LEVELS, seed, b"%d" % index) for index, ciphertext in enumerate(ciphertexts[:16])]
    batch_ms = timed(lambda: circuit.validity_check(context, [terms], mask_sum), max(repeat // 2, 1))

    epoch_keyholder_ms = 2 * mask_ms + evaluate_ms + digest_ms + partial_ms
    rows = [
        Row("encrypt one intendo (client: encode, encrypt, compress, serialize)", f"{encrypt_ms:.1f} ms", f"{insert_ms * 1000:.1f} µs (solver insert)", f"{encrypt_ms / insert_ms:,.0f}×"),
        Row("intendo size on the wire", f"{wire_bytes / 1024:.0f} KiB", "8 B (threshold, weight)", f"{wire_bytes / 8:,.0f}×"),
        Row("add an intendo to the pack (aggregator)", f"{add_ms:.2f} ms", f"{insert_ms * 1000:.1f} µs", f"{add_ms / insert_ms:,.0f}×"),
        Row("fresh mask (per keyholder, two per epoch)", f"{mask_ms:.1f} ms", "—", "—"),
        Row("hunt check circuit (every party recomputes)", f"{evaluate_ms:.1f} ms", f"{query_ms * 1000:.1f} µs (solver query)", f"{evaluate_ms / query_ms:,.0f}×"),
        Row("partial decryption, per keyholder", f"{partial_ms:.1f} ms, {partial_bytes / 1024:.0f} KiB", "—", "—"),
        Row(f"fusion into facts ({parties} partials)", f"{fuse_ms:.1f} ms", "—", "—"),
        Row("epoch, per keyholder (masks, check, digest, partial)", f"{epoch_keyholder_ms:.0f} ms", f"{query_ms * 1000:.1f} µs", f"{epoch_keyholder_ms / query_ms:,.0f}×"),
        Row("validity terms, per new intendo per party", f"{terms_ms:.1f} ms", "—", "—"),
        Row("validity check of a 16-intendo batch", f"{batch_ms:.0f} ms", "—", "—"),
    ]
    return rows, {"ceremony_seconds": ceremony_seconds, "epoch_keyholder_ms": epoch_keyholder_ms}


def measure_offline(offline_counts: list[int], repeat: int, rng: np.random.Generator, parties: int = 5, threshold: int = 3) -> list[str]:
    """Decrypting one hunt check with the first k keyholders of a t-of-n committee offline.

    Every live keyholder computes its partials for the prescribed family of quorums at the same
    time (over gRPC they run in parallel), so the latency is the slowest keyholder's partials
    plus fusing every quorum of the family into facts and checking that they agree. The row
    with nobody offline is the baseline of the ratio column."""
    context = FheContext()
    decrypting = committee(context, parties, threshold)
    ciphertexts = [
        context.encrypt(context.joint_key, circuit.layout_of(context).thermometer(Threshold.count(int(others), levels=LEVELS), LEVELS))
        for others in rng.integers(0, LEVELS - 1, 16)
    ]
    masks = [context.encrypt(context.joint_key, rng.integers(0, context.plaintext_modulus, context.slot_count)) for _ in range(2)]
    check = circuit.hunt_check(context, context.add_many(ciphertexts), circuit.sum_masks(context, masks), LEVELS, 0)
    rows = []
    baseline = None
    for offline in offline_counts:
        live = frozenset(range(offline + 1, parties + 1))
        family = quorum_family(parties, threshold, live)
        members = family_members(family)
        per_keyholder = {index: timed(partial(decrypting[index - 1].partials, check, family), repeat) for index in members}
        shares = [share for index in members for share in decrypting[index - 1].partials(check, family)]
        fuse_ms = timed(lambda: reveal_hunt_check(context, check, family, shares, LEVELS, 0), repeat)
        slowest = max(per_keyholder.values())
        latency = slowest + fuse_ms
        baseline = baseline if baseline is not None else latency
        released = sum(len(share.data) for share in shares)
        rows.append(
            f"| {offline} ({', '.join(map(str, range(1, offline + 1))) or 'none'}) | "
            f"{' '.join('{' + ','.join(map(str, quorum.members)) + '}' for quorum in family)} | "
            f"{len(shares)} ({released / 2**20:.1f} MiB) | {slowest:.1f} ms | {fuse_ms:.1f} ms | {latency:.1f} ms | {latency / baseline:.2f}× |"
        )
    return [
        f"### Threshold decryption of one hunt check, {threshold}-of-{parties}, with keyholders offline",
        "",
        "| offline | family of quorums | partials (bytes) | slowest keyholder's partials | fuse every quorum, check agreement | latency | vs none offline |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--committees", type=int, nargs="*", default=[3, 5, 7], help="committee sizes for the per-operation tables (default 3 5 7; none: skip)")
    parser.add_argument("--offline", type=int, nargs="*", default=[0, 1, 2], help="keyholders of a 3-of-5 committee offline (default 0 1 2; none: skip)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    if any(count < 0 or count > 2 for count in options.offline):
        parser.error("--offline counts must be between 0 and 2 (a 3-of-5 committee needs 3 live keyholders)")
    if any(parties < 1 for parties in options.committees):
        parser.error("--committees sizes must be at least 1")
    rng = np.random.default_rng(options.seed)
    lines = [
        f"Pack of {PACK} count intendos, L = {LEVELS} levels; medians of {options.repeat} runs; "
        "one OpenMP thread; BFV ring 16384, 3 RNS towers on the wire, noise flooding.",
        "",
    ]
    for parties in options.committees:
        print(f"measuring a committee of {parties} …", file=sys.stderr, flush=True)
        rows, extra = measure(parties, options.repeat, rng)
        lines += [
            f"### Committee of {parties} (key ceremony in one process: {extra['ceremony_seconds']:.1f} s)",
            "",
            "| operation | FHE | plaintext solver | ratio |",
            "|---|---|---|---|",
            *[f"| {row.operation} | {row.fhe} | {row.plaintext} | {row.ratio} |" for row in rows],
            "",
        ]
    if options.offline:
        print("measuring decryption with keyholders offline …", file=sys.stderr, flush=True)
        lines += measure_offline(options.offline, options.repeat, rng)
    text = "\n".join(lines)
    print(text)
    if options.markdown:
        with open(options.markdown, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
