"""The SQLite implementation of the aggregator's store (`stagpack.aggregator.store`): WAL with
synchronous=FULL; a submission's ciphertext is stored in the same transaction as its entry."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from stagpack import codec
from stagpack.aggregator.store import EpochOutcome, EpochResult, SessionCost, UnfinishedSession
from stagpack.edge.sqlite import LOG_TABLES, Database, blob, integer, text
from stagpack.errors import NotFound
from stagpack.log import LogEntry
from stagpack.session import SessionKind

SCHEMA = LOG_TABLES + """
CREATE TABLE IF NOT EXISTS epochs (
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    result TEXT NOT NULL,
    at_millis INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (stag_id, epoch)
);
CREATE TABLE IF NOT EXISTS sessions (
    stag_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    number INTEGER NOT NULL,
    progress BLOB NOT NULL,
    PRIMARY KEY (stag_id, kind, number)
);
CREATE TABLE IF NOT EXISTS costs (
    stag_id BLOB PRIMARY KEY,
    sessions INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    partials INTEGER NOT NULL,
    partial_bytes INTEGER NOT NULL
);
"""


class SqliteAggregatorStore:
    """The aggregator's store in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    def append(self, entry: LogEntry, intendo_id: bytes | None = None, ciphertext: bytes | None = None) -> None:
        """Durably append one entry (and a submission's ciphertext) in one transaction."""
        with self._database.transaction() as connection:
            connection.execute("INSERT INTO log_entries VALUES (?, ?, ?)", (entry.stag_id, entry.height, codec.encode(entry)))
            if ciphertext is not None:
                connection.execute("INSERT OR REPLACE INTO ciphertexts VALUES (?, ?, ?)", (entry.stag_id, intendo_id, ciphertext))

    def stag_ids(self) -> list[bytes]:
        rows = self._database.query("SELECT stag_id FROM log_entries WHERE height = 1 ORDER BY rowid")
        return [blob(row[0]) for row in rows]

    def entries(self, stag_id: bytes, after_height: int = 0, up_to_height: int | None = None) -> Iterator[LogEntry]:
        limit = up_to_height if up_to_height is not None else 1 << 62
        rows = self._database.query(
            "SELECT entry FROM log_entries WHERE stag_id = ? AND height > ? AND height <= ? ORDER BY height",
            (stag_id, after_height, limit),
        )
        for (data,) in rows:
            yield codec.decode(LogEntry, blob(data))

    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes:
        row = self._database.query_one("SELECT data FROM ciphertexts WHERE stag_id = ? AND intendo_id = ?", (stag_id, intendo_id))
        if row is None:
            raise NotFound("no ciphertext for that intendo")
        return blob(row[0])

    def record_epoch(self, stag_id: bytes, result: EpochResult) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?)",
                (stag_id, result.epoch, result.result.value, result.at_millis, result.height),
            )

    def epochs(self, stag_id: bytes) -> list[EpochResult]:
        rows = self._database.query(
            "SELECT epoch, result, at_millis, height FROM epochs WHERE stag_id = ? ORDER BY epoch", (stag_id,)
        )
        return [EpochResult(integer(row[0]), EpochOutcome(text(row[1])), integer(row[2]), integer(row[3])) for row in rows]

    def save_session(self, stag_id: bytes, kind: SessionKind, number: int, progress: bytes) -> None:
        with self._database.transaction() as connection:
            connection.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)", (stag_id, kind.value, number, progress))

    def delete_session(self, stag_id: bytes, kind: SessionKind, number: int) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "DELETE FROM sessions WHERE stag_id = ? AND kind = ? AND number = ?", (stag_id, kind.value, number)
            )

    def unfinished_sessions(self) -> list[UnfinishedSession]:
        rows = self._database.query("SELECT stag_id, kind, number, progress FROM sessions ORDER BY stag_id, number")
        return [UnfinishedSession(blob(row[0]), SessionKind(text(row[1])), integer(row[2]), blob(row[3])) for row in rows]

    def add_cost(self, stag_id: bytes, cost: SessionCost) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO costs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stag_id) DO UPDATE SET "
                "sessions = sessions + excluded.sessions, steps = steps + excluded.steps, calls = calls + excluded.calls, "
                "partials = partials + excluded.partials, partial_bytes = partial_bytes + excluded.partial_bytes",
                (stag_id, cost.sessions, cost.steps, cost.calls, cost.partials, cost.partial_bytes),
            )

    def cost(self, stag_id: bytes) -> SessionCost:
        row = self._database.query_one("SELECT sessions, steps, calls, partials, partial_bytes FROM costs WHERE stag_id = ?", (stag_id,))
        return SessionCost() if row is None else SessionCost(*(integer(value) for value in row))

    def close(self) -> None:
        self._database.close()
