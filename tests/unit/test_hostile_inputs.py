"""Hostile bytes everywhere: every malformed input gets a clear error with the right gRPC status
code, nothing crashes, and nothing is stored.

The public API runs as a real gRPC server (the production servicer and request parsing) in front
of an in-process committee. The fuzz tests use Hypothesis with a bounded budget in CI; set
STAGPACK_FUZZ_EXAMPLES for a longer run (docs/threat-model.md records one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagpack import codec
from stagpack.accounts import Account, Transfer, TransferKind
from stagpack.edge.aggregator_service import AggregatorServicer
from stagpack.committee import Transcript
from stagpack.encoding import StagKind, Threshold
from stagpack.envelope import IntendoEnvelope
from stagpack.errors import InvalidInput, WrongPhase
from stagpack.fhe import FheContext
from stagpack.edge.rpc import PUBLIC_MESSAGE_LIMIT, add_servicer, new_server
from stagpack.identity import SigningIdentity
from stagpack.app.inprocess import InProcessDeployment
from stagpack.log import EntryKind, HuntCertificate, LogEntry, ValidationCertificate
from stagpack.participant.client import AggregatorClient
from stagpack.session import DecryptRequest, SessionRef
from stagpack.stag import ManualClock, StagSpec
from stagpack.participant.sdk import sign_pool_funding
from stagpack.terms import FeeTerms, RefundMode, RefundTerms
from stagpack.v1 import aggregator_pb2, common_pb2
from stagpack.edge.wire import account_to_proto, envelope_to_proto, spec_to_proto, transfer_to_proto

FUZZ_EXAMPLES = int(os.environ.get("STAGPACK_FUZZ_EXAMPLES", "60"))
ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
fuzz_settings = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@dataclasses.dataclass
class PublicApi:
    deployment: InProcessDeployment
    clock: ManualClock
    stub: aggregator_pb2  # type: ignore[valid-type]
    channel: grpc.Channel
    client: AggregatorClient
    spec: StagSpec
    valid_ciphertext: bytes

    def height(self) -> int:
        return self.deployment.aggregator.status(self.spec.stag_id).height

    def call(self, method: str, request: object) -> grpc.StatusCode:
        try:
            getattr(self.stub, method)(request, timeout=30)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined,no-any-return]
        return grpc.StatusCode.OK

    def envelope(self, ciphertext: bytes, **changes: object) -> IntendoEnvelope:
        statement = IntendoEnvelope.sign(
            SigningIdentity(), self.spec.stag_id, hashlib.sha256(ciphertext).digest(), 1, self.clock() + 600_000
        )
        if not changes:
            return statement
        new_statement = dataclasses.replace(statement.statement, **changes)
        return IntendoEnvelope(new_statement, statement.signature)


@pytest.fixture(scope="module")
def api(scratch: Callable[[str], Path]) -> Iterator[PublicApi]:
    clock = ManualClock()
    deployment = InProcessDeployment.start(scratch("hostile"), 3, 2, clock=clock)
    service = SimpleNamespace(aggregator=deployment.aggregator, stopping=threading.Event())
    server, port = new_server("127.0.0.1:0", PUBLIC_MESSAGE_LIMIT)
    add_servicer(server, AggregatorServicer(service), aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"])  # type: ignore[arg-type]
    server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(
        address,
        options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    )
    from stagpack.v1 import aggregator_pb2_grpc

    client = AggregatorClient(address)
    spec = StagSpec.new(committee=client.committee_id, kind=StagKind.COUNT, levels=30, epoch_millis=1000, opens_at_millis=clock())
    client.create_stag(spec)
    context, joint = client.encryption_context()
    from stagpack.encoding import SlotLayout

    layout = SlotLayout(context.slot_count, context.plaintext_modulus)
    valid = context.ciphertext_to_bytes(context.encrypt(joint, layout.thermometer(Threshold(3, 1), 30)))
    try:
        yield PublicApi(deployment, clock, aggregator_pb2_grpc.AggregatorStub(channel), channel, client, spec, valid)
    finally:
        server.stop(0)


def submit(api: PublicApi, envelope: IntendoEnvelope, ciphertext: bytes) -> tuple[grpc.StatusCode, str]:
    request = aggregator_pb2.SubmitIntendoRequest(envelope=envelope_to_proto(envelope), ciphertext=ciphertext)
    try:
        api.stub.SubmitIntendo(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def other_key_ciphertext() -> bytes:
    context = FheContext()
    _, public = context.generate_key_share(None)
    context.bind_joint_key(public)
    return context.ciphertext_to_bytes(context.encrypt(public, np.zeros(context.slot_count, dtype=np.int64)))


def test_hostile_submissions_get_clear_errors_and_store_nothing(api: PublicApi) -> None:
    valid = api.valid_ciphertext
    garbage = os.urandom(len(valid))
    foreign = other_key_ciphertext()
    cases = {
        "truncated ciphertext": (valid[:-1], grpc.StatusCode.INVALID_ARGUMENT, "bytes"),
        "padded ciphertext": (valid + b"\0", grpc.StatusCode.INVALID_ARGUMENT, "bytes"),
        "garbage ciphertext of the right size": (garbage, grpc.StatusCode.INVALID_ARGUMENT, "header"),
        "empty ciphertext": (b"", grpc.StatusCode.INVALID_ARGUMENT, "bytes"),
        "a ciphertext under another key": (foreign, grpc.StatusCode.INVALID_ARGUMENT, "crypto context"),
    }
    height = api.height()
    for name, (ciphertext, code, phrase) in cases.items():
        status, details = submit(api, api.envelope(ciphertext), ciphertext)
        assert (status, phrase in details) == (code, True), (name, status, details)
    # envelopes that lie
    envelope_cases = {
        "a forged signature": (dataclasses.replace(api.envelope(valid), signature=bytes(64)), grpc.StatusCode.INVALID_ARGUMENT, "signature"),
        # the cheap checks run before the signature's (a ring signature costs ~1 ms per member)
        "a digest of other bytes": (api.envelope(valid, ciphertext_digest=bytes(32)), grpc.StatusCode.INVALID_ARGUMENT, "does not match the digest"),
        "another stag": (api.envelope(valid, stag_id=bytes(32)), grpc.StatusCode.NOT_FOUND, "no such stag"),
        "an absurd weight": (api.envelope(valid, weight=1 << 40), grpc.StatusCode.INVALID_ARGUMENT, "weight"),
        "a short nonce": (api.envelope(valid, nonce=b"x"), grpc.StatusCode.INVALID_ARGUMENT, "nonce"),
        "an invalid participant key": (api.envelope(valid, participant=b"\x01" * 31), grpc.StatusCode.INVALID_ARGUMENT, "participant"),
    }
    for name, (envelope, code, phrase) in envelope_cases.items():
        status, details = submit(api, envelope, valid)
        assert status == code and phrase in details, (name, status, details)
    expired = IntendoEnvelope.sign(SigningIdentity(), api.spec.stag_id, hashlib.sha256(valid).digest(), 1, api.clock() - 1)
    assert submit(api, expired, valid) == (grpc.StatusCode.INVALID_ARGUMENT, "the envelope has expired")
    unknown = IntendoEnvelope.sign(SigningIdentity(), bytes(32), hashlib.sha256(valid).digest(), 1, api.clock() + 1000)
    assert submit(api, unknown, valid)[0] is grpc.StatusCode.NOT_FOUND
    # a message far larger than any intendo is refused by the transport's deliberate limit
    status, details = submit(api, api.envelope(valid), os.urandom(5 << 20))
    assert status is grpc.StatusCode.RESOURCE_EXHAUSTED
    # bytes that are not a request at all
    raw = api.channel.unary_unary("/stagpack.v1.Aggregator/SubmitIntendo", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xff\xff\xff", timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in raised.value.details()  # type: ignore[attr-defined]
    assert api.height() == height, "no hostile submission reached the log"
    # and the honest one still goes through
    assert submit(api, api.envelope(valid), valid)[0] is grpc.StatusCode.OK


def test_absurd_stags_are_refused(api: PublicApi) -> None:
    committee = api.client.committee_id
    good = StagSpec.new(committee=committee, kind=StagKind.COUNT, levels=30, epoch_millis=1000)
    cases = {
        "zero levels": dataclasses.replace(good, levels=0),
        "one level": dataclasses.replace(good, levels=1),
        "more levels than slots in a row": dataclasses.replace(good, levels=8193),
        "a billion levels": dataclasses.replace(good, levels=10**9),
        "no epoch period": dataclasses.replace(good, epoch_millis=0),
        "a payload of 100 KB": dataclasses.replace(good, payload=os.urandom(100_000)),
        "a deadline before the opening": dataclasses.replace(good, deadline_millis=1),
        "an eligible key that is not a key": dataclasses.replace(good, eligibility=(b"short",)),
        "another committee": dataclasses.replace(good, committee=bytes(32)),
        "a short nonce": dataclasses.replace(good, nonce=b"n"),
    }
    for name, spec in cases.items():
        message = spec_to_proto(spec) if spec.levels < (1 << 32) else None
        if message is None:
            continue
        status = api.call("CreateStag", aggregator_pb2.CreateStagRequest(spec=message))
        assert status is grpc.StatusCode.INVALID_ARGUMENT, (name, status)
    unspecified = spec_to_proto(good)
    unspecified.kind = common_pb2.STAG_KIND_UNSPECIFIED
    assert api.call("CreateStag", aggregator_pb2.CreateStagRequest(spec=unspecified)) is grpc.StatusCode.INVALID_ARGUMENT
    assert api.call("CreateStag", aggregator_pb2.CreateStagRequest()) is grpc.StatusCode.INVALID_ARGUMENT
    assert api.call("GetStagStatus", aggregator_pb2.GetStagStatusRequest(stag_id=b"nope")) is grpc.StatusCode.NOT_FOUND


def test_the_sdk_refuses_impossible_conditions() -> None:
    for make in (
        lambda: Threshold.count(-1, levels=30),
        lambda: Threshold.count(29, levels=30),  # needs 30 members; the stag is full at 29
        lambda: Threshold.capital(0, 10, levels=30),
        lambda: Threshold.capital(5, 30, levels=30),
        lambda: Threshold.capital(-5, 10, levels=30),
    ):
        with pytest.raises(InvalidInput):
            make()
    with pytest.raises(TypeError):
        Threshold.count(True, levels=30)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Threshold.count(2.5, levels=30)  # type: ignore[arg-type]


def test_the_cli_reports_bad_input_clearly(api: PublicApi, tmp_path: Path) -> None:
    identity = tmp_path / "me.key"
    created = subprocess.run([sys.executable, "-m", "stagpack", "identity", "create", "--out", str(identity)], capture_output=True, text=True)
    assert created.returncode == 0
    address = api.client.address
    for arguments, phrase in (
        (["submit", "--identity", str(identity), "--stag", api.spec.stag_id.hex(), "--others", "-5"], "others"),
        (["submit", "--identity", str(identity), "--stag", "zz", "--others", "1"], "hex"),
        (["submit", "--identity", str(identity), "--stag", api.spec.stag_id.hex(), "--amount", "3", "--total", "9"], "counts members"),
        (["stag", "status", "00" * 32], "no such stag"),
    ):
        result = subprocess.run([sys.executable, "-m", "stagpack", *arguments, "--aggregator", address], capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr.startswith("error:") and phrase in result.stderr, (arguments, result.stderr)
        assert "Traceback" not in result.stderr


# --- fuzzing ---------------------------------------------------------------------------------


def mutations() -> st.SearchStrategy[tuple[str, int, int]]:
    return st.tuples(st.sampled_from(["flip", "truncate", "insert", "splice"]), st.integers(0, 1 << 30), st.integers(0, 255))


def mutate(data: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, position, value = mutation
    if not data:
        return bytes([value])
    index = position % len(data)
    if kind == "flip":
        return data[:index] + bytes([data[index] ^ (value or 1)]) + data[index + 1 :]
    if kind == "truncate":
        return data[:index]
    if kind == "insert":
        return data[:index] + bytes([value]) + data[index:]
    return data[:index] + data[index:][::-1][:16] + data[index + 16 :]


@fuzz_settings
@given(st.binary(max_size=400), st.sampled_from([LogEntry, Transcript, HuntCertificate, ValidationCertificate, DecryptRequest, SessionRef, StagSpec, IntendoEnvelope]))
def test_fuzz_record_decoders_on_random_bytes(data: bytes, record_type: type) -> None:
    try:
        record = codec.decode(record_type, data)
    except InvalidInput:
        return
    assert codec.encode(record) == data


@fuzz_settings
@given(st.lists(mutations(), min_size=1, max_size=4))
def test_fuzz_record_decoders_on_mutated_records(changes: list[tuple[str, int, int]]) -> None:
    spec = StagSpec.new(
        committee=bytes(32), kind=StagKind.CAPITAL, levels=50, title="t", eligibility=(b"\x01" * 32,),
        beneficiary=Account(b"\x02" * 32, "proceeds"),
    )
    entry = LogEntry(spec.stag_id, 1, bytes(32), 5, EntryKind.GENESIS, codec.encode(spec))
    data = codec.encode(entry)
    for change in changes:
        data = mutate(data, change)
    try:
        decoded = codec.decode(LogEntry, data)
    except InvalidInput:
        return
    assert codec.encode(decoded) == data


@fuzz_settings
@given(st.lists(mutations(), min_size=1, max_size=3))
def test_fuzz_ciphertext_parsing(api: PublicApi, changes: list[tuple[str, int, int]]) -> None:
    context = api.deployment.context
    data = api.valid_ciphertext
    for change in changes:
        data = mutate(data, change)
    try:
        parsed = context.ciphertext_from_bytes(data)
    except InvalidInput:
        return
    assert context.ciphertext_to_bytes(parsed) == data  # anything accepted is a canonical ciphertext


@fuzz_settings
@given(
    st.sampled_from(["valid", "random", "mutated"]),
    st.lists(mutations(), max_size=3),
    st.integers(0, 1 << 62),
    st.binary(max_size=40),
    st.integers(-(1 << 62), 1 << 62),
)
def test_fuzz_submit_servicer(api: PublicApi, which: str, changes: list, weight: int, junk: bytes, expiry: int) -> None:
    ciphertext = api.valid_ciphertext if which != "random" else os.urandom(len(api.valid_ciphertext))
    if which == "mutated":
        for change in changes:
            ciphertext = mutate(ciphertext, change)
    envelope = api.envelope(ciphertext)
    message = envelope_to_proto(envelope)
    choice = weight % 5
    if choice == 1:
        message.statement.weight = weight
    elif choice == 2:
        message.statement.nonce = junk
    elif choice == 3:
        message.statement.expires_at_millis = expiry
    elif choice == 4:
        message.signature = junk
    height = api.height()
    try:
        api.stub.SubmitIntendo(aggregator_pb2.SubmitIntendoRequest(envelope=message, ciphertext=ciphertext), timeout=30)
    except grpc.RpcError as error:
        assert error.code() in ACCEPTABLE, (error.code(), error.details())  # type: ignore[attr-defined]
        assert api.height() == height, "a refused submission changed the log"
        return
    assert api.height() == height + 1


@fuzz_settings
@given(st.sampled_from([m.name for m in aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"].methods]), st.binary(max_size=300))
def test_fuzz_every_public_method_with_raw_bytes(api: PublicApi, method: str, payload: bytes) -> None:
    call = api.channel.unary_stream if method == "WatchHunts" else api.channel.unary_unary
    stub = call(f"/stagpack.v1.Aggregator/{method}", request_serializer=None, response_deserializer=None)
    height = api.height()
    try:
        response = stub(payload, timeout=3)
        if method == "WatchHunts":
            for _ in response:
                break
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        assert code in ACCEPTABLE | {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE}, (method, code, error.details())  # type: ignore[attr-defined]
        assert code is not grpc.StatusCode.UNAVAILABLE or method == "WatchHunts"
    if method in ("SubmitIntendo", "WithdrawIntendo"):
        assert api.height() == height


# --- escrow accounts ---------------------------------------------------------------------------


def balance_of(api: PublicApi, identity: SigningIdentity, tag: str = "main") -> tuple[int, int]:
    balance = api.client.balance(Account(identity.verify_key, tag))
    return balance.balance, balance.held


def capital_stag(api: PublicApi) -> StagSpec:
    spec = StagSpec.new(
        committee=api.client.committee_id, kind=StagKind.CAPITAL, levels=30, epoch_millis=1000, opens_at_millis=api.clock(),
        beneficiary=Account(SigningIdentity().verify_key, "proceeds"),
    )
    api.client.create_stag(spec)
    return spec


def expect_refused(api: PublicApi, spec: StagSpec, action: Callable[[], object], error: type[Exception], phrase: str) -> None:
    """`action` fails with `error` saying `phrase`, and neither the log nor any balance changed."""
    height = api.client.status(spec.stag_id).log_height
    totals = api.deployment.ledger.totals()
    with pytest.raises(error, match=phrase):
        action()
    assert api.client.status(spec.stag_id).log_height == height
    assert api.deployment.ledger.totals() == totals


def test_capital_intendos_enter_only_while_their_escrow_covers_them(api: PublicApi) -> None:
    """Over the wire an escrow shortfall is FAILED_PRECONDITION (`WrongPhase`: deposit, then
    retry); nothing is logged and no money moves."""
    client = api.client
    spec, second = capital_stag(api), capital_stag(api)
    alice = SigningIdentity()
    five = client.prepare(spec, alice, Threshold.capital(5, 12, levels=30), "main")
    expect_refused(api, spec, lambda: client.submit(five), WrongPhase, "holds 0, less than the intendo's weight 5")
    client.transfer(alice, TransferKind.DEPOSIT, "main", 4)
    expect_refused(api, spec, lambda: client.submit(five), WrongPhase, "holds 4")
    client.transfer(alice, TransferKind.DEPOSIT, "main", 3)
    intendo_id, _ = client.submit(five)
    assert balance_of(api, alice) == (7, 5)
    # the live intendo holds its weight: only the rest may be released
    expect_refused(api, spec, lambda: client.transfer(alice, TransferKind.RELEASE, "main", 3), WrongPhase, "at most 2")
    assert client.transfer(alice, TransferKind.RELEASE, "main", 2).balance == 5
    # multiplexing: the same account backs an intendo in a second stag; they are mutually
    # exclusive, so the account holds the larger weight, not the sum
    seven = client.prepare(second, alice, Threshold.capital(7, 9, levels=30), "main")
    expect_refused(api, second, lambda: client.submit(seven), WrongPhase, "holds 5, less than the intendo's weight 7")
    client.submit(client.prepare(second, alice, Threshold.capital(4, 9, levels=30), "main"))
    assert balance_of(api, alice) == (5, 5)
    # withdrawn, the first intendo holds nothing any more; the second still holds its 4
    client.withdraw(alice, spec.stag_id, intendo_id)
    assert balance_of(api, alice) == (5, 4)
    assert client.transfer(alice, TransferKind.RELEASE, "main", 1).balance == 4
    expect_refused(api, spec, lambda: client.transfer(alice, TransferKind.RELEASE, "main", 1), WrongPhase, "at most 0")
    assert api.deployment.ledger.totals().conserved


def test_intendos_name_a_tag_exactly_when_their_stag_moves_money(api: PublicApi) -> None:
    spec = capital_stag(api)
    person = SigningIdentity()
    api.client.transfer(person, TransferKind.DEPOSIT, "main", 10)
    ciphertext = api.client.prepare(spec, person, Threshold.capital(2, 5, levels=30), "main").ciphertext
    digest = hashlib.sha256(ciphertext).digest()
    untagged = IntendoEnvelope.sign(person, spec.stag_id, digest, 2, api.clock() + 600_000)
    assert submit(api, untagged, ciphertext)[0] is grpc.StatusCode.INVALID_ARGUMENT
    bad_tag = IntendoEnvelope.sign(person, spec.stag_id, digest, 2, api.clock() + 600_000, "no spaces")
    code, details = submit(api, bad_tag, ciphertext)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "capital tag" in details, details
    valid = api.valid_ciphertext
    tagged_count = IntendoEnvelope.sign(person, api.spec.stag_id, hashlib.sha256(valid).digest(), 1, api.clock() + 600_000, "main")
    assert submit(api, tagged_count, valid) == (grpc.StatusCode.INVALID_ARGUMENT, "count intendos name no capital tag")
    # a capital stag names the account it pays; a count stag names none
    committee = api.client.committee_id
    unpaid = StagSpec.new(committee=committee, kind=StagKind.CAPITAL, levels=30, epoch_millis=1000)
    paying_count = StagSpec.new(committee=committee, kind=StagKind.COUNT, levels=30, epoch_millis=1000, beneficiary=Account(person.verify_key, "x"))
    not_a_key = dataclasses.replace(unpaid, beneficiary=Account(b"\x01" * 32, "proceeds"))
    for spec_case in (unpaid, paying_count, not_a_key):
        assert api.call("CreateStag", aggregator_pb2.CreateStagRequest(spec=spec_to_proto(spec_case))) is grpc.StatusCode.INVALID_ARGUMENT


def test_hostile_transfers_get_clear_errors_and_move_nothing(api: PublicApi) -> None:
    alice, mallory = SigningIdentity(), SigningIdentity()
    api.client.transfer(alice, TransferKind.DEPOSIT, "main", 50)
    ledger = api.deployment.ledger
    totals = ledger.totals()

    def request(
        kind: TransferKind = TransferKind.RELEASE, amount: int = 10, signer: SigningIdentity = alice, expires: int = 600_000,
        **changes: object,
    ) -> aggregator_pb2.TransferRequest:
        """A release (or deposit) signed by `signer`; `changes` are made after signing."""
        signed = Transfer.sign(signer, api.client.committee_id, kind, "main", amount, api.clock() + expires)
        statement = dataclasses.replace(signed.statement, **changes)
        return transfer_to_proto(Transfer(statement, signed.signature))

    def status(message: aggregator_pb2.TransferRequest) -> tuple[grpc.StatusCode, str]:
        try:
            api.stub.Transfer(message, timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details()  # type: ignore[attr-defined]
        return grpc.StatusCode.OK, ""

    unspecified = request()
    unspecified.statement.kind = aggregator_pb2.TRANSFER_KIND_UNSPECIFIED
    huge = request()
    huge.statement.amount = 2**63
    zero = request()
    zero.statement.amount = 0
    inflated = request(amount=1)
    inflated.statement.amount = 40
    cases = {
        "no statement": (aggregator_pb2.TransferRequest(), grpc.StatusCode.INVALID_ARGUMENT, "missing"),
        "an unknown kind": (unspecified, grpc.StatusCode.INVALID_ARGUMENT, "kind"),
        "an amount of 2^63": (huge, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        "an amount of 0": (zero, grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        "mallory releasing alice's money": (
            request(signer=mallory, account=Account(alice.verify_key, "main")), grpc.StatusCode.INVALID_ARGUMENT, "signature",
        ),
        "a release inflated after signing": (inflated, grpc.StatusCode.INVALID_ARGUMENT, "signature"),
        "an expired release": (request(expires=-1), grpc.StatusCode.INVALID_ARGUMENT, "expired"),
        "a release of more than the balance": (request(amount=51), grpc.StatusCode.FAILED_PRECONDITION, "at most 50"),
        "a short nonce": (request(nonce=b"n"), grpc.StatusCode.INVALID_ARGUMENT, "nonce"),
        "a tag outside the alphabet": (request(account=Account(alice.verify_key, "a/b")), grpc.StatusCode.INVALID_ARGUMENT, "tag"),
        "an owner that is not a key": (request(account=Account(b"\x01" * 32, "main")), grpc.StatusCode.INVALID_ARGUMENT, "key"),
    }
    for name, (message, code, phrase) in cases.items():
        got, details = status(message)
        assert got is code and phrase in details, (name, got, details)
    assert ledger.totals() == totals, "no hostile transfer moved money"
    replayed = request(amount=5)
    assert status(replayed)[0] is grpc.StatusCode.OK
    assert status(replayed) == (grpc.StatusCode.ALREADY_EXISTS, "this release was already applied (replay)")
    assert balance_of(api, alice) == (45, 0)
    assert api.call("GetBalance", aggregator_pb2.GetBalanceRequest()) is grpc.StatusCode.INVALID_ARGUMENT
    bad = aggregator_pb2.GetBalanceRequest(account=account_to_proto(Account(alice.verify_key, "")))
    assert api.call("GetBalance", bad) is grpc.StatusCode.INVALID_ARGUMENT


# --- refund pools and fees ---------------------------------------------------------------------


def test_a_refund_pool_is_funded_only_by_its_funder_and_only_from_free_escrow(api: PublicApi) -> None:
    """Creating a refund stag moves the funder's money, so the funder's signature on the stag id
    is required, and the account must hold the pool beyond what its live intendos hold. Each
    refusal is clear, creates no stag and moves no money."""
    client = api.client
    dana, mallory = SigningIdentity(), SigningIdentity()
    funder = Account(dana.verify_key, "bonus")

    def refund_stag(pool: int = 20, bonus: int = 0) -> StagSpec:
        return StagSpec.new(
            committee=client.committee_id, kind=StagKind.CAPITAL, levels=11, epoch_millis=1000, opens_at_millis=api.clock(),
            deadline_millis=api.clock() + 5_000, beneficiary=Account(SigningIdentity().verify_key, "proceeds"),
            refund=RefundTerms(funder, pool, RefundMode.FIXED if bonus else RefundMode.PRO_RATA, bonus, funder),
        )

    def refused(spec: StagSpec, signature: bytes, error: type[Exception], phrase: str) -> None:
        totals = api.deployment.ledger.totals()
        count = len(client.list_stags())
        with pytest.raises(error, match=phrase):
            client.create_stag(spec, signature)
        assert len(client.list_stags()) == count and api.deployment.ledger.totals() == totals

    spec = refund_stag()
    refused(spec, b"", InvalidInput, "refund-pool signature")
    refused(spec, mallory.sign("refund-pool", spec.stag_id), InvalidInput, "does not verify")  # not the funder
    refused(spec, dana.sign("refund-pool", refund_stag().stag_id), InvalidInput, "does not verify")  # another stag
    refused(spec, sign_pool_funding(dana, spec), WrongPhase, "holds 0")
    refused(refund_stag(bonus=3), b"x" * 64, InvalidInput, "pool of at least 30")  # promises more than it funds
    plain = capital_stag_spec(api)
    refused(plain, sign_pool_funding(dana, spec), InvalidInput, "without a refund pool")
    client.transfer(dana, TransferKind.DEPOSIT, "bonus", 25)
    client.create_stag(spec, sign_pool_funding(dana, spec))
    assert balance_of(api, dana, "bonus") == (5, 0)
    status = client.status(spec.stag_id)
    assert (status.pool.funded, status.pool.remaining, status.pool.state) == (20, 20, "open")
    assert api.deployment.ledger.totals().conserved and api.deployment.ledger.totals().pooled >= 20


def test_fees_are_charged_with_the_submission_and_held_for_execution(api: PublicApi) -> None:
    """A fee per submission (2) leaves the account when the intendo is logged; a fee per member
    (3) is held with the weight until the hunt. An account that cannot pay both is refused."""
    client = api.client
    committee, operator = Account(SigningIdentity().verify_key, "fees"), Account(SigningIdentity().verify_key, "fees")
    spec = StagSpec.new(
        committee=client.committee_id, kind=StagKind.CAPITAL, levels=30, epoch_millis=1000, opens_at_millis=api.clock(),
        beneficiary=Account(SigningIdentity().verify_key, "proceeds"), fees=FeeTerms(2, 3, committee, operator, 50),
    )
    client.create_stag(spec)
    alice = SigningIdentity()
    client.transfer(alice, TransferKind.DEPOSIT, "main", 9)
    five = client.prepare(spec, alice, Threshold.capital(5, 12, levels=30), "main")
    expect_refused(api, spec, lambda: client.submit(five), WrongPhase, "the submission fee 2 plus the intendo's weight 5 and the fee per executed member 3")
    client.transfer(alice, TransferKind.DEPOSIT, "main", 1)
    client.submit(five)
    assert balance_of(api, alice) == (8, 8)  # 10 - 2 paid; 5 + 3 held
    assert api.deployment.ledger.balance(committee) == 1 and api.deployment.ledger.balance(operator) == 1
    expect_refused(api, spec, lambda: client.transfer(alice, TransferKind.RELEASE, "main", 1), WrongPhase, "at most 0")
    assert api.deployment.ledger.totals().conserved


def capital_stag_spec(api: PublicApi) -> StagSpec:
    return StagSpec.new(
        committee=api.client.committee_id, kind=StagKind.CAPITAL, levels=30, epoch_millis=1000, opens_at_millis=api.clock(),
        beneficiary=Account(SigningIdentity().verify_key, "proceeds"),
    )


def test_a_pool_funded_by_a_creation_that_never_logged_its_stag_goes_back_on_restart(api: PublicApi) -> None:
    """The ledger funds a refund pool just before the stag's genesis is logged (the two are in
    different stores). If the aggregator dies in between, its restart returns the pool to the
    funder; the same spec cannot then be created on the returned pool."""
    from stagpack.aggregator.core import Aggregator

    client, ledger = api.client, api.deployment.ledger
    dana = SigningIdentity()
    funder = Account(dana.verify_key, "bonus")
    client.transfer(dana, TransferKind.DEPOSIT, "bonus", 20)
    spec = StagSpec.new(
        committee=client.committee_id, kind=StagKind.CAPITAL, levels=11, epoch_millis=1000, opens_at_millis=api.clock(),
        deadline_millis=api.clock() + 5_000, beneficiary=Account(SigningIdentity().verify_key, "proceeds"),
        refund=RefundTerms(funder, 20, RefundMode.PRO_RATA, 0, funder),
    )
    ledger.fund_pool(spec, 0, api.clock())  # funded; then the process died before the genesis
    assert ledger.balance(funder) == 0
    deployment = api.deployment
    restarted = Aggregator(
        deployment.context, deployment.bundle, deployment.aggregator._store, deployment.keyholders, ledger, clock=api.clock
    )
    pool = ledger.pool(spec.stag_id)
    assert pool is not None and (pool.remaining, pool.state) == (0, "returned")
    assert ledger.balance(funder) == 20 and ledger.totals().conserved
    with pytest.raises(InvalidInput, match="create the stag again with a new nonce"):
        restarted.create_stag(spec, sign_pool_funding(dana, spec))
    assert spec.stag_id not in restarted.stag_ids() and ledger.balance(funder) == 20
