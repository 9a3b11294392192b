"""``specledger bench ...``: every benchmark, one JSON object out."""

from __future__ import annotations

import asyncio
from typing import Any

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
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_ledger_cmd(
    backend: str, url: str | None, n: int, settle_buyers: int, as_json: bool
) -> None:
    """Transactions, calls, signatures, settlement gas and the epoch protocol's speed,
    each timed figure the median of 3 repeats with min, max and CPU seconds."""
    from ledger.bench import bench_ledger

    result = asyncio.run(bench_ledger(backend, n, url, settle_buyers))
    _show(result, f"bench ledger ({backend})", as_json)


@bench.command("regions")
@click.option(
    "--regions",
    "counts",
    type=click.IntRange(1, 16),
    multiple=True,
    default=(1, 2, 4),
    show_default=True,
    help="Region counts to measure (repeatable).",
)
@click.option(
    "--buyers",
    type=click.IntRange(1, 128),
    default=100,
    show_default=True,
    help="Leases per region per epoch.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Epochs of every region in one timed repeat (3 repeats).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_regions_cmd(counts: tuple[int, ...], buyers: int, epochs: int, as_json: bool) -> None:
    """Settled leases per second of the live runtime (rpc: anvils of its own, each region
    settling in a process of its own) with 1, 2 and 4 regions side by side."""
    from ledger.bench import bench_regions

    result = bench_regions(tuple(counts), buyers, epochs)
    if as_json:
        _print_json(result)
        return
    table = Table("regions", "leases_per_s", "min", "max", "per_cpu_s", title="bench regions")
    for n, row in result["regions"].items():
        rate = row["leases_per_s"]
        table.add_row(
            n,
            str(rate["median"]),
            str(rate["min"]),
            str(rate["max"]),
            str(rate["per_cpu_s"]["median"]),
        )
    _out.print(table)


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
    default=(100, 1000, 10000),
    show_default=True,
    help="Run sizes (repeatable).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_market_cmd(sizes: tuple[int, ...], as_json: bool) -> None:
    """Epochs of the whole market (offers, bids, leases, lifecycle, a training round)
    with 100, 1,000 and 10,000 agents: medians of 3 timed epochs, min and max."""
    from agents.bench import bench_market

    result = asyncio.run(bench_market(tuple(sizes)))
    if as_json:
        _print_json(result)
        return
    table = Table(
        "agents",
        "market_epoch_s",
        "training_round_s",
        "orders_per_s",
        "leases_per_epoch",
        "setup_s",
        title="bench market (median [min, max])",
    )
    for row in result["sizes"]:
        table.add_row(
            str(row["agents"]),
            _median_range(row["market_epoch_s"]),
            _median_range(row["training_round_s"]),
            _median_range(row["orders_per_s"]),
            str(row["leases_per_epoch"]),
            str(row["setup_s"]["wall_s"]),
        )
    _out.print(table)


def _median_range(figure: dict[str, Any]) -> str:
    return f"{figure['median']} [{figure['min']}, {figure['max']}]"


@bench.command("audit")
@click.option("--min-leases", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Also time the audit of agents.audit_bench.BASELINE_COMMIT (needs git history).",
)
@click.option("--json", "as_json", is_flag=True)
@_clear_errors
def bench_audit_cmd(min_leases: int, baseline: bool, as_json: bool) -> None:
    """leases_verified_per_s over a generated run with at least --min-leases leases, every
    check on: the median of 3 audits (each in a fresh process, with a fresh index), min,
    max, CPU; beside the same figures for the audit before the state, code and calldata
    checks, measured alternately in the same run."""
    from agents.audit_bench import bench_audit

    result = asyncio.run(bench_audit(min_leases, baseline))
    _show(result, "bench audit", as_json)
