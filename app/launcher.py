"""Run the deployment topology as local processes on loopback ports.

The same topology as deploy/compose.yaml — n keyholder processes and one aggregator, each with
its own data directory — started as `python -m stagpack … serve` child processes. The launcher
then runs the key ceremony as coordinator and hands the committee to the aggregator. Used by
`stagpack local up`, by `make demo` and by the process-level tests (which kill -9 and restart
individual services).

Ports: free ones by default; with `base_port` the aggregator listens on base_port and keyholder
i on base_port + i (`stagpack local up` defaults to 7100).

`LocalSupervisor` is `stagpack local up`: it runs a deployment until SIGTERM or SIGINT, and
serves control requests from other processes (`stagpack local restart`, `local status`) through
files in the deployment directory:

    local-up.lock    held (flock) by the running supervisor; it contains the supervisor's pid
    local-up.json    the supervisor's state: phase, and each service's address, pid and log
    addresses.json   {"aggregator": "127.0.0.1:7100", "keyholders": [...]}: where the CLI finds
                     the aggregator by default
    control/         <id>.request files, answered by <id>.response files; a request is followed
                     by SIGUSR1 to the supervisor, which also looks every second
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stagpack.edge.remote import RemoteKeyholder
from stagpack.dkg import CommitteeBundle, run_ceremony
from stagpack.fhe import FheContext
from stagpack.edge.wire import bundle_exists, load_bundle_files, save_bundle
from stagpack.participant.identity_file import AGGREGATOR, COORDINATOR, load_or_create_identity_file, read_identity_file
from stagpack.errors import InvalidInput, StagpackError

Progress = Callable[[str, int, int], None]
STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0
ADDRESSES_FILE = "addresses.json"
STATE_FILE = "local-up.json"
LOCK_FILE = "local-up.lock"
CONTROL_DIRECTORY = "control"


class LocalDeploymentError(StagpackError):
    """A local deployment cannot do what was asked: a port is taken, no `local up` runs in the
    directory, a restart failed or was not answered in time."""


class ServiceFailed(LocalDeploymentError, RuntimeError):
    """A service process exited while it was awaited, or the wait was abandoned."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_available(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now. SO_REUSEADDR as gRPC sets it, so a
    port whose old connections linger in TIME_WAIT counts as available, one in use does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_json_atomically(path: Path, document: object) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)


def read_addresses(directory: str | Path) -> dict[str, Any] | None:
    """The addresses `stagpack local up` wrote in `directory` (None if there are none)."""
    path = Path(directory) / ADDRESSES_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise InvalidInput(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("aggregator"), str):
        raise InvalidInput(f"{path} does not name an aggregator address")
    return document


