"""``specledger bench ledger | regions | market | audit``: every timed figure a spread
(median of at least 3 repeats, min and max beside it, CPU beside wall).

Speed figures are reported, never asserted: only their shape, and the counts that say
the timed work was real (leases settled, rounds trained)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agents.cli import main


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


def _check_spread(figure: dict[str, Any], positive: bool = True) -> None:
    """A timed figure: the median of at least 3 repeats, with min and max beside it."""
    assert set(figure) >= {"median", "min", "max", "n"}
    assert figure["n"] >= 3
    assert figure["min"] <= figure["median"] <= figure["max"]
    if positive:
        assert figure["min"] > 0


def _check_rate(figure: dict[str, Any]) -> None:
    _check_spread(figure)
    _check_spread(figure["per_cpu_s"])


def _check_seconds(figure: dict[str, Any]) -> None:
    _check_spread(figure["wall_s"])
    _check_spread(figure["cpu_s"], positive=False)


def _check_bench_ledger(data: dict[str, Any], backend: str) -> None:
    assert data["backend"] == backend
    for key in ("naive_tx_per_s", "call_per_s", "sign_per_s"):
        _check_rate(data[key])
    for key in ("settle_leases_per_s", "floor_leases_per_s"):
        _check_rate(data[key])
    _check_seconds(data["settle_100_s"])
    _check_seconds(data["settle_epoch_s"])
    assert isinstance(data["gas_per_lease"], int) and data["gas_per_lease"] > 0
    assert data["settle_epochs"] >= 3 and data["settle_leases_per_epoch"] == 8
    for ratio, figure in (
        ("settle_vs_naive", "settle_leases_per_s"),
        ("floor_vs_naive", "floor_leases_per_s"),
    ):
        medians = data[figure]["median"] / data["naive_tx_per_s"]["median"]
        assert data[ratio] == pytest.approx(medians, abs=0.01)  # the ratio of the medians
    assert set(data["settle_time_per_lease"]) == {"sign_ms", "admit_ms", "attest_and_settle_ms"}
    for figure in data["settle_time_per_lease"].values():
        _check_spread(figure)
    assert "regions_scaling" not in data  # its own command now: bench regions
    assert data["signing_backend"] == "CoinCurveECCBackend"
    assert data["keccak_backend"] == "PySha3Backend"
    assert data["cpu_count"] >= 1


LEDGER_ARGS = ("bench", "ledger", "--n", "5", "--settle-buyers", "8", "--json")


def test_bench_ledger_embedded_needs_no_anvil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ledger.chain import testnet

    monkeypatch.setattr(testnet, "REPO_ROOT", tmp_path)  # no node_modules there
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SPECLEDGER_ANVIL", raising=False)
    with pytest.raises(testnet.TestnetError):
        testnet.anvil_path()  # anvil cannot be found here
    started: list[str] = []
    popen = subprocess.Popen

    def recording_popen(args: Any, *rest: Any, **kwargs: Any) -> Any:
        started.append(str(args))
        return popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    result = CliRunner().invoke(main, [*LEDGER_ARGS, "--backend", "embedded"])
    assert result.exit_code == 0, result.output
    assert [cmd for cmd in started if "anvil" in cmd] == []  # no node was started
    _check_bench_ledger(json.loads(result.stdout), "embedded")


@pytest.mark.anvil
def test_bench_ledger_rpc_prints_one_json_object():
    out = run(*LEDGER_ARGS, "--backend", "rpc")
    assert out.returncode == 0, out.stderr
    _check_bench_ledger(json.loads(out.stdout), "rpc")


def test_bench_ledger_has_no_scaling_option():
    result = CliRunner().invoke(main, ["bench", "ledger", "--scaling"])
    assert result.exit_code == 2
    assert "No such option '--scaling'" in result.output


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.multiproc
def test_bench_regions_prints_its_figures():
    out = run(
        *("bench", "regions", "--regions", "1", "--regions", "2"),
        *("--buyers", "5", "--epochs", "1", "--json"),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"] == "rpc" and data["buyers"] == 5 and data["epochs_per_repeat"] == 1
    assert set(data["regions"]) == {"1", "2"}
    for row in data["regions"].values():
        _check_rate(row["leases_per_s"])
        _check_seconds(row)
        by_process = row["cpu_s_by_process"]  # /proc counts in clock ticks: 0 can happen
        assert set(by_process) == {"bench", "region_workers", "anvil"}
        for figure in by_process.values():
            _check_spread(figure, positive=False)


@pytest.mark.slow
def test_bench_market_prints_its_figures():
    out = run("bench", "market", "--agents", "40", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["warm_up_epochs"] == 1 and data["timed_epochs_per_run"] >= 3
    (size,) = data["sizes"]
    assert size["agents"] == 40 and size["runs"] >= 3
    timed = size["runs"] * data["timed_epochs_per_run"]
    for key in ("market_epoch_s", "training_round_s", "submit_s", "settle_s", "orders_per_s"):
        _check_spread(size[key])  # training_round_s > 0: every timed epoch trained
        assert size[key]["n"] == timed
    _check_seconds(size["epoch_s"])
    assert size["epoch_s"]["cpu_s"]["median"] > 0
    _check_seconds(size["setup_s"])  # a spread over the runs
    assert size["setup_s"]["wall_s"]["n"] == size["runs"]
    assert size["leases_per_epoch"] > 0
    assert size["offers_per_epoch"] > 0 and size["bids_per_epoch"] > 0
    assert size["leases"] >= size["leases_per_epoch"] * data["timed_epochs_per_run"]
    tx = size["chain_transactions"]
    assert tx["join"] <= 4 and tx["settle"] > 0  # one join batch per region


def test_bench_market_refuses_a_timed_epoch_without_leases_or_round():
    from agents.bench import _checked
    from agents.errors import AgentError
    from agents.run import EpochReport

    good = EpochReport(0, leases=3, round_loss=0.5, train_s=0.1)
    idle = EpochReport(2, leases=0, round_loss=0.5, train_s=0.1, notes=["region 1: empty"])
    with pytest.raises(AgentError, match=r"timed epoch 2 settled no lease \(region 1: empty\)"):
        _checked([good, good, idle, good], 40)
    untrained = EpochReport(3, leases=3)
    with pytest.raises(AgentError, match="timed epoch 3 ran no training round"):
        _checked([good, good, good, untrained], 40)
    with pytest.raises(AgentError, match="2 timed epochs ran, 3 were planned"):
        _checked([good, good, good], 40)
    assert _checked([good] * 4, 40) == [good] * 3


def test_bench_market_scenario_trains_every_epoch():
    from agents.bench import _scenario

    text = _scenario(40, 4)
    assert "epochs = 4" in text and "rounds = 4" in text and "edge_devices = 25" in text


@pytest.mark.slow
def test_bench_audit_prints_its_figures():
    out = run("bench", "audit", "--min-leases", "60", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] and data["leases"] >= 60 and data["audits"] >= 3
    assert data["leases_verified"] == data["leases"]
    _check_rate(data["leases_verified_per_s"])
    _check_seconds(data["audit_s"])
    # the audit before this checks, on the same run, measured alternately
    base = data["baseline"]
    assert base is not None, data.get("baseline_unavailable")
    assert base["ok"] and base["leases"] == data["leases"] and base["audits"] >= 3
    _check_rate(base["leases_verified_per_s"])
    assert data["slowdown_vs_baseline"] > 0
