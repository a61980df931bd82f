"""`stagpack bench`: the privacy and performance report (markdown, PNG plots, raw JSON).

    stagpack bench [--out bench-report] [--full] [--seed 1]

One in-process deployment (the real protocol code, every record byte-encoded between parties,
a clock the benchmark moves forward) serves the privacy game, the policy probe and the
service-level measurements; primitive costs use its crypto context; key ceremonies run on fresh
contexts. `run_report(out, size="smoke")` is the same machinery at test size (seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from stagpack.bench import plots
from stagpack.bench.harness import BenchStag, CheckCapture, Progress, start_deployment
from stagpack.bench.markdown import Measurements, render_report, summarize
from stagpack.bench.performance import (
    measure_ceremonies,
    measure_client,
    measure_evaluation_by_levels,
    measure_evaluation_by_size,
    measure_grpc_ingest,
    measure_hunts,
    measure_ingest,
    measure_replica_apply,
    measure_metering,
    measure_storage,
)
from stagpack.bench.minority import run_minority
from stagpack.bench.policy import run_policy_checks
from stagpack.bench.privacy import run_privacy
from stagpack.bench.composition import measure_cascades, measure_gas
from stagpack.bench.shielded import measure_anonymous_ingest, measure_proofs, measure_rings
from stagpack.bench.sizes import SIZES
from stagpack.stag import ManualClock


@dataclass(frozen=True)
class ReportOutcome:
    directory: Path
    report: Path
    figures: tuple[Path, ...]
    measurements: Measurements


class _CountingHandler(logging.Handler):
    """Keeps stagpack's warnings (keyholder refusals, by design) off the progress display."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] = self.counts.get(record.name, 0) + 1


@contextlib.contextmanager
def _captured_logs() -> Iterator[_CountingHandler]:
    """Count stagpack's warnings instead of printing them (the policy probe makes keyholders log
    dozens of refusals, by design); the counts go into the report."""
    handler = _CountingHandler()
    logger = logging.getLogger("stagpack")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)


def _measure(measured: Measurements, rng: np.random.Generator, progress: Progress) -> None:
    size = measured.size
    with tempfile.TemporaryDirectory(prefix="stagpack-bench-") as scratch:
        clock = ManualClock()
        progress.stage(f"deployment: {size.parties} in-process keyholders (t = {size.threshold}), key ceremony")
        capture = CheckCapture()  # the privacy game's view of the check vectors the aggregator fuses
        started = time.perf_counter()
        deployment = start_deployment(scratch, size.parties, size.threshold, clock, observer=capture)
        measured.deployment_seconds = time.perf_counter() - started
        measured.privacy = run_privacy(deployment, capture, clock, size, rng, progress)
        progress.stage("policy: forbidden decryption requests, sent to every keyholder")
        near = measured.privacy.scenarios[0].first.stag  # after the game: the pack one intendo away from firing
        measured.policy = run_policy_checks(deployment, clock, near)
        progress.stage("performance: client encrypt + sign")
        measured.client = measure_client(BenchStag.create(deployment, clock, 64, "client"), size.client_repeat, rng)
        progress.stage("performance: aggregator ingest")
        measured.ingest = [measure_ingest(deployment, clock, size.ingest_count, rng, progress)]
        if size.hunt_members:
            progress.stage("performance: hunt-to-certificate latency")
            measured.hunts = measure_hunts(deployment, clock, size.hunt_members, progress)
        progress.stage("performance: keyholder replica apply")
        measured.replica = measure_replica_apply(deployment)
        progress.stage("performance: epoch evaluation vs pack size")
        measured.by_size = measure_evaluation_by_size(deployment.context, size.eval_sizes, 64, size.eval_repeat, rng, progress)
        progress.stage("performance: epoch evaluation vs L")
        measured.by_levels = measure_evaluation_by_levels(
            deployment.context, size.eval_levels, size.eval_levels_pack, size.eval_repeat, rng, progress
        )
        progress.stage("composition: cascade latency by DAG shape")
        measured.cascades = measure_cascades(deployment, clock, size.cascade_shapes, progress)
        progress.stage("shielded: anonymous ingest next to ordinary")
        measured.anonymous_ingest = measure_anonymous_ingest(deployment, clock, *size.anonymous_ingest, progress)
        progress.stage("storage: what the keyholders' stores hold after the run")
        measured.storage = measure_storage(deployment)
        measured.metering = measure_metering(deployment)
        measured.minority = run_minority(Path(scratch) / "minority", size, rng, progress)
    if size.grpc_ingest_count:
        progress.stage("performance: ingest over gRPC (LocalDeployment processes)")
        measured.ingest.append(measure_grpc_ingest(size.grpc_ingest_count, rng, progress))
    if size.ceremony_sizes:
        progress.stage("performance: key ceremonies")
        measured.ceremonies = measure_ceremonies(size.ceremony_sizes, progress)
    progress.stage("composition: settlement contract gas (embedded EVM)")
    measured.gas = measure_gas(size.gas_members, size.gas_bundles)
    progress.stage("shielded: ring signatures and proofs")
    measured.rings = measure_rings(size.ring_sizes, size.ring_repeat, progress)
    measured.proofs = measure_proofs(size.verifier_counts, max(size.ring_repeat * 5, 3))


