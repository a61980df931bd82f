"""`stagpack local up` as a user runs it: a supervisor process with its services on fixed ports,
the addresses file the other commands read, `local restart` and `local status` through its
control files, and SIGTERM/SIGINT stopping every service, during the ceremony or after it.

One 2-of-3 deployment serves the module (its ceremony takes seconds); tests that stop it leave
the next test to start it again on the same directory, which reuses the committee.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from stagpack.app.launcher import LocalControl, LocalDeploymentError, health_status, port_available

pytestmark = [pytest.mark.processes, pytest.mark.slow]

T = TypeVar("T")
KEYHOLDERS, THRESHOLD = 3, 2
STARTUP_SECONDS = 180.0  # a ceremony of three keyholders takes ~10 s on 2 cores; a restart a few
STOP_SECONDS = 90.0


def poll(condition: Callable[[], T], what: str, seconds: float, interval: float = 0.1) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def alive(pid: int) -> bool:
    """Whether `pid` is a running stagpack process (not a zombie, not a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return b"stagpack" in command and "\nState:\tZ" not in status


def free_base_port(count: int) -> int:
    """A port p such that p..p+count-1 are all free now (bounded search)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000)
        if all(port_available(port) for port in range(base, base + count)):
            return base
    raise AssertionError("no run of free ports found")


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without any aggregator address or local directory of its own."""
    env = {key: value for key, value in os.environ.items() if key not in ("STAGPACK_AGGREGATOR", "STAGPACK_LOCAL_DIR")}
    return {**env, "STAGPACK_DEBUG": "1", **extra}


def stagpack(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stagpack", *arguments], cwd=cwd, env=env or environment(),
                          capture_output=True, text=True, timeout=timeout)


class LocalUp:
    """A `stagpack local up` process run by the test."""

    def __init__(self, directory: Path, base_port: int) -> None:
        self.directory = directory
        self.base_port = base_port
        self.control = LocalControl(directory)
        self.process: subprocess.Popen[bytes] | None = None
        self.output = directory.parent / f"{directory.name}-local-up.out"
        self.children: set[int] = set()  # every service pid seen, for the cleanup

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.output, "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stagpack", "local", "up", "--dir", str(self.directory), "--keyholders", str(KEYHOLDERS),
                 "--threshold", str(THRESHOLD), "--base-port", str(self.base_port)],
                stdout=output, stderr=subprocess.STDOUT, env=environment(),
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def state(self) -> dict[str, Any]:
        state = self.control.state()
        self.children |= {int(service["pid"]) for service in state["services"] if service["pid"]}
        return state

    def pids(self) -> dict[str, int]:
        return {service["name"]: int(service["pid"]) for service in self.state()["services"]}

    def serving(self) -> bool:
        if not self.running:
            assert self.process is not None
            raise AssertionError(f"local up exited with {self.process.returncode}:\n{self.output.read_text()[-3000:]}")
        try:
            state = self.state()
        except LocalDeploymentError:
            return False  # not locked and written yet
        return state["phase"] == "serving" and all(
            service["pid"] and health_status(service["address"]) == "SERVING" for service in state["services"]
        )

    def ensure_serving(self) -> LocalUp:
        if not self.running:
            self.start()
        poll(self.serving, "local up to serve", STARTUP_SECONDS, interval=0.25)
        return self

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(STOP_SECONDS)

    def cleanup(self) -> None:
        """Leave nothing running, whatever happened in the tests."""
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def local_up(scratch: Callable[[str], Path]) -> Iterator[LocalUp]:
    # the aggregator, the keyholders and the aggregator's internal replication port
    deployment = LocalUp(scratch("local-up") / "var" / "local", free_base_port(KEYHOLDERS + 2))
    try:
        yield deployment
    finally:
        deployment.cleanup()


def test_local_up_refuses_ports_in_use(tmp_path: Path) -> None:
    base = free_base_port(KEYHOLDERS + 2)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        started = time.monotonic()
        result = stagpack("local", "up", "--dir", str(tmp_path / "local"), "--keyholders", "3", "--threshold", "2",
                          "--base-port", str(base))
    assert result.returncode == 2, result.stderr
    assert f"port {base + 2} (keyholder-2)" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 60
    assert not list((tmp_path / "local").glob("*.log")), "no service was started"


