"""The SQLite implementation of a keyholder's store (`stagpack.keyholder.store.KeyholderStore`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from stagpack import codec
from stagpack.edge.sqlite import LOG_TABLES, Database, blob, integer
from stagpack.errors import NotFound
from stagpack.accounts import Account
from stagpack.keyholder.store import BindingHunt, SessionRecord, StoredCommittee, StoreFootprint
from stagpack.log import LogEntry

SCHEMA = LOG_TABLES + """
CREATE TABLE IF NOT EXISTS committee (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    transcript BLOB NOT NULL,
    joint_public_key BLOB NOT NULL,
    relinearization BLOB NOT NULL,
    rotation BLOB NOT NULL,
    sealed_secret BLOB NOT NULL,
    sealed_backups BLOB NOT NULL,
    sealed_identity_secret BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id BLOB PRIMARY KEY,
    stag_id BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_stag ON sessions (stag_id);
CREATE TABLE IF NOT EXISTS spent_accounts (
    owner BLOB NOT NULL,
    tag TEXT NOT NULL,
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    PRIMARY KEY (owner, tag)
);
CREATE TABLE IF NOT EXISTS binding_hunts (
    stag_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    accounts BLOB NOT NULL,
    PRIMARY KEY (stag_id, epoch)
);
"""


class SqliteKeyholderStore:
    """A keyholder's store in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    # committee
    def save_committee(self, committee: StoredCommittee) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM committee")
            connection.execute(
                "INSERT INTO committee VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                (
                    committee.transcript,
                    committee.joint_public_key,
                    committee.relinearization,
                    committee.rotation,
                    committee.sealed_secret,
                    committee.sealed_backups,
                    committee.sealed_identity_secret,
                ),
            )

    def load_committee(self) -> StoredCommittee | None:
        row = self._database.query_one(
            "SELECT transcript, joint_public_key, relinearization, rotation, sealed_secret, sealed_backups, sealed_identity_secret "
            "FROM committee"
        )
        return None if row is None else StoredCommittee(*(blob(value) for value in row))

    # replicas
    def append_entry(self, entry: LogEntry, ciphertext: bytes | None, intendo_id: bytes | None) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO log_entries VALUES (?, ?, ?)", (entry.stag_id, entry.height, codec.encode(entry))
            )
            if ciphertext is not None and intendo_id is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO ciphertexts VALUES (?, ?, ?)", (entry.stag_id, intendo_id, ciphertext)
                )

    def entries(self, stag_id: bytes) -> Iterator[LogEntry]:
        for (data,) in self._database.query("SELECT entry FROM log_entries WHERE stag_id = ? ORDER BY height", (stag_id,)):
            yield codec.decode(LogEntry, blob(data))

    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes:
        row = self._database.query_one(
            "SELECT data FROM ciphertexts WHERE stag_id = ? AND intendo_id = ?", (stag_id, intendo_id)
        )
        if row is None:
            raise NotFound("ciphertext missing from the replica")
        return blob(row[0])

    # sessions
    def load_session(self, session_id: bytes) -> SessionRecord | None:
        row = self._database.query_one("SELECT record FROM sessions WHERE session_id = ?", (session_id,))
        return None if row is None else codec.decode(SessionRecord, blob(row[0]))

    def save_session(self, record: SessionRecord) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                (record.session.session_id, record.session.stag_id, codec.encode(record)),
            )

    def sessions(self, stag_id: bytes) -> list[SessionRecord]:
        rows = self._database.query("SELECT record FROM sessions WHERE stag_id = ?", (stag_id,))
        return [codec.decode(SessionRecord, blob(row[0])) for row in rows]

    def erase_sessions(self, records: list[SessionRecord]) -> None:
        """Replace `records` by their erased versions, in one transaction."""
        with self._database.transaction() as connection:
            connection.executemany(
                "UPDATE sessions SET record = ? WHERE session_id = ?",
                [(codec.encode(record.erase()), record.session.session_id) for record in records],
            )

    # escrow accounts spent by hunts, and capital hunts that bound this keyholder
    def record_spent(self, account: Account, stag_id: bytes, epoch: int) -> None:
        with self._database.transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO spent_accounts VALUES (?, ?, ?, ?)", (account.owner, account.tag, stag_id, epoch))

    def spent_by(self, account: Account) -> tuple[bytes, int] | None:
        row = self._database.query_one("SELECT stag_id, epoch FROM spent_accounts WHERE owner = ? AND tag = ?", (account.owner, account.tag))
        return None if row is None else (blob(row[0]), integer(row[1]))

    def mark_binding(self, binding: BindingHunt) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO binding_hunts VALUES (?, ?, ?)", (binding.stag_id, binding.epoch, codec.encode(binding))
            )

    def clear_binding(self, stag_id: bytes, epoch: int) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM binding_hunts WHERE stag_id = ? AND epoch = ?", (stag_id, epoch))

    def binding_hunts(self) -> list[BindingHunt]:
        return [codec.decode(BindingHunt, blob(row[0])) for row in self._database.query("SELECT accounts FROM binding_hunts")]

    def footprint(self) -> StoreFootprint:
        """How much the store holds (record payloads; SQLite's own page overhead not counted)."""
        entries = [integer(row[0]) for row in self._database.query("SELECT LENGTH(entry) FROM log_entries")]
        ciphertexts = [integer(row[0]) for row in self._database.query("SELECT LENGTH(data) FROM ciphertexts")]
        sessions = [
            (len(blob(row[0])), codec.decode(SessionRecord, blob(row[0])).erased)
            for row in self._database.query("SELECT record FROM sessions")
        ]
        return StoreFootprint(
            log_entries=len(entries),
            log_bytes=sum(entries),
            ciphertexts=len(ciphertexts),
            ciphertext_bytes=sum(ciphertexts),
            erased_sessions=sum(1 for _, erased in sessions if erased),
            erased_session_bytes=sum(size for size, erased in sessions if erased),
            whole_sessions=sum(1 for _, erased in sessions if not erased),
            whole_session_bytes=sum(size for size, erased in sessions if not erased),
        )

    def close(self) -> None:
        self._database.close()
