"""The stagpack error hierarchy.

Every failure the library reports is a `StagpackError`. Subclasses say *what kind* of failure it
is, which is all a caller (or the gRPC edge, see `stagpack.edge.rpc`) needs in order to react:
bad input, wrong phase, a policy refusal, a duplicate, something unknown, an unavailable
committee, or a cryptographic integrity failure. Messages never contain secret material.
"""

from __future__ import annotations


class StagpackError(Exception):
    """Root of all errors raised by stagpack."""


class InvalidInput(StagpackError, ValueError):
    """A value is malformed or out of range (a bad threshold, garbage bytes, a wrong field)."""


class InvalidSignature(InvalidInput):
    """A signature does not verify against the stated key and message."""


class WrongPhase(StagpackError):
    """The request is well-formed but not allowed now (a protocol round out of order, a stag
    that is closed, a ceremony that has not completed)."""


class PolicyRefusal(StagpackError):
    """A keyholder refuses a decryption request that the decryption policy does not allow."""


class Unauthenticated(StagpackError):
    """The caller did not prove it is a party this service serves (a missing, forged, stale,
    replayed or misdirected credential)."""


class AlreadyExists(StagpackError):
    """A duplicate: a replayed envelope, a second live intendo, a repeated protocol message."""


class NotFound(StagpackError):
    """An unknown stag, intendo, session or party."""


class RateLimited(StagpackError):
    """The caller has exceeded a limit (for example too many rejected intendos)."""


class CommitteeUnavailable(StagpackError):
    """Fewer keyholders than the threshold answered; nothing was revealed, retry later."""


class IntegrityFailure(StagpackError):
    """Cryptographic results disagree with each other (a corrupted partial decryption, a replica
    that diverged from the log, a transcript that does not match). Nothing is revealed."""


class UnverifiedEvidence(IntegrityFailure):
    """Presented evidence does not check out: partials signed for another session or step,
    masks that do not match their commitments, a ciphertext nobody recomputed. A keyholder
    refuses to take part on such evidence (`stagpack.keyholder.policy`)."""


class KeyholderUnreachable(StagpackError):
    """The keyholder did not answer (down, partitioned, timed out). Others may stand in."""


class CryptoFailure(StagpackError):
    """The cryptographic backend failed in a way that is not the caller's fault."""


class InsufficientFunds(WrongPhase):
    """An escrow account holds too little for the intendo or release asked of it (deposit first,
    or withdraw the intendo it backs)."""
