"""stagpack.shield: designated-verifier proofs, linkable ring signatures with an encrypted
identity, and the threshold ElGamal identity key (DESIGN.md §10.4, §10.5).

Known answers come from tests/vectors/shield.json (tools/generate_shield_vectors.py); the
properties are Hypothesis's. The independent oracles are libsodium's own Ed25519 keys (the
secret scalar must reproduce them), decryption back to the known signer, and the verifier's
equations run by a second party.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.bindings
import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagpack import codec
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.identity import SigningIdentity, check_verify_key
from stagpack.shield import dvp, elgamal, ring
from stagpack.shield.group import ORDER, Point, Scalar, hash_to_point, hash_to_scalar, lagrange_at_zero

pytestmark = pytest.mark.unit

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "shield.json").read_text())
STAG = hashlib.sha256(b"a stag").digest()
OTHER_STAG = hashlib.sha256(b"another stag").digest()
INTENDO = hashlib.sha256(b"an intendo").digest()
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Member:
    def __init__(self) -> None:
        self.identity = SigningIdentity()
        self.key = self.identity.verify_key
        self.secret = Scalar.from_signing_seed(self.identity.seed)


@pytest.fixture(scope="module")
def members() -> list[Member]:
    return [Member() for _ in range(5)]


@pytest.fixture(scope="module")
def committee() -> tuple[elgamal.IdentityKey, dict[int, Scalar]]:
    """A 2-of-3 identity key from the DKG's rounds, every share checked."""
    context = b"test ceremony"
    dealings = [elgamal.deal(context, dealer, 2, 3) for dealer in (1, 2, 3)]
    for dealing in dealings:
        elgamal.check_commitment(context, dealing.commitment, 2)
        for index in (1, 2, 3):
            elgamal.check_share(dealing.commitment, index, dealing.shares[index])
    key = elgamal.IdentityKey.combine(context, [dealing.commitment for dealing in dealings], 2)
    secrets = {index: elgamal.combine_shares(index, [dealing.shares[index] for dealing in dealings]) for index in (1, 2, 3)}
    return key, secrets


