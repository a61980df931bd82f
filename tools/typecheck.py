"""Type-check every stagpack package with mypy --strict (pyproject's [tool.mypy]).

The layers live in top-level directories (solver/, dkg/, edge/, …) that are installed as
`stagpack.solver`, `stagpack.dkg`, … through pyproject's package-dir mapping, which mypy's module
finder cannot follow. So this script hands mypy every source file together with the module name
it is installed under (mypy's build API), read from the same mapping. The generated protobuf
stubs (stagpack/v1) are checked through their .pyi files only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomli
from mypy import build
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def sources() -> list[BuildSource]:
    """(file, module) for every module of every package pyproject installs."""
    setuptools = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    directories = {package: ROOT / path for package, path in setuptools["package-dir"].items()}
    found = []
    for package in setuptools["packages"]:
        directory = directories.get(package) or directories[package.rsplit(".", 1)[0]] / package.rsplit(".", 1)[1]
        for path in sorted(directory.glob("*.py")):
            if package == "stagpack.v1":
                continue  # generated: mypy reads the .pyi stubs beside them
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found.append(BuildSource(str(path), module))
    return found


def main() -> int:
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml"), str(ROOT / "pyproject.toml")])
    result = build.build(sources(), options)
    for message in result.errors:
        print(message)
    if result.errors:
        print(f"mypy --strict: {len(result.errors)} errors", file=sys.stderr)
        return 1
    print(f"mypy --strict: no issues in {len(sources())} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
