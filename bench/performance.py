"""What privacy costs: each measurement next to the plaintext solver doing the same job, in the
same run on the same machine (so ratios survive a noisy host better than absolute figures).

- client: encode + encrypt + compress + serialize + sign one intendo, and its bytes;
- aggregator ingest: submissions per second through `Aggregator.submit` (durable SQLite write),
  and over gRPC against `LocalDeployment` processes when asked;
- keyholder replica: `PackState.apply` of whole logs (submissions, validation certificates);
- epoch evaluation: the hunt-check circuit on pack sums of growing size and for growing L;
- hunt latency: `run_due` start → certificate appended (check, confirm, membership, certify);
- key ceremony: `run_ceremony` in one process for several committee sizes.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from stagpack import codec
from stagpack.aggregator.store import SessionCost
from stagpack.decrypt import circuit
from stagpack.dkg import DkgParty, LocalCeremonyPeer, run_ceremony
from stagpack.encoding import StagKind, Threshold
from stagpack.fhe import Ciphertext, FheContext
from stagpack.identity import KeyholderIdentity, SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.keyholder.store import StoreFootprint
from stagpack.envelope import IntendoEnvelope
from stagpack.log import EntryKind, LogEntry, ValidationCertificate, decode_body
from stagpack.pack import MemoryCiphertexts, PackState
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

from stagpack.bench.harness import EPOCH_MILLIS, BenchStag, Progress, TrafficRecorder, median_millis, sample_millis


def solver_insert_micros(levels: int, count: int, rng: np.random.Generator) -> float:
    """Mean µs per `PackSolver.insert` of `count` random count intendos into L = `levels`."""
    solver = PackSolver(levels)
    thresholds = rng.integers(1, levels, count)
    started = time.perf_counter()
    for index, level in enumerate(thresholds):
        solver.insert(index, int(level), 1)
    return (time.perf_counter() - started) / count * 1e6


def solver_query_micros(levels: int, count: int, rng: np.random.Generator, repeat: int = 200) -> float:
    """Median µs of `greatest_fixed_point` on a solver holding `count` intendos."""
    solver = PackSolver(levels)
    for index, level in enumerate(rng.integers(1, levels, count)):
        solver.insert(index, int(level), 1)
    samples = sample_millis(solver.greatest_fixed_point, repeat)
    return float(np.median(samples)) * 1000


# -- client and aggregator --------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCost:
    encrypt_sign_ms: float
    ciphertext_bytes: int
    envelope_bytes: int
    solver_insert_us: float
    samples: int


def measure_client(stag: BenchStag, repeat: int, rng: np.random.Generator) -> ClientCost:
    """prepare_intendo: thermometer encoding, encryption under the joint key, compression to the
    wire level, canonical serialization, Ed25519 signature of the envelope."""
    others = stag.spec.levels // 2
    samples = sample_millis(lambda: stag.prepare(others), repeat)
    prepared = stag.prepare(others)
    return ClientCost(
        float(np.median(samples)), len(prepared.ciphertext), len(codec.encode(prepared.envelope)),
        solver_insert_micros(4096, 2000, rng), repeat,
    )


@dataclass(frozen=True)
class IngestCost:
    transport: str
    count: int
    seconds: float
    median_submit_ms: float
    solver_inserts_per_second: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def measure_ingest(deployment: InProcessDeployment, clock: ManualClock, count: int, rng: np.random.Generator, progress: Progress) -> IngestCost:
    """Submissions per second through `Aggregator.submit` (checks, SQLite WAL append with the
    ciphertext, acknowledgement); intendos are prepared beforehand, outside the timing."""
    stag = BenchStag.create(deployment, clock, count + 2, "ingest")
    prepared = []
    for index in range(count):
        others = int(rng.integers(1, count))
        prepared.append((stag.prepare(others), others))
        progress.update("preparing intendos", index + 1, 2 * count)
    samples = []
    for index, (intendo, others) in enumerate(prepared):
        started = time.perf_counter()
        deployment.aggregator.submit(intendo.envelope, intendo.ciphertext)
        samples.append(time.perf_counter() - started)
        stag.ciphertexts[intendo.intendo_id] = intendo.ciphertext
        progress.update("submitting", count + index + 1, 2 * count)
    solver_rate = 1e6 / solver_insert_micros(4096, 2000, rng)
    return IngestCost("in-process Aggregator.submit", count, float(sum(samples)), float(np.median(samples)) * 1000, solver_rate)


def measure_grpc_ingest(count: int, rng: np.random.Generator, progress: Progress) -> IngestCost:
    """The same over gRPC: a `LocalDeployment` (3 keyholder processes, any 2 decrypt, and an
    aggregator process whose scheduler is idle) and an `AggregatorClient`."""
    from stagpack.app.launcher import LocalDeployment
    from stagpack.participant.client import AggregatorClient

    with tempfile.TemporaryDirectory(prefix="stagpack-bench-grpc-") as directory:
        deployment = LocalDeployment.create(Path(directory), 3, 2, tick_millis=10**9)
        progress.update("starting processes and the ceremony", 0, count)
        deployment.start()
        try:
            assert deployment.aggregator is not None
            client = AggregatorClient(deployment.aggregator.address)
            spec = StagSpec.new(committee=client.committee_id, kind=StagKind.COUNT, levels=count + 2, title="grpc ingest")
            client.create_stag(spec)
            prepared = [client.prepare(spec, SigningIdentity(), Threshold.count(int(rng.integers(1, count)), levels=spec.levels)) for _ in range(count)]
            samples = []
            for index, intendo in enumerate(prepared):
                started = time.perf_counter()
                client.submit(intendo)
                samples.append(time.perf_counter() - started)
                progress.update("submitting over gRPC", index + 1, count)
            client.close()
        finally:
            deployment.stop()
    solver_rate = 1e6 / solver_insert_micros(4096, 2000, rng)
    return IngestCost("gRPC SubmitIntendo (LocalDeployment)", count, float(sum(samples)), float(np.median(samples)) * 1000, solver_rate)


# -- keyholder replica ------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyCost:
    kind: str
    entries: int
    seconds: float
    intendos: int  # intendos the entries carried (submissions) or counted (validations)

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else float("nan")


def measure_replica_apply(deployment: InProcessDeployment) -> list[ApplyCost]:
    """Replay every stag's log into a fresh `PackState`, as a keyholder replica does (signature
    and rule checks, ciphertext parsing, Σ additions), timing each entry by kind. Log entries
    and ciphertexts are read beforehand (the replica's SQLite I/O is not included)."""
    aggregator = deployment.aggregator
    totals: dict[str, list[float]] = {}
    intendos: dict[str, int] = {}
    for stag_id in aggregator.stag_ids():
        height = aggregator.status(stag_id).height
        entries: list[tuple[LogEntry, bytes | None]] = list(aggregator.read_log(stag_id, 0, height))
        ciphertexts: dict[bytes, bytes] = {}
        for entry, ciphertext in entries:
            if entry.kind is EntryKind.SUBMISSION and ciphertext is not None:
                ciphertexts[decode_body(entry, IntendoEnvelope).intendo_id] = ciphertext
        state = PackState(deployment.context, aggregator.committee, stag_id)
        source = MemoryCiphertexts(ciphertexts)
        for entry, ciphertext in entries:
            started = time.perf_counter()
            state.apply(entry, ciphertext, source)
            seconds = time.perf_counter() - started
            kind = entry.kind.value
            totals.setdefault(kind, []).append(seconds)
            if entry.kind is EntryKind.SUBMISSION:
                intendos[kind] = intendos.get(kind, 0) + 1
            elif entry.kind is EntryKind.VALIDATION:
                certificate = decode_body(entry, ValidationCertificate)
                intendos[kind] = intendos.get(kind, 0) + len(certificate.outcome.valid)
    order = ["submission", "validation", "hunt", "withdrawal", "genesis"]
    return [
        ApplyCost(kind, len(totals[kind]), float(sum(totals[kind])), intendos.get(kind, 0))
        for kind in sorted(totals, key=lambda kind: order.index(kind) if kind in order else len(order))
    ]


# -- keyholder storage ------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageCost:
    """One keyholder's store at the end of the run."""

    keyholder: str
    footprint: StoreFootprint
    stags: int  # stags in the deployment

    @property
    def whole_session_mean_bytes(self) -> float:
        whole = self.footprint.whole_sessions
        return self.footprint.whole_session_bytes / whole if whole else float("nan")


@dataclass(frozen=True)
class MeteredStag:
    """What the committee spent on one stag of the run, as `stag status` meters it."""

    title: str
    intendos: int  # submitted over the run
    epochs: int  # evaluated (checked)
    cost: SessionCost


def measure_metering(deployment: InProcessDeployment) -> list[MeteredStag]:
    """Every stag's metered work at the end of the run (what fees per submission and per epoch
    can be set from)."""
    rows = []
    for stag_id in deployment.aggregator.stag_ids():
        status = deployment.aggregator.status(stag_id)
        intendos = status.live_intendos + status.withdrawn + status.rejected + status.voided
        epochs = sum(1 for result in status.epochs if result.result.checked)
        rows.append(MeteredStag(status.spec.title or stag_id.hex()[:12], intendos, epochs, status.cost))
    return rows


def measure_storage(deployment: InProcessDeployment) -> list[StorageCost]:
    """What each keyholder's store holds after everything the run did to it."""
    stags = len(deployment.aggregator.stag_ids())
    return [StorageCost(node.identity.name, node.footprint(), stags) for node in deployment.nodes]


# -- epoch evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationCost:
    pack_size: int
    levels: int
    check_ms: float  # the hunt-check circuit on the pack sum (what every party computes per epoch)
    from_scratch_ms: float  # summing the pack from scratch (what the incremental sum avoids)
    solver_query_us: float


def _random_mask(context: FheContext, rng: np.random.Generator) -> Ciphertext:
    return context.encrypt(context.joint_key, rng.integers(0, context.plaintext_modulus, context.slot_count))


def _base_ciphertexts(context: FheContext, levels: int, rng: np.random.Generator, count: int = 4) -> list[Ciphertext]:
    layout = circuit.layout_of(context)
    return [context.encrypt(context.joint_key, layout.thermometer(Threshold(int(level), 1), levels)) for level in rng.integers(1, levels, count)]


def measure_evaluation_by_size(
    context: FheContext, sizes: tuple[int, ...], levels: int, repeat: int, rng: np.random.Generator, progress: Progress
) -> list[EvaluationCost]:
    """The check circuit on pack sums of each size. The sums are built by adding the same four
    fresh ciphertexts over and over (cheap; the circuit's cost does not depend on the values),
    and the cumulative time of those additions is what recomputing Σ from scratch would cost."""
    mask = _random_mask(context, rng)
    base = _base_ciphertexts(context, levels, rng)
    total = base[0]
    built, building = 1, 0.0
    results = []
    for index, size in enumerate(sorted(sizes)):
        started = time.perf_counter()
        while built < size:
            total = context.add(total, base[built % len(base)])
            built += 1
        building += time.perf_counter() - started
        check_ms = median_millis(lambda: circuit.hunt_check(context, total, mask, levels, 0), repeat)
        solver_levels = max(2 * size, 64)
        results.append(EvaluationCost(size, levels, check_ms, building * 1000, solver_query_micros(solver_levels, size, rng)))
        progress.update(f"pack of {size}", index + 1, len(sizes))
    return results


def measure_evaluation_by_levels(
    context: FheContext, level_counts: tuple[int, ...], pack_size: int, repeat: int, rng: np.random.Generator, progress: Progress
) -> list[EvaluationCost]:
    """The check circuit for each L, on a pack sum of `pack_size` ciphertexts encoded at that L."""
    mask = _random_mask(context, rng)
    results = []
    for index, levels in enumerate(level_counts):
        base = _base_ciphertexts(context, levels, rng)
        started = time.perf_counter()
        total = context.add_many(base[position % len(base)] for position in range(pack_size))
        building = (time.perf_counter() - started) * 1000
        check_ms = median_millis(lambda: circuit.hunt_check(context, total, mask, levels, 0), repeat)
        count = min(pack_size, levels - 1)
        results.append(EvaluationCost(pack_size, levels, check_ms, building, solver_query_micros(levels, count, rng)))
        progress.update(f"L = {levels}", index + 1, len(level_counts))
    return results


# -- hunts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HuntCost:
    members: int
    validation_seconds: float  # validating the members beforehand (not part of the hunt latency)
    hunt_ms: float  # run_due start → certificate appended and executed
    membership_circuit_ms: float  # the membership ciphertext alone, for comparison
    solver_us: float  # PackSolver.hunt() on the same pack
    matches_solver: bool
    steps_ms: dict[str, float]  # slowest keyholder's answer per round: open, reveal, check, confirm, membership, certify


def measure_hunts(
    deployment: InProcessDeployment, clock: ManualClock, member_counts: tuple[int, ...], progress: Progress
) -> list[HuntCost]:
    """Consecutive hunts on one stag: round k submits m_k intendos that each need exactly the
    others of their round (C = m_exec + m_k; executed members stay counted), validates them,
    then times the epoch whose hunt check fires. Each keyholder call is timed too (the traffic
    recorder adds the encoding of each record, a few ms per call)."""
    context = deployment.context
    aggregator = deployment.aggregator
    levels = 16
    while levels < sum(member_counts) + 2:
        levels *= 2
    stag = BenchStag.create(deployment, clock, levels, "hunt latency")
    executed = 0
    results = []
    for round_index, members in enumerate(member_counts):
        new = [stag.submit_count(executed + members - 1) for _ in range(members)]
        progress.update(f"validating {members} intendos", 2 * round_index, 2 * len(member_counts))
        validation_seconds = stag.run_due()
        clock.advance(EPOCH_MILLIS)
        progress.update(f"hunt of {members} members", 2 * round_index + 1, 2 * len(member_counts))
        with TrafficRecorder(deployment.keyholders) as recorder:
            hunt_seconds = stag.run_due()
        steps: dict[str, float] = {}
        for exchange in recorder.take():
            name = exchange.step or exchange.call
            steps[name] = max(steps.get(name, 0.0), exchange.seconds * 1000)
        certificate = aggregator.hunts(stag.stag_id)[-1]
        expected = stag.solver.hunt()
        solver_us = median_millis(stag.solver.hunt, 20) * 1000
        matches = (
            expected is not None
            and certificate.outcome.level == expected.level == executed + members
            and certificate.outcome.member_ids == expected.members
        )
        pending = [(context.ciphertext_from_bytes(stag.ciphertexts[intendo_id]), 1) for intendo_id in new]
        membership_ms = median_millis(lambda: circuit.membership_ciphertext(context, pending, executed + members, levels), 1)
        if expected is not None:
            stag.solver.execute(expected)
        executed += members
        results.append(HuntCost(members, validation_seconds, hunt_seconds * 1000, membership_ms, solver_us, matches, steps))
    return results


# -- key ceremony -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CeremonyCost:
    parties: int
    threshold: int
    seconds: float


def committee_threshold(parties: int) -> int:
    """t for an n-member committee: a majority (t > n/2), or everyone for n ≤ 2."""
    return parties if parties <= 2 else parties // 2 + 1


def measure_ceremonies(sizes: tuple[int, ...], progress: Progress) -> list[CeremonyCost]:
    """`run_ceremony` over in-process `DkgParty` peers (every record byte-encoded between
    parties), one fresh context per committee."""
    results = []
    for index, parties in enumerate(sizes):
        threshold = committee_threshold(parties)
        progress.update(f"ceremony of {parties} (t = {threshold})", index, len(sizes))
        context = FheContext()
        identities = [KeyholderIdentity(f"bench-keyholder-{position}") for position in range(1, parties + 1)]
        peers = [LocalCeremonyPeer(DkgParty(context, identity), identity.public) for identity in identities]
        started = time.perf_counter()
        run_ceremony(context, peers, threshold, aggregator_key=SigningIdentity().verify_key, coordinator_key=SigningIdentity().verify_key)
        results.append(CeremonyCost(parties, threshold, time.perf_counter() - started))
    progress.update("done", len(sizes), len(sizes))
    return results
