"""One keyholder's side of the key-generation ceremony, as a state machine.

Each `handle_*` method takes one request record and returns the response record. It checks the
ceremony id, the phase (rounds must come in order), and everything it can verify about the
request against its own state; a repeated identical request gets the same response (retries
are safe), anything else out of order raises `WrongPhase` or `InvalidInput`. No I/O: the
keyholder service persists the `CeremonyOutcome` and a transport carries the records.

Rounds (DESIGN.md §4, §5, §6; OpenFHE's chained multiparty key generation):
    plan → chain (sequential) → round one → round two → finalize
         (round one also deals the identity key, round two checks and combines it:
          `stagpack.shield.elgamal`)
         → [backup → deliver backups]  (t < n)
         → self-test: encrypt → commit → reveal → sign → complete

The self-test is what relates the last link of the key chain to the rest: each keyholder
encrypts secret vectors of its own under the final joint key, every keyholder commits to its
partial decryptions for a family of quorums before any is revealed, and each checks that its
own vectors come back. A keyholder that published a substituted last link (a key it alone can
decrypt) cannot shape its partials to the others' without seeing them first.
"""

from __future__ import annotations

import enum
import hashlib
import os
import typing
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from stagpack import codec
from stagpack.calls import Call, Request, Response, serve
from stagpack.decrypt import DecryptingParty, Quorum
from stagpack.decrypt.threshold import PartialShare, PartialSourceFactory, fuse, honest
from stagpack.dkg.messages import (
    Acknowledgement,
    BackupBox,
    BackupRequest,
    BackupResponse,
    CeremonyPlan,
    ChainRequest,
    ChainResponse,
    CompleteRequest,
    DeliverBackupsRequest,
    FinalizeRequest,
    FinalizeResponse,
    QuorumPartials,
    RoundOneRequest,
    RoundOneResponse,
    RoundTwoRequest,
    RoundTwoResponse,
    SelfTestCiphertexts,
    SelfTestCommitment,
    SelfTestCommitRequest,
    SelfTestRequest,
    SelfTestResponse,
    SelfTestRevealRequest,
    SignRequest,
)
from stagpack.committee import TranscriptBody, TranscriptSignature, check_committee_shape
from stagpack.errors import IntegrityFailure, InvalidInput, PolicyRefusal, WrongPhase
from stagpack.fhe import Ciphertext, FheContext, FheParameters, KeyBackupShare, KeyMaterial, PublicKey, SecretKeyShare, SlotVector
from stagpack.attestation import check_address
from stagpack.identity import KeyholderIdentity, check_verify_key, digest
from stagpack.shield import elgamal
from stagpack.shield.group import Scalar



class Phase(enum.IntEnum):
    NEW = 0
    PLANNED = 1
    CHAINED = 2
    ROUND_ONE = 3
    ROUND_TWO = 4
    FINALIZED = 5
    BACKED_UP = 6
    BACKUPS_RECEIVED = 7
    SELF_TEST_ENCRYPTED = 8
    SELF_TEST_COMMITTED = 9
    SELF_TEST_REVEALED = 10
    SIGNED = 11
    COMPLETE = 12


@dataclass(frozen=True)
class BackupHeader:
    """Bound into every sealed backup share so a box cannot be replayed elsewhere."""

    WIRE_NAME = "BackupHeader"

    ceremony_id: bytes
    sender: int
    recipient: int


@dataclass(frozen=True)
class IdentityShareHeader:
    """Bound into every sealed identity-key share (a different record from BackupHeader, so a
    box of one kind cannot be passed off as the other)."""

    WIRE_NAME = "stagpack.IdentityShareHeader.v1"

    ceremony_id: bytes
    sender: int
    recipient: int


@dataclass
class CeremonyOutcome:
    """What a keyholder keeps from a completed ceremony (the service seals the secrets)."""

    transcript_bytes: bytes
    secret: SecretKeyShare
    backups: dict[int, KeyBackupShare]
    joint_public_key: bytes
    relinearization: bytes
    rotation: bytes
    identity_secret: bytes  # x_l: this keyholder's share of the committee's identity key


