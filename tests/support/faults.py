"""Dishonest or unlucky parties for protocol tests, injected through the hooks the code offers:
a keyholder's partial source and mask source, the aggregator's decryption observer, and the
in-process transport's interceptors. Nothing here reaches into private state."""

from __future__ import annotations

import contextlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from stagpack.calls import Call
from stagpack.decrypt import DecryptingParty, PartialShare, Quorum
from stagpack.errors import KeyholderUnreachable
from stagpack.fhe import Ciphertext, FheContext, SlotVector
from stagpack.keyholder.local import LocalKeyholder
from stagpack.keyholder.node import MaskSource, RandomMasks
from stagpack.session import DECRYPT, DecryptRequest, SessionRef, Step

ShareFault = Callable[[Ciphertext, list[PartialShare]], list[PartialShare]]


class SwitchablePartials:
    """A keyholder's partial source: honest until a test sets `fault`, which then rewrites the
    shares before the keyholder signs them (the keyholder's own code signs whatever it gets)."""

    def __init__(self, party: DecryptingParty) -> None:
        self.party = party
        self.fault: ShareFault | None = None

    def partials(self, ciphertext: Ciphertext, family: Sequence[Quorum], *, own: bool = True) -> list[PartialShare]:
        shares = self.party.partials(ciphertext, family, own=own)
        return shares if self.fault is None else self.fault(ciphertext, shares)


@dataclass
class PartialSources:
    """The `partials` argument of `InProcessDeployment.start` that makes every keyholder's
    partial source switchable; `sources[index]` exists once the ceremony is done."""

    sources: dict[int, SwitchablePartials] = field(default_factory=dict)

    def factories(self, parties: int) -> Mapping[int, Callable[[DecryptingParty], SwitchablePartials]]:
        def make(index: int) -> Callable[[DecryptingParty], SwitchablePartials]:
            return lambda party: self.sources.setdefault(index, SwitchablePartials(party))

        return {index: make(index) for index in range(1, parties + 1)}

    @contextlib.contextmanager
    def faulty(self, index: int, fault: ShareFault) -> Iterator[None]:
        """Keyholder `index` applies `fault` to every partial it makes inside the `with` block."""
        source = self.sources[index]
        source.fault = fault
        try:
            yield
        finally:
            source.fault = None


def garbling(context: FheContext) -> ShareFault:
    """Every share replaced by structurally valid garbage (a faulty machine)."""
    seeds = itertools.count(1)
    return lambda ciphertext, shares: [
        PartialShare(share.producer, share.on_behalf_of, share.quorum, context.garbled_partial(share.data, next(seeds)))
        for share in shares
    ]


def shifting_own(context: FheContext, shift: SlotVector) -> ShareFault:
    """The keyholder's own partial (not its stand-ins) shifted by Δ·shift (a crafted attack)."""
    return lambda ciphertext, shares: [
        PartialShare(share.producer, share.on_behalf_of, share.quorum, context.shifted_partial(share.data, ciphertext, shift))
        if share.quorum == ()
        else share
        for share in shares
    ]


class ScriptedMasks:
    """A mask source that is random until a test arms it; armed, the first mask of every
    session it opens (the check's) is zero at `level` in both rows — what a keyholder that wants
    a chance zero at a non-fixed point would commit to.

    `InProcessDeployment.start` makes the deployment's context itself, so the source learns it
    afterwards (`context`); masks are only drawn once the ceremony is over."""

    def __init__(self, context: FheContext | None = None) -> None:
        self.context = context
        self.zero_level: int | None = None

    def mask(self, session: SessionRef, which: int) -> bytes:
        context = self.context
        assert context is not None, "give the mask source the deployment's context first"
        if self.zero_level is None or which != 0:
            return RandomMasks(context).mask(session, which)
        values = np.random.default_rng().integers(1, context.plaintext_modulus, context.slot_count, dtype=np.int64)
        values[self.zero_level] = 0
        values[context.row_width + self.zero_level] = 0
        return context.ciphertext_to_bytes(context.encrypt(context.joint_key, values))


