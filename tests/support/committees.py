"""Committees made by the real ceremony code, with every keyholder's key material at hand so
that unit tests can decrypt directly (tests only: production code never holds them together)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Sequence

from stagpack.decrypt import DecryptingParty, PartialShare, Quorum, quorum_family
from stagpack.dkg import CommitteeBundle, DkgParty, LocalCeremonyPeer, run_ceremony
from stagpack.fhe import Ciphertext, FheContext, PublicKey, SecretKeyShare
from stagpack.identity import KeyholderIdentity, SigningIdentity

# The aggregator and the ceremony's coordinator every test committee names (fixed keys: a test
# that needs to call a keyholder signs its credentials with these).
AGGREGATOR = SigningIdentity(b"\x01" * 32)
COORDINATOR = SigningIdentity(b"\x02" * 32)


@dataclass
class Committee:
    """A committee created by the real ceremony code, with every party's key material at hand
    so tests can decrypt directly (tests only: production code never holds them together)."""

    context: FheContext
    bundle: CommitteeBundle
    parties: list[DecryptingParty]
    secrets: list[SecretKeyShare] = field(default_factory=list)  # each party's key share, in order

    @property
    def joint_key(self) -> PublicKey:
        return self.context.joint_key

    @property
    def threshold(self) -> int:
        return self.bundle.transcript.body.threshold

    @property
    def fault_bound(self) -> int:
        return self.bundle.transcript.body.fault_bound

    def quorum(self, members: tuple[int, ...] | None = None) -> Quorum:
        count = len(self.parties)
        return Quorum(count, self.threshold, members or tuple(range(1, count + 1)))

    def family(self, live: Sequence[int] | None = None) -> tuple[Quorum, ...]:
        """The prescribed family of quorums when `live` (default: everyone) take part, with the
        committee's fault bound (fewer than t + f live raise CommitteeUnavailable)."""
        count = len(self.parties)
        return quorum_family(count, self.threshold, frozenset(live or range(1, count + 1)), self.fault_bound)

    def partials(self, ciphertext: Ciphertext, quorums: Quorum | Sequence[Quorum] | None = None) -> list[PartialShare]:
        """Every partial the quorum (or family of quorums) needs: each member's own partial
        once, plus its stand-ins for each quorum it belongs to."""
        family = [quorums or self.quorum()] if isinstance(quorums, Quorum) or quorums is None else list(quorums)
        members = {member for quorum in family for member in quorum.members}
        return [share for party in self.parties if party.index in members for share in party.partials(ciphertext, family)]


@dataclass
class KeyedCommittee(Committee):
    """A committee that also keeps each keyholder's identity, so tests can sign (and forge)
    keyholder certificates and open backup boxes (tests only)."""

    identities: tuple[KeyholderIdentity, ...] = ()
    dkg_parties: tuple[DkgParty, ...] = ()  # each keyholder's side of the ceremony, completed
    progress: tuple[tuple[int, int], ...] = ()  # (done, total) as the ceremony reported it


def make_committee(
    context: FheContext, parties: int, threshold: int, name: str = "test-keyholder", *, fault_bound: int | None = None
) -> KeyedCommittee:
    """A t-of-n committee from a real ceremony among in-process parties, run by COORDINATOR for
    AGGREGATOR (`fault_bound` defaults to the ceremony's: 1 where n > t)."""
    identities = tuple(KeyholderIdentity(f"{name}-{index}") for index in range(1, parties + 1))
    dkg_parties = [DkgParty(context, identity, coordinator_key=COORDINATOR.verify_key) for identity in identities]
    progress: list[tuple[int, int]] = []
    bundle = run_ceremony(
        context, [LocalCeremonyPeer(party, identity.public) for party, identity in zip(dkg_parties, identities)], threshold,
        lambda what, done, total: progress.append((done, total)),
        aggregator_key=AGGREGATOR.verify_key, coordinator_key=COORDINATOR.verify_key, fault_bound=fault_bound,
    )
    decrypting, secrets = [], []
    for index, party in enumerate(dkg_parties, start=1):
        assert party.outcome is not None
        decrypting.append(DecryptingParty(context, index, party.outcome.secret, party.outcome.backups, parties, threshold))
        secrets.append(party.outcome.secret)
    return KeyedCommittee(context, bundle, decrypting, secrets, identities, tuple(dkg_parties), tuple(progress))


@functools.lru_cache(maxsize=None)
def shared_committee(parties: int, threshold: int) -> KeyedCommittee:
    """One t-of-n committee for several test modules (ceremonies of five or more keyholders cost
    seconds, most of it the self-test): test_decrypt's 3-of-5 and test_dkg's are the same, and
    test_dkg lets it go (`release_shared_committees`) once its tests of that shape are done."""
    return make_committee(FheContext(), parties, threshold, f"shared-{threshold}-of-{parties}")


def release_shared_committees() -> None:
    shared_committee.cache_clear()
    FheContext.release_unused_evaluation_keys()