def flip(data: bytes, position: int, mask: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


# --- known answers ----------------------------------------------------------------------------


def test_the_secret_scalar_reproduces_libsodiums_public_key() -> None:
    for vector in VECTORS["secret_scalars"]:
        seed = bytes.fromhex(vector["seed"])
        secret = Scalar.from_signing_seed(seed)
        assert secret.to_bytes().hex() == vector["scalar"]
        assert Point.base_times(secret).to_bytes() == bytes(nacl.signing.SigningKey(seed).verify_key)
        assert bytes(nacl.signing.SigningKey(seed).verify_key).hex() == vector["public_key"]


def test_hashes_match_their_known_answers_and_are_length_prefixed() -> None:
    for vector in VECTORS["hash_to_scalar"]:
        parts = [bytes.fromhex(part) for part in vector["parts"]]
        assert hash_to_scalar(vector["domain"], *parts).to_bytes().hex() == vector["scalar"]
    by_parts = {tuple(vector["parts"]): vector["scalar"] for vector in VECTORS["hash_to_scalar"] if vector["domain"] == "ring"}
    assert by_parts[("61", "6263")] != by_parts[("6162", "63")]  # "a"+"bc" and "ab"+"c" differ
    for vector in VECTORS["hash_to_point"]:
        point = hash_to_point(vector["domain"], *(bytes.fromhex(part) for part in vector["parts"]))
        assert point.to_bytes().hex() == vector["point"]
        assert nacl.bindings.crypto_core_ed25519_is_valid_point(point.to_bytes())


def test_key_images_and_lagrange_coefficients_match_their_known_answers() -> None:
    for vector in VECTORS["key_images"]:
        seed = bytes.fromhex(vector["seed"])
        key = bytes(nacl.signing.SigningKey(seed).verify_key)
        image = ring.key_image(bytes.fromhex(vector["stag_id"]), key, Scalar.from_signing_seed(seed))
        assert image.hex() == vector["key_image"]
    for vector in VECTORS["lagrange"]:
        coefficient = lagrange_at_zero(vector["index"], vector["indices"])
        assert coefficient.to_bytes().hex() == vector["coefficient"]
    # Interpolating f(z) = 7 + 3z from f(1), f(2) gives 7: the coefficients are a second oracle.
    assert int(lagrange_at_zero(1, [1, 2]) * Scalar.from_int(10) + lagrange_at_zero(2, [1, 2]) * Scalar.from_int(13)) == 7


def test_recorded_proofs_keep_verifying() -> None:
    vector = VECTORS["threshold_identity"]
    key = codec.decode(elgamal.IdentityKey, bytes.fromhex(vector["identity_key"]))
    commitments = [codec.decode(elgamal.DealerCommitment, bytes.fromhex(item)) for item in vector["commitments"]]
    assert elgamal.IdentityKey.combine(bytes.fromhex(vector["context"]), commitments, 2) == key
    members = ring.Ring(bytes.fromhex(vector["stag_id"]), [bytes.fromhex(item) for item in vector["ring"]])
    signature = codec.decode(ring.RingSignature, bytes.fromhex(vector["ring_signature"]))
    ring.verify(members, bytes.fromhex(vector["message"]), signature, key.public_key)
    shares = [codec.decode(elgamal.DecryptionShare, bytes.fromhex(item)) for item in vector["decryption_shares"]]
    assert signature.identity is not None
    assert elgamal.decrypt(key, signature.identity, shares).hex() == vector["signer"]
    proofs = VECTORS["designated_proof"]
    claim = codec.decode(dvp.SignedIntendoClaim, bytes.fromhex(proofs["claim"]))
    assert claim.key_image == signature.key_image
    for name in ("proof", "forged"):
        dvp.verify(claim, codec.decode(dvp.DesignatedProof, bytes.fromhex(proofs[name])))


# --- hygiene ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoded", VECTORS["non_canonical_scalars"])
def test_non_canonical_scalars_are_refused(encoded: str) -> None:
    with pytest.raises(InvalidInput, match="not canonical"):
        Scalar.from_bytes(bytes.fromhex(encoded))


@pytest.mark.parametrize("name", sorted(VECTORS["invalid_points"]))
def test_points_outside_the_prime_order_subgroup_are_refused_everywhere(name: str) -> None:
    encoded = bytes.fromhex(VECTORS["invalid_points"][name])
    with pytest.raises(InvalidInput):
        Point.from_bytes(encoded)
    with pytest.raises(InvalidInput):  # and at registration: eligibility lists, keyholders, verifiers
        check_verify_key(encoded)


def test_libsodium_verifies_a_signature_under_a_key_with_a_torsion_component() -> None:
    """The pitfall the subgroup check exists for (DESIGN.md §10.4). A' = A + T, T of order 8,
    is not of small order, so libsodium's verify takes it; a signature made with A's secret
    over A' verifies whenever its hash h is a multiple of 8 (then h·T vanishes). Our check
    refuses A' before any signature is looked at."""
    identity = SigningIdentity()
    secret = Scalar.from_signing_seed(identity.seed)
    twisted = nacl.bindings.crypto_core_ed25519_add(identity.verify_key, bytes.fromhex(VECTORS["invalid_points"]["order_8"]))
    message = b"an intendo"
    for _ in range(200):  # each attempt succeeds with probability 1/8
        nonce = Scalar.random()
        commitment = Point.base_times(nonce).to_bytes()
        challenge = int.from_bytes(hashlib.sha512(commitment + twisted + message).digest(), "little") % ORDER
        if challenge % 8 == 0:
            break
    response = nonce + Scalar.from_int(challenge) * secret
    nacl.signing.VerifyKey(twisted).verify(message, commitment + response.to_bytes())  # libsodium accepts it
    with pytest.raises(InvalidInput, match="not a valid Ed25519 key"):
        check_verify_key(twisted)
    with pytest.raises(InvalidInput, match="prime-order subgroup"):
        ring.Ring(STAG, [identity.verify_key, twisted])


def test_a_response_plus_the_group_order_is_refused(members: list[Member]) -> None:
    """libsodium reduces s + ℓ to s silently; a proof with it would be a second valid encoding."""
    claim = dvp.SignedIntendoClaim(dvp.CONTEXT, STAG, INTENDO, members[0].key, b"", (members[1].key,), "")
    proof = dvp.prove(claim, members[0].secret)
    shifted = (int.from_bytes(proof.signer_response, "little") + ORDER).to_bytes(32, "little")
    with pytest.raises(InvalidSignature):
        dvp.verify(claim, dvp.DesignatedProof(proof.signer_challenge, proof.verifier_challenge, shifted, proof.verifier_responses))


def test_zero_responses_and_identity_points_are_rejected_not_crashed(members: list[Member]) -> None:
    claim = dvp.SignedIntendoClaim(dvp.CONTEXT, STAG, INTENDO, members[0].key, b"", (members[1].key,), "")
    zero = bytes(32)
    with pytest.raises(InvalidSignature):
        dvp.verify(claim, dvp.DesignatedProof(zero, zero, zero, (zero,)))


def test_nonces_are_fresh(members: list[Member]) -> None:
    claim = dvp.SignedIntendoClaim(dvp.CONTEXT, STAG, INTENDO, members[0].key, b"", (members[1].key,), "")
    assert dvp.prove(claim, members[0].secret) != dvp.prove(claim, members[0].secret)


# --- designated-verifier proofs -----------------------------------------------------------------


def claim_for(members: list[Member], verifiers: list[Member], *, image: bool = False, text: str = "") -> dvp.SignedIntendoClaim:
    key_image = ring.key_image(STAG, members[0].key, members[0].secret) if image else b""
    return dvp.SignedIntendoClaim(dvp.CONTEXT, STAG, INTENDO, members[0].key, key_image, tuple(v.key for v in verifiers), text)


@pytest.mark.parametrize("verifier_count", [1, 3])
@pytest.mark.parametrize("anonymous", [False, True])
def test_real_and_simulated_proofs_are_accepted_alike(members: list[Member], verifier_count: int, anonymous: bool) -> None:
    verifiers = members[1 : 1 + verifier_count]
    claim = claim_for(members, verifiers, image=anonymous, text="at least 4 others")
    real = dvp.prove(claim, members[0].secret)
    forged = dvp.forge(claim, [verifier.secret for verifier in verifiers])
    dvp.verify(claim, real)
    dvp.verify(claim, forged)
    assert real.size == forged.size == 32 * (3 + verifier_count) == len(real.signer_challenge) * (3 + verifier_count)


def test_nobody_else_can_make_a_proof(members: list[Member]) -> None:
    claim = claim_for(members, [members[1], members[2]])
    with pytest.raises(InvalidInput):  # the wrong secret for the signer
        dvp.prove(claim, members[3].secret)
    with pytest.raises(InvalidInput):  # one of two verifiers alone cannot forge
        dvp.forge(claim, [members[1].secret, members[3].secret])


def test_a_proof_for_other_verifiers_another_intendo_or_another_claim_fails(members: list[Member]) -> None:
    claim = claim_for(members, [members[1]], text="at least 2 others")
    proof = dvp.prove(claim, members[0].secret)
    for changed in (
        dvp.SignedIntendoClaim(claim.context, claim.stag_id, claim.intendo_id, claim.signer, b"", (members[2].key,), claim.claimed_threshold),
        dvp.SignedIntendoClaim(claim.context, claim.stag_id, OTHER_STAG, claim.signer, b"", claim.verifiers, claim.claimed_threshold),
        dvp.SignedIntendoClaim(claim.context, claim.stag_id, claim.intendo_id, claim.signer, b"", claim.verifiers, "at least 1 other"),
        dvp.SignedIntendoClaim(claim.context, claim.stag_id, claim.intendo_id, members[3].key, b"", claim.verifiers, claim.claimed_threshold),
    ):
        with pytest.raises(InvalidSignature):
            dvp.verify(changed, proof)


def test_a_claim_naming_the_signer_as_its_own_verifier_is_refused(members: list[Member]) -> None:
    with pytest.raises(InvalidInput, match="own designated verifier"):
        claim_for(members, [members[0]]).check()


@PROPERTY
@given(position=st.integers(min_value=0, max_value=10_000), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_of_a_designated_proof_fails(members: list[Member], position: int, mask: int) -> None:
    claim = claim_for(members, [members[1], members[2]], image=True)
    encoded = codec.encode(dvp.prove(claim, members[0].secret))
    with pytest.raises(InvalidInput):  # a decoding error or InvalidSignature (a subclass)
        dvp.verify(claim, codec.decode(dvp.DesignatedProof, flip(encoded, position, mask)))


# --- ring signatures ----------------------------------------------------------------------------


def test_a_ring_signature_verifies_names_nobody_and_decrypts_to_its_signer(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]]
) -> None:
    key, secrets = committee
    members_ring = ring.Ring(STAG, [member.key for member in members])
    signature = ring.sign(members_ring, b"statement", members[3].key, members[3].secret, key.public_key)
    ring.verify(members_ring, b"statement", signature, key.public_key)
    assert all(member.key not in codec.encode(signature) for member in members)
    assert signature.size == 32 * (2 * len(members) + 4)
    assert signature.identity is not None
    for chosen in ([1, 2], [2, 3], [3, 1], [1, 2, 3]):
        shares = [elgamal.decryption_share(index, secrets[index], signature.identity) for index in chosen]
        assert elgamal.decrypt(key, signature.identity, shares) == members[3].key


