"""Partial decryption and fusion, n-of-n or t-of-n (DESIGN.md §6), with no policy.

A `DecryptingParty` is one keyholder's cryptographic role: its own key share and the backup
shares it holds of the others'. It produces, for a ciphertext and a quorum, every partial it owes:
its own, and one stand-in for each offline keyholder. No secret key is ever reconstructed: a
stand-in key is λ_j^S times one Shamir share, useless on its own.

`fuse` combines a complete set of one quorum's partials; only the `reveal_*` functions of
`stagpack.decrypt` call it, and they read the result through `facts`, so no caller outside the
package holds a raw plaintext vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from stagpack.decrypt.quorum import Quorum
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.fhe import Ciphertext, FheContext, KeyBackupShare, PartialDecryption, SecretKeyShare, SlotVector


@dataclass(frozen=True)
class PartialShare:
    """One partial decryption as it travels: who made it, for whom, in which quorum (empty for a
    keyholder's own partial, which serves every quorum), and its bytes."""

    producer: int
    on_behalf_of: int
    quorum: tuple[int, ...]
    data: bytes


class PartialSource(Protocol):
    """How a keyholder produces its partial decryptions: `DecryptingParty.partials`, or what a
    test or benchmark puts in its place to play a dishonest keyholder through the production
    code (in sessions and in the ceremony's self-test alike)."""

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]: ...


PartialSourceFactory = Callable[["DecryptingParty"], PartialSource]


def honest(party: DecryptingParty) -> PartialSource:
    return party


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

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        """This keyholder's own partial (unless `own` is False because it was already released:
        every fresh partial of a ciphertext is another flooding sample), then a stand-in partial
        for each keyholder outside each quorum it belongs to."""
        if any(quorum.parties != self.parties or quorum.threshold != self.threshold for quorum in family):
            raise InvalidInput("quorum does not match this committee's n and t")
        mine = [quorum for quorum in family if self.index in quorum.members]
        if not mine:
            raise InvalidInput(f"keyholder {self.index} is in none of the quorums")
        shares = []
        if own:
            partial = self._context.partial_decrypt(ciphertext, self._secret, lead=False)
            shares.append(PartialShare(self.index, self.index, (), self._context.partial_to_bytes(partial)))
        for quorum in mine:
            for absent in quorum.offline:
                stand_in = self._context.partial_decrypt(ciphertext, self._stand_in_key(absent, quorum), lead=False)
                shares.append(PartialShare(self.index, absent, quorum.members, self._context.partial_to_bytes(stand_in)))
        return shares


def quorum_partials(
    context: FheContext, ciphertext: Ciphertext, quorum: Quorum, shares: Sequence[PartialShare]
) -> list[PartialDecryption]:
    """Every partial one quorum's fusion needs, in order: the public lead term, the members' own
    partials and their stand-ins. `shares` may hold other quorums' too."""
    expected = quorum.expected_partials()
    by_role: dict[tuple[int, int], PartialShare] = {}
    for share in shares:
        if share.quorum not in ((), quorum.members):
            continue
        if share.quorum == () and share.producer != share.on_behalf_of:
            raise InvalidInput(f"keyholder {share.producer}'s stand-in partial names no quorum")
        role = (share.producer, share.on_behalf_of)
        if share.quorum and role not in expected:
            raise InvalidInput(
                f"unexpected stand-in partial from keyholder {share.producer} for {share.on_behalf_of} in quorum {quorum.members}"
            )
        if role in by_role:
            raise InvalidInput(f"duplicate partial decryption from keyholder {share.producer} for {share.on_behalf_of}")
        by_role[role] = share
    missing = [role for role in expected if role not in by_role]
    if missing:
        raise InvalidInput(f"partial decryptions for quorum {quorum.members} are incomplete: missing {missing}")
    partials = [context.partial_from_bytes(by_role[role].data) for role in expected]
    if any(partial.towers != ciphertext.towers for partial in partials):
        raise InvalidInput("a partial decryption is not at the level of the ciphertext it claims to decrypt")
    return [context.public_lead_partial(ciphertext), *partials]


def fuse(context: FheContext, ciphertext: Ciphertext, quorum: Quorum, shares: Sequence[PartialShare]) -> SlotVector:
    """Fuse the partials of one quorum (own partials of its members, its stand-ins, and the
    public lead term) into the plaintext slot vector."""
    return context.fuse(quorum_partials(context, ciphertext, quorum, shares))
