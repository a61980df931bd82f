"""A keyholder's durable state, as an interface: its replicas of the stag logs, its sessions,
its sealed keys. The records the policy reads are here; the SQLite implementation is
`stagpack.edge.keyholder_store` (another engine can replace it without touching protocol code).

Everything secret (the key share, the backup shares held for others) is sealed under the
keyholder's passphrase before it reaches a store (Argon2id + SecretBox); a store never holds a
secret in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Protocol

from stagpack.accounts import Account
from stagpack.log import LogEntry
from stagpack.session import SessionRef, SignedCommitment, SignedPartial, Step



@dataclass(frozen=True)
class ServedStep:
    """Partials this keyholder released for one step and family of quorums (returned again on
    retry; a different family reuses the own partial and adds stand-ins)."""

    WIRE_NAME = "ServedStep"

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
class BindingHunt:
    """A capital stag's hunt this keyholder released binding partials for, not yet finished
    (certified by this keyholder or recorded in its replica), and the escrow accounts of the
    intendos it could execute."""

    WIRE_NAME = "stagpack.keyholder.BindingHunt.v1"

    stag_id: bytes
    epoch: int
    accounts: tuple[Account, ...]


@dataclass(frozen=True)
class StoredCommittee:
    transcript: bytes
    joint_public_key: bytes
    relinearization: bytes
    rotation: bytes
    sealed_secret: bytes
    sealed_backups: bytes
    sealed_identity_secret: bytes  # this keyholder's share of the committee's identity key


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


class KeyholderStore(Protocol):
    """What a keyholder keeps durably. Every write is durable when the call returns."""

    def save_committee(self, committee: StoredCommittee) -> None: ...
    def load_committee(self) -> StoredCommittee | None: ...
    def append_entry(self, entry: LogEntry, ciphertext: bytes | None, intendo_id: bytes | None) -> None:
        """One replicated log entry (and a submission's ciphertext), in one transaction."""
        ...
    def entries(self, stag_id: bytes) -> Iterator[LogEntry]: ...
    def ciphertext(self, stag_id: bytes, intendo_id: bytes) -> bytes: ...
    def load_session(self, session_id: bytes) -> SessionRecord | None: ...
    def save_session(self, record: SessionRecord) -> None: ...
    def sessions(self, stag_id: bytes) -> list[SessionRecord]: ...
    def erase_sessions(self, records: list[SessionRecord]) -> None:
        """Replace `records` by their erased versions, in one transaction."""
        ...
    def record_spent(self, account: Account, stag_id: bytes, epoch: int) -> None:
        """Remember that a hunt of `stag_id` at `epoch` spent `account` (the first one counts)."""
        ...

    def spent_by(self, account: Account) -> tuple[bytes, int] | None: ...
    def mark_binding(self, binding: BindingHunt) -> None: ...
    def clear_binding(self, stag_id: bytes, epoch: int) -> None: ...
    def binding_hunts(self) -> list[BindingHunt]: ...
    def footprint(self) -> StoreFootprint: ...
    def close(self) -> None: ...
