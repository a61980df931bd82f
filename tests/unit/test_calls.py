"""Unit tests for who may call whom (stagpack.calls, DESIGN.md §4): signed call credentials, the
ReplayGuard every callee runs, and the keyholder's rule 0 (`policy.callers_for`).

Oracle: credentials built field by field here and signed with the callers' keys (or forged);
each rule of `ReplayGuard.admit` is hit on its own with everything else right, and the same
credential is admitted right after, so a refusal is never an accident of another field.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from stagpack import codec
from stagpack.calls import CREDENTIAL_NONCE_BYTES, ReplayGuard, SignedCredential, read_credential, sign_call
from stagpack.committee import CommitteeInfo
from stagpack.dkg.rounds import CEREMONY_ROUNDS, PLAN, SIGN
from stagpack.errors import InvalidInput, Unauthenticated, WrongPhase
from stagpack.identity import SigningIdentity
from stagpack.keyholder import policy
from stagpack.log import LogRange
from stagpack.session import DECRYPT, OPEN_SESSION, SESSION_CALLS

SKEW = 30_000
NOW = 1_790_000_000_000
CALLER, CALLEE, STRANGER = SigningIdentity(b"\x11" * 32), SigningIdentity(b"\x12" * 32), SigningIdentity(b"\x13" * 32)
REQUEST = codec.encode(LogRange(b"\x07" * 32, 0, 5))


def _admit(guard: ReplayGuard, signed: SignedCredential, *, rpc: str = "ReadLog", audience: bytes = CALLEE.verify_key,
           request: bytes = REQUEST, callers: frozenset[bytes] = frozenset((CALLER.verify_key,)), now: int = NOW) -> bytes:
    return guard.admit(signed, rpc, audience, request, callers, now)


def _signed(**changes: object) -> SignedCredential:
    """A credential of CALLER for ReadLog to CALLEE over REQUEST at NOW, with `changes` made
    before signing (a signature CALLER really made)."""
    credential = dataclasses.replace(sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW).credential, **changes)
    return SignedCredential(credential, CALLER.sign("call", codec.encode(credential)))


def test_sign_call_binds_the_call_the_callee_and_the_request() -> None:
    signed = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    credential = signed.credential
    assert (credential.rpc, credential.caller, credential.audience, credential.issued_at_millis) == ("ReadLog", CALLER.verify_key, CALLEE.verify_key, NOW)
    assert credential.request == hashlib.sha256(REQUEST).digest()
    assert len(credential.nonce) == CREDENTIAL_NONCE_BYTES
    assert sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW).credential.nonce != credential.nonce  # fresh each call
    assert codec.decode(SignedCredential, codec.encode(signed)) == signed


def test_a_credential_is_admitted_once_and_a_replay_is_refused() -> None:
    guard = ReplayGuard(SKEW)
    signed = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    assert _admit(guard, signed) == CALLER.verify_key
    with pytest.raises(Unauthenticated, match="replay"):
        _admit(guard, signed)
    with pytest.raises(Unauthenticated, match="replay"):
        _admit(guard, signed, now=NOW + SKEW)  # still within the skew: still remembered
    # The same request in a fresh credential is a new call; another guard (another callee
    # process) keeps its own memory.
    assert _admit(guard, sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)) == CALLER.verify_key
    assert _admit(ReplayGuard(SKEW), signed) == CALLER.verify_key


@pytest.mark.parametrize(
    "case, admit, message",
    [
        ("stale", {"now": NOW + SKEW + 1}, "stale"),
        ("from the future", {"now": NOW - SKEW - 1}, "future"),
        ("wrong audience", {"audience": STRANGER.verify_key}, "another call or callee"),
        ("wrong rpc", {"rpc": "Decrypt"}, "another call or callee"),
        ("wrong body", {"request": codec.encode(LogRange(b"\x07" * 32, 0, 6))}, "another request"),
        ("unknown caller", {"callers": frozenset((STRANGER.verify_key,))}, "not one this service serves"),
        ("no caller served", {"callers": frozenset()}, "not one this service serves"),
    ],
)
def test_each_rule_refuses_on_its_own(case: str, admit: dict[str, object], message: str) -> None:
    guard = ReplayGuard(SKEW)
    signed = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    with pytest.raises(Unauthenticated, match=message):
        _admit(guard, signed, **admit)  # type: ignore[arg-type]
    assert _admit(guard, signed) == CALLER.verify_key  # a refusal does not use the credential up


def test_the_skew_bounds_are_inclusive() -> None:
    for now in (NOW - SKEW, NOW + SKEW):
        assert _admit(ReplayGuard(SKEW), sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW), now=now) == CALLER.verify_key


@pytest.mark.parametrize(
    "case",
    ["signature bit flipped", "signed by another key", "wrong signing domain", "caller edited after signing",
     "time edited after signing", "short signature", "request edited after signing"],
)
def test_bad_signatures_are_unauthenticated(case: str) -> None:
    honest = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    credential, signature = honest.credential, honest.signature
    flipped = bytearray(signature)
    flipped[7] ^= 0x04
    other_request = codec.encode(LogRange(b"\x07" * 32, 0, 9))
    forged = {
        "signature bit flipped": SignedCredential(credential, bytes(flipped)),
        "signed by another key": SignedCredential(credential, STRANGER.sign("call", codec.encode(credential))),
        "wrong signing domain": SignedCredential(credential, CALLER.sign("transcript", codec.encode(credential))),
        "caller edited after signing": SignedCredential(dataclasses.replace(credential, caller=STRANGER.verify_key), signature),
        "time edited after signing": SignedCredential(dataclasses.replace(credential, issued_at_millis=NOW + 1), signature),
        "short signature": SignedCredential(credential, signature[:-1]),
        "request edited after signing": SignedCredential(dataclasses.replace(credential, request=hashlib.sha256(other_request).digest()), signature),
    }[case]
    guard = ReplayGuard(SKEW)
    callers = frozenset((CALLER.verify_key, STRANGER.verify_key))
    request = other_request if case == "request edited after signing" else REQUEST
    with pytest.raises(Unauthenticated, match="signature"):
        _admit(guard, forged, callers=callers, request=request)
    assert _admit(guard, honest) == CALLER.verify_key


def test_a_malformed_nonce_is_refused_even_when_signed() -> None:
    for nonce in (b"", b"\x00" * (CREDENTIAL_NONCE_BYTES - 1), b"\x00" * (CREDENTIAL_NONCE_BYTES + 1)):
        with pytest.raises(Unauthenticated, match="nonce"):
            _admit(ReplayGuard(SKEW), _signed(nonce=nonce))
    assert _admit(ReplayGuard(SKEW), _signed(nonce=b"\x00" * CREDENTIAL_NONCE_BYTES)) == CALLER.verify_key


def test_the_guard_forgets_only_credentials_that_can_no_longer_be_presented() -> None:
    guard = ReplayGuard(SKEW)
    early = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    _admit(guard, early)
    # Much later the old credential is refused as stale (not accepted for having been forgotten).
    later = NOW + 3 * SKEW
    _admit(guard, sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, later), now=later)
    with pytest.raises(Unauthenticated, match="stale"):
        _admit(guard, early, now=later)


def test_a_missing_or_undecodable_credential_is_unauthenticated() -> None:
    signed = sign_call(CALLER, "ReadLog", CALLEE.verify_key, REQUEST, NOW)
    assert read_credential("ReadLog", codec.encode(signed)) == signed
    for data in (b"", b"\x00", codec.encode(signed)[:-1], codec.encode(signed) + b"\x00", codec.encode(signed.credential)):
        with pytest.raises(Unauthenticated):
            read_credential("ReadLog", data)


def test_a_keyholder_serves_ceremony_calls_to_its_coordinator_and_session_calls_to_its_aggregator() -> None:
    """Policy rule 0: the callers a keyholder admits for each call."""
    coordinator, aggregator = SigningIdentity(b"\x21" * 32), SigningIdentity(b"\x22" * 32)
    committee = CommitteeInfo(b"\x00" * 32, 3, 2, 1, True, (CALLER.verify_key, CALLEE.verify_key, STRANGER.verify_key),
                              aggregator.verify_key, coordinator.verify_key, (b"\x01" * 20, b"\x02" * 20, b"\x03" * 20))
    for call in CEREMONY_ROUNDS:
        assert policy.callers_for(call, None, coordinator.verify_key) == frozenset((coordinator.verify_key,))
        assert policy.callers_for(call, committee, coordinator.verify_key) == frozenset((coordinator.verify_key,))
    for call in (PLAN, SIGN):
        with pytest.raises(Unauthenticated, match="no coordinator"):
            policy.callers_for(call, None, None)
    for call in SESSION_CALLS:
        assert policy.callers_for(call, committee, coordinator.verify_key) == frozenset((aggregator.verify_key,))
        assert policy.callers_for(call, committee, None) == frozenset((aggregator.verify_key,))
    for call in (OPEN_SESSION, DECRYPT):
        with pytest.raises(WrongPhase):
            policy.callers_for(call, None, coordinator.verify_key)  # no key yet
    foreign = dataclasses.replace(OPEN_SESSION, rpc="SomethingElse")
    with pytest.raises(InvalidInput):
        policy.callers_for(foreign, committee, coordinator.verify_key)
    assert committee.decrypting == 3
