"""The run directory: what a run leaves behind for people and for the audit.

``scenario.toml`` (a copy), ``chains/`` (embedded) and ``ledger.json`` (written
by the ledger), ``metrics.csv`` (one row per region per epoch and one per round,
flushed as they happen), ``rounds.jsonl`` (each confirmed round's metrics, byte
for byte what the root's ``RoundConfirmed.metrics_hash`` hashes),
``summary.json`` and ``history.sha256`` (the sha256 of the full ordered lease
history: the same for the same scenario and seed on the embedded backend).

``summary.json`` is written when the run starts and after every epoch with
``"complete": false``, and at the end with ``"complete": true``, so a run that was
killed says so. ``run.lock`` keeps a second run out while this one writes
(:mod:`agents.rundir`); ``resume/`` holds what ``--resume`` needs to continue
from the last complete epoch (:mod:`agents.resume`), removed once the run completes.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import IO, Any

from ledger.errors import NODE_ERRORS
from ledger.records import Kind, LeaseState
from ledger.region import EpochOutcome
from ledger.tiered import TieredLedger

from .rundir import SCENARIO_FILE, SUMMARY_FILE, RunLock, check_new, check_resumable, write_json

__all__ = ["METRICS_FIELDS", "Recorder", "lease_history"]

METRICS_FIELDS = [
    "kind",
    "epoch",
    "region",
    "clearing_price_wei",
    "utilisation",
    "welfare_wei",
    "leases",
    "defaults",
    "round",
    "loss",
    "accuracy",
    "delay_s",
    "energy_j",
    "epsilon",
    "devices",
    "note",
    # a round's job, when the run has several (the job id on the root)
    "job",
    # the spectrum buyers' orders (agents.buyers.DEMAND_FIELDS), when the run has [demand]
    "capacity_channels",
    "arrivals",
    "turned_away",
    "offered",
    "served",
    "expired",
    "backlog",
    # a round's received SNR of its token uplinks (dB) and the scheduler's queue Q after it
    # (s); last, so that a run directory written before them resumes with aligned columns
    "received_snr_db",
    "queue_s",
]


class Recorder:
    """Owns one run directory, locked while the run writes it; refuses a directory that
    holds anything else (or another run)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._file: IO[str] | None = None
        self._metrics: csv.DictWriter[str] | None = None
        self._lock: RunLock | None = None

    def claim(self, scenario_path: Path) -> None:
        """Lock ``out`` for a new run and keep a copy of its scenario."""
        self._lock = check_new(self.out)
        tmp = self.out / (SCENARIO_FILE + ".tmp")
        tmp.write_bytes(scenario_path.read_bytes())
        tmp.replace(self.out / SCENARIO_FILE)

    def claim_to_resume(self, scenario_path: Path) -> dict[str, Any]:
        """Lock ``out`` to resume the run in it; returns its last summary."""
        self._lock, summary = check_resumable(self.out, scenario_path)
        return summary

    def release(self) -> None:
        """Let another run have the directory (the end of this run)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def open_metrics(self) -> None:
        self._file = open(self.out / "metrics.csv", "w", newline="")  # noqa: SIM115
        self._metrics = csv.DictWriter(self._file, fieldnames=METRICS_FIELDS)
        self._metrics.writeheader()
        self._file.flush()

    def sizes(self) -> tuple[int, int]:
        """The bytes of ``metrics.csv`` and ``rounds.jsonl`` written so far (all flushed)."""
        rounds = self.out / "rounds.jsonl"
        size = rounds.stat().st_size if rounds.exists() else 0
        return (self.out / "metrics.csv").stat().st_size, size

    def reopen(self, metrics_bytes: int, rounds_bytes: int) -> None:
        """Cut ``metrics.csv`` and ``rounds.jsonl`` back to the sizes :meth:`sizes` gave
        (what was written after them belongs to an epoch that is run again) and go on
        appending to them."""
        for name, size in (("metrics.csv", metrics_bytes), ("rounds.jsonl", rounds_bytes)):
            with open(self.out / name, "ab") as f:
                f.truncate(size)
        if not rounds_bytes:
            (self.out / "rounds.jsonl").unlink()  # as before its first round
        self._file = open(self.out / "metrics.csv", "a", newline="")  # noqa: SIM115
        self._metrics = csv.DictWriter(self._file, fieldnames=METRICS_FIELDS)
        if not metrics_bytes:
            self._metrics.writeheader()
            self._file.flush()

    def row(self, **values: Any) -> None:
        """One metrics row, on disk at once (a crash loses nothing written before it)."""
        assert self._metrics is not None and self._file is not None, "open_metrics first"
        self._metrics.writerow({k: values.get(k, "") for k in METRICS_FIELDS})
        self._file.flush()

    def region_row(
        self,
        epoch: int,
        region: int,
        outcome: EpochOutcome,
        channels: int,
        defaults: int,
        **demand: int,
    ) -> None:
        """A region's epoch: its clearing price, the share of offered channels leased
        (``channels`` offered), welfare, leases, defaults, why it did not settle, and the
        spectrum buyers' ``demand`` figures (arrivals, served, backlog, ...)."""
        used = sum(rec.units for rec in outcome.leases if rec.kind == Kind.SPECTRUM)
        self.row(
            kind="region",
            epoch=epoch,
            region=region,
            clearing_price_wei=outcome.clearing_price_wei,
            utilisation=round(used / channels, 4) if channels else 0.0,
            welfare_wei=outcome.welfare_wei,
            leases=len(outcome.leases),
            defaults=defaults,
            note=outcome.reason,  # why it did not settle, or how (its answer was lost)
            **demand,
        )

    def round_line(self, line: str) -> None:
        """A confirmed round's metrics line, written before its confirmation is sent."""
        with open(self.out / "rounds.jsonl", "a") as f:
            f.write(line + "\n")

    def close_metrics(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._metrics = None

    def write_history(self, history: list[dict[str, Any]]) -> str:
        """Write ``history.sha256``; returns the digest of the ordered lease history."""
        blob = json.dumps(history, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(blob).hexdigest()
        tmp = self.out / "history.sha256.tmp"
        tmp.write_text(digest + "\n")
        tmp.replace(self.out / "history.sha256")
        return digest

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.out / SUMMARY_FILE, summary)  # atomic: a kill leaves old or new


async def lease_history(
    ledger: TieredLedger, unreachable: set[int] | None = None
) -> list[dict[str, Any]]:
    """Every lease of every region in chain order, with its final state. A region whose
    node does not answer is left out and added to ``unreachable``."""
    rows = []
    for r, rt in sorted(ledger.regions.items()):
        try:
            await rt.sequencer.sync()
        except NODE_ERRORS:
            if unreachable is None:
                raise
            unreachable.add(r)
            continue
        for record in sorted(
            rt.sequencer.records.values(), key=lambda rec: (rec.epoch, rec.lease_id)
        ):
            rows.append(
                {
                    "region": r,
                    "epoch": record.epoch,
                    "kind": record.kind,
                    "seller": record.seller,
                    "buyer": record.buyer,
                    "nonce": record.nonce,
                    "first": record.first,
                    "units": record.units,
                    "start": record.start,
                    "end": record.end,
                    "price_wei": str(record.price_wei),
                    "state": LeaseState(
                        rt.sequencer.lease_words[record.lease_id] & 0xFF
                    ).name.lower(),
                }
            )
    return rows
