"""Shared fixtures. Key ceremonies are the expensive part (seconds each), so committees are
created once per test session and tests isolate themselves by creating their own stags."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from support.committees import KeyedCommittee, make_committee

from stagpack.app.inprocess import InProcessDeployment
from stagpack.fhe import FheContext
from stagpack.stag import ManualClock, now_millis

TIERS = ("unit", "protocol", "services")

settings.register_profile("stagpack", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("stagpack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier (the folder it lives in): unit tests run pure code,
    protocol tests whole deployments in one process, services tests real processes."""
    for item in items:
        for tier in TIERS:
            if f"/tests/{tier}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))


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


@pytest.fixture(scope="session")
def committee3(context: FheContext) -> KeyedCommittee:
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


@pytest.fixture(scope="session")
def committee2of3() -> KeyedCommittee:
    """A 2-of-3 committee on its own FheContext (a context binds exactly one committee key), so
    every 2-member quorum decrypts with stand-in partials for the third keyholder."""
    return make_committee(FheContext(), 3, 2, "unit-keyholder")
