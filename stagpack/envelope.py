"""Signed intendo envelopes and withdrawals (DESIGN.md §7).

A participant signs, with its Ed25519 key, the stag id, the digest of its ciphertext, its
public weight, a fresh nonce and an expiry. The envelope's digest is the intendo id. A
withdrawal names the intendo id and is signed by the same key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from stagpack import codec
from stagpack.errors import InvalidInput
from stagpack.identity import SigningIdentity, check_verify_key, digest, verify_signature

NONCE_SIZE = 16
DIGEST_SIZE = 32


@dataclass(frozen=True)
class IntendoStatement:
    """What a participant signs when it submits an intendo."""

    WIRE_NAME = "stagpack.IntendoStatement.v2"

    stag_id: bytes
    participant: bytes  # Ed25519 public key
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

    @property
    def intendo_id(self) -> bytes:
        return digest("intendo", codec.encode(self.statement))

    def verify(self) -> None:
        """Check field shapes and the participant's signature."""
        statement = self.statement
        if len(statement.stag_id) != DIGEST_SIZE or len(statement.ciphertext_digest) != DIGEST_SIZE:
            raise InvalidInput("stag id and ciphertext digest must be 32 bytes")
        if len(statement.nonce) != NONCE_SIZE:
            raise InvalidInput(f"the nonce must be {NONCE_SIZE} bytes")
        if type(statement.weight) is not int or statement.weight < 1:
            raise InvalidInput("the weight must be a positive integer")
        if not isinstance(statement.capital_tag, str) or len(statement.capital_tag) > 64:
            raise InvalidInput("the capital tag must be a string of at most 64 characters")
        check_verify_key(statement.participant, "participant key")
        verify_signature(statement.participant, "intendo", codec.encode(statement), self.signature)


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

    def verify(self) -> None:
        statement = self.statement
        if len(statement.stag_id) != DIGEST_SIZE or len(statement.intendo_id) != DIGEST_SIZE:
            raise InvalidInput("stag id and intendo id must be 32 bytes")
        if len(statement.nonce) != NONCE_SIZE:
            raise InvalidInput(f"the nonce must be {NONCE_SIZE} bytes")
        check_verify_key(statement.participant, "participant key")
        verify_signature(statement.participant, "withdrawal", codec.encode(statement), self.signature)