# --- the self-test (every keyholder encrypts its own test under the final joint key) ----------


def self_test_region(context: FheContext, parties: int, index: int) -> slice:
    """Keyholder `index`'s slots in each row: the committee splits a row into n regions."""
    width = context.row_width // parties
    return slice((index - 1) * width, index * width)


def self_test_vectors(context: FheContext, parties: int, index: int) -> tuple[SlotVector, SlotVector]:
    """Two fresh secret vectors, uniform in Z_p on this keyholder's region of both rows and zero
    elsewhere. Nobody else learns them before the keyholder checks its region."""
    region = self_test_region(context, parties, index)
    vectors = []
    for _ in range(2):
        values = np.frombuffer(os.urandom(8 * context.slot_count), dtype="<u8") % np.uint64(context.plaintext_modulus)
        vector = np.zeros(context.slot_count, dtype=np.int64)
        vector[region] = values[region].astype(np.int64)
        shifted = slice(context.row_width + region.start, context.row_width + region.stop)
        vector[shifted] = values[shifted].astype(np.int64)
        vectors.append(vector)
    return vectors[0], vectors[1]


def evaluate_self_test(context: FheContext, ciphertexts: Sequence[SelfTestCiphertexts]) -> Ciphertext:
    """rotate(A ⊗ B, 1) + rowswap(A) with A, B the sums of every keyholder's two test
    ciphertexts: exercises the joint key, relinearization, a rotation key and the row swap."""
    first = context.add_many(context.ciphertext_from_bytes(test.ciphertexts[0]) for test in ciphertexts)
    second = context.add_many(context.ciphertext_from_bytes(test.ciphertexts[1]) for test in ciphertexts)
    return context.add(context.rotate(context.multiply(first, second), 1), context.rotate(first, context.row_width))


def expected_in_region(context: FheContext, first: SlotVector, second: SlotVector, region: slice) -> tuple[SlotVector, SlotVector]:
    """The slots of the self-test output that depend on this keyholder's vectors alone (its
    region of both rows but the region's last slot, where the rotation brings a neighbour's),
    and their expected plaintext."""
    width = context.row_width
    product = (first * second) % context.plaintext_modulus
    rotated = np.concatenate([np.roll(product[:width], -1), np.roll(product[width:], -1)])
    swapped = np.concatenate([first[width:], first[:width]])
    expected = (rotated + swapped) % context.plaintext_modulus
    slots = np.concatenate([np.arange(region.start, region.stop - 1), width + np.arange(region.start, region.stop - 1)])
    return slots, expected[slots]


def self_test_quorums(parties: int, threshold: int) -> tuple[tuple[int, ...], ...]:
    """The quorums the self-test decrypts with, enough that every quorum of t the committee
    could ever use decrypts correctly:

    - all n keyholders (own partials only);
    - for each keyholder k, with B_k the first t − 1 others, the quorums B_k ∪ {j} for every j
      outside B_k ∪ {k}. A quorum without k decrypts correctly iff the Shamir shares of k's key
      its members hold interpolate to k's key at 0. These quorums check that every share of k
      lies on the polynomial through k's key and B_k's shares; all shares then lie on it, and any
      t of them interpolate to k's key. So every t-subset works, though only these are tried."""
    everyone = tuple(range(1, parties + 1))
    quorums = [everyone]
    if threshold < parties:
        for absent in everyone:
            others = [party for party in everyone if party != absent]
            base = others[: threshold - 1]
            for extra in others[threshold - 1 :]:
                members = tuple(sorted((*base, extra)))
                if members not in quorums:
                    quorums.append(members)
    return tuple(quorums)


