"""``specledger sweep``: experiment files, a real dask LocalCluster of 2 worker processes on
127.0.0.1, real parquet, real PNGs, resume, failures, the README's notebook example."""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from agents.cli import main
from agents.errors import ExperimentError
from agents.experiments import tables
from agents.experiments.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples/experiments/tiny.toml"
BASE = ROOT / "examples/experiments/scenarios/tiny.toml"


def _experiment(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(f'scenario = "{BASE}"\n' + text)
    return path


# -- the experiment file (fast) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[grid]\n"regions.0.mechansim" = ["second_price"]\n',
            "[grid]: regions.0.mechansim: names no scenario field "
            "(did you mean 'regions.0.mechanism'?)",
        ),
        (
            '[grid]\n"participants.edge_device" = [3]\n',
            "(did you mean 'participants.edge_devices'?)",
        ),
        ('[grid]\n"regions.1.mechanism" = ["bundle"]\n', "regions.1: expected an index"),
        ('[grid]\n"job.rounds" = []\n', "job.rounds: expected a non-empty list"),
        ('[zip]\n"job.rounds" = [1]\n"epochs" = [2, 3]\n', "expected lists of one length"),
        ('[grid]\n"seed" = [1, 2]\n', "seed: the seeds are the experiment's seeds"),
        ("sedes = [1]\n", "sedes: unknown key (did you mean 'seeds'?)"),
        ("seeds = [1, 1]\n", "seeds: expected a non-empty list of distinct integers"),
        ('[grid]\n"job.rounds" = [5]\n', "no point is a valid scenario"),
    ],
    ids=[
        "typo-suggested",
        "near-field",
        "index-out-of-range",
        "empty-list",
        "zip-lengths",
        "seed-in-grid",
        "unknown-top-key",
        "repeated-seed",
        "every-point-invalid",
    ],
)
def test_bad_experiment_is_refused_in_one_line(tmp_path: Path, text: str, message: str):
    with pytest.raises(ExperimentError) as caught:
        load_experiment(_experiment(tmp_path, text))
    assert message in str(caught.value)
    assert str(caught.value).startswith("exp.toml: ")
    assert "\n" not in str(caught.value)


def test_cli_refuses_unknown_key_with_the_nearest_one(tmp_path: Path):
    path = _experiment(tmp_path, '[grid]\n"job.round" = [1]\n')
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "error: exp.toml: [grid]: job.round: names no scenario field" in result.output
    assert "(did you mean 'job.rounds'?)" in result.output
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_grid_times_zip_times_seeds(tmp_path: Path):
    # unquoted dotted keys read as nested tables: they are joined back
    exp = load_experiment(
        _experiment(
            tmp_path,
            "seeds = [4, 5]\n[grid]\nregions.0.mechanism = ['second_price', 'bundle']\n"
            "[zip]\n'epochs' = [2, 3, 4]\n'job.rounds' = [1, 2, 1]\n",
        )
    )
    runs = exp.runs()
    assert len(runs) == 2 * 3 * 2
    points = [dict(r.params) for r in runs[::2]]
    assert points[:3] == [
        {"regions.0.mechanism": "second_price", "epochs": e, "job.rounds": k}
        for e, k in [(2, 1), (3, 2), (4, 1)]
    ]
    import tomllib

    scenario = tomllib.loads(runs[3].scenario_toml)  # point 1 (epochs 3), seed 5
    assert (scenario["seed"], scenario["epochs"], scenario["job"]["rounds"]) == (5, 3, 2)
    assert scenario["regions"][0]["mechanism"] == "second_price"
    assert scenario["participants"] == tomllib.loads(BASE.read_text())["participants"]
    assert len({r.point_id for r in runs}) == 6 and all(not r.invalid for r in runs)


def test_a_point_the_scenario_refuses_is_kept_as_invalid(tmp_path: Path):
    exp = load_experiment(_experiment(tmp_path, "[grid]\n'job.devices_per_round' = [2, 4]\n"))
    invalid = {dict(r.params)["job.devices_per_round"]: r.invalid for r in exp.runs()}
    assert invalid[2] == ""
    assert "job.devices_per_round: expected an integer <= 3 (the edge devices), got 4" in invalid[4]


