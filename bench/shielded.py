"""What shielded participation costs (DESIGN.md §10.4, §10.5).

- ring signatures: signing and verifying an anonymous intendo's authorization (the linkable
  ring signature with its encrypted identity, `stagpack.shield.ring`) against the ring size,
  and its bytes; next to one Ed25519 signature and its check, timed in the same run (the
  ordinary intendo's authorization).
- proofs: a designated-verifier proof for k verifiers, proved and verified, and its bytes; a
  keyholder's identity decryption share with its proof, and combining t of them.
- ingest: one in-process deployment, an ordinary count stag and an anonymous one (its ring the
  stated size), the same number of prepared intendos each: `Aggregator.submit` per intendo and
  a replica's apply of the whole log, anonymous next to ordinary.

`python -m stagpack.bench.shielded` prints the tables.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stagpack import codec
from stagpack.app.inprocess import InProcessDeployment
from stagpack.encoding import StagKind, Threshold
from stagpack.identity import SigningIdentity, verify_signature
from stagpack.pack import MemoryCiphertexts, PackState
from stagpack.participant.sdk import prepare_intendo
from stagpack.shield import dvp, elgamal, ring
from stagpack.shield.group import Scalar
from stagpack.stag import ManualClock, StagSpec

from stagpack.bench.harness import EPOCH_MILLIS, Progress


@dataclass(frozen=True)
class RingCost:
    members: int
    sign_ms: float
    verify_ms: float
    bytes: int
    ed25519_sign_ms: float  # the baseline, same run
    ed25519_verify_ms: float


@dataclass(frozen=True)
class ProofCost:
    what: str
    prove_ms: float
    verify_ms: float
    bytes: int


@dataclass(frozen=True)
class AnonymousIngestCost:
    ring: int  # 0: the ordinary stag
    intendos: int
    submit_ms: float  # median per intendo through Aggregator.submit
    apply_ms: float  # a replica applying the stag's log, per intendo
    envelope_bytes: int


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure_rings(sizes: tuple[int, ...], repeat: int, progress: Progress) -> list[RingCost]:
    stag_id = bytes(32)
    key = elgamal.IdentityKey.combine(b"bench", [elgamal.deal(b"bench", 1, 1, 1).commitment], 1)
    signer = SigningIdentity()
    secret = Scalar.from_signing_seed(signer.seed)
    message = b"m" * 32
    ed_sign = _median_ms(lambda: signer.sign("intendo", message), 50)
    signature = signer.sign("intendo", message)
    ed_verify = _median_ms(lambda: verify_signature(signer.verify_key, "intendo", message, signature), 50)
    costs = []
    for size in sizes:
        progress.note(f"ring signatures: {size} members")
        members = ring.Ring(stag_id, [signer.verify_key] + [SigningIdentity().verify_key for _ in range(size - 1)])
        signed = ring.sign(members, message, signer.verify_key, secret, key.public_key)
        sign_ms = _median_ms(lambda: ring.sign(members, message, signer.verify_key, secret, key.public_key), repeat)
        verify_ms = _median_ms(lambda: ring.verify(members, message, signed, key.public_key), repeat)
        costs.append(RingCost(size, sign_ms, verify_ms, len(codec.encode(signed)), ed_sign, ed_verify))
    return costs


def measure_proofs(verifier_counts: tuple[int, ...], repeat: int) -> list[ProofCost]:
    signer = SigningIdentity()
    secret = Scalar.from_signing_seed(signer.seed)
    costs = []
    for count in verifier_counts:
        verifiers = tuple(SigningIdentity().verify_key for _ in range(count))
        claim = dvp.SignedIntendoClaim(dvp.CONTEXT, bytes(32), bytes(32), signer.verify_key, b"", verifiers, "")
        proof = dvp.prove(claim, secret)
        costs.append(ProofCost(
            f"designated-verifier proof, {count} verifier{'s' if count > 1 else ''}",
            _median_ms(lambda: dvp.prove(claim, secret), repeat), _median_ms(lambda: dvp.verify(claim, proof), repeat),
            len(codec.encode(proof)),
        ))
    dealings = [elgamal.deal(b"bench", dealer, 2, 3) for dealer in (1, 2, 3)]
    key = elgamal.IdentityKey.combine(b"bench", [dealing.commitment for dealing in dealings], 2)
    shares = {index: elgamal.combine_shares(index, [dealing.shares[index] for dealing in dealings]) for index in (1, 2, 3)}
    members = ring.Ring(bytes(32), [signer.verify_key, SigningIdentity().verify_key])
    identity = ring.sign(members, b"m", signer.verify_key, secret, key.public_key).identity
    assert identity is not None
    share = elgamal.decryption_share(1, shares[1], identity)
    both = [share, elgamal.decryption_share(2, shares[2], identity)]
    costs.append(ProofCost(
        "identity decryption share with its Chaum–Pedersen proof",
        _median_ms(lambda: elgamal.decryption_share(1, shares[1], identity), repeat),
        _median_ms(lambda: elgamal.check_decryption_share(key, identity, share), repeat), len(codec.encode(share)),
    ))
    costs.append(ProofCost(
        "a member named: 2 shares checked and combined", 0.0, _median_ms(lambda: elgamal.decrypt(key, identity, both), repeat),
        len(codec.encode(share)) * 2,
    ))
    return costs


def measure_anonymous_ingest(
    deployment: InProcessDeployment, clock: ManualClock, count: int, ring_size: int, progress: Progress
) -> list[AnonymousIngestCost]:
    """`count` intendos into an ordinary count stag and into an anonymous one of `ring_size`."""
    aggregator = deployment.aggregator
    identity_key = aggregator.committee.require_identity_key().public_key
    members = [SigningIdentity() for _ in range(ring_size)]
    costs = []
    for anonymous in (False, True):
        progress.note(f"ingest: {'anonymous, ring ' + str(ring_size) if anonymous else 'ordinary'}")
        spec = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=count + 2, epoch_millis=EPOCH_MILLIS * 1000,
            opens_at_millis=clock(), title="shielded ingest",
            eligibility=tuple(member.verify_key for member in members) if anonymous else (), anonymous=anonymous,
        )
        aggregator.create_stag(spec)
        signers = members[:count] if anonymous else [SigningIdentity() for _ in range(count)]
        prepared = [
            prepare_intendo(deployment.context, deployment.context.joint_key, spec, signer, Threshold.count(count, levels=spec.levels),
                            identity_key=identity_key)
            for signer in signers
        ]
        samples, ciphertexts = [], {}
        for intendo in prepared:
            started = time.perf_counter()
            aggregator.submit(intendo.envelope, intendo.ciphertext)
            samples.append(time.perf_counter() - started)
            ciphertexts[intendo.intendo_id] = intendo.ciphertext
        height = aggregator.status(spec.stag_id).height
        entries = list(aggregator.read_log(spec.stag_id, 0, height))
        replica = PackState(deployment.context, aggregator.committee, spec.stag_id)
        started = time.perf_counter()
        for entry, ciphertext in entries:
            replica.apply(entry, ciphertext, MemoryCiphertexts(ciphertexts))
        applied = (time.perf_counter() - started) / count
        costs.append(AnonymousIngestCost(
            ring_size if anonymous else 0, count, statistics.median(samples) * 1000, applied * 1000,
            len(codec.encode(prepared[0].envelope)),
        ))
    return costs


def main() -> None:
    progress = Progress(quiet=True)
    print("| ring members | sign | verify | bytes | × Ed25519 sign | × Ed25519 verify |")
    print("|---|---|---|---|---|---|")
    for cost in measure_rings((16, 64, 256, 1024), 3, progress):
        print(f"| {cost.members} | {cost.sign_ms:,.1f} ms | {cost.verify_ms:,.1f} ms | {cost.bytes:,} | "
              f"{cost.sign_ms / cost.ed25519_sign_ms:,.0f} | {cost.verify_ms / cost.ed25519_verify_ms:,.0f} |")
    print()
    print("| proof | prove | verify | bytes |")
    print("|---|---|---|---|")
    for proof in measure_proofs((1, 3, 8), 20):
        print(f"| {proof.what} | {proof.prove_ms:.2f} ms | {proof.verify_ms:.2f} ms | {proof.bytes} |")
    print()
    with tempfile.TemporaryDirectory(prefix="stagpack-bench-shielded-") as directory:
        clock = ManualClock()
        deployment = InProcessDeployment.start(Path(directory), 3, 2, clock=clock)
        rows = measure_anonymous_ingest(deployment, clock, 32, 256, progress)
    base = rows[0]
    print("| stag | intendos | submit per intendo | × ordinary | replica apply per intendo | × ordinary | envelope bytes |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {'anonymous, ring ' + str(row.ring) if row.ring else 'ordinary'} | {row.intendos} | {row.submit_ms:.1f} ms | "
              f"{row.submit_ms / base.submit_ms:.2f} | {row.apply_ms:.1f} ms | {row.apply_ms / base.apply_ms:.2f} | {row.envelope_bytes:,} |")


if __name__ == "__main__":
    main()
