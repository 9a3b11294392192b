"""The shipped experiments (examples/experiments/): each loads and says its question, and a
small version of each (first and last value of every swept field, one seed, fewer
epochs) runs on a real 2-worker dask LocalCluster and shows what its full run is for.

The full runs take minutes; their figures are in the README (`specledger sweep
examples/experiments/<name>.toml --out runs/<name>`)."""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.experiments import _toml
from agents.experiments.experiment import load_experiment
from agents.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "examples/experiments"
SHIPPED = ("mechanisms", "stability", "lyapunov", "privacy")
#: the small version's epochs and rounds (stability's outage starts at epoch 8)
SMALL = {
    "mechanisms": {"epochs": 4},
    "stability": {"epochs": 12},
    "lyapunov": {"epochs": 4, "job.rounds": 4},
    "privacy": {"epochs": 3, "job.rounds": 3},
}


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_experiment_says_its_question_and_every_point_is_valid(name: str):
    path = FOLDER / f"{name}.toml"
    assert path.read_text().startswith("# Question: ")
    experiment = load_experiment(path)
    assert all(not spec.invalid for spec in experiment.runs())
    assert experiment.metrics and experiment.x in experiment.grid
    load_scenario(experiment.scenario_path)  # its base scenario, as simulate reads it


def _small(name: str, tmp_path: Path) -> Path:
    """``name``'s experiment cut down: first and last value of each swept field, seed 1."""
    table = tomllib.loads((FOLDER / f"{name}.toml").read_text())
    table["scenario"] = str((FOLDER / table["scenario"]).resolve())
    table["seeds"] = [1]
    grid = {k: list(dict.fromkeys([v[0], v[-1]])) for k, v in table["grid"].items()}
    table["grid"] = {**grid, **{k: [v] for k, v in SMALL[name].items()}}
    path = tmp_path / f"{name}.toml"
    path.write_text(_toml.dumps(table))
    return path


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from agents.experiments.sweep import cluster_client

    with cluster_client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, client: object) -> dict[str, Any]:
    """Every shipped experiment's small version, swept once for the module."""
    from agents.experiments.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("experiments")
    return {
        name: run_sweep(load_experiment(_small(name, tmp)), tmp / name, client=client)
        for name in SHIPPED
    }


def _at(result: Any, **where: Any) -> Any:
    """The aggregate row where each swept field has the given value."""
    frame = result.aggregate
    for key, value in where.items():
        frame = frame[frame[key.replace("__", ".")] == value]
    assert len(frame) == 1, where
    return frame.iloc[0]


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("name", SHIPPED)
def test_the_small_version_runs_clean_and_draws_every_metric(small: dict, name: str):
    from matplotlib.image import imread

    result = small[name]
    results = result.results
    assert (results["status"] == "ok").all(), results["error"].tolist()
    assert (results["audit_ok"] == 1).all()
    experiment = load_experiment(FOLDER / f"{name}.toml")
    for metric in experiment.metrics:
        assert metric in result.aggregate, metric
        assert result.aggregate[metric].notna().any(), metric
    plots = sorted((result.out / "plots").glob("*.png"))
    assert len(plots) == len(experiment.metrics)
    for png in plots:
        assert imread(png).shape[0] > 100  # a picture that decodes


@pytest.mark.slow
@pytest.mark.multiproc
def test_mechanisms_second_price_allocates_the_optimum(small: dict):
    frame = small["mechanisms"].aggregate
    second = frame[frame["regions.0.mechanism"] == "second_price"]
    assert (second["efficiency"] > 0.999).all()  # unit demand, highest values win
    assert ((frame["efficiency"] > 0) & (frame["efficiency"] <= 1 + 1e-9)).all()


def _region_backlog(run_dir: Path, region: str) -> list[str]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [
            r["backlog"]
            for r in csv.DictReader(f)
            if r["kind"] == "region" and r["region"] == region
        ]


@pytest.mark.slow
@pytest.mark.multiproc
def test_stability_backlog_grows_above_capacity_and_an_outage_stays_in_its_region(small: dict):
    result = small["stability"]
    below = _at(result, demand__load=0.5, failures__region_outage__to_epoch=8)
    above = _at(result, demand__load=1.5, failures__region_outage__to_epoch=8)
    assert above["backlog_slope"] > below["backlog_slope"] + 1
    # the beam commits every epoch without the outage; with region 2 down in epochs 8..11
    # (of 12) its lease aborts those 4 epochs and commits the others
    assert below["cross_region.committed"] == below["cross_region.proposed"] == 11
    down = _at(result, demand__load=0.5, failures__region_outage__to_epoch=14)
    assert (down["cross_region.committed"], down["cross_region.aborted"]) == (7, 4)
    # region 3, which the beam does not span, has the same backlog epoch by epoch
    runs = result.results
    for load in (0.5, 1.5):
        at = runs[runs["demand.load"] == load]
        dirs = {
            int(r["failures.region_outage.to_epoch"]): result.out / r["run_dir"]
            for _, r in at.iterrows()
        }
        assert _region_backlog(dirs[8], "3") == _region_backlog(dirs[14], "3")


@pytest.mark.slow
@pytest.mark.multiproc
def test_lyapunov_a_larger_v_trains_more_devices_and_queues_more_delay(small: dict):
    low = _at(small["lyapunov"], job__v=0.001)
    high = _at(small["lyapunov"], job__v=0.3)
    assert high["devices_mean"] >= low["devices_mean"]
    assert high["queue_s_mean"] >= low["queue_s_mean"]


@pytest.mark.slow
@pytest.mark.multiproc
def test_privacy_a_target_is_met_and_costs_received_snr(small: dict):
    free = _at(small["privacy"], job__target_epsilon=0.0)
    private = _at(small["privacy"], job__target_epsilon=8.0)
    assert private["epsilon"] <= 8.0 + 1e-3 < 1e3 < free["epsilon"]
    assert private["received_snr_db"] < free["received_snr_db"] - 20
