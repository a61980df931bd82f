"""The default executor: an embedded SQLite ledger that records each hunt and its members'
executions in one transaction, exactly once (`stagpack.aggregator.ledger.Executor`)."""

from __future__ import annotations

from pathlib import Path

from stagpack.aggregator.ledger import Execution
from stagpack.edge.sqlite import Database, blob, integer
from stagpack.errors import IntegrityFailure
from stagpack.log import HuntCertificate
from stagpack.stag import StagSpec, now_millis

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
                if blob(existing[0]) != outcome.digest():
                    raise IntegrityFailure("a different hunt was already executed for this stag and epoch")
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
        return [Execution(blob(r[0]), blob(r[1]), integer(r[2]), blob(r[3]), integer(r[4])) for r in rows]

    def hunt_count(self) -> int:
        row = self._database.query_one("SELECT COUNT(*) FROM hunts")
        return integer(row[0]) if row else 0

    def close(self) -> None:
        self._database.close()
