"""Faults the design isolates: a lost answer, a dead region node, a dead root."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.run import Simulation
from agents.scenario import load_scenario
from ledger.bindings import RegionMarket
from ledger.errors import NodeUnavailable
from ledger.records import LeaseState
from ledger.tiered import TieredLedger

from .test_run import SMALL


async def chain_leases(out: Path) -> tuple[Counter[tuple[int, int]], list[str]]:
    """Leases on chain per (slot, region), and those still active past their window."""
    tl = await TieredLedger.open(out)
    try:
        counts: Counter[tuple[int, int]] = Counter()
        overdue = []
        for r, rt in tl.regions.items():
            await rt.sequencer.sync()
            head = int((await rt.backend.web3.eth.get_block("latest"))["timestamp"])
            for lease_id, record in rt.sequencer.records.items():
                counts[(record.epoch, r)] += 1
                active = rt.sequencer.lease_words[lease_id] & 0xFF == LeaseState.ACTIVE
                if active and record.end + rt.config.claim_window_s <= head:
                    overdue.append(lease_id.hex())
        return counts, overdue
    finally:
        await tl.close()


def metrics_leases(out: Path, base_slot: int) -> Counter[tuple[int, int]]:
    counts: Counter[tuple[int, int]] = Counter()
    with open(out / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "region" and int(row["leases"]):
                counts[(base_slot + int(row["epoch"]), int(row["region"]))] += int(row["leases"])
    return counts


@pytest.mark.slow
async def test_a_settlement_whose_answer_was_lost_is_found_on_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The second settlement lands but its answer never comes back: the run finds it by
    the epoch's Settled event, and metrics, summary and chain agree lease for lease."""
    original = RegionMarket.settle
    calls = {"n": 0}

    async def lossy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        receipt = await original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise NodeUnavailable("the node's answer was lost (injected)")
        return receipt

    monkeypatch.setattr(RegionMarket, "settle", lossy)
    (tmp_path / "small.toml").write_text(SMALL)
    sim = Simulation(load_scenario(tmp_path / "small.toml"), tmp_path / "run")
    summary = await sim.run()
    assert calls["n"] >= 2
    on_chain, overdue = await chain_leases(tmp_path / "run")
    assert metrics_leases(tmp_path / "run", sim.base_slot) == on_chain
    assert summary["leases"] == sum(on_chain.values())
    assert overdue == [], "leases left active past their claim window"
    with open(tmp_path / "run" / "metrics.csv") as f:
        found = [r for r in csv.DictReader(f) if "found on chain" in r["note"]]
    assert len(found) == 1 and int(found[0]["leases"]) > 0


def _simulate_rpc(scenario: Path, out: Path, manifest: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents.cli",
            "simulate",
            str(scenario),
            "--out",
            str(out),
            "--backend",
            "rpc",
            "--manifest",
            str(manifest),
            "--rpc-timeout",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epoch(out: Path, epoch: int, process: subprocess.Popen[str]) -> None:
    """Until metrics.csv holds a region row of ``epoch`` (or the run ended)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        metrics = out / "metrics.csv"
        if metrics.exists():
            with open(metrics) as f:
                if any(
                    r["kind"] == "region" and int(r["epoch"]) >= epoch for r in csv.DictReader(f)
                ):
                    return
        time.sleep(0.2)
    raise AssertionError(f"the run never reached epoch {epoch}")


def _region_rows(out: Path, region: int) -> list[dict[str, str]]:
    with open(out / "metrics.csv") as f:
        return [
            r for r in csv.DictReader(f) if r["kind"] == "region" and r["region"] == str(region)
        ]


def _wait(what: str, until: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and process.poll() is None:
        if until():
            return
        time.sleep(0.3)
    ended = "" if process.poll() is None else f" (it ended: {process.communicate()[1][-3000:]})"
    raise AssertionError(f"the run never got to: {what}{ended}")


@pytest.mark.anvil
@pytest.mark.slow
def test_a_region_node_that_stops_answering_is_an_outage_of_that_region_only(tmp_path: Path):
    """Region 2's node stops answering (SIGSTOP): region 2 is down, region 1 goes on. It
    answers again (SIGCONT): region 2 rejoins, catches up and settles. Then it is killed
    by pid (SIGKILL): region 2 is down to the end, and the run still finishes, rc 0."""
    from ledger.chain import testnet as tn

    nodes = {n.name: n for n in tn.testnet_up([1, 2], tmp_path / "tn")}
    pid = nodes["region-2"].pid
    try:
        # a round every epoch: the job leases devices in region 2 whenever it is up, so
        # "settles again" shows in the epoch it rejoins, not whenever it next has trade
        small = SMALL.replace("epochs = 5", "epochs = 10").replace("rounds = 4", "rounds = 10")
        assert small.count("= 10") == 2
        (tmp_path / "small.toml").write_text(small)
        out = tmp_path / "run"
        run = _simulate_rpc(tmp_path / "small.toml", out, tmp_path / "tn" / "testnet.json")
        _wait_for_epoch(out, 0, run)
        os.kill(pid, signal.SIGSTOP)
        _wait("region 2 down", lambda: any("down" in r["note"] for r in _region_rows(out, 2)), run)
        os.kill(pid, signal.SIGCONT)

        def settled_again() -> bool:
            rows = _region_rows(out, 2)
            down = max(i for i, r in enumerate(rows) if "down" in r["note"])
            return any(int(r["leases"]) > 0 for r in rows[down + 1 :])

        _wait("region 2 settling again", settled_again, run)
        killed_at = len(_region_rows(out, 1))
        assert killed_at < 9, "the run ended before region 2's node could be killed"
        os.kill(pid, signal.SIGKILL)  # gone for good
        _stdout, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        events = [o["event"] for o in summary["outages"] if o["region"] == 2]
        assert events == ["down", "rejoined", "down"], (summary["outages"], _region_rows(out, 2))
        assert {o["region"] for o in summary["outages"]} == {2}
        assert summary["epochs_run"] == 10 and summary["unreachable_regions"] == [2]
        later = _region_rows(out, 1)[killed_at + 1 :]
        assert later and all(r["note"] == "" for r in later), later  # region 1 went on
    finally:
        for node in nodes.values():
            if Path(f"/proc/{node.pid}").exists():
                os.kill(node.pid, signal.SIGCONT)
            tn.stop_node(node)


@pytest.mark.anvil
@pytest.mark.slow
def test_a_dead_root_stops_the_run_with_one_line(tmp_path: Path):
    from ledger.chain import testnet as tn

    nodes = {n.name: n for n in tn.testnet_up([1, 2], tmp_path / "tn")}
    try:
        (tmp_path / "small.toml").write_text(SMALL)
        run = _simulate_rpc(
            tmp_path / "small.toml", tmp_path / "run", tmp_path / "tn" / "testnet.json"
        )
        _wait_for_epoch(tmp_path / "run", 0, run)
        os.kill(nodes["root"].pid, signal.SIGKILL)
        _stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 1, stderr[-3000:]
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "root chain stopped answering" in errors[0], stderr[-2000:]
        assert "Traceback" not in stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["stopped"] and summary["complete"] is False
        assert (tmp_path / "run" / "history.sha256").exists()
    finally:
        for node in nodes.values():
            tn.stop_node(node)