def self_test_digest(ciphertexts: Sequence[SelfTestCiphertexts], quorums: Sequence[tuple[int, ...]]) -> bytes:
    """What the transcript records of the self-test: every keyholder's test ciphertexts and the
    quorums that decrypted them."""
    parts = [hashlib.sha256(data).digest() for test in ciphertexts for data in test.ciphertexts]
    return digest("self-test", *parts, codec.encode(tuple(quorums)))


def partials_digest(partials: Sequence[QuorumPartials]) -> bytes:
    """A keyholder's commitment to its self-test partials (all of them, in order)."""
    return digest("self-test-partials", codec.encode(tuple(partials)))


class DkgParty:
    """A keyholder in one key-generation ceremony."""

    def __init__(
        self,
        context: FheContext,
        identity: KeyholderIdentity,
        *,
        coordinator_key: bytes | None = None,
        allow_insecure: bool = False,
        partials: PartialSourceFactory = honest,
    ) -> None:
        self._context = context
        self._identity = identity
        self._coordinator_key = coordinator_key  # the only coordinator whose plan is accepted, if set
        self._allow_insecure = allow_insecure
        self._partials = partials  # how this keyholder decrypts the self-test (tests inject faults here)
        self.phase = Phase.NEW
        self._responses: dict[str, tuple[bytes, object]] = {}
        self.plan: CeremonyPlan | None = None
        self.index = 0
        self._secret: SecretKeyShare | None = None
        self._previous: bytes | None = None
        self._chain_output: bytes | None = None
        self._chain: tuple[bytes, ...] = ()
        self._joint: PublicKey | None = None
        self._round_one: tuple[bytes, bytes] | None = None
        self._round_one_all: tuple[tuple[bytes, ...], tuple[bytes, ...]] = ((), ())
        self._round_two: bytes | None = None
        self._identity_dealing: elgamal.Dealing | None = None
        self._identity_secret: Scalar | None = None
        self._identity_key: elgamal.IdentityKey | None = None
        self._evaluation_digest: bytes | None = None
        self._relinearization: KeyMaterial | None = None
        self._rotation: KeyMaterial | None = None
        self._backups: dict[int, KeyBackupShare] = {}
        self._signed_body: TranscriptBody | None = None
        self._self_test_vectors: tuple[SlotVector, SlotVector] | None = None
        self._self_test_ciphertexts: tuple[SelfTestCiphertexts, ...] = ()
        self._self_test_partials: tuple[QuorumPartials, ...] = ()
        self._self_test_commitments: tuple[SelfTestCommitment, ...] = ()
        self.outcome: CeremonyOutcome | None = None  # set once the ceremony completes

    # -- plumbing -----------------------------------------------------------------------------

    def dispatch(self, call: Call[Request, Response], request: Request) -> Response:
        """Answer one round of `stagpack.dkg.rounds`."""
        return serve(self, call, request)

    def _step(self, name: str, request: object, required: Phase, handler: Callable[[], Response]) -> Response:
        encoded = codec.encode(request)
        cached = self._responses.get(name)
        if cached is not None:
            if cached[0] == encoded:
                return typing.cast(Response, cached[1])  # the response this handler gave before
            raise WrongPhase(f"ceremony step {name!r} was already answered for a different request")
        if self.phase != required:
            raise WrongPhase(f"ceremony step {name!r} is not expected now (phase {self.phase.name})")
        response = handler()
        self._responses[name] = (encoded, response)
        return response

    def _require_ceremony(self, ceremony_id: bytes) -> CeremonyPlan:
        if self.plan is None or ceremony_id != self.plan.ceremony_id:
            raise InvalidInput("request is for another ceremony")
        return self.plan

    @property
    def _joint_tag(self) -> str:
        assert self._joint is not None
        return self._joint.key_tag

    # -- rounds -------------------------------------------------------------------------------

    def handle_plan(self, plan: CeremonyPlan) -> Acknowledgement:
        def run() -> Acknowledgement:
            parameters = FheParameters.from_bytes(plan.parameters)
            if parameters != self._context.parameters:
                raise InvalidInput("the ceremony's FHE parameters differ from this keyholder's configuration")
            check_committee_shape(plan.parties, plan.threshold, plan.fault_bound, parameters.max_fused_partials)
            if len(plan.participants) != plan.parties:
                raise InvalidInput("participants do not match the number of parties")
            if not plan.noise_test and not self._allow_insecure:
                raise InvalidInput(
                    "refusing a committee without the noise test: one crafted mask would expose every pack "
                    "(DESIGN.md §3a); only benchmarks may opt out"
                )
            check_verify_key(plan.coordinator_key, "coordinator key")
            check_verify_key(plan.aggregator_key, "aggregator key")
            if self._coordinator_key is not None and plan.coordinator_key != self._coordinator_key:
                raise PolicyRefusal("the ceremony is not run by the coordinator this keyholder is configured to serve")
            if [participant.index for participant in plan.participants] != list(range(1, plan.parties + 1)):
                raise InvalidInput("participants must be listed as keyholders 1..n in order")
            if len({participant.verify_key for participant in plan.participants}) != plan.parties:
                raise InvalidInput("a keyholder appears twice in the plan")
            if len({check_address(participant.chain_address, "a chain address") for participant in plan.participants}) != plan.parties:
                raise InvalidInput("two keyholders register the same chain address in the plan")
            mine = [p for p in plan.participants if p.verify_key == self._identity.verify_key]
            if len(mine) != 1 or (mine[0].box_key, mine[0].chain_address) != (self._identity.public.box_key, self._identity.public.chain_address):
                raise InvalidInput("this keyholder is not (correctly) listed in the plan")
            if len(plan.ceremony_id) != 16:
                raise InvalidInput("ceremony id must be 16 bytes")
            self.plan = plan
            self.index = mine[0].index
            self.phase = Phase.PLANNED
            return Acknowledgement(plan.ceremony_id, self.index)

        if self.plan is not None and self.plan != plan and self.phase != Phase.COMPLETE:
            raise WrongPhase("a different ceremony is already in progress on this keyholder")
        return self._step("plan", plan, Phase.NEW, run)

    def handle_chain(self, request: ChainRequest) -> ChainResponse:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> ChainResponse:
            if (request.previous is None) != (self.index == 1):
                raise InvalidInput("only keyholder 1 starts the chain; every other extends a previous key")
            previous = None if request.previous is None else self._context.public_key_from_bytes(request.previous)
            secret, public = self._context.generate_key_share(previous)
            self._secret = secret
            self._previous = request.previous
            self._chain_output = public.to_bytes()
            self.phase = Phase.CHAINED
            return ChainResponse(plan.ceremony_id, self.index, self._chain_output)

        return self._step("chain", request, Phase.PLANNED, run)

    def handle_round_one(self, request: RoundOneRequest) -> RoundOneResponse:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> RoundOneResponse:
            chain = request.chain
            if len(chain) != plan.parties or chain[self.index - 1] != self._chain_output:
                raise InvalidInput("the chain does not contain this keyholder's public key at its position")
            if self.index > 1 and chain[self.index - 2] != self._previous:
                raise InvalidInput("the chain does not contain the key this keyholder extended")
            lead = self.index == 1
            if lead != (request.lead_relinearization is None) or lead != (request.lead_rotation is None):
                raise InvalidInput("the lead starts round one; every other keyholder joins the lead's shares")
            self._chain = chain
            self._joint = self._context.public_key_from_bytes(chain[-1])
            assert self._secret is not None
            lead_relinearization = (
                None if lead else self._context.key_material_from_bytes(request.lead_relinearization or b"", KeyMaterial.RELINEARIZATION)
            )
            lead_rotation = None if lead else self._context.key_material_from_bytes(request.lead_rotation or b"", KeyMaterial.ROTATION)
            relinearization = self._context.relinearization_round_one(self._secret, lead_relinearization)
            rotation = self._context.rotation_key_share(self._secret, lead_rotation, self._joint_tag)
            self._round_one = (relinearization.to_bytes(), rotation.to_bytes())
            dealing = self._identity_dealing = elgamal.deal(plan.ceremony_id, self.index, plan.threshold, plan.parties)
            boxes = tuple(
                BackupBox(self.index, participant.index, self._identity.box_to(
                    participant.box_key,
                    codec.encode(IdentityShareHeader(plan.ceremony_id, self.index, participant.index))
                    + dealing.shares[participant.index].to_bytes(),
                ))
                for participant in plan.participants
                if participant.index != self.index
            )
            self.phase = Phase.ROUND_ONE
            return RoundOneResponse(plan.ceremony_id, self.index, *self._round_one, dealing.commitment, boxes)

        return self._step("round-one", request, Phase.CHAINED, run)

    def handle_round_two(self, request: RoundTwoRequest) -> RoundTwoResponse:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> RoundTwoResponse:
            if len(request.relinearization) != plan.parties or len(request.rotation) != plan.parties:
                raise InvalidInput("round two needs one round-one share from every keyholder")
            assert self._round_one is not None and self._secret is not None
            if (request.relinearization[self.index - 1], request.rotation[self.index - 1]) != self._round_one:
                raise InvalidInput("round two does not carry this keyholder's own round-one shares")
            self._combine_identity_key(plan, request)
            shares = [self._context.key_material_from_bytes(data, KeyMaterial.RELINEARIZATION) for data in request.relinearization]
            combined = self._context.combine_relinearization_round_one(shares, self._joint_tag)
            self._round_one_all = (request.relinearization, request.rotation)
            self._round_two = self._context.relinearization_round_two(self._secret, combined, self._joint_tag).to_bytes()
            self.phase = Phase.ROUND_TWO
            return RoundTwoResponse(plan.ceremony_id, self.index, self._round_two)

        return self._step("round-two", request, Phase.ROUND_ONE, run)

    def _combine_identity_key(self, plan: CeremonyPlan, request: RoundTwoRequest) -> None:
        """Identity key, round two: every dealer's commitment and proof, the share each dealt
        this keyholder, and the combined key (a bad share or proof names its dealer)."""
        dealing = self._identity_dealing
        assert dealing is not None
        commitments = request.identity_commitments
        if [commitment.dealer for commitment in commitments] != list(range(1, plan.parties + 1)):
            raise InvalidInput("round two needs one identity-key commitment from every keyholder, in order")
        if commitments[self.index - 1] != dealing.commitment:
            raise InvalidInput("round two does not carry this keyholder's own identity-key commitment")
        opened = self._open_boxes(
            plan, request.identity_boxes, lambda sender: IdentityShareHeader(plan.ceremony_id, sender, self.index),
            "identity-key share",
        )
        total = dealing.shares[self.index]
        for sender, payload in opened.items():
            share = Scalar.from_bytes(payload, f"identity-key share from keyholder {sender}")
            elgamal.check_share(commitments[sender - 1], self.index, share)
            total = total + share
        key = elgamal.IdentityKey.combine(plan.ceremony_id, commitments, plan.threshold)
        self._identity_secret, self._identity_key = total, key

    def _open_boxes(
        self, plan: CeremonyPlan, boxes: Sequence[BackupBox], header: Callable[[int], object], what: str
    ) -> dict[int, bytes]:
        """Exactly one box from every other keyholder, addressed to this one: each opened (it
        authenticates its sender) and its header checked; sender -> what follows the header."""
        senders = sorted(box.sender for box in boxes)
        expected = [participant.index for participant in plan.participants if participant.index != self.index]
        if senders != expected or any(box.recipient != self.index for box in boxes):
            raise InvalidInput(f"expected exactly one {what} from every other keyholder, addressed to this one")
        opened = {}
        for box in boxes:
            payload = self._identity.open_box(plan.participants[box.sender - 1].box_key, box.sealed)
            prefix = codec.encode(header(box.sender))
            if not payload.startswith(prefix):
                raise InvalidInput(f"{what} from keyholder {box.sender} is not for this ceremony and recipient")
            opened[box.sender] = payload[len(prefix) :]
        return opened

    def handle_finalize(self, request: FinalizeRequest) -> FinalizeResponse:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> FinalizeResponse:
            if len(request.relinearization) != plan.parties or request.relinearization[self.index - 1] != self._round_two:
                raise InvalidInput("finalize needs every keyholder's round-two share, this one's at its position")
            context, tag = self._context, self._joint_tag
            relinearization = context.combine_relinearization_round_two(
                [context.key_material_from_bytes(data, KeyMaterial.RELINEARIZATION) for data in request.relinearization], tag
            )
            rotation = context.combine_rotation_shares(
                [context.key_material_from_bytes(data, KeyMaterial.ROTATION) for data in self._round_one_all[1]], tag
            )
            context.install_evaluation_keys(relinearization, rotation, tag)
            assert self._joint is not None
            context.bind_joint_key(self._joint)
            self._relinearization, self._rotation = relinearization, rotation
            self._evaluation_digest = evaluation_keys_digest(
                self._round_one_all[0], request.relinearization, self._round_one_all[1]
            )
            self.phase = Phase.FINALIZED if plan.threshold < plan.parties else Phase.BACKUPS_RECEIVED
            return FinalizeResponse(plan.ceremony_id, self.index, self._evaluation_digest)

        return self._step("finalize", request, Phase.ROUND_TWO, run)

    def handle_backup(self, request: BackupRequest) -> BackupResponse:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> BackupResponse:
            assert self._secret is not None
            shares = self._context.share_secret_key(self._secret, plan.parties, plan.threshold, self.index)
            boxes = []
            for participant in plan.participants:
                if participant.index == self.index:
                    continue
                header = codec.encode(BackupHeader(plan.ceremony_id, self.index, participant.index))
                payload = header + self._context.backup_share_to_bytes(shares[participant.index])
                boxes.append(BackupBox(self.index, participant.index, self._identity.box_to(participant.box_key, payload)))
            self.phase = Phase.BACKED_UP
            return BackupResponse(plan.ceremony_id, self.index, tuple(boxes))

        return self._step("backup", request, Phase.FINALIZED, run)

    def handle_deliver_backups(self, request: DeliverBackupsRequest) -> Acknowledgement:
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> Acknowledgement:
            opened = self._open_boxes(
                plan, request.boxes, lambda sender: BackupHeader(plan.ceremony_id, sender, self.index), "backup box"
            )
            self._backups = {sender: self._context.backup_share_from_bytes(payload) for sender, payload in opened.items()}
            self.phase = Phase.BACKUPS_RECEIVED
            return Acknowledgement(plan.ceremony_id, self.index)

        return self._step("deliver-backups", request, Phase.BACKED_UP, run)

    def handle_self_test(self, request: SelfTestRequest) -> SelfTestCiphertexts:
        """Self-test, round one: encrypt two secret vectors on this keyholder's region under the
        final joint key. The coordinator never chooses what is tested."""
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> SelfTestCiphertexts:
            self._self_test_vectors = self_test_vectors(self._context, plan.parties, self.index)
            ciphertexts = tuple(
                self._context.ciphertext_to_bytes(self._context.encrypt(self._context.joint_key, vector))
                for vector in self._self_test_vectors
            )
            self.phase = Phase.SELF_TEST_ENCRYPTED
            return SelfTestCiphertexts(plan.ceremony_id, self.index, ciphertexts)

        return self._step("self-test", request, Phase.BACKUPS_RECEIVED, run)

    def handle_self_test_commit(self, request: SelfTestCommitRequest) -> SelfTestCommitment:
        """Self-test, round two: evaluate the test circuit over every keyholder's ciphertexts,
        partially decrypt it for every self-test quorum this keyholder belongs to, and commit to
        those partials before seeing anyone else's (so a keyholder that substituted the last
        link of the key chain cannot shape its partials after the others')."""
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> SelfTestCommitment:
            tests = request.ciphertexts
            if [test.index for test in tests] != list(range(1, plan.parties + 1)) or any(
                test.ceremony_id != plan.ceremony_id or len(test.ciphertexts) != 2 for test in tests
            ):
                raise InvalidInput("the self-test needs two ciphertexts from every keyholder, in order")
            assert self._self_test_vectors is not None
            mine = tuple(
                self._context.ciphertext_to_bytes(self._context.ciphertext_from_bytes(data)) for data in tests[self.index - 1].ciphertexts
            )
            if mine != tests[self.index - 1].ciphertexts:
                raise InvalidInput("the self-test ciphertexts are not in canonical form")
            output = evaluate_self_test(self._context, tests)
            assert self._secret is not None
            party = self._partials(
                DecryptingParty(self._context, self.index, self._secret, self._backups, plan.parties, plan.threshold)
            )
            results = []
            for members in self_test_quorums(plan.parties, plan.threshold):
                if self.index not in members:
                    continue
                shares = party.partials(output, [Quorum(plan.parties, plan.threshold, members)])
                results.append(
                    QuorumPartials(
                        members, self.index, tuple(share.on_behalf_of for share in shares), tuple(share.data for share in shares)
                    )
                )
            self._self_test_ciphertexts = tests
            self._self_test_partials = tuple(results)
            self.phase = Phase.SELF_TEST_COMMITTED
            return SelfTestCommitment(plan.ceremony_id, self.index, partials_digest(self._self_test_partials))

        return self._step("self-test-commit", request, Phase.SELF_TEST_ENCRYPTED, run)

    def handle_self_test_reveal(self, request: SelfTestRevealRequest) -> SelfTestResponse:
        """Self-test, round three: once every keyholder's commitment is fixed, reveal the partials."""
        plan = self._require_ceremony(request.ceremony_id)

        def run() -> SelfTestResponse:
            commitments = request.commitments
            if [commitment.index for commitment in commitments] != list(range(1, plan.parties + 1)):
                raise InvalidInput("the self-test needs one commitment from every keyholder, in order")
            if commitments[self.index - 1] != SelfTestCommitment(plan.ceremony_id, self.index, partials_digest(self._self_test_partials)):
                raise InvalidInput("the commitments do not carry this keyholder's own")
            self._self_test_commitments = commitments
            self.phase = Phase.SELF_TEST_REVEALED
            return SelfTestResponse(plan.ceremony_id, self.index, self._self_test_partials)

        return self._step("self-test-reveal", request, Phase.SELF_TEST_COMMITTED, run)

    def handle_sign(self, request: SignRequest) -> TranscriptSignature:
        plan = self._require_ceremony(request.body.ceremony_id)

        def run() -> TranscriptSignature:
            body = request.body
            assert self._identity_key is not None
            expected = expected_transcript_body(
                self._context, plan, self._chain, self._evaluation_digest or b"",
                self_test_digest(self._self_test_ciphertexts, self_test_quorums(plan.parties, plan.threshold)),
                self._identity_key,
            )
            if body != expected:
                raise InvalidInput("the transcript does not match what this keyholder took part in")
            assert self._self_test_vectors is not None
            verify_self_test(
                self._context, plan, self.index, self._self_test_vectors, self._self_test_commitments, request.self_test,
                evaluate_self_test(self._context, self._self_test_ciphertexts),
            )
            self._signed_body = body
            self.phase = Phase.SIGNED
            return TranscriptSignature(self.index, self._identity.sign("transcript", body.digest()))

        return self._step("sign", request, Phase.SELF_TEST_REVEALED, run)

    def handle_complete(self, request: CompleteRequest) -> Acknowledgement:
        """The signed transcript: the ceremony is over; `outcome` holds what to keep."""
        plan = self._require_ceremony(request.transcript.body.ceremony_id)
        if self.phase == Phase.COMPLETE and self.outcome is not None:
            if self.outcome.transcript_bytes != request.transcript.to_bytes():
                raise WrongPhase("the ceremony already completed with another transcript")
            return Acknowledgement(plan.ceremony_id, self.index)
        if self.phase != Phase.SIGNED:
            raise WrongPhase(f"the ceremony cannot complete in phase {self.phase.name}")
        transcript = request.transcript
        if transcript.body != self._signed_body:
            raise InvalidInput("the completed transcript is not the one this keyholder signed")
        transcript.verify()
        if hashlib.sha256(request.joint_public_key).digest() != transcript.body.joint_public_key:
            raise InvalidInput("the joint public key does not match the transcript")
        assert self._secret is not None and self._relinearization is not None and self._rotation is not None
        assert self._identity_secret is not None
        self.phase = Phase.COMPLETE
        self.outcome = CeremonyOutcome(
            transcript_bytes=transcript.to_bytes(),
            secret=self._secret,
            backups=dict(self._backups),
            joint_public_key=request.joint_public_key,
            relinearization=self._relinearization.to_bytes(),
            rotation=self._rotation.to_bytes(),
            identity_secret=self._identity_secret.to_bytes(),
        )
        return Acknowledgement(plan.ceremony_id, self.index)


