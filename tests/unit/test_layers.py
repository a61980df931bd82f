"""The layers of docs/architecture.md, enforced: a module imports only from its own layer or
the layers below it, and no modules import each other in a cycle.

    4  applications   stagpack.app, stagpack.bench, stagpack.__main__
    3  edge           stagpack.edge, stagpack.participant, stagpack.v1 (generated)
    2  parties        stagpack.dkg, stagpack.keyholder, stagpack.aggregator
    1  core           stagpack.decrypt (circuits, facts, steps, session computation), stagpack.solver
    0  kernel         every other module of stagpack/ (errors, codec, fhe, records, pack state)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomli

ROOT = Path(__file__).resolve().parents[2]

LAYERS = {
    "stagpack.app": 4, "stagpack.bench": 4, "stagpack.__main__": 4,
    "stagpack.edge": 3, "stagpack.participant": 3, "stagpack.v1": 3,
    "stagpack.dkg": 2, "stagpack.keyholder": 2, "stagpack.aggregator": 2,
    "stagpack.decrypt": 1, "stagpack.solver": 1,
}
NAMES = {4: "applications", 3: "edge", 2: "parties", 1: "core", 0: "kernel"}


def layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0


def modules() -> dict[str, Path]:
    """Every installed stagpack module and its file, from pyproject's package mapping."""
    setuptools = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    directories = {package: ROOT / path for package, path in setuptools["package-dir"].items()}
    found = {}
    for package in setuptools["packages"]:
        parent, _, leaf = package.rpartition(".")
        directory = directories.get(package) or directories[parent] / leaf
        for path in directory.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """The stagpack modules `module` imports, at any depth of its code."""
    tree = ast.parse(path.read_text())
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "stagpack" or name.startswith("stagpack.")}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for module, path in known.items():
        edges[module] = {target for name in imports(module, path) if (target := resolve(name, known)) and target != module}
    return edges


def test_no_module_imports_a_higher_layer(graph: dict[str, set[str]]) -> None:
    violations = [
        f"{module} ({NAMES[layer(module)]}) imports {target} ({NAMES[layer(target)]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert not violations, "\n".join(violations)


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    """Packages import their own modules (`stagpack.decrypt` re-exports its parts); apart from a
    package and its own submodules, no two modules may reach each other."""
    def reachable(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for target in graph.get(stack.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    cycles = []
    for module in sorted(graph):
        for target in sorted(reachable(module)):
            if module < target and module in reachable(target):
                if not (target.startswith(module + ".") or module.startswith(target + ".")):
                    cycles.append(f"{module} <-> {target}")
    assert not cycles, "\n".join(cycles)


def test_the_check_sees_every_package(graph: dict[str, set[str]]) -> None:
    """A guard for the guard: a new package missing from pyproject would escape the checks."""
    packages = {module.rpartition(".")[0] or module for module in graph}
    for expected in ("stagpack.app", "stagpack.edge", "stagpack.decrypt", "stagpack.keyholder", "stagpack.solver"):
        assert expected in packages | set(graph)
