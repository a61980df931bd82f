"""Participant identity files: an Ed25519 seed in a small JSON file readable only by its owner."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stagpack.errors import AlreadyExists, InvalidInput
from stagpack.identity import SigningIdentity

KIND = "stagpack-participant-identity"


def create_identity_file(path: Path, *, overwrite: bool = False) -> SigningIdentity:
    if path.exists() and not overwrite:
        raise AlreadyExists(f"{path} exists; pass --force to replace it (the old identity would be lost)")
    identity = SigningIdentity()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.dumps({"kind": KIND, "seed": identity.seed.hex(), "public_key": identity.verify_key.hex()})
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(document + "\n")
    return identity


def read_identity_file(path: Path) -> SigningIdentity:
    try:
        document = json.loads(path.read_text())
        if document.get("kind") != KIND:
            raise ValueError("not a participant identity")
        identity = SigningIdentity(bytes.fromhex(document["seed"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path} is not a stagpack participant identity file: {error}") from None
    if identity.verify_key.hex() != document.get("public_key"):
        raise InvalidInput(f"{path}: the public key does not match the seed")
    return identity
