"""Partial decryption and fusion, n-of-n or t-of-n (DESIGN.md §6), with no policy.

A `DecryptingParty` is one keyholder's cryptographic role: its own key share and the backup
shares it holds of the others'. It produces, for a ciphertext and a quorum, every partial it owes:
its own, and one stand-in for each offline keyholder. No secret key is ever reconstructed: a
stand-in key is λ_j^S times one Shamir share, useless on its own.

`fuse_*` functions (see `stagpack.decrypt.__init__`) combine a complete set of partials and read
the result through `facts`, so callers never hold a raw plaintext vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from stagpack.decrypt.quorum import Quorum
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.fhe import Ciphertext, FheContext, KeyBackupShare, SecretKeyShare, SlotVector


@dataclass(frozen=True)
class PartialShare:
    """One partial decryption as it travels: who made it, for whom, and its bytes."""

    producer: int
    on_behalf_of: int
    data: bytes


class DecryptingParty:
    """One keyholder's decryption capability: own share plus backups of the others' shares."""

    def __init__(
        self,
        context: FheContext,
        index: int,
        secret: SecretKeyShare,
        backups: Mapping[int, KeyBackupShare],
        parties: int,
        threshold: int,
    ) -> None:
        self._context = context
        self.index = index
        self._secret = secret
        self._backups = dict(backups)
        self.parties = parties
        self.threshold = threshold
        self._stand_in_keys: dict[tuple[int, tuple[int, ...]], SecretKeyShare] = {}

    def _stand_in_key(self, absent: int, quorum: Quorum) -> SecretKeyShare:
        cache_key = (absent, quorum.members)
        key = self._stand_in_keys.get(cache_key)
        if key is None:
            backup = self._backups.get(absent)
            if backup is None:
                raise WrongPhase(f"keyholder {self.index} holds no backup share of keyholder {absent}")
            key = self._context.stand_in_key(backup, self.index, quorum.members, self.parties, self.threshold)
            self._stand_in_keys[cache_key] = key
        return key

    def partials(self, ciphertext: Ciphertext, quorum: Quorum) -> list[PartialShare]:
        """Own partial, then one stand-in partial per offline keyholder."""
        if quorum.parties != self.parties or quorum.threshold != self.threshold:
            raise InvalidInput("quorum does not match this committee's n and t")
        if self.index not in quorum.members:
            raise InvalidInput(f"keyholder {self.index} is not in the quorum {quorum.members}")
        own = self._context.partial_decrypt(ciphertext, self._secret, lead=self.index == quorum.lead)
        shares = [PartialShare(self.index, self.index, self._context.partial_to_bytes(own))]
        for absent in quorum.offline:
            stand_in = self._context.partial_decrypt(ciphertext, self._stand_in_key(absent, quorum), lead=False)
            shares.append(PartialShare(self.index, absent, self._context.partial_to_bytes(stand_in)))
        return shares


def fuse(context: FheContext, quorum: Quorum, shares: Sequence[PartialShare]) -> SlotVector:
    """Fuse a complete set of partials for `quorum` (exactly one per expected role)."""
    by_role = {}
    for share in shares:
        role = (share.producer, share.on_behalf_of)
        if role in by_role:
            raise InvalidInput(f"duplicate partial decryption from keyholder {share.producer} for {share.on_behalf_of}")
        by_role[role] = share
    expected = quorum.expected_partials()
    missing = [role for role in expected if role not in by_role]
    extra = [role for role in by_role if role not in expected]
    if missing or extra:
        raise InvalidInput(f"partial decryptions do not match quorum {quorum.members}: missing {missing}, unexpected {extra}")
    return context.fuse([context.partial_from_bytes(by_role[role].data) for role in expected])
