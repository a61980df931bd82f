"""Write tests/vectors/shield.json: known-answer vectors for stagpack.shield.

Deterministic functions (the Ed25519 secret scalar, hashing to scalars and points, key images,
Lagrange coefficients) are recorded with their outputs; randomized proofs (a designated-verifier
proof, a ring signature with its identity ciphertext, a decryption share) are recorded as one
valid instance each, which must keep verifying. Every expected output was cross-checked when
written: secret scalars against libsodium's own Ed25519 public keys, the ring signature's
ciphertext by decrypting it to the signer.

    .venv/bin/python tools/generate_shield_vectors.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.signing

from stagpack import codec
from stagpack.shield import dvp, elgamal, ring
from stagpack.shield.group import ORDER, Point, Scalar, hash_to_point, hash_to_scalar, lagrange_at_zero

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "shield.json"
TORSION = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")  # order 8


def seed(label: str) -> bytes:
    return hashlib.sha256(b"stagpack shield vector " + label.encode()).digest()


def main() -> None:
    import nacl.bindings

    seeds = [seed(f"member {index}") for index in range(4)]
    keys = [bytes(nacl.signing.SigningKey(value).verify_key) for value in seeds]
    secrets = [Scalar.from_signing_seed(value) for value in seeds]
    assert all(Point.base_times(secret).to_bytes() == key for secret, key in zip(secrets, keys))
    stag_id = seed("stag")
    vectors: dict[str, object] = {
        "secret_scalars": [
            {"seed": value.hex(), "scalar": secret.to_bytes().hex(), "public_key": key.hex()}
            for value, secret, key in zip(seeds, secrets, keys)
        ],
        "hash_to_scalar": [
            {"domain": domain, "parts": [part.hex() for part in parts], "scalar": hash_to_scalar(domain, *parts).to_bytes().hex()}
            for domain, parts in [("dvp", ()), ("dvp", (b"",)), ("ring", (b"a", b"bc")), ("ring", (b"ab", b"c"))]
        ],
        "hash_to_point": [
            {"domain": domain, "parts": [part.hex() for part in parts], "point": hash_to_point(domain, *parts).to_bytes().hex()}
            for domain, parts in [("key-image", (stag_id, keys[0])), ("key-image", (stag_id, keys[1]))]
        ],
        "key_images": [
            {"stag_id": stag_id.hex(), "seed": value.hex(), "key_image": ring.key_image(stag_id, key, secret).hex()}
            for value, key, secret in zip(seeds, keys, secrets)
        ],
        "lagrange": [
            {"index": index, "indices": indices, "coefficient": lagrange_at_zero(index, indices).to_bytes().hex()}
            for index, indices in [(1, [1, 2]), (2, [1, 2]), (3, [1, 3, 5])]
        ],
        "non_canonical_scalars": [value.to_bytes(32, "little").hex() for value in (ORDER, ORDER + 1, 2**256 - 1)],
        "invalid_points": {
            "identity": (b"\x01" + bytes(31)).hex(),
            "order_8": TORSION.hex(),
            "key_plus_torsion": nacl.bindings.crypto_core_ed25519_add(keys[0], TORSION).hex(),
            "non_canonical_y": (b"\xed" + b"\xff" * 30 + b"\x7f").hex(),
            "not_on_curve": (b"\x02" + bytes(31)).hex(),
        },
    }
    # A 2-of-3 identity key, a ring signature by member 2 with its identity encrypted, two shares.
    context = seed("ceremony")
    dealings = [elgamal.deal(context, dealer, 2, 3) for dealer in (1, 2, 3)]
    key = elgamal.IdentityKey.combine(context, [dealing.commitment for dealing in dealings], 2)
    shares = {index: elgamal.combine_shares(index, [dealing.shares[index] for dealing in dealings]) for index in (1, 2, 3)}
    members = ring.Ring(stag_id, keys)
    message = b"intendo statement"
    signature = ring.sign(members, message, keys[2], secrets[2], key.public_key)
    assert signature.identity is not None
    decryption = [elgamal.decryption_share(index, shares[index], signature.identity) for index in (1, 3)]
    assert elgamal.decrypt(key, signature.identity, decryption) == keys[2]
    claim = dvp.SignedIntendoClaim(dvp.CONTEXT, stag_id, seed("intendo"), keys[2], signature.key_image, (keys[0], keys[1]), "at least 3 others")
    vectors["threshold_identity"] = {
        "context": context.hex(),
        "commitments": [codec.encode(dealing.commitment).hex() for dealing in dealings],
        "identity_key": codec.encode(key).hex(),
        "ring": [value.hex() for value in keys],
        "stag_id": stag_id.hex(),
        "message": message.hex(),
        "ring_signature": codec.encode(signature).hex(),
        "decryption_shares": [codec.encode(share).hex() for share in decryption],
        "signer": keys[2].hex(),
    }
    vectors["designated_proof"] = {
        "claim": codec.encode(claim).hex(),
        "proof": codec.encode(dvp.prove(claim, secrets[2])).hex(),
        "forged": codec.encode(dvp.forge(claim, [secrets[0], secrets[1]])).hex(),
    }
    OUT.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
