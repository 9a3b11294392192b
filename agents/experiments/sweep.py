"""``specledger sweep``: an experiment's runs on dask.distributed, each in its own directory.

Layout of ``DIR``::

    experiment.toml          a copy of the experiment file
    scenarios/<run>.toml     each run's scenario: the base with the point's values and seed
    runs/<point>-seed<k>/    each run's directory, exactly what `specledger simulate` writes
                             (with the audit's index, and sweep.json: its wall and CPU s)
    results.parquet/.csv     one row per run (tables.results_frame)
    aggregate.csv            mean and 95% interval over seeds per point (tables.aggregate)
    plots/<metric>.png       one per metric the experiment names; index.html shows them
    summary.json             counts, and the results table's sha256 (tables.results_sha256)

Runs go to a ``LocalCluster`` of worker processes (one thread each: a run is
single-threaded Python and torch, and processes sidestep the GIL) bound to
127.0.0.1, or to an existing cluster by its scheduler's address; then ``DIR`` must
be the same path on every worker (a shared filesystem), since each worker writes its
runs' directories there. A run is :class:`agents.run.Simulation` on the embedded
backend, as ``simulate`` runs it, then audited (``audit_ok``, and an index that
makes ``open_run`` fast). A run that raises is a row with ``status = "failed"`` and
its error; the sweep goes on. Rerunning the same command reuses every run whose
directory holds a complete ``summary.json`` and reruns the rest from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ExperimentError
from ..rundir import RunLock, is_complete, write_json
from . import plots, tables
from .experiment import Experiment, RunSpec

__all__ = ["SweepResult", "cluster_client", "run_one", "run_sweep"]

RUNS_DIR = "runs"
SCENARIOS_DIR = "scenarios"
TIMING_FILE = "sweep.json"  # in a run directory: the wall and CPU seconds of its run
MARKER = "experiment.toml"  # a folder holding it holds a sweep
POLL_S = 0.5


@dataclass(frozen=True)
class SweepResult:
    out: Path
    results: pd.DataFrame
    aggregate: pd.DataFrame
    summary: dict[str, Any]


# -- one run, on a worker --------------------------------------------------------------------
def _simulate(scenario_file: Path, run_dir: Path) -> dict[str, Any]:
    """The run, as `specledger simulate SCENARIO --out RUN_DIR` runs it; then its audit."""
    from ledger.audit import run_audit
    from ledger.chain import EmbeddedChains
    from ledger.keccak import use_fast_keccak

    from ..run import Simulation
    from ..scenario import load_scenario
    from .books import BookLog

    use_fast_keccak()  # what the CLI's entry point chooses
    sc = load_scenario(scenario_file)
    chains = EmbeddedChains(run_dir / "chains", genesis_timestamp=sc.genesis_timestamp)
    # its books kept: the market's metrics are measured on them (metrics.market_metrics)
    summary = asyncio.run(Simulation(sc, run_dir, chains=chains, books=BookLog(run_dir)).run())
    if not summary.get("complete"):
        raise ExperimentError(f"the run stopped early: {summary.get('stopped') or 'interrupted'}")
    audit = asyncio.run(run_audit(run_dir))
    return {"audit_ok": int(audit.ok), "audit_violations": len(audit.violations)}


def _clear_attempt(run_dir: Path) -> None:
    """Remove what an earlier, unfinished attempt left (unless a live run holds it)."""
    if run_dir.is_dir() and not is_complete(run_dir):
        if (run_dir / "run.lock").exists():
            RunLock(run_dir).acquire().release()  # refuses a directory another run holds
        shutil.rmtree(run_dir)


def _base_row(spec: RunSpec, out: Path) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "point_id": spec.point_id,
        **dict(spec.params),
        "seed": spec.seed,
        "run_dir": f"{RUNS_DIR}/{spec.run_id}",
    }


def _error(exc: BaseException, out: Path) -> str:
    """One line: the error's type and message, paths in the sweep shown relative to it."""
    text = f"{type(exc).__name__}: {exc}".replace(f"{out.resolve()}/", "").replace(f"{out}/", "")
    return " ".join(text.split())


