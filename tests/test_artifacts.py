"""Contract artifacts: the committed ones are fresh; stale or missing ones are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.cli import main
from ledger.chain.artifacts import CONTRACTS_DIR, build_all, check_all, load_artifact
from ledger.errors import ArtifactError


def test_committed_artifacts_are_fresh():
    result = CliRunner().invoke(main, ["contracts", "build", "--check"])
    assert result.exit_code == 0, result.output
    assert check_all() == []


@pytest.fixture
def contracts_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, copy)
    return copy


def test_changed_source_makes_its_artifact_stale(contracts_copy: Path):
    src = contracts_copy / "Probe.vy"
    src.write_text(src.read_text() + "\n# a change\n")
    assert check_all(contracts_copy) == [
        "Probe: artifact is stale (Probe.vy changed since it was built)"
    ]
    with pytest.raises(ArtifactError, match="Probe: artifact is stale.*specledger contracts build"):
        load_artifact("Probe", contracts_copy)
    build_all(contracts_copy)
    assert check_all(contracts_copy) == []


def test_missing_artifact_is_named(contracts_copy: Path):
    (contracts_copy / "build" / "Probe.json").unlink()
    assert check_all(contracts_copy) == [
        f"Probe: artifact {contracts_copy / 'build' / 'Probe.json'} is missing"
    ]


def test_malformed_artifact_is_named(contracts_copy: Path):
    (contracts_copy / "build" / "Probe.json").write_text("{not json")
    assert check_all(contracts_copy)[0].startswith("Probe: artifact")
    assert "malformed" in check_all(contracts_copy)[0]


def test_source_that_does_not_compile_leaves_old_artifacts(contracts_copy: Path):
    before = (contracts_copy / "build" / "Probe.json").read_text()
    (contracts_copy / "Broken.vy").write_text("@external\ndef f() -> uint256:\n    return -1\n")
    with pytest.raises(ArtifactError, match="Broken.vy does not compile"):
        build_all(contracts_copy)
    assert (contracts_copy / "build" / "Probe.json").read_text() == before
    assert not (contracts_copy / "build" / "Broken.json").exists()


def test_artifact_records_what_it_was_built_from():
    data = json.loads((CONTRACTS_DIR / "build" / "Probe.json").read_text())
    assert data["compiler"] == "vyper" and data["compiler_version"] == "0.4.3"
    assert set(data) >= {"abi", "bytecode", "bytecode_runtime", "source_sha256"}
    assert load_artifact("Probe").bytecode_runtime in load_artifact("Probe").bytecode


def test_runtime_never_imports_the_compiler():
    import subprocess
    import sys

    code = (
        "import sys, asyncio; from ledger.chain import load_artifact, open_backend; "
        "load_artifact('Probe'); print('vyper' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
