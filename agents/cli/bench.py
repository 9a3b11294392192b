"""``specledger bench ...``: every benchmark, one JSON object out."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from ._base import _clear_errors, _out, _print_json, _show, main


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


@bench.command("audit")
@click.option("--min-leases", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_audit_cmd(min_leases: int, as_json: bool) -> None:
    """leases_verified_per_s over a generated run with at least --min-leases leases."""
    from agents.bench import bench_audit

    result = asyncio.run(bench_audit(min_leases))
    _show(result, "bench audit", as_json)
