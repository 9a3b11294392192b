"""Cross-region leases in a run (``[cross_region]``, agents/beams.py): committed in every
region or in none, an outage aborts only the lease, the audit agrees, a resume too."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ScenarioError
from agents.run import Simulation
from agents.scenario import load_scenario
from ledger.audit import run_audit

BEAM = """
seed = 3
epochs = 4
epoch_length_s = 3600
genesis_timestamp = 1893456000
checkpoint_every = 2

[[regions]]
id = 1
mechanism = "second_price"
channels = 8

[[regions]]
id = 2
mechanism = "double_auction"
channels = 8

[participants]
satellite_operators = 1
terrestrial_operators = 2
edge_servers = 1
edge_devices = 4
coordinators = 1

[job]
task = "sensor"
model = "small"
rounds = 4
devices_per_round = 2
budget_eth = 5
lora_rank = 2

[cross_region]
regions = [1, 2]
channels = 2

[failures]
region_outage = { region = 2, from_epoch = 2, to_epoch = 3 }
"""


def _write(tmp_path: Path, text: str, name: str = "beam.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _region_rows(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["kind"] == "region"]


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("regions = [1]", "a list of at least two distinct region ids of [1, 2]"),
        ("regions = [1, 3]", "a list of at least two distinct region ids of [1, 2]"),
        ("regions = [1, 1]", "a list of at least two distinct region ids of [1, 2]"),
        ('regions = [1, "2"]', "a list of at least two distinct region ids of [1, 2]"),
        ("regions = [1, 2]\nchannels = 5", "the satellite band's width"),
        ("regions = [1, 2]\nbeams = 2", "beams"),
    ],
)
def test_a_bad_cross_region_table_is_one_line(tmp_path: Path, table: str, said: str):
    text = BEAM.replace("regions = [1, 2]\nchannels = 2", table)
    with pytest.raises(ScenarioError) as err:
        load_scenario(_write(tmp_path, text))
    message = str(err.value)
    assert said in message and "cross_region" in message and "\n" not in message, message


def test_a_beam_needs_a_satellite_operator(tmp_path: Path):
    text = BEAM.replace("satellite_operators = 1", "satellite_operators = 0")
    with pytest.raises(ScenarioError, match="satellite_operators >= 1"):
        load_scenario(_write(tmp_path, text))


@pytest.mark.slow
async def test_a_region_outage_aborts_only_the_beam_and_the_other_region_settles(
    tmp_path: Path,
):
    run = tmp_path / "run"
    summary = await Simulation(load_scenario(_write(tmp_path, BEAM)), run).run()
    # epochs 1 and 3: both regions up, committed; epoch 2: region 2 is down, never
    # votes, and the lease aborts at its deadline on the root
    assert summary["cross_region"] == {"proposed": 3, "committed": 2, "aborted": 1}
    rows = {(int(r["epoch"]), int(r["region"])): r for r in _region_rows(run)}
    assert rows[(2, 2)]["note"].startswith("region is down")
    # region 1 settles every epoch, the outage epoch included
    assert all(rows[(e, 1)]["note"] == "" for e in range(4))
    result = await run_audit(run)
    assert result.ok, [v.line() for v in result.violations]

    # and trades through it: the job's leases, none of them the aborted beam's part
    assert int(rows[(2, 1)]["leases"]) >= 1 and int(rows[(2, 1)]["welfare_wei"]) > 0


@pytest.mark.slow
async def test_a_run_with_beams_resumes_to_the_uninterrupted_run(tmp_path: Path):
    scenario = _write(tmp_path, BEAM)
    whole = await Simulation(load_scenario(scenario), tmp_path / "whole").run()

    def interrupt(report) -> None:
        if report.epoch == 1:  # after a committed beam, before the aborted one
            raise KeyboardInterrupt

    out = tmp_path / "run"
    first = await Simulation(load_scenario(scenario), out, progress=interrupt).run()
    assert first["complete"] is False
    resumed = await Simulation(load_scenario(out / "scenario.toml"), out, resume=True).run()
    assert resumed["cross_region"] == whole["cross_region"]
    assert resumed["history_sha256"] == whole["history_sha256"]
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()


@pytest.mark.slow
async def test_a_crashed_seller_proposes_no_beam(tmp_path: Path):
    text = BEAM.replace(
        "region_outage = { region = 2, from_epoch = 2, to_epoch = 3 }",
        'agent_crashes = [ { agent = "satellite-0", epoch = 2 } ]',
    )
    run = tmp_path / "run"
    summary = await Simulation(load_scenario(_write(tmp_path, text)), run).run()
    assert summary["cross_region"] == {"proposed": 1, "committed": 1, "aborted": 0}
    assert (await run_audit(run)).ok