def evaluation_keys_digest(round_one: tuple[bytes, ...], round_two: tuple[bytes, ...], rotation: tuple[bytes, ...]) -> bytes:
    """Digest over every published evaluation-key share: the joint keys are a deterministic
    function of these (their own serialized bytes are not canonical)."""
    parts = [hashlib.sha256(share).digest() for share in (*round_one, *round_two, *rotation)]
    return digest("evaluation-keys", *parts)


def expected_transcript_body(
    context: FheContext, plan: CeremonyPlan, chain: tuple[bytes, ...], evaluation: bytes, self_test: bytes,
    identity_key: elgamal.IdentityKey,
) -> TranscriptBody:
    return TranscriptBody(
        ceremony_id=plan.ceremony_id,
        parameters=plan.parameters,
        parties=plan.parties,
        threshold=plan.threshold,
        fault_bound=plan.fault_bound,
        noise_test=plan.noise_test,
        participants=plan.participants,
        coordinator_key=plan.coordinator_key,
        aggregator_key=plan.aggregator_key,
        chain=tuple(hashlib.sha256(key).digest() for key in chain),
        joint_public_key=hashlib.sha256(chain[-1]).digest(),
        evaluation_keys=evaluation,
        rotation_steps=context.rotation_steps,
        self_test=self_test,
        identity_key=identity_key,
    )


