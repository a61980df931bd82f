"""Signed intendo envelopes and withdrawals (DESIGN.md §7).

A participant signs, with its Ed25519 key, the stag id, the digest of its ciphertext, its
public weight, a fresh nonce and an expiry. The envelope's digest is the intendo id. A
withdrawal names the intendo id and is signed by the same key.

In an anonymous stag (DESIGN.md §10.5) the statement names the signer's *key image* instead of
its key, and the signature is a linkable ring signature over the stag's eligibility list
(`stagpack.shield.ring`, encoded in the same `signature` field) that carries the signer's key
encrypted to the committee's identity key. The key image is one per member per stag, so every
rule keyed by "the participant" — one live intendo, the action budget, replayed nonces, the
withdrawal's author — holds for anonymous members unchanged, and nothing in the envelope names
the member. A withdrawal's ring signature (without a ciphertext) must show the same key image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from stagpack import codec
from stagpack.errors import InvalidInput, InvalidSignature
from stagpack.identity import SigningIdentity, check_verify_key, digest, verify_signature
from stagpack.shield import ring
from stagpack.shield.group import Scalar
from stagpack.shield.ring import IdentityCiphertext, Ring, RingSignature

NONCE_SIZE = 16
DIGEST_SIZE = 32


@dataclass(frozen=True)
class IntendoStatement:
    """What a participant signs when it submits an intendo."""

    WIRE_NAME = "stagpack.IntendoStatement.v2"

    stag_id: bytes
    participant: bytes  # Ed25519 public key; in an anonymous stag, the signer's key image there
    ciphertext_digest: bytes  # SHA-256 of the canonical ciphertext bytes
    weight: int  # a_i: 1 for count stags, the committed units for capital stags (public)
    capital_tag: str  # capital stags: the participant's escrow account backing the weight; count stags: ""
    nonce: bytes
    expires_at_millis: int


@dataclass(frozen=True)
class IntendoEnvelope:
    WIRE_NAME = "stagpack.IntendoEnvelope.v2"

    statement: IntendoStatement
    signature: bytes

    @classmethod
    def sign(
        cls,
        identity: SigningIdentity,
        stag_id: bytes,
        ciphertext_digest: bytes,
        weight: int,
        expires_at_millis: int,
        capital_tag: str = "",
    ) -> IntendoEnvelope:
        statement = IntendoStatement(
            stag_id, identity.verify_key, ciphertext_digest, weight, capital_tag, os.urandom(NONCE_SIZE), expires_at_millis
        )
        return cls(statement, identity.sign("intendo", codec.encode(statement)))

    @classmethod
    def sign_anonymously(
        cls,
        members: Ring,
        identity: SigningIdentity,
        identity_key: bytes,
        ciphertext_digest: bytes,
        expires_at_millis: int,
    ) -> IntendoEnvelope:
        """An anonymous count intendo: the statement names the signer's key image in the stag of
        `members`, and a ring signature over `members` authorizes it, carrying the signer's key
        encrypted to the committee's `identity_key`."""
        secret = Scalar.from_signing_seed(identity.seed)
        image = ring.key_image(members.stag_id, identity.verify_key, secret)
        statement = IntendoStatement(members.stag_id, image, ciphertext_digest, 1, "", os.urandom(NONCE_SIZE), expires_at_millis)
        signature = ring.sign(members, digest("intendo", codec.encode(statement)), identity.verify_key, secret, identity_key)
        return cls(statement, codec.encode(signature))

    @property
    def intendo_id(self) -> bytes:
        return digest("intendo", codec.encode(self.statement))

    def digest(self) -> bytes:
        """Of the whole envelope, signature included (what a state that checked it remembers)."""
        return digest("envelope", codec.encode(self))

    def ring_signature(self) -> RingSignature:
        """The anonymous envelope's ring signature (InvalidInput if the bytes are not one)."""
        return codec.decode(RingSignature, self.signature)

    def identity_ciphertext(self) -> IdentityCiphertext:
        """The signer's key encrypted to the committee (anonymous envelopes only)."""
        identity = self.ring_signature().identity
        if identity is None:
            raise InvalidInput("the envelope carries no encrypted identity")
        return identity

    def verify(self, members: Ring | None = None, identity_key: bytes | None = None) -> None:
        """Check field shapes and the signature: the participant's own, or, for an anonymous
        stag (`members` and `identity_key` given), a ring signature over `members` whose key
        image is the statement's participant and whose ciphertext encrypts the signer's key."""
        self.check_shape()
        statement = self.statement
        if members is None:
            check_verify_key(statement.participant, "participant key")
            verify_signature(statement.participant, "intendo", codec.encode(statement), self.signature)
            return
        if identity_key is None:
            raise InvalidInput("an anonymous intendo is checked against the committee's identity key")
        _verify_ring_signature(members, statement.participant, self.intendo_id, self.signature, identity_key)

    def check_shape(self) -> None:
        """The statement's field shapes (cheap; no signature)."""
        statement = self.statement
        if len(statement.stag_id) != DIGEST_SIZE or len(statement.ciphertext_digest) != DIGEST_SIZE:
            raise InvalidInput("stag id and ciphertext digest must be 32 bytes")
        if len(statement.nonce) != NONCE_SIZE:
            raise InvalidInput(f"the nonce must be {NONCE_SIZE} bytes")
        if type(statement.weight) is not int or statement.weight < 1:
            raise InvalidInput("the weight must be a positive integer")
        if not isinstance(statement.capital_tag, str) or len(statement.capital_tag) > 64:
            raise InvalidInput("the capital tag must be a string of at most 64 characters")


