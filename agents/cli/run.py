"""``specledger plan`` and ``simulate``: a pool planned, a scenario run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from ._base import _clear_errors, _err, _out, _print_json, main


@main.command("plan")
@click.argument("pool", type=click.Path(path_type=Path))
@click.option(
    "--objective",
    type=click.Choice(["energy", "latency", "mixed"]),
    default=None,
    help="Overrides the pool file's objective.",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=None,
    help="Compare the four modes side by side on this many devices (the fastest).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def plan_cmd(pool: Path, objective: str | None, devices: int | None, as_json: bool) -> None:
    """Pick data, sequence, tensor or pipeline parallelism for a pool of edge devices."""
    from dataclasses import asdict

    from training.parallel.lease import lease_request
    from training.parallel.planner import plan
    from training.parallel.pool import load_pool

    pf = load_pool(pool)
    if devices is not None:
        _side_by_side(pf, devices, objective or pf.objective, as_json)
        return
    chosen = plan(pf.shape, pf.devices, objective or pf.objective, energy_weight=pf.energy_weight)  # type: ignore[arg-type]
    lease = lease_request(
        chosen,
        pf.steps,
        channel_width_hz=pf.channel_width_hz,
        spectral_efficiency_bps_per_hz=pf.spectral_efficiency_bps_per_hz,
    )
    result = {
        "objective": chosen.objective,
        "params": pf.shape.params,
        "chosen": asdict(chosen.chosen),
        "others": {m: {"why": chosen.reasons[m], **asdict(e)} for m, e in chosen.others.items()},
        "lease": asdict(lease),
        "sources": pf.sources,
    }
    if as_json:
        _print_json(result)
        return
    c = chosen.chosen
    table = Table("mode", "devices", "step s", "energy J", "GiB/device", "bytes/step")
    for e in [c, *chosen.others.values()]:
        table.add_row(
            e.mode + (" (chosen)" if e is c else ""),
            str(e.devices),
            f"{e.step_s:.4g}",
            f"{e.energy_j:.4g}",
            f"{e.memory_bytes / 2**30:.2f}",
            f"{e.bytes_per_step:,}",
        )
    _out.print(table)
    for mode, why in chosen.reasons.items():
        _out.print(f"{mode}: {why}", highlight=False)
    _out.print(
        f"lease {lease.devices} device(s) ({', '.join(c.device_names)}) and "
        f"{lease.channels_per_device} channel(s) each ({lease.link_bits_per_s / 1e6:,.0f} Mbit/s) "
        f"for {lease.steps} steps, about {lease.duration_s:,.0f} s and {lease.energy_j:,.0f} J",
        highlight=False,
    )


def _side_by_side(pf: Any, devices: int, objective: str, as_json: bool) -> None:
    """``plan --devices N``: the four modes on the same N devices."""
    from training.parallel.report import side_by_side

    result = side_by_side(pf, devices, objective)  # type: ignore[arg-type]
    if as_json:
        _print_json(result)
        return
    table = Table(
        "mode",
        "fits",
        "step s",
        "J",
        "compute",
        "radio",
        "GiB/dev",
        "MB/step",
        title=f"{devices} device(s): {', '.join(result['device_names'])}",
        box=box.SIMPLE,
        pad_edge=False,
    )
    for mode, row in result["modes"].items():
        table.add_row(
            mode + ("*" if mode == result["chosen"] else ""),
            "yes" if row["fits"] else "no",
            f"{row['step_s']:.3g}",
            f"{row['energy_j']:.3g}",
            f"{row['compute_energy_j']:.3g}",
            f"{row['radio_energy_j'] + row['link_energy_j']:.3g}",
            f"{row['memory_bytes'] / 2**30:.1f}",
            f"{row['bytes_per_step'] / 1e6:.3g}",
        )
    _out.print(table)
    for mode, row in result["modes"].items():
        if not row["fits"]:
            _out.print(f"{mode}: {row['why_not']}", highlight=False)
    if result["chosen"] is None:
        _out.print(f"no mode fits on {devices} device(s)", highlight=False)
        return
    _out.print(
        f"* chosen for {objective}: {result['chosen']}; lowest energy {result['lowest_energy']}, "
        f"shortest step {result['lowest_step_s']}",
        highlight=False,
    )


# -- simulate ----------------------------------------------------------------------------------
@main.command("simulate")
@click.argument("scenario", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The run directory to write: a new or empty folder.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the killed or interrupted run in this directory from its last "
    "complete epoch (embedded runs only: an rpc run's chains are in its nodes). "
    "SCENARIO may be left out; given, it must be the run's own.",
)
@click.option(
    "--backend", type=click.Choice(["embedded", "rpc"]), default="embedded", show_default=True
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=None,
    help="rpc: the testnet.json of `specledger testnet up`.",
)
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(min=0.5, max=600),
    default=10.0,
    show_default=True,
    help="rpc: seconds a node may take to answer one request before it counts as down.",
)
@_clear_errors
def simulate_cmd(
    scenario: Path | None,
    out: Path | None,
    resume: Path | None,
    backend: str,
    manifest: Path | None,
    rpc_timeout: float,
) -> None:
    """Run a scenario: agents bid, regions settle, the training job's rounds run."""
    from agents.scenario import load_scenario  # pure: no chain library, no torch

    out, scenario = _run_directory(scenario, out, resume, backend)

    # a bad file fails in a second: before anything is written to --out (the preflight
    # above only looks) and before the ledger or training (web3, py-evm, torch) is imported
    sc = load_scenario(scenario)  # a ScenarioError is one red line (_clear_errors)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agents.run import EpochReport, Simulation

    if backend == "rpc" and manifest is None:
        _err.print(
            "[red]error:[/red] --backend rpc needs --manifest testnet.json "
            "(start one with `specledger testnet up`)"
        )
        sys.exit(1)
    from ledger.chain import ChainFactory, EmbeddedChains, RpcChains

    chains: ChainFactory = (
        RpcChains(manifest, timeout_s=rpc_timeout)
        if backend == "rpc" and manifest is not None
        else EmbeddedChains(out / "chains", genesis_timestamp=sc.genesis_timestamp)
    )
    columns = (
        TextColumn("[bold]epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=_err, transient=False) as progress:
        task = progress.add_task("epochs", total=sc.epochs, status="setting up the ledger")

        def show(report: EpochReport) -> None:
            prices = " ".join(f"r{r}:{p / 1e12:.2f}" for r, p in sorted(report.prices.items()))
            loss = "-" if report.round_loss is None else f"{report.round_loss:.3f}"
            progress.update(
                task,
                completed=report.epoch + 1,  # a resumed run starts part-way
                status=(
                    f"leases {report.leases}  defaults {report.defaults}  "
                    f"price(μETH/unit) {prices or '-'}  loss {loss}"
                ),
            )

        try:
            simulation = Simulation(
                sc, out, chains=chains, progress=show, resume=resume is not None
            )
            summary = asyncio.run(simulation.run())
        except KeyboardInterrupt:  # before the ledger was up: there is no run to finish
            _err.print(f"interrupted while setting up: {out} holds no complete run")
            sys.exit(130)
    _print_json(summary)
    if summary.get("stopped"):  # the root chain is gone: one line says so
        _err.print("[red]error:[/red] ", end="")
        _err.print(summary["stopped"], highlight=False, soft_wrap=True, markup=False)
        sys.exit(1)
    if summary["interrupted"]:
        sys.exit(130)


def _run_directory(
    scenario: Path | None, out: Path | None, resume: Path | None, backend: str
) -> tuple[Path, Path]:
    """(the run directory, the scenario file) of a new run (``--out``) or a resumed one."""
    from agents.rundir import preflight_new, resume_scenario

    if (out is None) == (resume is None):
        raise click.UsageError("give --out DIR for a new run, or --resume DIR to continue one")
    if resume is not None:
        if backend != "embedded":
            raise click.UsageError("--resume continues runs on the embedded backend only")
        return resume, resume_scenario(resume, scenario)
    if scenario is None:
        raise click.UsageError("a new run needs its SCENARIO file")
    assert out is not None
    preflight_new(out)  # the run checks again, under the directory's lock
    return out, scenario
