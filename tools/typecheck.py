"""Type-check the core with mypy --strict.

The layers live in top-level directories (solver/, dkg/, decrypt/, …) that are installed as
`stagpack.solver`, `stagpack.dkg`, … (pyproject's package-dir mapping). mypy does not follow the
editable install's import hook, so this script mirrors the installed layout with symlinks under
build/typecheck/ and checks it there.

The core is every pure module: stagpack's records, encoding, circuits, codec, FHE wrapper, pack
state and evaluation, plus decrypt/, dkg/ and solver/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
MAPPED = {"solver": "solver", "dkg": "dkg", "decrypt": "decrypt", "keyholder": "keyholder", "aggregator": "aggregator", "participant": "participant", "bench": "bench"}
CORE = [
    "stagpack/errors.py", "stagpack/codec.py", "stagpack/fhe.py", "stagpack/encoding.py", "stagpack/circuit.py",
    "stagpack/identity.py", "stagpack/envelope.py", "stagpack/stag.py", "stagpack/log.py", "stagpack/pack.py",
    "stagpack/session.py", "stagpack/evaluation.py", "stagpack/storage.py", "stagpack/decrypt", "stagpack/dkg",
    "stagpack/solver",
]


def main() -> int:
    if TREE.exists():
        shutil.rmtree(TREE)
    package = TREE / "stagpack"
    package.mkdir(parents=True)
    for entry in (ROOT / "stagpack").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, source in MAPPED.items():
        (package / name).symlink_to(ROOT / source)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *CORE]
    return subprocess.call(command, cwd=TREE)


if __name__ == "__main__":
    raise SystemExit(main())
