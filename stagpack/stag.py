"""A stag: one coordination question with its levels, eligibility, epochs and payload.

The spec is immutable and public; its digest is the stag id. It is the first entry of the
stag's log, so every keyholder replica knows the same rules.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from stagpack import codec
from stagpack.accounts import Account
from stagpack.encoding import MIN_LEVELS, StagKind
from stagpack.errors import InvalidInput
from stagpack.identity import check_verify_key, digest
from stagpack.terms import FeeTerms, RefundTerms

MIN_EPOCH_MILLIS = 100
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ELIGIBLE = 100_000
MAX_TITLE = 200
MAX_TRIGGER_DEPTH = 8  # the longest chain of triggers above a stag (DESIGN.md §10.2: a DAG of bounded depth)
MAX_RING = 1024  # the largest eligibility list of an anonymous stag: every replica checks a ring signature of that size per intendo
ANONYMOUS_MEMBER_BYTES = 76  # per ring member, in each member's envelope (its ring signature's two responses and framing)
ANONYMOUS_CERTIFICATE_BYTES = 2 * 1024 * 1024  # what all of an anonymous stag's members may weigh in its hunt certificates
MAX_BUNDLE = 16  # the most stags one trigger tree may hold: its largest bundle (the settlement contract's bound)


def max_anonymous_members(ring: int) -> int:
    """The most members an anonymous stag with a ring of `ring` keys may hold (levels − 1): every
    executed member's envelope, with its ring signature and its released identity (up to 4 KiB),
    is in a hunt certificate, and `stag status` carries every hunt's certificate in one message."""
    return ANONYMOUS_CERTIFICATE_BYTES // (ANONYMOUS_MEMBER_BYTES * ring + 4096)


def now_millis() -> int:
    return int(time.time() * 1000)


class ManualClock:
    """Milliseconds since the epoch, moved forward only by its owner (tests and benchmarks drive
    epochs with it instead of sleeping). Callable like `now_millis`; thread-safe."""

    def __init__(self) -> None:
        self._now = now_millis()
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, millis: int) -> None:
        with self._lock:
            self._now += millis


