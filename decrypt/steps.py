"""The session step graph: which step may follow which — the one definition (DESIGN.md §3, §3a, §7).

A session decrypts a sequence of steps. What a step decrypts may depend on what earlier steps
revealed (their *facts*), and whether it may run at all is a condition on those facts:

    hunt        NOISE ┬─(passed)──────────────▶ CHECK ──(some level is a candidate)──▶ CONFIRM
                      └─(failed)─▶ NOISE_EACH ─┘        ──(a level was confirmed)──▶ MEMBERSHIP
    validation  NOISE ┬─(passed)─────────────────────────────▶ BATCH
                      └─(failed)─▶ NOISE_EACH ─▶ INPUT_NOISE ─┘ (if the intendos' noise is bounded)
                      BATCH ──(the batch is invalid and holds more than one intendo)──▶ EACH

Nothing whose noise a single party chose enters a product or is decrypted before its noise is
shown to be bounded (DESIGN.md §3a). NOISE tests all of it at once — every contributor's masks
and pads and, in a validation, the batch's intendos — so an honest session pays for one noise
test. Only when it fails does NOISE_EACH test each contributor's ciphertexts alone (whose fail
are left out of the session), and INPUT_NOISE the intendos alone, padded by the contributors
that passed, so that the blame lands on whoever chose the noise. A committee created without
the noise test (benchmarks only) skips all three.

Three parties read this table and nothing else for the order of steps:
- a keyholder refuses a step whose condition does not hold (`stagpack.keyholder.policy`);
- the aggregator runs the next step while there is one (`stagpack.aggregator.sessions`);
- readers re-derive the facts step by step and know when a session has an outcome
  (`stagpack.decrypt.computation`).

A step that `binds` reveals who is in a hunt: once a keyholder has served it, the hunt must be
certified and recorded before that keyholder serves anything else for the stag (no dry runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from stagpack.errors import InvalidInput, PolicyRefusal
from stagpack.session import SessionKind, Step


@dataclass(frozen=True)
class SessionFacts:
    """What a session's steps have revealed so far (`through`: the last step read), with the
    public facts they depend on."""

    kind: SessionKind
    contributors: tuple[int, ...]  # the keyholders whose masks the session fixed
    noise_test: bool = True  # the committee tests noise (False only in benchmarks)
    batch_size: int = 0  # validation: how many intendos the batch holds (public, from the log)
    through: Step | None = None
    noise_passed: bool | None = None  # NOISE: everything the session uses has bounded noise
    clean: tuple[int, ...] = ()  # NOISE or NOISE_EACH: contributors whose masks and pads have bounded noise
    inputs_clean: bool | None = None  # NOISE or INPUT_NOISE: the batch's intendos have bounded noise
    candidates: tuple[int, ...] = ()  # CHECK: levels zero in both masked copies
    level: int | None = None  # CONFIRM: the greatest candidate confirmed with fresh masks
    members: tuple[bool, ...] | None = None  # MEMBERSHIP: one bit per pending intendo
    batch_valid: bool | None = None  # BATCH: every intendo of the batch is well-formed
    verdicts: tuple[bool, ...] | None = None  # EACH: one verdict per intendo of the batch

    @property
    def mask_contributors(self) -> tuple[int, ...]:
        """Whose masks the later steps use: the contributors that passed the noise test."""
        return self.clean if self.noise_test else self.contributors


def _always(_: SessionFacts) -> bool:
    return True


def _tests_noise(facts: SessionFacts) -> bool:
    return facts.noise_test


def _noise_failed(facts: SessionFacts) -> bool:
    return facts.noise_test and facts.noise_passed is False


@dataclass(frozen=True)
class Edge:
    """One step, when it applies at all (otherwise the session goes on to the next step), and
    the condition on earlier facts under which it may run (otherwise the session has ended)."""

    step: Step
    condition: Callable[[SessionFacts], bool]
    refusal: str  # why it may not run when the condition fails
    applies: Callable[[SessionFacts], bool] = _always
    binds: bool = False


GRAPH: dict[SessionKind, tuple[Edge, ...]] = {
    SessionKind.HUNT: (
        Edge(Step.NOISE, _always, "", applies=_tests_noise),
        Edge(Step.NOISE_EACH, _always, "", applies=_noise_failed),
        Edge(Step.CHECK, _always, ""),
        Edge(
            Step.CONFIRM,
            lambda facts: bool(facts.candidates),
            "the hunt check did not fire: nothing may be confirmed or revealed",
        ),
        Edge(
            Step.MEMBERSHIP,
            lambda facts: facts.level is not None,
            "no candidate level was confirmed: no membership may be revealed",
            binds=True,
        ),
    ),
    SessionKind.VALIDATION: (
        Edge(Step.NOISE, _always, "", applies=_tests_noise),
        Edge(Step.NOISE_EACH, _always, "", applies=_noise_failed),
        Edge(Step.INPUT_NOISE, _always, "", applies=_noise_failed),
        Edge(
            Step.BATCH,
            lambda facts: facts.inputs_clean is not False,
            "the batch's noise test failed: no validity check may run on its intendos",
        ),
        Edge(
            Step.EACH,
            lambda facts: facts.batch_valid is False and facts.batch_size > 1,
            "the batch check already decided every intendo: no per-intendo check is allowed",
        ),
    ),
}


def steps(kind: SessionKind) -> tuple[Step, ...]:
    """The steps of a session of `kind`, in order."""
    return tuple(edge.step for edge in GRAPH[kind])


def _edge(kind: SessionKind, step: Step) -> tuple[int, Edge]:
    for position, edge in enumerate(GRAPH[kind]):
        if edge.step is step:
            return position, edge
    raise InvalidInput(f"step {step.value} does not belong to a {kind.value} session")


def next_step(facts: SessionFacts) -> Step | None:
    """The step that runs next, or None when the session has its outcome."""
    edges = GRAPH[facts.kind]
    position = 0 if facts.through is None else _edge(facts.kind, facts.through)[0] + 1
    while position < len(edges):
        edge = edges[position]
        if not edge.applies(facts):
            position += 1
            continue
        return edge.step if edge.condition(facts) else None
    return None


def require_step(facts: SessionFacts, step: Step) -> None:
    """Raise unless `step` is the one that runs next after `facts`: PolicyRefusal with the
    graph's reason when its condition fails, InvalidInput when it is out of order."""
    if next_step(facts) is step:
        return
    _, edge = _edge(facts.kind, step)
    if edge.applies(facts) and not edge.condition(facts):
        raise PolicyRefusal(edge.refusal)
    after = facts.through.value if facts.through is not None else "the start of the session"
    raise InvalidInput(f"the {step.value} step does not come after {after}")


def binds(kind: SessionKind, step: Step) -> bool:
    """Serving `step` commits the keyholder to the session's outcome (DESIGN.md §4)."""
    return _edge(kind, step)[1].binds


def binding(kind: SessionKind, decrypted: set[Step]) -> bool:
    """Whether a session whose `decrypted` steps are known may already have had a binding step
    served by some keyholder: a binding step itself, or the step just before one."""
    edges = GRAPH[kind]
    for position, edge in enumerate(edges):
        if edge.step in decrypted and (edge.binds or (position + 1 < len(edges) and edges[position + 1].binds)):
            return True
    return False