@dataclass
class MaskScript:
    """Every keyholder's `ScriptedMasks`, armed together: a session opened inside `zero_at` has
    a summed check mask that is zero at `level` in both rows (a chance zero, forced)."""

    sources: dict[int, ScriptedMasks]

    def masks(self) -> dict[int, MaskSource]:
        """The `masks` argument of `InProcessDeployment.start`."""
        return dict(self.sources)

    def bind(self, context: FheContext) -> None:
        for source in self.sources.values():
            source.context = context

    @contextlib.contextmanager
    def zero_at(self, level: int) -> Iterator[None]:
        for source in self.sources.values():
            source.zero_level = level
        try:
            yield
        finally:
            for source in self.sources.values():
                source.zero_level = None


def scripted_masks(parties: int, context: FheContext | None = None) -> MaskScript:
    """One `ScriptedMasks` per keyholder (bind the deployment's context once it exists)."""
    return MaskScript({index: ScriptedMasks(context) for index in range(1, parties + 1)})


@dataclass(frozen=True)
class Fused:
    """One slot vector the aggregator fused: for which session, step and quorum."""

    session: SessionRef
    step: Step
    quorum: Quorum
    vector: SlotVector


class VectorRecorder:
    """A decryption observer: keeps every slot vector the aggregator fuses, per step, while
    `recording` (exactly what an operator sees of the decryptions it drives)."""

    def __init__(self) -> None:
        self.recording = False
        self.vectors: dict[Step, list[SlotVector]] = {}
        self.fused: list[Fused] = []
        self._lock = threading.Lock()

    def __call__(self, session: SessionRef, step: Step, quorum: Quorum, vector: SlotVector) -> None:
        if self.recording:
            with self._lock:
                self.vectors.setdefault(step, []).append(vector.copy())
                self.fused.append(Fused(session, step, quorum, vector.copy()))

    def take(self, step: Step) -> list[Fused]:
        """What was fused for `step` since the last `take` of it (in the order fused)."""
        with self._lock:
            taken = [fused for fused in self.fused if fused.step is step]
            self.fused = [fused for fused in self.fused if fused.step is not step]
            self.vectors.pop(step, None)
        return taken

    @contextlib.contextmanager
    def recorded(self) -> Iterator[VectorRecorder]:
        """Record inside the `with` block only (and start from nothing)."""
        with self._lock:
            self.vectors, self.fused = {}, []
        self.recording = True
        try:
            yield self
        finally:
            self.recording = False


class DropOn:
    """An interceptor: the keyholder goes offline when it is sent `call` (for DECRYPT, only a
    request for `step`), before the request arrives."""

    def __init__(self, call: Call[Any, Any], step: Step | None = None) -> None:
        self.call = call
        self.step = step

    def __call__(self, keyholder: LocalKeyholder, call: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any:
        if call is self.call and (self.step is None or (isinstance(request, DecryptRequest) and request.step is self.step)):
            keyholder.online = False
            raise KeyholderUnreachable(f"keyholder {keyholder.index} dropped")
        return forward(request)


def unreachable_for(call: Call[Any, Any]) -> Callable[[LocalKeyholder, Call[Any, Any], Any, Callable[[Any], Any]], Any]:
    """An interceptor under which `call` never arrives (the aggregator stopped, or the network)."""

    def intercept(keyholder: LocalKeyholder, sent: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any:
        if sent is call:
            raise KeyholderUnreachable(f"{call.rpc} to keyholder {keyholder.index} did not arrive")
        return forward(request)

    return intercept


class StepTracker:
    """An interceptor that remembers, per keyholder, which step it is decrypting right now (a
    partial source does not see the step; a fault aimed at one step reads it here)."""

    def __init__(self) -> None:
        self.current: dict[int, Step] = {}

    def __call__(self, keyholder: LocalKeyholder, call: Call[Any, Any], request: Any, forward: Callable[[Any], Any]) -> Any:
        if call is DECRYPT and isinstance(request, DecryptRequest):
            self.current[keyholder.index] = request.step
            try:
                return forward(request)
            finally:
                self.current.pop(keyholder.index, None)
        return forward(request)

    def only_in(self, index: int, step: Step, fault: ShareFault) -> ShareFault:
        """`fault` while keyholder `index` decrypts `step`; honest shares in every other step."""
        return lambda ciphertext, shares: fault(ciphertext, shares) if self.current.get(index) is step else shares
