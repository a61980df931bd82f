"""Helpers for tests that run the services as real processes on loopback ports.

Waiting is always on an observable condition (a status, a health check, a process exit) with a
deadline — never a fixed sleep.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from stagpack.accounts import Account, TransferKind
from stagpack.encoding import StagKind, Threshold
from stagpack.errors import NotFound, StagpackError
from stagpack.identity import SigningIdentity
from stagpack.app.launcher import LocalDeployment
from stagpack.participant.client import AggregatorClient
from stagpack.solver import HeightOracle, Hunt
from stagpack.stag import StagSpec, now_millis

T = TypeVar("T")
WORKER = Path(__file__).parent / "workers" / "submit_worker.py"
CAPITAL_TAG = "main"  # the escrow account that backs each participant's capital intendo


def wait_for(condition: Callable[[], T], what: str, seconds: float = 180.0, interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StagpackError as error:  # a service restarting answers UNAVAILABLE for a moment
            last_error = error
            value = None  # type: ignore[assignment]
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


@dataclass
class Member:
    """A simulated participant: its identity seed and plaintext condition."""

    seed: bytes
    threshold: Threshold
    intendo_id: bytes = b""
    height: int = 0
    counted_at: int = 0
    withdrawn_at: int = 0


@dataclass
class TrackedStag:
    """A stag plus everything the plaintext oracle needs to judge its hunts."""

    spec: StagSpec
    stag_id: bytes
    oracle: HeightOracle
    members: dict[bytes, Member] = field(default_factory=dict)  # by intendo id
    hunts_checked: int = 0

    def learn(self, client: AggregatorClient) -> None:
        """Ask where each intendo stands; record counted and withdrawn heights for the oracle."""
        for member in self.members.values():
            if member.counted_at:
                continue
            status = client.intendo_status(self.stag_id, member.intendo_id)
            if status.counted_at_height:
                member.counted_at = int(status.counted_at_height)
                self.oracle.counted(member.intendo_id, member.counted_at)
                if member.withdrawn_at:
                    self.oracle.withdrawn(member.intendo_id, member.withdrawn_at)

    def check_new_hunts(self, client: AggregatorClient) -> list[Hunt]:
        """Every hunt certified since the last call equals the oracle's hunt at its height."""
        self.learn(client)
        status = client.status(self.stag_id)
        checked = []
        for hunt in list(status.hunts)[self.hunts_checked :]:
            expected = self.oracle.expected_hunt(int(hunt.log_height))
            members = {bytes(member.intendo_id) for member in hunt.members}
            assert expected is not None, f"a hunt fired at epoch {hunt.epoch} where the solver finds none"
            assert (int(hunt.level), members) == (expected.level, set(expected.members)), (
                f"epoch {hunt.epoch}: FHE level {hunt.level} with {len(members)} members; "
                f"solver level {expected.level} with {len(expected.members)}"
            )
            self.oracle.execute(expected)
            self.hunts_checked += 1
            checked.append(expected)
        return checked


class Services:
    """A LocalDeployment with a client and convenience methods."""

    def __init__(self, deployment: LocalDeployment) -> None:
        self.deployment = deployment
        assert deployment.aggregator is not None
        self.address = deployment.aggregator.address
        self.client = AggregatorClient(self.address, timeout_seconds=60)

    def new_stag(self, kind: StagKind = StagKind.COUNT, levels: int = 40, epoch_millis: int = 1500, **extra: object) -> TrackedStag:
        if kind is StagKind.CAPITAL:
            extra.setdefault("beneficiary", Account(SigningIdentity().verify_key, "proceeds"))
        spec = StagSpec.new(
            committee=self.client.committee_id, kind=kind, levels=levels, epoch_millis=epoch_millis,
            opens_at_millis=now_millis(), **extra,  # type: ignore[arg-type]
        )
        stag_id = self.client.create_stag(spec)
        return TrackedStag(spec, stag_id, HeightOracle(levels))

    def submit(self, stag: TrackedStag, threshold: Threshold, seed: bytes | None = None) -> Member:
        member = Member(seed or os.urandom(32), threshold)
        identity = SigningIdentity(member.seed)
        tag = ""
        if stag.spec.kind is StagKind.CAPITAL:
            tag = CAPITAL_TAG
            fees = stag.spec.fees.submission + stag.spec.fees.member if stag.spec.fees is not None else 0
            self.client.transfer(identity, TransferKind.DEPOSIT, tag, threshold.weight + fees)
        prepared = self.client.prepare(stag.spec, identity, threshold, tag)
        member.intendo_id, member.height = self.client.submit(prepared)
        stag.members[member.intendo_id] = member
        stag.oracle.intendo(member.intendo_id, threshold.level, threshold.weight)
        return member

    def withdraw(self, stag: TrackedStag, member: Member) -> None:
        member.withdrawn_at = self.client.withdraw(SigningIdentity(member.seed), stag.stag_id, member.intendo_id)
        stag.learn(self.client)
        if member.counted_at:
            stag.oracle.withdrawn(member.intendo_id, member.withdrawn_at)

    def submit_from_processes(
        self, stag: TrackedStag, thresholds: list[Threshold], processes: int, directory: Path
    ) -> tuple[list[subprocess.Popen[str]], dict[str, Threshold]]:
        """Start `processes` participant processes that submit `thresholds` between them;
        returns the processes and each identity seed's condition."""
        jobs = [thresholds[index::processes] for index in range(processes)]
        workers = []
        conditions: dict[str, Threshold] = {}
        for number, job in enumerate(jobs):
            items = [{"seed": os.urandom(32).hex(), "level": t.level, "weight": t.weight} for t in job]
            conditions.update({str(item["seed"]): threshold for item, threshold in zip(items, job)})
            path = directory / f"job-{stag.stag_id.hex()[:8]}-{number}.json"
            path.write_text(json.dumps({"aggregator": self.address, "stag_id": stag.stag_id.hex(), "intendos": items}))
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
            )
        return workers, conditions

    def collect(self, stag: TrackedStag, workers: list[subprocess.Popen[str]], timeout: float = 600) -> list[dict[str, object]]:
        """Wait for participant processes; record every acknowledged submission."""
        acknowledged = []
        for worker in workers:
            output, errors = worker.communicate(timeout=timeout)
            for line in output.splitlines():
                record = json.loads(line)
                if "intendo_id" in record:
                    acknowledged.append(record)
        return acknowledged

    def register(self, stag: TrackedStag, records: list[dict[str, object]], conditions: dict[str, Threshold]) -> None:
        for record in records:
            intendo_id = bytes.fromhex(str(record["intendo_id"]))
            threshold = conditions[str(record["seed"])]
            member = Member(bytes.fromhex(str(record["seed"])), threshold, intendo_id, int(record["height"]))  # type: ignore[call-overload]
            stag.members[intendo_id] = member
            stag.oracle.intendo(intendo_id, threshold.level, threshold.weight)

    def settled(self, stag: TrackedStag) -> bool:
        """Nothing awaits validation and the pack at the current log height has been evaluated
        (the service then lets epochs pass until something changes)."""
        status = self.client.status(stag.stag_id)
        return status.awaiting_validation == 0 and any(
            int(epoch.log_height) == int(status.log_height) and epoch.result in ("no-hunt", "hunt", "empty")
            for epoch in status.epochs
        )

    def settle(self, stag: TrackedStag, seconds: float = 240) -> None:
        wait_for(lambda: self.settled(stag), f"stag {stag.stag_id.hex()[:8]} to settle", seconds)

    def exists(self, stag: TrackedStag, intendo_id: bytes) -> bool:
        try:
            self.client.intendo_status(stag.stag_id, intendo_id)
        except NotFound:
            return False
        return True


