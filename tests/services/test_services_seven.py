"""t-of-n with real processes, 4-of-7: hunts keep resolving when keyholders are killed with kill -9.

In a module of its own so that the smaller committees' service processes (module fixtures of
test_services_threshold.py) are gone before seven keyholders start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.services import deployment_fixture, patterns, visit_every_pattern

pytestmark = [pytest.mark.processes]


@pytest.mark.slow
def test_killed_keyholders_of_seven(tmp_path: Path) -> None:
    """n=7, t=4. All 64 patterns take well over half an hour on 2 cores (each pattern is a
    validation and a hunt among up to seven keyholder processes), too long for every CI run:
    by default a walk of 4 patterns, {1}, {2, 3}, {4, 5, 6}, {7, 1, 2} (every size from 1 to
    n − t, the lead first, every keyholder killed; it was 16 before the noise test doubled a
    session's cost, and every committee's ceremony decrypts its self-test with every quorum);
    STAGPACK_EVERY_PATTERN=1 visits all 64.
    The committee has fault bound f = 0 (with the default f = 1 every step needs five)."""
    every = os.environ.get("STAGPACK_EVERY_PATTERN") == "1"
    walk = patterns(7, 4) if every else [frozenset({1}), frozenset({2, 3}), frozenset({4, 5, 6}), frozenset({7, 1, 2})]
    assert len(walk) == (64 if every else 4) and len(set(walk)) == len(walk)
    assert {len(pattern) for pattern in walk} >= {1, 2, 3} and set().union(*walk) == set(range(1, 8))
    for services in deployment_fixture(tmp_path, 7, 4, fault_bound=0):  # t live suffice
        assert visit_every_pattern(services, 7, 4, walk) == len(walk)
