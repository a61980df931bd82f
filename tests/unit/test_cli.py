"""The `stagpack` command line without services: exit codes, output documents and input checks.

Commands that talk to an aggregator get a stand-in client (`FakeClient`) that answers with the
same protobuf messages the aggregator sends and refuses specs as the wire and the aggregator do.
"""

from __future__ import annotations

import argparse
import json
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

    def create_stag(self, spec: Any) -> bytes:
        from stagpack.edge.wire import spec_from_proto, spec_to_proto

        received = spec_from_proto(spec_to_proto(spec))
        received.validate(self.context.row_width, self.committee_id)
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