def run_one(spec: RunSpec, out: str) -> dict[str, Any]:
    """Run ``spec`` into ``out/runs/<run_id>`` and return its results row; never raises
    (a failure is the row's ``status`` and ``error``)."""
    where = Path(out)
    run_dir = where / RUNS_DIR / spec.run_id
    row = _base_row(spec, where)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        _clear_attempt(run_dir)
        audit = _simulate(where / SCENARIOS_DIR / f"{spec.run_id}.toml", run_dir)
        row.update(tables.run_metrics(run_dir), **audit, status="ok", error=None)
    except Exception as exc:
        row.update(status="failed", error=_error(exc, where))
    row.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu, reused=False)
    if row["status"] == "ok":
        write_json(run_dir / TIMING_FILE, {k: row[k] for k in ("wall_s", "cpu_s", *_AUDIT)})
    return row


_AUDIT = ("audit_ok", "audit_violations")


def _reused_row(spec: RunSpec, out: Path) -> dict[str, Any]:
    """The row of a run a previous sweep completed, read back from its directory."""
    run_dir = out / RUNS_DIR / spec.run_id
    row = _base_row(spec, out)
    row.update(tables.run_metrics(run_dir), status="ok", error=None, reused=True)
    try:
        row.update(json.loads((run_dir / TIMING_FILE).read_text()))
    except (OSError, ValueError):  # killed between its summary and its timings
        row.update(wall_s=None, cpu_s=None)
    return row


# -- the cluster -------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster_client(workers: int = 2, scheduler: str | None = None) -> Iterator[Any]:
    """A dask ``Client``: of a new ``LocalCluster`` of ``workers`` processes on 127.0.0.1,
    or of the running cluster whose scheduler is at ``scheduler`` (``tcp://HOST:PORT``)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ExperimentError(
                f"--scheduler {scheduler}: no dask scheduler answered ({exc}); start one with "
                f"`dask scheduler` and workers with `dask worker {scheduler}`"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP server on a free port: clusters coexist
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# -- the sweep ---------------------------------------------------------------------------------
def _claim(out: Path, experiment: Experiment) -> RunLock:
    """Make ``out`` (new, empty, or a sweep's), lock it against a second sweep, and keep a
    copy of the experiment and every run's scenario file."""
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} is a file, not a folder")
    if out.is_dir() and not (out / MARKER).exists() and (found := sorted(out.iterdir())):
        shown = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ExperimentError(
            f"--out {out} is not empty ({shown}) and holds no sweep: choose a new or empty folder"
        )
    (out / SCENARIOS_DIR).mkdir(parents=True, exist_ok=True)
    (out / RUNS_DIR).mkdir(exist_ok=True)
    lock = RunLock(out).acquire()
    (out / MARKER).write_bytes(experiment.path.read_bytes())
    for spec in experiment.runs():
        path = out / SCENARIOS_DIR / f"{spec.run_id}.toml"
        if not path.exists() or path.read_text() != spec.scenario_toml:
            path.write_text(spec.scenario_toml)
    return lock


def _epochs(spec: RunSpec) -> int:
    return int(tomllib.loads(spec.scenario_toml).get("epochs", 1))


