"""What every command shares: the group, one red line per failure, the printers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from agents.errors import AgentError
from ledger.errors import LedgerError

F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)
_out = Console()


def _ours(exc: BaseException) -> bool:
    """Whether ``exc`` is an error one of our packages raised on purpose. ``training``
    is looked up, not imported: its package loads torch (seconds), and a command that
    never imported it cannot have raised its errors."""
    training_errors = sys.modules.get("training.errors")
    roots: tuple[type[BaseException], ...] = (LedgerError, AgentError)
    if training_errors is not None:
        roots += (training_errors.TrainingError,)
    return isinstance(exc, roots)


def _clear_errors(fn: F) -> F:
    """Turn our own errors into one red line and exit status 1 (2 for bad usage)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _ours(exc):
                raise
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
    from ledger.keccak import use_fast_keccak  # eth-hash alone: no chain library, no torch

    use_fast_keccak()  # the entry point chooses eth-hash's keccak (safe-pysha3, ~4x faster)


__all__ = ["_clear_errors", "_err", "_out", "_print_json", "_show", "main"]
