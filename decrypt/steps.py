"""The session step graph: which step may follow which — the one definition (DESIGN.md §3, §7).

A session decrypts a sequence of steps. What a step decrypts may depend on what earlier steps
revealed (their *facts*), and whether it may run at all is a condition on those facts:

    hunt        CHECK ──(some level is a candidate)──▶ CONFIRM ──(a level was confirmed)──▶ MEMBERSHIP
    validation  BATCH ──(the batch is invalid and holds more than one intendo)──▶ EACH

Three parties read this table and nothing else for the order of steps:
- a keyholder refuses a step whose condition does not hold (`stagpack.keyholder.policy`);
- the aggregator runs the next step while its condition holds (`stagpack.aggregator.sessions`);
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
    """What a session's steps have revealed so far (`through`: the last step read)."""

    kind: SessionKind
    batch_size: int = 0  # validation: how many intendos the batch holds (public, from the log)
    through: Step | None = None
    candidates: tuple[int, ...] = ()  # CHECK: levels zero in both masked copies
    level: int | None = None  # CONFIRM: the greatest candidate confirmed with fresh masks
    members: tuple[bool, ...] | None = None  # MEMBERSHIP: one bit per pending intendo
    batch_valid: bool | None = None  # BATCH: every intendo of the batch is well-formed
    verdicts: tuple[bool, ...] | None = None  # EACH: one verdict per intendo of the batch


@dataclass(frozen=True)
class Edge:
    """One step and the condition on earlier facts under which it may run."""

    step: Step
    condition: Callable[[SessionFacts], bool]
    refusal: str  # why it may not run when the condition fails
    binds: bool = False


def _always(_: SessionFacts) -> bool:
    return True


GRAPH: dict[SessionKind, tuple[Edge, ...]] = {
    SessionKind.HUNT: (
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
        Edge(Step.BATCH, _always, ""),
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


def previous(kind: SessionKind, step: Step) -> Step | None:
    """The step whose facts `step` needs (None for the first)."""
    position, _ = _edge(kind, step)
    return GRAPH[kind][position - 1].step if position else None


def require_step(facts: SessionFacts, step: Step) -> None:
    """Raise unless `step` may run now: it comes right after what `facts` were read through, and
    its condition on them holds (PolicyRefusal with the graph's reason)."""
    position, edge = _edge(facts.kind, step)
    expected = GRAPH[facts.kind][position - 1].step if position else None
    if facts.through is not expected:
        raise InvalidInput(f"the {step.value} step needs the facts of the step before it")
    if not edge.condition(facts):
        raise PolicyRefusal(edge.refusal)


def next_step(facts: SessionFacts) -> Step | None:
    """The step that runs next, or None when the session has its outcome."""
    edges = GRAPH[facts.kind]
    position = 0 if facts.through is None else _edge(facts.kind, facts.through)[0] + 1
    if position < len(edges) and edges[position].condition(facts):
        return edges[position].step
    return None


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
