"""Run the deployment topology as local processes on loopback ports.

The same topology as deploy/compose.yaml — n keyholder processes and one aggregator, each with
its own data directory — started as `python -m stagpack … serve` child processes. The launcher
then runs the key ceremony as coordinator and hands the committee to the aggregator. Used by
`stagpack local up`, by `make demo` and by the process-level tests (which kill -9 and restart
individual services).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stagpack.edge.remote import RemoteKeyholder
from stagpack.dkg import CommitteeBundle, run_ceremony
from stagpack.fhe import FheContext
from stagpack.edge.wire import bundle_exists, load_bundle_files, save_bundle

Progress = Callable[[str, int, int], None]
STARTUP_SECONDS = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.program, self.kind, "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.environment},
        )
        log.close()

    def wait_until(self, predicate: Callable[[str | None], bool], seconds: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; see {self.log_path}")
            if predicate(health_status(self.address)):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not become ready within {seconds:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no flushing beyond what was committed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class LocalDeployment:
    """n keyholders and an aggregator as processes under `directory`."""

    directory: Path
    keyholders: list[Service] = field(default_factory=list)
    aggregator: Service | None = None
    threshold: int = 0
    bundle: CommitteeBundle | None = None

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
    ) -> LocalDeployment:
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        deployment = cls(directory, threshold=threshold or keyholders)
        environment = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra_environment or {})}
        aggregator_port = free_port()
        ports = [free_port() for _ in range(keyholders)]
        for index, port in enumerate(ports, start=1):
            name = f"keyholder-{index}"
            keyholder_config = {
                "name": name,
                "listen": f"127.0.0.1:{port}",
                "data_dir": str(directory / name),
                "aggregator": f"127.0.0.1:{aggregator_port}",
                "sealing": "interactive",
                "logging": {"format": log_format},
            }
            path = directory / f"{name}.json"
            path.write_text(json.dumps(keyholder_config, indent=2))
            deployment.keyholders.append(
                Service(name, "keyholder", port, path, directory / f"{name}.log",
                        {**environment, "STAGPACK_PASSPHRASE": f"local passphrase of {name}"})
            )
        config: dict[str, object] = {
            "listen": f"127.0.0.1:{aggregator_port}",
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
                peers = [RemoteKeyholder(service.address, 0, timeout_seconds=600) for service in self.keyholders]
                self.bundle = run_ceremony(FheContext(), peers, self.threshold, progress)
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

    def restart(self, name: str, *, ready: bool = True) -> None:
        service = self.service(name)
        service.start()
        if ready:
            service.wait_until(lambda status: status == "SERVING")

    def stop(self) -> None:
        for service in [self.aggregator, *self.keyholders]:
            if service is not None:
                service.stop()

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