def run_report(out: str | Path, size: str = "default", *, seed: int = 1, quiet: bool = False, command: str | None = None) -> ReportOutcome:
    """Run every benchmark at `size` ("smoke", "default" or "full") and write the report."""
    bench_size = SIZES[size]
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    progress = Progress(quiet=quiet)
    measured = Measurements(
        bench_size, seed, command or f"run_report({str(out)!r}, size={size!r}, seed={seed})",
        datetime.datetime.now().astimezone(), load=(os.getloadavg()[0], 0.0),
    )
    with _captured_logs() as warnings:
        _measure(measured, rng, progress)
    measured.warnings = dict(warnings.counts)
    progress.stage("writing the report and plots")
    assert measured.privacy is not None
    figures = [plots.plot_advantages(measured.privacy, directory), plots.plot_masked_histogram(measured.privacy, directory)]
    if measured.by_size:
        figures.append(plots.plot_evaluation_by_size(measured.by_size, directory))
    if measured.by_levels:
        figures.append(plots.plot_evaluation_by_levels(measured.by_levels, directory))
    if measured.hunts:
        figures.append(plots.plot_hunts(measured.hunts, directory))
    if measured.ceremonies:
        figures.append(plots.plot_ceremonies(measured.ceremonies, directory))
    progress.finish()
    measured.stages = list(progress.stages)
    measured.seconds = progress.elapsed
    measured.load = (measured.load[0], os.getloadavg()[0])
    report = directory / "report.md"
    report.write_text(render_report(measured, tuple(figures)))
    (directory / "results.json").write_text(json.dumps(summarize(measured), indent=2) + "\n")
    progress.note(f"report: {report} ({measured.seconds:.0f} s)")
    return ReportOutcome(directory, report, tuple(directory / name for name in figures), measured)


def run_from_cli(options: argparse.Namespace) -> int:
    """Entry point of `stagpack bench` (options.out, options.full, options.seed)."""
    command = f"stagpack bench --out {options.out}" + (" --full" if options.full else "") + (f" --seed {options.seed}" if options.seed != 1 else "")
    outcome = run_report(options.out, "full" if options.full else "default", seed=options.seed, command=command)
    refused = all(row.as_expected for row in outcome.measurements.policy)
    print(f"wrote {outcome.report} and {len(outcome.figures)} plots")
    if not refused:
        print("WARNING: a keyholder served a request the policy forbids; see the policy table", file=sys.stderr)
    return 0 if refused else 1
