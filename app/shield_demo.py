"""`stagpack demo --shielded`: the seed's own example, a professor who will come out if colleagues do.

Eight colleagues are eligible for an anonymous count stag. Five sign; each intendo is ring-signed
among all eight and carries its signer's key encrypted to the committee's identity key, so the
stag's status and log name nobody — the operator sees key images, unlinkable to anyone. When
the hunt fires, the keyholders release proven decryption shares for exactly its members: the
certificate names the four who fired, every one of them, and nobody else (the fifth, whose
condition was not met, stays hidden). Before the hunt the professor shows one friend, deniably,
that she signed: the friend's check passes, and a second friend, shown a proof of his own,
forges one naming a colleague instead, which checks just as well. Everything is compared with
the plaintext solver and with who really signed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from stagpack import codec
from stagpack.app.inprocess import InProcessDeployment
from stagpack.encoding import StagKind
from stagpack.identity import SigningIdentity
from stagpack.log import EntryKind
from stagpack.participant.proofs import check_intendo_proof, forge_intendo_proof, make_verifier_card, prove_intendo
from stagpack.participant.sdk import count_threshold, prepare_intendo
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

EPOCH_MILLIS = 10_000


def shielded_scene(started: float, directory: Path | None = None) -> list[str]:
    """Run the scene; returns the mismatches (none when all agrees)."""
    print("\nShielded participation: an anonymous stag names nobody until it hunts, and then every member.")
    scratch = tempfile.TemporaryDirectory(prefix="stagpack-shielded-") if directory is None else None
    where = Path(scratch.name) if scratch is not None else directory
    assert where is not None
    mismatches: list[str] = []
    try:
        clock = ManualClock()
        deployment = InProcessDeployment.start(where, 3, 2, clock=clock)
        aggregator = deployment.aggregator
        identity_key = aggregator.committee.require_identity_key()
        print(f"[{time.monotonic() - started:6.1f} s] a 2-of-3 committee; its ceremony also made a threshold ElGamal identity key "
              f"{identity_key.public_key.hex()[:16]}… (any {identity_key.threshold} keyholders decrypt, fewer learn nothing)")
        names = ["prof", "ana", "ben", "cho", "dev", "eve", "fay", "gus"]
        people = {name: SigningIdentity() for name in names}
        spec = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=8, epoch_millis=EPOCH_MILLIS,
            opens_at_millis=clock(), title="Come out publicly if at least 3 colleagues do",
            eligibility=tuple(people[name].verify_key for name in names), anonymous=True,
        )
        aggregator.create_stag(spec)
        print(f"  anonymous stag {spec.stag_id.hex()[:12]}…: eligible {', '.join(names)}; intendos are ring-signed among all 8")
        context = deployment.context
        solver = PackSolver(spec.levels)
        signer_of: dict[bytes, str] = {}  # intendo id -> who signed it (the demo knows)
        receipts = {}
        for name, others in (("prof", 3), ("ana", 3), ("ben", 2), ("cho", 3), ("dev", 6)):
            prepared = prepare_intendo(context, context.joint_key, spec, people[name], count_threshold(spec, others),
                                       identity_key=identity_key.public_key)
            aggregator.submit(prepared.envelope, prepared.ciphertext)
            solver.insert(prepared.intendo_id, others + 1, 1)
            signer_of[prepared.intendo_id] = name
            receipts[name] = prepared.envelope.statement
            print(f"  someone signs \"I will if at least {others} others do\" (it was {name}; the operator sees key image "
                  f"{prepared.envelope.statement.participant.hex()[:12]}…, {len(prepared.envelope.signature):,}-byte ring signature)")
        status = aggregator.status(spec.stag_id)
        logged = b"".join(codec.encode(entry) for entry, _ in aggregator.read_log(spec.stag_id, 0, status.height)
                          if entry.kind is not EntryKind.GENESIS)
        named = [name for name in names if people[name].verify_key in logged]
        print(f"  the stag's status: {status.live_intendos} live intendos; its log names: {', '.join(named) or 'nobody'}")
        if named:
            mismatches.append(f"shielded: the log names {named} before any hunt")

        # Before the hunt, the professor shows a friend (fay) that she signed; gus is shown one too.
        # Each friend gave her a verifier card (its key signed by itself: it could forge proofs).
        to_fay = prove_intendo(people["prof"], receipts["prof"], [make_verifier_card(people["fay"])], anonymous=True,
                               claimed_threshold="I come out if 3 others do")
        check_intendo_proof(to_fay, people["fay"].verify_key)
        print(f"  prof → fay: a {to_fay.proof.size}-byte designated-verifier proof; fay checks it: valid, prof signed "
              f"(her claim \"{to_fay.claim.claimed_threshold}\" is attached, not proven)")
        to_gus = prove_intendo(people["prof"], receipts["prof"], [make_verifier_card(people["gus"])], anonymous=True)
        forged = forge_intendo_proof([people["gus"]], receipts["prof"], people["eve"].verify_key, anonymous=True)
        check_intendo_proof(to_gus, people["gus"].verify_key)
        check_intendo_proof(forged, people["gus"].verify_key)
        print("  gus forges, with his own key alone, a proof that eve signed the same intendo: it checks exactly like "
              "prof's real one, so nothing gus shows anyone is evidence against prof")

        clock.advance(EPOCH_MILLIS)
        aggregator.run_due(spec.stag_id)
        expected = solver.hunt()
        hunts = aggregator.hunts(spec.stag_id)
        if expected is None or len(hunts) != 1 or hunts[0].outcome.member_ids != expected.members:
            mismatches.append("shielded: the hunt differs from the plaintext solver")
            return mismatches
        certificate = hunts[0]
        revealed = [next(name for name in names if people[name].verify_key == key) for key in certificate.revealed]
        truth = [signer_of[intendo_id] for intendo_id in certificate.outcome.member_ids]  # equal to the solver's (checked above)
        print(f"[{time.monotonic() - started:6.1f} s] the hunt fired at level {certificate.outcome.level}; the certificate names, "
              f"by {len(certificate.identities[0].shares)} keyholders' proven decryptions each: {', '.join(revealed)}")
        hidden = sorted(set(signer_of.values()) - set(revealed))
        print(f"  still hidden: {', '.join(hidden)} (signed, condition not met); the other {len(names) - len(signer_of)} "
              "eligible colleagues never signed, and nobody can tell them apart")
        if revealed != truth:
            mismatches.append(f"shielded: the hunt named {revealed}, but {truth} signed its intendos")
        print("  — the plaintext solver and the true signers agree ✓" if not mismatches else f"  — {len(mismatches)} MISMATCHES")
        return mismatches
    finally:
        if scratch is not None:
            scratch.cleanup()
