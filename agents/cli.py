"""The ``specledger`` command line.

    specledger contracts build [--check]
    specledger testnet up --regions N [--dir D] [--port P] [--json]
    specledger testnet down [--dir D]
    specledger bench ledger [--backend embedded|rpc] [--url URL] [--n N] [--json]
    specledger bench training [--json]
    specledger bench parallel [--world N] [--steps N] [--objective energy|latency|mixed] [--json]
    specledger plan POOL.toml [--objective energy|latency|mixed] [--json]
    specledger bench market [--agents N ...] [--json]
    specledger simulate SCENARIO --out DIR [--backend embedded|rpc] [--manifest testnet.json]
    specledger audit (RUN_DIR | --manifest testnet.json) [--json] [--at-block N]
                     [--export csv|parquet|json --to PATH] [--report PATH]
    specledger bench audit [--min-leases N] [--json]
    specledger demo [--out DIR] [--backend embedded|rpc] [--url URL]

Every failure we foresee ends with one line on stderr that says what is wrong
and what to do, and a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from agents.errors import AgentError
from ledger.errors import LedgerError
from training.errors import TrainingError

F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)
_out = Console()


def _clear_errors(fn: F) -> F:
    """Turn our own errors into one red line and exit status 1 (2 for bad usage)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LedgerError, AgentError, TrainingError) as exc:
            _err.print("[red]error:[/red] ", end="")
            _err.print(str(exc), highlight=False, soft_wrap=True, markup=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _show(result: dict[str, Any], title: str, as_json: bool) -> None:
    """A benchmark's result: one JSON object, or a two-column table for people."""
    if as_json:
        _print_json(result)
        return
    table = Table("figure", "value", title=title)
    for key, value in result.items():
        table.add_row(key, str(value))
    _out.print(table)


@click.group()
@click.version_option(package_name="specledger")
def main() -> None:
    """specledger: a sharded EVM marketplace for spectrum and compute leases."""
    from ledger.chain import use_fast_keccak

    use_fast_keccak()  # the entry point chooses eth-hash's keccak (safe-pysha3, ~4x faster)


# -- contracts -------------------------------------------------------------------------
@main.group()
def contracts() -> None:
    """Build and check the compiled Vyper contract artifacts."""


@contracts.command("build")
@click.option("--check", is_flag=True, help="Only check that every artifact is present and fresh.")
@_clear_errors
def contracts_build(check: bool) -> None:
    """Compile contracts/*.vy into contracts/build/<Name>.json."""
    from ledger.chain.artifacts import build_all, check_all

    if check:
        problems = check_all()
        for problem in problems:
            _err.print("[red]stale:[/red] ", end="")
            _err.print(problem, highlight=False, markup=False)
        if problems:
            _err.print("run `specledger contracts build` and commit contracts/build/")
            sys.exit(1)
        click.echo("all contract artifacts are fresh")
        return
    for path in build_all():
        click.echo(f"built {path}")


# -- testnet ---------------------------------------------------------------------------
@main.group()
def testnet() -> None:
    """Start and stop a local anvil testnet (one root chain + region chains)."""


@testnet.command("up")
@click.option(
    "--regions", type=click.IntRange(min=1), required=True, help="Number of region chains."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path(".testnet"),
    show_default=True,
    help="Where testnet.json and the node logs go.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="First port (root); regions take the next ones. Default: free ports.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@_clear_errors
def testnet_up_cmd(regions: int, directory: Path, port: int | None, as_json: bool) -> None:
    """Start the root chain and N region chains as anvil processes."""
    from ledger.chain.testnet import testnet_up

    nodes = testnet_up(regions, directory, base_port=port)
    if as_json:
        _print_json(
            {"manifest": str(directory / "testnet.json"), "nodes": [n.to_json() for n in nodes]}
        )
        return
    table = Table("name", "chain id", "url", "pid", title=f"testnet in {directory}")
    for n in nodes:
        table.add_row(n.name, str(n.chain_id), n.url, str(n.pid))
    _out.print(table)


@testnet.command("down")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path(".testnet"),
    show_default=True,
)
@_clear_errors
def testnet_down_cmd(directory: Path) -> None:
    """Stop exactly the processes recorded in DIR/testnet.json."""
    from ledger.chain.testnet import testnet_down

    stopped = testnet_down(directory)
    click.echo(f"stopped {len(stopped)} node(s): {', '.join(stopped) or '-'}")


# -- bench -------------------------------------------------------------------------------
@main.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object with --json."""


@bench.command("ledger")
@click.option(
    "--backend", type=click.Choice(["embedded", "rpc"]), default="embedded", show_default=True
)
@click.option("--url", default=None, help="rpc: a node to measure (default: start an anvil).")
@click.option("--n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--settle-buyers",
    type=click.IntRange(1, 128),
    default=100,
    show_default=True,
    help="Leases per settled epoch in the protocol figures.",
)
@click.option(
    "--scaling/--no-scaling",
    default=True,
    show_default=True,
    help="Also measure regions_scaling (1, 2, 4 regions on anvil, one process each).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_ledger_cmd(
    backend: str, url: str | None, n: int, settle_buyers: int, scaling: bool, as_json: bool
) -> None:
    """Transactions, calls, signatures, settlement gas and the epoch protocol's speed."""
    from ledger.bench import bench_ledger

    result = asyncio.run(bench_ledger(backend, n, url, settle_buyers, scaling))
    _show(result, f"bench ledger ({backend})", as_json)


@bench.command("training")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_training_cmd(repeats: int, as_json: bool) -> None:
    """Split vs monolithic step time, equivalence, and uplink bytes vs full FedAvg."""
    from training.bench import bench_training

    result = bench_training(repeats)
    _show(result, "bench training", as_json)


@bench.command("parallel")
@click.option("--world", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--objective", type=click.Choice(["energy", "latency", "mixed"]), default="energy")
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_parallel_cmd(world: int, steps: int, objective: str, as_json: bool) -> None:
    """Planner estimates against real gloo runs of data/sequence/tensor/pipeline parallelism."""
    from training.parallel.bench import bench_parallel

    result = bench_parallel(world, steps, objective)  # type: ignore[arg-type]
    _show(result, "bench parallel", as_json)


@main.command("plan")
@click.argument("pool", type=click.Path(path_type=Path))
@click.option(
    "--objective",
    type=click.Choice(["energy", "latency", "mixed"]),
    default=None,
    help="Overrides the pool file's objective.",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def plan_cmd(pool: Path, objective: str | None, as_json: bool) -> None:
    """Pick data, sequence, tensor or pipeline parallelism for a pool of edge devices."""
    from dataclasses import asdict

    from training.parallel.lease import lease_request
    from training.parallel.planner import plan
    from training.parallel.pool import load_pool

    pf = load_pool(pool)
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


# -- simulate ----------------------------------------------------------------------------------
@main.command("simulate")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The run directory to write (must not hold a run yet).",
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
@_clear_errors
def simulate_cmd(scenario: Path, out: Path, backend: str, manifest: Path | None) -> None:
    """Run a scenario: agents bid, regions settle, the training job's rounds run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agents.errors import AgentError
    from agents.run import EpochReport, Simulation
    from agents.scenario import load_scenario

    try:
        sc = load_scenario(scenario)
    except AgentError as exc:
        _err.print("[red]error:[/red] ", end="")
        _err.print(str(exc), highlight=False, soft_wrap=True, markup=False)
        sys.exit(1)
    if backend == "rpc" and manifest is None:
        _err.print(
            "[red]error:[/red] --backend rpc needs --manifest testnet.json "
            "(start one with `specledger testnet up`)"
        )
        sys.exit(1)
    from ledger.chain import ChainFactory, EmbeddedChains, RpcChains

    chains: ChainFactory = (
        RpcChains(manifest)
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
                advance=1,
                status=(
                    f"leases {report.leases}  defaults {report.defaults}  "
                    f"price(μETH/unit) {prices or '-'}  loss {loss}"
                ),
            )

        try:
            summary = asyncio.run(Simulation(sc, out, chains=chains, progress=show).run())
        except KeyboardInterrupt:  # before the ledger was up: there is no run to finish
            _err.print(f"interrupted while setting up: {out} holds no complete run")
            sys.exit(130)
    _print_json(summary)
    if summary["interrupted"]:
        sys.exit(130)


@bench.command("market")
@click.option(
    "--agents",
    "sizes",
    type=click.IntRange(min=20),
    multiple=True,
    default=(100, 1000),
    show_default=True,
    help="Run sizes (repeatable).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_market_cmd(sizes: tuple[int, ...], as_json: bool) -> None:
    """Orders admitted per second and epoch wall time for 100 and 1,000 agents."""
    from agents.bench import bench_market

    result = asyncio.run(bench_market(tuple(sizes)))
    if as_json:
        _print_json(result)
    else:
        table = Table("agents", "bids_per_s", "epoch_s", "setup_s", title="bench market")
        for row in result["sizes"]:
            table.add_row(
                str(row["agents"]), str(row["bids_per_s"]), str(row["epoch_s"]), str(row["setup_s"])
            )
        _out.print(table)


# -- audit -----------------------------------------------------------------------------------
@main.command("audit")
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=None,
    help="Audit the live nodes of a testnet.json instead of a run directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option(
    "--at-block",
    type=click.IntRange(min=0),
    default=None,
    help="The state of every region as of this block of the root chain.",
)
@click.option("--export", "fmt", type=click.Choice(["csv", "parquet", "json"]), default=None)
@click.option("--to", "export_to", type=click.Path(path_type=Path), default=None)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a self-contained HTML report here.",
)
@_clear_errors
def audit_cmd(
    run_dir: Path | None,
    manifest: Path | None,
    as_json: bool,
    at_block: int | None,
    fmt: str | None,
    export_to: Path | None,
    report: Path | None,
) -> None:
    """Rebuild and verify every lease from the chains; exit 0 only when all checks hold."""
    import dataclasses

    from ledger.audit import export_leases, render_report, run_audit

    if (run_dir is None) == (manifest is None):
        raise click.UsageError("give a RUN_DIR or --manifest testnet.json (one of them)")
    if (fmt is None) != (export_to is None):
        raise click.UsageError("--export and --to go together")
    result = asyncio.run(run_audit(run_dir, manifest, at_block))
    if fmt and export_to:
        export_leases(result, fmt, export_to)
    if report:
        tmp = report.with_name(report.name + ".tmp")
        tmp.write_text(render_report(result))
        tmp.replace(report)
    verdict = {
        "ok": result.ok,
        "leases": len(result.leases),
        "leases_verified": result.leases_verified,
        "settlements": len(result.settlements),
        "checkpoints": len(result.checkpoints),
        "rounds": len(result.rounds),
        "at_block": at_block,
        "chains": [dataclasses.asdict(c) for c in result.chains],
        "violations": [
            {
                "check": v.check,
                "chain": v.chain,
                "block": v.block,
                "tx": v.tx,
                "lease": v.lease,
                "detail": v.detail,
            }
            for v in result.violations
        ],
    }
    if as_json:
        _print_json(verdict)
    else:
        for v in result.violations:
            _out.print(v.line(), highlight=False, soft_wrap=True, markup=False)
        _out.print(
            f"{'OK' if result.ok else 'FAILED'}: {len(result.leases)} leases, "
            f"{len(result.settlements)} settlements, {len(result.checkpoints)} "
            f"checkpoints, {len(result.violations)} violation(s)"
        )
    sys.exit(0 if result.ok else 1)


@bench.command("audit")
@click.option("--min-leases", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_audit_cmd(min_leases: int, as_json: bool) -> None:
    """leases_verified_per_s over a generated run with at least --min-leases leases."""
    from agents.bench import bench_audit

    result = asyncio.run(bench_audit(min_leases))
    _show(result, "bench audit", as_json)


# -- demo --------------------------------------------------------------------------------
@main.command("demo")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True
)
@click.option(
    "--backend", type=click.Choice(["embedded", "rpc"]), default="embedded", show_default=True
)
@click.option("--url", default=None, help="rpc: the node to use.")
@_clear_errors
def demo_cmd(out: Path, backend: str, url: str | None) -> None:
    """The end-to-end path that exists today: chain, contract, transactions, reopen."""
    from agents.demo import run_demo

    summary = asyncio.run(run_demo(out, backend, url, echo=click.echo))
    _print_json(summary)


if __name__ == "__main__":
    main()
