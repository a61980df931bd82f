"""SQLite plumbing shared by the SQLite stores (`stagpack.edge.*_store`, `stagpack.edge.ledger`).

Durability: WAL journal with synchronous=FULL, so a transaction that has committed survives
kill -9 of the process (and power loss, as far as the filesystem honours fsync). Every write that
acknowledges a client commits before the acknowledgement is sent.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from stagpack.errors import IntegrityFailure


# A stag's log and its submissions' ciphertexts, as the aggregator and every keyholder replica
# store them (`stagpack.edge.aggregator_store`, `stagpack.edge.keyholder_store`).
LOG_TABLES = """
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
"""


class Database:
    """One SQLite connection used from many threads, serialized by a lock."""

    def __init__(self, path: str | Path, schema: str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.RLock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._connection.executescript(schema)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (or ROLLBACK on error), holding the lock throughout."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._connection.execute(sql, parameters).fetchall())

    def query_one(self, sql: str, parameters: tuple[object, ...] = ()) -> tuple[object, ...] | None:
        with self._lock:
            row = self._connection.execute(sql, parameters).fetchone()
            return None if row is None else tuple(row)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def blob(value: object) -> bytes:
    """A BLOB column's value (a store holding anything else is corrupt)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise IntegrityFailure(f"the store holds {type(value).__name__} where bytes belong")
    return bytes(value)


def integer(value: object) -> int:
    """An INTEGER column's value."""
    if type(value) is not int:
        raise IntegrityFailure(f"the store holds {type(value).__name__} where an integer belongs")
    return value


def text(value: object) -> str:
    """A TEXT column's value."""
    if not isinstance(value, str):
        raise IntegrityFailure(f"the store holds {type(value).__name__} where text belongs")
    return value
