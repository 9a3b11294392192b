"""The command line: bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.cli import main
from ledger.chain.testnet import free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_unknown_backend_is_refused():
    result = CliRunner().invoke(main, ["bench", "ledger", "--backend", "geth"])
    assert result.exit_code == 2
    assert "'geth' is not one of 'embedded', 'rpc'" in result.output


def test_unreachable_rpc_url_is_one_clear_line():
    url = f"http://127.0.0.1:{free_port()}"
    out = run("bench", "ledger", "--backend", "rpc", "--url", url, "--n", "1")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: no JSON-RPC node answers at {url} (ClientConnectorError): start one "
        "(`specledger testnet up`) or check the URL"
    ]


def test_missing_anvil_names_the_setup_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ledger.chain import testnet

    monkeypatch.setattr(testnet, "REPO_ROOT", tmp_path)  # no node_modules there
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SPECLEDGER_ANVIL", raising=False)
    result = CliRunner().invoke(
        main, ["testnet", "up", "--regions", "1", "--dir", str(tmp_path / "tn")]
    )
    assert result.exit_code == 1
    assert "the anvil binary is not installed: run `npm ci`" in result.stderr


@pytest.mark.anvil
def test_occupied_port_is_one_clear_line(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = run("testnet", "up", "--regions", "1", "--dir", str(tmp_path), "--port", str(port))
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert not (tmp_path / "testnet.json").exists()


@pytest.mark.anvil
def test_testnet_up_and_down(tmp_path: Path):
    out = run("testnet", "up", "--regions", "2", "--dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    nodes = json.loads(out.stdout)["nodes"]
    try:
        assert [n["name"] for n in nodes] == ["root", "region-1", "region-2"]
        assert len({n["chain_id"] for n in nodes}) == 3
        assert len({n["port"] for n in nodes}) == 3
        manifest = json.loads((tmp_path / "testnet.json").read_text())
        assert [n["pid"] for n in manifest["nodes"]] == [n["pid"] for n in nodes]
        for node in nodes:
            assert Path(f"/proc/{node['pid']}").exists()
        again = run("testnet", "up", "--regions", "1", "--dir", str(tmp_path))
        assert again.returncode == 1 and "still running" in again.stderr
    finally:
        down = run("testnet", "down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert "stopped 3 node(s)" in down.stdout
    for node in nodes:
        status = Path(f"/proc/{node['pid']}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_testnet_down_without_manifest(tmp_path: Path):
    out = run("testnet", "down", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert "no testnet manifest" in out.stderr


def test_demo_writes_a_reopenable_run(tmp_path: Path):
    out = run("demo", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reopened_identical"] is True
    assert summary["events_indexed"] == 20
    again = run("demo", "--out", str(tmp_path / "run"))
    assert again.returncode == 1 and "already holds a demo chain" in again.stderr


@pytest.mark.slow
def test_bench_training_meets_its_targets():
    # three timed rounds of a 10.7M-parameter model: minutes when the machine is busy
    command = [sys.executable, "-m", "agents.cli", "bench", "training", "--repeats", "3", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["equivalence_max_abs_diff"] <= 1e-5
    assert data["bytes_ratio"] <= 0.25
    assert data["uplink_bytes_per_round"] > 0 and data["fedavg_full_bytes_per_round"] > 0
    assert data["config"]["encoder"]["hidden"] == 384
    assert "split_step_ratio" in data  # a speed figure: reported, never asserted in tests
    for key in ("split_step_s", "monolithic_step_s", "round_s"):  # spreads, wall and CPU
        for clock in ("wall_s", "cpu_s"):
            figure = data[key][clock]
            assert figure["n"] >= 3 and figure["min"] <= figure["median"] <= figure["max"], key
    assert data["split_step_ratio"]["n"] >= 3 and data["threads"] >= 1


@pytest.mark.slow
@pytest.mark.multiproc
def test_bench_parallel_prints_every_mode():
    # ten worker processes, each importing torch: minutes when the machine is busy
    command = [sys.executable, "-m", "agents.cli", "bench", "parallel", "--steps", "2", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["modes"]) == {"data", "sequence", "tensor", "pipeline"}
    for mode, row in data["modes"].items():
        for clock in ("wall_s", "cpu_s"):  # every mode runs on this machine; >= 3 steps
            figure = row["measured_step_s"][clock]
            assert figure["n"] >= 3 and 0 < figure["min"] <= figure["max"], (mode, clock)
        assert row["estimated_step_s"] > 0 and row["energy_j_per_step"] > 0
        assert row["measured_bytes_per_step"] == pytest.approx(row["bytes_per_step"], rel=0.1)
    assert data["chosen"]["objective"] == "energy"
    assert data["chosen"]["mode"] in data["modes"]
    assert data["profile"]["step_s"]["wall_s"]["n"] >= 3
    for name in ("round_trip_4b_s", "round_trip_4mib_s", "all_reduce_4mib_s"):
        assert data["profile"]["link_s"][name]["wall_s"]["n"] >= 3, name


def test_plan_prints_the_choice_and_the_lease():
    example = Path(__file__).parents[1] / "examples" / "edge_pool.toml"
    result = CliRunner().invoke(main, ["plan", str(example), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["chosen"]["mode"] in ("pipeline", "tensor")
    assert data["lease"]["devices"] == data["chosen"]["devices"]
    assert data["others"]["data"]["why"].startswith("does not fit: needs")


@pytest.mark.parametrize(
    "text,line",
    [
        ("objective = 1\n[[devices]]\ncount = -1\n", "devices[0].count: expected an integer >= 1"),
        (
            "[[devices]]\nflops_per_s = 1e12\nmemory_gib = 0.5\nlink_mbit_per_s = 100\n"
            "idle_w = 1\nactive_w = 2\n[model]\nlayers = 24\nhidden = 2048\nheads = 16\n",
            "no plan fits a model of",
        ),
    ],
    ids=["bad-field", "cannot-fit"],
)
def test_plan_bad_pool_is_a_clear_error(tmp_path: Path, text: str, line: str):
    path = tmp_path / "pool.toml"
    path.write_text(text)
    out = run("plan", str(path))
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and line in out.stderr
    assert "Traceback" not in out.stderr


def test_testnet_region_ids_follow_the_scenarios():
    """``--regions 3`` serves the quickstart's regions 1..3; a list serves those ids."""
    from ledger.chain.testnet import region_ids
    from ledger.errors import ConfigError

    assert region_ids(3) == [1, 2, 3]
    assert region_ids([0, 1, 2, 3]) == [0, 1, 2, 3]
    for bad in (0, [1, 1], [-1], []):
        with pytest.raises(ConfigError):
            region_ids(bad)
    out = run("testnet", "up", "--regions", "one", "--dir", "/nonexistent")
    assert out.returncode == 2 and "expected a count (3) or region ids (0,1,2)" in out.stderr


async def test_a_manifest_without_the_scenarios_regions_says_which_to_start(tmp_path: Path):
    from ledger.chain import RpcChains
    from ledger.errors import ConfigError

    manifest = tmp_path / "testnet.json"
    node = {"chain_id": 1, "url": "http://127.0.0.1:1", "pid": 1, "port": 1}
    manifest.write_text(json.dumps({"nodes": [{"name": "root", **node}]}))
    with pytest.raises(ConfigError, match=r"testnet up --regions 1,2,3"):
        await RpcChains(manifest).open_all(["root", "region-1", "region-2", "region-3"])
