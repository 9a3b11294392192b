"""A run or a sweep as pandas DataFrames, for notebooks::

    from agents import open_run, open_sweep
    sweep = open_sweep("runs/tiny")
    run = open_run(sweep.path / sweep.results.run_dir[0])

Where each table comes from (the cheapest source that is also faithful):

- ``Run.leases`` and ``Run.settlements``: the audit's index, ``audit.sqlite``, which
  holds every lease and settlement rebuilt from the chains and verified (signatures,
  quorums, escrow): nothing the simulation itself wrote is taken on trust. A sweep
  writes it with each run; for a run without one it is built once on first use (an
  audit of the run, about a second for a small run); an index the audit would
  extend is brought up to date the same way.
- ``Run.epochs``: ``metrics.csv``'s region rows (one per region per epoch: clearing
  price, utilisation, welfare, leases, defaults, a note when it did not settle).
- ``Run.rounds``: ``rounds.jsonl``, each line byte for byte what the root's
  ``RoundConfirmed`` hashes (the audit checks it).

Amounts in wei stay exact integers (Python ints where they exceed int64).
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ExperimentError, RunDirError
from ..rundir import read_summary

__all__ = ["Run", "Sweep", "open_run", "open_sweep"]

INDEX = "audit.sqlite"
_WEI = ("price_wei", "total_price_wei", "amount_wei")


def _number(text: str) -> Any:
    """A CSV cell as what it holds: an int, a float, None for an empty cell, or the text."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _in_thread(coro: Any) -> Any:
    """Run ``coro`` to its end even where an event loop already runs (a notebook's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class Run:
    """One run directory (``specledger simulate --out``, or a sweep's ``runs/...``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        summary = read_summary(path)
        if summary is None:
            raise RunDirError(
                f"{path}: holds no run (no readable summary.json): give a directory that "
                f"`specledger simulate --out` or `specledger sweep` wrote"
            )
        self.summary: dict[str, Any] = summary

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, leases={self.summary.get('leases')})"

    def _index(self) -> Path:
        """The audit's index, built (or extended) by an audit of the run's chains."""
        index = self.path / INDEX
        if not index.exists():
            from ledger.audit import run_audit

            _in_thread(run_audit(self.path))
        return index

    def _table(self, name: str) -> pd.DataFrame:
        with sqlite3.connect(f"file:{self._index()}?mode=ro", uri=True) as db:
            cursor = db.execute(f"SELECT * FROM {name}")
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        frame = pd.DataFrame(rows, columns=columns)
        for col in _WEI:
            if col in frame:
                frame[col] = [int(v) for v in frame[col]]
        return frame

    @cached_property
    def leases(self) -> pd.DataFrame:
        """Every lease: region, id, epoch, kind, seller, buyer, units, slot, price_wei,
        the settlement that made it and its final ``state`` (with the block that set it)."""
        return self._table("leases")

    @cached_property
    def settlements(self) -> pd.DataFrame:
        """Every settlement transaction: region, epoch, block, order-book root, leases,
        total_price_wei and the committee signers."""
        return self._table("settlements")

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """One row per region per epoch, from ``metrics.csv``."""
        path = self.path / "metrics.csv"
        try:
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("kind") == "region"]
        except FileNotFoundError:
            rows = []
        frame = pd.DataFrame([{k: _number(v) for k, v in r.items()} for r in rows])
        return frame.drop(columns=["kind"], errors="ignore").dropna(axis=1, how="all")

    @cached_property
    def rounds(self) -> pd.DataFrame:
        """One row per confirmed training round, from ``rounds.jsonl``."""
        path = self.path / "rounds.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return pd.DataFrame([json.loads(line) for line in lines if line.strip()])


class Sweep:
    """One sweep's output directory (``specledger sweep --out``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not (path / "results.parquet").exists():
            raise ExperimentError(
                f"{path}: holds no sweep results (no results.parquet): give the --out folder "
                f"of a `specledger sweep` that finished"
            )
        self.summary: dict[str, Any] = json.loads((path / "summary.json").read_text())

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r}, runs={self.summary.get('runs')})"

    @cached_property
    def results(self) -> pd.DataFrame:
        """One row per run: run_id, point_id, the swept fields, seed, metrics, status,
        error, wall_s, cpu_s, run_dir (relative to the sweep)."""
        return pd.read_parquet(self.path / "results.parquet")

    @cached_property
    def aggregate(self) -> pd.DataFrame:
        """Per point: the swept fields, runs, failed, each metric's mean, _lo and _hi."""
        return pd.read_csv(self.path / "aggregate.csv")

    def run(self, run_id: str) -> Run:
        """One of the sweep's runs, by its ``run_id``."""
        return Run(self.path / "runs" / run_id)


def open_run(path: str | Path) -> Run:
    """A run directory's tables as DataFrames (``.leases``, ``.settlements``, ``.epochs``,
    ``.rounds``), each read on first use."""
    return Run(Path(path))


def open_sweep(path: str | Path) -> Sweep:
    """A sweep's tables as DataFrames (``.results``, ``.aggregate``)."""
    return Sweep(Path(path))
