"""Executing fired hunts: the executor interface and its default, an embedded SQLite ledger.

The aggregator hands every certified hunt to an `Executor`. The ledger applies the whole hunt
(every member's execution) in one transaction, exactly once: a retry of a hunt already applied
changes nothing. Market operators plug in their own executor for real settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stagpack.log import HuntCertificate
from stagpack.stag import StagSpec, now_millis
from stagpack.storage import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS hunts (
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    level INTEGER NOT NULL,
    payload BLOB NOT NULL,
    certificate_digest BLOB NOT NULL,
    executed_at_millis INTEGER NOT NULL,
    PRIMARY KEY (stag_id, epoch)
);
CREATE TABLE IF NOT EXISTS executions (
    stag_id BLOB NOT NULL,
    intendo_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    participant BLOB NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (stag_id, intendo_id),
    FOREIGN KEY (stag_id, epoch) REFERENCES hunts (stag_id, epoch)
);
"""


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


class SqliteLedger:
    """The default executor: records each hunt and its members' executions, once."""

    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    def execute(self, spec: StagSpec, certificate: HuntCertificate) -> bool:
        outcome = certificate.outcome
        with self._database.transaction() as connection:
            existing = connection.execute(
                "SELECT certificate_digest FROM hunts WHERE stag_id = ? AND epoch = ?", (outcome.stag_id, outcome.epoch)
            ).fetchone()
            if existing is not None:
                if bytes(existing[0]) != outcome.digest():
                    raise ValueError("a different hunt was already executed for this stag and epoch")
                return False
            connection.execute(
                "INSERT INTO hunts VALUES (?, ?, ?, ?, ?, ?)",
                (outcome.stag_id, outcome.epoch, outcome.level, spec.payload, outcome.digest(), now_millis()),
            )
            connection.executemany(
                "INSERT INTO executions VALUES (?, ?, ?, ?, ?)",
                [
                    (outcome.stag_id, member.intendo_id, outcome.epoch, member.statement.participant, member.statement.weight)
                    for member in outcome.members
                ],
            )
        return True

    def executions(self, stag_id: bytes) -> list[Execution]:
        rows = self._database.query(
            "SELECT stag_id, intendo_id, epoch, participant, weight FROM executions WHERE stag_id = ? ORDER BY epoch, rowid",
            (stag_id,),
        )
        return [Execution(bytes(r[0]), bytes(r[1]), int(r[2]), bytes(r[3]), int(r[4])) for r in rows]  # type: ignore[arg-type,call-overload]

    def hunt_count(self) -> int:
        row = self._database.query_one("SELECT COUNT(*) FROM hunts")
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def close(self) -> None:
        self._database.close()