def test_aggregate_is_a_t_interval_over_seeds():
    rows = [
        {"run_id": f"p-{s}", "point_id": "p", "x": 1, "seed": s, "status": "ok", "m": v}
        for s, v in [(1, 2.0), (2, 4.0), (3, 9.0)]
    ]
    rows.append({"run_id": "q-1", "point_id": "q", "x": 2, "seed": 1, "status": "failed"})
    agg = tables.aggregate(tables.results_frame(rows, ["x"]), ["x"]).set_index("point_id")
    # by hand: mean 5, s = sqrt(13), t(0.975, 2) = 4.302653 -> half-width 8.957
    half = 4.302652729911275 * math.sqrt(13) / math.sqrt(3)
    assert agg.loc["p", "m"] == pytest.approx(5.0)
    assert agg.loc["p", ["m_lo", "m_hi"]].tolist() == pytest.approx([5 - half, 5 + half])
    assert (agg.loc["p", "runs"], agg.loc["q", "runs"], agg.loc["q", "failed"]) == (3, 0, 1)
    assert math.isnan(agg.loc["q", "m"])


def test_results_hash_ignores_timings_only():
    row = {"run_id": "a", "point_id": "p", "seed": 1, "status": "ok", "leases": 5}
    one = tables.results_frame([{**row, "wall_s": 1.0, "cpu_s": 0.5}], [])
    two = tables.results_frame([{**row, "wall_s": 9.0, "cpu_s": 7.0}], [])
    other = tables.results_frame([{**row, "leases": 6, "wall_s": 1.0}], [])
    assert tables.results_sha256(one) == tables.results_sha256(two)
    assert tables.results_sha256(one) != tables.results_sha256(other)


# -- real sweeps on a real cluster ---------------------------------------------------------------
@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from agents.experiments.sweep import cluster_client

    with cluster_client(workers=2) as c:
        info = c.scheduler_info()["workers"]
        assert len(info) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in info)
        yield c


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, client: object) -> dict[str, object]:
    """The tiny sweep (8 runs) into tmp/runs/tiny, one run's directory blocked by a file."""
    from rich.console import Console

    from agents.experiments.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "runs" / "tiny"
    exp = load_experiment(TINY)
    blocked = exp.runs()[5].run_id
    (out / "runs").mkdir(parents=True)
    shutil.copy(TINY, out / "experiment.toml")  # a sweep's folder, as a rerun finds it
    (out / "runs" / blocked).write_text("not a run\n")
    shown = io.StringIO()
    first = run_sweep(exp, out, client=client, console=Console(file=shown, width=100))
    return {"tmp": tmp, "out": out, "first": first, "blocked": blocked, "shown": shown}


