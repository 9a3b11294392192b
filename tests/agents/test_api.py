"""``open_run`` / ``open_sweep``: a real run's tables as DataFrames, checked against the files
the run wrote, read here with the standard library."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents import open_run, open_sweep
from agents.errors import ExperimentError, RunDirError

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "examples/experiments/scenarios/tiny.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the tiny scenario, as `specledger simulate` writes it (no audit yet)."""
    from agents.run import Simulation
    from agents.scenario import load_scenario
    from ledger.chain import EmbeddedChains, use_fast_keccak

    use_fast_keccak()
    out = tmp_path_factory.mktemp("api") / "run"
    sc = load_scenario(BASE)
    chains = EmbeddedChains(out / "chains", genesis_timestamp=sc.genesis_timestamp)
    summary = asyncio.run(Simulation(sc, out, chains=chains).run())
    assert summary["complete"] and summary["leases"] > 0
    return out


def test_importing_agents_stays_light():
    code = (
        "import sys, agents\n"
        "print(sorted(m for m in ('pandas', 'dask', 'matplotlib', 'torch', 'web3') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_open_run_tables_match_the_run_directory(run_dir: Path):
    assert not (run_dir / "audit.sqlite").exists()
    run = open_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    leases = run.leases  # builds the audit's index from the chains
    assert (run_dir / "audit.sqlite").exists()
    assert len(leases) == summary["leases"]
    assert leases["state"].value_counts().to_dict() == summary["lease_states"]
    assert all(isinstance(p, int) and p > 0 for p in leases["price_wei"])
    settlements = run.settlements
    assert len(settlements) == summary["chain_transactions"]["settle"]
    assert settlements["leases"].sum() == len(leases)
    assert sum(settlements["total_price_wei"]) == sum(leases["price_wei"])
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "region"]
    epochs = run.epochs
    assert len(epochs) == len(rows)
    assert epochs["welfare_wei"].tolist() == [int(r["welfare_wei"]) for r in rows]
    assert epochs["leases"].sum() == len(leases)
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    assert run.rounds.to_dict("records") == [json.loads(line) for line in lines]
    assert len(run.rounds) == summary["rounds"]


@pytest.mark.slow
async def test_open_run_works_inside_a_running_event_loop(run_dir: Path):
    # a notebook runs an event loop: the audit that builds the index runs in a thread
    (run_dir / "audit.sqlite").unlink(missing_ok=True)
    run = open_run(run_dir)
    assert len(run.leases) == run.summary["leases"]


def test_a_folder_without_a_run_or_sweep_is_refused_in_one_line(tmp_path: Path):
    with pytest.raises(RunDirError, match=r"holds no run \(no readable summary.json\)"):
        open_run(tmp_path)
    with pytest.raises(ExperimentError, match=r"holds no sweep results \(no results.parquet\)"):
        open_sweep(tmp_path)