def random_count_thresholds(rng: random.Random, count: int, levels: int, low: int, high: int) -> list[Threshold]:
    return [Threshold.count(rng.randint(low, min(high, levels - 2)), levels=levels) for _ in range(count)]


# -- kill patterns (t-of-n with real processes) -------------------------------------------------


def patterns(parties: int, threshold: int) -> list[frozenset[int]]:
    """Every set of at most n − t keyholders, ordered so consecutive sets differ by one keyholder
    where possible (few kills and restarts)."""
    remaining = [frozenset(c) for size in range(parties - threshold + 1) for c in itertools.combinations(range(1, parties + 1), size)]
    ordered = [remaining.pop(0)]
    while remaining:
        current = ordered[-1]
        best = min(remaining, key=lambda candidate: (len(candidate ^ current), sorted(candidate)))
        remaining.remove(best)
        ordered.append(best)
    return ordered


def fire_next_hunt(services: Services, stag: TrackedStag, batch: int = 3) -> None:
    """Add `batch` intendos that need exactly executed level + batch members (including
    themselves): a new fixed point just above the executed level."""
    executed = int(services.client.status(stag.stag_id).executed_level)
    for _ in range(batch):
        services.submit(stag, Threshold.count(executed + batch - 1, levels=stag.spec.levels))
    before = stag.hunts_checked
    wait_for(lambda: stag.check_new_hunts(services.client) or stag.hunts_checked > before, "the next hunt", 240)


def covering_walk(parties: int, threshold: int) -> list[frozenset[int]]:
    """A short walk through kill patterns that still has every size up to n − t (the lead,
    keyholder 1, in the first ones) and kills every keyholder at least once: {}, {1}, {1, 2}, …,
    {1, …, n − t}, then runs of n − t further keyholders (the last run wraps around to keyholder
    1). 4-of-7: {}, {1}, {1,2}, {1,2,3}, {4,5,6}, {7,1,2}; 3-of-5: {}, {1}, {1,2}, {3,4}, {5,1}."""
    most = parties - threshold
    walk = [frozenset(range(1, size + 1)) for size in range(most + 1)]
    start = most + 1
    while start <= parties:
        walk.append(frozenset((start - 1 + offset) % parties + 1 for offset in range(most)))
        start += most
    return walk


def visit_every_pattern(services: Services, parties: int, threshold: int, walk: list[frozenset[int]] | None = None) -> int:
    deployment = services.deployment
    walk = walk if walk is not None else patterns(parties, threshold)
    stag = services.new_stag(levels=3 * len(walk) + 16, epoch_millis=800)
    down: frozenset[int] = frozenset()
    visited = 0
    for pattern in walk:
        for index in sorted(down - pattern):
            deployment.restart(f"keyholder-{index}")
        for index in sorted(pattern - down):
            deployment.service(f"keyholder-{index}").kill()
        down = pattern
        fire_next_hunt(services, stag)
        visited += 1
    for index in sorted(down):
        deployment.restart(f"keyholder-{index}")
    assert stag.hunts_checked == visited
    return visited


def deployment_fixture(directory: Path, parties: int, threshold: int, fault_bound: int | None = None) -> Iterator[Services]:
    """A started deployment; `fault_bound` is the committee's f (default 1 where n > t, when
    every step needs t + 1 keyholders live): kill patterns of up to n − t keyholders need 0."""
    deployment = LocalDeployment.create(directory, parties, threshold, tick_millis=150, fault_bound=fault_bound)
    deployment.start()
    try:
        yield Services(deployment)
    finally:
        deployment.stop()
