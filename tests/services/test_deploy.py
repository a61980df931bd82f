"""The deployment files agree with the code: the compose file validates (offline, with Debian's
docker-compose — no Docker engine), every setting it passes exists, and the image gets every
package the project installs."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stagpack.edge.config import AggregatorConfig, KeyholderConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def environment_names(config_type: type, prefix: str) -> set[str]:
    names = set()

    def walk(instance: object, name: str) -> None:
        for field in dataclasses.fields(instance):  # type: ignore[arg-type]
            value = getattr(instance, field.name)
            full = f"{name}_{field.name.upper()}"
            if dataclasses.is_dataclass(value):
                walk(value, full)
            else:
                names.add(full)

    walk(config_type(), prefix)
    return names


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed (.ci/run installs it)")
def test_compose_file_validates_offline() -> None:
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_setting_the_compose_file_passes_exists() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"(STAGPACK_(?:KEYHOLDER|AGGREGATOR)_[A-Z_]+):", text))
    known = environment_names(KeyholderConfig, "STAGPACK_KEYHOLDER") | environment_names(AggregatorConfig, "STAGPACK_AGGREGATOR")
    assert used and used <= known, used - known
    assert text.count("keyholder serve") == 0 and text.count('["keyholder", "serve"]') == 1  # one anchor, five keyholders
    assert len(re.findall(r"^  keyholder-\d:\n    <<: \*keyholder$", text, re.MULTILINE)) == 5


def test_the_image_gets_every_package_the_project_installs() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    mapped = set(re.findall(r'^"stagpack(?:\.\w+)?" = "(\w+)"', pyproject, re.MULTILINE))
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert mapped and mapped <= copied, mapped - copied
    assert DOCKERFILE.read_text().startswith("#") and "FROM python:3.10-slim" in DOCKERFILE.read_text()


def test_every_stagpack_command_the_compose_file_runs_parses() -> None:
    """The keys, ceremony, keyholder and aggregator commands, as the compose file spells them,
    are accepted by the CLI's own parser (a renamed flag would otherwise surface only in a
    container)."""
    import shlex

    from stagpack.app.cli import build_parser

    text = COMPOSE.read_text()
    commands = [shlex.split(line) for line in re.findall(r"stagpack ((?:aggregator|coordinator) key[^&\n]*?)(?: >|$)", text, re.MULTILINE)]
    ceremony = re.search(r"^  ceremony:\n(?:    .*\n)*?    command:\n((?:      - .*\n)+)", text, re.MULTILINE)
    assert ceremony is not None
    commands.append([line.strip()[2:] for line in ceremony.group(1).splitlines()])
    commands += [["keyholder", "serve"], ["aggregator", "serve"]]
    assert [command[:2] for command in commands[:2]] == [["aggregator", "key"], ["coordinator", "key"]]
    parser = build_parser()
    for command in commands:
        parser.parse_args(command)  # argparse exits on anything it does not accept
    ceremony_options = parser.parse_args(commands[2])
    assert ceremony_options.fault_bound == 1 and ceremony_options.aggregator_key_file == "/keys/aggregator.pub"
    assert ceremony_options.identity == "/coordinator/coordinator.key"
    assert "STAGPACK_KEYHOLDER_COORDINATOR_KEY_FILE: /keys/coordinator.pub" in text
    assert text.count("STAGPACK_KEYHOLDER_AGGREGATOR: aggregator:7110") == 5 and "STAGPACK_AGGREGATOR_REPLICATION_LISTEN: 0.0.0.0:7110" in text
    assert '"7110:' not in text  # the replication port is never published
