"""The aggregator's durable pack log (SQLite, WAL, synchronous=FULL).

Each stag's log is a sequence of entries; a submission's ciphertext is stored in the same
transaction as its entry. `append` commits before it returns, so an acknowledged submission or
withdrawal survives kill -9 of the aggregator at any moment, and a restart rebuilds every pack
by replaying the log. Epoch results and the progress of unfinished sessions are stored too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from stagpack import codec
from stagpack.errors import NotFound
from stagpack.log import LogEntry
from stagpack.storage import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (
    stag_id BLOB NOT NULL,
    height INTEGER NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (stag_id, height)
);
CREATE TABLE IF NOT EXISTS ciphertexts (
    stag_id BLOB NOT NULL,
    intendo_id BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (stag_id, intendo_id)
);
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
"""


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    result: str  # "no-hunt", "hunt", "empty", "committee-unavailable", "integrity-failure"
    at_millis: int
    height: int  # the log height the epoch looked at

    @property
    def checked(self) -> bool:
        """The pack at `height` was evaluated (an outcome, not a postponement)."""
        return self.result in ("no-hunt", "hunt", "empty")


class AggregatorStore:
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
        return [bytes(row[0]) for row in rows]  # type: ignore[arg-type]

    def entries(self, stag_id: bytes, after_height: int = 0, up_to_height: int | None = None) -> Iterator[LogEntry]:
        limit = up_to_height if up_to_height is not None else 1 << 62
        rows = self._database.query(
            "SELECT entry FROM log_entries WHERE stag_id = ? AND height > ? AND height <= ? ORDER BY height",
            (stag_id, after_height, limit),
        )
        for (data,) in rows:
            yield codec.decode(LogEntry, data)  # type: ignore[arg-type]

    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes:
        row = self._database.query_one("SELECT data FROM ciphertexts WHERE stag_id = ? AND intendo_id = ?", (stag_id, intendo_id))
        if row is None:
            raise NotFound("no ciphertext for that intendo")
        return bytes(row[0])  # type: ignore[arg-type]

    def record_epoch(self, stag_id: bytes, result: EpochResult) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?)",
                (stag_id, result.epoch, result.result, result.at_millis, result.height),
            )

    def epochs(self, stag_id: bytes) -> list[EpochResult]:
        rows = self._database.query(
            "SELECT epoch, result, at_millis, height FROM epochs WHERE stag_id = ? ORDER BY epoch", (stag_id,)
        )
        return [EpochResult(int(row[0]), str(row[1]), int(row[2]), int(row[3])) for row in rows]  # type: ignore[call-overload]

    def save_session(self, stag_id: bytes, kind: str, number: int, progress: bytes) -> None:
        with self._database.transaction() as connection:
            connection.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)", (stag_id, kind, number, progress))

    def delete_session(self, stag_id: bytes, kind: str, number: int) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM sessions WHERE stag_id = ? AND kind = ? AND number = ?", (stag_id, kind, number))

    def unfinished_sessions(self) -> list[tuple[bytes, str, int, bytes]]:
        rows = self._database.query("SELECT stag_id, kind, number, progress FROM sessions ORDER BY stag_id, number")
        return [(bytes(row[0]), str(row[1]), int(row[2]), bytes(row[3])) for row in rows]  # type: ignore[call-overload,arg-type]

    def close(self) -> None:
        self._database.close()