def test_the_key_image_links_within_a_stag_and_not_across(members: list[Member]) -> None:
    first = ring.Ring(STAG, [member.key for member in members])
    second = ring.Ring(OTHER_STAG, [member.key for member in members])
    one = ring.sign(first, b"intendo", members[1].key, members[1].secret)
    two = ring.sign(first, b"withdrawal", members[1].key, members[1].secret)
    elsewhere = ring.sign(second, b"intendo", members[1].key, members[1].secret)
    assert one.key_image == two.key_image == ring.key_image(STAG, members[1].key, members[1].secret)
    assert elsewhere.key_image != one.key_image
    assert ring.sign(first, b"intendo", members[2].key, members[2].secret).key_image != one.key_image


def test_a_non_member_cannot_sign(members: list[Member]) -> None:
    inner = ring.Ring(STAG, [member.key for member in members[:3]])
    with pytest.raises(InvalidInput, match="not a member"):
        ring.sign(inner, b"m", members[4].key, members[4].secret)
    # Signing in a ring that includes the outsider does not verify against the stag's ring.
    widened = ring.Ring(STAG, [member.key for member in members[:2]] + [members[4].key])
    signature = ring.sign(widened, b"m", members[4].key, members[4].secret)
    with pytest.raises(InvalidSignature):
        ring.verify(inner, b"m", signature)


