"""Executing fired hunts: the executor interface every settlement backend implements.

The aggregator hands every certified hunt to an `Executor`, which applies the whole hunt (every
member's execution) atomically, exactly once: a retry of a hunt already applied changes nothing.
The default, an embedded SQLite ledger, is `stagpack.edge.ledger.SqliteLedger`; market
operators plug in their own executor for real settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stagpack.log import HuntCertificate
from stagpack.stag import StagSpec


class Executor(Protocol):
    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        """Apply the hunt atomically; return False if it had already been applied."""
        ...


@dataclass(frozen=True)
class Execution:
    stag_id: bytes
    intendo_id: bytes
    epoch: int
    participant: bytes
    weight: int