def _dispatch(
    client: Any, todo: list[RunSpec], out: Path, console: Any
) -> dict[str, dict[str, Any]]:
    """Hand ``todo`` to the cluster; a bar per running run (its epochs, read from the
    summary.json it rewrites after every epoch) and one for the whole sweep."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    futures = {
        client.submit(run_one, spec, str(out), key=f"run-{spec.run_id}", pure=False): spec
        for spec in todo
    }
    rows: dict[str, dict[str, Any]] = {}
    columns = (TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn())
    display = Progress(*columns, console=console, disable=console is None)
    with display:
        overall = display.add_task("runs", total=len(todo))
        bars: dict[str, Any] = {}
        while futures:
            for future, spec in list(futures.items()):
                if future.done():
                    rows[spec.run_id] = _collected(future, spec, out)
                    del futures[future]
                    display.advance(overall)
                    if spec.run_id in bars:
                        display.update(bars.pop(spec.run_id), visible=False)
                    continue
                done = _epochs_done(out / RUNS_DIR / spec.run_id)
                if done is None:
                    continue
                if spec.run_id not in bars:
                    bars[spec.run_id] = display.add_task(
                        f"  {spec.run_id} epoch", total=_epochs(spec)
                    )
                display.update(bars[spec.run_id], completed=done)
            if futures:
                time.sleep(POLL_S)
    return rows


def _epochs_done(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "summary.json").read_text()).get("epochs_run", 0))
    except (OSError, ValueError, TypeError):
        return None  # not started, or its summary is being replaced


def _collected(future: Any, spec: RunSpec, out: Path) -> dict[str, Any]:
    """The row a finished task returned; a task that did not return (its worker died) is a
    failed row saying so."""
    try:
        row: dict[str, Any] = future.result()
        return row
    except Exception as exc:
        row = _base_row(spec, out)
        row.update(status="failed", error=_error(exc, out), reused=False)
        return row


def run_sweep(
    experiment: Experiment,
    out: Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    console: Any = None,
) -> SweepResult:
    """Run every run of ``experiment`` not yet complete in ``out`` and write the tables,
    plots and page. ``client``: an open dask client to use (else one is made from
    ``workers``/``scheduler``); ``console``: a rich Console for the progress bars."""
    began = time.perf_counter()
    lock = _claim(out, experiment)
    try:
        specs = experiment.runs()
        rows: dict[str, dict[str, Any]] = {}
        todo = []
        for spec in specs:
            if spec.invalid:
                rows[spec.run_id] = {
                    **_base_row(spec, out),
                    "status": "failed",
                    "error": f"ExperimentError: invalid point: {spec.invalid}",
                    "reused": False,
                }
            elif is_complete(out / RUNS_DIR / spec.run_id):
                rows[spec.run_id] = _reused_row(spec, out)
            else:
                todo.append(spec)
        if todo and client is not None:
            rows.update(_dispatch(client, todo, out, console))
        elif todo:
            with cluster_client(workers, scheduler) as made:
                rows.update(_dispatch(made, todo, out, console))
        return _write_outputs(experiment, out, [rows[s.run_id] for s in specs], began)
    finally:
        lock.release()


def _write_outputs(
    experiment: Experiment, out: Path, rows: list[dict[str, Any]], began: float
) -> SweepResult:
    swept = experiment.swept
    results = tables.results_frame(rows, swept)
    for name, write in (
        ("results.parquet", lambda p: results.to_parquet(p, index=False)),
        ("results.csv", lambda p: results.to_csv(p, index=False)),
    ):
        tmp = out / (name + ".tmp")
        write(tmp)
        tmp.replace(out / name)
    aggregate = tables.aggregate(results, swept)
    aggregate.to_csv(out / "aggregate.csv.tmp", index=False)
    (out / "aggregate.csv.tmp").replace(out / "aggregate.csv")
    missing = [m for m in experiment.metrics if m not in aggregate]
    notes = [f"metric {m!r}: no such column in the results: not plotted" for m in missing]
    drawn = plots.plot_metrics(
        aggregate, list(experiment.metrics), experiment.x_field, swept, out / "plots"
    )
    plots.write_index(out, f"sweep {experiment.path.name}", drawn, aggregate, notes)
    status = results["status"]
    summary = {
        "experiment": str(experiment.path),
        "runs": len(results),
        "ok": int((status == "ok").sum()),
        "failed": int((status != "ok").sum()),
        "reused": int(results["reused"].fillna(False).astype(bool).sum()),
        "results_sha256": tables.results_sha256(results),
        "plots": [p.name for p in drawn],
        "notes": notes,
        "wall_s": round(time.perf_counter() - began, 2),
    }
    write_json(out / "summary.json", summary)
    return SweepResult(out, results, aggregate, summary)
