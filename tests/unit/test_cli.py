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
