"""The `stagpack` command line without services: exit codes, output documents and input checks.

Commands that talk to an aggregator get a stand-in client (`FakeClient`) that answers with the
same protobuf messages the aggregator sends and refuses specs as the wire and the aggregator do.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from stagpack.app import cli


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No aggregator address or local deployment leaks in from the environment or the cwd."""
    for name in ("STAGPACK_AGGREGATOR", "STAGPACK_LOCAL_DIR", "STAGPACK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- exit codes ------------------------------------------------------------------------------


def _failing(error: BaseException) -> Any:
    def handler(options: argparse.Namespace) -> int:
        raise error

    return handler


def test_a_bug_exits_1_as_an_internal_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "command_stag_list", _failing(TypeError("unsupported operand type(s)")))
    code, _, errors = run(["stag", "list", "--aggregator", "127.0.0.1:1"], capsys)
    assert code == 1
    assert errors.splitlines()[0] == "error: internal error: TypeError: unsupported operand type(s)"
    assert "Traceback" not in errors


@pytest.mark.parametrize("error", [KeyError("stag"), ValueError("bad value"), AttributeError("no attribute"), RuntimeError("boom")])
def test_any_unexpected_exception_exits_1(error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "command_stag_list", _failing(error))
    code, _, errors = run(["stag", "list"], capsys)
    assert code == 1
    assert errors.startswith(f"error: internal error: {type(error).__name__}: ")