def health_status(address: str, timeout: float = 2.0) -> str | None:
    """The server's overall health ("SERVING", "NOT_SERVING"), or None if it does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return None
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


@dataclass
class Service:
    name: str
    kind: str  # "keyholder" or "aggregator"
    port: int
    config_path: Path
    log_path: Path
    environment: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "stagpack"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.program, self.kind, "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.environment},
        )
        log.close()

    def wait_until(
        self, predicate: Callable[[str | None], bool], seconds: float = STARTUP_SECONDS, abort: threading.Event | None = None
    ) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with code {self.process.returncode}; see {self.log_path}")
            if predicate(health_status(self.address)):
                return
            if abort is not None and abort.is_set():
                raise ServiceFailed(f"gave up waiting for {self.name}: shutting down")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not become ready within {seconds:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no flushing beyond what was committed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        """SIGTERM: the service stops accepting calls, finishes running ones and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the process to exit until `deadline` (time.monotonic), then kill -9 it."""
        if self.process is None:
            return
        try:
            self.process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self.terminate()
        self.wait_stopped(time.monotonic() + timeout)


@dataclass
class LocalDeployment:
    """n keyholders and an aggregator as processes under `directory`."""

    directory: Path
    keyholders: list[Service] = field(default_factory=list)
    aggregator: Service | None = None
    threshold: int = 0
    bundle: CommitteeBundle | None = None
    fault_bound: int | None = None  # the committee's f (default 1 where n > t)

    @classmethod
    def create(
        cls,
        directory: str | Path,
        keyholders: int,
        threshold: int | None = None,
        *,
        tick_millis: int = 300,
        log_format: str = "json",
        extra_environment: dict[str, str] | None = None,
        base_port: int | None = None,
        fault_bound: int | None = None,
    ) -> LocalDeployment:
        """Write the services' configurations under `directory`, with the coordinator's and the
        aggregator's identities (the keyholders serve those two keys only). Ports are free ones
        unless `base_port` is given (not 0): then the aggregator listens on base_port, keyholder
        i on base_port + i and the aggregator's internal replication port on base_port + n + 1,
        and every one of them must be available now."""
        if base_port:
            aggregator_port, ports = base_port, [base_port + index for index in range(1, keyholders + 1)]
            replication_port = base_port + keyholders + 1
            if not 1 <= base_port <= 65535 - keyholders - 1:
                raise InvalidInput(f"the base port must be in 1..{65534 - keyholders} for {keyholders} keyholders; got {base_port}")
            names = ["aggregator", *(f"keyholder-{index}" for index in range(1, keyholders + 1)), "replication"]
            taken = [
                f"{port} ({name})" for name, port in zip(names, [aggregator_port, *ports, replication_port]) if not port_available(port)
            ]
            if taken:
                raise LocalDeploymentError(
                    f"port{'s' if len(taken) > 1 else ''} {', '.join(taken)} on 127.0.0.1 "
                    f"{'are' if len(taken) > 1 else 'is'} in use (or not allowed); stop what holds "
                    f"{'them' if len(taken) > 1 else 'it'} or choose another base port (0 picks free ports)"
                )
        else:
            aggregator_port = free_port()
            ports = [free_port() for _ in range(keyholders)]
            replication_port = free_port()
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        deployment = cls(directory, threshold=threshold or keyholders, fault_bound=fault_bound)
        coordinator = load_or_create_identity_file(deployment.coordinator_path, COORDINATOR)
        aggregator_identity = load_or_create_identity_file(deployment.aggregator_identity_path, AGGREGATOR)
        environment = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra_environment or {})}
        for index, port in enumerate(ports, start=1):
            name = f"keyholder-{index}"
            keyholder_config = {
                "name": name,
                "listen": f"127.0.0.1:{port}",
                "data_dir": str(directory / name),
                "aggregator": f"127.0.0.1:{replication_port}",
                "coordinator_key": coordinator.verify_key.hex(),
                "sealing": "interactive",
                "logging": {"format": log_format},
            }
            path = directory / f"{name}.json"
            path.write_text(json.dumps(keyholder_config, indent=2))
            deployment.keyholders.append(
                Service(name, "keyholder", port, path, directory / f"{name}.log",
                        {**environment, "STAGPACK_PASSPHRASE": f"local passphrase of {name}"})
            )
        del aggregator_identity  # the aggregator loads it itself from its data directory
        config: dict[str, object] = {
            "listen": f"127.0.0.1:{aggregator_port}",
            "replication_listen": f"127.0.0.1:{replication_port}",
            "data_dir": str(directory / "aggregator"),
            "keyholders": [service.address for service in deployment.keyholders],
            "tick_millis": tick_millis,
            "logging": {"format": log_format},
        }
        path = directory / "aggregator.json"
        path.write_text(json.dumps(config, indent=2))
        deployment.aggregator = Service("aggregator", "aggregator", aggregator_port, path, directory / "aggregator.log", environment)
        return deployment

    @property
    def committee_directory(self) -> Path:
        return self.directory / "aggregator" / "committee"

    @property
    def coordinator_path(self) -> Path:
        """The ceremony coordinator's identity (the keyholders' configurations name its key)."""
        return self.directory / "coordinator.key"

    @property
    def aggregator_identity_path(self) -> Path:
        """The aggregator's identity, in its data directory (the transcript names its key)."""
        return self.directory / "aggregator" / "identity.json"

    def start(self, progress: Progress | None = None, *, aggregator: bool = True) -> CommitteeBundle:
        """Start every process, run the ceremony if there is no committee yet, wait until the
        aggregator serves. With `aggregator=False` only the keyholders run (a test then plays
        the aggregator itself, on the configured address)."""
        assert self.aggregator is not None
        try:
            for service in [*self.keyholders, *([self.aggregator] if aggregator else [])]:
                service.start()
            for service in self.keyholders:
                service.wait_until(lambda status: status is not None)
            if bundle_exists(self.committee_directory):
                self.bundle = load_bundle_files(self.committee_directory)
            else:
                coordinator = read_identity_file(self.coordinator_path, COORDINATOR)
                aggregator_key = read_identity_file(self.aggregator_identity_path, AGGREGATOR).verify_key
                peers = [RemoteKeyholder(service.address, coordinator, 0, timeout_seconds=600) for service in self.keyholders]
                self.bundle = run_ceremony(
                    FheContext(), peers, self.threshold, progress, aggregator_key=aggregator_key,
                    coordinator_key=coordinator.verify_key, fault_bound=self.fault_bound,
                )
                save_bundle(self.bundle, self.committee_directory)
            if aggregator:
                self.aggregator.wait_until(lambda status: status == "SERVING")
        except BaseException:
            self.stop()  # leave no process behind
            raise
        return self.bundle

    def service(self, name: str) -> Service:
        for service in [*self.keyholders, self.aggregator]:
            if service is not None and service.name == name:
                return service
        raise KeyError(name)

    @property
    def services(self) -> list[Service]:
        """The aggregator first, then keyholders 1..n."""
        return [service for service in [self.aggregator, *self.keyholders] if service is not None]

    def addresses(self) -> dict[str, Any]:
        assert self.aggregator is not None
        return {"aggregator": self.aggregator.address, "keyholders": [service.address for service in self.keyholders]}

    def write_addresses(self) -> Path:
        """<directory>/addresses.json, where the CLI finds the aggregator by default."""
        path = self.directory / ADDRESSES_FILE
        write_json_atomically(path, self.addresses())
        return path

    def restart(self, name: str, *, ready: bool = True, abort: threading.Event | None = None) -> None:
        """Stop the service gracefully if it runs, start it again and (with `ready`) wait until
        it serves. A service that was killed just starts again."""
        service = self.service(name)
        service.stop()
        service.start()
        if ready:
            service.wait_until(lambda status: status == "SERVING", abort=abort)

    def stop(self) -> None:
        """SIGTERM to the aggregator first (no new sessions while keyholders go), then to every
        keyholder at once; whatever has not exited within STOP_SECONDS is killed."""
        if self.aggregator is not None:
            self.aggregator.stop()
        for service in self.keyholders:
            service.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for service in self.keyholders:
            service.wait_stopped(deadline)

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- `stagpack local up`, and the commands that reach it -----------------------------------------


