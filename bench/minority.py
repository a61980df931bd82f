"""The malicious-minority game: the operator colluding with one keyholder of a 2-of-3 committee,
against the protocol with its defences off (no noise test, any t decrypt: a benchmark-only
setting that production configuration refuses) and on, in the same run (`stagpack bench`).

- **Crafted mask** (`bench.attacks.CraftedNoiseMasks`): keyholder 3's check mask carries
  κ = Δ/2^39 in its noise; every epoch the operator reads the check's noise from the partials it
  fetched and estimates c[ℓ] = d[ℓ] + ℓ at every level. Scored against the plaintext solver:
  epochs whose whole c came out exactly, and the share of levels right, next to the best guess
  from public facts alone (the pack size and the distribution the thresholds were drawn from).
- **Narrowed family** (`bench.attacks.Forger`): the operator leaves keyholder 3 out; keyholder
  1 shifts its partials to fire a hunt at level 2 that no threshold allows. Scored: hunts the
  ledger executed.
- **Costs**: a validation batch, a hunt of that many members and a non-firing epoch of a pack
  that size, each timed with the defences off and on (the attackers disarmed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stagpack.app.inprocess import InProcessDeployment
from stagpack.bench.attacks import (
    DEFENDED, UNDEFENDED, CheckTap, CraftedNoiseMasks, Forger, Relay, StepWatch, estimate_counts, read_check_noise,
)
from stagpack.bench.harness import EPOCH_MILLIS, BenchStag, Progress
from stagpack.bench.sizes import BenchSize
from stagpack.decrypt import DecryptingParty
from stagpack.errors import StagpackError
from stagpack.keyholder.local import intercepting
from stagpack.stag import ManualClock

FORGED_LEVEL = 2


@dataclass
class CraftedMaskGame:
    """The crafted-mask attacker over `epochs` non-firing epochs."""

    epochs: int = 0
    exact: int = 0  # epochs whose every c[ℓ] (ℓ = 1..L−1) the reading gave exactly
    levels_right: int = 0  # (epoch, level) pairs the reading got right
    baseline_right: int = 0  # ... that the best public guess got right
    levels_scored: int = 0
    reported: tuple[int, ...] = ()  # keyholders the aggregator reported as misbehaving

    @property
    def accuracy(self) -> float:
        return self.levels_right / self.levels_scored if self.levels_scored else 0.0

    @property
    def baseline(self) -> float:
        return self.baseline_right / self.levels_scored if self.levels_scored else 0.0


@dataclass
class NarrowedFamilyGame:
    attempts: int = 0
    forged: int = 0  # forged hunts certified and executed
    outcomes: list[str] = field(default_factory=list)  # the epochs' results


@dataclass
class DefenceCosts:
    members: int = 0
    validation_seconds: float = 0.0  # a batch of `members` intendos
    hunt_seconds: float = 0.0  # the epoch that fires a hunt of `members` members
    quiet_seconds: float = 0.0  # a non-firing epoch of a pack of `members`


@dataclass
class MinoritySetting:
    name: str  # "defences off" / "defences on"
    fault_bound: int
    noise_test: bool
    crafted: CraftedMaskGame
    narrowed: NarrowedFamilyGame
    costs: DefenceCosts


@dataclass
class MinorityResults:
    levels: int
    settings: list[MinoritySetting]


def run_minority(directory: Path, size: BenchSize, rng: np.random.Generator, progress: Progress) -> MinorityResults:
    settings = []
    for name, options in (("defences off", UNDEFENDED), ("defences on", DEFENDED)):
        progress.stage(f"malicious minority (2-of-3), {name}")
        settings.append(_run_setting(directory / name.replace(" ", "-"), name, options, size, rng, progress))
    return MinorityResults(size.minority_levels, settings)


def _run_setting(
    directory: Path, name: str, options: dict[str, object], size: BenchSize, rng: np.random.Generator, progress: Progress
) -> MinoritySetting:
    clock = ManualClock()
    masks, watch, relay = CraftedNoiseMasks(), StepWatch(), Relay(source=2)
    forgers: list[Forger] = []

    def forger(party: DecryptingParty) -> Forger:
        forgers.append(Forger(party, watch, relay, FORGED_LEVEL))
        return forgers[-1]

    deployment = InProcessDeployment.start(
        directory, 3, 2, clock=clock, masks={3: masks}, partials={1: forger}, **options  # type: ignore[arg-type]
    )
    masks.context = deployment.context
    for made in forgers:
        made.context = deployment.context
        made.armed = False
    committee = deployment.aggregator.committee
    crafted = _crafted_mask_game(deployment, clock, size, rng, progress, name)
    masks.armed = False
    narrowed = _narrowed_family_game(deployment, clock, forgers, watch, relay, size, progress, name)
    costs = _costs(deployment, clock, size, progress, name)
    return MinoritySetting(name, committee.fault_bound, committee.noise_test, crafted, narrowed, costs)


def _crafted_mask_game(
    deployment: InProcessDeployment, clock: ManualClock, size: BenchSize, rng: np.random.Generator, progress: Progress, name: str
) -> CraftedMaskGame:
    levels = size.minority_levels
    stag = BenchStag.create(deployment, clock, levels, "crafted mask")
    game = CraftedMaskGame()
    # thresholds drawn uniformly from the upper half: the pack does not fire, and the public
    # guess knows the distribution
    low, high = levels // 2, levels - 2
    tap = CheckTap()
    for epoch in range(size.minority_epochs):
        progress.update(f"{name}: crafted-mask epochs", epoch, size.minority_epochs)
        for _ in range(size.minority_new_per_epoch):
            stag.submit_count(int(rng.integers(low, high + 1)))
        stag.validate()
        clock.advance(EPOCH_MILLIS)
        snapshot = deployment.aggregator.snapshot(stag.stag_id)
        with intercepting(deployment.keyholders, tap):
            stag.run_due()
        truth = stag.counts()
        reading = read_check_noise(deployment, snapshot, tap)[0]
        estimate = estimate_counts(deployment.context, reading, levels)
        pack = len(stag.solver.pending_ids())
        prior = np.clip((np.arange(levels) - low) / (high - low + 1), 0.0, 1.0)  # P(level ≤ ℓ), level = others + 1
        guess = np.rint(pack * prior).astype(np.int64)
        scored = slice(1, levels)
        game.epochs += 1
        game.exact += bool(np.array_equal(estimate[scored], truth[scored]))
        game.levels_right += int(np.sum(estimate[scored] == truth[scored]))
        game.baseline_right += int(np.sum(guess[scored] == truth[scored]))
        game.levels_scored += levels - 1
    game.reported = tuple(sorted(deployment.aggregator.misbehaving_keyholders))
    return game


def _narrowed_family_game(
    deployment: InProcessDeployment, clock: ManualClock, forgers: list[Forger], watch: StepWatch, relay: Relay,
    size: BenchSize, progress: Progress, name: str,
) -> NarrowedFamilyGame:
    progress.update(f"{name}: narrowed family", 0, 1)
    levels = size.minority_levels
    stag = BenchStag.create(deployment, clock, levels, "narrowed family")
    for _ in range(2 * FORGED_LEVEL):
        stag.submit_count(levels - 2)  # nobody's condition can be met
    stag.validate()
    game = NarrowedFamilyGame()
    for forger in forgers:
        forger.armed = True
    absent = deployment.keyholders[2]
    absent.online = False  # the operator leaves keyholder 3 out
    try:
        with intercepting(deployment.keyholders, watch), intercepting(deployment.keyholders, relay):
            for _ in range(size.minority_forgeries):
                clock.advance(EPOCH_MILLIS)
                game.attempts += 1
                try:
                    stag.run_due()
                except StagpackError:
                    pass  # the defended protocol refuses: recorded as the epoch's result
                game.outcomes.append(stag.last_result())
    finally:
        absent.online = True
        for forger in forgers:
            forger.armed = False
    game.forged = len(deployment.aggregator.hunts(stag.stag_id))
    assert stag.solver.hunt() is None
    return game


def _costs(deployment: InProcessDeployment, clock: ManualClock, size: BenchSize, progress: Progress, name: str) -> DefenceCosts:
    members = size.minority_members
    levels = max(size.minority_levels, members + 2)
    costs = DefenceCosts(members)
    progress.update(f"{name}: a validation batch, a hunt of {members}, a quiet epoch", 0, 3)
    firing = BenchStag.create(deployment, clock, levels, "hunt cost")
    quiet = BenchStag.create(deployment, clock, levels, "quiet cost")
    for _ in range(members):
        firing.submit_count(members - 1)  # together a fixed point at `members`
        quiet.submit_count(levels - 2)  # never
    started = time.perf_counter()
    firing.validate()
    costs.validation_seconds = time.perf_counter() - started
    quiet.validate()
    clock.advance(EPOCH_MILLIS)
    costs.hunt_seconds = firing.run_due()
    if firing.last_result() != "hunt":
        raise RuntimeError(f"the {members}-member hunt did not fire: {firing.last_result()}")
    progress.update(f"{name}: a validation batch, a hunt of {members}, a quiet epoch", 2, 3)
    costs.quiet_seconds = quiet.run_due()
    if quiet.last_result() != "no-hunt":
        raise RuntimeError(f"the quiet epoch reported {quiet.last_result()}")
    return costs
