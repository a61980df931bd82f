"""The aggregator's durable state, as an interface: each stag's log, epoch results and the
progress of unfinished sessions. The SQLite implementation is `stagpack.edge.aggregator_store`.

`append` is durable when it returns, so an acknowledged submission or withdrawal survives kill -9
of the aggregator at any moment, and a restart rebuilds every pack by replaying the log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterator, Protocol

from stagpack.log import LogEntry
from stagpack.session import SessionKind


class EpochOutcome(str, enum.Enum):
    """What an epoch's hunt check came to (public: it is in every stag's status)."""

    HUNT = "hunt"
    NO_HUNT = "no-hunt"
    EMPTY = "empty"  # no counted intendos: nothing to check
    SETTLED = "settled"  # a refund stag's closing check did not fire: its refunds were paid
    COMMITTEE_UNAVAILABLE = "committee-unavailable"  # postponed: fewer than t keyholders took part
    INTEGRITY_FAILURE = "integrity-failure"  # decryptions disagreed; nothing was revealed

    @property
    def checked(self) -> bool:
        """The pack was evaluated (an outcome, not a postponement)."""
        return self in (EpochOutcome.HUNT, EpochOutcome.NO_HUNT, EpochOutcome.EMPTY, EpochOutcome.SETTLED)


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    result: EpochOutcome
    at_millis: int
    height: int  # the log height the epoch looked at

    @property
    def checked(self) -> bool:
        """The pack at `height` was evaluated (an outcome, not a postponement)."""
        return self.result.checked


@dataclass(frozen=True)
class SessionCost:
    """What the committee spent on a stag's sessions (metered by the aggregator, so that fees
    can be set from measurements): sessions run, steps decrypted, calls to keyholders, partial
    decryptions received and their bytes. Failed and retried work counts too."""

    sessions: int = 0
    steps: int = 0
    calls: int = 0
    partials: int = 0
    partial_bytes: int = 0

    def __add__(self, other: SessionCost) -> SessionCost:
        return SessionCost(
            self.sessions + other.sessions, self.steps + other.steps, self.calls + other.calls,
            self.partials + other.partials, self.partial_bytes + other.partial_bytes,
        )


@dataclass(frozen=True)
class UnfinishedSession:
    """A session whose progress was saved and that has no outcome yet."""

    stag_id: bytes
    kind: SessionKind
    number: int
    progress: bytes  # an encoded `stagpack.aggregator.sessions.SessionProgress`


class AggregatorStore(Protocol):
    def append(self, entry: LogEntry, intendo_id: bytes | None = None, ciphertext: bytes | None = None) -> None:
        """Durably append one entry (and a submission's ciphertext) in one transaction."""
        ...
    def stag_ids(self) -> list[bytes]: ...
    def entries(self, stag_id: bytes, after_height: int = 0, up_to_height: int | None = None) -> Iterator[LogEntry]: ...
    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes: ...
    def record_epoch(self, stag_id: bytes, result: EpochResult) -> None: ...
    def epochs(self, stag_id: bytes) -> list[EpochResult]: ...
    def save_session(self, stag_id: bytes, kind: SessionKind, number: int, progress: bytes) -> None: ...
    def delete_session(self, stag_id: bytes, kind: SessionKind, number: int) -> None: ...
    def unfinished_sessions(self) -> list[UnfinishedSession]: ...
    def add_cost(self, stag_id: bytes, cost: SessionCost) -> None: ...
    def cost(self, stag_id: bytes) -> SessionCost: ...
    def close(self) -> None: ...
