"""``specledger sweep`` and ``bench sweep``: an experiment's runs on dask, and their speed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._base import _clear_errors, _err, _print_json, _show, main
from .bench import bench

DEFAULT_EXPERIMENT = Path(__file__).resolve().parents[2] / "examples/experiments/tiny.toml"


@main.command("sweep")
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The sweep's folder: new, empty, or an earlier sweep's (its complete runs are reused).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes of the local dask cluster on 127.0.0.1 [default: 2].",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="tcp://HOST:PORT of a running dask scheduler (`dask scheduler`) instead of a "
    "local cluster; --out must be the same path on every worker.",
)
@_clear_errors
def sweep_cmd(experiment: Path, out: Path, workers: int | None, scheduler: str | None) -> None:
    """Run an experiment's grid of scenarios times seeds; write results, plots, index.html."""
    from agents.experiments.experiment import load_experiment
    from agents.experiments.sweep import run_sweep

    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers sizes a local cluster: not with --scheduler")
    exp = load_experiment(experiment)  # a bad file fails before any cluster starts
    for run in exp.runs():
        if run.invalid and run.seed == exp.seeds[0]:
            _err.print(f"warning: {run.point_id} {dict(run.params)}: {run.invalid}", markup=False)
    result = run_sweep(exp, out, workers=workers or 2, scheduler=scheduler, console=_err)
    _print_json(result.summary)
    if result.summary["failed"]:
        _err.print(
            f"[red]error:[/red] {result.summary['failed']} of {result.summary['runs']} runs "
            f"failed: their errors are in {out / 'results.csv'} (column error)"
        )
        sys.exit(1)


@bench.command("sweep")
@click.option(
    "--experiment",
    type=click.Path(path_type=Path),
    default=DEFAULT_EXPERIMENT,
    show_default="examples/experiments/tiny.toml",
)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_sweep_cmd(experiment: Path, repeats: int, as_json: bool) -> None:
    """The same small sweep on 1 and 2 local dask workers: speedup_2_workers, CPU per
    wall second and the dask overhead per run (medians of --repeats, min, max)."""
    from agents.experiments.bench import bench_sweep

    _show(bench_sweep(experiment, repeats), "bench sweep", as_json)
