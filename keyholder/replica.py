"""A keyholder's replicas of the stag logs it serves.

Entries are pulled from the aggregator (`LogSource`) only up to the height a session asks for,
checked by `PackState.apply`, and stored only once they passed. A log that breaks a rule stops
the replica: the keyholder refuses to serve that stag (a malicious aggregator cannot make it
decrypt anything derived from an invalid log).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Protocol

from stagpack.envelope import IntendoEnvelope
from stagpack.errors import IntegrityFailure, PolicyRefusal, StagpackError
from stagpack.fhe import FheContext
from stagpack.keyholder.store import KeyholderStore
from stagpack.log import EntryKind, HuntCertificate, LogEntry, decode_body
from stagpack.committee import CommitteeInfo
from stagpack.pack import PackLimits, PackState

log = logging.getLogger("stagpack.keyholder")


class LogSource(Protocol):
    """Where replicas pull log entries from (the aggregator)."""

    def read_log(self, stag_id: bytes, after_height: int, up_to_height: int) -> Iterable[tuple[LogEntry, bytes | None]]: ...


class _StoredCiphertexts:
    def __init__(self, store: KeyholderStore, stag_id: bytes) -> None:
        self._store = store
        self._stag_id = stag_id

    def ciphertext(self, intendo_id: bytes) -> bytes:
        return self._store.ciphertext(self._stag_id, intendo_id)


class Replicas:
    def __init__(
        self,
        context: FheContext,
        committee: CommitteeInfo,
        store: KeyholderStore,
        source: LogSource,
        limits: PackLimits,
        clock: Callable[[], int],
        on_hunt: Callable[[HuntCertificate], None] | None = None,
    ) -> None:
        """`on_hunt` sees every hunt certificate a replica applies (the keyholder notes the
        escrow accounts it spent)."""
        self._on_hunt = on_hunt
        self._context = context
        self._committee = committee
        self._store = store
        self._source = source
        self._limits = limits
        self._clock = clock
        self._states: dict[bytes, PackState] = {}
        self._broken: dict[bytes, str] = {}
        self._locks: dict[bytes, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, stag_id: bytes) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(stag_id, threading.Lock())

    def ciphertexts(self, stag_id: bytes) -> _StoredCiphertexts:
        return _StoredCiphertexts(self._store, stag_id)

    def state(self, stag_id: bytes) -> PackState:
        """The replica as stored (rebuilt from the local log after a restart). Call with the
        stag's lock held."""
        if stag_id in self._broken:
            raise IntegrityFailure(f"this keyholder stopped serving the stag: {self._broken[stag_id]}")
        state = self._states.get(stag_id)
        if state is None:
            state = PackState(self._context, self._committee, stag_id, self._limits)
            source = self.ciphertexts(stag_id)
            for entry in self._store.entries(stag_id):
                ciphertext = self._ciphertext_of(entry)
                state.apply(entry, ciphertext, source)
                if entry.kind is EntryKind.HUNT and self._on_hunt is not None:  # again: a crash may have cut it short
                    self._on_hunt(decode_body(entry, HuntCertificate))
            self._states[stag_id] = state
        return state

    def _ciphertext_of(self, entry: LogEntry) -> bytes | None:
        if entry.kind is not EntryKind.SUBMISSION:
            return None
        return self._store.ciphertext(entry.stag_id, decode_body(entry, IntendoEnvelope).intendo_id)

    def sync(self, stag_id: bytes, height: int) -> PackState:
        """Bring the replica to exactly `height` (pulling and checking entries). Call with the
        stag's lock held."""
        state = self.state(stag_id)
        if state.height > height:
            raise PolicyRefusal(
                f"stale request: this keyholder's replica is already at height {state.height}, past {height}"
            )
        if state.height == height:
            return state
        source = self.ciphertexts(stag_id)
        for entry, ciphertext in self._source.read_log(stag_id, state.height, height):
            intendo_id = None
            if entry.kind is EntryKind.SUBMISSION and ciphertext is not None:
                intendo_id = decode_body(entry, IntendoEnvelope).intendo_id
            try:
                if entry.accepted_at_millis > self._clock() + self._limits.max_clock_skew_millis:
                    raise IntegrityFailure("the entry is stamped in the future beyond the allowed clock skew")
                state.apply(entry, ciphertext, source)
            except StagpackError as error:
                reason = f"invalid log entry at height {state.height + 1}: {error}"
                log.error("replica of stag %s stopped: %s", stag_id.hex()[:12], reason)
                self._broken[stag_id] = reason
                self._states.pop(stag_id, None)
                raise IntegrityFailure(reason) from None
            self._store.append_entry(entry, ciphertext if intendo_id is not None else None, intendo_id)
            if entry.kind is EntryKind.HUNT and self._on_hunt is not None:
                self._on_hunt(decode_body(entry, HuntCertificate))
        if state.height != height:
            raise PolicyRefusal(f"the aggregator's log for this stag ends at height {state.height}, not {height}")
        return state