def verify_self_test(
    context: FheContext,
    plan: CeremonyPlan,
    index: int,
    vectors: tuple[SlotVector, SlotVector],
    commitments: Sequence[SelfTestCommitment],
    results: Sequence[QuorumPartials],
    output: Ciphertext,
) -> None:
    """Every keyholder's partials match its commitment, and every self-test quorum decrypts this
    keyholder's region to what only it knows should be there."""
    by_producer: dict[int, list[QuorumPartials]] = {}
    for result in results:
        by_producer.setdefault(result.producer, []).append(result)
    for commitment in commitments:
        if partials_digest(by_producer.get(commitment.index, [])) != commitment.digest:
            raise IntegrityFailure(f"keyholder {commitment.index}'s self-test partials are not the ones it committed to")
    slots, expected = expected_in_region(context, *vectors, self_test_region(context, plan.parties, index))
    for members in self_test_quorums(plan.parties, plan.threshold):
        quorum = Quorum(plan.parties, plan.threshold, members)
        shares = [
            PartialShare(result.producer, on_behalf_of, () if on_behalf_of == result.producer else members, data)
            for result in results
            if result.members == members
            for on_behalf_of, data in zip(result.on_behalf_of, result.partials)
        ]
        if not np.array_equal(fuse(context, output, quorum, shares)[slots], expected):
            raise IntegrityFailure(f"the self-test does not decrypt correctly with keyholders {members}")