def test_stagpack_debug_prints_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STAGPACK_DEBUG", "1")
    monkeypatch.setattr(cli, "command_stag_list", _failing(TypeError("bug")))
    code, _, errors = run(["stag", "list"], capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in errors and "error: internal error: TypeError: bug" in errors


def test_user_errors_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from stagpack.errors import NotFound

    code, _, errors = run(["identity", "show", str(tmp_path / "missing.key")], capsys)
    assert code == 2 and errors.startswith("error: ") and "missing.key" in errors
    assert "internal error" not in errors

    monkeypatch.setattr(cli, "command_stag_list", _failing(NotFound("no such stag")))
    code, _, errors = run(["stag", "list"], capsys)
    assert (code, errors) == (2, "error: no such stag\n")

    code, _, errors = run(["stag", "create", "--kind", "count"], capsys)  # argparse: --levels missing
    assert code == 2 and "--levels" in errors


def test_help_documents_exit_codes_and_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "STAGPACK_DEBUG" in out and "exit" in out


# --- a stand-in aggregator client ------------------------------------------------------------


class FakeClient:
    """Answers like AggregatorClient, from canned protobuf messages; `create_stag` refuses a
    spec as the wire conversion and the aggregator do (so a spec the CLI should have refused
    shows up as the traceback or refusal the real round trip would give)."""

    def __init__(self) -> None:
        from stagpack.fhe import FheContext

        self.context = FheContext()
        self.committee_id = bytes(range(32))
        self.created: list[Any] = []
        self.stags: list[Any] = []
        self.stag_status: Any = None
        self.hunts: list[Any] = []

    def encryption_context(self) -> tuple[Any, Any]:
        return self.context, None

    def create_stag(self, spec: Any, funding_signature: bytes = b"") -> bytes:
        from stagpack.edge.wire import spec_from_proto, spec_to_proto
        from stagpack.identity import verify_signature

        received = spec_from_proto(spec_to_proto(spec))
        received.validate(self.context.row_width, self.committee_id)
        if received.refund is not None:  # what the aggregator checks before it escrows the pool
            verify_signature(received.refund.funder.owner, "refund-pool", received.stag_id, funding_signature)
        self.created.append(received)
        return bytes(received.stag_id)

    def list_stags(self) -> list[Any]:
        return self.stags

    def status(self, stag_id: bytes) -> Any:
        return self.stag_status

    def watch(self, stag_id: bytes, after_epoch: int = 0, timeout_seconds: float | None = None) -> Iterator[Any]:
        yield from self.hunts


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()
    monkeypatch.setattr(cli, "_client", lambda options: fake)
    return fake


# --- stag list ---------------------------------------------------------------------------------


def test_kind_from_proto_is_the_inverse_of_the_wire_encoding() -> None:
    from stagpack.edge.wire import kind_from_proto, kind_to_proto
    from stagpack.encoding import StagKind
    from stagpack.errors import InvalidInput
    from stagpack.v1 import common_pb2

    for kind in StagKind:
        assert kind_from_proto(kind_to_proto(kind)) is kind
    assert {kind_to_proto(kind) for kind in StagKind} == set(common_pb2.StagKind.values()) - {common_pb2.STAG_KIND_UNSPECIFIED}
    for value in (common_pb2.STAG_KIND_UNSPECIFIED, 99):
        with pytest.raises(InvalidInput):
            kind_from_proto(value)


def test_stag_list_names_kinds_as_the_wire_does(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    from stagpack.edge.wire import kind_from_proto
    from stagpack.v1 import aggregator_pb2, common_pb2

    values = sorted(common_pb2.StagKind.values())
    client.stags = [aggregator_pb2.StagSummary(stag_id=bytes([value]) * 32, kind=value, levels=10, title=f"t{value}") for value in values]
    code, out, _ = run(["stag", "list", "--json"], capsys)
    assert code == 0
    listed = {stag["stag_id"]: stag["kind"] for stag in json.loads(out)["stags"]}
    for value in values:
        if value == common_pb2.STAG_KIND_UNSPECIFIED:
            assert listed[(bytes([value]) * 32).hex()] == f"unknown ({value})"
        else:
            assert listed[(bytes([value]) * 32).hex()] == kind_from_proto(value).value
    code, out, _ = run(["stag", "list"], capsys)
    assert code == 0 and "capital" in out and "count" in out and "unknown (0)" in out


# --- hunts: watch, verify and status documents --------------------------------------------------


@pytest.fixture(scope="module")
def certified_hunt(committee2of3: Any) -> Any:
    """A real hunt certificate bundle that verifies: level 3 at log height 7 in epoch 4, with
    weight 2 executed by earlier hunts and one new member of weight 1, signed by 2 of 3."""
    import os

    from stagpack.committee import KeyholderSignature
    from stagpack.encoding import StagKind
    from stagpack.envelope import IntendoEnvelope
    from stagpack.identity import SigningIdentity
    from stagpack.log import CertificateBundle, HuntCertificate, HuntOutcome
    from stagpack.stag import StagSpec

    transcript = committee2of3.bundle.transcript
    spec = StagSpec.new(committee=transcript.committee_id, kind=StagKind.COUNT, levels=10, title="t", epoch_millis=1000)
    member = IntendoEnvelope.sign(SigningIdentity(), spec.stag_id, os.urandom(32), 1, 0)
    outcome = HuntOutcome(spec.stag_id, 4, 7, os.urandom(32), 3, 2, (member,))
    signatures = tuple(KeyholderSignature(index, identity.sign("hunt", outcome.digest()))
                       for index, identity in enumerate(committee2of3.identities[:2], start=1))
    chain = outcome.chain_facts(spec).digest(transcript.committee_id)
    attestations = tuple(KeyholderSignature(index, identity.chain_key.sign(chain))
                         for index, identity in enumerate(committee2of3.identities[:2], start=1))
    bundle = CertificateBundle(HuntCertificate(outcome, signatures, attestations), spec, transcript)
    bundle.verify()
    return bundle


def _hunt_view(bundle: Any, **changes: Any) -> Any:
    from stagpack.participant.client import HuntView

    outcome = bundle.certificate.outcome
    fields = {
        "stag_id": outcome.stag_id, "epoch": outcome.epoch, "level": outcome.level, "log_height": outcome.height,
        "members": tuple((m.intendo_id, m.statement.participant, m.statement.weight) for m in outcome.members), "bundle": bundle,
    }
    return HuntView(**{**fields, **changes})


def test_hunt_view_carries_the_log_height_from_the_proto(certified_hunt: Any) -> None:
    from stagpack import codec
    from stagpack.edge.wire import hunt_to_proto
    from stagpack.participant.client import HuntView

    message = hunt_to_proto(certified_hunt.certificate, certified_hunt.spec, certified_hunt.transcript)
    view = HuntView.from_proto(message)
    assert view.log_height == 7 and view.epoch == 4 and view.level == 3
    assert codec.encode(view.bundle) == codec.encode(certified_hunt)


def test_watch_json_reports_log_height_and_executed_weight(client: FakeClient, certified_hunt: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client.hunts = [_hunt_view(certified_hunt)]
    stag = certified_hunt.spec.stag_id.hex()
    code, out, _ = run(["watch", "--stag", stag, "--json", "--count", "1"], capsys)
    assert code == 0
    (document,) = [json.loads(line) for line in out.splitlines()]
    assert document["log_height"] == 7 and document["executed_weight"] == 2
    assert document["level"] == 3 and document["epoch"] == 4 and document["verified"] is True
    assert [member["weight"] for member in document["members"]] == [1]
    code, out, _ = run(["watch", "--stag", stag, "--count", "1"], capsys)
    assert code == 0 and "log height 7" in out and "2 executed before" in out


def test_watch_refuses_a_hunt_message_that_disagrees_with_its_certificate(
    client: FakeClient, certified_hunt: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stag = certified_hunt.spec.stag_id.hex()
    for changes in ({"log_height": 8}, {"level": 9}, {"epoch": 5}, {"members": ()}):
        client.hunts = [_hunt_view(certified_hunt, **changes)]
        code, out, errors = run(["watch", "--stag", stag, "--json"], capsys)
        assert code == 2 and "certificate" in errors and not out.strip(), changes
    client.hunts = [_hunt_view(certified_hunt)]
    code, _, errors = run(["watch", "--stag", "ab" * 32, "--json"], capsys)
    assert code == 2 and "another stag" in errors


def test_verify_json_reports_the_executed_weight(certified_hunt: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from stagpack import codec

    path = tmp_path / "hunt-4.certificate"
    path.write_bytes(codec.encode(certified_hunt))
    code, out, _ = run(["verify", str(path), "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["valid"] is True and document["executed_weight"] == 2 and document["log_height"] == 7
    assert document["level"] == 3 and document["signers"] == [1, 2]


def test_stag_status_json_reports_log_heights(client: FakeClient, certified_hunt: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from stagpack.edge.wire import hunt_to_proto, spec_to_proto
    from stagpack.v1 import aggregator_pb2

    spec = certified_hunt.spec
    client.stag_status = aggregator_pb2.StagStatus(
        stag_id=spec.stag_id, spec=spec_to_proto(spec), log_height=9, live_intendos=3, executed=1, executed_level=3,
        epochs=[aggregator_pb2.EpochResult(epoch=2, result="no-hunt", at_millis=1000, log_height=5),
                aggregator_pb2.EpochResult(epoch=4, result="hunt", at_millis=2000, log_height=7)],
        hunts=[hunt_to_proto(certified_hunt.certificate, spec, certified_hunt.transcript)],
        accepting=True, committee="available", voided=2,
        cost=aggregator_pb2.SessionCost(sessions=4, steps=11, keyholder_calls=45, partial_decryptions=60, partial_decryption_bytes=2_500_000),
    )
    code, out, _ = run(["stag", "status", spec.stag_id.hex(), "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["voided"] == 2 and document["kind"] == "count" and document["beneficiary"] is None
    assert document["cost"] == {"sessions": 4, "steps": 11, "keyholder_calls": 45, "partial_decryptions": 60,
                                "partial_decryption_bytes": 2_500_000}
    assert [(e["epoch"], e["result"], e["log_height"]) for e in document["epochs"]] == [(2, "no-hunt", 5), (4, "hunt", 7)]
    assert document["log_height"] == 9
    assert [(h["epoch"], h["log_height"], h["executed_weight"]) for h in document["hunts"]] == [(4, 7, 2)]
    code, out, _ = run(["stag", "status", spec.stag_id.hex()], capsys)
    assert code == 0 and "log height 7" in out
    assert "2 voided" in out and "4 sessions, 11 decryption steps, 60 partial decryptions (2.5 MB)" in out


# --- stag create: ranges and keys ---------------------------------------------------------------


def test_parse_duration_millis_accepts_sane_durations_and_refuses_absurd_ones() -> None:
    from stagpack.errors import InvalidInput

    assert [cli.parse_duration_millis(text) for text in ("500ms", "10s", "10", "1.5s", "2m", "1h", " 3 h ")] == [
        500, 10_000, 10_000, 1500, 120_000, 3_600_000, 10_800_000]
    for text in ("-5s", "", "s", "1e3s", "nan", "inf", "1d", "99999999999999999999h", "9999999999999999999ms", "1000000h"):
        with pytest.raises(InvalidInput):
            cli.parse_duration_millis(text)


@pytest.mark.parametrize(
    "arguments, complaint",
    [
        (["--levels", "-1"], "--levels"),
        (["--levels", "0"], "--levels"),
        (["--levels", "1"], "--levels"),
        (["--levels", "8193"], "--levels"),
        (["--levels", "99999999999"], "--levels"),
        (["--levels", "99999999999999999999999"], "--levels"),
        (["--epoch=-5s"], "--epoch"),
        (["--epoch", "0"], "--epoch"),
        (["--epoch", "50ms"], "--epoch"),
        (["--epoch", "99999999999"], "--epoch"),
        (["--epoch", "99999999999999999999h"], "--epoch"),
        (["--deadline=-5s"], "--deadline"),
        (["--deadline", "0"], "--deadline"),
        (["--deadline", "99999999999"], "--deadline"),
        (["--deadline", "99999999999999999999h"], "--deadline"),
        (["--eligible", "zz"], "--eligible"),
        (["--eligible", "ab" * 31], "--eligible"),
        (["--eligible", "00" * 32], "--eligible"),  # a point of small order
        (["--eligible", "ff" * 32], "--eligible"),  # not a canonical encoding
        (["--eligible", "01" + "00" * 31], "--eligible"),  # the neutral element
        (["--eligible", "02" + "00" * 31], "--eligible"),  # not on the curve
        (["--title", "x" * 201], "title"),
    ],
)
def test_stag_create_refuses_out_of_range_input_clearly(
    arguments: list[str], complaint: str, client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["stag", "create", "--kind", "count", "--levels", "10"]
    code, out, errors = run([*base, *arguments], capsys)
    assert code == 2, errors
    assert errors.startswith("error: ") and complaint in errors and "internal error" not in errors and "Traceback" not in errors
    assert not client.created and not out


def test_stag_create_accepts_the_edges_of_the_ranges(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    from stagpack.identity import SigningIdentity

    key = SigningIdentity().verify_key.hex()
    code, out, errors = run(["stag", "create", "--kind", "capital", "--levels", "8192", "--epoch", "100ms",
                             "--deadline", "1h", "--eligible", key, "--eligible", key.upper(), "--json",
                             "--beneficiary", f"{key}:roof.fund-2"], capsys)
    assert code == 0, errors
    (spec,) = client.created
    assert spec.levels == 8192 and spec.epoch_millis == 100 and spec.eligibility == (bytes.fromhex(key),)
    assert (spec.beneficiary.owner, spec.beneficiary.tag) == (bytes.fromhex(key), "roof.fund-2")
    assert spec.deadline_millis - spec.opens_at_millis == pytest.approx(3_600_000, abs=5_000)
    assert json.loads(out)["levels"] == 8192 and json.loads(out)["open"] is False
    assert "warning" not in errors
    code, _, errors = run(["stag", "create", "--kind", "count", "--levels", "2"], capsys)
    assert code == 0, errors


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--kind", "capital"], "--beneficiary PUBLIC_KEY:TAG"),  # a capital stag must say whom it pays
        (["--kind", "capital", "--beneficiary", "ab" * 32], "PUBLIC_KEY:TAG"),
        (["--kind", "capital", "--beneficiary", "02" + "00" * 31 + ":roof"], "--beneficiary key"),
        (["--kind", "capital", "--beneficiary", "VALID:a b"], "--beneficiary tag"),
        (["--kind", "count", "--beneficiary", "VALID:roof"], "count stag moves no money"),
    ],
)
def test_stag_create_refuses_a_missing_or_malformed_beneficiary(
    arguments: list[str], complaint: str, client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from stagpack.identity import SigningIdentity

    key = SigningIdentity().verify_key.hex()
    arguments = [argument.replace("VALID", key) for argument in arguments]
    code, out, errors = run(["stag", "create", "--levels", "10", *arguments], capsys)
    assert code == 2 and complaint in errors and "internal error" not in errors, errors
    assert not client.created and not out


def test_account_commands_sign_transfers_and_print_balances(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from stagpack.accounts import Account, Balance, TransferKind

    transfers: list[tuple[bytes, TransferKind, str, int]] = []

    def transfer(identity: Any, kind: TransferKind, tag: str, amount: int) -> Balance:
        transfers.append((identity.verify_key, kind, tag, amount))
        return Balance(Account(identity.verify_key, tag), 70, 25)

    client.transfer = transfer  # type: ignore[attr-defined]
    client.balance = lambda account: Balance(account, 70, 25)  # type: ignore[attr-defined]
    assert run(["identity", "create", "--out", str(tmp_path / "alice.key")], capsys)[0] == 0
    alice = ["--identity", str(tmp_path / "alice.key")]
    code, out, errors = run(["account", "deposit", *alice, "--tag", "savings", "--amount", "70", "--json"], capsys)
    assert code == 0, errors
    document = json.loads(out)
    assert (document["tag"], document["balance"], document["held"], document["releasable"]) == ("savings", 70, 25, 45)
    ((owner, kind, tag, amount),) = transfers
    assert (kind, tag, amount, owner.hex()) == (TransferKind.DEPOSIT, "savings", 70, document["owner"])
    code, out, errors = run(["account", "balance", "--owner", owner.hex(), "--tag", "savings"], capsys)
    assert code == 0 and "70 (25 held by a live intendo, 45 releasable)" in out, (out, errors)
    for bad, complaint in ((["--amount", "0"], "--amount"), (["--amount", "-3"], "--amount"),
                           (["--amount", str(2**60)], "--amount"), (["--tag", "no spaces", "--amount", "1"], "--tag")):
        arguments = ["account", "release", *alice, *(["--tag", "savings"] if "--tag" not in bad else []), *bad]
        code, _, errors = run(arguments, capsys)
        assert code == 2 and complaint in errors, (bad, errors)
    assert len(transfers) == 1, "refused input never reached the aggregator"
    code, _, errors = run(["account", "balance", "--tag", "savings"], capsys)
    assert code == 2 and "--identity FILE or --owner" in errors


def test_stag_create_warns_that_an_open_stag_does_not_bound_the_validity_oracle(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """DESIGN.md §7: without an eligibility list an operator mints identities, and the
    per-identity budget bounds nothing; the stag is still created, with the warning on stderr
    (stdout stays the result, JSON included)."""
    code, out, errors = run(["stag", "create", "--kind", "count", "--levels", "10", "--json"], capsys)
    assert code == 0, errors
    (spec,) = client.created
    assert spec.eligibility == ()
    assert json.loads(out)["open"] is True
    assert errors.startswith("warning: this stag is open") and "--eligible" in errors


def test_check_verify_key_refuses_what_is_not_a_curve_point() -> None:
    from stagpack.errors import InvalidInput
    from stagpack.identity import SigningIdentity, check_verify_key

    key = SigningIdentity().verify_key
    assert check_verify_key(key) == key
    for bad in (bytes(32), b"\xff" * 32, bytes([1]) + bytes(31), bytes([2]) + bytes(31), key[:31]):
        with pytest.raises(InvalidInput):
            check_verify_key(bad)


# --- the demo reads epoch outcomes as EpochOutcome ---------------------------------------------


def test_epoch_outcomes_cross_the_wire_as_their_value() -> None:
    from stagpack.aggregator.store import EpochOutcome
    from stagpack.edge.wire import epoch_outcome_from_proto
    from stagpack.errors import IntegrityFailure

    for outcome in EpochOutcome:
        assert epoch_outcome_from_proto(outcome.value) is outcome
    with pytest.raises(IntegrityFailure):
        epoch_outcome_from_proto("maybe")


def test_the_demo_service_backend_reads_epoch_outcomes(client: FakeClient) -> None:
    from stagpack.aggregator.store import EpochOutcome
    from stagpack.app.demo import ServiceBackend, _wait_for_epoch
    from stagpack.v1 import aggregator_pb2

    backend = ServiceBackend.__new__(ServiceBackend)  # no deployment: only its client is used
    backend.client = client  # type: ignore[assignment]
    client.stag_status = aggregator_pb2.StagStatus(
        log_height=5, live_intendos=2,
        epochs=[aggregator_pb2.EpochResult(epoch=1, result="committee-unavailable", log_height=5),
                aggregator_pb2.EpochResult(epoch=2, result="no-hunt", log_height=5)],
    )
    view = backend.view(b"s" * 32)
    assert [(epoch, result) for epoch, result, _ in view.epochs] == [(1, EpochOutcome.COMMITTEE_UNAVAILABLE), (2, EpochOutcome.NO_HUNT)]
    assert all(type(result) is EpochOutcome for _, result, _ in view.epochs)

    class Stag:
        stag_id = b"s" * 32
        name = "count"

    assert _wait_for_epoch(backend, Stag()) == view  # type: ignore[arg-type]


# --- where the CLI finds the aggregator; `local` commands without a `local up` -----------------


def _addresses(directory: Path, aggregator: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "addresses.json").write_text(json.dumps({"aggregator": aggregator, "keyholders": []}))


def test_the_default_aggregator_comes_from_the_environment_then_local_up_then_7100(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cli.resolve_aggregator(None) == ("127.0.0.1:7100", "the default")
    _addresses(tmp_path / "var" / "local", "127.0.0.1:7300")  # the cwd is tmp_path
    assert cli.resolve_aggregator(None) == ("127.0.0.1:7300", str(Path("var/local/addresses.json")))
    _addresses(tmp_path / "elsewhere", "127.0.0.1:7400")
    monkeypatch.setenv("STAGPACK_LOCAL_DIR", str(tmp_path / "elsewhere"))
    assert cli.resolve_aggregator(None) == ("127.0.0.1:7400", str(tmp_path / "elsewhere" / "addresses.json"))
    monkeypatch.setenv("STAGPACK_LOCAL_DIR", str(tmp_path / "empty"))
    assert cli.resolve_aggregator(None) == ("127.0.0.1:7100", "the default")
    monkeypatch.setenv("STAGPACK_AGGREGATOR", "10.0.0.1:7100")
    assert cli.resolve_aggregator(None) == ("10.0.0.1:7100", "$STAGPACK_AGGREGATOR")
    assert cli.resolve_aggregator("127.0.0.1:9") == ("127.0.0.1:9", "--aggregator")


def test_a_broken_addresses_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "var" / "local").mkdir(parents=True)
    (tmp_path / "var" / "local" / "addresses.json").write_text("{not json")
    code, _, errors = run(["stag", "list"], capsys)
    assert code == 2 and "addresses.json" in errors and "internal error" not in errors


def test_an_unreachable_aggregator_says_where_its_address_came_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stagpack.app.launcher import free_port

    address = f"127.0.0.1:{free_port()}"
    _addresses(tmp_path / "var" / "local", address)
    code, _, errors = run(["stag", "list"], capsys)
    assert code == 2 and f"(aggregator {address} from var/local/addresses.json)" in errors


def test_help_says_where_the_default_aggregator_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["stag", "list", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "$STAGPACK_AGGREGATOR" in text and "addresses.json" in text and "$STAGPACK_LOCAL_DIR" in text


@pytest.mark.parametrize("command", [["local", "restart", "keyholder-1"], ["local", "status"]])
def test_local_commands_say_when_no_local_up_runs(command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, errors = run([*command, "--dir", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no `stagpack local up` is running" in errors


@pytest.mark.parametrize(
    "arguments, complaint",
    [(["--keyholders", "0"], "--keyholders must be"), (["--keyholders", "4", "--threshold", "2"], "--threshold must be"),
     (["--keyholders", "3", "--threshold", "4"], "--threshold must be"), (["--base-port", "80"], "--base-port must be"),
     (["--base-port", "65534"], "--base-port must be")],
)
def test_local_up_refuses_impossible_shapes_before_starting_anything(
    arguments: list[str], complaint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, errors = run(["local", "up", "--dir", str(tmp_path / "local"), *arguments], capsys)
    assert code == 2 and complaint in errors
    assert not (tmp_path / "local").exists()


def test_local_deployment_takes_fixed_ports_only_when_asked(tmp_path: Path) -> None:
    import socket

    from stagpack.app.launcher import LocalDeployment, LocalDeploymentError, free_port, port_available

    free = LocalDeployment.create(tmp_path / "free", 2, 2)
    assert len({service.port for service in free.services}) == 3
    # two keyholders: the aggregator on base, keyholders on base + 1, + 2, replication on base + 3
    base = next(port for port in (free_port() for _ in range(100)) if all(port_available(p) for p in range(port, port + 4)))
    fixed = LocalDeployment.create(tmp_path / "fixed", 2, 2, base_port=base)
    assert [service.port for service in fixed.services] == [base, base + 1, base + 2]
    assert json.loads(fixed.write_addresses().read_text()) == {
        "aggregator": f"127.0.0.1:{base}", "keyholders": [f"127.0.0.1:{base + 1}", f"127.0.0.1:{base + 2}"]}

    # Hold a port first, then ask for the layout that puts keyholder 1 on it (other processes on
    # this machine cannot take it in between).
    for _ in range(100):
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        if all(port_available(port) for port in (taken - 1, taken + 1, taken + 2)):
            break
        squatter.close()
    else:
        pytest.fail("no free run of four ports on 127.0.0.1")
    with squatter, pytest.raises(LocalDeploymentError, match=f"port {taken} \\(keyholder-1\\)"):
        LocalDeployment.create(tmp_path / "taken", 2, 2, base_port=taken - 1)


def test_a_lock_held_by_another_process_is_not_taken_for_a_local_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pid left in the lock by a supervisor that was killed may belong to anything by now:
    `local restart` must not signal it."""
    import fcntl
    import os

    directory = tmp_path / "local"
    directory.mkdir()
    with open(directory / "local-up.lock", "w") as lock:
        lock.write(f"{os.getpid()}\n")  # this test process: not a `stagpack local up`
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, errors = run(["local", "restart", "keyholder-1", "--dir", str(directory)], capsys)
    assert code == 2 and "not by a running `stagpack local up`" in errors
    assert not (directory / "control").exists(), "no request was left behind"


def test_coordinator_and_aggregator_keys_are_created_once_and_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a deployment configures keyholders and the ceremony with: the same key on every run,
    read back from the identity file the command created (the oracle: the file's own key)."""
    from stagpack.participant.identity_file import AGGREGATOR, COORDINATOR, read_identity_file

    path = tmp_path / "coordinator.key"
    code, first, errors = run(["coordinator", "key", "--identity", str(path)], capsys)
    assert code == 0, errors
    assert first.strip() == read_identity_file(path, COORDINATOR).verify_key.hex()
    code, again, _ = run(["coordinator", "key", "--identity", str(path), "--json"], capsys)
    assert code == 0 and json.loads(again) == {"public_key": first.strip(), "file": str(path)}
    monkeypatch.setenv("STAGPACK_AGGREGATOR_DATA_DIR", str(tmp_path / "aggregator"))
    code, printed, errors = run(["aggregator", "key"], capsys)
    assert code == 0, errors
    assert printed.strip() == read_identity_file(tmp_path / "aggregator" / "identity.json", AGGREGATOR).verify_key.hex()
    assert printed.strip() != first.strip()


# --- refunds and fees -----------------------------------------------------------------------


def test_stag_create_with_a_refund_pool_and_fees_signs_the_funding(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The funder's identity signs the stag id; the terms reach the aggregator as given, and
    refused combinations never contact it."""
    from stagpack.identity import SigningIdentity
    from stagpack.participant.identity_file import read_identity_file
    from stagpack.terms import RefundMode

    assert run(["identity", "create", "--out", str(tmp_path / "dana.key")], capsys)[0] == 0
    dana = read_identity_file(tmp_path / "dana.key")
    key = SigningIdentity().verify_key.hex()
    base = ["stag", "create", "--kind", "capital", "--levels", "11", "--beneficiary", f"{key}:fund"]
    refund = ["--deadline", "1h", "--refund-pool", "50", "--funder", str(tmp_path / "dana.key"), "--refund-from", "bonus"]
    fees = ["--fee-submission", "1", "--fee-member", "2", "--fee-committee", f"{key}:fees", "--fee-operator", f"{key}:ops"]
    code, out, errors = run([*base, *refund, "--bonus", "5", *fees, "--fee-committee-percent", "40"], capsys)
    assert code == 0, errors
    assert "refund pool 50: if the deadline passes without a hunt, 5 to each counted intendo" in out
    assert "fees: 1 per submission, 2 per executed member (40 % to the committee" in out
    (spec,) = client.created
    assert spec.refund is not None and spec.fees is not None
    assert (spec.refund.funder.owner, spec.refund.funder.tag, spec.refund.pool, spec.refund.mode, spec.refund.bonus) == (
        dana.verify_key, "bonus", 50, RefundMode.FIXED, 5)
    assert spec.refund.returns_to == spec.refund.funder
    assert (spec.fees.submission, spec.fees.member, spec.fees.committee.tag, spec.fees.operator.tag, spec.fees.committee_percent) == (
        1, 2, "fees", "ops", 40)
    for arguments, complaint in (
        ([*base, *refund, "--bonus", "6"], "pool of at least 60"),  # 6 × 10 intendos is not funded
        ([*base, "--refund-pool", "50", "--funder", str(tmp_path / "dana.key"), "--refund-from", "bonus"], "--deadline"),
        ([*base, "--deadline", "1h", "--refund-pool", "50"], "--funder"),
        ([*base, "--bonus", "5"], "describe a --refund-pool"),
        (["stag", "create", "--kind", "count", "--levels", "11", *refund], "only a capital stag"),
        ([*base, "--fee-submission", "1"], "--fee-committee"),
        ([*base, *fees[:4]], "--fee-committee"),
        ([*base, *fees, "--fee-committee-percent", "101"], "percentage"),
        ([*base, "--fee-submission", "0", "--fee-member", "0", *fees[4:]], "no fee"),
    ):
        code, out, errors = run(arguments, capsys)
        assert code == 2 and complaint in errors and "Traceback" not in errors, (arguments, errors)
    assert len(client.created) == 1


def test_stag_status_shows_the_promised_bonus_and_the_settlement(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    """Before joining, a participant reads the promise (pool, fixed or pro rata) and the pool's
    state; after the deadline, what the settlement paid."""
    from stagpack import codec
    from stagpack.accounts import Account
    from stagpack.edge.wire import settlement_to_proto, spec_to_proto
    from stagpack.encoding import StagKind
    from stagpack.identity import SigningIdentity
    from stagpack.log import Refund, SettlementCertificate, SettlementOutcome
    from stagpack.stag import StagSpec
    from stagpack.terms import RefundMode, RefundTerms
    from stagpack.v1 import aggregator_pb2

    funder = Account(SigningIdentity().verify_key, "bonus")
    spec = StagSpec.new(
        committee=client.committee_id, kind=StagKind.CAPITAL, levels=11, deadline_millis=10**13,
        beneficiary=Account(SigningIdentity().verify_key, "fund"), refund=RefundTerms(funder, 30, RefundMode.PRO_RATA, 0, funder),
    )
    client.stag_status = aggregator_pb2.StagStatus(
        stag_id=spec.stag_id, spec=spec_to_proto(spec), pool=aggregator_pb2.RefundPool(funded=30, remaining=30, state="open"),
    )
    code, out, _ = run(["stag", "status", spec.stag_id.hex(), "--json"], capsys)
    document = json.loads(out)["refund"]
    assert code == 0 and (document["pool"], document["mode"], document["bonus"], document["state"]) == (30, "pro-rata", None, "open")
    alice = Account(SigningIdentity().verify_key, "main")
    settlement = SettlementCertificate(SettlementOutcome(spec.stag_id, spec.closing_epoch, 6, bytes(32), (Refund(b"i" * 32, alice, 30),), 0), ())
    client.stag_status = aggregator_pb2.StagStatus(
        stag_id=spec.stag_id, spec=spec_to_proto(spec), pool=aggregator_pb2.RefundPool(funded=30, remaining=0, state="settled"),
        settlement=settlement_to_proto(settlement), refunded=1,
    )
    code, out, _ = run(["stag", "status", spec.stag_id.hex()], capsys)
    assert code == 0 and "shared by weight among the intendos counted at the deadline; settled: 30 paid to 1 intendos, 0 returned" in out
    assert codec.decode(SettlementCertificate, settlement_to_proto(settlement).certificate) == settlement


# --- composed hunts -----------------------------------------------------------------------------


def test_stag_create_with_a_trigger_names_it_in_the_spec(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    trigger = os.urandom(32)
    code, out, errors = run(["stag", "create", "--kind", "count", "--levels", "10", "--trigger", trigger.hex()], capsys)
    assert code == 0, errors
    (spec,) = client.created
    assert spec.trigger == trigger and f"triggered by stag {trigger.hex()}" in out
    for bad in ("zz", "ab" * 31):
        code, out, errors = run(["stag", "create", "--kind", "count", "--levels", "10", "--trigger", bad], capsys)
        assert code == 2 and "--trigger" in errors and not out
    code, out, errors = run(["stag", "create", "--kind", "count", "--levels", "10", "--hook", "0x" + "5f" * 20, "--json"], capsys)
    assert code == 0 and client.created[-1].hook == b"\x5f" * 20 and json.loads(out)["hook"] == "0x" + "5f" * 20
    code, out, errors = run(["stag", "create", "--kind", "count", "--levels", "10", "--hook", "0x1234"], capsys)
    assert code == 2 and "--hook" in errors and len(client.created) == 2


# --- designated-verifier proofs: prove, check-proof, forge-proof ---------------------------------


@pytest.mark.parametrize("anonymous", [False, True])
def test_prove_check_and_forge_a_designated_verifier_proof(
    anonymous: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The signer proves to fay; fay's check accepts; bea, not designated, is refused; fay forges
    one naming bea instead, which checks exactly like the real one (the deniability); the
    claimed threshold travels with the proof, marked as not proven."""
    import hashlib

    from stagpack import codec
    from stagpack.envelope import IntendoEnvelope
    from stagpack.participant.identity_file import create_identity_file
    from stagpack.shield.group import Point, Scalar
    from stagpack.shield.ring import Ring

    people = {name: create_identity_file(tmp_path / f"{name}.key") for name in ("ann", "bea", "fay")}
    stag_id, digest = hashlib.sha256(b"stag").digest(), hashlib.sha256(b"ciphertext").digest()
    if anonymous:
        ring = Ring(stag_id, sorted(person.verify_key for person in people.values()))
        committee_key = Point.base_times(Scalar.random()).to_bytes()
        envelope = IntendoEnvelope.sign_anonymously(ring, people["ann"], committee_key, digest, 2**40)
    else:
        envelope = IntendoEnvelope.sign(people["ann"], stag_id, digest, 1, 2**40)
    (tmp_path / "ann.receipt").write_bytes(codec.encode(envelope.statement))
    code, out, err = run(["identity", "card", "fay.key"], capsys)
    assert code == 0, err
    fay_card = out.strip()
    # a bare key, or a card whose key nobody signed for, is refused: nobody could forge such a proof
    code, _, err = run(["prove", "--identity", "ann.key", "--receipt", "ann.receipt", "--verifier",
                        people["fay"].verify_key.hex(), "--out", "p"], capsys)
    assert code == 2 and "error:" in err
    code, out, err = run(["prove", "--identity", "ann.key", "--receipt", "ann.receipt", "--verifier",
                          fay_card, "--claim", "at least 3 others", "--out", "p", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["bytes"] == 32 * 4
    code, out, err = run(["check-proof", "p", "--identity", "fay.key", "--offline", "--json"], capsys)
    assert code == 0, err
    document = json.loads(out)
    assert (document["signer"], document["anonymous"], document["claimed_threshold"]) == (people["ann"].verify_key.hex(), anonymous, "at least 3 others")
    code, out, err = run(["check-proof", "p", "--identity", "fay.key", "--offline"], capsys)
    assert "NOT proven" in out
    code, _, err = run(["check-proof", "p", "--identity", "bea.key", "--offline"], capsys)
    assert code == 2 and "not designated to you" in err
    # fay forges: in an anonymous stag for any member (here bea); in an ordinary one, whose
    # statement names its signer, the same claim
    claimed = people["bea" if anonymous else "ann"].verify_key.hex()
    code, _, err = run(["forge-proof", "p", "--identity", "fay.key", "--signer", claimed, "--out", "q"], capsys)
    assert code == 0, err
    code, out, err = run(["check-proof", "q", "--identity", "fay.key", "--offline", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["signer"] == claimed
    if not anonymous:
        code, _, err = run(["forge-proof", "p", "--identity", "fay.key", "--signer", people["bea"].verify_key.hex(), "--out", "q"], capsys)
        assert code == 2 and "names its signer" in err
    code, _, err = run(["forge-proof", "p", "--identity", "bea.key", "--out", "r"], capsys)  # bea is not a verifier of it
    assert code == 2 and "every designated verifier" in err
    tampered = bytearray((tmp_path / "p").read_bytes())
    tampered[-5] ^= 1
    (tmp_path / "t").write_bytes(bytes(tampered))
    code, _, err = run(["check-proof", "t", "--identity", "fay.key", "--offline"], capsys)
    assert code == 2 and "error:" in err
    # bea cannot prove ann's intendo: the statement names ann (or ann's key image), not bea
    code, _, err = run(["prove", "--identity", "bea.key", "--receipt", "ann.receipt", "--verifier", fay_card, "--out", "s"], capsys)
    assert code == 2 and "does not match the signer key (or key image)" in err


def test_a_proof_cannot_be_designated_to_a_key_nobody_can_sign_for() -> None:
    """Review finding: a coercer had the signer name a verifier key with no known secret (a hash
    of a public string); nobody could have forged that proof, so anyone could check it — public
    evidence. Verifiers are now named by cards (the key signed by itself), checked on both ends."""
    import hashlib

    from stagpack.envelope import IntendoEnvelope
    from stagpack.errors import InvalidSignature
    from stagpack.identity import SigningIdentity
    from stagpack.participant.proofs import IntendoProof, VerifierCard, check_intendo_proof, make_verifier_card, prove_intendo
    from stagpack.shield.group import hash_to_point

    signer, friend = SigningIdentity(), SigningIdentity()
    statement = IntendoEnvelope.sign(signer, hashlib.sha256(b"s").digest(), hashlib.sha256(b"c").digest(), 1, 2**40).statement
    nobodys = hash_to_point("coercer", b"nothing up my sleeve").to_bytes()
    with pytest.raises(InvalidSignature):  # no card can be made for it
        prove_intendo(signer, statement, [VerifierCard(nobodys, bytes(64))], anonymous=False)
    proof = prove_intendo(signer, statement, [make_verifier_card(friend)], anonymous=False)
    check_intendo_proof(proof, friend.verify_key)
    forged_card = IntendoProof(proof.statement, proof.claim, (VerifierCard(friend.verify_key, bytes(64)),), proof.proof)
    with pytest.raises(InvalidSignature):
        check_intendo_proof(forged_card, friend.verify_key)
