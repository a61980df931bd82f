"""Attestations of hunts that a contract on an EVM chain can check (DESIGN.md §10.1).

Every keyholder certifies a hunt twice: with its Ed25519 key (the certificate every replica
checks) and with a secp256k1 key whose address the key ceremony registered in the committee's
transcript, over a digest that a contract recomputes with `keccak256(abi_encode(...))` and checks
with `ecrecover`. A hunt certificate carries t of each; replicas check both, so a certificate in
any log can be executed on a chain.

The digest commits to everything the settlement contract acts on — the committee, the hunt's
outcome digest (its identity: the contract executes each once), the stag, the epoch, the cause
and the stag's trigger (composed hunts, §10.2), the beneficiary's account, every member's
account and amount, and the stag's hook contract — under a domain of its own:

    keccak256(abi_encode(DOMAIN, committee, outcome, stag, epoch, cause, trigger, beneficiary,
                         members: (bytes32 account, uint256 amount)[], hook: address))

An account is named on chain by `keccak256(abi_encode(owner: bytes32, tag: string))`. A count
stag moves no money: its hunts attest no members and no beneficiary. Amounts are weights (the
chain executor takes no fees).

The secp256k1 key is derived from the keyholder's Ed25519 seed under a domain of its own (no new
secret to store or back up); signatures are 65 bytes r ‖ s ‖ v with v ∈ {27, 28} and s in the
lower half of the group order (EIP-2), which is what `ecrecover` takes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

from stagpack.errors import InvalidInput, InvalidSignature

DOMAIN = keccak(b"stagpack.HuntAttestation.v1")
ADDRESS_SIZE = 20
SIGNATURE_SIZE = 65
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO32 = bytes(32)
_TYPES = ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "bytes32", "bytes32", "bytes32", "(bytes32,uint256)[]", "address"]


def account_key(owner: bytes, tag: str) -> bytes:
    """How a chain names the escrow account (owner, tag) (`stagpack.accounts.Account`)."""
    return keccak(abi_encode(["bytes32", "string"], [owner, tag]))


@dataclass(frozen=True)
class HuntFacts:
    """What a settlement contract acts on for one hunt: the attested fields, in order."""

    outcome: bytes  # the hunt's outcome digest
    stag: bytes
    epoch: int
    cause: bytes  # 32 zero bytes: none
    trigger: bytes  # 32 zero bytes: none
    beneficiary: bytes  # account key; 32 zero bytes for a count stag
    members: tuple[tuple[bytes, int], ...]  # (account key, amount)
    hook: bytes  # 20-byte contract address; 20 zero bytes: none

    def digest(self, committee: bytes) -> bytes:
        return keccak(abi_encode(_TYPES, [DOMAIN, committee, *self.values()]))

    def values(self) -> list[object]:
        """The fields as the contract's `Hunt` struct takes them (before the signatures)."""
        return [
            self.outcome, self.stag, self.epoch, self.cause, self.trigger, self.beneficiary,
            [list(member) for member in self.members], to_checksum_address(self.hook),
        ]


def check_address(address: bytes, what: str) -> bytes:
    if not isinstance(address, bytes) or len(address) != ADDRESS_SIZE:
        raise InvalidInput(f"{what} must be a {ADDRESS_SIZE}-byte EVM address")
    return address


class ChainKey:
    """A keyholder's secp256k1 attestation key."""

    def __init__(self, secret: bytes) -> None:
        self._key = PrivateKey(secret)

    @classmethod
    def derive(cls, seed: bytes) -> ChainKey:
        """The key derived from an Ed25519 seed (a hash under its own domain, as a scalar in
        1..n−1; the negligible out-of-range case rehashes)."""
        material = hashlib.sha256(b"stagpack secp256k1 attestation key\x00" + seed).digest()
        while not 0 < int.from_bytes(material, "big") < SECP256K1_ORDER:
            material = hashlib.sha256(material).digest()
        return cls(material)

    @property
    def address(self) -> bytes:
        return self._key.public_key.to_canonical_address()

    def sign(self, digest: bytes) -> bytes:
        signature = self._key.sign_msg_hash(digest)  # RFC 6979 nonces, low s
        return signature.to_bytes()[:64] + bytes([signature.v + 27])


def recover(digest: bytes, signature: bytes) -> bytes:
    """The address that made `signature` over `digest`, as `ecrecover` would find it; raises
    InvalidSignature for anything `ecrecover` would not accept (a high s included)."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE or signature[64] not in (27, 28):
        raise InvalidSignature(f"an attestation is a {SIGNATURE_SIZE}-byte secp256k1 signature with v of 27 or 28")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_ORDER // 2:
        raise InvalidSignature("an attestation's s is in the upper half of the group order (malleable)")
    try:
        recovered = Signature(signature[:64] + bytes([signature[64] - 27])).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError):
        raise InvalidSignature("an attestation does not recover to any key") from None
    return recovered.to_canonical_address()


def check_attestations(
    addresses: Sequence[bytes], threshold: int, digest: bytes, attestations: Sequence[tuple[int, bytes]]
) -> None:
    """At least `threshold` distinct keyholders (by index, 1-based into `addresses`) attested
    `digest`; every listed attestation recovers to its keyholder's registered address."""
    seen: set[int] = set()
    for index, signature in attestations:
        if index in seen:
            raise InvalidSignature(f"keyholder {index} appears twice among the attestations")
        if not 1 <= index <= len(addresses):
            raise InvalidSignature(f"there is no keyholder {index} in this committee")
        if recover(digest, signature) != addresses[index - 1]:
            raise InvalidSignature(f"keyholder {index}'s attestation is not signed by its registered address")
        seen.add(index)
    if len(seen) < threshold:
        raise InvalidSignature(f"hunt attestation: {len(seen)} keyholder signatures, {threshold} needed")
