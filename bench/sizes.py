"""How big each part of `stagpack bench` runs: smoke (tests, seconds), default (minutes), full.

The privacy game's packs are count stags ("I will if at least N others do"), described by the
`others` of each intendo. Pairs are chosen so that the public pack size is equal and only the
thresholds differ — which is all stagpack must hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PackDesign:
    """One pack of the privacy game: the `others` of each of its count intendos."""

    name: str
    others: tuple[int, ...]

    def describe(self) -> str:
        thresholds = sorted({other + 1 for other in self.others})
        shown = ", ".join(str(level) for level in thresholds[:6]) + (" …" if len(thresholds) > 6 else "")
        return f"{len(self.others)} intendos, thresholds C ∈ {{{shown}}}"


@dataclass(frozen=True)
class Scenario:
    """Two packs an adversary must tell apart."""

    title: str
    first: PackDesign
    second: PackDesign


@dataclass(frozen=True)
class BenchSize:
    name: str
    parties: int
    threshold: int
    # privacy
    levels: int
    epochs: int  # observed epochs per pack
    folds: int  # cross-validation folds of the distinguishers
    permutations: int  # label permutations calibrating each distinguisher's null
    scenarios: tuple[Scenario, ...]
    # performance
    client_repeat: int
    ingest_count: int
    grpc_ingest_count: int  # 0: skip the gRPC ingest
    eval_sizes: tuple[int, ...]
    eval_levels: tuple[int, ...]
    eval_levels_pack: int
    eval_repeat: int
    hunt_members: tuple[int, ...]
    ceremony_sizes: tuple[int, ...]
    # the malicious-minority game (bench.minority): 2-of-3, defences off and on
    minority_levels: int = 16
    minority_epochs: int = 1  # crafted-mask epochs
    minority_new_per_epoch: int = 3  # intendos added before each of them
    minority_forgeries: int = 1  # epochs the narrowed-family forger tries
    minority_members: int = 2  # the validation batch, the hunt and the quiet pack timed
    # composition (bench.composition): cascades by DAG shape, gas by bundle size
    cascade_shapes: tuple[tuple[str, int], ...] = ()  # smoke: none (tests/protocol covers cascades)
    gas_members: tuple[int, ...] = (1, 4)
    gas_bundles: tuple[int, ...] = (2,)
    # shielded participation (bench.shielded)
    ring_sizes: tuple[int, ...] = (16,)
    ring_repeat: int = 1
    verifier_counts: tuple[int, ...] = (1, 3)
    anonymous_ingest: tuple[int, int] = (2, 16)  # (intendos per stag, ring members)


def distance_scenario(levels: int, size: int, far: int) -> Scenario:
    """`size` intendos that each need the others plus one more (1 away from firing), against
    `size` that need `far` more (equal pack size, equal public facts)."""
    if size + far > levels - 1:
        raise ValueError(f"a pack {far} intendos away from firing needs more than {levels} levels")
    return Scenario(
        f"1 vs {far} intendos away from firing",
        PackDesign("near", (size,) * size),
        PackDesign("far", (size + far - 1,) * size),
    )


def distribution_scenario(levels: int, size: int) -> Scenario:
    """Equal-size packs, thresholds all at one level against thresholds spread over the range."""
    middle = levels // 2
    spread = tuple(int(other) for other in np.linspace(size + 1, levels - 3, size).round())
    return Scenario(
        "same size, concentrated vs spread thresholds",
        PackDesign("concentrated", (middle - 1,) * size),
        PackDesign("spread", spread),
    )


SMOKE = BenchSize(  # tests: the machinery end to end in seconds, nothing statistically meaningful
    name="smoke", parties=2, threshold=2,
    levels=16, epochs=2, folds=2, permutations=10,
    scenarios=(distance_scenario(16, 2, 12),),
    client_repeat=1, ingest_count=2, grpc_ingest_count=0,
    eval_sizes=(10,), eval_levels=(16,), eval_levels_pack=10, eval_repeat=1,
    hunt_members=(), ceremony_sizes=(),
)

DEFAULT = BenchSize(
    name="default", parties=3, threshold=2,
    levels=60, epochs=30, folds=5, permutations=300,
    scenarios=(distance_scenario(60, 8, 50), distribution_scenario(60, 12)),
    client_repeat=12, ingest_count=48, grpc_ingest_count=24,
    eval_sizes=(100, 1_000, 10_000), eval_levels=(16, 64, 256, 1024, 4096, 8192), eval_levels_pack=100, eval_repeat=5,
    hunt_members=(5, 20, 60), ceremony_sizes=(3, 5),
    minority_levels=60, minority_epochs=6, minority_new_per_epoch=4, minority_forgeries=2, minority_members=60,
    cascade_shapes=(("depth", 1), ("depth", 2), ("depth", 4), ("width", 2), ("width", 4)),
    gas_members=(1, 8, 32, 128), gas_bundles=(2, 4, 8),
    ring_sizes=(16, 64, 256, 1024), ring_repeat=3, verifier_counts=(1, 3, 8), anonymous_ingest=(24, 256),
)

FULL = BenchSize(
    name="full", parties=5, threshold=3,
    levels=60, epochs=48, folds=8, permutations=500,
    scenarios=(distance_scenario(60, 8, 50), distribution_scenario(60, 12)),
    client_repeat=30, ingest_count=200, grpc_ingest_count=100,
    eval_sizes=(100, 300, 1_000, 3_000, 10_000), eval_levels=(16, 64, 256, 1024, 4096, 8192), eval_levels_pack=100, eval_repeat=9,
    hunt_members=(5, 20, 60, 120), ceremony_sizes=(3, 5, 7),
    minority_levels=60, minority_epochs=12, minority_new_per_epoch=4, minority_forgeries=3, minority_members=60,
    cascade_shapes=(("depth", 1), ("depth", 2), ("depth", 4), ("depth", 8), ("width", 2), ("width", 4), ("width", 8)),
    gas_members=(1, 8, 32, 64, 128), gas_bundles=(2, 4, 8, 16),
    ring_sizes=(16, 64, 256, 1024), ring_repeat=9, verifier_counts=(1, 3, 8, 16), anonymous_ingest=(24, 1024),
)

SIZES = {size.name: size for size in (SMOKE, DEFAULT, FULL)}