def test_services_listen_on_the_fixed_ports_and_addresses_json_says_where(local_up: LocalUp) -> None:
    local_up.ensure_serving()
    base = local_up.base_port
    addresses = json.loads((local_up.directory / "addresses.json").read_text())
    assert addresses == {"aggregator": f"127.0.0.1:{base}",
                         "keyholders": [f"127.0.0.1:{base + index}" for index in range(1, KEYHOLDERS + 1)]}
    for address in [addresses["aggregator"], *addresses["keyholders"]]:
        assert health_status(address) == "SERVING"
    status = stagpack("local", "status", "--dir", str(local_up.directory), "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["phase"] == "serving" and document["healthy"] is True
    assert {service["name"]: service["address"] for service in document["services"]} == {
        "aggregator": f"127.0.0.1:{base}", **{f"keyholder-{i}": f"127.0.0.1:{base + i}" for i in range(1, KEYHOLDERS + 1)}}


def test_the_cli_finds_the_aggregator_of_local_up_without_being_told(local_up: LocalUp, tmp_path: Path) -> None:
    local_up.ensure_serving()
    # from $STAGPACK_LOCAL_DIR
    created = stagpack("stag", "create", "--kind", "count", "--levels", "5", "--title", "found it", "--json",
                       env=environment(STAGPACK_LOCAL_DIR=str(local_up.directory)), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    stag_id = json.loads(created.stdout)["stag_id"]
    # from var/local under the working directory (the fixture's directory is <scratch>/var/local)
    listed = stagpack("stag", "list", "--json", cwd=local_up.directory.parent.parent)
    assert listed.returncode == 0, listed.stderr
    assert {stag["stag_id"]: stag["title"] for stag in json.loads(listed.stdout)["stags"]}[stag_id] == "found it"
    # $STAGPACK_AGGREGATOR comes first, and the error says where the address came from
    dead = f"127.0.0.1:{free_base_port(1)}"
    refused = stagpack("stag", "list", cwd=local_up.directory.parent.parent, env=environment(STAGPACK_AGGREGATOR=dead))
    assert refused.returncode == 2 and f"aggregator {dead} from $STAGPACK_AGGREGATOR" in refused.stderr


def test_an_anonymous_stag_and_a_deniable_proof_through_the_cli(local_up: LocalUp, tmp_path: Path) -> None:
    """An anonymous count stag over gRPC, as users run it: nobody is named until the hunt, which
    names exactly its members (its certificate verified by `watch`); a member proves to a friend,
    who checks it with the aggregator and then forges one naming someone else, equally valid."""
    from stagpack.participant.identity_file import create_identity_file

    local_up.ensure_serving()
    env = environment(STAGPACK_LOCAL_DIR=str(local_up.directory))
    names = ["ann", "bea", "cai", "fay"]
    keys = {name: create_identity_file(tmp_path / f"{name}.key").verify_key.hex() for name in names}
    eligible = [argument for name in names for argument in ("--eligible", keys[name])]
    created = stagpack("stag", "create", "--kind", "count", "--levels", "6", "--epoch", "4s", "--anonymous", *eligible,
                       "--title", "come out if 2 others do", "--json", env=env)
    assert created.returncode == 0, created.stderr
    stag_id = json.loads(created.stdout)["stag_id"]
    intendos = {}
    for name in ("ann", "bea", "cai"):
        submitted = stagpack("submit", "--identity", str(tmp_path / f"{name}.key"), "--stag", stag_id, "--others", "2",
                             "--receipt", str(tmp_path / f"{name}.receipt"), "--json", env=env)
        assert submitted.returncode == 0, submitted.stderr
        intendos[name] = json.loads(submitted.stdout)["intendo_id"]
        if name == "ann":  # one intendo that needs two others: no hunt can have fired yet
            status = stagpack("stag", "status", stag_id, "--json", env=env)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["anonymous"] is True and json.loads(status.stdout)["hunts"] == []
            assert not any(keys[other] in status.stdout for other in names)
    card = stagpack("identity", "card", str(tmp_path / "fay.key"), env=env)
    assert card.returncode == 0, card.stderr
    proved = stagpack("prove", "--identity", str(tmp_path / "ann.key"), "--receipt", str(tmp_path / "ann.receipt"),
                      "--verifier", card.stdout.strip(), "--claim", "I will if 2 others do", "--out", str(tmp_path / "ann.proof"), env=env)
    assert proved.returncode == 0, proved.stderr
    checked = stagpack("check-proof", str(tmp_path / "ann.proof"), "--identity", str(tmp_path / "fay.key"), "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert (document["signer"], document["intendo_id"], document["anonymous"]) == (keys["ann"], intendos["ann"], True)
    assert document["intendo_status"] in ("awaiting-validation", "counted", "executed")
    not_designated = stagpack("check-proof", str(tmp_path / "ann.proof"), "--identity", str(tmp_path / "bea.key"), "--offline", env=env)
    assert not_designated.returncode != 0 and "not designated to you" in not_designated.stderr
    forged = stagpack("forge-proof", str(tmp_path / "ann.proof"), "--identity", str(tmp_path / "fay.key"), "--signer", keys["bea"],
                      "--out", str(tmp_path / "forged.proof"), env=env)
    assert forged.returncode == 0, forged.stderr
    recheck = stagpack("check-proof", str(tmp_path / "forged.proof"), "--identity", str(tmp_path / "fay.key"), "--json", env=env)
    assert recheck.returncode == 0, recheck.stderr
    assert json.loads(recheck.stdout)["signer"] == keys["bea"]  # as valid as the real one: fay cannot convince anyone
    watched = stagpack("watch", "--stag", stag_id, "--count", "1", "--timeout", "150", "--json", env=env, timeout=180)
    assert watched.returncode == 0, watched.stderr
    (hunt,) = [json.loads(line) for line in watched.stdout.splitlines()]
    assert sorted(member["member"] for member in hunt["members"]) == sorted(keys[name] for name in ("ann", "bea", "cai"))
    assert sorted(member["intendo_id"] for member in hunt["members"]) == sorted(intendos.values())


def test_local_restart_restarts_one_keyholder(local_up: LocalUp) -> None:
    before = local_up.ensure_serving().pids()
    result = stagpack("local", "restart", "keyholder-2", "--dir", str(local_up.directory), "--json", "--timeout", "120", timeout=150)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    after = local_up.pids()
    assert answer["ok"] and answer["previous_pid"] == before["keyholder-2"] and answer["pid"] == after["keyholder-2"]
    assert after["keyholder-2"] != before["keyholder-2"] and not alive(before["keyholder-2"])
    assert {name: pid for name, pid in after.items() if name != "keyholder-2"} == {
        name: pid for name, pid in before.items() if name != "keyholder-2"}, "the others kept running"
    assert health_status(f"127.0.0.1:{local_up.base_port + 2}") == "SERVING", "keys reload from the sealed store"

    unknown = stagpack("local", "restart", "keyholder-9", "--dir", str(local_up.directory))
    assert unknown.returncode == 2 and "no service named 'keyholder-9'" in unknown.stderr


def test_sigterm_stops_every_service(local_up: LocalUp) -> None:
    services = local_up.ensure_serving().pids()
    assert all(alive(pid) for pid in services.values())
    assert local_up.stop(signal.SIGTERM) == 0
    assert not [name for name, pid in services.items() if alive(pid)], "services outlived local up"
    assert not (local_up.directory / "addresses.json").exists()
    result = stagpack("local", "restart", "keyholder-1", "--dir", str(local_up.directory))
    assert result.returncode == 2 and "no `stagpack local up` is running" in result.stderr


def test_sigint_stops_every_service(local_up: LocalUp) -> None:
    services = local_up.ensure_serving().pids()  # again on the same directory: no new ceremony
    assert local_up.stop(signal.SIGINT) == 0
    assert not [name for name, pid in services.items() if alive(pid)], "services outlived local up"


def test_sigterm_during_the_ceremony_stops_every_service(tmp_path: Path) -> None:
    deployment = LocalUp(tmp_path / "local", 0)
    try:
        deployment.start()

        def ceremony_running() -> dict[str, int] | None:
            assert deployment.running, deployment.output.read_text()
            try:
                state = deployment.state()
            except LocalDeploymentError:
                return None
            assert state["phase"] != "serving", "the ceremony finished before the test could interrupt it"
            pids = {service["name"]: service["pid"] for service in state["services"]}
            return pids if all(pids.values()) else None  # recorded from the ceremony's first step on

        services = poll(ceremony_running, "the ceremony to start", STARTUP_SECONDS)
        assert deployment.stop(signal.SIGTERM) == 0
        assert not [name for name, pid in services.items() if alive(pid)], "services outlived local up"
        assert "received SIGTERM" in deployment.output.read_text()
    finally:
        deployment.cleanup()
