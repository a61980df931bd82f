"""The aggregator's side of a decryption session: drive the keyholders through it.

The runner opens the session on every keyholder, fixes and reveals the mask commitments, then
runs each step with a quorum of live keyholders (t-of-n: offline ones are stood in for), verifies
every partial, fuses, and finally collects at least t signatures on the outcome. Keyholders that
do not answer are left out and the step is retried with another quorum; a quorum whose partials
do not fuse consistently is replaced by one without each member in turn, to find and exclude a
faulty keyholder. Progress is saved after every step so a restarted aggregator resumes (a fired
hunt is binding and must complete); a resumed session continues with the keyholders whose masks
it fixed, and one that was offline when it opened joins again at the next session.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Sequence

from stagpack import codec
from stagpack.aggregator.committee import KeyholderClient
from stagpack.aggregator.store import AggregatorStore, SessionCost
from stagpack.calls import Call, Request, Response
from stagpack.decrypt import Quorum, family_members, quorum_family
from stagpack.decrypt.computation import DecryptionObserver, Outcome, SessionComputation, facts_so_far, outcome_domain, read_step
from stagpack.decrypt.steps import SessionFacts, next_step
from stagpack.errors import CommitteeUnavailable, IntegrityFailure, InvalidInput, KeyholderUnreachable, StagpackError
from stagpack.fhe import Ciphertext, FheContext
from stagpack.attestation import recover
from stagpack.identity import verify_signature
from stagpack.log import HuntOutcome, IdentityRelease
from stagpack.shield import elgamal
from stagpack.shield.elgamal import DecryptionShare
from stagpack.stag import StagSpec
from stagpack.committee import CommitteeInfo, KeyholderSignature
from stagpack.pack import CiphertextSource, PackSnapshot
from stagpack.session import (
    CERTIFY,
    DECRYPT,
    OPEN_SESSION,
    REVEAL_MASKS,
    CertifyRequest,
    DecryptRequest,
    DecryptResponse,
    MaskReveal,
    RevealRequest,
    SessionKind,
    SessionRef,
    SignedCommitment,
    SignedPartial,
    Step,
)

log = logging.getLogger("stagpack.aggregator")

@dataclass(frozen=True)
class SessionProgress:
    """What the aggregator has gathered so far in one session (persisted after each round)."""

    WIRE_NAME = "stagpack.aggregator.SessionProgress.v1"

    session: SessionRef
    commitments: tuple[SignedCommitment, ...]
    reveals: tuple[MaskReveal, ...]
    partials: tuple[SignedPartial, ...]  # complete sets of the finished steps


@dataclass(frozen=True)
class SessionResult:
    outcome: Outcome | None
    signatures: tuple[KeyholderSignature, ...]
    attestations: tuple[KeyholderSignature, ...] = ()  # a hunt's: secp256k1 signatures of its chain facts
    identities: tuple[IdentityRelease, ...] = ()  # an anonymous stag's hunt: every member, named


class SessionRunner:
    def __init__(
        self,
        context: FheContext,
        committee: CommitteeInfo,
        clients: Sequence[KeyholderClient],
        store: AggregatorStore,
        observer: DecryptionObserver | None = None,
    ) -> None:
        self._context = context
        self._observer = observer
        self._committee = committee
        self._clients = {client.index: client for client in clients}
        self._store = store
        self.suspects: set[int] = set()  # keyholders whose partials failed to fuse consistently
        self.misbehaving: dict[int, str] = {}  # keyholders caught misbehaving, and how (logged)
        self.last_live: set[int] = set(self._clients)
        self.cost = SessionCost()  # what the current (or last) session has spent so far
        self._spec: StagSpec | None = None  # the current session's stag
        self._pool = ThreadPoolExecutor(max_workers=max(len(self._clients), 1), thread_name_prefix="keyholder-call")

    # -- helpers ------------------------------------------------------------------------------

    def _save(self, progress: SessionProgress) -> None:
        session = progress.session
        self._store.save_session(session.stag_id, session.kind, session.number, codec.encode(progress))

    def _call_all(
        self, live: set[int], indices: Sequence[int], call: Call[Request, Response], request: Request
    ) -> dict[int, Response | StagpackError | None]:
        """Send `request` to keyholders concurrently (they are separate processes). Unreachable
        ones are dropped from `live` and map to None; other protocol errors are returned."""

        def attempt(index: int) -> Response | StagpackError | None:
            try:
                return self._clients[index].call(call, request)
            except KeyholderUnreachable as error:
                log.warning("keyholder %d unreachable: %s", index, error)
                return None
            except StagpackError as error:
                return error

        self.cost += SessionCost(calls=len(indices))
        results = dict(zip(indices, self._pool.map(attempt, indices)))
        for index, result in results.items():
            if result is None:
                live.discard(index)
        return results

    # -- the session --------------------------------------------------------------------------

    def run(
        self,
        snapshot: PackSnapshot,
        source: CiphertextSource,
        kind: SessionKind,
        number: int,
        progress: SessionProgress | None = None,
    ) -> SessionResult:
        """Run (or resume) one session on `snapshot`; raise CommitteeUnavailable below quorum."""
        session = SessionRef(snapshot.spec.stag_id, kind, number, snapshot.height, snapshot.head)
        self.cost = SessionCost(sessions=1)
        self._spec = snapshot.spec  # what a hunt's attestations are checked against (`_certify`)
        if progress is not None and progress.session != session:
            raise InvalidInput("saved progress belongs to another session")
        live = set(self._clients) - self.suspects
        progress = progress or SessionProgress(session, (), (), ())
        if not progress.reveals:
            progress = self._open_and_reveal(session, live)
            self._save(progress)
        # Only the keyholders whose masks are in the session can decrypt its steps. On a fresh
        # run that is every live one; a resumed session must leave out those that were offline
        # when it opened, even if they are back now (they hold no record of it).
        live &= {signed.commitment.keyholder for signed in progress.commitments}
        self._require_quorum(live, [])
        computation = SessionComputation(
            self._context, snapshot, source, session, progress.commitments, progress.reveals, self._committee
        )
        facts = self._facts(computation, progress.partials)
        while (step := next_step(facts)) is not None:
            partials, facts = self._decrypt_step(computation, progress, step, facts, live)
            if step is Step.NOISE_EACH:
                self._note_noisy_contributors(session, facts)
            progress = replace(progress, partials=progress.partials + partials)
            self._save(progress)
        outcome = computation.outcome(facts)
        result = SessionResult(outcome, ())
        if outcome is not None:
            result = self._certify(progress, outcome, live)
        self.last_live = live
        return result

    def _note_noisy_contributors(self, session: SessionRef, facts: SessionFacts) -> None:
        """A contributor whose masks or pads failed the noise test crafted their noise: it is
        left out of this session's masks (the step graph) and logged as misbehaving."""
        for keyholder in sorted(set(facts.contributors) - set(facts.clean)):
            reason = f"its masks failed the noise test in {session.describe()}"
            self.misbehaving[keyholder] = reason
            log.error("keyholder %d misbehaves: %s; its masks are left out of the session", keyholder, reason)

    def _facts(self, computation: SessionComputation, partials: tuple[SignedPartial, ...]) -> SessionFacts:
        """The facts of the steps a resumed session already decrypted."""
        return facts_so_far(computation, self._committee, partials, self._observer)

    def _open_and_reveal(self, session: SessionRef, live: set[int]) -> SessionProgress:
        commitments: dict[int, SignedCommitment] = {}
        refusals = []
        opened = self._call_all(live, sorted(live), OPEN_SESSION, session)
        for index, signed in opened.items():
            if signed is None:
                continue
            if isinstance(signed, StagpackError):
                log.warning("keyholder %d refused to open %s: %s", index, session.describe(), signed)
                refusals.append(f"keyholder {index}: {signed}")
                live.discard(index)
                continue
            try:
                verify_signature(self._committee.verify_key(index), "mask-commitment", signed.message(), signed.signature)
                if signed.commitment.keyholder != index or signed.commitment.session != session:
                    raise InvalidInput("commitment for another keyholder or session")
            except StagpackError as error:
                log.error("keyholder %d sent an invalid mask commitment: %s", index, error)
                live.discard(index)
                continue
            commitments[index] = signed
        while True:
            contributors = sorted(index for index in commitments if index in live)
            self._require_quorum(set(contributors), refusals)
            ordered = tuple(commitments[index] for index in contributors)
            revealed = self._call_all(live, contributors, REVEAL_MASKS, RevealRequest(session, ordered))
            reveals = [reveal for reveal in revealed.values() if isinstance(reveal, MaskReveal)]
            failed = [index for index, reveal in revealed.items() if not isinstance(reveal, MaskReveal)]
            for index in failed:
                if isinstance(revealed[index], StagpackError):
                    refusals.append(f"keyholder {index}: {revealed[index]}")
                live.discard(index)
            if not failed:
                return SessionProgress(session, ordered, tuple(reveals), ())

    def _require_quorum(self, live: set[int], refusals: list[str]) -> None:
        committee = self._committee
        if len(live) < committee.decrypting:
            detail = f"; refusals: {'; '.join(refusals)}" if refusals else ""
            needed = f"{committee.threshold}" if committee.fault_bound == 0 else f"t + f = {committee.decrypting}"
            raise CommitteeUnavailable(f"{len(live)} of {committee.parties} keyholders took part, {needed} are needed{detail}")

    def _gather(
        self,
        progress: SessionProgress,
        step: Step,
        family: tuple[Quorum, ...],
        claimed: tuple[bytes, ...],
        live: set[int],
    ) -> tuple[SignedPartial, ...] | None:
        request = DecryptRequest(
            progress.session, step, tuple(quorum.members for quorum in family), progress.commitments,
            progress.reveals, progress.partials, claimed,
        )
        members = family_members(family)
        responses = self._call_all(live, members, DECRYPT, request)
        received = [p for response in responses.values() if isinstance(response, DecryptResponse) for p in response.partials]
        self.cost += SessionCost(partials=len(received), partial_bytes=sum(len(p.data) for p in received))
        partials: list[SignedPartial] = []
        for index in members:
            response = responses[index]
            if response is None:
                return None
            if isinstance(response, StagpackError):
                raise response
            partials.extend(response.partials)
        return tuple(partials)

    def _decrypt_step(
        self,
        computation: SessionComputation,
        progress: SessionProgress,
        step: Step,
        facts: SessionFacts,
        live: set[int],
    ) -> tuple[tuple[SignedPartial, ...], SessionFacts]:
        """Decrypt one step with the family of quorums of the live keyholders and read it. If the
        result does not fuse consistently, retry without one member of the failing family at a
        time — but only while the rest can still cross-check each other (more than t of them):
        a result from a single quorum could carry a dishonest keyholder's shift unseen."""
        claimed = computation.digests(computation.ciphertexts(step, facts))
        excluded: set[int] = set()
        suspects_to_try: list[int] | None = None
        while True:
            committee = self._committee
            family = quorum_family(committee.parties, committee.threshold, frozenset(live - excluded), committee.fault_bound)
            partials = self._gather(progress, step, family, claimed, live)
            if partials is None:
                continue  # someone dropped out: choose again among the live
            try:
                revealed = read_step(computation, self._committee, step, facts, partials, self._observer)
            except (IntegrityFailure, InvalidInput) as error:
                log.error("step %s with keyholders %s did not fuse consistently: %s", step.value, family_members(family), error)
                if suspects_to_try is None:
                    suspects_to_try = list(family_members(family))
                if not suspects_to_try or len(live) - 1 < max(self._committee.decrypting, self._committee.threshold + 1):
                    raise IntegrityFailure(
                        "partial decryptions do not fuse consistently and the remaining keyholders are too few to "
                        "find the faulty one by cross-checking; nothing was revealed"
                    ) from None
                excluded = {suspects_to_try.pop(0)}
                continue
            if excluded:
                self.suspects |= excluded
                live -= excluded
                log.error("excluding keyholder(s) %s: their partial decryptions were corrupt", sorted(excluded))
            self.cost += SessionCost(steps=1)
            return partials, revealed

    def _certify(self, progress: SessionProgress, outcome: Outcome, live: set[int]) -> SessionResult:
        """The keyholders' signatures of the outcome and, for a hunt, their attestations of its
        chain facts (`stagpack.attestation`) and, in an anonymous stag, their proven decryption
        shares of every member's identity, each checked; raises unless t of each."""
        request = CertifyRequest(progress.session, progress.commitments, progress.reveals, progress.partials, codec.encode(outcome))
        domain = outcome_domain(outcome)
        chain_digest = None
        anonymous = isinstance(outcome, HuntOutcome) and self._spec is not None and self._spec.anonymous
        if isinstance(outcome, HuntOutcome):
            assert self._spec is not None  # set by `run`
            chain_digest = outcome.chain_facts(self._spec).digest(self._committee.committee_id)
        signatures, attestations, shares = [], [], []
        refusals = []
        for index, response in self._call_all(live, sorted(live), CERTIFY, request).items():
            if isinstance(response, StagpackError):
                refusals.append(f"keyholder {index}: {response}")
                continue
            if response is None:
                continue
            try:
                verify_signature(self._committee.verify_key(index), domain, outcome.digest(), response.signature)
            except StagpackError:
                log.error("keyholder %d returned an invalid %s signature", index, domain)
                continue
            if chain_digest is not None:
                try:
                    signer = recover(chain_digest, response.attestation)
                except StagpackError as error:
                    signer, reason = b"", str(error)
                if signer != self._committee.chain_addresses[index - 1]:
                    log.error("keyholder %d returned an invalid hunt attestation%s", index, f": {reason}" if not signer else "")
                    continue
            if anonymous:
                assert isinstance(outcome, HuntOutcome)
                try:
                    self._check_identity_shares(index, outcome, response.identity_shares)
                except StagpackError as error:
                    log.error("keyholder %d returned invalid identity shares: %s", index, error)
                    continue
                shares.append(response.identity_shares)
            if chain_digest is not None:
                attestations.append(KeyholderSignature(index, response.attestation))
            signatures.append(KeyholderSignature(index, response.signature))
        if len(signatures) < self._committee.threshold:
            raise CommitteeUnavailable(
                f"only {len(signatures)} keyholders certified the outcome, {self._committee.threshold} are needed"
                + (f"; refusals: {'; '.join(refusals)}" if refusals else "")
            )
        identities: tuple[IdentityRelease, ...] = ()
        if anonymous:
            assert isinstance(outcome, HuntOutcome)
            identities = self._release_identities(outcome, shares[: self._committee.threshold])
        return SessionResult(outcome, tuple(signatures), tuple(attestations), identities)

    def _check_identity_shares(self, index: int, outcome: HuntOutcome, shares: Sequence[DecryptionShare]) -> None:
        key = self._committee.require_identity_key()
        if len(shares) != len(outcome.members):
            raise InvalidInput("one identity share per member is needed")
        for member, share in zip(outcome.members, shares):
            if share.keyholder != index:
                raise InvalidInput("an identity share names another keyholder")
            elgamal.check_decryption_share(key, member.identity_ciphertext(), share)

    def _release_identities(self, outcome: HuntOutcome, shares: Sequence[Sequence[DecryptionShare]]) -> tuple[IdentityRelease, ...]:
        """Each member's key, combined from t keyholders' shares (`_check_identity_shares` checked each)."""
        key = self._committee.require_identity_key()
        releases = []
        for position, member in enumerate(outcome.members):
            member_shares = tuple(keyholder_shares[position] for keyholder_shares in shares)
            releases.append(IdentityRelease(
                member.intendo_id, elgamal.combine(key, member.identity_ciphertext(), member_shares), member_shares,
            ))
        return tuple(releases)
