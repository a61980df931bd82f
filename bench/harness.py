"""Benchmark plumbing shared by the privacy and performance benchmarks; holds no measurement.

- `ManualClock`: milliseconds the benchmark moves forward itself, so epochs come due on demand
  (no sleeping);
- `BenchStag`: one stag of an in-process deployment, mirrored in the plaintext `PackSolver`;
- `TrafficRecorder`: what the aggregator sends to and receives from each keyholder (bytes,
  latency), an interceptor on the `LocalKeyholder` transports for the duration of a `with`;
- `CheckCapture`: the fused hunt-check vectors, a decryption observer given to the deployment
  when it starts (`start_deployment`), recording for the duration of a `with`;
- `Progress`: the progress display on stderr.

Both instruments use the hooks the code offers (`stagpack.keyholder.local.intercepting`, the
deployment's `observer`); nothing here changes what the deployment computes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import numpy as np

from stagpack import codec
from stagpack.calls import Call
from stagpack.decrypt import Quorum
from stagpack.decrypt.computation import DecryptionObserver
from stagpack.keyholder.local import LocalKeyholder, intercepting
from stagpack.encoding import StagKind
from stagpack.errors import StagpackError
from stagpack.fhe import SlotVector
from stagpack.identity import SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.participant.sdk import PreparedIntendo, count_threshold, prepare_intendo
from stagpack.session import SESSION_CALLS, SessionRef, Step
from stagpack.solver import PackSolver
from stagpack.stag import ManualClock, StagSpec

EPOCH_MILLIS = 1_000


def start_deployment(
    directory: str, parties: int, threshold: int, clock: ManualClock, observer: DecryptionObserver | None = None
) -> InProcessDeployment:
    """A whole deployment (real ceremony, own SQLite stores) whose parties read `clock`;
    `observer` sees every vector the aggregator fuses (a `CheckCapture`)."""
    return InProcessDeployment.start(directory, parties, threshold, clock=clock, observer=observer)


# -- stags ------------------------------------------------------------------------------------


@dataclass
class BenchStag:
    """One count stag of a deployment, with its plaintext mirror in `PackSolver`."""

    deployment: InProcessDeployment
    clock: ManualClock
    spec: StagSpec
    solver: PackSolver
    ciphertexts: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def create(cls, deployment: InProcessDeployment, clock: ManualClock, levels: int, title: str) -> BenchStag:
        aggregator = deployment.aggregator
        spec = StagSpec.new(
            committee=aggregator.committee.committee_id, kind=StagKind.COUNT, levels=levels, title=title,
            epoch_millis=EPOCH_MILLIS, opens_at_millis=clock(),
        )
        aggregator.create_stag(spec)
        return cls(deployment, clock, spec, PackSolver(levels))

    @property
    def stag_id(self) -> bytes:
        return self.spec.stag_id

    def prepare(self, others: int) -> PreparedIntendo:
        """'I will if at least `others` others do', encrypted and signed by a fresh identity."""
        context = self.deployment.context
        return prepare_intendo(context, context.joint_key, self.spec, SigningIdentity(), count_threshold(self.spec, others))

    def submit_prepared(self, prepared: PreparedIntendo, others: int) -> None:
        """Submit through `Aggregator.submit` and mirror the intendo in the solver."""
        self.deployment.aggregator.submit(prepared.envelope, prepared.ciphertext)
        self.ciphertexts[prepared.intendo_id] = prepared.ciphertext
        threshold = count_threshold(self.spec, others)
        self.solver.insert(prepared.intendo_id, threshold.level, threshold.weight)

    def submit_count(self, others: int) -> bytes:
        prepared = self.prepare(others)
        self.submit_prepared(prepared, others)
        return prepared.intendo_id

    def run_due(self) -> float:
        """Run what is due on this stag; wall seconds."""
        started = time.perf_counter()
        self.deployment.aggregator.run_due(self.stag_id)
        return time.perf_counter() - started

    def validate(self) -> None:
        """Validate what awaits validation (the current epoch must have run already, or be 0)."""
        self.run_due()
        status = self.deployment.aggregator.status(self.stag_id)
        if status.awaiting_validation or status.rejected:
            raise RuntimeError(f"validation left {status.awaiting_validation} waiting, {status.rejected} rejected")

    def last_result(self) -> str:
        epochs = self.deployment.aggregator.status(self.stag_id).epochs
        return epochs[-1].result.value if epochs else "none"

    def counts(self) -> SlotVector:
        """c[0..L-1]: what decrypting the pack sum directly would show."""
        return np.asarray(self.solver.counts(), dtype=np.int64)

    def distance_to_firing(self) -> int:
        """What a public progress bar would show: the fewest newcomers (each willing at level ℓ)
        that make a hunt including current pending members fire, min over ℓ ≥ the lowest
        pending threshold of ℓ − c[ℓ] (0 when a hunt fires now)."""
        counts = self.counts()
        if self.solver.hunt() is not None:
            return 0
        lowest = min(int(np.argmax(counts > self.solver.executed_level)), len(counts) - 1)
        levels = np.arange(len(counts))
        window = slice(max(lowest, self.solver.executed_level + 1), len(counts))
        return int(max(0, (levels[window] - counts[window]).min()))


# -- instrumentation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One aggregator → keyholder call as the aggregator sees it."""

    call: str  # open, reveal, decrypt, certify
    step: str  # the decrypt step, or ""
    keyholder: int
    request_bytes: int
    response_bytes: int
    seconds: float
    refused: bool
    payload_mean_byte: float  # mean byte value of the ciphertext-like payload (partials, masks), or nan


