"""A keyholder's durable state: its replicas of the stag logs, its sessions, its sealed keys.

Everything secret (the key share, the backup shares held for others) is sealed under the
keyholder's passphrase before it reaches the database (Argon2id + SecretBox); the database never
holds a secret in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from stagpack import codec
from stagpack.errors import NotFound
from stagpack.log import LogEntry
from stagpack.session import SessionRef, SignedCommitment, SignedPartial, Step
from stagpack.storage import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS committee (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    transcript BLOB NOT NULL,
    joint_public_key BLOB NOT NULL,
    relinearization BLOB NOT NULL,
    rotation BLOB NOT NULL,
    sealed_secret BLOB NOT NULL,
    sealed_backups BLOB NOT NULL
);
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
CREATE TABLE IF NOT EXISTS sessions (
    session_id BLOB PRIMARY KEY,
    stag_id BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_stag ON sessions (stag_id);
"""


@dataclass(frozen=True)
class ServedStep:
    """Partials this keyholder released for one step and family of quorums (returned again on
    retry; a different family reuses the own partial and adds stand-ins)."""

    step: Step
    quorums: tuple[tuple[int, ...], ...]
    partials: tuple[SignedPartial, ...]


@dataclass(frozen=True)
class SessionRecord:
    """A keyholder's durable record of one session.

    Once a session can never be served again (the replica has moved past its height, or a later
    epoch's hunt opened), its bulk (the masks and every partial released) is erased, leaving what
    the policy still reads: the session's identity, which steps it served, the level it fired at,
    what was certified. Without that a keyholder's store would grow by megabytes every epoch, and
    old masks would outlive their use.
    """

    WIRE_NAME = "stagpack.keyholder.SessionRecord.v2"

    session: SessionRef
    masks: tuple[bytes, ...]
    commitment: SignedCommitment
    fixed_commitments: tuple[SignedCommitment, ...]  # empty until the reveal fixes them
    served: tuple[ServedStep, ...]
    fired_level: int  # > 0 once membership was revealed: the hunt must then be recorded
    certified: bytes  # digest of the outcome this keyholder signed, b"" if none
    erased: bool  # the masks and partials are gone: the session can never be served again

    def erase(self) -> SessionRecord:
        served = tuple(replace(step, partials=()) for step in self.served)
        return replace(self, masks=(), served=served, erased=True)

    def served_step(self, step: Step, quorums: tuple[tuple[int, ...], ...]) -> ServedStep | None:
        for served in self.served:
            if served.step is step and served.quorums == quorums:
                return served
        return None

    def own_partials(self, step: Step) -> tuple[SignedPartial, ...]:
        """The own partials already released for `step` (one per ciphertext, reused)."""
        for served in self.served:
            if served.step is step:
                return tuple(partial for partial in served.partials if partial.statement.quorum == ())
        return ()


@dataclass(frozen=True)
class StoredCommittee:
    transcript: bytes
    joint_public_key: bytes
    relinearization: bytes
    rotation: bytes
    sealed_secret: bytes
    sealed_backups: bytes


@dataclass(frozen=True)
class StoreFootprint:
    """Counts and payload bytes of what a keyholder's store holds."""

    log_entries: int
    log_bytes: int
    ciphertexts: int
    ciphertext_bytes: int
    erased_sessions: int
    erased_session_bytes: int
    whole_sessions: int
    whole_session_bytes: int


class KeyholderStore:
    def __init__(self, path: str | Path) -> None:
        self._database = Database(path, SCHEMA)

    # committee
    def save_committee(self, committee: StoredCommittee) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM committee")
            connection.execute(
                "INSERT INTO committee VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    committee.transcript,
                    committee.joint_public_key,
                    committee.relinearization,
                    committee.rotation,
                    committee.sealed_secret,
                    committee.sealed_backups,
                ),
            )

    def load_committee(self) -> StoredCommittee | None:
        row = self._database.query_one(
            "SELECT transcript, joint_public_key, relinearization, rotation, sealed_secret, sealed_backups FROM committee"
        )
        return None if row is None else StoredCommittee(*row)  # type: ignore[arg-type]

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

    def stags(self) -> list[bytes]:
        return [bytes(row[0]) for row in self._database.query("SELECT DISTINCT stag_id FROM log_entries")]  # type: ignore[arg-type]

    def entries(self, stag_id: bytes) -> Iterator[LogEntry]:
        for (data,) in self._database.query("SELECT entry FROM log_entries WHERE stag_id = ? ORDER BY height", (stag_id,)):
            yield codec.decode(LogEntry, data)  # type: ignore[arg-type]

    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes:
        row = self._database.query_one(
            "SELECT data FROM ciphertexts WHERE stag_id = ? AND intendo_id = ?", (stag_id, intendo_id)
        )
        if row is None:
            raise NotFound("ciphertext missing from the replica")
        return bytes(row[0])  # type: ignore[arg-type]

    # sessions
    def load_session(self, session_id: bytes) -> SessionRecord | None:
        row = self._database.query_one("SELECT record FROM sessions WHERE session_id = ?", (session_id,))
        return None if row is None else codec.decode(SessionRecord, row[0])  # type: ignore[arg-type]

    def save_session(self, record: SessionRecord) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                (record.session.session_id, record.session.stag_id, codec.encode(record)),
            )

    def sessions(self, stag_id: bytes) -> list[SessionRecord]:
        rows = self._database.query("SELECT record FROM sessions WHERE stag_id = ?", (stag_id,))
        return [codec.decode(SessionRecord, row[0]) for row in rows]  # type: ignore[arg-type]

    def erase_sessions(self, records: list[SessionRecord]) -> None:
        """Replace `records` by their erased versions, in one transaction."""
        with self._database.transaction() as connection:
            connection.executemany(
                "UPDATE sessions SET record = ? WHERE session_id = ?",
                [(codec.encode(record.erase()), record.session.session_id) for record in records],
            )

    def footprint(self) -> StoreFootprint:
        """How much the store holds (record payloads; SQLite's own page overhead not counted)."""
        entries = [int(row[0]) for row in self._database.query("SELECT LENGTH(entry) FROM log_entries")]  # type: ignore[call-overload]
        ciphertexts = [int(row[0]) for row in self._database.query("SELECT LENGTH(data) FROM ciphertexts")]  # type: ignore[call-overload]
        sessions = [
            (len(row[0]), codec.decode(SessionRecord, row[0]).erased)  # type: ignore[arg-type]
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