@pytest.mark.slow
@pytest.mark.multiproc
def test_sweep_writes_results_parquet_plots_and_page(swept: dict):
    out, first = swept["out"], swept["first"]
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 8 and results["run_id"].is_unique
    assert set(results["seed"]) == {1, 2}
    assert results.groupby(["regions.0.mechanism", "participants.edge_devices"]).size().eq(2).all()
    ok = results[results["status"] == "ok"]
    assert len(ok) == 7 and ok["audit_ok"].eq(1).all()
    assert (ok["leases"] > 0).all() and (ok["cpu_s"] > 0).all()
    for run in ok.itertuples():  # each row is what its run directory says
        summary = json.loads((out / run.run_dir / "summary.json").read_text())
        assert (summary["leases"], summary["seed"]) == (run.leases, run.seed)
        assert summary["history_sha256"] == run.history_sha256
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "results.csv")[["run_id", "seed", "leases"]],
        results[["run_id", "seed", "leases"]],
        check_dtype=False,
    )
    # aggregate: the mean and t-interval of each point, computed again here
    agg = pd.read_csv(out / "aggregate.csv")
    assert len(agg) == 4
    for point in agg.itertuples():
        values = ok[ok["point_id"] == point.point_id]["welfare_wei"].astype(float)
        assert point.welfare_wei == pytest.approx(values.mean())
        if len(values) == 2 and values.std() > 0:
            lo, hi = stats.t.interval(0.95, 1, loc=values.mean(), scale=stats.sem(values))
            assert (point.welfare_wei_lo, point.welfare_wei_hi) == pytest.approx((lo, hi))
    # one PNG per metric the experiment names, each a real image
    import matplotlib.image

    pngs = sorted((out / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["leases.png", "welfare_wei.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(png).shape == (400, 640, 4)
    page = (out / "index.html").read_text()
    assert 'src="plots/leases.png"' in page and 'src="plots/welfare_wei.png"' in page
    assert page.count("</tr>") == 1 + 4  # the aggregate table: a header and 4 points
    assert first.summary["results_sha256"] == tables.results_sha256(results)
    assert "runs" in swept["shown"].getvalue()  # the progress display


@pytest.mark.slow
@pytest.mark.multiproc
def test_a_failed_run_is_a_row_and_the_sweep_goes_on(swept: dict):
    results = swept["first"].results.set_index("run_id")
    failed = results[results["status"] == "failed"]
    assert failed.index.tolist() == [swept["blocked"]]
    assert failed["error"].iloc[0] == (
        f"RunDirError: --out runs/{swept['blocked']} is a file, not a folder"
    )
    assert swept["first"].summary["failed"] == 1 and swept["first"].summary["ok"] == 7


@pytest.mark.slow
@pytest.mark.multiproc
def test_rerun_skips_complete_runs_and_gives_the_same_table(swept: dict, client: object):
    from agents.experiments.sweep import run_sweep

    out, blocked = swept["out"], swept["blocked"]
    before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    assert len(before) == 7
    (out / "runs" / blocked).unlink()  # what blocked the failed run is gone
    again = run_sweep(load_experiment(TINY), out, client=client)
    assert again.summary["ok"] == 8 and again.summary["reused"] == 7
    reused = again.results.set_index("run_id")["reused"]
    assert not reused[blocked] and reused.drop(blocked).all()
    after = {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    assert {k: after[k] for k in before} == before  # the complete runs were not run again
    # the same experiment and seeds in another folder: the same results table
    fresh = run_sweep(load_experiment(TINY), swept["tmp"] / "fresh", client=client)
    assert fresh.summary["reused"] == 0
    assert fresh.summary["results_sha256"] == again.summary["results_sha256"]


@pytest.mark.slow
@pytest.mark.multiproc
def test_readme_example(swept: dict, monkeypatch: pytest.MonkeyPatch, capsys):
    readme = (ROOT / "README.md").read_text()
    assert "from agents import open_run" in readme  # the README's block is this one
    start = readme.index("```python\nfrom agents import open_run") + len("```python\n")
    assert readme[start : readme.index("```", start)] == README_EXAMPLE
    monkeypatch.chdir(swept["tmp"])
    exec(compile(README_EXAMPLE, "README", "exec"), {})
    printed = capsys.readouterr().out
    assert "double_auction" in printed and "completed" in printed


README_EXAMPLE = """\
from agents import open_run, open_sweep

sweep = open_sweep("runs/tiny")  # the --out of `specledger sweep`
print(sweep.aggregate[["regions.0.mechanism", "participants.edge_devices", "leases"]])
run = open_run(sweep.path / sweep.results.run_dir[0])
print(run.leases.groupby("state").size(), run.epochs.welfare_wei.sum())
"""


@pytest.mark.slow
@pytest.mark.multiproc
def test_bench_sweep_json(tmp_path: Path):
    path = _experiment(tmp_path, "seeds = [1]\n[grid]\n'participants.edge_devices' = [3, 4]\n")
    args = ["bench", "sweep", "--experiment", str(path), "--repeats", "1", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    bench = json.loads(result.output[result.output.index("{") :])
    one, two = bench["workers"]["1"], bench["workers"]["2"]
    walls = (one["sweep_wall_s"]["median"], two["sweep_wall_s"]["median"])
    assert bench["runs"] == 2 and bench["same_results_sha256"] is True
    assert bench["speedup_2_workers"] == pytest.approx(walls[0] / walls[1], rel=1e-2)
    for figures in (one, two):
        assert figures["run_cpu_s_sum"]["median"] > 0
        assert 0 < figures["dask_overhead_per_run_s"]["round_trip_s"] < walls[1]
