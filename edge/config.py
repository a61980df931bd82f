"""Service configuration: a JSON file, overridden by STAGPACK_* environment variables.

Every field has a default good for a local deployment; containers set what differs through the
environment (see deploy/compose.yaml). Secrets never live in the file: the keyholder passphrase
comes from STAGPACK_PASSPHRASE or a file named by STAGPACK_PASSPHRASE_FILE.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stagpack.errors import InvalidInput
from stagpack.participant.identity_file import read_public_key

C = TypeVar("C")


@dataclass
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"  # "text" or "json" (one JSON object per line)


@dataclass
class KeyholderConfig:
    name: str = "keyholder"
    listen: str = "127.0.0.1:7101"
    data_dir: str = "var/keyholder"
    aggregator: str = "127.0.0.1:7110"  # the aggregator's internal (replication) address: where replicas pull logs
    sealing: str = "moderate"  # Argon2id profile for sealed secrets: "moderate" or "interactive"
    passphrase_file: str = ""
    coordinator_key: str = ""  # hex Ed25519 key of the one ceremony coordinator this keyholder serves
    coordinator_key_file: str = ""  # or a file holding it
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def coordinator(self) -> bytes | None:
        """The coordinator's key, or None (then no ceremony is served)."""
        if self.coordinator_key:
            return read_public_key(self.coordinator_key, "coordinator_key")
        if self.coordinator_key_file:
            try:
                text = Path(self.coordinator_key_file).read_text()
            except OSError as error:
                raise InvalidInput(f"cannot read coordinator_key_file: {error}") from None
            return read_public_key(text, "coordinator_key_file")
        return None

    def passphrase(self) -> bytes:
        value = os.environ.get("STAGPACK_PASSPHRASE")
        if value:
            return value.encode()
        if self.passphrase_file:
            return Path(self.passphrase_file).read_bytes().strip()
        raise InvalidInput("set STAGPACK_PASSPHRASE or passphrase_file: the key share is sealed under it")


@dataclass
class AggregatorConfig:
    listen: str = "127.0.0.1:7100"  # the public API (market front-ends, participants)
    replication_listen: str = "127.0.0.1:7110"  # internal: keyholders pull logs here, never the public
    data_dir: str = "var/aggregator"
    identity_file: str = ""  # the aggregator's signing key; default <data_dir>/identity.json
    keyholders: list[str] = field(default_factory=list)  # addresses of every keyholder
    committee_dir: str = ""  # the ceremony's output; default <data_dir>/committee
    tick_millis: int = 500  # how often the epoch scheduler looks for due work
    recheck_unchanged: bool = False  # evaluate every epoch even when the log did not change
    keyholder_timeout_seconds: float = 300.0
    # the executor: "sqlite" (the ledger in data_dir) or "chain" (the committee's settlement
    # contract at chain_contract on the node at chain_rpc_url, sent from chain_operator, an
    # account the node unlocks; docs/protocol.md §6d)
    executor: str = "sqlite"
    chain_rpc_url: str = ""
    chain_contract: str = ""
    chain_operator: str = ""
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def committee_path(self) -> Path:
        return Path(self.committee_dir) if self.committee_dir else Path(self.data_dir) / "committee"

    def identity_path(self) -> Path:
        return Path(self.identity_file) if self.identity_file else Path(self.data_dir) / "identity.json"


def _apply(target: Any, values: dict[str, Any], where: str) -> None:
    known = {item.name: item for item in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in known:
            raise InvalidInput(f"{where}: unknown setting {key!r}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise InvalidInput(f"{where}: {key} must be an object")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(target, key, value)


def _coerce(current: Any, raw: str, name: str) -> Any:
    if isinstance(current, bool):
        return raw.lower() in {"1", "true", "yes"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, list):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def load(config_type: type[C], path: str | None, prefix: str) -> C:
    """Defaults, then the JSON file (if any), then `<prefix>_<FIELD>` environment variables
    (nested: STAGPACK_KEYHOLDER_LOGGING_LEVEL)."""
    config = config_type()
    if path:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise InvalidInput(f"cannot read configuration {path}: {error}") from None
        if not isinstance(values, dict):
            raise InvalidInput(f"{path}: the configuration must be a JSON object")
        _apply(config, values, path)

    def overlay(target: Any, env_prefix: str) -> None:
        for item in dataclasses.fields(target):
            current = getattr(target, item.name)
            name = f"{env_prefix}_{item.name.upper()}"
            if dataclasses.is_dataclass(current):
                overlay(current, name)
            elif name in os.environ:
                try:
                    setattr(target, item.name, _coerce(current, os.environ[name], name))
                except ValueError:
                    raise InvalidInput(f"{name}={os.environ[name]!r} is not a valid value") from None

    overlay(config, prefix)
    return config


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(config: LoggingConfig, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
