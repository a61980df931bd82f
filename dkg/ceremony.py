"""The ceremony coordinator: drives every keyholder through the rounds of `DkgParty`.

The coordinator holds no secret. It relays records between keyholders through a transport
(`CeremonyPeer`: in-process for tests and the demo, gRPC in production) and assembles the public
result: the signed transcript and the joint keys. The same driver serves both.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from stagpack.calls import Call, Request, Response
from stagpack.dkg.messages import (
    BackupBox,
    BackupRequest,
    CeremonyPlan,
    ChainRequest,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    QuorumPartials,
    RoundOneRequest,
    RoundTwoRequest,
    SelfTestCommitRequest,
    SelfTestRequest,
    SelfTestRevealRequest,
    SignRequest,
)
from stagpack.committee import Participant, Transcript
from stagpack.dkg.rounds import (
    BACKUP,
    CHAIN,
    COMPLETE,
    DELIVER_BACKUPS,
    FINALIZE,
    PLAN,
    ROUND_ONE,
    ROUND_TWO,
    SELF_TEST,
    SELF_TEST_COMMIT,
    SELF_TEST_REVEAL,
    SIGN,
)
from stagpack.dkg.party import expected_transcript_body, self_test_digest, self_test_quorums
from stagpack.committee import check_committee_shape, default_fault_bound
from stagpack.errors import IntegrityFailure, InvalidInput
from stagpack.fhe import FheContext, KeyMaterial
from stagpack.identity import PublicIdentity
from stagpack.shield import elgamal

Progress = Callable[[str, int, int], None]


class CeremonyPeer(Protocol):
    """Transport to one keyholder's ceremony endpoint: its identity, and the rounds of
    `stagpack.dkg.rounds` as typed calls."""

    def identity(self) -> PublicIdentity: ...
    def call(self, call: Call[Request, Response], request: Request) -> Response: ...


@dataclass(frozen=True)
class CommitteeBundle:
    """The public outcome of a ceremony: what the aggregator and clients load."""

    transcript: Transcript
    joint_public_key: bytes
    relinearization_key: bytes
    rotation_keys: bytes

    @property
    def committee_id(self) -> bytes:
        return self.transcript.committee_id


def _check_index(response_index: int, expected: int, round_name: str) -> None:
    if response_index != expected:
        raise IntegrityFailure(f"{round_name}: keyholder {expected} answered as keyholder {response_index}")


def run_ceremony(
    context: FheContext,
    peers: Sequence[CeremonyPeer],
    threshold: int,
    progress: Progress | None = None,
    *,
    aggregator_key: bytes,
    coordinator_key: bytes,
    fault_bound: int | None = None,
    noise_test: bool = True,
) -> CommitteeBundle:
    """Run the whole ceremony among `peers` (in chain order) and return the committee bundle.

    `aggregator_key` is the Ed25519 key of the one aggregator the committee will serve,
    `coordinator_key` the key this coordinator signs its requests with (the peers' transport
    signs); `fault_bound` defaults to 1 where n > t (DESIGN.md §4)."""
    parties = len(peers)
    if parties < 1:
        raise InvalidInput("a ceremony needs at least one keyholder")
    fault_bound = default_fault_bound(parties, threshold) if fault_bound is None else fault_bound
    check_committee_shape(parties, threshold, fault_bound, context.parameters.max_fused_partials)
    steps = 10 + (2 if threshold < parties else 0)
    done = 0

    def advance(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done, steps)

    identities = [peer.identity() for peer in peers]
    plan = CeremonyPlan(
        ceremony_id=os.urandom(16),
        parameters=context.parameters.to_bytes(),
        parties=parties,
        threshold=threshold,
        fault_bound=fault_bound,
        noise_test=noise_test,
        participants=tuple(
            Participant(index, identity.name, identity.verify_key, identity.box_key, identity.chain_address)
            for index, identity in enumerate(identities, start=1)
        ),
        coordinator_key=coordinator_key,
        aggregator_key=aggregator_key,
    )
    ceremony = plan.ceremony_id
    for index, peer in enumerate(peers, start=1):
        _check_index(peer.call(PLAN, plan).index, index, "plan")
    advance("plan agreed")

    chain: list[bytes] = []
    for index, peer in enumerate(peers, start=1):
        link = peer.call(CHAIN, ChainRequest(ceremony, chain[-1] if chain else None))
        _check_index(link.index, index, "public-key chain")
        chain.append(link.public_key)
    advance("joint public key")

    lead = peers[0].call(ROUND_ONE, RoundOneRequest(ceremony, tuple(chain), None, None))
    _check_index(lead.index, 1, "round one")
    round_one = [lead]
    for index, peer in enumerate(peers[1:], start=2):
        joined = peer.call(ROUND_ONE, RoundOneRequest(ceremony, tuple(chain), lead.relinearization, lead.rotation))
        _check_index(joined.index, index, "round one")
        round_one.append(joined)
    relinearization_one = tuple(response.relinearization for response in round_one)
    rotation = tuple(response.rotation for response in round_one)
    identity_commitments = tuple(response.identity_commitment for response in round_one)
    identity_boxes = [box for response in round_one for box in response.identity_boxes]
    identity_key = elgamal.IdentityKey.combine(ceremony, identity_commitments, threshold)
    advance("evaluation keys, round one")

    round_two: list[bytes] = []
    for index, peer in enumerate(peers, start=1):
        addressed = tuple(box for box in identity_boxes if box.recipient == index)
        second = peer.call(ROUND_TWO, RoundTwoRequest(ceremony, relinearization_one, rotation, identity_commitments, addressed))
        _check_index(second.index, index, "round two")
        round_two.append(second.relinearization)
    advance("evaluation keys, round two")

    digests = set()
    for index, peer in enumerate(peers, start=1):
        finalized = peer.call(FINALIZE, FinalizeRequest(ceremony, tuple(round_two)))
        _check_index(finalized.index, index, "finalize")
        digests.add(finalized.evaluation_keys)
    if len(digests) != 1:
        raise IntegrityFailure("keyholders disagree on the evaluation keys")
    (evaluation_digest,) = digests
    advance("evaluation keys combined")

    tag = context.public_key_from_bytes(chain[-1]).key_tag
    relinearization_key = context.combine_relinearization_round_two(
        [context.key_material_from_bytes(data, KeyMaterial.RELINEARIZATION) for data in round_two], tag
    )
    rotation_keys = context.combine_rotation_shares(
        [context.key_material_from_bytes(data, KeyMaterial.ROTATION) for data in rotation], tag
    )
    context.install_evaluation_keys(relinearization_key, rotation_keys, tag)
    joint = context.public_key_from_bytes(chain[-1])
    context.bind_joint_key(joint)

    if threshold < parties:
        backups: list[BackupBox] = []
        for index, peer in enumerate(peers, start=1):
            sealed = peer.call(BACKUP, BackupRequest(ceremony))
            _check_index(sealed.index, index, "backup")
            backups.extend(sealed.boxes)
        advance("backup shares sealed")
        for index, peer in enumerate(peers, start=1):
            addressed = tuple(box for box in backups if box.recipient == index)
            _check_index(peer.call(DELIVER_BACKUPS, DeliverBackupsRequest(ceremony, addressed)).index, index, "backup delivery")
        advance("backup shares delivered")

    tests = []
    for index, peer in enumerate(peers, start=1):
        encrypted = peer.call(SELF_TEST, SelfTestRequest(ceremony))
        _check_index(encrypted.index, index, "self-test encryption")
        tests.append(encrypted)
    advance("self-test encrypted by every keyholder")
    commitments = []
    for index, peer in enumerate(peers, start=1):
        commitment = peer.call(SELF_TEST_COMMIT, SelfTestCommitRequest(ceremony, tuple(tests)))
        _check_index(commitment.index, index, "self-test commitment")
        commitments.append(commitment)
    advance("self-test partials committed")
    partials: list[QuorumPartials] = []
    for index, peer in enumerate(peers, start=1):
        revealed = peer.call(SELF_TEST_REVEAL, SelfTestRevealRequest(ceremony, tuple(commitments)))
        _check_index(revealed.index, index, "self-test reveal")
        partials.extend(revealed.partials)
    advance("self-test decrypted")

    body = expected_transcript_body(
        context, plan, tuple(chain), evaluation_digest, self_test_digest(tests, self_test_quorums(parties, threshold)),
        identity_key,
    )
    signatures = []
    for index, peer in enumerate(peers, start=1):
        signature = peer.call(SIGN, SignRequest(body, tuple(partials)))
        _check_index(signature.index, index, "transcript signature")
        signatures.append(signature)
    transcript = Transcript(body, tuple(signatures))
    transcript.verify()
    advance("transcript signed")

    for index, peer in enumerate(peers, start=1):
        _check_index(peer.call(COMPLETE, CompleteRequest(transcript, chain[-1])).index, index, "completion")
    advance("ceremony complete")

    if hashlib.sha256(chain[-1]).digest() != body.joint_public_key:  # pragma: no cover - by construction
        raise IntegrityFailure("joint public key digest mismatch")
    return CommitteeBundle(transcript, chain[-1], relinearization_key.to_bytes(), rotation_keys.to_bytes())

