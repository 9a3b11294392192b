"""``specledger audit``: rebuild and verify a run from its chains."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ._base import _clear_errors, _out, _print_json, main


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
@click.option(
    "--reindex",
    is_flag=True,
    help="Rebuild RUN_DIR/audit.sqlite from the chains and clear its alarms.",
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
    reindex: bool,
) -> None:
    """Rebuild and verify every lease from the chains; exit 0 only when all checks hold."""
    import dataclasses

    from ledger.audit import export_leases, render_report, run_audit

    if (run_dir is None) == (manifest is None):
        raise click.UsageError("give a RUN_DIR or --manifest testnet.json (one of them)")
    if (fmt is None) != (export_to is None):
        raise click.UsageError("--export and --to go together")
    if reindex and (run_dir is None or at_block is not None):
        raise click.UsageError("--reindex rebuilds a RUN_DIR's index as of the heads")
    result = asyncio.run(run_audit(run_dir, manifest, at_block, reindex=reindex))
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
        "violations": [dataclasses.asdict(v) for v in result.violations],
        "warnings": [dataclasses.asdict(v) for v in result.warnings],
        "notes": result.notes,
    }
    if as_json:
        _print_json(verdict)
    else:
        lines = [
            *(v.line() for v in result.violations),
            *("warning: " + v.line() for v in result.warnings),
            *result.notes,
        ]
        for line in lines:
            _out.print(line, highlight=False, soft_wrap=True, markup=False)
        _out.print(
            f"{'OK' if result.ok else 'FAILED'}: {len(result.leases)} leases, "
            f"{len(result.settlements)} settlements, {len(result.checkpoints)} "
            f"checkpoints, {len(result.violations)} violation(s), "
            f"{len(result.warnings)} warning(s)"
        )
    sys.exit(0 if result.ok else 1)