def payload_mean_byte(response: object) -> float:
    """Mean byte value of the bulky ciphertext-like payload of a keyholder response: the partial
    decryptions of a `DecryptResponse`, the mask ciphertexts of a `MaskReveal`."""
    blobs = [partial.data for partial in getattr(response, "partials", ())] or list(getattr(response, "masks", ()))
    if not blobs:
        return float("nan")
    return float(np.mean([np.frombuffer(blob, dtype=np.uint8).mean() for blob in blobs]))


class TrafficRecorder:
    """Records every session call the aggregator makes to in-process keyholders: encoded request
    and response sizes (what would cross the network) and latency (the call's delivery through
    the transport: the byte encoding both ways and the keyholder's work). An interceptor on the
    `LocalKeyholder` transports while the `with` block runs."""

    def __init__(self, keyholders: list[LocalKeyholder]) -> None:
        self._keyholders = keyholders
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._installed: contextlib.ExitStack | None = None

    def __call__(self, keyholder: LocalKeyholder, call: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any:
        if call not in SESSION_CALLS:
            return forward(request)
        name = call.handler.replace("_session", "")  # open, reveal, decrypt, certify
        step = getattr(getattr(request, "step", None), "value", "")
        request_bytes = len(codec.encode(request))
        started = time.perf_counter()
        try:
            response = forward(request)
        except StagpackError:
            seconds = time.perf_counter() - started
            self._add(Exchange(name, step, keyholder.index, request_bytes, 0, seconds, True, float("nan")))
            raise
        seconds = time.perf_counter() - started
        size = len(codec.encode(response))
        self._add(Exchange(name, step, keyholder.index, request_bytes, size, seconds, False, payload_mean_byte(response)))
        return response

    def _add(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def __enter__(self) -> TrafficRecorder:
        stack = contextlib.ExitStack()
        stack.enter_context(intercepting(self._keyholders, self))
        self._installed = stack
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed is not None:
            self._installed.close()
            self._installed = None

    def take(self) -> list[Exchange]:
        with self._lock:
            taken, self._exchanges = self._exchanges, []
        return taken


class CheckCapture:
    """Records each fused hunt-check vector once, however many quorums fuse it.

    A decryption observer: give it to the deployment when it starts (`start_deployment`); it
    sees every vector the aggregator fuses and keeps the check vectors while a `with` block
    runs (outside one it records nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recording = False
        self._vectors: list[SlotVector] = []
        self._seen: set[bytes] = set()

    def __call__(self, session: SessionRef, step: Step, quorum: Quorum, vector: SlotVector) -> None:
        if not self._recording or step is not Step.CHECK:
            return
        key = vector.tobytes()
        with self._lock:
            if key not in self._seen:
                self._seen.add(key)
                self._vectors.append(vector.copy())

    def __enter__(self) -> CheckCapture:
        self._recording = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._recording = False

    def take(self) -> list[SlotVector]:
        with self._lock:
            taken, self._vectors = self._vectors, []
        return taken


def window_values(vector: SlotVector, levels: int, executed_level: int, row_width: int) -> tuple[SlotVector, SlotVector]:
    """(the masked levels executed_level < ℓ < L of both rows, every other slot)."""
    inside = np.zeros(vector.size, dtype=bool)
    for row in (0, 1):
        inside[row * row_width + executed_level + 1 : row * row_width + levels] = True
    return vector[inside], vector[~inside]


# -- timing -----------------------------------------------------------------------------------


def median_millis(function: Callable[[], object], repeat: int) -> float:
    """Median wall time of `function` in milliseconds."""
    return float(np.median(sample_millis(function, repeat)))


def sample_millis(function: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """A progress display on stderr: one line per stage, updated in place on a terminal (one
    line per update, rate-limited, otherwise). `quiet` prints nothing (tests)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._started = time.monotonic()
        self._interactive = bool(getattr(self._stream, "isatty", lambda: False)())
        self._stage = ""
        self._last_print = 0.0
        self._open_line = False
        self.stages: list[tuple[str, float]] = []  # (stage, seconds) for the report
        self._stage_started = self._started

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _clock(self) -> str:
        seconds = int(self.elapsed)
        return f"{seconds // 60:d}:{seconds % 60:02d}"

    def _write(self, text: str, *, final: bool) -> None:
        if self._quiet:
            return
        if self._interactive:
            self._stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._open_line = not final
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def stage(self, name: str) -> None:
        """Start a stage (closing the previous one)."""
        self.finish()
        self._stage = name
        self._stage_started = time.monotonic()
        self._write(f"[{self._clock()}] {name} …", final=not self._interactive)

    def update(self, detail: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._interactive and now - self._last_print < 5 and done != total:
            return
        self._last_print = now
        width = 20
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "." * (width - filled)
        self._write(f"[{self._clock()}] {self._stage} [{bar}] {done}/{total} {detail}", final=not self._interactive)

    def finish(self) -> None:
        if self._stage:
            seconds = time.monotonic() - self._stage_started
            self.stages.append((self._stage, seconds))
            self._write(f"[{self._clock()}] {self._stage}: done in {seconds:.1f} s", final=True)
            self._stage = ""

    def note(self, text: str) -> None:
        self._write(f"[{self._clock()}] {text}", final=True)