def test_a_signature_must_encrypt_the_signers_own_key(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]]
) -> None:
    """Swapping the ciphertext for an encryption of another member's key (which would name the
    wrong person at the hunt) breaks the proof."""
    key, _ = committee
    members_ring = ring.Ring(STAG, [member.key for member in members])
    signature = ring.sign(members_ring, b"m", members[0].key, members[0].secret, key.public_key)
    other = ring.sign(members_ring, b"m", members[1].key, members[1].secret, key.public_key)
    swapped = ring.RingSignature(signature.key_image, other.identity, signature.challenge, signature.key_responses, signature.encryption_responses)
    with pytest.raises(InvalidSignature):
        ring.verify(members_ring, b"m", swapped, key.public_key)
    with pytest.raises(InvalidSignature):  # dropping the ciphertext is refused where one is required
        ring.verify(members_ring, b"m", ring.sign(members_ring, b"m", members[0].key, members[0].secret), key.public_key)


@PROPERTY
@given(position=st.integers(min_value=0, max_value=10_000), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_of_a_ring_signature_fails(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]], position: int, mask: int
) -> None:
    key, _ = committee
    members_ring = ring.Ring(STAG, [member.key for member in members[:3]])
    encoded = codec.encode(ring.sign(members_ring, b"m", members[2].key, members[2].secret, key.public_key))
    with pytest.raises(InvalidInput):
        ring.verify(members_ring, b"m", codec.decode(ring.RingSignature, flip(encoded, position, mask)), key.public_key)


# --- threshold identity key ---------------------------------------------------------------------


def test_fewer_than_t_shares_or_a_wrong_share_do_not_decrypt(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]]
) -> None:
    key, secrets = committee
    members_ring = ring.Ring(STAG, [member.key for member in members])
    signature = ring.sign(members_ring, b"m", members[2].key, members[2].secret, key.public_key)
    assert signature.identity is not None
    with pytest.raises(InvalidInput, match="2 decryption shares are needed"):
        elgamal.decrypt(key, signature.identity, [elgamal.decryption_share(1, secrets[1], signature.identity)])
    lying = elgamal.decryption_share(2, secrets[1], signature.identity)  # keyholder 2 uses another secret
    with pytest.raises(InvalidSignature, match="keyholder 2"):
        elgamal.decrypt(key, signature.identity, [elgamal.decryption_share(1, secrets[1], signature.identity), lying])
    honest = elgamal.decryption_share(1, secrets[1], signature.identity)
    with pytest.raises(InvalidInput, match="twice"):
        elgamal.decrypt(key, signature.identity, [honest, honest])


