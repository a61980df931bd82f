"""Identities, signatures, sealed storage and encrypted messages (PyNaCl).

* Participants sign intendos and withdrawals with Ed25519.
* Keyholders sign everything they release (mask commitments, partial decryptions, certificates,
  the ceremony transcript) with Ed25519, and receive t-of-n backup shares sealed to their X25519
  key (NaCl Box).
* Secrets at rest (identity seeds, key shares, backup shares) are sealed under a passphrase:
  Argon2id derives a key, XSalsa20-Poly1305 (SecretBox) encrypts.

Every signature is domain-separated: what is signed is `stagpack/v1/<domain>\\0<message>`, so a
signature made for one purpose can never be replayed as another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from stagpack.attestation import ChainKey
from stagpack.errors import InvalidInput, InvalidSignature

VERIFY_KEY_SIZE = 32
SIGNATURE_SIZE = 64
_SEAL_MAGIC = b"stagpack-sealed-v1\x00"


def _signed_message(domain: str, message: bytes) -> bytes:
    return b"stagpack/v1/" + domain.encode() + b"\x00" + message


def digest(domain: str, *parts: bytes) -> bytes:
    """SHA-256 over length-prefixed parts under a domain label."""
    hasher = hashlib.sha256(b"stagpack/v1/" + domain.encode() + b"\x00")
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.digest()


def check_verify_key(key: bytes, what: str = "public key") -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"{what} must be bytes")
    if len(key) != VERIFY_KEY_SIZE:
        raise InvalidInput(f"{what} must be {VERIFY_KEY_SIZE} bytes, got {len(key)}")
    try:
        nacl.signing.VerifyKey(bytes(key))  # checks the length only
        valid = nacl.bindings.crypto_core_ed25519_is_valid_point(bytes(key))
    except (nacl.exceptions.CryptoError, ValueError):
        valid = False
    if not valid:  # off the curve, not canonically encoded, or of small order: no key signs for it
        raise InvalidInput(f"{what} is not a valid Ed25519 key")
    return bytes(key)


def verify_signature(verify_key: bytes, domain: str, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless `signature` is `verify_key`'s signature of the message."""
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"a {domain} signature must be {SIGNATURE_SIZE} bytes")
    try:
        nacl.signing.VerifyKey(bytes(verify_key)).verify(_signed_message(domain, message), bytes(signature))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        raise InvalidSignature(f"{domain} signature does not verify") from None


class SigningIdentity:
    """An Ed25519 key pair."""

    def __init__(self, seed: bytes | None = None) -> None:
        self._signing_key = nacl.signing.SigningKey(seed) if seed is not None else nacl.signing.SigningKey.generate()

    @property
    def verify_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def seed(self) -> bytes:
        return bytes(self._signing_key)

    def sign(self, domain: str, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(_signed_message(domain, message)).signature)

    def __repr__(self) -> str:
        return f"SigningIdentity({self.verify_key.hex()[:16]}…)"


@dataclass(frozen=True)
class PublicIdentity:
    """What others know of a keyholder: its Ed25519 and X25519 public keys and a name."""

    name: str
    verify_key: bytes
    box_key: bytes
    chain_address: bytes  # secp256k1: the EVM address of its hunt attestation key (stagpack.attestation)


class KeyholderIdentity(SigningIdentity):
    """A keyholder's signing key and its X25519 key for receiving backup shares."""

    def __init__(self, name: str, seed: bytes | None = None, box_seed: bytes | None = None) -> None:
        super().__init__(seed)
        self.name = name
        self._chain_key: ChainKey | None = None
        self._box_key = (
            nacl.public.PrivateKey(box_seed) if box_seed is not None else nacl.public.PrivateKey.generate()
        )

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.name, self.verify_key, bytes(self._box_key.public_key), self.chain_key.address)

    @property
    def chain_key(self) -> ChainKey:
        """The secp256k1 key it attests hunts with, derived from its signing seed."""
        if self._chain_key is None:
            self._chain_key = ChainKey.derive(self.seed)
        return self._chain_key

    def box_to(self, recipient_box_key: bytes, plaintext: bytes) -> bytes:
        """Encrypt to another keyholder (authenticated: the recipient knows it came from us)."""
        box = nacl.public.Box(self._box_key, nacl.public.PublicKey(recipient_box_key))
        return bytes(box.encrypt(plaintext))

    def open_box(self, sender_box_key: bytes, ciphertext: bytes) -> bytes:
        box = nacl.public.Box(self._box_key, nacl.public.PublicKey(sender_box_key))
        try:
            return bytes(box.decrypt(ciphertext))
        except (nacl.exceptions.CryptoError, ValueError):
            raise InvalidInput("encrypted message does not open (wrong sender, recipient or tampered)") from None

    def to_json(self) -> bytes:
        return json.dumps(
            {"name": self.name, "signing_seed": self.seed.hex(), "box_seed": bytes(self._box_key).hex()}
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> KeyholderIdentity:
        try:
            fields = json.loads(data)
            return cls(fields["name"], bytes.fromhex(fields["signing_seed"]), bytes.fromhex(fields["box_seed"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("malformed keyholder identity file") from None


# --- sealing at rest -------------------------------------------------------------------------


@dataclass(frozen=True)
class SealingCost:
    """Argon2id work factors; the default is libsodium's 'moderate' profile."""

    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE

    @classmethod
    def interactive(cls) -> SealingCost:
        return cls(nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)


class Sealer:
    """Seals and unseals secrets under one passphrase. The Argon2id key is derived once per salt
    and cached, so sealing many items does not pay the KDF each time."""

    def __init__(self, passphrase: bytes, cost: SealingCost | None = None) -> None:
        if not isinstance(passphrase, (bytes, bytearray)) or len(passphrase) < 8:
            raise InvalidInput("a sealing passphrase must be at least 8 bytes")
        self._passphrase = bytes(passphrase)
        self._cost = cost or SealingCost()
        self._salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        self._keys: dict[tuple[bytes, int, int], bytes] = {}

    def _key(self, salt: bytes, opslimit: int, memlimit: int) -> bytes:
        cache_key = (salt, opslimit, memlimit)
        key = self._keys.get(cache_key)
        if key is None:
            key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, self._passphrase, salt, opslimit=opslimit, memlimit=memlimit)
            self._keys[cache_key] = key
        return key

    def seal(self, plaintext: bytes) -> bytes:
        cost = self._cost
        key = self._key(self._salt, cost.opslimit, cost.memlimit)
        header = _SEAL_MAGIC + self._salt + cost.opslimit.to_bytes(8, "big") + cost.memlimit.to_bytes(8, "big")
        return header + bytes(nacl.secret.SecretBox(key).encrypt(plaintext))

    def unseal(self, sealed: bytes) -> bytes:
        if not sealed.startswith(_SEAL_MAGIC):
            raise InvalidInput("not a stagpack sealed file")
        offset = len(_SEAL_MAGIC)
        salt = sealed[offset : offset + nacl.pwhash.argon2id.SALTBYTES]
        offset += nacl.pwhash.argon2id.SALTBYTES
        opslimit = int.from_bytes(sealed[offset : offset + 8], "big")
        memlimit = int.from_bytes(sealed[offset + 8 : offset + 16], "big")
        body = sealed[offset + 16 :]
        try:
            return bytes(nacl.secret.SecretBox(self._key(salt, opslimit, memlimit)).decrypt(body))
        except (nacl.exceptions.CryptoError, ValueError):
            raise InvalidInput("sealed data does not open: wrong passphrase or corrupted file") from None
