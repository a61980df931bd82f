"""The operator-view distinguishing game (accumulation opacity, DESIGN.md §1 and §3).

Two packs of equal public size — one close to firing and one far, or two threshold
distributions — run side by side in one in-process deployment for the same epochs, in a random
order each epoch so that drift on a shared host hits both alike. For every epoch of every pack
the benchmark records what the aggregator (the operator) sees: the wall time of the session and
of each keyholder call, the encoded size of every message, the bytes of the partial
decryptions, and the fused hunt-check vector (the only output a non-firing epoch decrypts).
It also records what two alternatives a user might pick instead would show: a public progress
counter (the solver's distance to firing) and the count vector c decrypted directly.

Distinguishers are fitted and scored by cross-validation (`stagpack.bench.stats`); the masked
outputs are also tested for uniformity on Z_p* and for homogeneity between the two packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import numpy.typing as npt

from stagpack.fhe import SlotVector
from stagpack.app.inprocess import InProcessDeployment

from stagpack.bench.harness import EPOCH_MILLIS, BenchStag, CheckCapture, Progress, TrafficRecorder, window_values
from stagpack.bench.sizes import BenchSize, PackDesign, Scenario
from stagpack.bench.stats import (
    CHI_SQUARE_CRITICAL_15,
    Accuracy,
    NullRange,
    Samples,
    Scorer,
    bootstrap_mean_difference,
    bucket_counts,
    centroid_accuracy,
    chi_square_two_samples,
    chi_square_uniform,
    permutation_null,
    threshold_accuracy,
)
from stagpack.stag import ManualClock


@dataclass
class EpochObservation:
    """One epoch of one pack, as the operator sees it (plus the two baselines' views)."""

    epoch: int
    result: str
    session_seconds: float
    check_seconds: float  # slowest keyholder's answer to the check step
    message_bytes: int  # every request and response between aggregator and keyholders
    calls: int
    partial_mean_byte: float
    window: SlotVector  # fused check vector at the masked levels of both rows
    outside_nonzero: int  # slots outside the window that decrypted non-zero (must be 0)
    vectors: int  # distinct fused check vectors captured (1 per non-firing session)
    distance: int  # baseline: a public progress counter
    counts: SlotVector  # baseline: c decrypted directly


@dataclass
class PackRun:
    design: PackDesign
    stag: BenchStag
    ciphertext_mean_bytes: list[float] = field(default_factory=list)  # per submitted intendo
    observations: list[EpochObservation] = field(default_factory=list)

    def values(self) -> SlotVector:
        return np.concatenate([observation.window for observation in self.observations])


@dataclass(frozen=True)
class Distinguisher:
    name: str
    observable: str  # timing, sizes, ciphertext bytes, decrypted output, baseline
    accuracy: Accuracy
    null: NullRange  # the same procedure on permuted labels

    @property
    def baseline(self) -> bool:
        return self.observable == "baseline"


@dataclass(frozen=True)
class UniformityRow:
    pack: str
    slots: int
    zeros: int
    expected_zeros: float
    chi_square: float

    @property
    def passed(self) -> bool:
        return self.chi_square < CHI_SQUARE_CRITICAL_15


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    first: PackRun
    second: PackRun
    distinguishers: tuple[Distinguisher, ...]
    homogeneity: float  # two-sample chi-square of the masked outputs
    timing_difference: tuple[float, float, float]  # ms: second − first, 95 % bootstrap interval

    @property
    def homogeneous(self) -> bool:
        return self.homogeneity < CHI_SQUARE_CRITICAL_15

    def best_operator(self) -> Distinguisher:
        return max((d for d in self.distinguishers if not d.baseline), key=lambda d: d.accuracy.advantage)


@dataclass
class PrivacyResults:
    size: BenchSize
    scenarios: list[ScenarioResult]
    uniformity: list[UniformityRow]
    plaintext_modulus: int
    mean_session_seconds: float
    mean_message_bytes: float


def _observe(stag: BenchStag, recorder: TrafficRecorder, capture: CheckCapture, row_width: int) -> EpochObservation:
    recorder.take()
    capture.take()
    seconds = stag.run_due()
    exchanges = recorder.take()
    vectors = capture.take()
    levels = stag.spec.levels
    executed = stag.solver.executed_level
    if vectors:
        window, outside = window_values(vectors[0], levels, executed, row_width)
    else:  # no check was decrypted (should not happen for a non-empty pack)
        window, outside = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    checks = [exchange.seconds for exchange in exchanges if exchange.call == "decrypt" and exchange.step == "check"]
    partial_bytes = [exchange.payload_mean_byte for exchange in exchanges if exchange.call == "decrypt"]
    return EpochObservation(
        epoch=stag.spec.current_epoch(stag.clock()),
        result=stag.last_result(),
        session_seconds=seconds,
        check_seconds=max(checks, default=0.0),
        message_bytes=sum(exchange.request_bytes + exchange.response_bytes for exchange in exchanges),
        calls=len(exchanges),
        partial_mean_byte=float(np.nanmean(partial_bytes)) if partial_bytes else float("nan"),
        window=window,
        outside_nonzero=int(np.count_nonzero(outside)),
        vectors=len(vectors),
        distance=stag.distance_to_firing(),
        counts=stag.counts(),
    )


def _differing_levels(first: PackRun, second: PackRun) -> npt.NDArray[np.bool_]:
    """Window positions (both rows) where the two packs' d = c − ℓ differ: where an adversary who
    knows both candidate packs would look."""
    levels = first.stag.spec.levels
    differs = first.observations[0].counts[1:levels] != second.observations[0].counts[1:levels]
    return np.concatenate([differs, differs])


def distinguish(
    scenario: Scenario, first: PackRun, second: PackRun, modulus: int, folds: int, permutations: int, rng: np.random.Generator
) -> ScenarioResult:
    """Every distinguisher of the report on one scenario (masked values live in Z_modulus), each
    with its permutation null."""
    a, b = first.observations, second.observations
    differing = _differing_levels(first, second)

    def mean_where(observation: EpochObservation) -> float:
        values = observation.window[differing] if differing.any() else observation.window
        return float(values.mean())

    def chi_square(observation: EpochObservation) -> float:
        return chi_square_uniform(bucket_counts(observation.window, modulus))

    scalars: list[tuple[str, str, Callable[[EpochObservation], float]]] = [
        ("session wall time (threshold)", "timing", lambda o: o.session_seconds),
        ("check-step latency, slowest keyholder (threshold)", "timing", lambda o: o.check_seconds),
        ("bytes exchanged with keyholders per session", "sizes", lambda o: o.message_bytes),
        ("keyholder calls per session", "sizes", lambda o: o.calls),
        ("partial decryptions: mean byte value", "ciphertext bytes", lambda o: o.partial_mean_byte),
        ("decrypted check: number of zero slots", "decrypted output", lambda o: np.count_nonzero(o.window == 0)),
        ("decrypted check: mean of all masked slots", "decrypted output", lambda o: float(o.window.mean())),
        ("decrypted check: mean where the packs' d differ", "decrypted output", mean_where),
        ("decrypted check: chi-square vs uniform", "decrypted output", chi_square),
        ("public progress counter: distance to firing", "baseline", lambda o: o.distance),
    ]
    features: list[tuple[str, str, Samples, Samples, Scorer]] = [
        (name, observable, np.array([feature(o) for o in a], dtype=float), np.array([feature(o) for o in b], dtype=float), threshold_accuracy)
        for name, observable, feature in scalars
    ]
    features.insert(5, (
        "intendo ciphertexts: mean byte value (per intendo)", "ciphertext bytes",
        np.array(first.ciphertext_mean_bytes), np.array(second.ciphertext_mean_bytes), threshold_accuracy,
    ))
    features.insert(10, (
        "decrypted check: nearest centroid on all slots", "decrypted output",
        np.stack([o.window for o in a]) / modulus, np.stack([o.window for o in b]) / modulus, centroid_accuracy,
    ))
    features.append((
        "decrypting c directly: nearest centroid on c", "baseline",
        np.stack([o.counts for o in a]).astype(float), np.stack([o.counts for o in b]).astype(float), centroid_accuracy,
    ))
    found = []
    for name, observable, first_values, second_values, scorer in features:
        accuracy = scorer(first_values, second_values, folds, rng)
        null = permutation_null(first_values, second_values, scorer, folds, permutations, accuracy.advantage, rng)
        found.append(Distinguisher(name, observable, accuracy, null))
    homogeneity = chi_square_two_samples(bucket_counts(first.values(), modulus), bucket_counts(second.values(), modulus))
    timing = bootstrap_mean_difference(
        np.array([o.session_seconds for o in a]) * 1000, np.array([o.session_seconds for o in b]) * 1000, rng
    )
    return ScenarioResult(scenario, first, second, tuple(found), homogeneity, timing)


def run_privacy(
    deployment: InProcessDeployment,
    capture: CheckCapture,
    clock: ManualClock,
    size: BenchSize,
    rng: np.random.Generator,
    progress: Progress,
) -> PrivacyResults:
    """Set up every pack, run `size.epochs` epochs of each, and evaluate every distinguisher.
    `capture` is the deployment's decryption observer (`harness.start_deployment`): it sees the
    check vectors the aggregator fuses."""
    context = deployment.context
    modulus = context.plaintext_modulus
    designs: dict[str, PackDesign] = {}
    for scenario in size.scenarios:
        for design in (scenario.first, scenario.second):
            designs[design.name] = design
    runs: dict[str, PackRun] = {}
    total = sum(len(design.others) for design in designs.values())
    done = 0
    progress.stage("privacy: submitting and validating the packs")
    for design in designs.values():
        stag = BenchStag.create(deployment, clock, size.levels, f"privacy game: {design.name}")
        run = PackRun(design, stag)
        for others in design.others:
            intendo_id = stag.submit_count(others)
            run.ciphertext_mean_bytes.append(float(np.frombuffer(stag.ciphertexts[intendo_id], dtype=np.uint8).mean()))
            done += 1
            progress.update(f"submitted to {design.name}", done, 2 * total)
        stag.validate()
        done += len(design.others)
        progress.update(f"validated {design.name}", done, 2 * total)
        runs[design.name] = run
    progress.stage(f"privacy: {size.epochs} epochs of {len(runs)} packs")
    row_width = context.row_width
    with TrafficRecorder(deployment.keyholders) as recorder, capture:
        for epoch in range(size.epochs):
            clock.advance(EPOCH_MILLIS)
            for position in rng.permutation(len(runs)):
                run = list(runs.values())[position]
                observation = _observe(run.stag, recorder, capture, row_width)
                if observation.result != "no-hunt" or observation.vectors != 1:
                    raise RuntimeError(f"pack {run.design.name}: epoch gave {observation.result} with {observation.vectors} check vectors")
                run.observations.append(observation)
            progress.update(f"epoch {epoch + 1}", epoch + 1, size.epochs)
    progress.stage("privacy: distinguishers and uniformity tests")
    scenarios = [distinguish(scenario, runs[scenario.first.name], runs[scenario.second.name], modulus, size.folds, size.permutations, rng) for scenario in size.scenarios]
    uniformity = []
    for run in runs.values():
        values = run.values()
        uniformity.append(
            UniformityRow(
                run.design.name, int(values.size), int(np.count_nonzero(values == 0)), values.size / modulus,
                chi_square_uniform(bucket_counts(values, modulus)),
            )
        )
    observations = [o for run in runs.values() for o in run.observations]
    return PrivacyResults(
        size, scenarios, uniformity, modulus,
        float(np.mean([o.session_seconds for o in observations])), float(np.mean([o.message_bytes for o in observations])),
    )