@PROPERTY
@given(position=st.integers(min_value=0, max_value=10_000), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_of_a_decryption_share_fails(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]], position: int, mask: int
) -> None:
    key, secrets = committee
    members_ring = ring.Ring(STAG, [member.key for member in members[:2]])
    signature = ring.sign(members_ring, b"m", members[0].key, members[0].secret, key.public_key)
    assert signature.identity is not None
    encoded = codec.encode(elgamal.decryption_share(3, secrets[3], signature.identity))
    with pytest.raises(InvalidInput):
        elgamal.check_decryption_share(key, signature.identity, codec.decode(elgamal.DecryptionShare, flip(encoded, position, mask)))


def test_a_dealer_with_a_bad_share_or_proof_is_named() -> None:
    context = b"ceremony"
    honest = elgamal.deal(context, 1, 2, 3)
    with pytest.raises(InvalidSignature, match="dealer 1's share for keyholder 2"):
        elgamal.check_share(honest.commitment, 2, honest.shares[2] + Scalar.from_int(1))
    with pytest.raises(InvalidSignature, match="dealer 1 did not prove"):  # the proof is bound to its ceremony
        elgamal.check_commitment(b"another ceremony", honest.commitment, 2)
    # A rogue dealer that copies another's commitment under its own index has no valid proof.
    copied = elgamal.DealerCommitment(2, honest.commitment.coefficients, honest.commitment.proof_challenge, honest.commitment.proof_response)
    with pytest.raises(InvalidSignature, match="dealer 2 did not prove"):
        elgamal.check_commitment(context, copied, 2)


# --- properties over random rings and verifier sets -------------------------------------------------


@PROPERTY
@given(size=st.integers(min_value=2, max_value=5), signer=st.integers(min_value=0, max_value=4), data=st.data())
def test_property_only_members_sign_and_the_signer_is_the_one_encrypted(
    members: list[Member], committee: tuple[elgamal.IdentityKey, dict[int, Scalar]], size: int, signer: int, data: st.DataObject
) -> None:
    key, secrets = committee
    inside = members[:size]
    members_ring = ring.Ring(STAG, [member.key for member in inside])
    if signer >= size:  # an outsider: cannot sign in the ring, and a ring it widened does not verify
        with pytest.raises(InvalidInput, match="not a member"):
            ring.sign(members_ring, b"m", members[signer].key, members[signer].secret, key.public_key)
        widened = ring.Ring(STAG, [member.key for member in inside[:-1]] + [members[signer].key])
        signature = ring.sign(widened, b"m", members[signer].key, members[signer].secret, key.public_key)
        with pytest.raises(InvalidSignature):
            ring.verify(members_ring, b"m", signature, key.public_key)
        return
    signature = ring.sign(members_ring, b"m", inside[signer].key, inside[signer].secret, key.public_key)
    ring.verify(members_ring, b"m", signature, key.public_key)
    assert signature.identity is not None
    chosen = data.draw(st.lists(st.sampled_from([1, 2, 3]), min_size=2, max_size=2, unique=True))
    shares = [elgamal.decryption_share(index, secrets[index], signature.identity) for index in chosen]
    assert elgamal.decrypt(key, signature.identity, shares) == inside[signer].key


@PROPERTY
@given(designated=st.sets(st.integers(min_value=1, max_value=4), min_size=1, max_size=4),
       checked=st.sets(st.integers(min_value=1, max_value=4), min_size=1, max_size=4),
       anonymous=st.booleans(), forged=st.booleans())
def test_property_real_and_simulated_proofs_verify_alike_and_only_for_their_verifier_set(
    members: list[Member], designated: set[int], checked: set[int], anonymous: bool, forged: bool
) -> None:
    verifiers = [members[index] for index in sorted(designated)]
    claim = claim_for(members, verifiers, image=anonymous)
    proof = dvp.forge(claim, [v.secret for v in verifiers]) if forged else dvp.prove(claim, members[0].secret)
    dvp.verify(claim, proof)
    other = claim_for(members, [members[index] for index in sorted(checked)], image=anonymous)
    if checked != designated:
        with pytest.raises(InvalidSignature):
            dvp.verify(other, proof)
