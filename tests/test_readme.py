"""The README's workflows run exactly as written."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def workflow(marker: str) -> list[str]:
    """The commands of the ``sh`` block that follows ``<!-- marker -->`` in the README."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)```", text, re.S)
    assert found, f"README.md has no {marker} block"
    return [line for line in found.group(1).splitlines() if line.strip()]


@pytest.mark.anvil
@pytest.mark.slow
def test_the_readme_rpc_workflow_runs_as_written(tmp_path: Path):
    """In a fresh folder holding only what a clone has (the venv, the examples), each
    command of the README's rpc workflow succeeds, the audit included."""
    for name in (".venv", "examples", "node_modules", "contracts"):
        (tmp_path / name).symlink_to(REPO / name)
    commands = workflow("rpc-workflow")
    assert commands[0].startswith(".venv/bin/specledger testnet up")
    try:
        for command in commands:
            done = subprocess.run(
                shlex.split(command), cwd=tmp_path, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    finally:
        subprocess.run(
            [".venv/bin/specledger", "testnet", "down"], cwd=tmp_path, capture_output=True
        )
    assert (tmp_path / "runs" / "rpc" / "summary.json").exists()
