"""Compiled contract artifacts: build them from the Vyper sources, load them, check them.

An artifact is ``contracts/build/<Name>.json``::

    {"contract": "Probe", "source": "Probe.vy", "source_sha256": "...",
     "compiler": "vyper", "compiler_version": "0.4.3",
     "abi": [...], "bytecode": "0x...", "bytecode_runtime": "0x..."}

Runtime code only ever *loads* artifacts (:func:`load_artifact`); compiling is
the job of ``specledger contracts build``. :func:`load_artifact` refuses an
artifact whose source hash no longer matches its source when the source is
present, so a stale build is never deployed by accident.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError

__all__ = [
    "CONTRACTS_DIR",
    "Artifact",
    "build_all",
    "check_all",
    "load_artifact",
    "source_paths",
]

#: The repository's ``contracts/`` folder (sources and ``build/``).
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
COMPILER_VERSION = "0.4.3"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract, as stored in ``contracts/build/<name>.json``."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    bytecode_runtime: bytes
    source_sha256: str
    compiler_version: str


def source_paths(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    """Every Vyper source in ``contracts_dir``, sorted by name."""
    return sorted(contracts_dir.glob("*.vy"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _artifact_path(contracts_dir: Path, name: str) -> Path:
    return contracts_dir / "build" / f"{name}.json"


def compile_source(path: Path) -> dict[str, Any]:
    """Compile one Vyper source into the artifact dictionary (needs ``vyper``)."""
    import vyper  # build-time only: runtime code never imports the compiler

    if vyper.__version__ != COMPILER_VERSION:
        raise ArtifactError(
            f"vyper {vyper.__version__} is installed but the artifacts are built with "
            f"{COMPILER_VERSION}: run `pip install vyper=={COMPILER_VERSION}`"
        )
    try:
        out = vyper.compile_code(
            path.read_text(), output_formats=["abi", "bytecode", "bytecode_runtime"]
        )
    except Exception as exc:  # vyper raises many exception types; report them all alike
        raise ArtifactError(f"{path.name} does not compile: {exc}") from exc
    return {
        "contract": path.stem,
        "source": path.name,
        "source_sha256": _sha256(path),
        "compiler": "vyper",
        "compiler_version": vyper.__version__,
        "abi": out["abi"],
        "bytecode": out["bytecode"],
        "bytecode_runtime": out["bytecode_runtime"],
    }


def build_all(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    """Compile every source and write its artifact; returns the written paths."""
    written = []
    (contracts_dir / "build").mkdir(exist_ok=True)
    for src in source_paths(contracts_dir):
        data = compile_source(src)
        dest = _artifact_path(contracts_dir, src.stem)
        tmp = dest.with_suffix(".json.tmp")
        # write-then-rename so a failed build never leaves half an artifact behind
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        tmp.replace(dest)
        written.append(dest)
    return written


def _staleness(contracts_dir: Path, src: Path) -> str | None:
    """Why the artifact of ``src`` is unusable, or None when it is fresh."""
    path = _artifact_path(contracts_dir, src.stem)
    if not path.exists():
        return f"{src.stem}: artifact {path} is missing"
    try:
        data = json.loads(path.read_text())
        recorded = data["source_sha256"]
    except (ValueError, KeyError) as exc:
        return f"{src.stem}: artifact {path} is malformed ({exc})"
    if recorded != _sha256(src):
        return f"{src.stem}: artifact is stale ({src.name} changed since it was built)"
    if data.get("compiler_version") != COMPILER_VERSION:
        return f"{src.stem}: artifact was built with vyper {data.get('compiler_version')}"
    return None


def check_all(contracts_dir: Path = CONTRACTS_DIR) -> list[str]:
    """One line per missing or stale artifact; empty when every artifact is fresh."""
    return [
        problem
        for src in source_paths(contracts_dir)
        if (problem := _staleness(contracts_dir, src)) is not None
    ]


def load_artifact(name: str, contracts_dir: Path = CONTRACTS_DIR) -> Artifact:
    """Load ``contracts/build/<name>.json``; raises :class:`ArtifactError` if unusable."""
    path = _artifact_path(contracts_dir, name)
    src = contracts_dir / f"{name}.vy"
    if src.exists():
        problem = _staleness(contracts_dir, src)
        if problem:
            raise ArtifactError(f"{problem}: run `specledger contracts build`")
    elif not path.exists():
        raise ArtifactError(f"no artifact for contract {name!r} at {path}")
    try:
        data = json.loads(path.read_text())
        return Artifact(
            name=data["contract"],
            abi=data["abi"],
            bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
            bytecode_runtime=bytes.fromhex(data["bytecode_runtime"].removeprefix("0x")),
            source_sha256=data["source_sha256"],
            compiler_version=data["compiler_version"],
        )
    except (ValueError, KeyError) as exc:
        raise ArtifactError(
            f"artifact {path} is malformed ({exc}): run `specledger contracts build`"
        ) from exc