def default_local_directory() -> Path:
    """Where `stagpack local …` keeps a deployment: $STAGPACK_LOCAL_DIR, else var/local."""
    return Path(os.environ.get("STAGPACK_LOCAL_DIR") or "var/local")


def _is_local_up(pid: int) -> bool:
    """Whether `pid` runs `stagpack local up` (where /proc tells; elsewhere any live pid does):
    a pid left by a supervisor that was killed may since belong to another process."""
    if pid <= 0:
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False  # no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except OSError:
        return False
    return any(argument.endswith(b"stagpack") for argument in arguments) and b"local" in arguments and b"up" in arguments


@dataclass(frozen=True)
class LocalControl:
    """The files through which other processes find and ask a running `stagpack local up`."""

    directory: Path

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def requests(self) -> Path:
        return self.directory / CONTROL_DIRECTORY

    def supervisor_pid(self, settle_seconds: float = 2.0) -> int | None:
        """The pid of the `local up` that runs in the directory (it holds the lock), or None."""
        deadline = time.monotonic() + settle_seconds
        while True:
            try:
                handle = open(self.lock_path, "rb")
            except FileNotFoundError:
                return None
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    text = handle.read().decode(errors="replace").strip()
                    if text.isdigit() and _is_local_up(int(text)):
                        return int(text)
                else:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    return None
            if time.monotonic() >= deadline:  # locked, but no (live) pid written: not a supervisor's lock
                raise LocalDeploymentError(f"the lock {self.lock_path} is held, but not by a running `stagpack local up`")
            time.sleep(0.05)

    def require_supervisor(self) -> int:
        pid = self.supervisor_pid()
        if pid is None:
            raise LocalDeploymentError(f"no `stagpack local up` is running in {self.directory}")
        return pid

    def state(self) -> dict[str, Any]:
        """The running supervisor's state file (what it runs, where, with which pids)."""
        self.require_supervisor()
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as error:
            raise LocalDeploymentError(f"cannot read {self.state_path}: {error}") from None
        if not isinstance(state, dict):
            raise LocalDeploymentError(f"{self.state_path} is not a state document")
        return state

    def request(self, document: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Hand `document` to the running supervisor and wait (at most `timeout` seconds) for
        its answer."""
        pid = self.require_supervisor()
        self.requests.mkdir(parents=True, exist_ok=True)
        identifier = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}"
        request_path = self.requests / f"{identifier}.request"
        response_path = self.requests / f"{identifier}.response"
        write_json_atomically(request_path, document)
        try:
            os.kill(pid, signal.SIGUSR1)  # it also looks every second, should the signal be lost
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if response_path.exists():
                try:
                    response = json.loads(response_path.read_text())
                finally:
                    response_path.unlink(missing_ok=True)
                if not isinstance(response, dict):
                    raise LocalDeploymentError(f"the `local up` in {self.directory} answered nonsense")
                return response
            if self.supervisor_pid() is None:
                request_path.unlink(missing_ok=True)
                raise LocalDeploymentError(f"the `stagpack local up` in {self.directory} stopped before answering")
            time.sleep(0.1)
        picked_up = request_path.exists()
        request_path.unlink(missing_ok=True)  # not to be carried out after we gave up
        raise LocalDeploymentError(
            f"the `stagpack local up` in {self.directory} (pid {pid}) did not answer within {timeout:g} s"
            + ("" if picked_up else "; it may still be carrying the request out")
        )


class _Interrupted(BaseException):
    """Raised by the SIGTERM/SIGINT handler to abandon a startup (as Ctrl-C would)."""


class LocalSupervisor:
    """`stagpack local up`: start a deployment under `directory`, run it until SIGTERM or SIGINT,
    and carry out control requests (restart a service) meanwhile. Every service is stopped on
    the way out, whether the startup finished or not."""

    def __init__(
        self, directory: str | Path, keyholders: int, threshold: int, *, base_port: int, out: TextIO | None = None,
    ) -> None:
        self.control = LocalControl(Path(directory).resolve())
        self.keyholders = keyholders
        self.threshold = threshold
        self.base_port = base_port
        self.deployment: LocalDeployment | None = None
        self._out = out
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_signal: int | None = None
        self._phase = "idle"  # starting, serving, stopping
        self._lock: int | None = None
        self._reported: set[int] = set()  # pids whose exit was reported

    @property
    def directory(self) -> Path:
        return self.control.directory

    def say(self, line: str) -> None:
        try:
            print(line, file=self._out or sys.stdout, flush=True)
        except (OSError, ValueError):
            pass  # nobody reads our output any more: carry on

    # signals

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = self._stop_signal is None
        if first:
            self._stop_signal = signum
        self._stopping.set()
        self._wake.set()
        if first and self._phase == "starting":
            raise _Interrupted(signum)

    def _on_wake_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._wake.set()

    # the lock

    def _acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.control.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        for _ in range(10):  # another process may be probing the lock for a moment
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
        else:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            os.close(descriptor)
            raise LocalDeploymentError(
                f"a `stagpack local up` (pid {holder or '?'}) is already running in {self.directory}; "
                "stop it first or choose another --dir"
            )
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._lock = descriptor

    def _release(self) -> None:
        if self._lock is not None:
            os.ftruncate(self._lock, 0)
            os.close(self._lock)  # releases the lock
            self._lock = None

    # state

    def _write_state(self) -> None:
        deployment = self.deployment
        services = [] if deployment is None else [
            {"name": service.name, "kind": service.kind, "address": service.address, "pid": service.pid,
             "log": str(service.log_path)}
            for service in deployment.services
        ]
        write_json_atomically(self.control.state_path, {
            "pid": os.getpid(), "phase": self._phase, "directory": str(self.directory),
            "keyholders": self.keyholders, "threshold": self.threshold, "services": services,
        })

    # running

    def run(self, progress: Progress | None = None) -> int:
        handlers = {signal.SIGTERM: self._on_stop_signal, signal.SIGINT: self._on_stop_signal, signal.SIGUSR1: self._on_wake_signal}
        previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
        try:
            self._acquire()
            try:
                self._check_committee()
                return self._run(progress)
            finally:
                self._release()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _check_committee(self) -> None:
        """A directory that already holds a committee is reused only with the same shape."""
        from stagpack.edge.wire import load_bundle_transcript

        committee = self.directory / "aggregator" / "committee"
        if bundle_exists(committee):
            body = load_bundle_transcript(committee).body
            if (body.parties, body.threshold) != (self.keyholders, self.threshold):
                raise InvalidInput(
                    f"{self.directory} holds a committee of {body.parties} keyholders with threshold {body.threshold}: "
                    f"use --keyholders {body.parties} --threshold {body.threshold}, or another --dir"
                )

    def _run(self, progress: Progress | None) -> int:
        deployment = LocalDeployment.create(self.directory, self.keyholders, self.threshold, log_format="text", base_port=self.base_port)
        self.deployment = deployment
        addresses = deployment.write_addresses()
        try:
            self._phase = "starting"
            self._write_state()
            self.say(f"starting {self.keyholders} keyholders (any {self.threshold} decrypt) and an aggregator under {self.directory}")
            if self._stop_signal is None:
                deployment.start(self._recording(progress))
            self._phase = "serving"
            self._write_state()
            if self._stop_signal is None:
                assert deployment.aggregator is not None
                self.say(f"aggregator at {deployment.aggregator.address}; keyholders at "
                         + ", ".join(service.address for service in deployment.keyholders))
                self.say(f"addresses in {addresses}; logs in {self.directory}/*.log")
                self.say("SIGTERM or Ctrl-C stops every service; `stagpack local restart NAME` restarts one")
            while self._stop_signal is None:
                self._wake.wait(1.0)
                self._wake.clear()
                self._serve_requests()
                self._report_exits()
        except _Interrupted:
            pass
        finally:
            self._phase = "stopping"
            if self._stop_signal is not None:
                self.say(f"received {signal.Signals(self._stop_signal).name}: stopping every service")
            self._write_state()
            deployment.stop()
            self._refuse_requests("`local up` is stopping")
            addresses.unlink(missing_ok=True)
            self.control.state_path.unlink(missing_ok=True)
            self.say("stopped")
        return 0

    def _recording(self, progress: Progress | None) -> Progress:
        """`progress`, also recording the services' pids once the ceremony runs."""

        def report(what: str, done: int, total: int) -> None:
            if done == 1:
                self._write_state()
            if progress is not None:
                progress(what, done, total)

        return report

    def _serve_requests(self) -> None:
        if not self.control.requests.is_dir():
            return
        for path in sorted(self.control.requests.glob("*.request")):
            if self._stop_signal is not None:
                return
            try:
                request = json.loads(path.read_text())
            except FileNotFoundError:
                continue  # withdrawn by its sender
            except (OSError, ValueError):
                request = None
            path.unlink(missing_ok=True)
            response = self._carry_out(request)
            write_json_atomically(path.with_suffix(".response"), response)
            self._write_state()

    def _refuse_requests(self, reason: str) -> None:
        if self.control.requests.is_dir():
            for path in self.control.requests.glob("*.request"):
                path.unlink(missing_ok=True)
                write_json_atomically(path.with_suffix(".response"), {"ok": False, "error": reason})

    def _carry_out(self, request: object) -> dict[str, Any]:
        deployment = self.deployment
        assert deployment is not None
        if not isinstance(request, dict) or request.get("action") != "restart" or not isinstance(request.get("service"), str):
            return {"ok": False, "error": "not a request this `local up` understands"}
        name = request["service"]
        names = [service.name for service in deployment.services]
        if name not in names:
            return {"ok": False, "error": f"no service named {name!r} (there are {', '.join(names)})"}
        service = deployment.service(name)
        previous = service.pid
        started = time.monotonic()
        self.say(f"restarting {name} (asked by `stagpack local restart`)")
        try:
            deployment.restart(name, abort=self._stopping)
        except (StagpackError, OSError) as error:
            self.say(f"restarting {name} failed: {error}")
            return {"ok": False, "service": name, "error": str(error)}
        self.say(f"{name} restarted (pid {previous} -> {service.pid}) and serving at {service.address}")
        return {"ok": True, "service": name, "address": service.address, "previous_pid": previous, "pid": service.pid,
                "status": "SERVING", "seconds": round(time.monotonic() - started, 3)}

    def _report_exits(self) -> None:
        assert self.deployment is not None
        changed = False
        for service in self.deployment.services:
            process = service.process
            if process is not None and process.poll() is not None and process.pid not in self._reported:
                self._reported.add(process.pid)
                changed = True
                self.say(f"{service.name} (pid {process.pid}) exited with code {process.returncode}; see {service.log_path}; "
                         f"`stagpack local restart {service.name}` starts it again")
        if changed:
            self._write_state()
