"""Shared fixtures. Key ceremonies are the expensive part (seconds each), so committees are
created once per test session and tests isolate themselves by creating their own stags."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest
from hypothesis import HealthCheck, settings

from stagpack.decrypt import DecryptingParty, Quorum, quorum_family
from stagpack.dkg import CommitteeBundle, DkgParty, LocalCeremonyPeer, run_ceremony
from stagpack.fhe import FheContext
from stagpack.identity import KeyholderIdentity
from stagpack.inprocess import InProcessDeployment
from stagpack.stag import ManualClock, now_millis

settings.register_profile("stagpack", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("stagpack")


@pytest.fixture(scope="module", autouse=True)
def _collect_after_module() -> Iterator[None]:
    """Module fixtures (in-process deployments, committees) hold gigabytes of key material,
    and OpenFHE keeps every committee's evaluation keys in process-wide maps: free both as soon
    as their module is done."""
    yield
    FheContext.release_unused_evaluation_keys()


@pytest.fixture(scope="module")
def scratch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """Directories for a module's deployments. A deployment's stores hold hundreds of megabytes
    (every replica keeps every ciphertext), so they are removed once the module is done, unless
    one of its tests failed: then they stay for the post-mortem (pytest keeps the last run's)."""
    made: list[Path] = []
    failures_before = request.session.testsfailed

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failures_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def context() -> FheContext:
    return FheContext()


@dataclass
class Committee:
    """A committee created by the real ceremony code, with every party's key material at hand
    so tests can decrypt directly (tests only: production code never holds them together)."""

    context: FheContext
    bundle: CommitteeBundle
    parties: list[DecryptingParty]

    @property
    def joint_key(self):  # type: ignore[no-untyped-def]
        return self.context.joint_key

    @property
    def threshold(self) -> int:
        return self.bundle.transcript.body.threshold

    def quorum(self, members: tuple[int, ...] | None = None) -> Quorum:
        count = len(self.parties)
        return Quorum(count, self.threshold, members or tuple(range(1, count + 1)))

    def family(self, live: Sequence[int] | None = None) -> tuple[Quorum, ...]:
        """The prescribed family of quorums when `live` (default: everyone) take part."""
        count = len(self.parties)
        return quorum_family(count, self.threshold, frozenset(live or range(1, count + 1)))

    def partials(self, ciphertext, quorums: Quorum | Sequence[Quorum] | None = None):  # type: ignore[no-untyped-def]
        """Every partial the quorum (or family of quorums) needs: each member's own partial
        once, plus its stand-ins for each quorum it belongs to."""
        family = [quorums or self.quorum()] if isinstance(quorums, Quorum) or quorums is None else list(quorums)
        members = {member for quorum in family for member in quorum.members}
        return [share for party in self.parties if party.index in members for share in party.partials(ciphertext, family)]


def make_committee(context: FheContext, parties: int, threshold: int) -> Committee:
    peers = []
    for index in range(parties):
        identity = KeyholderIdentity(f"test-keyholder-{index + 1}")
        peers.append(LocalCeremonyPeer(DkgParty(context, identity), identity.public))
    bundle = run_ceremony(context, peers, threshold)
    decrypting = []
    for index, peer in enumerate(peers, start=1):
        assert peer.outcome is not None
        decrypting.append(
            DecryptingParty(context, index, peer.outcome.secret, peer.outcome.backups, parties, threshold)
        )
    return Committee(context, bundle, decrypting)


@pytest.fixture(scope="session")
def committee3(context: FheContext) -> Committee:
    """A 3-of-3 committee (one per test session)."""
    return make_committee(context, 3, 3)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


_deployment_counter = itertools.count()


@pytest.fixture
def deployment_factory(tmp_path: Path) -> Iterator[Callable[..., InProcessDeployment]]:
    """Start in-process deployments (own stores under tmp_path) with the given n, t, clock."""
    started: list[InProcessDeployment] = []

    def start(parties: int = 3, threshold: int | None = None, *, clock: Callable[[], int] = now_millis, **options: object) -> InProcessDeployment:
        directory = tmp_path / f"deployment-{next(_deployment_counter)}"
        deployment = InProcessDeployment.start(directory, parties, threshold, clock=clock, **options)  # type: ignore[arg-type]
        started.append(deployment)
        return deployment

    yield start


# --- a t-of-n committee that keeps its keyholders' identities (unit tests) -------------------


@dataclass
class KeyedCommittee(Committee):
    """A committee that also keeps each keyholder's identity, so tests can sign (and forge)
    keyholder certificates and open backup boxes (tests only)."""

    identities: tuple[KeyholderIdentity, ...] = ()


@pytest.fixture(scope="session")
def committee2of3() -> KeyedCommittee:
    """A 2-of-3 committee on its own FheContext (a context binds exactly one committee key), so
    every 2-member quorum decrypts with stand-in partials for the third keyholder."""
    context = FheContext()
    identities = tuple(KeyholderIdentity(f"unit-keyholder-{index}") for index in range(1, 4))
    peers = [LocalCeremonyPeer(DkgParty(context, identity), identity.public) for identity in identities]
    bundle = run_ceremony(context, peers, 2)
    decrypting = []
    for index, peer in enumerate(peers, start=1):
        assert peer.outcome is not None
        decrypting.append(DecryptingParty(context, index, peer.outcome.secret, peer.outcome.backups, 3, 2))
    return KeyedCommittee(context, bundle, decrypting, identities)
