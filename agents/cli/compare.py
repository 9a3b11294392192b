"""``specledger compare``: a scenario's books replayed through every mechanism."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ._base import _clear_errors, _err, _out, _print_json, main

#: what a compare output folder may hold already (a rerun keeps its runs)
_OURS = frozenset({"runs", "compare.csv", "compare.json"})


def _seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected seeds like 1,2,3, got {value!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"expected distinct seeds >= 0 like 1,2,3, got {value!r}")
    return seeds


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} is a file: name a folder")
    others = sorted(p.name for p in out.iterdir() if p.name not in _OURS) if out.is_dir() else []
    if others:
        raise click.UsageError(
            f"--out {out} holds other files ({', '.join(others[:3])}): name a new or empty "
            f"folder, or one an earlier compare wrote"
        )


@main.command("compare")
@click.argument("scenario", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for compare.csv, compare.json and each seed's run (runs/seed-N).",
)
@click.option(
    "--seeds",
    callback=_seeds,
    default=None,
    help="Comma-separated seeds, one run each (default: the scenario's seed).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Run this many epochs instead of the scenario's, and at most as many training "
    "rounds (a quicker comparison).",
)
@click.option("--json", "as_json", is_flag=True, help="Print compare.json's content.")
@_clear_errors
def compare_cmd(
    scenario: Path, out: Path, seeds: list[int] | None, epochs: int | None, as_json: bool
) -> None:
    """Freeze every region-epoch's order book and replay it through every mechanism.

    Writes OUT/compare.csv: one row per mechanism, each metric's mean over region-epochs
    and seeds with its 95% interval (_lo, _hi), against the books' exact optimum."""
    from agents.scenario import load_scenario

    _check_out(out)
    sc = load_scenario(scenario)  # a bad file: one red line before anything runs
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agents.experiments.compare import run_compare

    total = (epochs or sc.epochs) * len(seeds or [sc.seed])
    columns = (
        TextColumn("[bold]compare"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=_err, transient=False) as progress:
        task = progress.add_task("epochs", total=total, status="setting up")
        done = [0]

        def epoch_done(seed: int, report: Any) -> None:
            done[0] += 1
            progress.update(task, completed=done[0], status=f"seed {seed} epoch {report.epoch + 1}")

        def stage(text: str) -> None:
            progress.update(task, status=text)

        try:
            result = run_compare(scenario, out, seeds, epochs, epoch_done=epoch_done, stage=stage)
        except KeyboardInterrupt:
            _err.print(f"interrupted: rerun the same command to continue ({out}/runs is kept)")
            sys.exit(130)
    if as_json:
        _print_json(result)
        return
    _show_rows(result)


def _show_rows(result: dict[str, Any]) -> None:
    table = Table(
        "mechanism",
        "efficiency (95% CI)",
        "revenue μETH",
        "buyer surplus μETH",
        "Jain",
        "utilisation",
        "misreport gain wei",
        title=f"{result['books']} books, seeds {result['seeds']}",
    )

    def ci(row: dict[str, Any], key: str) -> str:
        lo, hi = row[f"{key}_lo"], row[f"{key}_hi"]
        spread = "" if lo != lo else f" [{lo:.3f}, {hi:.3f}]"  # NaN: too few books
        return f"{row[key]:.3f}{spread}"

    for row in result["mechanisms"]:
        table.add_row(
            row["mechanism"],
            ci(row, "efficiency"),
            f"{row['revenue_wei'] / 1e12:,.2f}",
            f"{row['buyer_surplus_wei'] / 1e12:,.2f}",
            f"{row['jain_fairness']:.3f}",
            f"{row['utilisation']:.3f}",
            str(row["misreport_gain_wei"]),
        )
    _out.print(table)
    for row in result["mechanisms"]:
        if row["note"]:
            _out.print(f"{row['mechanism']}: {row['note']}", highlight=False)
    _out.print(f"wrote {result['compare_csv']}", highlight=False)