@dataclass(frozen=True)
class WithdrawalStatement:
    WIRE_NAME = "stagpack.WithdrawalStatement.v1"

    stag_id: bytes
    intendo_id: bytes
    participant: bytes
    nonce: bytes
    expires_at_millis: int


@dataclass(frozen=True)
class Withdrawal:
    WIRE_NAME = "stagpack.Withdrawal.v1"

    statement: WithdrawalStatement
    signature: bytes

    @classmethod
    def sign(cls, identity: SigningIdentity, stag_id: bytes, intendo_id: bytes, expires_at_millis: int) -> Withdrawal:
        statement = WithdrawalStatement(stag_id, intendo_id, identity.verify_key, os.urandom(NONCE_SIZE), expires_at_millis)
        return cls(statement, identity.sign("withdrawal", codec.encode(statement)))

    @classmethod
    def sign_anonymously(cls, members: Ring, identity: SigningIdentity, intendo_id: bytes, expires_at_millis: int) -> Withdrawal:
        """Withdraw an anonymous intendo: a ring signature with the same key image."""
        secret = Scalar.from_signing_seed(identity.seed)
        image = ring.key_image(members.stag_id, identity.verify_key, secret)
        statement = WithdrawalStatement(members.stag_id, intendo_id, image, os.urandom(NONCE_SIZE), expires_at_millis)
        signature = ring.sign(members, digest("withdrawal", codec.encode(statement)), identity.verify_key, secret)
        return cls(statement, codec.encode(signature))

    def digest(self) -> bytes:
        return digest("withdrawal-record", codec.encode(self))

    def check_shape(self) -> None:
        statement = self.statement
        if len(statement.stag_id) != DIGEST_SIZE or len(statement.intendo_id) != DIGEST_SIZE:
            raise InvalidInput("stag id and intendo id must be 32 bytes")
        if len(statement.nonce) != NONCE_SIZE:
            raise InvalidInput(f"the nonce must be {NONCE_SIZE} bytes")

    def verify(self, members: Ring | None = None) -> None:
        """Field shapes and the signature (a ring signature with the intendo's key image in an
        anonymous stag, `members`)."""
        self.check_shape()
        statement = self.statement
        if members is None:
            check_verify_key(statement.participant, "participant key")
            verify_signature(statement.participant, "withdrawal", codec.encode(statement), self.signature)
            return
        _verify_ring_signature(members, statement.participant, digest("withdrawal", codec.encode(statement)), self.signature, None)


def _verify_ring_signature(members: Ring, image: bytes, message: bytes, signature: bytes, identity_key: bytes | None) -> None:
    decoded = codec.decode(RingSignature, signature)
    if decoded.key_image != image:
        raise InvalidSignature("the ring signature's key image is not the statement's participant")
    ring.verify(members, message, decoded, identity_key)
