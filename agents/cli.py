"""The ``specledger`` command line.

    specledger contracts build [--check]
    specledger testnet up --regions N [--dir D] [--port P] [--json]
    specledger testnet down [--dir D]
    specledger bench ledger [--backend embedded|rpc] [--url URL] [--n N] [--json]
    specledger bench training [--json]
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

from ledger.errors import LedgerError

F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)
_out = Console()


def _clear_errors(fn: F) -> F:
    """Turn our own errors into one red line and exit status 1 (2 for bad usage)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LedgerError as exc:
            _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group()
@click.version_option(package_name="specledger")
def main() -> None:
    """specledger: a sharded EVM marketplace for spectrum and compute leases."""


# -- contracts -------------------------------------------------------------------------
@main.group()
def contracts() -> None:
    """Build and check the compiled Vyper contract artifacts."""


@contracts.command("build")
@click.option("--check", is_flag=True, help="Only check that every artifact is present and fresh.")
@_clear_errors
def contracts_build(check: bool) -> None:
    """Compile contracts/*.vy into contracts/build/<Name>.json."""
    from ledger.artifacts import build_all, check_all

    if check:
        problems = check_all()
        for problem in problems:
            _err.print(f"[red]stale:[/red] {problem}", highlight=False)
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
    from ledger.testnet import testnet_up

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
    from ledger.testnet import testnet_down

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
    if as_json:
        _print_json(result)
    else:
        table = Table("figure", "value", title=f"bench ledger ({backend})")
        for key, value in result.items():
            table.add_row(key, str(value))
        _out.print(table)


@bench.command("training")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_training_cmd(repeats: int, as_json: bool) -> None:
    """Split vs monolithic step time, equivalence, and uplink bytes vs full FedAvg."""
    from training.bench import bench_training

    result = bench_training(repeats)
    if as_json:
        _print_json(result)
    else:
        table = Table("figure", "value", title="bench training")
        for key, value in result.items():
            table.add_row(key, str(value))
        _out.print(table)


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
