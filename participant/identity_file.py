"""Identity files: an Ed25519 seed in a small JSON file readable only by its owner.

Participants sign intendos with one; the aggregator signs its calls to keyholders with one, and
the ceremony coordinator its rounds (their public keys are named in the committee transcript
and in each keyholder's configuration). The file says which kind it is, so one is never used
for another by mistake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stagpack.errors import AlreadyExists, InvalidInput
from stagpack.identity import SigningIdentity, check_verify_key

KIND = "stagpack-participant-identity"
AGGREGATOR = "stagpack-aggregator-identity"
COORDINATOR = "stagpack-coordinator-identity"
KINDS = (KIND, AGGREGATOR, COORDINATOR)


def create_identity_file(path: Path, *, overwrite: bool = False, kind: str = KIND) -> SigningIdentity:
    if kind not in KINDS:
        raise InvalidInput(f"unknown identity kind {kind!r}")
    if path.exists() and not overwrite:
        raise AlreadyExists(f"{path} exists; pass --force to replace it (the old identity would be lost)")
    identity = SigningIdentity()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.dumps({"kind": kind, "seed": identity.seed.hex(), "public_key": identity.verify_key.hex()})
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(document + "\n")
    return identity


def read_identity_file(path: Path, kind: str = KIND) -> SigningIdentity:
    try:
        document = json.loads(path.read_text())
        if document.get("kind") != kind:
            raise ValueError(f"not a {kind.removeprefix('stagpack-').replace('-', ' ')}")
        identity = SigningIdentity(bytes.fromhex(document["seed"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"{path} is not a stagpack {kind.removeprefix('stagpack-').replace('-', ' ')} file: {error}") from None
    if identity.verify_key.hex() != document.get("public_key"):
        raise InvalidInput(f"{path}: the public key does not match the seed")
    return identity


def load_or_create_identity_file(path: Path, kind: str) -> SigningIdentity:
    """The identity in `path`, created there on first use."""
    if path.exists():
        return read_identity_file(path, kind)
    return create_identity_file(path, kind=kind)


def read_public_key(text: str, what: str) -> bytes:
    """A hex Ed25519 public key as configuration gives it (surrounding white space ignored)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a hex Ed25519 public key") from None
    return check_verify_key(key, what)
