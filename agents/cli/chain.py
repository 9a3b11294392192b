"""``specledger contracts``, ``testnet`` and ``demo``: the chains themselves."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.table import Table

from ._base import _clear_errors, _err, _out, _print_json, main


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
    "--regions",
    required=True,
    help="N region chains with ids 1..N (as in the examples), or the ids themselves: 0,1,2,3.",
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
def testnet_up_cmd(regions: str, directory: Path, port: int | None, as_json: bool) -> None:
    """Start the root chain and the region chains as anvil processes."""
    from ledger.chain.testnet import testnet_up

    nodes = testnet_up(_region_ids(regions), directory, base_port=port)
    if as_json:
        _print_json(
            {"manifest": str(directory / "testnet.json"), "nodes": [n.to_json() for n in nodes]}
        )
        return
    table = Table("name", "chain id", "url", "pid", title=f"testnet in {directory}")
    for n in nodes:
        table.add_row(n.name, str(n.chain_id), n.url, str(n.pid))
    _out.print(table)


def _region_ids(text: str) -> int | list[int]:
    try:
        return [int(i) for i in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise click.BadParameter(
            f"expected a count (3) or region ids (0,1,2), got {text!r}", param_hint="--regions"
        ) from None


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