@dataclass(frozen=True)
class StagSpec:
    """Everything that defines a stag. `eligibility` empty means open to any identity."""

    WIRE_NAME = "stagpack.StagSpec.v5"

    committee: bytes  # the committee (transcript digest) whose key encrypts this stag
    kind: StagKind
    levels: int
    title: str
    eligibility: tuple[bytes, ...]  # sorted Ed25519 public keys of eligible participants
    epoch_millis: int
    opens_at_millis: int
    deadline_millis: int  # 0: no deadline
    payload: bytes  # opaque to stagpack; handed to the executor when a hunt fires
    beneficiary: Account | None  # capital stags: the account a hunt's capital is paid to
    refund: RefundTerms | None  # capital stags with a deadline: a dominant-assurance refund pool
    fees: FeeTerms | None  # capital stags: fees per submission and per executed member
    trigger: bytes  # b"" or the id of a stag of the same committee whose first hunt arms this one
    hook: bytes  # b"" or the 20-byte address of a contract the chain executor calls with each hunt
    anonymous: bool  # intendos are ring-signed over `eligibility`; signers are named only at a hunt (DESIGN.md §10.5)
    nonce: bytes

    @classmethod
    def new(
        cls,
        *,
        committee: bytes,
        kind: StagKind,
        levels: int,
        title: str = "",
        eligibility: tuple[bytes, ...] = (),
        epoch_millis: int = 10_000,
        opens_at_millis: int | None = None,
        deadline_millis: int = 0,
        payload: bytes = b"",
        beneficiary: Account | None = None,
        refund: RefundTerms | None = None,
        fees: FeeTerms | None = None,
        trigger: bytes = b"",
        hook: bytes = b"",
        anonymous: bool = False,
    ) -> StagSpec:
        return cls(
            committee=committee,
            kind=kind,
            levels=levels,
            title=title,
            eligibility=tuple(sorted(set(eligibility))),
            epoch_millis=epoch_millis,
            opens_at_millis=now_millis() if opens_at_millis is None else opens_at_millis,
            deadline_millis=deadline_millis,
            payload=payload,
            beneficiary=beneficiary,
            refund=refund,
            fees=fees,
            trigger=trigger,
            hook=hook,
            anonymous=anonymous,
            nonce=os.urandom(16),
        )

    @property
    def stag_id(self) -> bytes:
        return digest("stag", codec.encode(self))

    def validate(self, max_levels: int, committee: bytes) -> None:
        """Raise InvalidInput unless the spec is one this committee can serve."""
        if self.committee != committee:
            raise InvalidInput("the stag names another committee")
        if not isinstance(self.kind, StagKind):
            raise InvalidInput("unknown stag kind")
        if type(self.levels) is not int or not MIN_LEVELS <= self.levels <= max_levels:
            raise InvalidInput(f"levels must be in {MIN_LEVELS}..{max_levels} (a stag is full at levels-1); got {self.levels}")
        if len(self.title) > MAX_TITLE:
            raise InvalidInput(f"title is longer than {MAX_TITLE} characters")
        if len(self.eligibility) > MAX_ELIGIBLE:
            raise InvalidInput(f"at most {MAX_ELIGIBLE} eligible participants")
        if tuple(sorted(set(self.eligibility))) != self.eligibility:
            raise InvalidInput("eligibility must be sorted and without duplicates")
        for key in self.eligibility:
            check_verify_key(key, "eligible participant key")
        if type(self.epoch_millis) is not int or self.epoch_millis < MIN_EPOCH_MILLIS:
            raise InvalidInput(f"the epoch period must be at least {MIN_EPOCH_MILLIS} ms")
        if self.opens_at_millis < 0 or self.deadline_millis < 0:
            raise InvalidInput("times must be non-negative")
        if self.deadline_millis and self.deadline_millis <= self.opens_at_millis:
            raise InvalidInput("the deadline must be after the opening time")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise InvalidInput(f"the payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        if self.kind is StagKind.CAPITAL:
            if self.beneficiary is None:
                raise InvalidInput("a capital stag names the beneficiary account its hunts pay (owner key and tag)")
            self.beneficiary.check("beneficiary")
        elif self.beneficiary is not None:
            raise InvalidInput("a count stag moves no money: it has no beneficiary")
        if self.kind is not StagKind.CAPITAL and (self.refund is not None or self.fees is not None):
            raise InvalidInput("refunds and fees are paid from and to escrow accounts: only a capital stag's intendos name one")
        if self.refund is not None:
            if not self.deadline_millis:
                raise InvalidInput("a refund pool pays out at the deadline: the stag needs one")
            self.refund.check(self.levels)
        if self.fees is not None:
            self.fees.check()
        if self.trigger and len(self.trigger) != 32:
            raise InvalidInput("the trigger names a stag by its 32-byte id")
        if self.trigger and self.refund is not None:
            raise InvalidInput(
                "a stag with a trigger cannot carry a refund pool: its deadline may pass before the trigger hunts, "
                "and refunds for a hunt that could not fire are not supported"
            )
        if self.hook and len(self.hook) != 20:
            raise InvalidInput("the hook is a contract's 20-byte EVM address")
        if type(self.anonymous) is not bool:
            raise InvalidInput("anonymous is true or false")
        if self.anonymous:
            if self.kind is not StagKind.COUNT:
                raise InvalidInput(
                    "only count stags can be anonymous: a capital intendo names the escrow account that backs it, "
                    "and an account is an identity"
                )
            if not 2 <= len(self.eligibility) <= MAX_RING:
                raise InvalidInput(f"an anonymous stag hides its signers among its eligibility list: give 2 to {MAX_RING} keys")
            most = max_anonymous_members(len(self.eligibility))
            if self.levels - 1 > most:
                raise InvalidInput(
                    f"an anonymous stag of {len(self.eligibility)} eligible keys holds at most {most} members (levels at most "
                    f"{most + 1}): each member's ring signature, about {ANONYMOUS_MEMBER_BYTES * len(self.eligibility):,} bytes, "
                    "travels in its hunt's certificate, and all of them must fit one status message"
                )
        if len(self.nonce) != 16:
            raise InvalidInput("the stag nonce must be 16 bytes")

    def is_eligible(self, participant: bytes) -> bool:
        return not self.eligibility or participant in self.eligibility

    def epoch_due_at(self, epoch: int) -> int:
        """Epoch e (1, 2, …) is due e periods after opening."""
        return self.opens_at_millis + epoch * self.epoch_millis

    def current_epoch(self, at_millis: int) -> int:
        """The latest epoch that is due at `at_millis` (0 before the first)."""
        if at_millis < self.opens_at_millis:
            return 0
        return (at_millis - self.opens_at_millis) // self.epoch_millis

    def accepts_submissions(self, at_millis: int) -> bool:
        """Intendos and withdrawals are accepted until the deadline (if any)."""
        return not self.deadline_millis or at_millis < self.deadline_millis

    def epoch_allowed(self, epoch: int) -> bool:
        """Epochs run from 1 until the last one due at or before the deadline — and, in a stag
        with a refund pool, one more: the closing epoch."""
        if epoch < 1:
            return False
        if not self.deadline_millis or self.epoch_due_at(epoch) <= self.deadline_millis:
            return True
        return self.is_closing(epoch)

    @property
    def closing_epoch(self) -> int:
        """A refund stag's last epoch, the first due after its deadline (0 for other stags): its
        check sees every intendo submitted before the deadline, and if it does not fire, the
        refunds are settled from it. Unlike other epochs it stays current until it has run."""
        if self.refund is None:
            return 0
        return (self.deadline_millis - self.opens_at_millis) // self.epoch_millis + 1

    def is_closing(self, epoch: int) -> bool:
        return self.refund is not None and epoch == self.closing_epoch
